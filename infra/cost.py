"""The cost comparison preview: placement's own results as a typed `CostPreview`; `as_json()` is the
CLI's `cost` contract and `infra.cost_report` renders it as a table or as markdown."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from infra import clouds, ollama
from infra.asleep import asleep_node
from infra.catalog import CLOUDS, offer_record
from infra.cheaper import Suggestion, suggestions
from infra.clouds import HOSTED_NAMES as HOSTED
from infra.errors import Problem
from infra.load import load_estimate
from infra.placement import Evaluation, ServiceNeed, fit
from infra.plan import DEFAULT_SPOT_POLICY, HOURS_PER_MONTH, DeploymentPlan, NodeGroup, Offer, PlacedService
from infra.schedule import HOURS_PER_WEEK, Schedule
from infra.throughput import ASSUMPTIONS, ThroughputEstimate, estimate

THROUGHPUT_BASIS = "vllm roofline estimate"


def _money(hourly: float) -> dict[str, float]:
    return {"hourly_usd": round(hourly, 6), "monthly_usd": round(hourly * HOURS_PER_MONTH, 2)}


def monthly(hourly: float | None) -> float | None:
    """$/month for $/h: 730 hours, rounded to the cent."""
    return round(hourly * HOURS_PER_MONTH, 2) if hourly is not None else None


def scheduled_hours_per_month(schedule: Schedule) -> float:
    """Serving hours in an average month: the week's active hours over 730 / 168 weeks (as $/month is 730 hours)."""
    return schedule.weekly_hours * HOURS_PER_MONTH / HOURS_PER_WEEK


def schedule_record(plan: DeploymentPlan) -> dict[str, Any] | None:
    """The schedule and what the stack costs a month serving only in its hours (from `replicas` to the ceiling)."""
    schedule = plan.schedule
    if schedule is None:
        return None
    hours = scheduled_hours_per_month(schedule)
    record = {"timezone": schedule.timezone, "active_hours": schedule.active_hours, "weekly_hours": round(schedule.weekly_hours, 2),
              "monthly_hours": round(hours, 2), "monthly_usd": round(plan.hourly_usd * hours, 2),
              "monthly_usd_max": round(plan.max_hourly_usd * hours, 2), "asleep_node": None}
    node = asleep_node(plan.cloud)
    if node is not None and not schedule.always:  # outside the hours, the droplet that answers for the stack
        asleep_hours = HOURS_PER_MONTH - hours
        record["asleep_node"] = {"instance_type": node.instance_type, "hourly_usd": node.hourly_usd,
                                 "monthly_hours": round(asleep_hours, 2), "monthly_usd": round(node.hourly_usd * asleep_hours, 2),
                                 "source": node.source}
    return record


def scaling_record(group: NodeGroup) -> dict[str, Any]:
    """A node group's autoscaling range (count = max_count without it) and the queue target per service."""
    targets = group.scaling.targets if group.scaling else ()
    return {"max_count": group.max_count, "max_hourly_usd": group.max_hourly_usd,
            "scaling_targets": [{"service": t.service, "target_queue_per_replica": t.target_queue_per_replica, "basis": t.basis}
                                for t in targets]}


def spot_total(hourly: float | None, count: int) -> float | None:
    """`count` nodes at a spot price, or None where the catalog has none."""
    return None if hourly is None else round(hourly * count, 6)


def policy_hourly_usd(group: NodeGroup) -> float | None:
    """What the group bills per hour under its spotPolicy: on-demand at the offer's price; spot at the spot
    price; auto at the spot price but for the nodes its cloud keeps on-demand (`auto_on_demand_nodes`: AWS one),
    while spot capacity lasts (a node that falls back costs the on-demand price); None where spot is asked for
    and the catalog has no spot price."""
    if group.spot_policy == DEFAULT_SPOT_POLICY:
        return group.hourly_usd
    spot = group.offer.spot_hourly_usd
    if spot is None:
        return None
    on_demand = min(clouds.get(group.cloud).auto_on_demand_nodes, group.count) if group.spot_policy == "auto" else 0
    return round(on_demand * group.offer.hourly_usd + (group.count - on_demand) * spot, 6)


