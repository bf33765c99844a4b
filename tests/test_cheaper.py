"""`cost` lists the few changes that cut the bill most and still place, each with its new $/h."""

from __future__ import annotations

import copy
import re

import pytest

from infra.config import load_raw, parse_config
from infra.placement import place
from tests.helpers import STACKS_DIR

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


def _apply(values: dict, change: dict) -> dict:
    """The stack with one suggested change made, as a user would edit the file."""
    changed = copy.deepcopy(values)
    field, value = change["field"], change["value"]
    if field == "cloud":
        cloud, region = re.fullmatch(r"(\S+) \(region (\S+)\)", value).groups()
        changed.update(cloud=cloud, region=region)
    elif field == "region":
        changed["region"] = value
    else:
        index, key = re.fullmatch(r"services\[(\d+)\]\.(\w+)", field).groups()
        service = changed["services"][int(index)]
        if key in ("gpu", "accelerator"):
            service.pop("gpu", None)
            service.pop("gpuCount", None)
        if key != "gpu":
            service[key] = int(value) if value.isdigit() else value
    return changed


def _suggestions(cli, stack_file, values: dict) -> tuple[float, list[dict]]:
    preview = cli("cost", "--config", str(stack_file(values)), "--format", "json").json()
    return preview["total_hourly_usd"], preview["cheaper"]


def _check(cli, stack_file, values: dict) -> list[dict]:
    """Every suggestion is cheaper, the list is cheapest first and short, and its $/h is what placing the change gives."""
    total, cheaper = _suggestions(cli, stack_file, values)
    assert 0 < len(cheaper) <= 4
    assert [c["hourly_usd"] for c in cheaper] == sorted(c["hourly_usd"] for c in cheaper)
    for change in cheaper:
        assert change["hourly_usd"] < total and change["saving_hourly_usd"] == pytest.approx(total - change["hourly_usd"])
        placed = place(parse_config(load_raw(config_file=str(stack_file(_apply(values, change), name="changed")))))
        assert placed.hourly_usd == pytest.approx(change["hourly_usd"]), change
    return cheaper


def test_the_issue_stack_learns_that_a_shorter_context_or_fp8_costs_less(cli, stack_file):
    """Issue 13: with KV room for 4 sequences, Llama-8B x2 needs more than an L4; maxModelLen 4096 or fp8 cost 1.61 $/h."""
    values = {"cloud": "aws", "services": [
        {"name": "llm", "kind": "llm", "model": LLAMA, "replicas": 2, "maxModelLen": 8192, "minConcurrency": 4}]}
    cheaper = {c["field"]: c for c in _check(cli, stack_file, values)}
    assert cheaper["services[0].maxModelLen"]["value"] == "4096"
    assert cheaper["services[0].maxModelLen"]["hourly_usd"] == pytest.approx(2 * 0.8048)
    assert cheaper["services[0].minConcurrency"]["hourly_usd"] == pytest.approx(2 * 0.8048)
    assert cheaper["services[0].dtype"]["value"] == "fp8" and cheaper["services[0].dtype"]["hourly_usd"] <= 2 * 0.8048
    assert "cloud" in cheaper  # DigitalOcean's 48 GB cards beat two g6e.xlarge


def test_a_pinned_gpu_and_a_pinned_region_get_their_alternatives(cli, stack_file):
    prod = parse_config(load_raw("prod", stacks_dir=STACKS_DIR))
    services = [s.model_dump(by_alias=True, exclude_defaults=True) for s in prod.services]
    cheaper = {c["field"]: c for c in _check(cli, stack_file, {"cloud": "aws", "region": "us-east-1", "services": services})}
    assert cheaper["services[0].gpu"]["hourly_usd"] < 8.76  # prod's H100 pin: an L40S holds the 32B fp8 model
    tokyo = {"cloud": "aws", "region": "ap-northeast-1", "services": [{"name": "llm", "kind": "llm", "model": LLAMA}]}
    cheaper = {c["field"]: c for c in _check(cli, stack_file, tokyo)}
    assert cheaper["region"]["value"] != "ap-northeast-1"  # ap-northeast-1 is 37-45 % dearer for g instances


def test_colocating_an_encoder_is_suggested_when_it_frees_a_node(cli, stack_file):
    values = {"cloud": "aws", "region": "us-east-1", "services": [
        {"name": "llm", "kind": "llm", "model": "Qwen/Qwen2.5-7B-Instruct", "maxModelLen": 4096},
        {"name": "embedding", "kind": "embedding", "model": "BAAI/bge-m3", "accelerator": "cpu"}]}
    cheaper = {c["field"]: c for c in _check(cli, stack_file, values)}
    assert cheaper["services[1].accelerator"]["value"] == "gpu"
    assert cheaper["services[1].accelerator"]["placement"] == "aws us-east-1: 1x g6.xlarge"  # both on one L4


def test_the_table_lists_the_changes_then_the_spot_policy(cli):
    text = cli("cost", "--stack", "dev").stdout
    assert "Cheaper: services[0].dtype: fp8: 0.80 $/h (-0.53) on aws us-east-1: 1x g6.xlarge" in text
    assert text.index("Cheaper: ") < text.index("Spot policy: stack on-demand")
