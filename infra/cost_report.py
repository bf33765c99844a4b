"""The cost preview for people: the terminal table (as `infra.report` blocks) and the markdown of a
pull-request comment. Both read the typed `CostPreview`, never its JSON."""

from __future__ import annotations

from collections.abc import Callable

from infra.catalog import CLOUDS
from infra.clouds import HOSTED_NAMES
from infra.cost import CostPreview, Option, ServiceCost, monthly, policy_hourly_usd, price_note
from infra.plan import Offer
from infra.report import Block, Column, Prose, Table, usd

CHOSEN_MARK = "*"
NO_FIT_MARK = "x"
ALTERNATIVES_PER_CLOUD = 3


def gpu_text(offer: Offer) -> str:
    return f"{offer.gpu_count}x {offer.gpu}" if offer.gpu else "CPU"


def _same_offer(a: Offer, b: Offer | None) -> bool:
    return b is not None and (a.cloud, a.instance_type, a.region) == (b.cloud, b.instance_type, b.region)


def _capacity_gb(service: ServiceCost, offer: Offer) -> float:
    """The memory the service would sit in: the instance's RAM on CPU, its GPUs' memory otherwise."""
    if service.need.config.accelerator == "cpu":
        return offer.memory_gb
    return offer.gpu_count * offer.gpu_memory_gb if offer.gpu else 0


def shown_options(service: ServiceCost) -> list[Option]:
    """Per cloud its cheapest feasible offers (and the chosen one, which shares a node with other
    services and may not be among them), or the offer that comes closest (the most memory) to say
    why nothing there fits."""
    shown = []
    for cloud in (*CLOUDS, *HOSTED_NAMES):
        ranked = [o for o in service.options if o.offer.cloud == cloud]
        feasible = [o for o in ranked if o.feasible]
        cheapest = feasible[:ALTERNATIVES_PER_CLOUD]
        closest = [max(ranked, key=lambda o: (_capacity_gb(service, o.offer), -o.hourly_usd))] if ranked else []
        shown += [o for o in feasible if o in cheapest or _same_offer(o.offer, service.chosen)] or closest
    return shown


def _memory(service: ServiceCost) -> str:
    return "RAM" if service.need.config.accelerator == "cpu" else "GPU memory"


def _fit_text(service: ServiceCost, option: Option) -> str:
    """Why an offer does not fit, or how much of its memory the service takes."""
    if not option.feasible:
        return option.reason
    return f"uses {service.need.required_gb:g} of {_capacity_gb(service, option.offer):g} GB {_memory(service)}"


def _cost_columns(service: ServiceCost) -> list[Column]:
    def mark(o: Option) -> str:
        return CHOSEN_MARK if _same_offer(o.offer, service.chosen) else ("" if o.feasible else NO_FIT_MARK)

    columns = [
        Column("", mark),
        Column("cloud", lambda o: o.offer.cloud),
        Column("instance", lambda o: o.offer.instance_type),
        Column("region", lambda o: o.offer.region, wide=True),
        Column("GPU", lambda o: gpu_text(o.offer), text=True),
        Column("GPU GB", lambda o: f"{o.offer.gpu_count * o.offer.gpu_memory_gb:g}", numeric=True, wide=True),
        Column("vCPU", lambda o: str(o.offer.vcpus), numeric=True, wide=True),
        Column("RAM GB", lambda o: f"{o.offer.memory_gb:g}", numeric=True, wide=True),
        Column("$/h", lambda o: usd(o.hourly_usd), numeric=True),
        Column("spot $/h", lambda o: usd(o.spot_hourly_usd), numeric=True, optional=True),
        Column("$/month", lambda o: usd(o.monthly_usd), numeric=True, optional=True),
    ]
    if service.need.config.kind == "llm":
        columns += [
            Column("tok/s", lambda o: f"{o.throughput.tokens_per_second:,.0f}" if o.throughput else "-", numeric=True),
            Column("$/1M tok", lambda o: f"{o.throughput.usd_per_million_tokens:.3f}" if o.throughput else "-", numeric=True),
        ]
    return columns + _load_columns(service) + [Column("fit", lambda o: _fit_text(service, o), text=True, wide=True)]


def _number(key: str, spec: str) -> Callable[[Option], str]:
    return lambda o: "-" if o.at_load.get(key) is None else format(o.at_load[key], spec)


