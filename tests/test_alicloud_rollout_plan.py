"""Alibaba Cloud changes under the offline engine: the rollout gate's place and inputs, the pinned or kept image,
the fallback instance types and zones, spot per `spotPolicy`; every argument a name the installed SDK knows."""

from __future__ import annotations

import re
from typing import ClassVar

import pulumi_alicloud as alicloud
import pytest

from components.alicloud import offline as fakes
from components.alicloud.layout import disk_layout, launch_fingerprint
from infra.cli import offline
from tests.helpers import LLM, answer, id_of, of_type, one, plan_and_run, raw_config

ASG = "alicloud:ess/scalingGroup:ScalingGroup"
LAUNCH = "alicloud:ess/scalingConfiguration:ScalingConfiguration"
ESS_ATTACH = "alicloud:ess/albServerGroupAttachment:AlbServerGroupAttachment"
RULE = "alicloud:alb/rule:Rule"
LISTENER = "alicloud:alb/listener:Listener"
SERVER_GROUP = "alicloud:alb/serverGroup:ServerGroup"
ROLLOUT = "pulumi-python:dynamic/alicloud:Rollout"
RANDOM_ID = "random:index/randomId:RandomId"
PINNED = "m-t4n0tsb3cl2m2kxpzhqd"

# The LLM with three replicas on A10 nodes, the reranker on a T4 node of its own: two node groups.
TWO_GROUPS = {"cloud": "alicloud", "region": "ap-southeast-1", "services": [
    {**LLM, "replicas": 3}, {"name": "rank", "kind": "rerank", "model": "BAAI/bge-reranker-base", "gpu": "T4"}]}


class OptionsRecordingMonitor(offline.UniqueUrnMonitor):
    """The offline engine's monitor, also keeping each resource's URN, dependencies and ignoreChanges."""

    options: ClassVar[dict[tuple[str, str], dict]] = {}

    def RegisterResource(self, request):
        self.options[request.type, request.name] = {
            "urn": self.make_urn(request.parent, request.type, request.name),
            "dependencies": set(request.dependencies),
            "ignoreChanges": list(request.ignoreChanges),
        }
        return super().RegisterResource(request)


@pytest.fixture
def run(monkeypatch):
    """Plan and run a config of this module's, recording each resource's options and the image look-ups."""
    monkeypatch.setattr(offline, "UniqueUrnMonitor", OptionsRecordingMonitor)
    images: list[str] = []
    look_up = fakes.INVOKES["alicloud:ecs/getImages:getImages"]
    monkeypatch.setitem(fakes.INVOKES, "alicloud:ecs/getImages:getImages", lambda args: images.append(args["instanceType"]) or look_up(args))

    def planned(**values):
        OptionsRecordingMonitor.options = {}
        images.clear()
        plan, result = plan_and_run(raw_config("ali-change", {**TWO_GROUPS, **values}))
        return plan, result, dict(OptionsRecordingMonitor.options), list(images)

    return planned


def test_each_node_group_has_a_rollout_gate_after_its_alb_attachments_and_rules(run):
    plan, result, options, _ = run(rollout={"batchSize": 2})
    assert len(of_type(result, ROLLOUT)) == len(plan.node_groups) == 2
    rules = {options[RULE, r["name"]]["urn"] for r in of_type(result, RULE)}
    for group in plan.node_groups:
        name = f"{plan.stack}-{group.name}-rollout"
        gate = one(result, ROLLOUT, name)["inputs"]
        assert gate["node_group"] == group.name and gate["region"] == plan.region
        assert gate["scaling_group_id"] == id_of(result, ASG, f"{plan.stack}-{group.name}-nodes")
        assert gate["listener_id"] == id_of(result, LISTENER, f"{plan.stack}-lb-http")
        assert gate["server_group_ids"] == [id_of(result, SERVER_GROUP, f"{plan.stack}-lb-{s.name}") for s in group.services]
        assert gate["size"] == group.count
        assert gate["batch"] == min(2, group.count)
        assert gate["timeout_seconds"] == group.boot.grace_seconds  # the time-to-healthy bound
        # created only once the ALB fills the group's server groups and routes to them
        attachments = {options[ESS_ATTACH, f"{plan.stack}-lb-{s.name}"]["urn"] for s in group.services}
        assert attachments | rules <= options[ROLLOUT, name]["dependencies"]
    assert [g.count for g in plan.node_groups] == [3, 1]


