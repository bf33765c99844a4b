"""Shared test helpers: run the CLI in-process, write throw-away stack files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STACKS_DIR = ROOT / "stacks"
STACKS = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in STACKS_DIR.glob("Pulumi.*.yaml"))


class CliResult:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def json(self):
        return json.loads(self.stdout)


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
