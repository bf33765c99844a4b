"""The built-in catalog: rebuilt from the sourced data in ../shared/data, per-region prices and offerings,
the specified cost table kept with the list price beside it, and placement on the new rows."""

from __future__ import annotations

import csv
import os
import re
from collections import defaultdict

import pytest

from infra.catalog import DATA_DIR, REQUIRED_COLUMNS, load_offers, read_catalog
from infra.catalog_build import build_rows, catalog_text, specified_prices
from infra.cli.refresh import alicloud, aws, digitalocean
from infra.errors import ConfigError, Problem
from infra.placement import place
from tests.helpers import ROOT, stack_config

SHARED_DATA = ROOT.parent / "shared" / "data"
REFRESH_SOURCES = (aws.SOURCE, digitalocean.SOURCE, alicloud.SOURCE)
AWS_LISTINGS_BEFORE = 107  # (type, region) pairs of the AWS rows before the per-region catalog: 20 types, 6 regions


def shared_data():
    """../shared/data beside the repository. The project's CI (`.ci/run`) always has it there and sets
    LLM_DEPLOY_SHARED_DATA_REQUIRED=1, so there it fails when missing; a clone without it (a fork's
    GitHub Actions run, a user's machine) skips."""
    if (SHARED_DATA / "aws.csv").exists():
        return SHARED_DATA
    message = f"{SHARED_DATA} is missing (the sourced data the catalog is built from)"
    if os.environ.get("LLM_DEPLOY_SHARED_DATA_REQUIRED") == "1":
        pytest.fail(message)
    pytest.skip(message)


