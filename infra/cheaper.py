"""What would make a stack cheaper: the few single changes that cut its bill most and still place.

Each change is tried by placement itself: a service-level change (a shorter maxModelLen, fp8, one
full-length sequence of KV cache, no GPU pin, the encoder on the other accelerator, which lets it
share a node or leave one) on the chosen cloud and region; another region of the pinned cloud; another
cloud. Spot is how the nodes are rented (`spotPolicy`, the user's choice of risk), not a change of placement,
so it is not suggested; the preview shows every offer's spot price beside its on-demand price.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from infra import clouds
from infra.config import ServiceConfig, StackConfig
from infra.models import SIXTEEN_BIT, served_dtype
from infra.placement import Evaluation, FitMemo, RegionPlan, plan_region, service_need, stack_offers
from infra.plan import HOURS_PER_MONTH, DeploymentPlan

MAX_SUGGESTIONS = 4
MIN_MAX_MODEL_LEN = 2048
VARIANT_INDEX = 10_000  # past any service index (a stack has at most three services)


@dataclass(frozen=True)
class Suggestion:
    field: str  # the key to change, as in a problem: "services[0].maxModelLen", "region", "cloud"
    value: str  # what to set it to
    hourly_usd: float  # the whole stack's $/h after the change
    placement: str  # where it would then run

    def as_json(self, current_hourly_usd: float) -> dict[str, Any]:
        return {"change": f"{self.field}: {self.value}", "field": self.field, "value": self.value,
                "hourly_usd": round(self.hourly_usd, 6), "monthly_usd": round(self.hourly_usd * HOURS_PER_MONTH, 2),
                "saving_hourly_usd": round(current_hourly_usd - self.hourly_usd, 6), "placement": self.placement}


def _where(plan: RegionPlan) -> str:
    return f"{plan.cloud} {plan.region}: " + ", ".join(f"{count}x {f.offer.instance_type}" for f, count in plan.groups)


def _service_changes(index: int, service: ServiceConfig, max_model_len: int | None) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(field, value, update) for the changes worth trying on one service."""
    field = f"services[{index}]"
    if service.kind == "llm":
        info = service_need(index, service).info
        load = service.load
        shorter = max(MIN_MAX_MODEL_LEN, (max_model_len or 0) // 2)
        if max_model_len and shorter < max_model_len and (load is None or load.prompt_tokens + load.output_tokens <= shorter):
            yield f"{field}.maxModelLen", str(shorter), {"max_model_len": shorter}
        vllm = service.engine == "vllm"  # an Ollama tag's quantisation is its own: no dtype to change
        if vllm and service.dtype in SIXTEEN_BIT and served_dtype(info, service.dtype) in SIXTEEN_BIT and served_dtype(info, "fp8") == "fp8":
            yield f"{field}.dtype", "fp8", {"dtype": "fp8"}
        if service.min_concurrency > 1:
            yield f"{field}.minConcurrency", "1", {"min_concurrency": 1}
    else:
        other = "gpu" if service.accelerator == "cpu" else "cpu"
        yield f"{field}.accelerator", other, {"accelerator": other, "gpu": None, "gpu_count": None}
    if service.gpu or service.gpu_count:
        yield f"{field}.gpu", "(none: any GPU)", {"gpu": None, "gpu_count": None}


def suggestions(evaluation: Evaluation) -> list[Suggestion]:
    """The cheapest few single changes, cheapest first; none when the stack does not place."""
    config, plan = evaluation.config, evaluation.plan
    if plan is None:
        return []
    chosen = evaluation.by_cloud[plan.cloud]
    found: list[Suggestion] = []
    memo: FitMemo = {}  # shared by every variant: a changed service gets an index of its own, the others keep their fits
    changes = [(need, change) for need in evaluation.needs
               for change in _service_changes(need.index, need.config, need.max_model_len)]
    if clouds.get(plan.cloud).offers == "hosts":
        changes = []  # plan_region would not count the hosts, each usable once: only other clouds are compared
    for variant, (original, (field, value, update)) in enumerate(changes):
        changed = replace(service_need(original.index, original.config.model_copy(update=update), original.spot_policy), index=VARIANT_INDEX * (variant + 1))
        needs = [changed if n is original else n for n in evaluation.needs]
        better = plan_region(needs, plan.cloud, plan.region, chosen.offers, memo)
        if better is not None and better.hourly_usd < plan.hourly_usd:
            found.append(Suggestion(field, value, better.hourly_usd, _where(better)))
    found += _elsewhere(config, evaluation, plan, memo)
    best: dict[str, Suggestion] = {}
    for suggestion in sorted(found, key=lambda s: s.hourly_usd):
        best.setdefault(suggestion.field, suggestion)
    return list(best.values())[:MAX_SUGGESTIONS]


def _elsewhere(config: StackConfig, evaluation: Evaluation, plan: DeploymentPlan, memo: FitMemo) -> list[Suggestion]:
    """Another cloud (already placed for the comparison), or another region of the pinned cloud: the region where
    the chosen instance types cost least, placed there afresh."""
    found = []
    if config.cloud != "auto":
        cheapest = min((r.plan for c, r in evaluation.by_cloud.items() if r.plan and c != config.cloud),
                       key=lambda p: p.hourly_usd, default=None)
        if cheapest and cheapest.hourly_usd < plan.hourly_usd:
            found.append(Suggestion("cloud", f"{cheapest.cloud} (region {cheapest.region})", cheapest.hourly_usd, _where(cheapest)))
    if config.region:
        offers = [o for o in stack_offers(config) if o.cloud == plan.cloud]
        price = {(o.region, o.instance_type): o.hourly_usd for o in offers}
        totals = {}
        for region in dict.fromkeys(o.region for o in offers):
            if region != plan.region and all((region, g.offer.instance_type) in price for g in plan.node_groups):
                totals[region] = sum(price[region, g.offer.instance_type] * g.count for g in plan.node_groups)
        region = min(totals, key=lambda r: totals[r], default=None)
        if region is not None and totals[region] < plan.hourly_usd:
            other = plan_region(evaluation.needs, plan.cloud, region, [o for o in offers if o.region == region], memo)
            if other is not None and other.hourly_usd < plan.hourly_usd:
                found.append(Suggestion("region", region, other.hourly_usd, _where(other)))
    return found
