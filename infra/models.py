"""Model registry (data/models.csv) and GPU memory sizing, as vLLM applies it.

Memory an LLM needs on its GPUs = its weights as they are served (the checkpoint's own format, e.g.
FP8 for DeepSeek-R1 or MXFP4 for gpt-oss, or FP8 where vLLM quantizes a 16-bit checkpoint online)
+ KV cache for `minConcurrency` sequences of `maxModelLen` tokens (vLLM starts when its KV cache
holds one; default 1) + runtime overhead per GPU (CUDA context, activations of the profile run,
CUDA graphs). vLLM may use VLLM_GPU_MEMORY_UTILIZATION of each GPU, so an LLM fits
tensor-parallel on `n` GPUs when need <= n × memory per GPU × that fraction.
"""

from __future__ import annotations

import csv
import functools
import math
from dataclasses import dataclass

from infra.catalog import DATA_DIR

BYTES_PER_PARAM = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "mxfp4": 4.25 / 8, "int4": 0.5}
# What vLLM quantizes by itself at load time from a 16-bit checkpoint (`--quantization fp8`, dynamic
# per-tensor scales, docs.vllm.ai "FP8 W8A8" / "Online Dynamic Quantization"); int8 and int4 need a
# checkpoint quantized beforehand (AWQ, GPTQ, compressed-tensors): serve that checkpoint instead.
ONLINE_QUANTIZATION = ("fp8",)
SIXTEEN_BIT = ("bf16", "fp16", "fp32")
KV_CACHE_BYTES = 2  # vLLM keeps the KV cache in 16-bit unless told otherwise
DEFAULT_MIN_CONCURRENCY = 1  # full-length sequences the KV cache must hold: vLLM's own start condition
LLM_OVERHEAD_GB_PER_GPU = 2.0
TEI_OVERHEAD_GB = 1.5  # activations at TEI's default max batch tokens
TEI_DTYPE_BYTES = 2  # TEI runs fp16 on GPU
CPU_DTYPE_BYTES = 4  # and fp32 on CPU
CPU_RAM_RESERVE_GB = 2.0  # OS, Docker, gateway
VLLM_GPU_MEMORY_UTILIZATION = 0.9
DEFAULT_MAX_MODEL_LEN = 8192
TENSOR_PARALLEL_SIZES = (1, 2, 4, 8)
GB = 1e9


@dataclass(frozen=True)
class ModelInfo:
    model: str
    kind: str
    params_b: float
    active_params_b: float
    layers: int | None
    attention_heads: int | None
    kv_heads: int | None
    head_dim: int | None
    max_context: int | None
    source: str = ""
    as_of: str = ""
    checkpoint_dtype: str = "bf16"  # the format the published weights are in
    checkpoint_gb: float | None = None  # their size when not params × bytes of that format (mixed formats)
    experts: int | None = None  # MoE: routed experts per layer
    experts_per_token: int | None = None  # MoE: experts each token is routed to

    @property
    def native_gb(self) -> float:
        """The checkpoint's bytes: what the disk holds and what vLLM loads unless it quantizes further."""
        if self.checkpoint_gb is not None:
            return self.checkpoint_gb
        return self.params_b * 1e9 * BYTES_PER_PARAM[self.checkpoint_dtype] / GB

    @property
    def kv_bytes_per_token(self) -> float:
        """K and V for every layer. A model without an attention shape (unknown to the registry) is
        estimated as a Llama-like GQA model: 12 KB per token per billion parameters."""
        if not (self.layers and self.kv_heads and self.head_dim):
            return self.params_b * 12_000
        return 2 * self.layers * self.kv_heads * self.head_dim * KV_CACHE_BYTES


def _optional_int(text: str) -> int | None:
    return int(text) if text else None


@functools.cache
def registry() -> dict[str, ModelInfo]:
    with open(DATA_DIR / "models.csv", newline="") as handle:
        return {
            row["model"].lower(): ModelInfo(
                model=row["model"],
                kind=row["kind"],
                params_b=float(row["params_b"]),
                active_params_b=float(row["active_params_b"] or row["params_b"]),
                layers=_optional_int(row["layers"]),
                attention_heads=_optional_int(row["attention_heads"]),
                kv_heads=_optional_int(row["kv_heads"]),
                head_dim=_optional_int(row["head_dim"]),
                max_context=_optional_int(row["max_context"]),
                source=row["source"],
                as_of=row["as_of"],
                checkpoint_dtype=row["checkpoint_dtype"],
                checkpoint_gb=float(row["checkpoint_gb"]) if row["checkpoint_gb"] else None,
                experts=_optional_int(row["experts"]),
                experts_per_token=_optional_int(row["experts_per_token"]),
            )
            for row in csv.DictReader(handle)
        }


def find_model(model: str) -> ModelInfo | None:
    return registry().get(model.lower())


