"""Fixtures the tests share: run the CLI in-process, write throw-away stack files, the rendered bootstrap cases.

Constants and builders live in tests/helpers.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# pytest-xdist's workers start with COLUMNS=80; the in-process CLI (its console is made when infra.cli is
# imported, which tests.helpers does) would then print tables 80 columns wide, unlike any run without a
# terminal. Tests that want a width set COLUMNS themselves.
os.environ.pop("COLUMNS", None)

import pytest
import yaml

from tests.helpers import CASES, ROOT, CliResult


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `llm-deploy ARGS` through the real entry point; returns exit code and output."""
    from infra.cli import main

    monkeypatch.chdir(ROOT)

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["llm-deploy", *args])
        code = 0
        try:
            main()
        except SystemExit as done:
            code = done.code or 0
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def stack_file(tmp_path):
    """Write a `Pulumi.<name>.yaml` with the given llm-deploy keys; returns its path."""

    def write(values: dict, name: str = "test") -> Path:
        path = tmp_path / f"Pulumi.{name}.yaml"
        path.write_text(yaml.safe_dump({"config": {f"llm-deploy:{k}": v for k, v in values.items()}}, sort_keys=False))
        return path

    return write


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    """The user-data of every bootstrap case (tests.helpers.CASES), rendered once per test module."""
    return {name: case.render() for name, case in CASES.items()}
