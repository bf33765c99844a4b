"""Serving throughput and latency: an ESTIMATE from a roofline model, labelled so everywhere, calibrated
against published vLLM and TEI results (data/benchmarks.csv; tests/test_throughput.py holds every row).

Decode: one step of a batch of b sequences reads the weights it touches once (a dense model all of them;
a mixture of experts its shared weights plus the experts its b tokens are routed to) and each sequence's
KV cache, at BANDWIDTH_EFFICIENCY of the GPUs' bandwidth, and does 2 × active parameters FLOPs per
sequence; the step takes the longer of the two plus a fixed scheduling overhead. Prefill is compute-bound
(2 × active parameters FLOPs per prompt token) and, with vLLM's chunked prefill, shares the decode steps:
in steady state each step also prefills b × prompt / output tokens. Tensor parallelism scales bandwidth
and FLOPS by the GPU count at TP_EFFICIENCY. Encoders (TEI) are compute-bound: 2 × parameters FLOPs per
token at ENCODER_EFFICIENCY of the GPU's FLOPS, or CPU_GFLOPS_PER_VCPU on CPU (UNVERIFIED).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from infra.models import BYTES_PER_PARAM, GB, LLM_OVERHEAD_GB_PER_GPU, ModelInfo, served_dtype, weights_gb
from infra.plan import Offer

DECODE_BATCH = 8  # the reference point `estimate` shows when the service has no `load`
AVG_CONTEXT_TOKENS = 1024  # mean tokens in each sequence's KV cache at that reference point
# Calibration (tests/test_throughput.py): Llama-3.1-8B at batch 1 decodes at 6.48 ms/token on an H100 and
# ~13.3 ms on an A100 40GB; 16 GB of weights over 3350 and 1555 GB/s give 82 % of peak bandwidth plus 0.6 ms a step.
BANDWIDTH_EFFICIENCY = 0.82
STEP_OVERHEAD_S = 0.0006
# Expert kernels at small batch reach less of the bandwidth than dense matmuls: gpt-oss-20b decodes at 250
# tok/s alone on an RTX PRO 6000, gpt-oss-120b at ~511 tok/s for 4 users on an H100 (benchmarks.csv).
MOE_EFFICIENCY = 0.7
COMPUTE_EFFICIENCY = 0.4  # decode matmuls of a small batch
PREFILL_EFFICIENCY = 0.6  # prompt tokens in large chunks
TP_EFFICIENCY = 0.9
ENCODER_EFFICIENCY = 0.35  # TEI: bge-large-en-v1.5 at ~63k tokens/s on an L4 (121 TFLOPS)
CPU_GFLOPS_PER_VCPU = 20.0  # TEI on CPU: UNVERIFIED, no published TEI CPU figure was found
MAX_NUM_SEQS = 256  # vLLM's default cap on sequences in one batch
ASSUMPTIONS = (
    f"roofline estimate calibrated on published vLLM/TEI results (infra/data/benchmarks.csv): decode at "
    f"{BANDWIDTH_EFFICIENCY:.0%} of peak memory bandwidth + {STEP_OVERHEAD_S * 1e3:g} ms a step, MoE reading only the "
    f"experts a batch touches, prefill at {PREFILL_EFFICIENCY:.0%} of peak BF16 FLOPS; without a load: batch "
    f"{DECODE_BATCH}, {AVG_CONTEXT_TOKENS} context tokens per sequence"
)


@dataclass(frozen=True)
class ThroughputEstimate:
    tokens_per_second: float
    usd_per_million_tokens: float


@dataclass(frozen=True)
class Serving:
    """One LLM replica at a batch size: what it produces and how fast each user sees tokens."""

    batch: int
    tokens_per_second: float  # output tokens, all sequences together
    time_per_output_token_s: float
    time_to_first_token_s: float


def _scale(tensor_parallel: int) -> float:
    return tensor_parallel * (TP_EFFICIENCY if tensor_parallel > 1 else 1.0)


def _experts(info: ModelInfo) -> tuple[float, float] | None:
    """(shared parameters, parameters per routed expert) in billions for a mixture of experts, else None."""
    experts, k = info.experts, info.experts_per_token
    if not (experts and k) or experts <= k:
        return None
    per_expert = (info.params_b - info.active_params_b) / (experts - k)
    return info.active_params_b - k * per_expert, per_expert


def touched_params_b(info: ModelInfo, batch: float) -> float:
    """Parameters one decode step reads: all of a dense model; of a mixture of experts the shared part plus
    the experts at least one of `batch` tokens is routed to (each token picks k of E, per layer)."""
    split = _experts(info)
    if split is None:
        return info.params_b
    shared, per_expert = split
    return shared + _touched_experts(info, batch) * per_expert


def _touched_experts(info: ModelInfo, batch: float) -> float:
    experts, k = info.experts or 0, info.experts_per_token or 0
    return experts * (1 - (1 - k / experts) ** batch)


def weight_bytes_read(info: ModelInfo, dtype: str, batch: float) -> float:
    """Bytes of weights one decode step reads, at the served format's real bytes. An MXFP4 checkpoint (gpt-oss's
    quantization_config) holds only the experts in MXFP4 and the rest in bf16."""
    split = _experts(info)
    average = weights_gb(info, dtype) / info.params_b  # GB per billion parameters
    if split is None:
        return info.params_b * average * GB
    shared, per_expert = split
    expert_bytes, shared_bytes = (
        (BYTES_PER_PARAM["mxfp4"], BYTES_PER_PARAM["bf16"]) if served_dtype(info, dtype) == "mxfp4" else (average, average)
    )
    return (shared * shared_bytes + _touched_experts(info, batch) * per_expert * expert_bytes) * GB


def decode_step_seconds(info: ModelInfo, dtype: str, offer: Offer, tensor_parallel: int, batch: float, context: float) -> float:
    if not (offer.memory_bandwidth_gbps and offer.bf16_tflops):
        return math.inf
    scale = _scale(tensor_parallel)
    efficiency = BANDWIDTH_EFFICIENCY * (MOE_EFFICIENCY if _experts(info) else 1.0)
    kv_bytes = batch * context * info.kv_bytes_per_token
    memory = (weight_bytes_read(info, dtype, batch) + kv_bytes) / (offer.memory_bandwidth_gbps * GB * efficiency * scale)
    compute = 2 * info.active_params_b * 1e9 * batch / (offer.bf16_tflops * 1e12 * COMPUTE_EFFICIENCY * scale)
    return max(memory, compute) + STEP_OVERHEAD_S


def prefill_seconds(info: ModelInfo, offer: Offer, tensor_parallel: int, tokens: float) -> float:
    if not offer.bf16_tflops:
        return math.inf
    return 2 * info.active_params_b * 1e9 * tokens / (offer.bf16_tflops * 1e12 * PREFILL_EFFICIENCY * _scale(tensor_parallel))


def mean_decode_context(prompt: float, output: float) -> float:
    """Tokens in a sequence's KV cache averaged over its decode: the prompt and half of its output."""
    return prompt + output / 2