def committed_rows() -> list[dict[str, str]]:
    with open(DATA_DIR / "catalog.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def refreshed(row: dict[str, str]) -> bool:
    """A row `catalog refresh` wrote from a provider's API (the weekly pull request), not from ../shared/data."""
    return row["source"].split("; list price: ")[-1] in REFRESH_SOURCES


def test_committed_catalog_is_what_the_build_writes():
    built = build_rows(shared_data())
    committed = committed_rows()
    if not any(refreshed(r) for r in committed):
        assert catalog_text(built) == (DATA_DIR / "catalog.csv").read_text()
        return
    # after a merged refresh: every row still from the sourced data is exactly what the build writes
    by_key = {(r["cloud"], r["instance_type"], r["region"]): r for r in built}
    for row in committed:
        if not refreshed(row):
            assert row == by_key[(row["cloud"], row["instance_type"], row["region"])]


def test_every_aws_row_has_the_sourced_price_and_regions_of_its_type():
    with open(shared_data() / "aws.csv", newline="") as handle:
        sourced = {(r["instance_type"], r["region"]): r for r in csv.DictReader(handle) if r["ondemand_usd_per_hour"]}
    specified = specified_prices()
    rows = {(r["instance_type"], r["region"]): r for r in committed_rows() if r["cloud"] == "aws" and not refreshed(r)}
    if len(rows) == sum(r["cloud"] == "aws" for r in committed_rows()):  # no refresh merged yet: the very same rows
        assert set(rows) == set(sourced)
    for key, row in rows.items():
        source = sourced[key]
        list_price = row["list_hourly_usd"] if ("aws", key[0]) in specified else row["hourly_usd"]
        assert float(list_price) == float(source["ondemand_usd_per_hour"]), key
        assert (float(row["spot_hourly_usd"]) if row["spot_hourly_usd"] else None) == (
            float(source["spot_usd_per_hour"]) if source["spot_usd_per_hour"] else None), key
        assert (int(row["vcpus"]), float(row["memory_gb"]), int(row["gpu_count"])) == (
            int(source["vcpus"]), float(source["memory_gib"]), int(source["gpu_count"])), key


def test_regions_differ_in_price_and_g6_is_not_in_eu_west_1():
    offers = {(o.instance_type, o.region): o for o in read_catalog() if o.cloud == "aws"}
    assert ("g6.xlarge", "eu-west-1") not in offers and not any(t.startswith("g6.") and r == "eu-west-1" for t, r in offers)
    assert offers[("g5.xlarge", "eu-west-1")].hourly_usd > offers[("g5.xlarge", "us-east-1")].hourly_usd
    assert offers[("p5.48xlarge", "us-east-1")].hourly_usd == 55.04  # the post-cut list price, not 98.32


def test_aws_types_are_listed_in_three_times_as_many_regions():
    listings = defaultdict(set)
    for offer in read_catalog():
        if offer.cloud == "aws":
            listings[offer.instance_type].add(offer.region)
    assert sum(len(regions) for regions in listings.values()) >= 3 * AWS_LISTINGS_BEFORE
    assert {"g4dn.xlarge", "g7e.2xlarge", "p4de.24xlarge", "p6-b200.48xlarge", "p6-b300.48xlarge"} <= set(listings)


@pytest.mark.parametrize(("cloud", "instance_type", "price"), [
    ("digitalocean", "gpu-h200x1-141gb", 3.44), ("aws", "p5.4xlarge", 4.38), ("alicloud", "ecs.gn7i-c8g1.2xlarge", 2.20)])
def test_the_specified_cost_table_stays_with_the_list_price_beside_it(cloud, instance_type, price):
    rows = [o for o in read_catalog() if (o.cloud, o.instance_type) == (cloud, instance_type)]
    assert rows and all(o.hourly_usd == price and o.price_basis == "specified" for o in rows)
    assert all(o.list_hourly_usd and o.list_hourly_usd != price for o in rows)
    assert all(o.source.startswith("the project's specified cost table") and re.search(r"; list price( \(lowest-across-regions\))?: ",
                                                                                    o.source) for o in rows)
    if instance_type == "p5.4xlarge":
        assert {o.region: o.list_hourly_usd for o in rows}["us-east-1"] == 6.88


def test_every_row_has_a_source_and_a_date():
    for row in committed_rows():
        assert all(row[c] != "" for c in REQUIRED_COLUMNS if c not in ("gpu",)), row
        assert len(row["as_of"]) == 10 and row["as_of"].startswith("20"), row


CPU_RERANKER = {"name": "rerank", "kind": "rerank", "model": "BAAI/bge-reranker-base", "accelerator": "cpu"}


def test_a_cpu_reranker_on_alibaba_cloud_is_placed(stack_file):
    plan = place(stack_config(stack_file, {"cloud": "alicloud", "region": "ap-southeast-1", "services": [CPU_RERANKER]}))
    (group,) = plan.node_groups
    assert group.accelerator == "cpu" and group.offer.cloud == "alicloud" and group.offer.instance_type == "ecs.g7.xlarge"


def test_no_cpu_type_for_the_cloud_is_named_as_the_cause(stack_file, tmp_path):
    gpu_only = tmp_path / "gpu-only.csv"
    gpu_only.write_text("".join(line for line in (DATA_DIR / "catalog.csv").read_text().splitlines(keepends=True)
                                if not line.startswith("alicloud,ecs.g7.") and not line.startswith("alicloud,ecs.c7.")))
    with pytest.raises(ConfigError) as error:
        place(stack_config(stack_file, {"cloud": "alicloud", "catalogFile": str(gpu_only), "services": [CPU_RERANKER]}))
    assert error.value.problems == [Problem(f"{tmp_path}/Pulumi.test.yaml", "services[0].accelerator", "no CPU instance type for alicloud in the catalog")]


def test_a_cpu_service_too_big_for_every_cpu_type_is_told_the_largest(stack_file):
    big = {"name": "emb", "kind": "embedding", "model": "Qwen/Qwen3-Embedding-8B", "accelerator": "cpu", "paramsB": 8}
    with pytest.raises(ConfigError) as error:
        place(stack_config(stack_file, {"cloud": "digitalocean", "services": [big]}))
    (problem,) = error.value.problems
    assert problem.field == "services[0].model"
    assert problem.message.endswith("; the largest CPU instance type for digitalocean in the catalog has 16 GB"), problem.message


def test_catalog_build_command_writes_the_file_and_refuses_missing_data(cli, tmp_path):
    output = tmp_path / "catalog.csv"
    done = cli("catalog", "build", "--data-dir", str(shared_data()), "--output", str(output))
    assert done.code == 0, done.stderr
    assert output.read_text() == catalog_text(build_rows(SHARED_DATA))
    assert f"wrote {output}: " in done.stderr and "(aws " in done.stderr
    missing = cli("catalog", "build", "--data-dir", str(tmp_path / "nowhere"), "--output", str(tmp_path / "x.csv"))
    assert missing.code == 2 and not (tmp_path / "x.csv").exists()
    assert missing.stderr.strip().count("\n") == 0 and "nowhere/README.md: not found (is " in missing.stderr


def test_a_price_override_may_name_one_region(stack_file):
    services = [{"name": "llm", "kind": "llm", "model": "Qwen/Qwen2.5-7B-Instruct", "maxModelLen": 4096}]
    plan = place(stack_config(stack_file, {"cloud": "aws", "services": services,
                                      "priceOverrides": {"aws/g6.xlarge/eu-central-1": 0.3, "aws/g6.xlarge": 0.9}}))
    assert (plan.region, plan.node_groups[0].offer.instance_type, plan.hourly_usd) == ("eu-central-1", "g6.xlarge", 0.3)
    offers = {o.region: o for o in load_offers(None, {"aws/g6.xlarge/eu-central-1": 0.3, "aws/g6.xlarge": 0.9})
              if o.instance_type == "g6.xlarge"}
    assert offers["eu-central-1"].hourly_usd == 0.3 and offers["us-east-1"].hourly_usd == 0.9
    assert offers["eu-central-1"].list_hourly_usd == 1.0064 and offers["eu-central-1"].price_basis == "override"
    with pytest.raises(ConfigError) as error:
        place(stack_config(stack_file, {"cloud": "aws", "services": services, "priceOverrides": {"aws/g6.xlarge/eu-west-1": 0.3}}))
    assert [(p.field, p.message) for p in error.value.problems] == [("priceOverrides", "aws/g6.xlarge/eu-west-1 not in the catalog")]
