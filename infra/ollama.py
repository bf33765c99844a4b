"""Ollama for CPU-only and small hosts (`engine: ollama`): its model tags, their memory and the decode estimate.

An Ollama tag (`llama3.1:8b`, `deepseek-coder:6.7b-instruct-q4_0`) names a GGUF file of one quantisation.
Memory = the file's weights + KV cache (16-bit, Ollama's default OLLAMA_KV_CACHE_TYPE f16) for
`minConcurrency` parallel slots (OLLAMA_NUM_PARALLEL) of the context (OLLAMA_CONTEXT_LENGTH) each + the
runner's buffers; on CPU that is RAM, on a GPU the GPU's memory.

Throughput is an ESTIMATE, labelled so: decode is memory-bandwidth bound, so one sequence decodes at
effective bandwidth / bytes read per token (the weights + its KV cache). The bandwidth is the vCPUs'
share (data/ollama_decode.csv, capped per node) on CPU, or the GPUs' bandwidth at llama.cpp's measured
efficiency. No batching gain is assumed: parallel slots share that bandwidth.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

from infra.data_files import data_rows
from infra.models import GB, ModelInfo
from infra.plan import Offer
from infra.throughput import AVG_CONTEXT_TOKENS, ThroughputEstimate

ENGINE = "ollama"
# A tag of the Ollama library: `name:tag`, both explicit (no implicit `:latest`, which moves), no namespace: the
# node's health check asks for `/v1/models/<tag>`, one path segment.
TAG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}:[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Under modelSource.path on air-gapped hosts: an Ollama models directory (OLLAMA_MODELS) copied from a machine that
# pulled the tags.
STAGED_DIR = "ollama"
THROUGHPUT_BASIS = "ollama decode estimate: memory bandwidth / bytes read per token, one sequence at a time"


@dataclass(frozen=True)
class OllamaTag:
    tag: str
    params_b: float
    quantization: str
    size_gb: float  # the GGUF file: on disk and, mapped, in memory
    context_length: int | None
    layers: int | None = None
    kv_heads: int | None = None
    head_dim: int | None = None
    source: str = ""
    as_of: str = ""


def _optional_int(text: str) -> int | None:
    return int(text) if text else None


@functools.cache
def tags() -> dict[str, OllamaTag]:
    """The built-in tags (data/ollama_models.csv)."""
    return {
        row["tag"]: OllamaTag(row["tag"], float(row["params_b"]), row["quantization"], float(row["size_gb"]),
                              _optional_int(row["context_length"]), _optional_int(row["layers"]), _optional_int(row["kv_heads"]),
                              _optional_int(row["head_dim"]), row["source"], row["as_of"])
        for row in data_rows("ollama_models.csv")
    }


@functools.cache
def bits_per_weight() -> dict[str, float]:
    """GGUF quantisation (`q4_K_M`) → bits a weight (data/ollama_quantizations.csv)."""
    return {row["quantization"]: float(row["bits_per_weight"]) for row in data_rows("ollama_quantizations.csv")}


@functools.cache
def decode_constant(name: str) -> float:
    return next(float(row["value"]) for row in data_rows("ollama_decode.csv") if row["name"] == name)


def quantization_of(tag: str) -> str | None:
    """The quantisation a tag names in its suffix (`...-q4_K_M`, `...-fp16`), if any."""
    suffix = tag.rpartition(":")[2].rpartition("-")[2].lower()
    spelled = {name.lower(): name for name in bits_per_weight()} | {"fp16": "f16"}  # Ollama tags say fp16 and q4_K_M
    return spelled.get(suffix)


def staged_file(tag: str) -> str:
    """What proves a tag is staged (relative to modelSource.path): its manifest, where Ollama keeps a library tag's."""
    name, _, version = tag.partition(":")
    return f"{STAGED_DIR}/manifests/registry.ollama.ai/library/{name}/{version}"


def quantization(tag: str) -> str:
    """The GGUF quantisation the tag serves: the built-in row's, else the one its suffix names."""
    known = tags().get(tag)
    return known.quantization if known else quantization_of(tag) or "unknown"


def tag_problem(tag: str, params_b: float | None) -> tuple[str, str, str | None] | None:
    """(field, message, hint) when a tag cannot be sized, else None: a built-in tag, or `paramsB` with a tag that
    names its quantisation."""
    if not TAG.fullmatch(tag):
        return "model", f"{tag!r} is not an Ollama library tag", "name:tag, both explicit, e.g. llama3.1:8b"
    if tag in tags():
        return None
    if params_b is None:
        return ("paramsB", f"Ollama tag {tag!r} is not in the built-in list (infra/data/ollama_models.csv)",
                "set paramsB (size in billions) and use a tag that names its quantisation, e.g. qwen2.5:7b-instruct-q4_K_M")
    if quantization_of(tag) is None:
        known = ", ".join(bits_per_weight())
        return "model", f"{tag!r} names no quantisation, so its size is unknown", f"use the tag with its quantisation suffix ({known})"
    return None


