"""Each node group's fallback offers (what a component may launch when its offer has no capacity), ranked from
the real catalog: the same cloud, region, GPU model and count, the same placed services, no less vCPU or RAM,
the same disk, a boot within the group's grace; cheapest first, the group's own offer left out."""

from __future__ import annotations

import pytest

from infra.catalog import load_offers
from infra.models import checkpoint_disk_gb
from infra.node_storage import node_group
from infra.placement import evaluate, fit
from tests.helpers import STACKS, shipped, shipped_plan, stack_config


@pytest.mark.parametrize("stack", STACKS)
def test_every_fallback_serves_the_group_as_it_is(stack):
    plan = shipped_plan(stack)
    for group in plan.node_groups:
        primary = group.offer
        prices = [o.hourly_usd for o in group.fallback_offers]
        assert prices == sorted(prices), group.name
        for offer in group.fallback_offers:
            assert (offer.cloud, offer.region, offer.gpu, offer.gpu_count) == (primary.cloud, primary.region, primary.gpu,
                                                                               primary.gpu_count)
            assert offer.instance_type != primary.instance_type
            assert offer.vcpus >= primary.vcpus and offer.memory_gb >= primary.memory_gb


def test_alibaba_groups_fall_back_on_the_bigger_sizes_of_the_same_gpu():
    """alicloud-dev in ap-southeast-1, the catalog's Alibaba rows: the LLM and embedding group on 1x A10
    (gn7i), the reranker on 1x T4 (gn6i); every bigger size of the same GPU and count, by price (gn6i-c40g1.10xlarge
    costs less than gn6i-c24g1.6xlarge in the catalog)."""
    groups = {g.name: g for g in shipped_plan("alicloud-dev").node_groups}
    assert groups["llm-embedding"].offer.instance_type == "ecs.gn7i-c16g1.4xlarge"
    assert [o.instance_type for o in groups["llm-embedding"].fallback_offers] == [
        "ecs.gn7i-c32g1.8xlarge", "ecs.gn7i-c48g1.12xlarge", "ecs.gn7i-c56g1.14xlarge"]
    assert groups["rerank"].offer.instance_type == "ecs.gn6i-c4g1.xlarge"
    assert [o.instance_type for o in groups["rerank"].fallback_offers] == [
        "ecs.gn6i-c8g1.2xlarge", "ecs.gn6i-c16g1.4xlarge", "ecs.gn6i-c40g1.10xlarge", "ecs.gn6i-c24g1.6xlarge"]


def test_a_fallback_that_would_boot_past_the_grace_is_left_out():
    """dev on AWS: g6.xlarge (1x L4, its 250 GB NVMe holds the model cache) falls back on g6.8xlarge, whose NVMe
    does too; g6.2xlarge and g6.4xlarge (no NVMe in data/instance_disks.csv) would load the weights from gp3
    and boot past the group's health-check grace, so an instance refresh would kill them."""
    plan = shipped_plan("dev")
    group = next(g for g in plan.node_groups if g.offer.instance_type == "g6.xlarge")
    assert [o.instance_type for o in group.fallback_offers] == ["g6.8xlarge"]
    offers = {o.instance_type: o for o in load_offers() if o.cloud == "aws" and o.region == plan.region}
    checkpoints = [checkpoint_disk_gb_of(s.model) for s in group.services]
    for slower in ("g6.2xlarge", "g6.4xlarge"):
        other = node_group(group.name, offers[slower], group.count, group.services, checkpoints)
        assert other.boot.grace_seconds > group.boot.grace_seconds, slower


def checkpoint_disk_gb_of(model: str) -> float:
    from infra.models import find_model

    return checkpoint_disk_gb(find_model(model))


def test_cpu_groups_fall_back_on_cpu_types_at_least_as_large(stack_file):
    """Encoders on CPU (AWS us-east-1): the fallbacks are CPU types with no less vCPU and RAM, and fit places the
    same encoders on them."""
    encoders = [{"name": "embedding", "kind": "embedding", "model": "intfloat/multilingual-e5-large-instruct", "accelerator": "cpu"},
                {"name": "rerank", "kind": "rerank", "model": "BAAI/bge-reranker-large", "accelerator": "cpu"}]
    evaluation = evaluate(stack_config(stack_file, {"cloud": "aws", "region": "us-east-1", "services": encoders}))
    (group,) = evaluation.plan.node_groups
    assert group.offer.gpu_count == 0 and group.fallback_offers
    for offer in group.fallback_offers:
        assert offer.gpu_count == 0 and offer.vcpus >= group.offer.vcpus and offer.memory_gb >= group.offer.memory_gb
        assert fit(evaluation.needs, offer).services == group.services
    same_region_cpu = [o for o in load_offers() if o.cloud == "aws" and o.region == "us-east-1" and o.gpu_count == 0
                       and o.instance_type != group.offer.instance_type and o.vcpus >= group.offer.vcpus
                       and o.memory_gb >= group.offer.memory_gb]
    assert {o.instance_type for o in group.fallback_offers} == {o.instance_type for o in same_region_cpu}


def test_the_plan_lists_the_fallbacks_with_their_prices():
    plan, result = shipped("alicloud-dev")
    records = {g["name"]: g for g in result.summary.as_json()["node_groups"]}
    for group in plan.node_groups:
        listed = records[group.name]["fallback_offers"]
        assert [f["instance_type"] for f in listed] == [o.instance_type for o in group.fallback_offers]
        assert [f["instance_hourly_usd"] for f in listed] == [o.hourly_usd for o in group.fallback_offers]
