"""`cost` says where each price comes from: source, region and date for every option, and when a price is
the specified cost table's (or the stack's own) rather than the provider's list price, the list price beside it."""

from __future__ import annotations

import pytest

PROVENANCE = {"price_source", "price_region", "price_as_of", "price_basis", "list_hourly_usd", "price_note"}


@pytest.mark.parametrize("stack", ["dev", "prod", "staging", "alicloud-dev"])
def test_every_option_and_choice_names_its_price_source_region_and_date(cli, stack):
    preview = cli("cost", "--stack", stack, "--format", "json").json()
    for service in preview["services"]:
        for record in [service["chosen"], *service["options"]]:
            assert PROVENANCE <= set(record)
            assert record["price_region"] == record["region"] and record["price_as_of"] == record["as_of"]
            assert record["price_source"] == record["source"] and record["region"] in record["price_note"]
    for group in preview["node_groups"]:
        assert group["price_note"] and group["price_as_of"]


def test_a_specified_price_is_labelled_with_the_list_price_beside_it(cli):
    preview = cli("cost", "--stack", "prod", "--format", "json").json()
    chosen = preview["services"][0]["chosen"]
    assert (chosen["instance_type"], chosen["hourly_usd"], chosen["price_basis"], chosen["list_hourly_usd"]) == (
        "p5.4xlarge", 4.38, "specified", 6.88)
    assert chosen["price_note"] == "the project's specified cost table; aws list price in us-east-1: 6.88 $/h"
    table = cli("cost", "--stack", "prod").stdout
    assert "Price of p5.4xlarge (llm-embedding-rerank): the project's specified cost table; aws list price in us-east-1: 6.88 $/h" in table
    markdown = cli("cost", "--stack", "prod", "--format", "markdown").stdout
    assert "- price of `p5.4xlarge` (llm-embedding-rerank): the project's specified cost table;" in markdown


def test_list_prices_and_overrides_are_told_apart(cli, stack_file):
    preview = cli("cost", "--stack", "dev", "--format", "json").json()
    g6 = next(o for o in preview["services"][0]["options"] if o["instance_type"] == "g6.xlarge")
    assert g6["price_basis"] == "list" and g6["list_hourly_usd"] is None
    assert g6["price_note"] == f"aws list price in {g6['region']} as of 2026-12-01"
    path = stack_file({"cloud": "aws", "region": "us-east-1", "priceOverrides": {"aws/g6.xlarge": 0.5},
                       "services": [{"name": "llm", "kind": "llm", "model": "Qwen/Qwen2.5-7B-Instruct"}]})
    chosen = cli("cost", "--config", str(path), "--format", "json").json()["services"][0]["chosen"]
    assert (chosen["hourly_usd"], chosen["price_basis"], chosen["list_hourly_usd"]) == (0.5, "override", 0.8048)
    assert chosen["price_note"] == "the stack's priceOverrides; catalog price in us-east-1: 0.8048 $/h"


def test_a_specified_price_beside_a_lowest_across_regions_list_price_says_so(cli, stack_file):
    path = stack_file({"cloud": "alicloud", "region": "ap-southeast-1", "priceOverrides": {},
                       "services": [{"name": "llm", "kind": "llm", "model": "Qwen/Qwen2.5-7B-Instruct", "gpuCount": 1}]})
    options = cli("cost", "--config", str(path), "--format", "json").json()["services"][0]["options"]
    gn7i = next(o for o in options if o["instance_type"] == "ecs.gn7i-c8g1.2xlarge")
    assert gn7i["price_note"] == (
        "the project's specified cost table; alicloud list price: 1.2684 $/h, the lowest across its regions "
        "(none sourced for ap-southeast-1 itself)")
