"""Autoscaling and the schedule in the plan: per node group its ceiling and per autoscaled service its queue target.

A node group holds `count` nodes (its services' `replicas`, or what their load needs) and, when a service sets
`maxReplicas`, grows to the nodes that ceiling needs (an LLM runs `replicas_per_node` servers on a node). The
target is the queue depth per replica the cloud's scaler holds: `targetQueuePerReplica`, or by default one
replica's concurrency from the load model (README "Autoscaling"): as many requests waiting as a replica runs
at once means a newcomer waits about one request's duration before it starts, the point to add a replica.
- LLM (vLLM): the batch one replica runs at the service's load (infra.throughput.replica_capacity: KV cache,
  max_num_seqs, latency targets); without a load, the full-length sequences its KV cache holds (at most
  vLLM's max_num_seqs).
- Embedding / rerank (TEI): the requests of one full batch, TEI's max batch tokens over the tokens per request
  (the load's tokensPerRequest, else the model's longest input).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from infra.config import StackConfig
from infra.plan import Autoscaling, DeploymentPlan, NodeGroup, PlacedService, ScalingTarget
from infra.throughput import MAX_NUM_SEQS, kv_cache_tokens, replica_capacity

if TYPE_CHECKING:
    from infra.placement import ServiceNeed

TEI_MAX_BATCH_TOKENS = 16384  # TEI 1.9's --max-batch-tokens default (router/src/main.rs), which bootstrap keeps
ENCODER_INPUT_TOKENS = 512  # an encoder's longest input when the registry does not say (BERT-style models)


def _llm_concurrency(need: ServiceNeed, placed: PlacedService, group: NodeGroup) -> tuple[int, str]:
    info, config = need.info, need.config
    share = placed.gpu_memory_utilization or 0.9
    kv_tokens = kv_cache_tokens(info, config.dtype, group.offer, placed.tensor_parallel_size, share)
    if config.load is not None:
        assert config.load.prompt_tokens and config.load.output_tokens, "config validation requires them for an llm's load"
        latency = config.latency
        capacity = replica_capacity(info, config.dtype, group.offer, placed.tensor_parallel_size, kv_tokens,
                                    config.load.prompt_tokens, config.load.output_tokens,
                                    latency and latency.time_to_first_token_ms, latency and latency.time_per_output_token_ms)
        batch = capacity.at.batch if capacity.at else 1
        return batch, f"one replica's batch at the service's load ({batch} sequences, capped by {capacity.limit})"
    length = placed.max_model_len or info.max_context or 1
    batch = max(1, min(MAX_NUM_SEQS, int(kv_tokens // length)))
    return batch, f"full-length sequences ({length} tokens) one replica's KV cache holds: {batch}"


def _encoder_batch(need: ServiceNeed) -> tuple[int, str]:
    load = need.config.load
    tokens = (load.tokens_per_request if load else None) or need.info.max_context or ENCODER_INPUT_TOKENS
    batch = max(1, TEI_MAX_BATCH_TOKENS // tokens)
    return batch, f"requests of one TEI batch ({TEI_MAX_BATCH_TOKENS} tokens / {tokens} per request)"


def scaling_target(need: ServiceNeed, placed: PlacedService, group: NodeGroup) -> ScalingTarget:
    """The queue target of one autoscaled service (its `targetQueuePerReplica`, else the load model's)."""
    config = need.config
    if config.target_queue_per_replica is not None:
        return ScalingTarget(config.name, config.kind, config.target_queue_per_replica, "targetQueuePerReplica")
    value, basis = _llm_concurrency(need, placed, group) if config.kind == "llm" else _encoder_batch(need)
    return ScalingTarget(config.name, config.kind, float(value), basis)


def group_scaling(group: NodeGroup, needs: Sequence[ServiceNeed]) -> Autoscaling | None:
    by_name = {n.config.name: n for n in needs}
    autoscaled = [(by_name[s.name], s) for s in group.services if by_name[s.name].config.autoscaled]
    if not autoscaled:
        return None
    ceiling = max(math.ceil(need.config.max_replicas / placed.replicas_per_node) for need, placed in autoscaled)
    return Autoscaling(max(group.count, ceiling), tuple(scaling_target(need, placed, group) for need, placed in autoscaled))


def with_scaling(config: StackConfig, needs: Sequence[ServiceNeed], plan: DeploymentPlan) -> DeploymentPlan:
    """The plan with each node group's autoscaling and the stack's schedule (placement's last step)."""
    groups = tuple(dataclasses.replace(g, scaling=group_scaling(g, needs)) for g in plan.node_groups)
    schedule = config.schedule.parsed if config.schedule else None
    return dataclasses.replace(plan, node_groups=groups, schedule=schedule)
