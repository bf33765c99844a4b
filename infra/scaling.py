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
A cloud whose scaler cannot read the queue (its record's `queue_metric` false) scales on requests per node: the
requests/s one replica serves at the load (an LLM needs its `load` there, `scaling_problems`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from infra import clouds
from infra.config import StackConfig, problem
from infra.errors import Problem
from infra.plan import Autoscaling, DeploymentPlan, NodeGroup, PlacedService, ScalingTarget
from infra.throughput import MAX_NUM_SEQS, encoder_tokens_per_second, kv_cache_tokens, replica_capacity

if TYPE_CHECKING:
    from infra.placement import ServiceNeed

TEI_MAX_BATCH_TOKENS = 16384  # TEI 1.9's --max-batch-tokens default (router/src/main.rs), which bootstrap keeps
ENCODER_INPUT_TOKENS = 512  # an encoder's longest input when the registry does not say (BERT-style models)


def _llm_concurrency(need: ServiceNeed, placed: PlacedService, group: NodeGroup) -> tuple[int, str, float | None]:
    """(batch, how it was found, requests/s one replica serves at the load; None without a load)."""
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
        return (batch, f"one replica's batch at the service's load ({batch} sequences, capped by {capacity.limit})",
                round(capacity.requests_per_second, 3))
    length = placed.max_model_len or info.max_context or 1
    batch = max(1, min(MAX_NUM_SEQS, int(kv_tokens // length)))
    return batch, f"full-length sequences ({length} tokens) one replica's KV cache holds: {batch}", None


def _encoder_batch(need: ServiceNeed, group: NodeGroup) -> tuple[int, str, float]:
    load = need.config.load
    tokens = (load.tokens_per_request if load else None) or need.info.max_context or ENCODER_INPUT_TOKENS
    batch = max(1, TEI_MAX_BATCH_TOKENS // tokens)
    per_second = encoder_tokens_per_second(need.info, group.offer, need.config.accelerator) / tokens
    return batch, f"requests of one TEI batch ({TEI_MAX_BATCH_TOKENS} tokens / {tokens} per request)", round(per_second, 3)


def scaling_target(need: ServiceNeed, placed: PlacedService, group: NodeGroup) -> ScalingTarget:
    """The queue target of one autoscaled service (its `targetQueuePerReplica`, else the load model's)."""
    config = need.config
    value, basis, per_second = _llm_concurrency(need, placed, group) if config.kind == "llm" else _encoder_batch(need, group)
    if config.target_queue_per_replica is not None:
        value, basis = config.target_queue_per_replica, "targetQueuePerReplica"
    return ScalingTarget(config.name, config.kind, float(value), basis, per_second)


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


def scaling_problems(config: StackConfig, needs: Sequence[ServiceNeed], plan: DeploymentPlan) -> list[Problem]:
    """A cloud that scales on requests per node (no queue metric reaches its scaler: its record's `queue_metric`)
    needs each autoscaled LLM's `load`, the only way to know what one replica serves."""
    cloud = clouds.get(plan.cloud)
    if cloud.queue_metric or not cloud.autoscaling:  # not autoscaling: config refuses maxReplicas itself
        return []
    without = {t.service for g in plan.node_groups if g.scaling for t in g.scaling.targets if t.requests_per_second is None}
    return [problem(config.source, f"{n.field}.load", f"{plan.cloud} scales on requests per node (its nodes publish no queue "
                    "metric there): the target follows from the load model", "set load: {requestsPerSecond, promptTokens, "
                    "outputTokens}") for n in needs if n.config.name in without]