def policy_note(plan: DeploymentPlan) -> str:
    """What the policy total means for this plan's policies, in words."""
    policies = {g.spot_policy for g in plan.node_groups}
    parts = ["every node group on-demand" if policies == {DEFAULT_SPOT_POLICY} else "each node group at its spotPolicy's price"]
    if "auto" in policies:
        parts.append("auto: spot prices while spot capacity lasts, but for the nodes the cloud keeps on-demand (AWS: one "
                     "per group); a node that falls back to on-demand costs its on-demand price, so the bill is at most "
                     "the on-demand total")
    if "spot" in policies:
        parts.append("spot: spot prices; nodes the cloud reclaims come back only when spot capacity does")
    if any(g.spot_policy != DEFAULT_SPOT_POLICY and g.spot_hourly_usd is None for g in plan.node_groups):
        parts.append("no total: the catalog has no spot price for a node group that asks for spot")
    return "; ".join(parts)


def price_note(offer: Offer) -> str:
    """Where an offer's price comes from, in words: whose price, which region, which date."""
    listed = f"{offer.list_hourly_usd:g} $/h" if offer.list_hourly_usd is not None else "unknown"
    if offer.price_basis == "specified":
        if "list price (lowest-across-regions)" in offer.source:
            return (f"the project's specified cost table; {offer.cloud} list price: {listed}, the lowest across its regions "
                    f"(none sourced for {offer.region} itself)")
        return f"the project's specified cost table; {offer.cloud} list price in {offer.region}: {listed}"
    if offer.cloud in HOSTED:
        return offer.source  # the hosts, and whether hourlyUsd prices them or they are owned (0 $/h)
    if offer.price_basis == "override":
        return f"the stack's priceOverrides; catalog price in {offer.region}: {listed}"
    if offer.price_basis == "lowest-across-regions":
        return f"{offer.cloud}'s lowest pay-as-you-go price across its regions as of {offer.as_of} (none sourced for {offer.region} itself)"
    return f"{offer.cloud} list price in {offer.region} as of {offer.as_of}"


def price_provenance(offer: Offer) -> dict[str, Any]:
    """The price's source, region and date in words and keys (`price_basis` and `list_hourly_usd`, the
    provider's list price when the price is another, are in every offer record already)."""
    return {"price_source": offer.source, "price_region": offer.region, "price_as_of": offer.as_of, "price_note": price_note(offer)}


def _throughput_json(throughput: ThroughputEstimate | None) -> dict[str, float]:
    if throughput is None:
        return {}
    return {"tokens_per_second": throughput.tokens_per_second, "usd_per_million_tokens": throughput.usd_per_million_tokens}


@dataclass(frozen=True)
class Option:
    """One offer for one service on its own: feasible or why not, what its replicas cost, and for an
    LLM that fits, the throughput estimate."""

    offer: Offer
    feasible: bool
    reason: str
    replicas_hourly_usd: float  # the nodes the service's replicas (or its load) need on this offer
    throughput: ThroughputEstimate | None
    nodes: int = 1
    at_load: dict[str, Any] = dataclasses.field(default_factory=dict)  # infra.load: replicas, tok/s per replica, $/1M at the load
    basis: str = THROUGHPUT_BASIS  # which estimate `throughput` is: vLLM's roofline or Ollama's decode estimate

    @property
    def hourly_usd(self) -> float:
        return _money(self.replicas_hourly_usd)["hourly_usd"]

    @property
    def monthly_usd(self) -> float:
        return _money(self.replicas_hourly_usd)["monthly_usd"]

    @property
    def spot_hourly_usd(self) -> float | None:
        """Its nodes at the offer's spot price (None: no spot price in the catalog)."""
        return spot_total(self.offer.spot_hourly_usd, self.nodes)

    def as_json(self) -> dict[str, Any]:
        record = {**offer_record(self.offer), **price_provenance(self.offer), "feasible": self.feasible, "reason": self.reason,
                  "instance_hourly_usd": self.offer.hourly_usd, "nodes": self.nodes, **_money(self.replicas_hourly_usd),
                  "nodes_spot_hourly_usd": self.spot_hourly_usd, "nodes_spot_monthly_usd": monthly(self.spot_hourly_usd),
                  **self.at_load, **_throughput_json(self.throughput)}
        return record | ({"throughput_is_estimate": True, "throughput_basis": self.basis} if self.throughput else {})


