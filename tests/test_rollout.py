"""`rollout.batchSize` and `nodeImages` from the stack file to the plan: defaults that keep every shipped plan as it
was, refusals naming the field (every wrong pin in one run), and the values the program receives under the engine."""

from __future__ import annotations

import pytest

from infra.config import load_raw
from infra.placement import evaluate, load_config
from tests.helpers import LLM, STACKS, fields, plan_and_run, shipped_plan, stack_config, stack_problems

EMBEDDING = {"name": "embedding", "kind": "embedding", "model": "intfloat/multilingual-e5-large-instruct"}


@pytest.mark.parametrize("stack", STACKS)
def test_shipped_stacks_roll_one_node_at_a_time_unpinned_on_demand(stack):
    plan = shipped_plan(stack)
    assert plan.rollout_batch_size == 1
    for group in plan.node_groups:
        assert (plan.batch_size(group), group.image, group.spot_policy) == (1, None, "on-demand")


def test_a_batch_above_a_groups_count_is_the_whole_group(stack_file):
    config = stack_config(stack_file, {"cloud": "aws", "region": "us-east-1", "rollout": {"batchSize": 3},
                                       "services": [{**LLM, "replicas": 5}, {**EMBEDDING, "accelerator": "cpu"}]})
    plan = evaluate(config).plan
    assert plan.rollout_batch_size == 3
    assert {g.name: plan.batch_size(g) for g in plan.node_groups} == {g.name: min(3, g.count) for g in plan.node_groups}
    assert any(g.count > 3 for g in plan.node_groups) and any(g.count < 3 for g in plan.node_groups)


@pytest.mark.parametrize(("rollout", "field", "message"), [
    ({"batchSize": 0}, "rollout.batchSize", "must be >= 1"),
    ({"batchSize": 101}, "rollout.batchSize", "must be <= 100"),
    ({"batch": 2}, "rollout.batch", "unknown key"),
    (2, "rollout", "Input should be a valid dictionary or instance of RolloutConfig"),
])
def test_a_bad_rollout_is_refused_naming_the_field(stack_file, rollout, field, message):
    path = stack_file({"rollout": rollout})
    (refused,) = stack_problems(path)
    assert (refused.source, refused.field, refused.message) == (str(path), field, message)


def test_every_wrong_pin_is_named_in_one_run(stack_file):
    """dev's services on AWS (groups llm-embedding and rerank): a group the plan lacks, another cloud's id, a
    pin for a group that exists: two problems, each naming its entry, and the good pin kept."""
    services = [LLM, EMBEDDING, {"name": "rerank", "kind": "rerank", "model": "BAAI/bge-reranker-large"}]
    good = stack_file({"cloud": "aws", "region": "us-east-1", "services": services,
                       "nodeImages": {"llm-embedding": "ami-0c7217cdde317cfec", "rerank": "ami-0fe630eb857a6ec83"}}, name="good")
    assert stack_problems(good) == []
    path = stack_file({"cloud": "aws", "region": "us-east-1", "services": services, "nodeImages": {
        "llm": "ami-0c7217cdde317cfec", "rerank": "164324753", "llm-embedding": "ami-0c7217cdde317cfec"}})
    problems = stack_problems(path)
    assert fields(problems) == [(str(path), "nodeImages.llm"), (str(path), "nodeImages.rerank")]
    assert problems[0].message == "names no node group of the plan (its groups: llm-embedding, rerank)"
    assert problems[1].message == "'164324753' is not a machine image id of aws (ami-[0-9a-f]{8}([0-9a-f]{9})?)"


def test_a_pin_on_part_of_a_stack_is_judged_only_where_it_can_be(stack_file):
    """A service left out (its replicas invalid) changes the groups: the pins' group names are not judged, but an id
    of the wrong format for the pinned cloud still is."""
    path = stack_file({"cloud": "aws", "services": [LLM, {**EMBEDDING, "replicas": 0}],
                       "nodeImages": {"llm-embedding": "ami-0c7217cdde317cfec", "llm": "ubuntu-22-04-x64"}})
    assert fields(stack_problems(path)) == [(str(path), "services[1].replicas"), (str(path), "nodeImages.llm")]


def test_a_wrong_rollout_does_not_hide_the_pins_problems(stack_file):
    """rollout changes no node group, so with it wrong the pins are still judged against the plan, in the same run."""
    path = stack_file({"cloud": "aws", "region": "us-east-1", "rollout": {"batchSize": 0}, "services": [LLM, EMBEDDING],
                       "nodeImages": {"llm": "ami-0c7217cdde317cfec", "llm-embedding": "12"}})
    assert fields(stack_problems(path)) == [(str(path), "rollout.batchSize"), (str(path), "nodeImages.llm"),
                                            (str(path), "nodeImages.llm-embedding")]


def test_the_program_receives_the_batch_the_pins_and_the_policy(stack_file):
    """Through Pulumi's config (JSON for structures) under the mock engine, the plan is the one placement makes."""
    path = stack_file({"cloud": "aws", "region": "us-east-1", "spotPolicy": "auto", "rollout": {"batchSize": 2},
                       "services": [{**LLM, "replicas": 3}, EMBEDDING], "nodeImages": {"llm-embedding": "ami-0c7217cdde317cfec"}})
    raw = load_raw(config_file=str(path))
    plan, result = plan_and_run(raw)
    assert plan == evaluate(load_config(raw)).plan
    (record,) = result.summary.as_json()["node_groups"]
    assert (record["rollout_batch_size"], record["spot_policy"]) == (2, "auto")
    assert record["image"] == {"id": "ami-0c7217cdde317cfec", "pinned": True,
                               "note": "pinned in nodeImages; `llm-deploy images --update` takes the newest"}
