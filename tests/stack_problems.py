"""Every problem llm-deploy finds in a stack file, as typed problems (the CLI prints one line each)."""

from __future__ import annotations

from pathlib import Path

from infra.config import load_raw
from infra.errors import ConfigError, Problem
from infra.placement import evaluate, load_config


def stack_problems(path: Path) -> list[Problem]:
    """The problems `validate` and `cost` report for a stack file: the config's, or placement's."""
    try:
        return list(evaluate(load_config(load_raw(config_file=str(path)))).problems)
    except ConfigError as error:
        return error.problems


def fields(problems: list[Problem]) -> list[tuple[str, str]]:
    return [(p.source, p.field) for p in problems]
