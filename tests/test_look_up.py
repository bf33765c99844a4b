"""The deployment template's look-up step (components/base.py): every cloud reads what it needs from the
cloud and refuses what the cloud cannot host there, naming the stack file and the field, before any
resource exists but the provider (which creates nothing in the cloud, and which every invoke needs).

Each deployment is built from a plan under the mock engine, recording the order in which the engine
sees invokes and resources.
"""

from __future__ import annotations

import dataclasses
import importlib

import pulumi
import pytest

from components.base import StackSecrets
from components.stack import deployment_class
from infra import clouds
from infra.cli.offline import CloudFakes, RecordingMocks
from infra.config import RawConfig, parse_config
from infra.errors import ConfigError, Problem
from infra.placement import place
from infra.plan import DeploymentPlan

SOURCE = "stacks/Pulumi.lookup.yaml"


class OrderRecordingMocks(RecordingMocks):
    """The offline fakes, with every resource and invoke recorded in the order the engine receives them."""

    def __init__(self) -> None:
        super().__init__(CloudFakes.load())
        self.events: list[tuple[str, str]] = []

    def new_resource(self, args):
        self.events.append(("resource", args.typ))
        return super().new_resource(args)

    def call(self, args):
        self.events.append(("invoke", args.token))
        return super().call(args)


def build(plan: DeploymentPlan, mocks: OrderRecordingMocks) -> None:
    """The cloud's deployment of `plan` under the mock engine; what it raises propagates, the events stay in `mocks`."""
    pulumi.runtime.set_mocks(mocks, project="llm-deploy", stack=plan.stack, preview=False)

    def program() -> None:
        deployment_class(plan.cloud)(plan.stack, plan, StackSecrets(api_key=pulumi.Output.secret("k" * 40)))

    try:
        pulumi.runtime.mocks.test(program)()
    finally:
        pulumi.runtime.set_mocks(RecordingMocks(CloudFakes.load()))


def plan_on(cloud: clouds.Cloud) -> DeploymentPlan:
    return place(parse_config(RawConfig("lookup", SOURCE, {"cloud": cloud.name})))


def created_before_refusal(cloud: clouds.Cloud, mocks: OrderRecordingMocks) -> set[str]:
    """The resource types the engine saw beyond the deployment component itself and its provider."""
    own = {f"llm-deploy:{cloud.name}:Deployment"}
    return {typ for kind, typ in mocks.events if kind == "resource" and typ not in own and not typ.startswith("pulumi:providers:")}


@pytest.mark.parametrize("cloud", clouds.CLOUDS, ids=lambda c: c.name)
def test_every_invoke_runs_in_the_look_up_step_before_any_resource(cloud):
    mocks = OrderRecordingMocks()
    build(plan_on(cloud), mocks)
    events = mocks.events
    invokes = [i for i, (kind, _) in enumerate(events) if kind == "invoke"]
    first_resource = next(i for i, (kind, typ) in enumerate(events)
                          if kind == "resource" and not typ.startswith(("pulumi:providers:", "llm-deploy:")))
    assert invokes, "the look-up step read nothing from the cloud"
    assert max(invokes) < first_resource, events
    fakes = importlib.import_module(cloud.offline_module).INVOKES
    assert {typ for kind, typ in events if kind == "invoke"} == set(fakes)  # every look-up the cloud has, all in this step


@pytest.mark.parametrize(("cloud", "token", "answer", "says"), [
    (clouds.AWS, "aws:index/getAvailabilityZones:getAvailabilityZones",
     {"id": "us-east-1", "names": ["us-east-1a"], "zoneIds": ["use1-az1"], "state": "available"},
     "the region has 1 usable availability zone(s); the load balancer needs 2"),
    (clouds.ALICLOUD, "alicloud:index/getZones:getZones", {"ids": [], "zones": []},
     "no zone of the region offers the instance type of node group(s)"),
    (clouds.ALICLOUD, "alicloud:ecs/getImages:getImages", {"ids": [], "images": []}, "no Ubuntu 22.04 system image for"),
], ids=["aws-one-zone", "alicloud-no-zone", "alicloud-no-image"])
def test_a_region_the_cloud_cannot_host_is_refused_naming_region_with_nothing_created(cloud, token, answer, says, monkeypatch):
    fakes = importlib.import_module(cloud.offline_module)
    monkeypatch.setitem(fakes.INVOKES, token, lambda args: answer)
    plan = plan_on(cloud)
    mocks = OrderRecordingMocks()
    with pytest.raises(ConfigError) as refused:
        build(plan, mocks)
    (refusal,) = refused.value.problems
    assert (refusal.source, refusal.field) == (SOURCE, "region") and refusal.message.startswith(f"{plan.region}: "), str(refusal)
    assert says in refusal.message, str(refusal)
    assert created_before_refusal(cloud, mocks) == set()


def test_digitalocean_gpu_count_without_a_base_image_is_refused_naming_the_catalog():
    """Placement refuses such a catalog row; a plan made another way meets the same rule in the look-up step."""
    plan = plan_on(clouds.DIGITALOCEAN)
    group = plan.node_groups[0]
    two_gpus = dataclasses.replace(group, offer=dataclasses.replace(group.offer, instance_type="gpu-h100x2-160gb", gpu_count=2))
    mocks = OrderRecordingMocks()
    with pytest.raises(ConfigError) as refused:
        build(dataclasses.replace(plan, node_groups=(two_gpus, *plan.node_groups[1:])), mocks)
    unbootable = clouds.DIGITALOCEAN.gpu_count_problem(2)
    assert refused.value.problems == [
        Problem(SOURCE, "catalogFile", f"gpu-h100x2-160gb (node group {group.name!r}): {unbootable}", "pin another gpu")]
    assert created_before_refusal(clouds.DIGITALOCEAN, mocks) == set()