def serving(info: ModelInfo, dtype: str, offer: Offer, tensor_parallel: int, batch: float, prompt: int, output: int) -> Serving:
    """A replica running `batch` sequences of `prompt` + `output` tokens in steady state."""
    step = decode_step_seconds(info, dtype, offer, tensor_parallel, batch, mean_decode_context(prompt, output))
    others_prefill = prefill_seconds(info, offer, tensor_parallel, max(batch - 1, 0) * prompt / output)
    own_prefill = prefill_seconds(info, offer, tensor_parallel, prompt / output)
    time_per_token = step + others_prefill
    return Serving(
        batch=max(1, round(batch)),
        tokens_per_second=batch / (time_per_token + own_prefill),
        time_per_output_token_s=time_per_token,
        time_to_first_token_s=prefill_seconds(info, offer, tensor_parallel, prompt) + step,
    )


@dataclass(frozen=True)
class Capacity:
    """What one replica can serve of a load: requests/s at the largest batch memory and latency allow."""

    requests_per_second: float
    at: Serving | None  # None: even one sequence misses the latency target
    limit: str  # what caps the batch: "KV cache", "timePerOutputTokenMs", "timeToFirstTokenMs", "max_num_seqs"


def kv_cache_tokens(info: ModelInfo, dtype: str, offer: Offer, tensor_parallel: int, share: float) -> float:
    """Tokens the KV cache of one replica holds: its GPUs' share minus weights and runtime overhead."""
    free_gb = tensor_parallel * (offer.gpu_memory_gb * share - LLM_OVERHEAD_GB_PER_GPU) - weights_gb(info, dtype)
    return max(free_gb, 0) * GB / info.kv_bytes_per_token


