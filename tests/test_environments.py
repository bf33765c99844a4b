"""`llm-deploy env`: the Automation API path, against a stubbed `pulumi` binary (missing, or present).

The stub answers the commands the Automation API runs (`version`, `stack select|init|ls|rm|output|
history`, `config set-all|rm-all`, `up`, `preview`, `destroy`), records each argv, and keeps its
stacks in a JSON file, so the tests see exactly which Pulumi commands an `env` command runs.
The real CLI against a real cloud is tests/integration/test_environments_live.py.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from infra.cli import environments as env
from infra.config import load_raw
from tests.helpers import ROOT, STACKS

FAKE_PULUMI = r'''#!PYTHON
"""A stand-in for the Pulumi CLI: records argv, answers what the Automation API asks."""
import json, os, sys
from datetime import datetime, timezone

state_dir = os.environ["FAKE_PULUMI_STATE"]
args = [a for a in sys.argv[1:] if a != "--non-interactive"]
with open(os.path.join(state_dir, "calls.jsonl"), "a") as log:
    log.write(json.dumps({"argv": args, "cwd": os.getcwd()}) + "\n")
stacks_path = os.path.join(state_dir, "stacks.json")
stacks = json.load(open(stacks_path)) if os.path.exists(stacks_path) else {}
now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

def opt(name):
    return args[args.index(name) + 1] if name in args else None

def save():
    json.dump(stacks, open(stacks_path, "w"))

def fail(message):
    print(message, file=sys.stderr)
    sys.exit(255)

command = args[:2]
if args == ["version"]:
    print("v3.150.0")
elif command == ["stack", "select"]:
    if opt("--stack") not in stacks:
        fail(f"error: no stack named '{opt('--stack')}' found")
elif command == ["stack", "init"]:
    if args[2] in stacks:
        fail(f"error: stack '{args[2]}' already exists")
    stacks[args[2]] = {"resourceCount": 0}
    save()
elif command == ["stack", "ls"]:
    print(json.dumps([{"name": name, "current": False, **info} for name, info in stacks.items()]))
elif command == ["stack", "rm"]:
    stacks.pop(args[-1])
    save()
elif command == ["stack", "output"]:
    secret = "--show-secrets" in args
    print(json.dumps({"endpoint": "http://lb.example.test", "api_key": "k3y" if secret else "[secret]"}))
elif command == ["stack", "history"]:
    print(json.dumps([{"kind": "update", "startTime": now, "endTime": now, "message": "", "environment": {}, "config": {},
                       "result": "succeeded", "resourceChanges": {"create": 3}}]))
elif command in (["config", "set-all"], ["config", "rm-all"]):
    pass
elif args[0] in ("up", "preview", "destroy"):
    if os.environ.get("FAKE_PULUMI_FAIL") == args[0]:
        print("Updating (fake)")
        fail("error: the fake provider refused: quota exceeded")
    print(f"{args[0]}: + llm-deploy:aws:Deployment (fake)")
    if args[0] == "preview":
        with open(opt("--event-log"), "a") as events:
            events.write(json.dumps({"sequence": 1, "timestamp": 0, "summaryEvent": {"resourceChanges": {"create": 3}}}) + "\n")
            events.write(json.dumps({"sequence": 2, "timestamp": 0, "cancelEvent": {}}) + "\n")
    else:
        stacks[opt("--stack")].update(lastUpdate=now, resourceCount=3 if args[0] == "up" else 0)
        save()
else:
    fail("fake pulumi: unexpected command: " + " ".join(args))
'''


class FakePulumi:
    def __init__(self, state: Path) -> None:
        self.state = state

    def calls(self) -> list[list[str]]:
        path = self.state / "calls.jsonl"
        return [json.loads(line)["argv"] for line in path.read_text().splitlines()] if path.exists() else []

    def commands(self) -> list[str]:
        """Each call as its command words, e.g. 'stack select', 'up' (flags left out)."""
        return [" ".join(a for a in argv[:2] if not a.startswith("-")) if argv[0] in ("stack", "config") else argv[0]
                for argv in self.calls()]

    def call(self, command: str) -> list[str]:
        (argv,) = [argv for argv, words in zip(self.calls(), self.commands(), strict=True) if words == command]
        return argv

    def stacks(self) -> dict:
        path = self.state / "stacks.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def set_stacks(self, stacks: dict) -> None:
        (self.state / "stacks.json").write_text(json.dumps(stacks))


@pytest.fixture
def project(tmp_path):
    """A copy of the project's Pulumi.yaml and stacks/, so config writes never touch the repository."""
    directory = tmp_path / "project"
    directory.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", directory)
    shutil.copytree(ROOT / "stacks", directory / "stacks")
    return directory


