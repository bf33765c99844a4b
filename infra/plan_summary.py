"""The offline plan's result: every resource the program declares (inputs as the engine receives
them, secrets as "[secret]"), the stack outputs, and the node groups placement made. `as_json()` is
the CLI's `plan` contract; `plan_report` the terminal form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.cost import node_group_record
from infra.plan import DeploymentPlan, NodeGroup
from infra.report import Block, Column, Line, Prose, Table, structured


@dataclass(frozen=True)
class PlanSummary:
    stack: str
    resources: tuple[dict[str, Any], ...]  # {"type", "name", "inputs"}, sorted
    outputs: dict[str, Any]
    plan: DeploymentPlan

    @property
    def node_groups(self) -> tuple[NodeGroup, ...]:
        return self.plan.node_groups

    def as_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "resources": list(self.resources), "outputs": self.outputs,
                "node_groups": [node_group_record(g, self.plan) for g in self.node_groups]}


RESOURCE_COLUMNS = (Column("type", lambda r: r["type"], text=True), Column("name", lambda r: r["name"], text=True))


def plan_report(summary: PlanSummary) -> list[Block]:
    """Each resource's type and name, then each output as a line a user can copy."""
    return [Prose(f"Offline plan of stack {summary.stack}: {len(summary.resources)} resources"),
            Table(RESOURCE_COLUMNS, summary.resources),
            *(Prose(group_line(g, summary.plan)) for g in summary.node_groups),
            *(Line(f"{key}: {structured(value)}") for key, value in summary.outputs.items())]


def group_line(group: NodeGroup, plan: DeploymentPlan) -> str:
    """A node group's image, spot policy, fallback offers and rollout batch, in one line."""
    image = f"image {group.image} (pinned)" if group.image else "image unpinned (resolved at the first `pulumi up`, then kept)"
    fallbacks = ", ".join(o.instance_type for o in group.fallback_offers) or "none"
    return (f"Node group {group.name}: {group.count}x {group.offer.instance_type}, {image}, spotPolicy {group.spot_policy}, "
            f"fallback offers: {fallbacks}, rollout {plan.batch_size(group)} at a time")
