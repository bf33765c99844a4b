"""What a change costs: two sets of cost previews (before and after), compared per stack and node group.

Like infracost's diff for Terraform: $/h and $/month before and after, the change in $ and %, and why
each node group changed (its models, its replicas, its instance's price, or a different instance from
the catalog). Pure: the previews come from `cost_preview`, read from wherever the CLI found them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.plan import HOURS_PER_MONTH

# Why a node group's cost changed; "new" and "gone" for a group (or stack) on one side only.
REASONS = ("model", "replicas", "price", "catalog", "new", "gone")


@dataclass(frozen=True)
class Side:
    """One node group as one preview placed it."""

    instance_type: str
    region: str | None
    count: int
    instance_hourly_usd: float
    models: dict[str, str]  # service name -> model

    @property
    def hourly_usd(self) -> float:
        return round(self.instance_hourly_usd * self.count, 6)

    def as_json(self) -> dict[str, Any]:
        return {"instance_type": self.instance_type, "region": self.region, "count": self.count,
                "instance_hourly_usd": self.instance_hourly_usd, "models": self.models, **_money(self.hourly_usd)}


@dataclass(frozen=True)
class GroupChange:
    stack: str
    node_group: str
    before: Side | None
    after: Side | None
    # for a group on one side only: its services' (model, replicas) on the other side, to tell why it moved
    elsewhere: dict[str, tuple[str, int]] | None = None

    @property
    def before_hourly(self) -> float:
        return self.before.hourly_usd if self.before else 0.0

    @property
    def after_hourly(self) -> float:
        return self.after.hourly_usd if self.after else 0.0

    @property
    def reasons(self) -> tuple[str, ...]:
        before, after = self.before, self.after
        if before is None or after is None:
            return self._regrouped(after or before, "new" if before is None else "gone")
        found = []
        if before.models != after.models:
            found.append("model")
        if before.count != after.count:
            found.append("replicas")
        if (before.instance_type, before.region) != (after.instance_type, after.region):
            found.append("catalog")
        elif before.instance_hourly_usd != after.instance_hourly_usd:
            found.append("price")
        return tuple(found)

    def _regrouped(self, side: Side, missing: str) -> tuple[str, ...]:
        """A group on one side only: its services are new (or gone), or changed model or replicas, or were
        regrouped onto other instances with the same models and replicas (the catalog's doing)."""
        other = self.elsewhere or {}
        found = set()
        for name, model in side.models.items():
            if name not in other:
                found.add(missing)
            elif other[name][0] != model:
                found.add("model")
            elif other[name][1] != side.count:
                found.add("replicas")
            else:
                found.add("catalog")
        return tuple(r for r in REASONS if r in found) or (missing,)

    def as_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "node_group": self.node_group,
                "before": self.before.as_json() if self.before else None, "after": self.after.as_json() if self.after else None,
                **_change(self.before_hourly, self.after_hourly), "reasons": list(self.reasons)}


class _Total:
    """Before and after $/h of a whole: the sums over its parts."""

    def parts(self) -> tuple[GroupChange | StackChange, ...]:
        raise NotImplementedError

    @property
    def before_hourly(self) -> float:
        return round(sum(p.before_hourly for p in self.parts()), 6)

    @property
    def after_hourly(self) -> float:
        return round(sum(p.after_hourly for p in self.parts()), 6)


@dataclass(frozen=True)
class StackChange(_Total):
    stack: str
    groups: tuple[GroupChange, ...]
    problems_before: tuple[str, ...]
    problems_after: tuple[str, ...]

    def parts(self) -> tuple[GroupChange, ...]:
        return self.groups

    def as_json(self) -> dict[str, Any]:
        return {"stack": self.stack, **_change(self.before_hourly, self.after_hourly),
                "node_groups": [g.as_json() for g in self.groups],
                "problems_before": list(self.problems_before), "problems_after": list(self.problems_after)}


@dataclass(frozen=True)
class CostDiff(_Total):
    before_label: str
    after_label: str
    stacks: tuple[StackChange, ...]

    def parts(self) -> tuple[StackChange, ...]:
        return self.stacks

    def as_json(self) -> dict[str, Any]:
        return {"before": self.before_label, "after": self.after_label, **_change(self.before_hourly, self.after_hourly),
                "stacks": [s.as_json() for s in self.stacks]}


def _money(hourly: float) -> dict[str, float]:
    return {"hourly_usd": round(hourly, 6), "monthly_usd": round(hourly * HOURS_PER_MONTH, 2)}


def _change(before: float, after: float) -> dict[str, float | None]:
    return {
        "before_hourly_usd": round(before, 6), "after_hourly_usd": round(after, 6),
        "before_monthly_usd": round(before * HOURS_PER_MONTH, 2), "after_monthly_usd": round(after * HOURS_PER_MONTH, 2),
        "change_hourly_usd": round(after - before, 6), "change_monthly_usd": round((after - before) * HOURS_PER_MONTH, 2),
        "change_percent": round((after - before) / before * 100, 1) if before else None,
    }