def _load_columns(service: ServiceCost) -> list[Column]:
    """At the service's load (or the reference point without one): replicas, per-replica tokens/s, latency, $/1M tokens."""
    columns = [Column("repl", _number("replicas_needed", "d"), numeric=True, optional=True),
               Column("tok/s/repl", _number("tokens_per_second_per_replica", ",.0f"), numeric=True, wide=True)]
    if service.need.config.kind == "llm":
        return columns + [Column("ms/tok", _number("time_per_output_token_ms", ".1f"), numeric=True, optional=True),
                          Column("$/1M out", _number("usd_per_million_output_tokens", ".3f"), numeric=True, wide=True)]
    return columns + [Column("$/1M emb", _number("usd_per_million_embedded_tokens", ".4f"), numeric=True, optional=True)]


def _hosts_line(preview: CostPreview) -> list[str]:
    """A stack on its own hosts: their cost beside the cheapest cloud's for the same services."""
    plan = preview.plan
    if plan is None or plan.cloud not in HOSTED_NAMES:
        return []
    clouds = [c for c in preview.by_cloud if c.cloud not in HOSTED_NAMES and c.feasible]
    hosts = f"Your hosts: {usd(preview.total_hourly_usd)} $/h, {usd(preview.total_monthly_usd)} $/month"
    if not clouds:
        return [f"{hosts}; no cloud fits the same services"]
    cheapest = min(clouds, key=lambda c: c.hourly_usd or 0.0)
    cloud = f"{cheapest.cloud} {cheapest.region} {usd(cheapest.hourly_usd)} $/h, {usd(cheapest.monthly_usd)} $/month"
    return [f"{hosts}; the cheapest cloud for the same services: {cloud}"]


def _cheaper_lines(preview: CostPreview) -> list[str]:
    """The changes that would cut the bill, each with its new $/h, then the spot policy and its totals."""
    total = preview.total_hourly_usd or 0.0
    return [f"Cheaper: {c.field}: {c.value}: {usd(c.hourly_usd)} $/h (-{usd(total - c.hourly_usd)}) on {c.placement}"
            for c in preview.cheaper] + _spot_lines(preview)


def _spot_lines(preview: CostPreview) -> list[str]:
    """The stack's spotPolicy, each node group's, and the totals at spot prices and at the policy in force."""
    groups = "".join(f"; {g.name} {g.spot_policy}" for g in preview.node_groups)
    line = (f"Spot policy: stack {preview.spot_policy}{groups}. Spot total: {usd(preview.total_spot_hourly_usd)} $/h (every node at "
            f"spot prices); policy total: {usd(preview.policy_hourly_usd)} $/h, {usd(monthly(preview.policy_hourly_usd))} $/month "
            f"({preview.spot_note}); placement and the budget use on-demand prices")
    return [line]


def cost_table(preview: CostPreview, wide: bool = False) -> list[Block]:
    """Per service a table of its offers, then the legend and the totals."""
    blocks: list[Block] = []
    for service in preview.services:
        config = service.need.config
        blocks.append(Prose(f"{config.name} ({config.kind}: {config.model}, {service.label}, x{config.replicas}) "
                            f"needs {service.need.required_gb} GB {_memory(service)}"))
        shown = shown_options(service)
        blocks.append(Table(_cost_columns(service), shown))
        if not wide:
            blocks += [Prose(f"  {NO_FIT_MARK} {o.offer.cloud} {o.offer.instance_type}: {o.reason}") for o in shown if not o.feasible]
    blocks.append(Prose(f"{CHOSEN_MARK} placement's choice   {NO_FIT_MARK} nothing on that cloud fits   $: this service's replicas alone"))
    if not wide:
        blocks.append(Prose("--wide adds region, GPU memory, vCPU, RAM and how each offer fits; the regions are in 'By cloud'"))
    plan = preview.plan
    where = f"{plan.cloud} {plan.region}" if plan else "no feasible placement"
    groups = "; ".join(f"{g.count}x {g.offer.instance_type} ({'+'.join(s.name for s in g.services)})" for g in preview.node_groups)
    blocks += [Prose(f"Stack {preview.stack}: {where}: {groups}"),
               Prose(f"Total: {usd(preview.total_hourly_usd)} $/h, {usd(preview.total_monthly_usd)} $/month "
                     "(each node billed once, whatever it serves)")]
    blocks += [Prose(line) for line in scaling_lines(preview)]
    blocks += [Prose(f"Price of {g.offer.instance_type} ({g.name}): {price_note(g.offer)}") for g in preview.node_groups]
    comparison = ", ".join(
        " ".join(filter(None, (c.cloud, c.region, usd(c.hourly_usd), "$/h"))) if c.feasible else f"{c.cloud} not feasible"
        for c in preview.by_cloud
    )
    blocks += [Prose(f"By cloud (cheapest placement on each): {comparison}"), *map(Prose, _hosts_line(preview)),
               *map(Prose, _cheaper_lines(preview)),
               Prose(f"tok/s and $/1M tok are estimates: {preview.throughput_note}"),
               Prose("repl, ms/tok and $/1M out/emb: replicas, time per output token and $ per 1M tokens at each service's "
                     "load (estimates; without a load: the reference point)")]
    return blocks


