"""The cost comparison preview: placement's own results, shaped as the CLI's `cost` contract."""

from __future__ import annotations

from typing import Any

from infra.catalog import CLOUDS, offer_record
from infra.cheaper import SPOT_NOTE, suggestions
from infra.load import load_estimate
from infra.placement import Evaluation, ServiceNeed, fit
from infra.plan import HOURS_PER_MONTH, DeploymentPlan, NodeGroup, Offer
from infra.throughput import ASSUMPTIONS, estimate


def _money(hourly: float) -> dict[str, float]:
    return {"hourly_usd": round(hourly, 6), "monthly_usd": round(hourly * HOURS_PER_MONTH, 2)}


def price_note(offer: Offer) -> str:
    """Where an offer's price comes from, in words: whose price, which region, which date."""
    listed = f"{offer.list_hourly_usd:g} $/h" if offer.list_hourly_usd is not None else "unknown"
    if offer.price_basis == "specified":
        if "list price (lowest-across-regions)" in offer.source:
            return (f"the project's specified cost table; {offer.cloud} list price: {listed}, the lowest across its regions "
                    f"(none sourced for {offer.region} itself)")
        return f"the project's specified cost table; {offer.cloud} list price in {offer.region}: {listed}"
    if offer.price_basis == "override":
        return f"the stack's priceOverrides; catalog price in {offer.region}: {listed}"
    if offer.price_basis == "lowest-across-regions":
        return f"{offer.cloud}'s lowest pay-as-you-go price across its regions as of {offer.as_of} (none sourced for {offer.region} itself)"
    return f"{offer.cloud} list price in {offer.region} as of {offer.as_of}"


def price_provenance(offer: Offer) -> dict[str, Any]:
    """The price's source, region and date in words and keys (`price_basis` and `list_hourly_usd`, the
    provider's list price when the price is another, are in every offer record already)."""
    return {"price_source": offer.source, "price_region": offer.region, "price_as_of": offer.as_of, "price_note": price_note(offer)}


def _option(need: ServiceNeed, offer: Offer) -> dict[str, Any]:
    """One offer for one service on its own: feasible or why not, and what it costs."""
    fitted = fit([need], offer)
    nodes = fitted.count if fitted.feasible else need.config.replicas
    record = {
        **offer_record(offer),
        **price_provenance(offer),
        "feasible": fitted.feasible,
        "reason": fitted.reason or "fits",
        "instance_hourly_usd": offer.hourly_usd,
        "nodes": nodes,
        **_money(offer.hourly_usd * nodes),
    }
    if fitted.services:
        placed = fitted.services[0]
        record |= load_estimate(need, placed, offer, nodes, offer.hourly_usd * nodes)
        if need.config.kind == "llm":
            throughput = estimate(need.info, need.config.dtype, offer, placed.tensor_parallel_size,
                                  nodes * placed.replicas_per_node, placed.replicas_per_node)
            record["tokens_per_second"] = throughput.tokens_per_second
            record["usd_per_million_tokens"] = throughput.usd_per_million_tokens
            record["throughput_is_estimate"] = True
    return record


def _options(evaluation: Evaluation, need: ServiceNeed) -> list[dict[str, Any]]:
    options = [_option(need, o) for result in evaluation.by_cloud.values() for o in result.offers]
    return sorted(options, key=lambda o: (not o["feasible"], o["hourly_usd"], o["cloud"], o["instance_type"]))


def _chosen(plan: DeploymentPlan | None, need: ServiceNeed) -> dict[str, Any]:
    """Where placement put the service: its offer, node group, neighbours, and for an LLM the estimate."""
    if plan is None:
        return {"chosen": None}
    name = need.config.name
    group = next(g for g in plan.node_groups if any(s.name == name for s in g.services))
    service = next(s for s in group.services if s.name == name)
    chosen: dict[str, Any] = {
        "chosen": {**offer_record(group.offer), **price_provenance(group.offer)},
        "node_group": group.name,
        "colocated_with": [s.name for s in group.services if s.name != name],
        "tensor_parallel_size": service.tensor_parallel_size,
        **load_estimate(need, service, group.offer, group.count, group.hourly_usd),
    }
    if need.config.kind == "llm":
        throughput = estimate(need.info, need.config.dtype, group.offer, service.tensor_parallel_size,
                              group.count * service.replicas_per_node, service.replicas_per_node)
        chosen["tokens_per_second"] = throughput.tokens_per_second
        chosen["usd_per_million_tokens"] = throughput.usd_per_million_tokens
    return chosen


def node_group_record(group: NodeGroup) -> dict[str, Any]:
    """A node group as `cost` and `plan` JSON show it: what it runs, its disk, and its estimated time to healthy."""
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
    }


def cost_preview(evaluation: Evaluation) -> dict[str, Any]:
    config, plan = evaluation.config, evaluation.plan
    services = []
    for need in evaluation.needs:
        services.append({
            "name": need.config.name,
            "kind": need.config.kind,
            "model": need.config.model,
            "dtype": need.config.dtype,
            "replicas": need.config.replicas,
            "accelerator": need.config.accelerator,
            "required_gpu_memory_gb": need.required_gb,
            "min_concurrency": need.config.min_concurrency if need.config.kind == "llm" else None,
            "load": need.config.load.model_dump(by_alias=True, exclude_none=True) if need.config.load else None,
            "latency": need.config.latency.model_dump(by_alias=True, exclude_none=True) if need.config.latency else None,
            **_chosen(plan, need),
            "options": _options(evaluation, need),
        })
    total = plan.hourly_usd if plan else None
    return {
        "stack": config.stack,
        "cloud": plan.cloud if plan else None,
        "region": plan.region if plan else None,
        "services": services,
        "node_groups": [node_group_record(g) for g in (plan.node_groups if plan else ())],
        "total_hourly_usd": total,
        "total_monthly_usd": round(total * HOURS_PER_MONTH, 2) if total is not None else None,
        "budget_usd_per_hour": config.budget_usd_per_hour,
        "by_cloud": [
            {
                "cloud": cloud,
                "feasible": result.plan is not None,
                "region": result.region,
                "total_hourly_usd": result.plan.hourly_usd if result.plan else None,
                "total_monthly_usd": round(result.plan.hourly_usd * HOURS_PER_MONTH, 2) if result.plan else None,
                "instance_types": [f.offer.instance_type for f, _ in result.plan.groups] if result.plan else [],
            }
            for cloud, result in ((c, evaluation.by_cloud[c]) for c in CLOUDS)
        ],
        "throughput_note": ASSUMPTIONS,
        "cheaper": [s.as_json(total) for s in suggestions(evaluation)] if total is not None else [],
        "spot_note": SPOT_NOTE,
        "problems": list(evaluation.problems),
    }