@dataclass(frozen=True)
class Placed:
    """Where placement put a service: its node group, its neighbours there, and for an LLM the estimate."""

    group: NodeGroup
    colocated_with: tuple[str, ...]
    tensor_parallel_size: int
    throughput: ThroughputEstimate | None
    at_load: dict[str, Any] = dataclasses.field(default_factory=dict)  # infra.load, at the node group's price


@dataclass(frozen=True)
class ServiceCost:
    need: ServiceNeed
    placed: Placed | None  # None: no feasible placement for the stack
    options: tuple[Option, ...]  # feasible first, cheapest first

    @property
    def chosen(self) -> Offer | None:
        return self.placed.group.offer if self.placed else None

    @property
    def label(self) -> str:
        """How reports name the weights: `bf16`, or `ollama q4_0, estimated` (its figures are Ollama's estimate)."""
        weights = self.need.weights_format
        return f"ollama {weights}, estimated" if self.need.config.engine == ollama.ENGINE else weights

    def as_json(self) -> dict[str, Any]:
        service = self.need.config
        record: dict[str, Any] = {"name": service.name, "kind": service.kind, "model": service.model, "dtype": self.need.weights_format,
                                  "engine": service.engine if service.kind == "llm" else None,
                                  "replicas": service.replicas, "accelerator": service.accelerator,
                                  "required_gpu_memory_gb": self.need.required_gb,
                                  "min_concurrency": service.min_concurrency if service.kind == "llm" else None,
                                  "load": service.load.model_dump(by_alias=True, exclude_none=True) if service.load else None,
                                  "latency": service.latency.model_dump(by_alias=True, exclude_none=True) if service.latency else None,
                                  "spot_policy_asked": self.need.spot_policy}
        if self.placed is None:
            record["chosen"] = None
        else:
            offer = self.placed.group.offer
            record |= {"chosen": {**offer_record(offer), **price_provenance(offer)}, "node_group": self.placed.group.name,
                       "colocated_with": list(self.placed.colocated_with), "tensor_parallel_size": self.placed.tensor_parallel_size,
                       "spot_policy": self.placed.group.spot_policy,
                       **self.placed.at_load, **_throughput_json(self.placed.throughput)}
            if self.placed.throughput:
                record["throughput_basis"] = _basis(self.need)
        return record | {"options": [o.as_json() for o in self.options]}


@dataclass(frozen=True)
class CloudTotal:
    """The cheapest placement on one cloud, or that there is none."""

    cloud: str
    region: str | None
    hourly_usd: float | None  # None: not feasible there
    instance_types: tuple[str, ...]

    @property
    def feasible(self) -> bool:
        return self.hourly_usd is not None

    @property
    def monthly_usd(self) -> float | None:
        return monthly(self.hourly_usd)

    def as_json(self) -> dict[str, Any]:
        return {"cloud": self.cloud, "feasible": self.feasible, "region": self.region, "total_hourly_usd": self.hourly_usd,
                "total_monthly_usd": self.monthly_usd, "instance_types": list(self.instance_types)}


def image_record(group: NodeGroup) -> dict[str, Any]:
    """The group's machine image: the `nodeImages` pin, or that the first `pulumi up` resolves it and later runs keep it."""
    if group.image is not None:
        return {"id": group.image, "pinned": True, "note": "pinned in nodeImages; `llm-deploy images --update` takes the newest"}
    return {"id": None, "pinned": False, "note": "resolved at the first `pulumi up`, then kept; `llm-deploy images --update` pins it"}


def fallback_record(offer: Offer) -> dict[str, Any]:
    return {"instance_type": offer.instance_type, "vcpus": offer.vcpus, "memory_gb": offer.memory_gb,
            "instance_hourly_usd": offer.hourly_usd, "instance_spot_hourly_usd": offer.spot_hourly_usd}


