"""Errors as a user's shell sees them: real processes, real exit codes. A usage error exits 2 and an
unexpected error 1, each with one line on stderr and no traceback; `--debug` adds the traceback.

By default they run this environment's executables. scripts/check-stock-debian.sh runs them against
README's set-up on stock Debian 12 (a fresh copy and `.venv` with the declared dependencies only):
LLM_DEPLOY_CHROOT is that system's root, LLM_DEPLOY_REPO and LLM_DEPLOY_BIN_DIR the copy and its
environment's bin directory as seen inside it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

CHROOT = os.environ.get("LLM_DEPLOY_CHROOT")
REPO = Path(os.environ.get("LLM_DEPLOY_REPO") or ROOT)
BIN_DIR = Path(os.environ.get("LLM_DEPLOY_BIN_DIR") or Path(sys.executable).parent)
ENTRY_POINTS = {
    "console-script": [str(BIN_DIR / "llm-deploy")],
    "python-m-infra": [str(BIN_DIR / "python"), "-m", "infra"],
}
STACK = ("--stacks-dir", str(REPO / "stacks"), "--stack", "dev")
NOT_A_DIRECTORY = REPO / "README.md" / "render"  # a --render-dir whose parent is a file


def run(entry: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """From a directory outside the repository, so `python -m infra` imports the installed package;
    in the chroot with a new user's environment."""
    argv = [*ENTRY_POINTS[entry], *args]
    if CHROOT:
        argv = ["chroot", CHROOT, "/usr/bin/env", "-i", "HOME=/root", "PATH=/usr/bin:/bin", "LANG=C.UTF-8",
                *(f"{k}={v}" for k, v in env.items()), *argv]
    return subprocess.run(argv, cwd="/", env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False)


USAGE_ERRORS = [
    ((), "missing a command: "),
    (("env",), "env: missing a command: "),
    (("cost", *STACK, "--format", "yaml"), "'yaml' is not one of 'table', 'json', 'markdown'"),
    (("cost", *STACK, "--max-hourly-usd", "abc"), "Invalid value for '--max-hourly-usd'"),
    (("cost", "--stak", "dev"), "No such option: --stak"),
    (("cots",), "No such command 'cots'. Did you mean 'cost'?"),
    (("plan", *STACK, "--render-dir"), "Option '--render-dir' requires an argument"),
    (("catalog", "--cloud", "gcp"), "--cloud: must be one of aws, digitalocean, alicloud"),
]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(("args", "message"), USAGE_ERRORS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_a_usage_error_is_one_line_and_exit_2(entry, args, message):
    done = run(entry, *args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert done.stderr.endswith("\n") and done.stderr.count("\n") == 1, done.stderr
    assert message in done.stderr
    if "missing a command" in message:
        commands = ("up", "preview", "destroy", "reap", "matrix") if args else ("catalog", "models", "validate", "cost", "plan", "preflight", "images", "env")
        assert sorted(done.stderr.split(": ")[2].split(" (see")[0].split(", ")) == sorted(commands)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_the_environment_serves_the_cost_preview(entry):
    """The same environment that refused the usage errors runs a command (no module is missing)."""
    done = run(entry, "cost", *STACK, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert '"stack": "dev"' in done.stdout


def test_an_unexpected_error_is_one_line_and_exit_1_and_debug_shows_the_traceback():
    """An OSError deep in `plan --render-dir` (the directory's parent is a file) is not bad config."""
    args = ("plan", *STACK, "--render-dir", str(NOT_A_DIRECTORY))
    done = run("console-script", *args)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: NotADirectoryError: ")
    assert "--debug shows the traceback" in done.stderr
    for debug in (run("console-script", "--debug", *args), run("console-script", *args, LLM_DEPLOY_DEBUG="1")):
        assert debug.returncode == 1
        assert debug.stderr.startswith("Traceback (most recent call last):")
        assert debug.stderr.rstrip().splitlines()[-1].startswith("error: NotADirectoryError: ")
