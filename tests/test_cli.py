"""The CLI contract: `catalog`, `validate`, `cost` fields and formats, exit codes, speed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT, STACKS

OFFER_FIELDS = {"cloud", "instance_type", "region", "gpu", "gpu_count", "gpu_memory_gb", "vcpus", "memory_gb", "hourly_usd", "source"}


def test_catalog_json_lists_offers_with_contract_fields(cli):
    offers = cli("catalog", "--format", "json").json()
    assert offers and all(OFFER_FIELDS <= set(o) for o in offers)
    assert all(o["source"] and o["as_of"] for o in offers)
    clouds = {o["cloud"] for o in offers}
    assert clouds == {"aws", "digitalocean", "alicloud"}


@pytest.mark.parametrize(
    ("cloud", "instance_type", "gpu", "price"),
    [
        ("digitalocean", "gpu-h200x1-141gb", "H200", 3.44),
        ("aws", "p5.4xlarge", "H100", 4.38),
        ("alicloud", "ecs.gn7i-c8g1.2xlarge", "A10", 2.20),
    ],
)
def test_catalog_holds_the_project_cost_table_exactly(cli, cloud, instance_type, gpu, price):
    offers = cli("catalog", "--cloud", cloud, "--gpu", gpu, "--format", "json").json()
    rows = [o for o in offers if o["instance_type"] == instance_type]
    assert rows and all(o["hourly_usd"] == price and o["gpu_count"] == 1 for o in rows)


def test_catalog_covers_the_wider_gpu_set(cli):
    gpus = {o["gpu"] for o in cli("catalog", "--format", "json").json()}
    assert {"A10G", "L4", "L40S", "A100", "H100", "H200", None} <= gpus  # None: CPU instance types
    multi = {o["gpu"] for o in cli("catalog", "--format", "json").json() if o["gpu_count"] > 1}
    assert {"A10G", "L4", "L40S", "A100", "H100", "H200"} <= multi


def test_catalog_of_a_stack_shows_its_negotiated_prices(cli, stack_file):
    path = stack_file({"priceOverrides": {"aws/g6.xlarge": 0.5}})
    offers = cli("catalog", "--config", str(path), "--cloud", "aws", "--format", "json").json()
    g6 = [o for o in offers if o["instance_type"] == "g6.xlarge"]
    assert g6 and all(o["hourly_usd"] == 0.5 and o["source"].startswith("priceOverrides") for o in g6)
    assert cli("catalog", "--config", str(stack_file({"cloud": "gcp"})), "--format", "json").code == 2


def test_catalog_rejects_an_unknown_cloud(cli):
    result = cli("catalog", "--cloud", "gcp")
    assert result.code == 2 and "--cloud: must be one of" in result.stderr


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_cost_json_has_the_contract_fields(cli, stack):
    result = cli("cost", "--stack", stack, "--format", "json")
    assert result.code == 0, result.stderr
    preview = result.json()
    assert preview["stack"] == stack
    assert {"services", "total_hourly_usd", "total_monthly_usd", "by_cloud"} <= set(preview)
    assert preview["total_monthly_usd"] == pytest.approx(preview["total_hourly_usd"] * 730, abs=0.01)
    for service in preview["services"]:
        assert {"name", "kind", "model", "replicas", "required_gpu_memory_gb", "chosen", "options"} <= set(service)
        assert OFFER_FIELDS <= set(service["chosen"])
        for option in service["options"]:
            assert OFFER_FIELDS | {"feasible", "reason", "hourly_usd", "monthly_usd"} <= set(option)
            assert option["monthly_usd"] == pytest.approx(option["hourly_usd"] * 730, abs=0.01)
            if service["kind"] == "llm" and option["feasible"]:
                assert option["tokens_per_second"] > 0 and option["usd_per_million_tokens"] > 0
                assert option["throughput_is_estimate"] is True
        assert service["options"][0]["feasible"]
    assert "estimate" in preview["throughput_note"]
    assert {c["cloud"] for c in preview["by_cloud"]} == {"aws", "digitalocean", "alicloud"}
    assert all({"cloud", "feasible", "total_hourly_usd"} <= set(c) for c in preview["by_cloud"])


def test_cost_total_equals_the_node_groups(cli):
    preview = cli("cost", "--stack", "prod", "--format", "json").json()
    assert preview["total_hourly_usd"] == pytest.approx(sum(g["hourly_usd"] for g in preview["node_groups"]))
    assert preview["cloud"] == "aws"
    assert preview["node_groups"][0]["instance_type"] == "p5.4xlarge"


def test_cost_table_shows_chosen_alternatives_totals_and_clouds(cli):
    result = cli("cost", "--stack", "dev")
    assert result.code == 0
    text = result.stdout
    assert "Total:" in text and "$/month" in text and "By cloud" in text
    assert "tok/s and $/1M tok are estimates" in text
    for cloud in ("aws", "digitalocean", "alicloud"):
        assert cloud in text


def test_cost_markdown_for_pull_requests(cli):
    result = cli("cost", "--stack", "staging", "--format", "markdown")
    assert result.code == 0
    text = result.stdout
    assert text.startswith("### llm-deploy cost preview: `staging`")
    assert "| node group | instance | GPU | nodes | services | $/h | $/month |" in text
    assert "| service | kind | model |" in text and "| cloud | cheapest placement |" in text
    assert "| llm-embedding-rerank | gpu-h200x1-141gb | 1x H200 | 1 | llm, embedding, rerank | 3.44 | 2,511.20 |" in text
    assert "estimates" in text


def test_cost_guard_exits_2_over_the_limit(cli):
    result = cli("cost", "--stack", "prod", "--format", "json", "--max-hourly-usd", "5")
    assert result.code == 2
    assert "--max-hourly-usd: the stack costs 8.76 $/h, over the limit of 5.00 $/h" in result.stderr
    assert json.loads(result.stdout)["problems"]
    assert cli("cost", "--stack", "prod", "--format", "json", "--max-hourly-usd", "9").code == 0


def test_validate_json(cli):
    ok = cli("validate", "--stack", "dev", "--format", "json").json()
    assert ok["valid"] is True and ok["problems"] == []


def test_cost_is_fast_and_loads_no_cloud_sdk():
    """`cost` answers well under a second after imports and never imports pulumi or a provider SDK. Timed in
    the process's CPU seconds: the suite runs on every core, and other processes' load must not count."""
    script = (
        "import sys, time, io, contextlib\n"
        "from infra.cli import app\n"
        "start = time.process_time()\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    for stack in {STACKS!r}: app(['cost', '--stack', stack, '--format', 'json'], standalone_mode=False)\n"
        f"elapsed = (time.process_time() - start) / {len(STACKS)}\n"
        "print(elapsed)\n"
        "print(sorted(m for m in sys.modules if m.startswith('pulumi')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    elapsed, modules = done.stdout.strip().splitlines()
    assert float(elapsed) < 0.25, f"cost took {elapsed} CPU seconds per stack after imports"
    assert modules == "[]"


def test_console_script_and_module_entry_points_agree():
    module = subprocess.run([sys.executable, "-m", "infra", "cost", "--stack", "dev", "--format", "json"],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    assert module.returncode == 0, module.stderr
    assert json.loads(module.stdout)["stack"] == "dev"
