"""The core (`infra/*.py`) is cloud-agnostic: it imports neither the components nor its own drivers
(`infra.cli`: command line, offline engine, Automation API), so it can be used and tested alone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

# `python -m infra` (infra/__main__.py) is an entry point, a driver like infra.cli
CORE = sorted(p for p in (ROOT / "infra").glob("*.py") if p.name != "__main__.py")
# and the terminal: results render themselves as text and plain blocks (infra.report), the CLI prints them
ABOVE_THE_CORE = ("components", "bootstrap", "infra.cli", "pulumi", "rich", "typer")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_module_imports_nothing_above_it(path: Path) -> None:
    offending = sorted(
        name for name in imported_modules(path) if any(name == top or name.startswith(top + ".") for top in ABOVE_THE_CORE)
    )
    # the one exception: reading Pulumi's runtime config when the program runs under the engine
    allowed = {"pulumi", "pulumi.runtime", "pulumi.runtime.config"} if path.name == "config.py" else set()
    assert set(offending) <= allowed, f"{path.name} imports {offending}"