def test_the_new_group_starts_disabled_and_is_replaced_by_name(run):
    plan, result, options, _ = run()
    for group in plan.node_groups:
        launch = one(result, LAUNCH, f"{plan.stack}-{group.name}-launch")
        assert launch["inputs"]["enable"] is False and launch["inputs"]["active"] is True
        assert "enable" in options[LAUNCH, launch["name"]]["ignoreChanges"]  # the gate enables it; later updates leave it


def test_an_unpinned_image_is_looked_up_and_kept(run):
    plan, result, options, images = run()
    assert sorted(images) == sorted(g.offer.instance_type for g in plan.node_groups)
    for group in plan.node_groups:
        launch = one(result, LAUNCH, f"{plan.stack}-{group.name}-launch")
        assert launch["inputs"]["imageId"] == fakes.UBUNTU_IMAGE
        assert options[LAUNCH, launch["name"]]["ignoreChanges"] == ["enable", "imageId"]  # a new Ubuntu build rolls nothing


def test_a_pinned_image_is_used_without_a_look_up_and_a_new_pin_replaces_the_group(run):
    plan, _, _, _ = run()
    llm = plan.group_serving("llm").name
    pinned_plan, result, options, images = run(nodeImages={llm: PINNED})
    launch = one(result, LAUNCH, f"{plan.stack}-{llm}-launch")
    assert launch["inputs"]["imageId"] == PINNED
    assert options[LAUNCH, launch["name"]]["ignoreChanges"] == ["enable"]
    assert images == [pinned_plan.group_serving("rerank").offer.instance_type]  # only the unpinned group's type is looked up
    before = one(plan_and_run(raw_config("ali-change", TWO_GROUPS))[1], ASG, f"{plan.stack}-{llm}-nodes")["inputs"]["scalingGroupName"]
    after = one(result, ASG, f"{plan.stack}-{llm}-nodes")["inputs"]["scalingGroupName"]
    assert before != after  # a new name: blue/green to the pinned image


def test_a_stack_using_neither_pin_nor_spot_keeps_its_fingerprint(run):
    """The fingerprint of a stack that sets none of the new keys is what the nodes boot with, nothing else."""
    plan, result, _, _ = run()
    generation = answer(result, RANDOM_ID, f"{plan.stack}-secrets-generation")["hex"]
    for group in plan.node_groups:
        name = one(result, ASG, f"{plan.stack}-{group.name}-nodes")["inputs"]["scalingGroupName"]
        fingerprint = launch_fingerprint(group.offer.instance_type, disk_layout(group.disk_gb), result.user_data[group.name])
        assert name == f"llm-deploy-{plan.stack}-{group.name}-{fingerprint}-{generation}"


def test_a_rotated_secret_rolls_the_nodes_through_the_generation_in_the_group_names(run):
    """Nodes read the key from OOS at boot only: the generation id is replaced when a secret changes (its keepers are
    the parameters' values), and each scaling group's name carries it, so a new key means new, health-gated groups."""
    plan, generated, _, _ = run()
    keepers = of_type(generated, RANDOM_ID)[0]["inputs"]["keepers"]  # the generated key (the fake engine's, not secret)
    assert keepers == {f"llm-deploy/{plan.stack}/api-key": answer(generated, "random:index/randomPassword:RandomPassword", "api-key")["result"]}
    plan, result, _, _ = run(apiKey="sk-alicloud-rotated-7e3b9c1d5f2a", hfToken="hf_alicloudRotated4d3c2b1a")
    (generation,) = of_type(result, RANDOM_ID)
    assert generation["inputs"]["byteLength"] == 3
    assert generation["inputs"]["keepers"] == offline.SECRET_MARK  # the user's key and token: kept as a secret
    hex_id = answer(result, RANDOM_ID, generation["name"])["hex"]
    for group in plan.node_groups:
        name = one(result, ASG, f"{plan.stack}-{group.name}-nodes")["inputs"]["scalingGroupName"]
        assert name.endswith(f"-{hex_id}") and len(name) <= 64


def test_a_long_stack_name_keeps_the_whole_fingerprint():
    plan, result = plan_and_run(raw_config("a-stack-name-long-enough-to-need-cutting-at-64", TWO_GROUPS))
    for group in plan.node_groups:
        name = one(result, ASG, f"{plan.stack}-{group.name}-nodes")["inputs"]["scalingGroupName"]
        fingerprint = launch_fingerprint(group.offer.instance_type, disk_layout(group.disk_gb), result.user_data[group.name])
        assert len(name) <= 64 and re.search(f"-{fingerprint}-[0-9a-f]{{6}}$", name)