def _sides(preview: dict[str, Any]) -> dict[str, Side]:
    """Each node group of a preview; older previews lack the per-group region, unit price and models."""
    models = {s["name"]: s["model"] for s in preview.get("services", [])}
    return {
        g["name"]: Side(
            instance_type=g["instance_type"],
            region=g.get("region", preview.get("region")),
            count=g["count"],
            instance_hourly_usd=g.get("instance_hourly_usd", round(g["hourly_usd"] / g["count"], 6)),
            models=g.get("models") or {name: models.get(name, "") for name in g["services"]},
        )
        for g in preview.get("node_groups", [])
    }


def _services(sides: dict[str, Side]) -> dict[str, tuple[str, int]]:
    """Service name -> (model, replicas) over a stack's node groups."""
    return {name: (model, side.count) for side in sides.values() for name, model in side.models.items()}


def diff(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]], before_label: str, after_label: str) -> CostDiff:
    """Compare previews by stack name (`stack` → `cost_preview` result) and, within a stack, by node group name."""
    stacks = []
    for name in sorted(set(before) | set(after)):
        old, new = _sides(before.get(name, {})), _sides(after.get(name, {}))
        services = {"before": _services(old), "after": _services(new)}
        groups = tuple(
            GroupChange(name, group, old.get(group), new.get(group),
                        None if group in old and group in new else services["after" if group in old else "before"])
            for group in [*old, *(g for g in new if g not in old)]
        )
        stacks.append(StackChange(name, groups, tuple(before.get(name, {}).get("problems", ())),
                                  tuple(after.get(name, {}).get("problems", ()))))
    return CostDiff(before_label, after_label, tuple(stacks))


def _signed(value: float, unit: str = "") -> str:
    return f"{value:+,.2f} {unit}".rstrip()


def _percent(value: float | None) -> str:
    return "new" if value is None else f"{value:+.1f} %"


def _where(side: Side | None) -> str:
    return "-" if side is None else f"{side.count}x {side.instance_type} ({side.region})"


def total_line(result: CostDiff) -> str:
    change = result.after_hourly - result.before_hourly
    return (f"Total change: {_signed(change, '$/h')} ({_percent(result.as_json()['change_percent'])}), "
            f"{_signed(change * HOURS_PER_MONTH, '$/month')}: {result.before_hourly:,.2f} -> {result.after_hourly:,.2f} $/h")


def _row(stack: str, group: str, before: str, after: str, before_hourly: float, after_hourly: float, change_percent: float | None,
         why: str) -> list[str]:
    change = after_hourly - before_hourly
    return [stack, group, before, after, f"{before_hourly:,.2f}", f"{after_hourly:,.2f}", f"{before_hourly * HOURS_PER_MONTH:,.2f}",
            f"{after_hourly * HOURS_PER_MONTH:,.2f}", _signed(change), _signed(change * HOURS_PER_MONTH),
            _percent(change_percent), why]


def rows(result: CostDiff) -> list[list[str]]:
    """Per stack with a change: its changed node groups (unchanged ones left out), then the stack's total."""
    out = []
    for stack in result.stacks:
        changed = [g for g in stack.groups if g.reasons or g.before_hourly != g.after_hourly]
        for group in changed:
            out.append(_row(stack.stack, group.node_group, _where(group.before), _where(group.after), group.before_hourly,
                            group.after_hourly, group.as_json()["change_percent"], ", ".join(group.reasons) or "-"))
        if changed:
            out.append(_row(stack.stack, "(stack total)", "", "", stack.before_hourly, stack.after_hourly,
                            stack.as_json()["change_percent"], ""))
    return out


COLUMNS = ("stack", "node group", "before", "after", "$/h before", "$/h after", "$/month before", "$/month after",
           "change $/h", "change $/month", "change %", "why")
NUMERIC = frozenset(COLUMNS[4:11])


def markdown(result: CostDiff) -> str:
    """The PR-comment form: the total change first, then every changed node group."""
    lines = [f"### llm-deploy cost change: `{result.before_label}` -> {result.after_label}", "", f"**{total_line(result)}**", ""]
    changed = rows(result)
    if changed:
        lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "".join("---:|" if c in NUMERIC else "---|" for c in COLUMNS)]
        lines += ["| " + " | ".join(row) + " |" for row in changed]
    else:
        lines.append("No node group changes its cost.")
    for stack in result.stacks:
        for problem in stack.problems_after:
            lines.append(f"\n> :warning: {stack.stack}: {problem}")
    return "\n".join(lines) + "\n"