@pytest.fixture
def no_pulumi(monkeypatch, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("pulumi") is None


@pytest.fixture
def fake_pulumi(monkeypatch, tmp_path):
    bin_dir, state = tmp_path / "bin", tmp_path / "pulumi-state"
    bin_dir.mkdir()
    state.mkdir()
    script = bin_dir / "pulumi"
    script.write_text(FAKE_PULUMI.replace("PYTHON", sys.executable, 1))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PULUMI_STATE", str(state))
    for name in ("LLM_DEPLOY_API_KEY", "HF_TOKEN", "LLM_DEPLOY_REAP_MAX_AGE_HOURS", "FAKE_PULUMI_FAIL"):
        monkeypatch.delenv(name, raising=False)
    return FakePulumi(state)


# --- no Pulumi CLI: one clear line, exit 1 --------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["env", "up", "--stack", "dev"],
    ["env", "preview", "--stack", "prod"],
    ["env", "destroy", "--stack", "dev"],
    ["env", "reap"],
])
def test_missing_pulumi_cli_is_one_clear_line_and_exit_1(cli, no_pulumi, project, args):
    result = cli(*args, "--project-dir", str(project))
    assert result.code == 1
    assert result.stderr.strip().splitlines() == [
        "error: the Pulumi CLI was not found: install it from https://www.pulumi.com/docs/install/ and put `pulumi` on PATH"]


def test_bad_config_exits_2_before_any_pulumi_command(cli, fake_pulumi, project, stack_file):
    bad = stack_file({"cloud": "aws", "budgetUsdPerHour": 0.01})
    result = cli("env", "up", "--stack", "pr-9", "--config", str(bad), "--project-dir", str(project))
    assert result.code == 2
    assert "budgetUsdPerHour" in result.stderr and "Traceback" not in result.stderr
    assert fake_pulumi.calls() == []


def test_bad_config_exits_2_even_without_the_cli(cli, no_pulumi, project, stack_file):
    bad = stack_file({"services": [{"name": "llm", "kind": "llm", "model": "x/unknown"}]})
    result = cli("env", "preview", "--stack", "pr-9", "--config", str(bad), "--project-dir", str(project))
    assert result.code == 2 and "services[0]" in result.stderr


# --- with the stub: the right commands ------------------------------------------------------------


def test_up_own_stack_creates_it_runs_up_and_prints_the_endpoint(cli, fake_pulumi, project):
    result = cli("env", "up", "--stack", "dev", "--project-dir", str(project))
    assert result.code == 0, result.stderr
    assert fake_pulumi.commands() == ["version", "stack select", "stack init", "up", "stack output", "stack output", "stack history"]
    up = fake_pulumi.call("up")
    assert up[:3] == ["up", "--yes", "--skip-preview"] and up[-2:] == ["--stack", "dev"]
    assert "--policy-pack" not in up
    # the stack's own file is its config: nothing is written
    assert "config set-all" not in fake_pulumi.commands()
    lines = result.stdout.splitlines()
    assert "up: + llm-deploy:aws:Deployment (fake)" in lines  # progress streamed
    assert lines[-1] == "endpoint: http://lb.example.test"
    assert fake_pulumi.stacks()["dev"]["resourceCount"] == 3


