"""`spotPolicy` (stack and service): refusals naming the key, each node group's policy, and the cost preview's
on-demand and spot prices side by side with the totals for the policy in force."""

from __future__ import annotations

import csv
import dataclasses
import io

import pytest

from infra import clouds
from infra.catalog import CATALOG_COLUMNS
from infra.cost import cost_preview
from infra.cost_report import cost_markdown
from infra.data_files import DATA_DIR
from infra.placement import evaluate
from infra.plan import safest_policy
from tests.helpers import LLM, fields, stack_config, stack_problems

EMBEDDING = {"name": "embedding", "kind": "embedding", "model": "intfloat/multilingual-e5-large-instruct"}
RERANK = {"name": "rerank", "kind": "rerank", "model": "BAAI/bge-reranker-large"}


def catalog_rows(**match: str) -> list[dict[str, str]]:
    rows = csv.DictReader(io.StringIO((DATA_DIR / "catalog.csv").read_text()))
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


def test_safest_policy_wins_in_a_shared_group():
    assert safest_policy(["spot", "auto"]) == "auto"
    assert safest_policy(["spot", "on-demand", "auto"]) == "on-demand"
    assert safest_policy(["spot"]) == "spot"
    assert safest_policy([]) == "on-demand"


def test_a_cloud_without_spot_rents_none_of_its_types_as_spot():
    """The record's traits decide, not the cloud's name: AWS rents any type as spot, DigitalOcean only its -spot
    sizes, and a record without spot (as a cloud of one's own servers would be) none."""
    assert clouds.AWS.spot_problem("g6.xlarge") is None
    assert clouds.DIGITALOCEAN.spot_problem("gpu-b300x1-288gb-spot") is None
    assert clouds.DIGITALOCEAN.spot_problem("gpu-h100x1-80gb") == (
        "digitalocean sells spot only as its own sizes (.+-spot), not gpu-h100x1-80gb")
    assert dataclasses.replace(clouds.AWS, name="own", spot=False).spot_problem("g6.xlarge") == "own rents no spot capacity"


def test_bad_policies_are_named_with_the_other_problems_in_one_run(stack_file):
    path = stack_file({"cloud": "aws", "spotPolicy": "cheap", "rollout": {"batchSize": 0},
                       "services": [LLM, {**EMBEDDING, "spotPolicy": "sometimes"}]})
    problems = stack_problems(path)
    assert fields(problems) == [(str(path), "services[1].spotPolicy"), (str(path), "spotPolicy"), (str(path), "rollout.batchSize")]
    assert problems[0].message == "must be one of 'on-demand', 'auto' or 'spot'"


@pytest.mark.parametrize(("values", "field"), [
    ({"spotPolicy": "spot"}, "spotPolicy"),
    ({"spotPolicy": "auto"}, "spotPolicy"),
    ({"services": [{**LLM, "spotPolicy": "auto"}]}, "services[0].spotPolicy"),
])
def test_digitalocean_refuses_spot_on_its_on_demand_sizes(stack_file, values, field):
    """DigitalOcean sells spot only as its own `-spot` sizes (its record's spot_instance_types), and the
    built-in catalog has none of them: once per key, naming it, however many services it covers."""
    path = stack_file({"cloud": "digitalocean", **values})
    (refused,) = stack_problems(path)
    assert (refused.source, refused.field) == (str(path), field)
    assert "digitalocean sells spot only as its own sizes (.+-spot), not gpu-" in refused.message
    assert refused.hint == "set spotPolicy: on-demand, or deploy on a cloud that rents spot"


def test_a_spot_service_beside_an_on_demand_one_shares_its_node_on_demand(stack_file):
    """On DigitalOcean the LLM asking for auto shares the embedding's on-demand droplet: the group is on-demand,
    and the preview says what was asked and what is in force."""
    config = stack_config(stack_file, {"cloud": "digitalocean", "services": [{**LLM, "spotPolicy": "auto"}, EMBEDDING]})
    evaluation = evaluate(config)
    assert evaluation.problems == ()
    (group,) = evaluation.plan.node_groups
    assert group.spot_policy == "on-demand"
    llm = cost_preview(evaluation).as_json()["services"][0]
    assert (llm["spot_policy_asked"], llm["spot_policy"]) == ("auto", "on-demand")


def test_digitalocean_takes_spot_on_a_size_it_sells_as_spot(stack_file, tmp_path):
    """A catalog of the user's own with DigitalOcean's B300 spot size (its /v2/sizes row: 1x B300 288 GB, 28 vCPU,
    448 GB, 8.00 $/h, ../shared/data/digitalocean.csv) in a region of the user's account: spot is placed on it."""
    row = {column: "" for column in CATALOG_COLUMNS} | {
        "cloud": "digitalocean", "instance_type": "gpu-b300x1-288gb-spot", "region": "tor1", "gpu": "B300", "gpu_count": "1",
        "gpu_memory_gb": "288", "vcpus": "28", "memory_gb": "448", "hourly_usd": "8.0", "spot_hourly_usd": "8.0",
        "price_basis": "list", "source": "third-party /v2/sizes dump dated 2026-10-08", "as_of": "2026-10-08"}
    catalog = tmp_path / "catalog.csv"
    with catalog.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=CATALOG_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerow(row)
    config = stack_config(stack_file, {"cloud": "digitalocean", "catalogFile": str(catalog), "spotPolicy": "spot",
                                       "services": [LLM]})
    evaluation = evaluate(config)
    assert evaluation.problems == ()
    (group,) = evaluation.plan.node_groups
    assert (group.offer.instance_type, group.spot_policy) == ("gpu-b300x1-288gb-spot", "spot")
    preview = cost_preview(evaluation).as_json()
    assert preview["policy_total_hourly_usd"] == preview["total_spot_hourly_usd"] == 8.0


