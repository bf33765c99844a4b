"""What a terminal report is made of, as plain data: prose, tables (columns that say how to show a
row, and which may go when the terminal is narrow) and lines. Results render themselves into these
(`infra.cost_report`, `infra.plan_summary`); the CLI only prints them (`infra.cli.tables`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[Any], str]
    numeric: bool = False
    text: bool = False  # may wrap; names and numbers never do
    wide: bool = False  # only with --wide
    optional: bool = False  # the first to go when the terminal is too narrow


@dataclass(frozen=True)
class Table:
    columns: Sequence[Column]
    rows: Sequence[Any]


@dataclass(frozen=True)
class Prose:
    """A sentence for people: wrapped at the terminal's width."""

    text: str


@dataclass(frozen=True)
class Line:
    """A line as it is (an output value a user may copy): never wrapped."""

    text: str


Block = Prose | Table | Line


def usd(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def structured(value: Any) -> str:
    """An output as a user reads it: text as is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