def scaling_lines(preview: CostPreview) -> list[str]:
    """The autoscaling $/h range and what the schedule's hours cost a month, where the stack has them."""
    lines = []
    if preview.plan and preview.max_hourly_usd != preview.total_hourly_usd:
        ranges = "; ".join(f"{g.name} {g.count}-{g.max_count} nodes" for g in preview.node_groups if g.max_count != g.count)
        lines.append(f"Autoscaling: {usd(preview.total_hourly_usd)} to {usd(preview.max_hourly_usd)} $/h ({ranges}), "
                     f"{usd(preview.total_monthly_usd)} to {usd(monthly(preview.max_hourly_usd))} $/month around the clock")
    schedule = preview.schedule
    if schedule:
        at_max = (f" to {usd(schedule['monthly_usd_max'])}" if schedule["monthly_usd_max"] != schedule["monthly_usd"] else "")
        lines.append(f"Schedule {schedule['active_hours']} ({schedule['timezone']}): {schedule['weekly_hours']:g} h a week, "
                     f"{schedule['monthly_hours']:.1f} h a month: {usd(schedule['monthly_usd'])}{at_max} $/month "
                     f"for the active hours only (0 nodes outside them)")
        asleep = schedule["asleep_node"]
        if asleep:
            lines.append(f"Asleep: one {asleep['instance_type']} droplet answers 503 with the wake-up time, {asleep['hourly_usd']:g} $/h "
                         f"x {asleep['monthly_hours']:.1f} h = {usd(asleep['monthly_usd'])} $/month")
    return lines


def cost_markdown(preview: CostPreview) -> str:
    """The PR-comment form of the preview."""
    lines = [f"### llm-deploy cost preview: `{preview.stack}`", ""]
    plan = preview.plan
    if plan:
        lines.append(f"**{plan.cloud} {plan.region}**: **{usd(preview.total_hourly_usd)} $/h**, {usd(preview.total_monthly_usd)} $/month")
    else:
        lines.append("**No feasible placement.**")
    lines += ["", "| node group | instance | GPU | nodes | services | $/h | $/month | spot $/h | spotPolicy | policy $/h |",
              "|---|---|---|---:|---|---:|---:|---:|---|---:|"]
    for group in preview.node_groups:
        lines.append(f"| {group.name} | {group.offer.instance_type} | {gpu_text(group.offer)} | {group.count} | "
                     f"{', '.join(s.name for s in group.services)} | {usd(group.hourly_usd)} | {usd(monthly(group.hourly_usd))} | "
                     f"{usd(group.spot_hourly_usd)} | {group.spot_policy} | {usd(policy_hourly_usd(group))} |")
    if scaled := scaling_lines(preview):
        lines += [""] + [f"- {line}" for line in scaled]
    lines += [""] + [f"- price of `{g.offer.instance_type}` ({g.name}): {price_note(g.offer)}" for g in preview.node_groups]
    lines += ["", "| service | kind | model | needs (GB) | tok/s (est.) | $/1M tok (est.) |", "|---|---|---|---:|---:|---:|"]
    for service in preview.services:
        config, throughput = service.need.config, service.placed.throughput if service.placed else None
        tps = throughput.tokens_per_second if throughput else None
        per_million = throughput.usd_per_million_tokens if throughput else None
        lines.append(f"| {config.name} | {config.kind} | `{config.model}` ({service.label}) | {service.need.required_gb} | "
                     f"{f'{tps:,.0f}' if tps else '-'} | {f'{per_million:.3f}' if per_million else '-'} |")
    lines += ["", "| cloud | cheapest placement | $/h | $/month |", "|---|---|---:|---:|"]
    for c in preview.by_cloud:
        lines.append(f"| {c.cloud} | {', '.join(c.instance_types) or 'not feasible'} ({c.region or '-'}) | "
                     f"{usd(c.hourly_usd)} | {usd(c.monthly_usd)} |")
    lines += [""] + [f"- {line}" for line in (*_hosts_line(preview), *_cheaper_lines(preview))]
    lines += ["", f"Throughput and $/1M tokens are estimates: {preview.throughput_note}."]
    for problem in preview.problems:
        lines.append(f"\n> :warning: {problem}")
    return "\n".join(lines) + "\n"