def node_group_record(group: NodeGroup, plan: DeploymentPlan) -> dict[str, Any]:
    """A node group as `cost` and `plan` JSON show it: what it runs, its disk, its estimated time to healthy
    (the grace is the rollout's bound), how it is rented (policy, spot price, fallback offers), its image and
    its rollout batch."""
    assert group.storage is not None and group.boot is not None, "placement sizes and estimates every node group"
    return {
        "name": group.name,
        "instance_type": group.offer.instance_type,
        "count": group.count,
        "disk_gb": group.disk_gb,
        "services": [s.name for s in group.services],
        **_money(group.hourly_usd),
        "disk_throughput_mibps": group.storage.throughput_mibps,
        "disk_iops": group.storage.iops,
        "instance_store_gb": group.storage.instance_store_gb,
        "local_cache_mount": group.storage.local_cache_mount,
        "estimated_boot_minutes": group.boot.minutes,
        "boot_steps_minutes": {step.name: step.minutes for step in group.boot.steps},
        "health_check_grace_s": group.boot.grace_seconds,
        "region": group.region,
        "instance_hourly_usd": group.offer.hourly_usd,
        "price_note": price_note(group.offer),
        "price_as_of": group.offer.as_of,
        "models": {s.name: s.model for s in group.services},
        "boot_is_estimate": True,
        "spot_policy": group.spot_policy,
        "instance_spot_hourly_usd": group.offer.spot_hourly_usd,
        "spot_hourly_usd": group.spot_hourly_usd,
        "policy_hourly_usd": policy_hourly_usd(group),
        "fallback_offers": [fallback_record(o) for o in group.fallback_offers],
        "image": image_record(group),
        "rollout_batch_size": plan.batch_size(group),  # a new batch healthy within health_check_grace_s, or the update fails
        **scaling_record(group),
    }


@dataclass(frozen=True)
class CostPreview:
    """What a stack costs where placement puts it, what each service could run on instead, and each cloud's total."""

    stack: str
    plan: DeploymentPlan | None
    services: tuple[ServiceCost, ...]
    budget_usd_per_hour: float | None
    by_cloud: tuple[CloudTotal, ...]
    problems: tuple[Problem, ...]
    throughput_note: str = ASSUMPTIONS
    cheaper: tuple[Suggestion, ...] = ()  # infra.cheaper: the few single changes that cut the bill most
    spot_policy: str = DEFAULT_SPOT_POLICY  # the stack's key (services and node groups may differ: see each)

    @property
    def node_groups(self) -> tuple[NodeGroup, ...]:
        return self.plan.node_groups if self.plan else ()

    @property
    def total_hourly_usd(self) -> float | None:
        return self.plan.hourly_usd if self.plan else None

    @property
    def total_monthly_usd(self) -> float | None:
        return monthly(self.total_hourly_usd)

    @property
    def max_hourly_usd(self) -> float | None:
        """$/h with every autoscaled node group at its ceiling (= total_hourly_usd without maxReplicas)."""
        return self.plan.max_hourly_usd if self.plan else None

    @property
    def schedule(self) -> dict[str, Any] | None:
        return schedule_record(self.plan) if self.plan else None

    @property
    def total_spot_hourly_usd(self) -> float | None:
        """Every node at its spot price; None when a node group's offer has none in the catalog."""
        prices = [g.spot_hourly_usd for g in self.node_groups]
        return None if not prices or None in prices else round(sum(p for p in prices if p is not None), 6)

    @property
    def policy_hourly_usd(self) -> float | None:
        """Every node group at its spotPolicy's price (`policy_hourly_usd`); None when one has no price."""
        prices = [policy_hourly_usd(g) for g in self.node_groups]
        return None if not prices or None in prices else round(sum(p for p in prices if p is not None), 6)

    @property
    def spot_note(self) -> str:
        """What the policy total means (`policy_note`), or why there is none."""
        return policy_note(self.plan) if self.plan else "no feasible placement: no policy total"

    def with_problem(self, problem: Problem) -> CostPreview:
        return dataclasses.replace(self, problems=(*self.problems, problem))

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "cloud": self.plan.cloud if self.plan else None,
            "region": self.plan.region if self.plan else None,
            "services": [s.as_json() for s in self.services],
            "node_groups": [node_group_record(g, self.plan) for g in self.plan.node_groups] if self.plan else [],
            "total_hourly_usd": self.total_hourly_usd,
            "total_monthly_usd": self.total_monthly_usd,
            "max_hourly_usd": self.max_hourly_usd,
            "max_monthly_usd": monthly(self.max_hourly_usd),
            "schedule": self.schedule,
            "budget_usd_per_hour": self.budget_usd_per_hour,
            "by_cloud": [c.as_json() for c in self.by_cloud],
            "throughput_note": self.throughput_note,
            "cheaper": [c.as_json(self.total_hourly_usd) for c in self.cheaper] if self.total_hourly_usd is not None else [],
            "spot_note": self.spot_note,
            "problems": [str(p) for p in self.problems],
            "spot_policy": self.spot_policy,
            "total_spot_hourly_usd": self.total_spot_hourly_usd,
            "total_spot_monthly_usd": monthly(self.total_spot_hourly_usd),
            "policy_total_hourly_usd": self.policy_hourly_usd,
            "policy_total_monthly_usd": monthly(self.policy_hourly_usd),
        }