def test_up_existing_stack_selects_it(cli, fake_pulumi, project):
    fake_pulumi.set_stacks({"prod": {"resourceCount": 40, "lastUpdate": "2025-01-01T00:00:00.000Z"}})
    result = cli("env", "up", "--stack", "prod", "--project-dir", str(project), "--policy-pack", "policy")
    assert result.code == 0, result.stderr
    assert "stack init" not in fake_pulumi.commands()
    up = fake_pulumi.call("up")
    assert up[up.index("--policy-pack") + 1] == "policy"


def test_ephemeral_stack_gets_the_copied_config_and_secrets_from_the_environment(cli, fake_pulumi, project, monkeypatch):
    monkeypatch.setenv("LLM_DEPLOY_API_KEY", "sk-test-123")
    monkeypatch.setenv("HF_TOKEN", "hf_test_456")
    result = cli("env", "up", "--stack", "pr-42", "--config", str(project / "stacks/Pulumi.dev.yaml"),
                 "--project-dir", str(project), "--policy-pack", "policy")
    assert result.code == 0, result.stderr
    assert fake_pulumi.commands() == ["version", "stack select", "stack init", "config set-all", "up",
                                      "stack output", "stack output", "stack history"]
    # plain keys land in the new stack's file as YAML, structures intact (Pulumi.yaml declares arrays)
    copied = yaml.safe_load((project / "stacks/Pulumi.pr-42.yaml").read_text())["config"]
    dev = load_raw("dev", stacks_dir=project / "stacks").values
    assert copied == {f"llm-deploy:{k}": v for k, v in dev.items()}
    # secrets go through the CLI, encrypted for this stack
    argv = fake_pulumi.call("config set-all")
    assert argv[:4] == ["config", "set-all", "--stack", "pr-42"]
    pairs = {argv[i + 1].split("=", 1)[0]: (argv[i], argv[i + 1].split("=", 1)[1]) for i in range(4, len(argv), 2)}
    assert pairs == {"llm-deploy:apiKey": ("--secret", "sk-test-123"), "llm-deploy:hfToken": ("--secret", "hf_test_456")}
    assert result.stdout.splitlines()[-1] == "endpoint: http://lb.example.test"


def test_ephemeral_stack_drops_keys_an_earlier_copy_left(cli, fake_pulumi, project):
    (project / "stacks/Pulumi.pr-42.yaml").write_text(yaml.safe_dump({"encryptionsalt": "v1:salt", "config": {
        "llm-deploy:cloud": "aws", "llm-deploy:domain": "old.example.com", "llm-deploy:apiKey": {"secure": "v1:abc"}}}))
    fake_pulumi.set_stacks({"pr-42": {"resourceCount": 3, "lastUpdate": "2025-01-01T00:00:00.000Z"}})
    result = cli("env", "up", "--stack", "pr-42", "--config", str(project / "stacks/Pulumi.dev.yaml"), "--project-dir", str(project))
    assert result.code == 0, result.stderr
    document = yaml.safe_load((project / "stacks/Pulumi.pr-42.yaml").read_text())
    # domain is gone from the source; apiKey stays: it was encrypted for this very stack; the salt stays
    assert "llm-deploy:domain" not in document["config"]
    assert document["config"]["llm-deploy:apiKey"] == {"secure": "v1:abc"}
    assert document["config"]["llm-deploy:cloud"] == "auto"
    assert document["encryptionsalt"] == "v1:salt"
    assert "config set-all" not in fake_pulumi.commands()


def test_copied_secure_value_without_its_variable_is_a_warning(cli, fake_pulumi, project):
    source = project / "stacks/Pulumi.gated.yaml"
    source.write_text(yaml.safe_dump({"config": {"llm-deploy:cloud": "auto", "llm-deploy:hfToken": {"secure": "v1:xyz"}}}))
    result = cli("env", "up", "--stack", "pr-5", "--config", str(source), "--project-dir", str(project))
    assert result.code == 0, result.stderr
    assert "llm-deploy:hfToken is encrypted for another stack and not copied; set HF_TOKEN" in result.stderr
    assert "config set-all" not in fake_pulumi.commands()
    assert "llm-deploy:hfToken" not in yaml.safe_load((project / "stacks/Pulumi.pr-5.yaml").read_text())["config"]


