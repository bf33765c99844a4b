"""Typed results to the edge: the cost preview and the plan summary are frozen dataclasses whose
`as_json()` is what the CLI prints, and whose renderers (table blocks, markdown) read their fields."""

from __future__ import annotations

import dataclasses
import json

import pytest

from infra.config import load_raw
from infra.cost import CostPreview, cost_preview
from infra.cost_report import cost_markdown, cost_table
from infra.errors import Problem
from infra.placement import evaluate, load_config
from infra.report import Line, Prose, Table
from tests.helpers import STACKS, STACKS_DIR


def preview_of(stack: str) -> CostPreview:
    return cost_preview(evaluate(load_config(load_raw(stack, stacks_dir=STACKS_DIR))))


@pytest.mark.parametrize("stack", STACKS)
def test_the_cost_json_is_the_previews_as_json(cli, stack):
    preview = preview_of(stack)
    printed = cli("cost", "--stack", stack, "--format", "json")
    assert printed.code == 0, printed.stderr
    assert printed.stdout == json.dumps(preview.as_json(), indent=2, allow_nan=False) + "\n"
    with pytest.raises(dataclasses.FrozenInstanceError):
        preview.stack = "other"  # type: ignore[misc]


def test_a_problem_added_to_a_preview_is_a_new_preview(cli):
    preview = preview_of("prod")
    assert preview.total_hourly_usd is not None
    over = f"the stack costs {preview.total_hourly_usd:.2f} $/h, over the limit of 1.00 $/h"
    limit = Problem("", "--max-hourly-usd", over)
    limited = preview.with_problem(limit)
    assert (preview.problems, limited.problems) == ((), (limit,))
    assert limited.as_json()["problems"] == [f"--max-hourly-usd: {over}"]
    printed = cli("cost", "--stack", "prod", "--format", "markdown", "--max-hourly-usd", "1")
    assert printed.code == 2 and printed.stdout == cost_markdown(limited)


def test_the_renderers_read_the_typed_preview():
    preview = preview_of("dev")
    blocks = cost_table(preview)
    tables = [b for b in blocks if isinstance(b, Table)]
    assert len(tables) == len(preview.services)
    for table, service in zip(tables, preview.services, strict=True):
        assert {row.offer.cloud for row in table.rows} <= {o.offer.cloud for o in service.options}
        assert all(isinstance(column.cell(row), str) for column in table.columns for row in table.rows)
    assert all(isinstance(b, Prose | Table) for b in blocks)
    assert f"Stack dev: {preview.plan.cloud} {preview.plan.region}: " in next(b.text for b in blocks
                                                                                if isinstance(b, Prose) and b.text.startswith("Stack"))
    assert cost_markdown(preview).startswith("### llm-deploy cost preview: `dev`\n")


def test_the_plan_summary_is_what_plan_prints(cli):
    from infra.cli.offline import run_offline
    from infra.plan_summary import plan_report

    summary = run_offline(load_raw("dev", stacks_dir=STACKS_DIR)).summary
    printed = cli("plan", "--stack", "dev")
    assert printed.code == 0, printed.stderr
    assert json.loads(printed.stdout) == summary.as_json()
    assert [g["name"] for g in summary.as_json()["node_groups"]] == [g.name for g in summary.node_groups]
    blocks = plan_report(summary)
    assert blocks[0] == Prose(f"Offline plan of stack dev: {len(summary.resources)} resources")
    assert [b.text.partition(":")[0] for b in blocks if isinstance(b, Line)] == list(summary.outputs)
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.stack = "other"  # type: ignore[misc]