def _estimate(need: ServiceNeed, offer: Offer, placed: PlacedService, nodes: int) -> ThroughputEstimate:
    """An LLM's throughput estimate on `nodes` nodes of `offer`: vLLM's roofline, or Ollama's decode estimate."""
    if placed.engine == ollama.ENGINE:
        return ollama.estimate(need.info, offer, nodes)
    return estimate(need.info, need.config.dtype, offer, placed.tensor_parallel_size, nodes * placed.replicas_per_node,
                    placed.replicas_per_node)


def _basis(need: ServiceNeed) -> str:
    return ollama.THROUGHPUT_BASIS if need.config.engine == ollama.ENGINE else THROUGHPUT_BASIS


def _option(need: ServiceNeed, offer: Offer) -> Option:
    fitted = fit([need], offer)
    nodes = fitted.count if fitted.feasible else need.config.replicas
    throughput, at_load = None, {}
    if fitted.services:
        placed = fitted.services[0]
        at_load = load_estimate(need, placed, offer, nodes, offer.hourly_usd * nodes)
        if need.config.kind == "llm":
            throughput = _estimate(need, offer, placed, nodes)
    return Option(offer, fitted.feasible, fitted.reason or "fits", offer.hourly_usd * nodes, throughput, nodes, at_load,
                  _basis(need))


def _options(evaluation: Evaluation, need: ServiceNeed) -> tuple[Option, ...]:
    options = [_option(need, o) for result in evaluation.by_cloud.values() for o in result.offers]
    return tuple(sorted(options, key=lambda o: (not o.feasible, o.hourly_usd, o.offer.cloud, o.offer.instance_type)))


def _placed(plan: DeploymentPlan | None, need: ServiceNeed) -> Placed | None:
    if plan is None:
        return None
    name = need.config.name
    group = next(g for g in plan.node_groups if any(s.name == name for s in g.services))
    service = next(s for s in group.services if s.name == name)
    throughput = None
    if need.config.kind == "llm":
        throughput = _estimate(need, group.offer, service, group.count)
    return Placed(group, tuple(s.name for s in group.services if s.name != name), service.tensor_parallel_size, throughput,
                  load_estimate(need, service, group.offer, group.count, group.hourly_usd))


def cost_preview(evaluation: Evaluation) -> CostPreview:
    config, plan = evaluation.config, evaluation.plan
    by_cloud = []
    for cloud in (c for c in (*CLOUDS, *HOSTED) if c in evaluation.by_cloud):  # the stack's own hosts beside the clouds
        result = evaluation.by_cloud[cloud]
        chosen = result.plan
        by_cloud.append(CloudTotal(cloud, result.region, chosen.hourly_usd if chosen else None,
                                   tuple(f.offer.instance_type for f, _ in chosen.groups) if chosen else ()))
    services = tuple(ServiceCost(need, _placed(plan, need), _options(evaluation, need)) for need in evaluation.needs)
    on_ollama = any(s.engine == ollama.ENGINE for s in config.services)
    return CostPreview(config.stack, plan, services, config.budget_usd_per_hour, tuple(by_cloud), evaluation.problems,
                       throughput_note=f"{ASSUMPTIONS}; {ollama.assumptions()}" if on_ollama else ASSUMPTIONS,
                       cheaper=tuple(suggestions(evaluation)), spot_policy=config.spot_policy)