def replica_capacity(info: ModelInfo, dtype: str, offer: Offer, tensor_parallel: int, kv_tokens: float, prompt: int,
                     output: int, ttft_ms: float | None = None, tpot_ms: float | None = None) -> Capacity:
    """The largest batch a replica may run (KV cache, vLLM's max_num_seqs, the latency targets) and its requests/s."""
    kv_batch = int(kv_tokens // (prompt + output))
    batch, limit = (MAX_NUM_SEQS, "max_num_seqs") if kv_batch >= MAX_NUM_SEQS else (max(kv_batch, 1), "KV cache")

    def meets(batch: int) -> bool:
        at = serving(info, dtype, offer, tensor_parallel, batch, prompt, output)
        return ((tpot_ms is None or at.time_per_output_token_s * 1e3 <= tpot_ms)
                and (ttft_ms is None or at.time_to_first_token_s * 1e3 <= ttft_ms))

    if not meets(1):
        return Capacity(0.0, None, "timePerOutputTokenMs" if tpot_ms is not None else "timeToFirstTokenMs")
    if not meets(batch):  # latency grows with the batch: the largest batch that still meets it
        low, high = 1, batch
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if meets(middle) else (low, middle - 1)
        batch, limit = low, "timePerOutputTokenMs" if tpot_ms is not None else "timeToFirstTokenMs"
    at = serving(info, dtype, offer, tensor_parallel, batch, prompt, output)
    return Capacity(at.tokens_per_second / output, at, limit)


def at_load(info: ModelInfo, dtype: str, offer: Offer, tensor_parallel: int, requests_per_second: float, prompt: int,
            output: int, max_batch: int) -> Serving:
    """A replica given `requests_per_second`: the batch it settles at (Little's law: arrivals × time in the
    replica) and how fast it then serves."""
    batch = 1.0
    for _ in range(50):
        at = serving(info, dtype, offer, tensor_parallel, batch, prompt, output)
        busy = requests_per_second * (at.time_to_first_token_s + output * at.time_per_output_token_s)
        batch = min(max(1.0, (batch + busy) / 2), max_batch)
    at = serving(info, dtype, offer, tensor_parallel, batch, prompt, output)
    return Serving(at.batch, requests_per_second * output, at.time_per_output_token_s, at.time_to_first_token_s)


def encoder_tokens_per_second(info: ModelInfo, offer: Offer, accelerator: str) -> float:
    """Tokens/s one TEI replica embeds or scores: compute-bound on its one GPU, or on the instance's vCPUs."""
    flops = 2 * info.params_b * 1e9
    if accelerator == "cpu":
        return offer.vcpus * CPU_GFLOPS_PER_VCPU * 1e9 / flops
    return (offer.bf16_tflops or 0) * 1e12 * ENCODER_EFFICIENCY / flops


def decode_tokens_per_second(info: ModelInfo, dtype: str, offer: Offer, tensor_parallel: int) -> float:
    """The reference point: DECODE_BATCH sequences of AVG_CONTEXT_TOKENS, decode only."""
    step = decode_step_seconds(info, dtype, offer, tensor_parallel, DECODE_BATCH, AVG_CONTEXT_TOKENS)
    return DECODE_BATCH / step if math.isfinite(step) else 0.0


def estimate(info: ModelInfo, dtype: str, offer: Offer, tensor_parallel: int, replicas: int = 1,
             replicas_per_node: int = 1) -> ThroughputEstimate:
    """Aggregate throughput of `replicas` replicas and what a million generated tokens cost on them (a node's
    price over its `replicas_per_node` replicas' tokens)."""
    per_instance = decode_tokens_per_second(info, dtype, offer, tensor_parallel)
    if per_instance <= 0:
        return ThroughputEstimate(0.0, float("inf"))
    usd_per_million = offer.hourly_usd / (per_instance * replicas_per_node * 3600) * 1e6
    return ThroughputEstimate(round(per_instance * replicas, 1), round(usd_per_million, 4))