def test_auto_cloud_with_spot_leaves_out_what_cannot_be_rented_as_spot(stack_file):
    """`cloud: auto` with spot: DigitalOcean's on-demand sizes are options that do not fit (the reason says why),
    and the stack lands where spot is rented."""
    config = stack_config(stack_file, {"spotPolicy": "spot", "services": [LLM, EMBEDDING, RERANK]})
    evaluation = evaluate(config)
    assert evaluation.plan.cloud != "digitalocean"
    assert {g.spot_policy for g in evaluation.plan.node_groups} == {"spot"}
    options = cost_preview(evaluation).as_json()["services"][0]["options"]
    digitalocean = [o for o in options if o["cloud"] == "digitalocean"]
    assert digitalocean and all(not o["feasible"] for o in digitalocean)
    assert all(o["reason"].startswith("spotPolicy spot: digitalocean sells spot only as its own sizes") for o in digitalocean)


def test_a_group_takes_the_safest_policy_of_its_services(stack_file):
    """dev's services on AWS: llm and embedding share a g6.xlarge; the embedding's on-demand wins over the stack's spot."""
    config = stack_config(stack_file, {"cloud": "aws", "region": "us-east-1", "spotPolicy": "spot",
                                       "services": [LLM, {**EMBEDDING, "spotPolicy": "on-demand"}, {**RERANK, "spotPolicy": "auto"}]})
    evaluation = evaluate(config)
    policies = {g.name: g.spot_policy for g in evaluation.plan.node_groups}
    preview = cost_preview(evaluation).as_json()
    services = {s["name"]: (s["spot_policy_asked"], s["spot_policy"], s["node_group"]) for s in preview["services"]}
    for name, (asked, in_force, group) in services.items():
        assert in_force == policies[group]
        assert asked == {"llm": "spot", "embedding": "on-demand", "rerank": "auto"}[name]
    shared = [g for g in evaluation.plan.node_groups if len(g.services) > 1]
    for group in shared:
        asked = [services[s.name][0] for s in group.services]
        assert group.spot_policy == safest_policy(asked)
    assert preview["spot_policy"] == "spot"


def test_cost_shows_on_demand_and_spot_side_by_side_with_catalog_prices(stack_file):
    """The AWS us-east-1 rows of the catalog (SkyPilot's): each option's nodes at the on-demand and the spot price,
    null where the catalog has no spot price; each group's and the stack's totals at spot and at the policy."""
    config = stack_config(stack_file, {"cloud": "aws", "region": "us-east-1", "spotPolicy": "auto",
                                       "services": [{**LLM, "replicas": 2}, EMBEDDING, {**RERANK, "spotPolicy": "on-demand"}]})
    preview = cost_preview(evaluate(config))
    document = preview.as_json()
    spot_prices = {r["instance_type"]: r["spot_hourly_usd"] for r in catalog_rows(cloud="aws", region="us-east-1")}
    for service in document["services"]:
        for option in service["options"]:
            if option["cloud"] != "aws":
                continue
            sourced = spot_prices[option["instance_type"]]
            expected = round(float(sourced) * option["nodes"], 6) if sourced else None
            assert option["nodes_spot_hourly_usd"] == expected, option["instance_type"]
            assert option["spot_hourly_usd"] == (float(sourced) if sourced else None)  # the instance's, as in the catalog
    groups = {g["name"]: g for g in document["node_groups"]}
    for group in preview.plan.node_groups:
        record = groups[group.name]
        spot = float(spot_prices[group.offer.instance_type])
        assert record["spot_hourly_usd"] == round(spot * group.count, 6)
        on_demand = float(record["instance_hourly_usd"]) if "instance_hourly_usd" in record else group.offer.hourly_usd
        # auto on AWS: one node on-demand (the Auto Scaling group's on-demand base), the rest at the spot price
        expected = {"on-demand": group.count * on_demand, "auto": on_demand + (group.count - 1) * spot}[group.spot_policy]
        assert record["policy_hourly_usd"] == round(expected, 6), group.name
    assert document["total_spot_hourly_usd"] == round(sum(g["spot_hourly_usd"] for g in groups.values()), 6)
    assert document["policy_total_hourly_usd"] == round(sum(g["policy_hourly_usd"] for g in groups.values()), 6)
    assert document["total_spot_hourly_usd"] < document["policy_total_hourly_usd"] < document["total_hourly_usd"]
    assert "auto: spot prices while spot capacity lasts, but for the nodes the cloud keeps on-demand" in document["spot_note"]
    assert "at most the on-demand total" in document["spot_note"]
    markdown = cost_markdown(preview)
    assert "| spot $/h | spotPolicy | policy $/h |" in markdown
    for group in preview.plan.node_groups:
        assert f"| {group.spot_policy} |" in markdown


def test_cost_table_has_a_spot_column_and_the_totals(cli):
    result = cli("cost", "--stack", "dev", "--wide")
    assert result.code == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if "instance" in line and "$/h" in line)
    assert header.index("$/h") < header.index("spot $/h") < header.index("$/month")
    assert "Spot policy: stack on-demand" in result.stdout
    assert "policy total:" in result.stdout and "Spot total:" in result.stdout
    assert "does not place on spot capacity yet" not in result.stdout


def test_an_on_demand_stack_bills_on_demand_and_says_so(cli):
    document = cli("cost", "--stack", "prod", "--format", "json").json()
    assert document["spot_policy"] == "on-demand"
    assert document["policy_total_hourly_usd"] == document["total_hourly_usd"]
    assert document["total_spot_hourly_usd"] is None  # p5.4xlarge's price is the specified cost table's: no spot price sourced
    assert document["spot_note"] == "every node group on-demand"