def test_preview_runs_preview_with_the_policy_pack_and_reports_changes(cli, fake_pulumi, project):
    fake_pulumi.set_stacks({"staging": {"resourceCount": 9, "lastUpdate": "2025-01-01T00:00:00.000Z"}})
    result = cli("env", "preview", "--stack", "staging", "--project-dir", str(project), "--policy-pack", "policy")
    assert result.code == 0, result.stderr
    assert fake_pulumi.commands() == ["version", "stack select", "preview"]
    preview = fake_pulumi.call("preview")
    assert preview[preview.index("--policy-pack") + 1] == "policy" and "--event-log" in preview
    assert result.stdout.splitlines()[-1] == "changes: create 3"


def test_failed_up_is_one_line_exit_1(cli, fake_pulumi, project, monkeypatch):
    """After the preflight's report (here: nothing checked, no AWS credentials), one line for the failed update."""
    monkeypatch.setenv("FAKE_PULUMI_FAIL", "up")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.setenv(name, str(project / "no-such-file"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = cli("env", "up", "--stack", "dev", "--project-dir", str(project))
    assert result.code == 1
    *preflight, last = result.stderr.strip().splitlines()
    assert last == "error: pulumi up failed: error: the fake provider refused: quota exceeded"
    assert preflight[0].startswith("preflight account: credentials: not checked: aws: no AWS credentials")
    assert preflight[1:] == ["preflight dev (aws us-east-1): ok (1 not checked)"]
    assert "Updating (fake)" in result.stdout


def test_destroy_with_remove_destroys_then_removes(cli, fake_pulumi, project):
    fake_pulumi.set_stacks({"pr-42": {"resourceCount": 3, "lastUpdate": "2025-01-01T00:00:00.000Z"}})
    result = cli("env", "destroy", "--stack", "pr-42", "--remove", "--project-dir", str(project))
    assert result.code == 0, result.stderr
    assert fake_pulumi.commands() == ["version", "stack select", "destroy", "stack history", "stack rm"]
    assert fake_pulumi.call("destroy")[:3] == ["destroy", "--skip-preview", "--yes"]
    assert fake_pulumi.call("stack rm") == ["stack", "rm", "--yes", "pr-42"]
    assert fake_pulumi.stacks() == {}


def test_destroy_of_a_missing_stack_is_one_line_exit_1(cli, fake_pulumi, project):
    result = cli("env", "destroy", "--stack", "pr-404", "--project-dir", str(project))
    assert result.code == 1
    assert result.stderr.strip().splitlines() == ["error: stack 'pr-404' does not exist"]


# --- reaping ---------------------------------------------------------------------------------------


def _stamp(age: timedelta) -> str:
    return (datetime.now(UTC) - age).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.fixture
def ephemeral_stacks(fake_pulumi):
    fake_pulumi.set_stacks({
        "pr-1": {"resourceCount": 30, "lastUpdate": _stamp(timedelta(hours=30))},
        "pr-2": {"resourceCount": 30, "lastUpdate": _stamp(timedelta(hours=2))},
        "pr-3": {"resourceCount": 30, "lastUpdate": _stamp(timedelta(hours=50)), "updateInProgress": True},
        "pr-4": {"resourceCount": 0},
        "dev": {"resourceCount": 30, "lastUpdate": _stamp(timedelta(days=30))},
    })
    return fake_pulumi


def test_reap_destroys_and_removes_only_old_idle_prefixed_stacks(cli, ephemeral_stacks, project):
    result = cli("env", "reap", "--prefix", "pr-", "--max-age-hours", "24", "--project-dir", str(project))
    assert result.code == 0, result.stderr
    assert ephemeral_stacks.commands() == ["version", "stack ls", "stack select", "destroy", "stack history", "stack rm"]
    assert ephemeral_stacks.call("stack select")[-1] == "pr-1"
    assert sorted(ephemeral_stacks.stacks()) == ["dev", "pr-2", "pr-3", "pr-4"]
    assert "pr-3: an update is running; left alone" in result.stdout
    assert "pr-4: no update recorded; left alone" in result.stdout


def test_reap_age_comes_from_the_environment_and_dry_run_destroys_nothing(cli, ephemeral_stacks, project, monkeypatch):
    monkeypatch.setenv("LLM_DEPLOY_REAP_MAX_AGE_HOURS", "1")
    result = cli("env", "reap", "--dry-run", "--project-dir", str(project))
    assert result.code == 0, result.stderr
    assert "pr-1: older than 1 h; would destroy" in result.stdout and "pr-2: older than 1 h; would destroy" in result.stdout
    assert ephemeral_stacks.commands() == ["version", "stack ls"]


def test_reap_refuses_an_empty_prefix(cli, ephemeral_stacks, project):
    result = cli("env", "reap", "--prefix", "", "--project-dir", str(project))
    assert result.code == 1 and "--prefix must not be empty" in result.stderr


def test_stale_stacks_rule():
    now = datetime(2025, 6, 1, 12, 0)
    summaries = [
        SimpleNamespace(name="acme/llm-deploy/pr-7", update_in_progress=False, last_update=now - timedelta(hours=25)),
        SimpleNamespace(name="pr-8", update_in_progress=False, last_update=now - timedelta(hours=23)),
        SimpleNamespace(name="prod", update_in_progress=False, last_update=now - timedelta(days=90)),
    ]
    stale, notes = env.stale_stacks(summaries, "pr-", timedelta(hours=24), now)
    assert stale == ["acme/llm-deploy/pr-7"]
    assert notes == ["pr-8: last updated 2025-05-31 13:00 UTC; younger than 1 day, 0:00:00"]


# --- CI helpers ----------------------------------------------------------------------------------


def test_ci_matrix_lists_every_stack_with_its_cloud_and_credentials(cli):
    result = cli("env", "matrix")
    assert result.code == 0, result.stderr
    entries = result.json()["include"]
    assert [e["stack"] for e in entries] == STACKS
    by_stack = {e["stack"]: e for e in entries}
    assert by_stack["prod"] == {"stack": "prod", "cloud": "aws", "credentials": "AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY"}
    assert by_stack["alicloud-dev"]["credentials"] == "ALICLOUD_ACCESS_KEY ALICLOUD_SECRET_KEY"
    for entry in entries:  # `auto` is resolved by placement, like `llm-deploy validate` does
        assert entry["cloud"] == cli("validate", "--stack", entry["stack"], "--format", "json").json()["cloud"]


def test_ci_matrix_fails_on_an_invalid_stack(cli, tmp_path):
    (tmp_path / "Pulumi.broken.yaml").write_text("config:\n  llm-deploy:cloud: gcp\n")
    result = cli("env", "matrix", "--stacks-dir", str(tmp_path))
    assert result.code == 2 and "cloud" in result.stderr


def test_missing_credentials():
    assert env.missing_credentials("aws", {"AWS_ACCESS_KEY_ID": "a"}) == ["AWS_SECRET_ACCESS_KEY"]
    assert env.missing_credentials("aws", {"AWS_PROFILE": "ci"}) == []
    assert env.missing_credentials("digitalocean", {}) == ["DIGITALOCEAN_TOKEN"]
    assert env.missing_credentials("alicloud", {"ALICLOUD_ACCESS_KEY": "a", "ALICLOUD_SECRET_KEY": "b"}) == []


def test_cost_never_imports_pulumi():
    """`env` loads the Automation API lazily; the CLI module itself (and so `cost`) does not."""
    import subprocess

    code = "import sys, infra.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'pulumi'))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout.strip() == "[]"
