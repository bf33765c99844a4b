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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

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


def nodes_due(plan: DeploymentPlan, instant: datetime) -> dict[str, int]:
    """Nodes each node group runs at `instant`: its count in the schedule's hours (or without one), else 0."""
    awake = plan.schedule is None or plan.schedule.active_at(instant)
    return {g.name: g.count if awake else 0 for g in plan.node_groups}


def due_at(plan: DeploymentPlan, instant: datetime) -> DeploymentPlan:
    """The plan with the nodes due at `instant`: what a cloud without managed groups (its record's `autoscaling`
    false) deploys, each `pulumi up` (the scheduled workflow runs one when the count changes) keeping the hours."""
    due = nodes_due(plan, instant)
    groups = tuple(dataclasses.replace(g, count=due[g.name]) for g in plan.node_groups)
    return dataclasses.replace(plan, node_groups=groups, counted_at=instant)


@dataclass(frozen=True)
class ScheduleState:
    """What a stack's schedule says at one instant: `llm-deploy schedule` (and the scheduled workflow) read this."""

    plan: DeploymentPlan
    at: datetime
    since: datetime | None = None  # the last look (the workflow's previous run): did the schedule change since?

    @property
    def active(self) -> bool:
        return self.plan.schedule is None or self.plan.schedule.active_at(self.at)

    @property
    def deployed_on_schedule(self) -> bool:
        """The stack follows its schedule by `pulumi up` at each change (no managed groups on its cloud to do it)."""
        return self.plan.schedule is not None and not clouds.get(self.plan.cloud).autoscaling

    @property
    def changed(self) -> bool:
        """A wake or sleep fell in (since, at]."""
        schedule = self.plan.schedule
        if schedule is None or self.since is None:
            return False
        return any(t is not None and t <= self.at for t in (schedule.next_wake(self.since), schedule.next_sleep(self.since)))

    def as_json(self) -> dict[str, Any]:
        schedule, at = self.plan.schedule, self.at.astimezone(UTC)
        local = at.astimezone(schedule.zone) if schedule else at
        due = nodes_due(self.plan, at)
        replicas = {s.name: (s.replicas_per_node * due[g.name]) for g in self.plan.node_groups for s in g.services}

        def shown(instant: datetime | None) -> str | None:
            return instant.astimezone(schedule.zone).isoformat() if instant and schedule else None

        return {
            "stack": self.plan.stack, "cloud": self.plan.cloud, "at": at.isoformat(), "local_time": local.isoformat(),
            "timezone": schedule.timezone if schedule else None, "active_hours": schedule.active_hours if schedule else None,
            "active": self.active, "node_groups": due, "replicas": replicas,
            "next_wake": shown(schedule.next_wake(at)) if schedule else None,
            "next_sleep": shown(schedule.next_sleep(at)) if schedule else None,
            "active_hours_this_month": round(schedule.active_hours_in_month(local.year, local.month), 2) if schedule else None,
            "deployed_on_schedule": self.deployed_on_schedule, "changed_since": self.since.isoformat() if self.since else None,
            "changed": self.changed, "deploy_now": self.deployed_on_schedule and self.changed,
        }
