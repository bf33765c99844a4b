"""Decode throughput and $/1M tokens: an ESTIMATE from a roofline model, labelled so everywhere.

One decode step of a batch of DECODE_BATCH sequences reads every weight once plus each sequence's
KV cache (memory-bound at small batch) and does 2 × active parameters FLOPs per sequence
(compute-bound at large batch); the step takes the larger of the two times. Aggregate tokens/s =
batch / step time. Efficiencies are typical achieved fractions of the datasheet peaks; tensor
parallelism scales bandwidth and FLOPS by the GPU count at TP_EFFICIENCY. Prefill and scheduling
overheads are ignored, so real numbers on short contexts are lower; see the README comparison with
the reference H100 figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.models import BYTES_PER_PARAM, GB, ModelInfo
from infra.plan import Offer

DECODE_BATCH = 8  # concurrent sequences being decoded
AVG_CONTEXT_TOKENS = 1024  # mean tokens in each sequence's KV cache during decode
BANDWIDTH_EFFICIENCY = 0.6
COMPUTE_EFFICIENCY = 0.4
TP_EFFICIENCY = 0.9
ASSUMPTIONS = (
    f"roofline decode estimate at batch {DECODE_BATCH}, {AVG_CONTEXT_TOKENS} context tokens per sequence, "
    f"{BANDWIDTH_EFFICIENCY:.0%} of peak memory bandwidth, {COMPUTE_EFFICIENCY:.0%} of peak BF16 FLOPS; no prefill"
)


@dataclass(frozen=True)
class ThroughputEstimate:
    tokens_per_second: float
    usd_per_million_tokens: float


def decode_tokens_per_second(info: ModelInfo, dtype: str, offer: Offer, tensor_parallel: int) -> float:
    if not (offer.memory_bandwidth_gbps and offer.bf16_tflops):
        return 0.0
    scale = tensor_parallel * (TP_EFFICIENCY if tensor_parallel > 1 else 1.0)
    weight_bytes = info.params_b * 1e9 * BYTES_PER_PARAM[dtype]
    kv_bytes = DECODE_BATCH * AVG_CONTEXT_TOKENS * info.kv_bytes_per_token
    memory_seconds = (weight_bytes + kv_bytes) / (offer.memory_bandwidth_gbps * GB * BANDWIDTH_EFFICIENCY * scale)
    flops = 2 * info.active_params_b * 1e9 * DECODE_BATCH
    compute_seconds = flops / (offer.bf16_tflops * 1e12 * COMPUTE_EFFICIENCY * scale)
    return DECODE_BATCH / max(memory_seconds, compute_seconds)


def estimate(info: ModelInfo, dtype: str, offer: Offer, tensor_parallel: int, replicas: int = 1) -> ThroughputEstimate:
    """Aggregate throughput of `replicas` instances and what a million generated tokens cost on them."""
    per_instance = decode_tokens_per_second(info, dtype, offer, tensor_parallel)
    if per_instance <= 0:
        return ThroughputEstimate(0.0, float("inf"))
    usd_per_million = offer.hourly_usd / (per_instance * 3600) * 1e6
    return ThroughputEstimate(round(per_instance * replicas, 1), round(usd_per_million, 4))
