"""Errors as a user's shell sees them: real processes, real exit codes. A usage error exits 2 and an
unexpected error 1, each with one line on stderr and no traceback; `--debug` adds the traceback.

LLM_DEPLOY_BIN_DIR points these at another environment's executables: scripts/test.sh runs them
against the fresh environment README's set-up creates, which holds the declared dependencies only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import STACKS_DIR

BIN_DIR = Path(os.environ.get("LLM_DEPLOY_BIN_DIR") or Path(sys.executable).parent)
ENTRY_POINTS = {
    "console-script": [str(BIN_DIR / "llm-deploy")],
    "python-m-infra": [str(BIN_DIR / "python"), "-m", "infra"],
}
STACK = ("--stacks-dir", str(STACKS_DIR), "--stack", "dev")


def run(entry: str, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """From a directory outside the repository, so `python -m infra` imports the installed package."""
    return subprocess.run([*ENTRY_POINTS[entry], *args], cwd=cwd, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120, check=False)


USAGE_ERRORS = [
    ((), "missing a command: catalog, models, validate, cost, plan, env"),
    (("env",), "env: missing a command: up, preview, destroy, reap, matrix"),
    (("cost", *STACK, "--format", "yaml"), "'yaml' is not one of 'table', 'json', 'markdown'"),
    (("cost", *STACK, "--max-hourly-usd", "abc"), "Invalid value for '--max-hourly-usd'"),
    (("cost", "--stak", "dev"), "No such option: --stak"),
    (("cots",), "No such command 'cots'. Did you mean 'cost'?"),
    (("plan", *STACK, "--render-dir"), "Option '--render-dir' requires an argument"),
    (("catalog", "--cloud", "gcp"), "--cloud: must be one of aws, digitalocean, alicloud"),
]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(("args", "message"), USAGE_ERRORS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_a_usage_error_is_one_line_and_exit_2(entry, args, message, tmp_path):
    done = run(entry, *args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert done.stderr.endswith("\n") and done.stderr.count("\n") == 1, done.stderr
    assert message in done.stderr


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_the_environment_serves_the_cost_preview(entry, tmp_path):
    """The same environment that refused the usage errors runs a command (no module is missing)."""
    done = run(entry, "cost", *STACK, "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert '"stack": "dev"' in done.stdout


def test_an_unexpected_error_is_one_line_and_exit_1_and_debug_shows_the_traceback(tmp_path):
    """An OSError deep in `plan --render-dir` (the directory's parent is a file) is not bad config."""
    (tmp_path / "a-file").write_text("")
    args = ("plan", *STACK, "--render-dir", str(tmp_path / "a-file" / "render"))
    done = run("console-script", *args, cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: NotADirectoryError: ")
    assert "--debug shows the traceback" in done.stderr
    for debug in (run("console-script", "--debug", *args, cwd=tmp_path),
                  run("console-script", *args, cwd=tmp_path, LLM_DEPLOY_DEBUG="1")):
        assert debug.returncode == 1
        assert debug.stderr.startswith("Traceback (most recent call last):")
        assert debug.stderr.rstrip().splitlines()[-1].startswith("error: NotADirectoryError: ")