def test_fallback_types_follow_the_placed_type_and_add_their_zones(run, monkeypatch):
    """The placed type is in stock in zone c only, its fallbacks in zone a: the group's vSwitches cover both."""
    zones = fakes.INVOKES["alicloud:index/getZones:getZones"]

    def stocked(args):
        answer = zones(args)
        wanted = "c" if args["availableInstanceType"] == placed else "a"
        return {**answer, "zones": [z for z in answer["zones"] if z["id"].endswith(wanted)]}

    plan, _, _, _ = run()
    group = plan.group_serving("llm")
    placed = group.offer.instance_type
    assert group.fallback_offers, "the catalog holds other A10 sizes in the region"
    monkeypatch.setitem(fakes.INVOKES, "alicloud:index/getZones:getZones", stocked)
    plan, result, _, _ = run()
    launch = one(result, LAUNCH, f"{plan.stack}-{group.name}-launch")["inputs"]
    assert launch["instanceTypes"] == [placed, *(o.instance_type for o in group.fallback_offers)]
    switches = {s["name"]: s["inputs"]["zoneId"] for s in of_type(result, "alicloud:vpc/switch:Switch")}
    vswitch_zone = {id_of(result, "alicloud:vpc/switch:Switch", name): zone for name, zone in switches.items()}
    scaling = one(result, ASG, f"{plan.stack}-{group.name}-nodes")["inputs"]
    assert [vswitch_zone[v] for v in scaling["vswitchIds"]] == ["ap-southeast-1c", "ap-southeast-1a"]


@pytest.mark.parametrize(("policy", "compensate"), [("spot", False), ("auto", True)])
def test_spot_policies_make_a_cost_optimized_spot_group(run, policy, compensate):
    plan, result, _, _ = run(spotPolicy=policy)
    for group in plan.node_groups:
        scaling = one(result, ASG, f"{plan.stack}-{group.name}-nodes")["inputs"]
        assert scaling["multiAzPolicy"] == "COST_OPTIMIZED"
        assert (scaling["onDemandBaseCapacity"], scaling["onDemandPercentageAboveBaseCapacity"]) == (0, 0)
        assert scaling["spotInstanceRemedy"] is True and scaling["compensateWithOnDemand"] is compensate
        assert scaling["spotInstancePools"] == 1 + len(group.fallback_offers)
        assert one(result, LAUNCH, f"{plan.stack}-{group.name}-launch")["inputs"]["spotStrategy"] == "SpotAsPriceGo"


def test_on_demand_groups_stay_balanced_pay_as_you_go(run):
    plan, result, _, _ = run()
    for group in plan.node_groups:
        scaling = one(result, ASG, f"{plan.stack}-{group.name}-nodes")["inputs"]
        assert scaling["multiAzPolicy"] == "BALANCE" and "compensateWithOnDemand" not in scaling
        assert "spotStrategy" not in one(result, LAUNCH, f"{plan.stack}-{group.name}-launch")["inputs"]


def test_a_change_of_spot_policy_replaces_the_group(run):
    plan, on_demand, _, _ = run()
    _, auto, _, _ = run(spotPolicy="auto")
    for group in plan.node_groups:
        name = f"{plan.stack}-{group.name}-nodes"
        assert one(on_demand, ASG, name)["inputs"]["scalingGroupName"] != one(auto, ASG, name)["inputs"]["scalingGroupName"]


def sdk_names(cls) -> set[str]:
    """The engine-side (camelCase) names of an SDK input type's properties."""
    return {getattr(p.fget, "_pulumi_name", None) for p in vars(cls).values() if isinstance(p, property)}


@pytest.mark.parametrize(("token", "args"), [(ASG, alicloud.ess.ScalingGroupArgs), (LAUNCH, alicloud.ess.ScalingConfigurationArgs)])
def test_every_scaling_argument_is_one_the_installed_sdk_knows(run, token, args):
    """An argument the SDK does not know reaches the engine untranslated (snake_case) and the provider ignores it."""
    _, result, _, _ = run(spotPolicy="auto", rollout={"batchSize": 2})
    for resource in of_type(result, token):
        assert set(resource["inputs"]) - sdk_names(args) == set(), resource["name"]
        assert not [k for k in resource["inputs"] if re.search(r"_[a-z]", k)]
