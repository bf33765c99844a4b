"""`cost --diff-against REF|FILE` on a two-commit git repository made here: per stack and node group the
$/h and $/month before and after, the change, and why (model, replicas, price, catalog)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra.catalog import DATA_DIR
from tests.helpers import ROOT

G6_US_EAST_1 = 0.8048  # the built-in catalog's g6.xlarge price in us-east-1
LLM = {"name": "llm", "kind": "llm", "model": "Qwen/Qwen2.5-7B-Instruct", "maxModelLen": 4096}
OWN_CATALOG = ("cloud,instance_type,gpu,gpu_count,gpu_memory_gb,vcpus,memory_gb,hourly_usd,regions,source,as_of\n"
               "aws,g6.xlarge,L4,1,24,4,16,{price},eu-west-3,negotiated,2026-12-01\n")  # the older one-row-many-regions form


def write_stack(repo: Path, name: str, values: dict) -> None:
    path = repo / "stacks" / f"Pulumi.{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"config": {f"llm-deploy:{k}": v for k, v in values.items()}}, sort_keys=False))


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args], cwd=repo, check=True,
                   capture_output=True)


def run(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "infra", *args], cwd=repo, env=env, capture_output=True, text=True, check=False)


@pytest.fixture
def repo(tmp_path):
    """Commit 1: stacks alpha, beta, delta; the built-in catalog with g6.xlarge at 0.70 in us-east-1.
    Commit 2: beta runs 2 replicas at its own catalog's new price. Working tree: alpha serves another
    model, delta is deleted, gamma is new; the built-in catalog is today's (0.8048)."""
    repo = tmp_path / "repo"
    (repo / "infra" / "data").mkdir(parents=True)
    builtin = (DATA_DIR / "catalog.csv").read_text().replace(
        f"aws,g6.xlarge,us-east-1,L4,1,24,4,16,{G6_US_EAST_1},", "aws,g6.xlarge,us-east-1,L4,1,24,4,16,0.7,")
    assert builtin != (DATA_DIR / "catalog.csv").read_text()
    (repo / "infra" / "data" / "catalog.csv").write_text(builtin)
    (repo / "own.csv").write_text(OWN_CATALOG.format(price=0.5))
    write_stack(repo, "alpha", {"cloud": "aws", "region": "us-east-1", "services": [LLM]})
    write_stack(repo, "beta", {"cloud": "aws", "catalogFile": "own.csv", "services": [LLM]})
    write_stack(repo, "delta", {"cloud": "aws", "region": "us-east-1", "services": [LLM]})
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "one")
    (repo / "own.csv").write_text(OWN_CATALOG.format(price=0.6))
    write_stack(repo, "beta", {"cloud": "aws", "catalogFile": "own.csv", "services": [{**LLM, "replicas": 2}]})
    git(repo, "commit", "-qam", "two")
    write_stack(repo, "alpha", {"cloud": "aws", "region": "us-east-1",
                                "services": [{**LLM, "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"}]})
    (repo / "stacks" / "Pulumi.delta.yaml").unlink()
    write_stack(repo, "gamma", {"cloud": "aws", "region": "us-east-1", "services": [LLM]})
    return repo


def groups(document: dict) -> dict[tuple[str, str], dict]:
    return {(g["stack"], g["node_group"]): g for s in document["stacks"] for g in s["node_groups"]}


