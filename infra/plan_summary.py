"""The offline plan's result: every resource the program declares (inputs as the engine receives
them, secrets as "[secret]"), the stack outputs, and the node groups placement made. `as_json()` is
the CLI's `plan` contract; `plan_report` the terminal form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.cost import node_group_record
from infra.plan import NodeGroup
from infra.report import Block, Column, Line, Prose, Table, structured


@dataclass(frozen=True)
class PlanSummary:
    stack: str
    resources: tuple[dict[str, Any], ...]  # {"type", "name", "inputs"}, sorted
    outputs: dict[str, Any]
    node_groups: tuple[NodeGroup, ...]

    def as_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "resources": list(self.resources), "outputs": self.outputs,
                "node_groups": [node_group_record(g) for g in self.node_groups]}


RESOURCE_COLUMNS = (Column("type", lambda r: r["type"], text=True), Column("name", lambda r: r["name"], text=True))


def plan_report(summary: PlanSummary) -> list[Block]:
    """Each resource's type and name, then each output as a line a user can copy."""
    return [Prose(f"Offline plan of stack {summary.stack}: {len(summary.resources)} resources"),
            Table(RESOURCE_COLUMNS, summary.resources),
            *(Line(f"{key}: {structured(value)}") for key, value in summary.outputs.items())]
