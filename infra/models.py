"""Model registry (data/models.csv) and GPU memory sizing.

Memory a service needs on its GPUs = weights at the serving dtype + KV cache for `maxModelLen`
tokens of KV_CONCURRENCY concurrent sequences (LLM only) + runtime overhead per GPU (CUDA
context, activations, CUDA graphs). vLLM may use VLLM_GPU_MEMORY_UTILIZATION of each GPU, so an
LLM fits tensor-parallel on `n` GPUs when need <= n × memory per GPU × that fraction.
"""

from __future__ import annotations

import csv
import functools
import math
from dataclasses import dataclass

from infra.catalog import DATA_DIR

BYTES_PER_PARAM = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
KV_CACHE_BYTES = 2  # vLLM keeps the KV cache in 16-bit unless told otherwise
KV_CONCURRENCY = 4  # full-length sequences the KV cache must hold at once
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
            )
            for row in csv.DictReader(handle)
        }


def find_model(model: str) -> ModelInfo | None:
    return registry().get(model.lower())


def model_info(model: str, kind: str, params_b: float | None) -> ModelInfo:
    """The registry entry, or a shape-less entry from the user's `paramsB` for an unknown model.

    A user's `paramsB` wins over the registry (a fine-tune may differ from its base).
    """
    known = find_model(model)
    if known is None:
        assert params_b is not None, "config validation requires paramsB for models outside the registry"
        return ModelInfo(model, kind, params_b, params_b, None, None, None, None, None)
    if params_b is not None:
        return ModelInfo(**{**known.__dict__, "params_b": params_b, "active_params_b": min(known.active_params_b, params_b)})
    return known


def weights_gb(info: ModelInfo, dtype: str) -> float:
    return info.params_b * 1e9 * BYTES_PER_PARAM[dtype] / GB


def model_record(info: ModelInfo) -> dict[str, object]:
    """A registry entry as `llm-deploy models --format json` lists it: the CSV row, the KV cache per
    token and the weights per dtype it can be served in (TEI serves encoders in fp16 only)."""
    dtypes = BYTES_PER_PARAM if info.kind == "llm" else ("fp16",)
    return {
        **info.__dict__,
        "kv_bytes_per_token": info.kv_bytes_per_token if info.kind == "llm" else None,
        "weights_gb": {dtype: round(weights_gb(info, dtype), 2) for dtype in dtypes},
    }


def kv_cache_gb(info: ModelInfo, max_model_len: int) -> float:
    """KV cache for KV_CONCURRENCY sequences of max_model_len tokens."""
    return info.kv_bytes_per_token * max_model_len * KV_CONCURRENCY / GB


def effective_max_model_len(info: ModelInfo, configured: int | None) -> int:
    if configured is not None:
        return configured
    return min(DEFAULT_MAX_MODEL_LEN, info.max_context or DEFAULT_MAX_MODEL_LEN)


def llm_memory_gb(info: ModelInfo, dtype: str, max_model_len: int, tensor_parallel: int) -> float:
    return weights_gb(info, dtype) + kv_cache_gb(info, max_model_len) + LLM_OVERHEAD_GB_PER_GPU * tensor_parallel


def encoder_memory_gb(info: ModelInfo, accelerator: str) -> float:
    """TEI: fp16 weights plus activations on GPU; fp32 weights plus activations in RAM on CPU."""
    per_param = TEI_DTYPE_BYTES if accelerator == "gpu" else CPU_DTYPE_BYTES
    return info.params_b * 1e9 * per_param / GB + TEI_OVERHEAD_GB


def valid_tensor_parallel(info: ModelInfo, gpus: int) -> bool:
    """vLLM splits attention heads evenly across GPUs."""
    return info.attention_heads is None or info.attention_heads % gpus == 0


def checkpoint_disk_gb(info: ModelInfo) -> float:
    """Checkpoints are usually published in 16-bit; the disk holds them whatever the serving dtype."""
    return info.params_b * 2


def round_up(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)