def model_info(model: str, kind: str, params_b: float | None, dtype: str = "bf16") -> ModelInfo:
    """The registry entry, or a shape-less entry from the user's `paramsB` for an unknown model.

    A user's `paramsB` wins over the registry (a fine-tune may differ from its base). An unknown
    model's checkpoint is taken to be in the service's `dtype` (an AWQ/GPTQ int4 checkpoint says int4).
    """
    known = find_model(model)
    if known is None:
        assert params_b is not None, "config validation requires paramsB for models outside the registry"
        return ModelInfo(model, kind, params_b, params_b, None, None, None, None, None, checkpoint_dtype=dtype)
    if params_b is not None:
        scaled = known.checkpoint_gb * params_b / known.params_b if known.checkpoint_gb else None
        return ModelInfo(**{**known.__dict__, "params_b": params_b, "active_params_b": min(known.active_params_b, params_b),
                            "checkpoint_gb": scaled})
    return known


def served_dtype(info: ModelInfo, dtype: str) -> str | None:
    """The format vLLM holds the weights in for a requested `dtype`, or None when vLLM cannot get there.

    A checkpoint already as small as asked (or smaller) is served as it is: vLLM never dequantizes FP8
    or MXFP4 weights, and `dtype: bf16` on them only sets the activations' type. Smaller than the
    checkpoint only where vLLM quantizes online (ONLINE_QUANTIZATION, from 16 bits).
    """
    native = info.checkpoint_dtype
    if BYTES_PER_PARAM[dtype] >= BYTES_PER_PARAM[native]:
        return dtype if native in SIXTEEN_BIT and dtype in SIXTEEN_BIT else native
    if dtype in ONLINE_QUANTIZATION and native in SIXTEEN_BIT:
        return dtype
    return None


def dtype_problem(info: ModelInfo, dtype: str) -> str | None:
    """Why `dtype` cannot be served for this checkpoint (the message of a `dtype` problem), or None."""
    if served_dtype(info, dtype) is not None:
        return None
    online = ", ".join(ONLINE_QUANTIZATION)
    return (f"{info.model} is published in {info.checkpoint_dtype}; vLLM quantizes online only to {online} (from 16 bits), so "
            f"{dtype} needs a checkpoint quantized beforehand (AWQ/GPTQ): set model to that checkpoint with paramsB")


def weights_gb(info: ModelInfo, dtype: str) -> float:
    """The weights in GPU memory when served at `dtype` (the checkpoint's real bytes when vLLM keeps its format)."""
    served = served_dtype(info, dtype) or dtype
    if served == info.checkpoint_dtype or BYTES_PER_PARAM[served] == BYTES_PER_PARAM[info.checkpoint_dtype]:
        return info.native_gb
    return info.params_b * 1e9 * BYTES_PER_PARAM[served] / GB


def model_record(info: ModelInfo) -> dict[str, object]:
    """A registry entry as `llm-deploy models --format json` lists it: the CSV row, the KV cache per
    token and the weights per dtype it can be served in (TEI serves encoders in fp16 only)."""
    dtypes = [d for d in ("bf16", "fp16", "fp8", "int8", "int4") if served_dtype(info, d)] if info.kind == "llm" else ("fp16",)
    return {
        **info.__dict__,
        "kv_bytes_per_token": info.kv_bytes_per_token if info.kind == "llm" else None,
        "weights_gb": {dtype: round(weights_gb(info, dtype), 2) for dtype in dtypes},
    }


def kv_cache_gb(info: ModelInfo, max_model_len: int, sequences: int = DEFAULT_MIN_CONCURRENCY) -> float:
    """KV cache for `sequences` sequences of max_model_len tokens."""
    return info.kv_bytes_per_token * max_model_len * sequences / GB


def effective_max_model_len(info: ModelInfo, configured: int | None) -> int:
    if configured is not None:
        return configured
    return min(DEFAULT_MAX_MODEL_LEN, info.max_context or DEFAULT_MAX_MODEL_LEN)


def llm_memory_gb(info: ModelInfo, dtype: str, max_model_len: int, tensor_parallel: int,
                  min_concurrency: int = DEFAULT_MIN_CONCURRENCY) -> float:
    return (weights_gb(info, dtype) + kv_cache_gb(info, max_model_len, min_concurrency)
            + LLM_OVERHEAD_GB_PER_GPU * tensor_parallel)


def encoder_memory_gb(info: ModelInfo, accelerator: str) -> float:
    """TEI: fp16 weights plus activations on GPU; fp32 weights plus activations in RAM on CPU."""
    per_param = TEI_DTYPE_BYTES if accelerator == "gpu" else CPU_DTYPE_BYTES
    return info.params_b * 1e9 * per_param / GB + TEI_OVERHEAD_GB


def valid_tensor_parallel(info: ModelInfo, gpus: int) -> bool:
    """vLLM splits attention heads evenly across GPUs."""
    return info.attention_heads is None or info.attention_heads % gpus == 0


def checkpoint_disk_gb(info: ModelInfo) -> float:
    """The disk holds the checkpoint as published (FP8, MXFP4, 16 or 32 bits), whatever the serving dtype."""
    return info.native_gb


def round_up(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)
