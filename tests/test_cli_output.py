"""What the tables look like in a terminal (rich at the width COLUMNS says), what `plan` writes:
tables fit 100 columns without cutting a name or a price, `--wide` has every column, plans are
identical run to run, outputs print as JSON, and user-data that holds a secret is mode 0600."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from infra.config import load_raw
from infra.cost import cost_preview
from infra.cost_report import shown_options
from infra.data_files import data_rows
from infra.models import registry
from infra.placement import evaluate, load_config
from infra.report import usd
from tests.helpers import ROOT, STACKS, STACKS_DIR

ELLIPSIS = "…"
API_KEY_LENGTH = 40  # components/stack.py's RandomPassword; the mock engine answers "x" * length
MOCK_API_KEY = "x" * API_KEY_LENGTH


def run(*args: str, columns: int = 100) -> str:
    done = subprocess.run([sys.executable, "-m", "infra", *args], cwd=ROOT, env={**os.environ, "COLUMNS": str(columns)},
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


@pytest.mark.parametrize("columns", [100, 80])
@pytest.mark.parametrize("stack", STACKS)
def test_cost_table_fits_the_terminal_and_cuts_no_name_or_price(cli, stack, columns):
    text = run("cost", "--stack", stack, columns=columns)
    preview = cost_preview(evaluate(load_config(load_raw(stack, stacks_dir=STACKS_DIR))))
    assert widest(text) <= columns and ELLIPSIS not in text
    rows = text.splitlines()
    for service in preview.services:
        for option in shown_options(service):
            offer = option.offer
            row = next((r for r in rows if f" {offer.instance_type} " in r and f" {offer.cloud} " in f" {r}"), None)
            assert row is not None, f"{service.need.config.name}: {offer.instance_type} missing or cut"
            assert f" {usd(option.hourly_usd)}" in row
            if columns == 100:
                assert f" {usd(option.monthly_usd)}" in row
            if option.throughput is not None:
                assert f" {option.throughput.usd_per_million_tokens:.3f}" in row


def test_cost_table_marks_the_choice_explains_itself_and_says_how_offers_fit(cli):
    narrow = run("cost", "--stack", "prod")
    wide = run("cost", "--stack", "prod", "--wide")
    preview = cli("cost", "--stack", "prod", "--format", "json").json()
    chosen = preview["services"][0]["chosen"]["instance_type"]
    for text in (narrow, wide):
        assert any(line.startswith("*") and f" {chosen} " in line for line in text.splitlines())
        assert "* placement's choice   x nothing on that cloud fits   $: this service's replicas alone" in text
        assert "Total: 8.76 $/h, 6,394.80 $/month (each node billed once" in text
        assert not any(line.rstrip().endswith(" fits") for line in text.splitlines())
    assert "--wide adds region" in narrow and " region " not in narrow.splitlines()[1]
    header = wide.splitlines()[1]
    assert all(f" {column} " in f" {header} " for column in ("region", "vCPU", "RAM GB", "fit"))
    assert "uses 39.1 of 80 GB GPU memory" in wide  # p5.4xlarge: 1x H100 80 GB for 39.1 GB


def test_cost_table_says_why_nothing_on_a_cloud_fits(cli, stack_file):
    """With the offer that comes closest (the most GPU memory), not the cheapest CPU instance."""
    path = stack_file({"cloud": "auto", "services": [
        {"name": "llm", "kind": "llm", "model": "deepseek-ai/DeepSeek-R1-Distill-Llama-70B"}]})
    options = [o for o in cli("cost", "--config", str(path), "--format", "json").json()["services"][0]["options"]
               if o["cloud"] == "alicloud"]
    assert options and not any(o["feasible"] for o in options)
    closest = max(options, key=lambda o: (o["gpu_count"] * o["gpu_memory_gb"] if o["gpu"] else 0, -o["hourly_usd"]))
    line = next(line for line in run("cost", "--config", str(path)).splitlines() if line.startswith("  x alicloud "))
    assert line == f"  x alicloud {closest['instance_type']}: {closest['reason']}"
    assert closest["gpu"] and "CPU-only" not in line


@pytest.mark.parametrize("columns", [100, 80])
def test_catalog_is_one_line_per_offer_and_its_sources_are_in_wide_and_json(cli, columns):
    offers = cli("catalog", "--format", "json").json()
    text = run("catalog", columns=columns)
    assert widest(text) <= columns and ELLIPSIS not in text
    rows = [line for line in text.splitlines() if line.split(" ", 1)[0] in {"aws", "digitalocean", "alicloud"}]
    assert len(rows) == len(offers) and len(text.splitlines()) <= len(offers) + 5
    for offer, row in zip(offers, rows, strict=True):
        assert row.split()[:3] == [offer["cloud"], offer["instance_type"], offer["region"]]
    sources = {o["source"] for o in offers}
    assert all(source and source not in text for source in sources)
    wide = run("catalog", "--wide", columns=columns)
    assert all(source in wide for source in sources) and ELLIPSIS not in wide


def test_models_lists_the_registry_as_a_table_and_as_json(cli):
    records = cli("models", "--format", "json").json()
    assert [r["model"] for r in records] == [info.model for info in registry().values()]
    qwen = next(r for r in records if r["model"] == "Qwen/Qwen2.5-7B-Instruct")
    assert qwen["params_b"] == 7.62 and qwen["max_context"] == 32768 and qwen["kind"] == "llm"
    assert qwen["kv_bytes_per_token"] == 2 * 28 * 4 * 128 * 2  # layers x KV heads x head dim x K+V x 2 bytes
    # int8/int4 need a checkpoint quantized beforehand: not a way to serve this one
    assert qwen["weights_gb"] == {"bf16": 15.24, "fp16": 15.24, "fp8": 7.62}
    assert qwen["source"] and qwen["as_of"]
    e5 = next(r for r in records if r["kind"] == "embedding")
    assert e5["kv_bytes_per_token"] is None and set(e5["weights_gb"]) == {"fp16"}
    for columns in (100, 80):
        text = run("models", columns=columns)
        assert widest(text) <= columns and ELLIPSIS not in text
        for record in records:
            assert sum(line.startswith(record["model"] + " ") for line in text.splitlines()) == 1
    assert qwen["source"] in run("models", "--wide")


def test_models_lists_the_ollama_tags_with_engine_ollama(cli):
    """Every built-in tag, its row from the data file and the KV cache its attention shape gives."""
    records = cli("models", "--engine", "ollama", "--format", "json").json()
    assert [r["tag"] for r in records] == [row["tag"] for row in data_rows("ollama_models.csv")]
    coder = next(r for r in records if r["tag"] == "deepseek-coder:6.7b")
    assert coder["quantization"] == "q4_0" and coder["size_gb"] == 3.8 and coder["context_length"] == 16384
    assert coder["kv_bytes_per_token"] == 2 * 32 * 32 * 128 * 2  # K+V x layers x KV heads x head dim x 2 bytes
    assert all(r["source"] and r["as_of"] for r in records)
    for columns in (100, 80):
        text = run("models", "--engine", "ollama", columns=columns)
        assert widest(text) <= columns and ELLIPSIS not in text
        for record in records:
            assert sum(line.startswith(record["tag"] + " ") for line in text.splitlines()) == 1
    assert coder["source"] in run("models", "--engine", "ollama", "--wide")
    assert "--engine ollama" in run("models")


@pytest.mark.parametrize("stack", ["dev", "staging", "alicloud-dev"])  # AWS, DigitalOcean, Alibaba Cloud
def test_plan_is_identical_run_to_run(stack):
    first, second = run("plan", "--stack", stack), run("plan", "--stack", stack)
    assert first == second
    resources = json.loads(first)["resources"]
    assert [(r["name"], r["type"]) for r in resources] == sorted((r["name"], r["type"]) for r in resources)


def test_plan_table_prints_structured_outputs_as_json(tmp_path):
    """prod with a domain of the user's own (the shipped file has none): the outputs with structure are JSON."""
    with_domain = tmp_path / "Pulumi.prod.yaml"
    with_domain.write_text((ROOT / "stacks" / "Pulumi.prod.yaml").read_text() + "  llm-deploy:domain: llm.acme-inference.io\n")
    text = run("plan", "--config", str(with_domain), "--format", "table")
    outputs = dict(line.split(": ", 1) for line in text.splitlines() if line.startswith(("instance_types: ", "dns_record: ",
                                                                                          "certificate_validation_records: ")))
    assert json.loads(outputs["instance_types"]) == {"llm-embedding-rerank": "p5.4xlarge"}
    assert json.loads(outputs["dns_record"])["type"] == "CNAME"
    assert json.loads(outputs["certificate_validation_records"])[0]["type"] == "CNAME"
    assert "{'" not in text and "[{'" not in text
    table = text.split("\nendpoint: ")[0]
    assert widest(table) <= 100 and ELLIPSIS not in table


@pytest.mark.parametrize(("stack", "holds_the_key"), [("staging", True), ("dev", False), ("alicloud-dev", False)])
def test_render_dir_files_that_hold_a_secret_are_mode_0600(stack, holds_the_key, tmp_path):
    """DigitalOcean's user-data carries the API key inline; AWS and Alibaba Cloud nodes read it from the secret store."""
    target = tmp_path / "render"
    target.mkdir()
    if holds_the_key:  # a readable file of an older render is overwritten with the mode set anew
        (target / "llm-embedding-rerank.yaml").write_text("an older render\n")
        (target / "llm-embedding-rerank.yaml").chmod(0o644)
    run("plan", "--stack", stack, "--render-dir", str(target))
    files = sorted(target.glob("*.yaml"))
    assert files
    for path in files:
        text = path.read_text()
        assert text.startswith("#cloud-config")
        assert (MOCK_API_KEY in text) is holds_the_key
        assert stat.S_IMODE(path.stat().st_mode) == (0o600 if holds_the_key else 0o644), path.name