def test_diff_against_a_ref_compares_every_stack_with_that_commits_stacks_and_catalog(repo):
    done = run(repo, "cost", "--diff-against", "HEAD~1", "--format", "json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    found = groups(result)
    assert sorted(found) == [("alpha", "llm"), ("beta", "llm"), ("delta", "llm"), ("gamma", "llm")]
    alpha = found[("alpha", "llm")]
    assert alpha["reasons"] == ["model", "price"]  # another model; g6.xlarge 0.70 at HEAD~1, 0.8048 now
    assert (alpha["before"]["instance_type"], alpha["after"]["instance_type"]) == ("g6.xlarge", "g6.xlarge")
    assert alpha["before_hourly_usd"] == 0.7 and alpha["after_hourly_usd"] == G6_US_EAST_1
    assert alpha["change_hourly_usd"] == pytest.approx(G6_US_EAST_1 - 0.7)
    assert alpha["change_monthly_usd"] == pytest.approx((G6_US_EAST_1 - 0.7) * 730, abs=0.01)
    assert alpha["change_percent"] == pytest.approx(15.0, abs=0.05)
    beta = found[("beta", "llm")]
    assert beta["reasons"] == ["replicas", "price"]
    assert (beta["before"]["count"], beta["after"]["count"]) == (1, 2) and beta["after"]["region"] == "eu-west-3"
    assert (beta["before_hourly_usd"], beta["after_hourly_usd"], beta["change_percent"]) == (0.5, 1.2, 140.0)
    assert (beta["before_monthly_usd"], beta["after_monthly_usd"]) == (365.0, 876.0)
    assert found[("delta", "llm")]["reasons"] == ["gone"] and found[("delta", "llm")]["after"] is None
    assert found[("gamma", "llm")]["reasons"] == ["new"] and found[("gamma", "llm")]["change_percent"] is None
    before = 0.7 + 0.5 + 0.7
    after = G6_US_EAST_1 + 1.2 + G6_US_EAST_1
    assert (result["before_hourly_usd"], result["after_hourly_usd"]) == (pytest.approx(before), pytest.approx(after))
    assert result["before"] == "HEAD~1" and result["after"] == "working tree"


def test_markdown_leads_with_the_total_change(repo):
    done = run(repo, "cost", "--diff-against", "HEAD~1", "--format", "markdown")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    change = (G6_US_EAST_1 + 1.2 + G6_US_EAST_1) - 1.9
    assert lines[0] == "### llm-deploy cost change: `HEAD~1` -> working tree"
    assert lines[2] == (f"**Total change: +{change:.2f} $/h (+{change / 1.9 * 100:.1f} %), +{change * 730:,.2f} $/month: "
                        f"1.90 -> {1.9 + change:.2f} $/h**")
    assert "| beta | llm | 1x g6.xlarge (eu-west-3) | 2x g6.xlarge (eu-west-3) | 0.50 | 1.20 | 365.00 | 876.00 | +0.70 | +511.00 | " \
           "+140.0 % | replicas, price |" in lines


def test_another_instance_from_the_catalog_is_the_catalogs_doing(repo):
    """At HEAD the built-in catalog has no g6.xlarge in us-east-1: gamma's LLM sat elsewhere, same model and replicas."""
    catalog = repo / "infra" / "data" / "catalog.csv"
    catalog.write_text("".join(line for line in catalog.read_text().splitlines(keepends=True)
                               if not line.startswith("aws,g6.xlarge,us-east-1,")))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "three")
    result = json.loads(run(repo, "cost", "--stack", "gamma", "--diff-against", "HEAD", "--format", "json").stdout)
    assert [s["stack"] for s in result["stacks"]] == ["gamma"]
    (group,) = result["stacks"][0]["node_groups"]
    assert group["reasons"] == ["catalog"]
    assert group["before"]["instance_type"] != "g6.xlarge" and group["after"]["instance_type"] == "g6.xlarge"
    assert group["change_hourly_usd"] < 0


def test_diff_against_a_saved_preview_file(repo, tmp_path):
    saved = tmp_path / "alpha.json"
    saved.write_text(run(repo, "cost", "--stack", "gamma", "--format", "json").stdout)
    write_stack(repo, "gamma", {"cloud": "aws", "region": "us-east-1", "services": [{**LLM, "replicas": 3}]})
    done = run(repo, "cost", "--diff-against", str(saved), "--format", "json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [s["stack"] for s in result["stacks"]] == ["gamma"]  # the file's stacks only
    (group,) = result["stacks"][0]["node_groups"]
    assert group["reasons"] == ["replicas"] and group["change_hourly_usd"] == pytest.approx(2 * G6_US_EAST_1)
    assert group["change_percent"] == 200.0


def test_bad_ref_or_file_is_bad_input_in_one_line(repo, tmp_path):
    done = run(repo, "cost", "--diff-against", "no-such-ref")
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0
    assert "--diff-against: 'no-such-ref' is neither a file nor a git ref" in done.stderr
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": 1}')
    done = run(repo, "cost", "--diff-against", str(junk))
    assert done.returncode == 2 and "not a saved `cost --format json`" in done.stderr and "Traceback" not in done.stderr
