"""What an option serves at the service's load: replicas, tokens/s per replica, time per output token, $/1M tokens.

All of it is an ESTIMATE (infra/throughput.py). Without a `load` the LLM is shown at the throughput
model's reference point (batch DECODE_BATCH) and an encoder at its full capacity.
"""

from __future__ import annotations

from typing import Any

from infra import ollama
from infra.models import VLLM_GPU_MEMORY_UTILIZATION
from infra.placement import ServiceNeed, replicas_for
from infra.plan import Offer, PlacedService
from infra.throughput import (
    AVG_CONTEXT_TOKENS,
    DECODE_BATCH,
    at_load,
    decode_tokens_per_second,
    encoder_tokens_per_second,
    kv_cache_tokens,
    mean_decode_context,
    replica_capacity,
)


def _per_million(hourly_usd: float, tokens_per_second: float) -> float | None:
    return round(hourly_usd / (tokens_per_second * 3600) * 1e6, 6) if tokens_per_second > 0 else None


def load_estimate(need: ServiceNeed, placed: PlacedService, offer: Offer, nodes: int, hourly_usd: float) -> dict[str, Any]:
    """The keys `cost` adds per option and per chosen service; `hourly_usd` is what those nodes cost."""
    config, load = need.config, need.config.load
    replicas = nodes * placed.replicas_per_node  # every GPU runs a replica: the load spreads over all of them
    needed, _ = replicas_for(need, offer, max(placed.tensor_parallel_size, 1), placed.gpu_memory_utilization or VLLM_GPU_MEMORY_UTILIZATION)
    record: dict[str, Any] = {"replicas_needed": needed, "replicas_running": replicas, "replicas_per_node": placed.replicas_per_node,
                              "load_is_estimate": True}
    if config.kind != "llm":
        capacity = encoder_tokens_per_second(need.info, offer, placed.accelerator)
        embedded = load.requests_per_second * load.tokens_per_request if load else capacity * replicas
        record |= {"tokens_per_second_per_replica": round(min(capacity, embedded / replicas), 1),
                   "usd_per_million_embedded_tokens": _per_million(hourly_usd, embedded)}
        return record
    tp = placed.tensor_parallel_size
    if placed.engine == ollama.ENGINE:  # one sequence at a time: the load only decides the replicas
        context = mean_decode_context(load.prompt_tokens, load.output_tokens) if load else AVG_CONTEXT_TOKENS
        per_replica = ollama.tokens_per_second(need.info, offer, context)
        produced = load.requests_per_second * load.output_tokens if load else per_replica * replicas
        record |= {"tokens_per_second_per_replica": round(min(per_replica, produced / replicas), 1),
                   "time_per_output_token_ms": round(1e3 / per_replica, 2) if per_replica else None,
                   "usd_per_million_output_tokens": _per_million(hourly_usd, produced)}
        return record
    if load is None:
        per_replica = decode_tokens_per_second(need.info, config.dtype, offer, tp)
        record |= {"tokens_per_second_per_replica": round(per_replica, 1),
                   "time_per_output_token_ms": round(DECODE_BATCH / per_replica * 1e3, 2) if per_replica else None,
                   "usd_per_million_output_tokens": _per_million(hourly_usd, per_replica * replicas)}
        return record
    assert load.prompt_tokens and load.output_tokens, "config validation requires them for an llm's load"
    kv_tokens = kv_cache_tokens(need.info, config.dtype, offer, tp, placed.gpu_memory_utilization or VLLM_GPU_MEMORY_UTILIZATION)
    latency = config.latency
    capacity = replica_capacity(need.info, config.dtype, offer, tp, kv_tokens, load.prompt_tokens, load.output_tokens,
                                latency and latency.time_to_first_token_ms, latency and latency.time_per_output_token_ms)
    max_batch = capacity.at.batch if capacity.at else 1
    at = at_load(need.info, config.dtype, offer, tp, load.requests_per_second / replicas, load.prompt_tokens,
                 load.output_tokens, max_batch)
    record |= {"tokens_per_second_per_replica": round(at.tokens_per_second, 1),
               "time_per_output_token_ms": round(at.time_per_output_token_s * 1e3, 2),
               "time_to_first_token_ms": round(at.time_to_first_token_s * 1e3, 1),
               "batch_per_replica": at.batch, "batch_limit": capacity.limit,
               "usd_per_million_output_tokens": _per_million(hourly_usd, load.requests_per_second * load.output_tokens)}
    return record