def tag_info(tag: str, params_b: float | None) -> ModelInfo:
    """The tag as the sizing code reads a model: its GGUF size as the checkpoint, its attention shape for the KV
    cache (a shape-less tag: the registry's Llama-like estimate). A user's paramsB scales a built-in tag's size."""
    known = tags().get(tag)
    if known is None:
        assert params_b is not None, "config validation requires paramsB for a tag outside the built-in list"
        quantization = quantization_of(tag)
        assert quantization is not None, "config validation requires a tag that names its quantisation"
        size = params_b * 1e9 * bits_per_weight()[quantization] / 8 / GB
        return ModelInfo(tag, "llm", params_b, params_b, None, None, None, None, None, checkpoint_gb=size)
    size = known.size_gb * (params_b / known.params_b if params_b else 1.0)
    params = params_b or known.params_b
    return ModelInfo(tag, "llm", params, params, known.layers, None, known.kv_heads, known.head_dim, known.context_length,
                     source=known.source, as_of=known.as_of, checkpoint_gb=size)


def tag_record(tag: OllamaTag) -> dict[str, object]:
    """A built-in tag as `llm-deploy models --engine ollama --format json` lists it: the CSV row and the KV cache
    per token its attention shape gives (None for a shape-less tag, which placement estimates)."""
    info = tag_info(tag.tag, None)
    return {**tag.__dict__, "kv_bytes_per_token": info.kv_bytes_per_token if tag.layers else None}


def memory_gb(info: ModelInfo, context: int, parallel: int) -> float:
    """RAM (CPU) or GPU memory one Ollama server needs: weights + KV cache of every slot + the runner's buffers."""
    kv = info.kv_bytes_per_token * context * parallel / GB
    return info.native_gb + kv + decode_constant("runtime_overhead_gb")


def bandwidth_gbps(offer: Offer) -> float:
    """Effective bandwidth decode reads at: the vCPUs' share up to the node's cap, or the GPUs' at llama.cpp's efficiency."""
    if offer.gpu_count:
        return offer.gpu_count * (offer.memory_bandwidth_gbps or 0) * decode_constant("gpu_bandwidth_efficiency")
    return min(offer.vcpus * decode_constant("cpu_bandwidth_gbps_per_vcpu"), decode_constant("cpu_node_bandwidth_gbps"))


def tokens_per_second(info: ModelInfo, offer: Offer, context_tokens: float) -> float:
    """Output tokens/s of one Ollama server: one sequence with `context_tokens` in its KV cache, every token reading
    the weights and that cache once."""
    read = info.native_gb * GB + info.kv_bytes_per_token * context_tokens
    bandwidth = bandwidth_gbps(offer)
    return bandwidth * GB / read if bandwidth > 0 else 0.0


def fits_gpus(need_gb: float, offer: Offer) -> str | None:
    """Why one Ollama server cannot use exactly this offer's GPUs (it spreads over all of them, OLLAMA_SCHED_SPREAD),
    or None: every GPU must be needed, none left idle."""
    usable = offer.gpu_memory_gb
    needed = math.ceil(need_gb / usable) if usable else math.inf
    if needed > offer.gpu_count:
        return f"needs {need_gb:.1f} GB GPU memory, {offer.gpu_count * usable:.0f} GB on {offer.gpu_count}x {offer.gpu}"
    if needed < offer.gpu_count:
        return f"{offer.gpu_count}x {offer.gpu}: one Ollama server needs {needed}, {offer.gpu_count - needed} GPUs idle"
    return None


def assumptions() -> str:
    """What the Ollama figures assume, for the cost preview's note beside vLLM's."""
    return (f"Ollama: {THROUGHPUT_BASIS} ({decode_constant('cpu_bandwidth_gbps_per_vcpu'):g} GB/s per vCPU up to "
            f"{decode_constant('cpu_node_bandwidth_gbps'):g} GB/s a node on CPU, {decode_constant('gpu_bandwidth_efficiency'):.0%} of "
            f"peak on a GPU; infra/data/ollama_decode.csv), {AVG_CONTEXT_TOKENS} context tokens")


def estimate(info: ModelInfo, offer: Offer, replicas: int) -> ThroughputEstimate:
    """Output tokens/s of `replicas` Ollama servers (one a node) and what a million of them cost on one node."""
    per_node = tokens_per_second(info, offer, AVG_CONTEXT_TOKENS)
    if per_node <= 0:
        return ThroughputEstimate(0.0, float("inf"))
    return ThroughputEstimate(round(per_node * replicas, 1), round(offer.hourly_usd / (per_node * 3600) * 1e6, 4))
