"""AWS rollouts: the waiter `pulumi up` runs after an autoscaling group's change, and what the plan asks of an
instance refresh, a mixed instances policy, Spot and the AMI.

The waiter talks to a real boto3 AutoScaling client behind botocore's Stubber (which checks every call's
parameters and every answer against the service's model), or behind a timeline whose answers change with the
real clock as a running refresh's do; it waits on the real clock. The plan tests run the real program under the offline engine.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import math
import re
import subprocess
import sys
import time
from typing import ClassVar

import boto3
import pulumi_aws as aws
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber
from pulumi.dynamic.dynamic import serialize_provider

from components.aws import node_group
from components.aws import offline as fakes
from components.aws.layout import health_check, image_parameters, rollout
from components.aws.node_group import DRAIN_SECONDS, RefreshWaiter, RolloutFailed, wait_for_refresh
from infra.catalog import read_catalog
from infra.cli import offline
from infra.config import parse_config
from infra.placement import place
from tests.helpers import LLM, of_type, one, raw_config

GROUP = "llm-asg-3f1c2d9"
STARTED = datetime.datetime(2026, 12, 1, 14, 0, tzinfo=datetime.UTC)
POLL = 0.05  # seconds between the waiter's calls here (30 in `pulumi up`)


def refresh(refresh_id: str, status: str, minutes: int = 0, percent: int = 0, reason: str | None = None) -> dict:
    """One InstanceRefresh as DescribeInstanceRefreshes answers it."""
    item = {"InstanceRefreshId": refresh_id, "AutoScalingGroupName": GROUP, "Status": status,
            "StartTime": STARTED + datetime.timedelta(minutes=minutes), "PercentageComplete": percent, "InstancesToUpdate": 1}
    return item | ({"StatusReason": reason} if reason else {})


def autoscaling_client():
    """A real boto3 AutoScaling client; nothing it sends leaves the process (a stub answers before the HTTP call)."""
    return boto3.client("autoscaling", region_name="us-east-1", aws_access_key_id="AKIAFAKE", aws_secret_access_key="fake")


@pytest.fixture
def autoscaling():
    stubbed = autoscaling_client()
    with Stubber(stubbed) as stubber:
        yield stubbed, stubber
        stubber.assert_no_pending_responses()




def answers(stubber: Stubber, *lists: list[dict]) -> None:
    """DescribeInstanceRefreshes answers, one per call, in order (as a refresh moves on between polls)."""
    for refreshes in lists:
        stubber.add_response("describe_instance_refreshes", {"InstanceRefreshes": refreshes}, {"AutoScalingGroupName": GROUP})


class Timeline:
    """A refresh that moves on with the real clock: DescribeInstanceRefreshes answers the status of the last phase
    (seconds since the start, status) that has begun. Hooked where Stubber hooks: each call's parameters are
    recorded as given, botocore validates them against the service model, and the answer comes instead of the
    HTTP request (before-call). `refuse` names operations that answer a ValidationError."""

    def __init__(self, client, phases: list[tuple[float, str]], refuse: tuple[str, ...] = ()) -> None:
        self.phases, self.refuse, self.calls = phases, refuse, []
        self.start = time.monotonic()
        client.meta.events.register("before-parameter-build.auto-scaling.*", self.record)
        client.meta.events.register("before-call.auto-scaling.*", self.answer)

    def record(self, params, model, **_):
        self.calls.append((round(time.monotonic() - self.start, 3), model.name, dict(params)))

    def status(self) -> str:
        elapsed = time.monotonic() - self.start
        return [status for begins, status in self.phases if begins <= elapsed][-1]

    def answer(self, model, **_):
        if model.name in self.refuse:
            return (AWSResponse(None, 400, {}, None),
                    {"Error": {"Code": "ValidationError", "Message": f"{model.name} refused"}, "ResponseMetadata": {}})
        if model.name == "DescribeInstanceRefreshes":
            return AWSResponse(None, 200, {}, None), {"InstanceRefreshes": [refresh("r-new", self.status(), 5)]}
        return AWSResponse(None, 200, {}, None), {"InstanceRefreshId": "r-new"}

    def made(self, operation: str) -> list[float]:
        return [at for at, name, _ in self.calls if name == operation]


def test_waits_on_the_clock_until_the_new_refresh_succeeds():
    client = autoscaling_client()
    timeline = Timeline(client, [(0, "Pending"), (0.1, "InProgress"), (0.3, "Successful")])
    assert wait_for_refresh(client, GROUP, "r-old", timeout_seconds=10, poll_seconds=POLL) == "r-new"
    # until it succeeded, not the bound: both measured from the timeline's start, where its phases count from
    assert 0.3 <= time.monotonic() - timeline.start < 0.3 + 4 * POLL
    polls = timeline.made("DescribeInstanceRefreshes")
    assert len(polls) >= 5 and all(b - a >= POLL * 0.9 for a, b in itertools.pairwise(polls))  # it polls, it does not spin


def test_past_the_bound_the_refresh_is_rolled_back_and_up_fails():
    """A new node that never turns healthy: the refresh stays InProgress; at the bound it is rolled back."""
    client = autoscaling_client()
    timeline = Timeline(client, [(0, "InProgress")])
    bound = 0.3
    with pytest.raises(RolloutFailed, match=r"not done after 0.3 s .*0 % replaced\); rolled back; the nodes the group had"):
        wait_for_refresh(client, GROUP, "r-old", timeout_seconds=bound, poll_seconds=POLL)
    (rolled_back,) = timeline.made("RollbackInstanceRefresh")
    assert bound <= rolled_back < bound + 3 * POLL
    assert timeline.made("CancelInstanceRefresh") == []
    assert all(params == {"AutoScalingGroupName": GROUP} for _, _, params in timeline.calls)


def test_a_refresh_aws_will_not_roll_back_is_cancelled():
    client = autoscaling_client()
    timeline = Timeline(client, [(0, "InProgress")], refuse=("RollbackInstanceRefresh",))
    with pytest.raises(RolloutFailed, match="; cancelled;"):
        wait_for_refresh(client, GROUP, None, timeout_seconds=POLL, poll_seconds=POLL)
    assert len(timeline.made("RollbackInstanceRefresh")) == len(timeline.made("CancelInstanceRefresh")) == 1


def test_a_failed_refresh_fails_with_its_reason(autoscaling):
    client, stubber = autoscaling
    reason = "Instances failed to pass health checks"
    answers(stubber, [refresh("r-new", "InProgress", 5)], [refresh("r-new", "Failed", 5, reason=reason)])
    with pytest.raises(RolloutFailed, match=f"r-new ended Failed: {reason}; the nodes the group had keep serving"):
        wait_for_refresh(client, GROUP, None, timeout_seconds=10, poll_seconds=POLL)


@pytest.mark.parametrize("status", ["Cancelled", "RollbackSuccessful", "RollbackFailed"])
def test_a_refresh_that_ended_without_the_new_nodes_fails(autoscaling, status):
    client, stubber = autoscaling
    answers(stubber, [refresh("r-new", "RollbackInProgress", 5)], [refresh("r-new", status, 5)])
    with pytest.raises(RolloutFailed, match=f"ended {status}"):
        wait_for_refresh(client, GROUP, None, timeout_seconds=10, poll_seconds=POLL)


def test_no_new_refresh_means_nothing_to_wait_for(autoscaling):
    client, stubber = autoscaling
    answers(stubber, [refresh("r-old", "Successful")], [])
    started = time.monotonic()
    assert wait_for_refresh(client, GROUP, "r-old", timeout_seconds=10, poll_seconds=5) == "r-old"
    assert wait_for_refresh(client, GROUP, None, timeout_seconds=10, poll_seconds=5) is None  # a group never refreshed
    assert time.monotonic() - started < 1


def test_the_gate_judges_only_refreshes_after_the_last_it_saw(autoscaling, monkeypatch):
    """Created beside a running group it judges none of the group's past refreshes (a failed one of last week
    included); updated, it waits for the refresh the group's change started and records it."""
    client, stubber = autoscaling
    monkeypatch.setattr(node_group, "_autoscaling", lambda region: client)
    failed_before = refresh("r-past", "Failed", reason="an earlier outage")
    answers(stubber, [failed_before], [failed_before])
    props = {"region": "us-east-1", "group": GROUP, "launch_template_version": "3", "instance_types": ["g6e.xlarge"],
             "spot_policy": "on-demand", "timeout_seconds": 60}
    created = RefreshWaiter().create(props)
    assert created.id == GROUP and created.outs["refresh"] == "r-past"

    news = {**props, "launch_template_version": "4"}
    assert RefreshWaiter().diff(GROUP, created.outs, news).changes
    assert not RefreshWaiter().diff(GROUP, created.outs, {**props}).changes
    answers(stubber, [refresh("r-4", "InProgress", 60), failed_before], [refresh("r-4", "Successful", 60), failed_before])
    updated = RefreshWaiter(poll_seconds=POLL).update(GROUP, created.outs, news)
    assert updated.outs["refresh"] == "r-4" and updated.outs["launch_template_version"] == "4"


def test_the_gate_loads_in_a_fresh_interpreter_as_pulumis_dynamic_provider_host_loads_it(tmp_path):
    """`pulumi up` runs the gate in another process: the provider as Pulumi serializes it (dill, base64) loads
    there by reference to this module, and polls at the real interval."""
    serialized = serialize_provider(RefreshWaiter())
    (tmp_path / "provider.b64").write_text(serialized)
    script = ("import base64, dill, sys; p = dill.loads(base64.b64decode(open(sys.argv[1]).read())); "
              "print(type(p).__module__, type(p).__name__, p.poll_seconds)")
    loaded = subprocess.run([sys.executable, "-c", script, str(tmp_path / "provider.b64")], capture_output=True, text=True,
                            cwd=tmp_path, check=True)
    assert loaded.stdout.split() == ["components.aws.node_group", "RefreshWaiter", str(node_group.POLL_SECONDS)]


# --- what the plan asks of AWS -------------------------------------------------------------------

ASG, LT = "aws:autoscaling/group:Group", "aws:ec2/launchTemplate:LaunchTemplate"
GATE = "pulumi-python:dynamic/llm-deploy:RolloutGate"
RAW = raw_config("aws-rollout", {"cloud": "aws", "region": "us-east-1", "services": [LLM], "apiKey": "sk-rollout-" + "7c" * 20})
PLAN = place(parse_config(RAW))
(GPU_GROUP,) = PLAN.node_groups
PINNED_AMI = "ami-0a1b2c3d4e5f60718"


def changed(count: int = 1, batch: int = 1, **fields):
    """The placed plan with its one node group's count and `fields`, and the stack's rollout batch size."""
    group = dataclasses.replace(GPU_GROUP, count=count, **fields)
    return dataclasses.replace(PLAN, node_groups=(group,), rollout_batch_size=batch)


def same_gpu_offers(group) -> tuple:
    """Catalog offers of the group's region with its GPU model and count, other types, cheapest first (what
    placement lists as fallback offers)."""
    offers = [o for o in read_catalog() if (o.cloud, o.region, o.gpu, o.gpu_count) == (group.cloud, group.region, group.offer.gpu,
                                                                                     group.offer.gpu_count)]
    return tuple(sorted((o for o in offers if o.instance_type != group.offer.instance_type), key=lambda o: o.hourly_usd))


@pytest.mark.parametrize(("count", "batch", "max_healthy", "checkpoints"), [
    (1, 1, 200, ()),  # the one node's successor boots beside it
    (2, 1, 150, (50, 100)),  # the last checkpoint 100: AWS replaces only up to the last one
    (2, 2, 200, ()),
    (4, 1, 125, (25, 50, 75, 100)),
    (4, 2, 150, (50, 100)),
    (4, 4, 200, ()),
    (3, 1, 133, (33, 66, 100)),  # rounded down: 1 of 3 replaced (33.3 %) reaches 33
    (3, 5, 200, ()),  # a batch larger than the group is the group
])
def test_refresh_replaces_batch_nodes_at_a_time_new_before_old(count, batch, max_healthy, checkpoints):
    group = dataclasses.replace(GPU_GROUP, count=count)
    plan = dataclasses.replace(PLAN, rollout_batch_size=batch)
    got = rollout(group, plan.batch_size(group), DRAIN_SECONDS)
    assert (got.min_healthy_percentage, got.max_healthy_percentage, got.checkpoints) == (100, max_healthy, checkpoints)
    # AWS: min healthy rounded up, max of the desired capacity: never fewer than `count` in service, never more
    # than `batch` new nodes at once (whichever way AWS rounds the max)
    surge = min(batch, count)
    assert math.ceil(count * got.max_healthy_percentage / 100) - count <= surge
    assert count * got.max_healthy_percentage / 100 > count + surge - 1
    check = health_check(group.services[0], group.boot)
    assert got.instance_warmup == group.boot.grace_seconds + check["interval"]
    assert got.checkpoint_delay == check["interval"] * check["unhealthy_threshold"]
    batches = math.ceil(count / surge)
    pauses = got.checkpoint_delay if batches > 1 else 0
    assert got.timeout_seconds == batches * (got.instance_warmup + DRAIN_SECONDS + pauses)
    assert not got.checkpoints or (got.checkpoints[-1] == 100 and len(got.checkpoints) == batches)
    # each checkpoint is reached once its batch is replaced: replaced % >= threshold
    assert all(100 * min(count, (i + 1) * surge) / count >= p for i, p in enumerate(got.checkpoints))


@pytest.mark.parametrize(("count", "batch"), [(1, 1), (2, 1), (4, 2)])
def test_the_group_rolls_as_planned_and_up_waits_for_it(count, batch):
    plan = changed(count, batch)
    result = offline.run_offline(RAW, plan)
    (group,) = plan.node_groups
    expected = rollout(group, batch, DRAIN_SECONDS)
    asg = one(result, ASG, f"{group.name}-asg")["inputs"]
    preferences = asg["instanceRefresh"]["preferences"]
    assert preferences["minHealthyPercentage"] == 100 and preferences["maxHealthyPercentage"] == expected.max_healthy_percentage
    assert preferences["instanceWarmup"] == str(expected.instance_warmup)
    assert preferences.get("checkpointPercentages", []) == list(expected.checkpoints)
    assert preferences["autoRollback"] is True and preferences["skipMatching"] is True
    assert asg["healthCheckType"] == "ELB" and asg["healthCheckGracePeriod"] == group.boot.grace_seconds
    assert asg["waitForElbCapacity"] == count
    gate = one(result, GATE, f"{group.name}-rollout")["inputs"]
    assert gate["timeout_seconds"] == expected.timeout_seconds
    assert gate["group"] == result.answers[ASG, f"{group.name}-asg"]["name"]
    assert gate["region"] == "us-east-1" and gate["launch_template_version"] == "1"


def test_fallback_types_follow_the_placed_one_in_order_across_every_zone_offering_any():
    fallbacks = same_gpu_offers(GPU_GROUP)[:3]
    assert len(fallbacks) == 3, "the catalog has L4 types beside g6.xlarge in us-east-1"
    result = offline.run_offline(RAW, changed(2, fallback_offers=fallbacks))
    asg = one(result, ASG, "llm-asg")["inputs"]
    overrides = asg["mixedInstancesPolicy"]["launchTemplate"]["overrides"]
    assert [o["instanceType"] for o in overrides] == ["g6.xlarge", *(o.instance_type for o in fallbacks)]
    assert asg["mixedInstancesPolicy"]["instancesDistribution"]["onDemandAllocationStrategy"] == "prioritized"
    assert one(result, LT, "llm-lt")["inputs"]["instanceType"] == "g6.xlarge"
    assert one(result, GATE, "llm-rollout")["inputs"]["instance_types"] == [o["instanceType"] for o in overrides]
    subnets = {result.answers["aws:ec2/subnet:Subnet", r["name"]]["id"]: r["inputs"]["availabilityZone"]
               for r in of_type(result, "aws:ec2/subnet:Subnet")}
    # the fakes offer every type in every zone of the region but the first
    assert sorted(subnets.values()) == ["us-east-1b", "us-east-1c", "us-east-1d", "us-east-1e", "us-east-1f"]
    assert sorted(asg["vpcZoneIdentifiers"]) == sorted(subnets)


@pytest.mark.parametrize(("policy", "count", "base", "above", "spot"), [
    ("on-demand", 2, 0, 100, False),
    ("spot", 2, 0, 0, True),
    ("auto", 3, 1, 0, True),  # one on-demand node Spot cannot take away, the others Spot
    ("auto", 1, 1, 0, True),  # AWS has no Spot-to-on-demand fallback: a lone node stays on-demand
])
def test_spot_policy_sets_the_on_demand_base_and_spot_strategy(policy, count, base, above, spot):
    result = offline.run_offline(RAW, changed(count, spot_policy=policy))
    asg = one(result, ASG, "llm-asg")["inputs"]
    distribution = asg["mixedInstancesPolicy"]["instancesDistribution"]
    assert distribution["onDemandBaseCapacity"] == base
    assert distribution["onDemandPercentageAboveBaseCapacity"] == above
    assert distribution.get("spotAllocationStrategy") == ("price-capacity-optimized" if spot else None)
    assert asg["capacityRebalance"] is spot
    assert one(result, GATE, "llm-rollout")["inputs"]["spot_policy"] == policy


class OptionsRecordingMonitor(offline.UniqueUrnMonitor):
    """The offline engine's monitor, also keeping each resource's ignoreChanges (by type and name)."""

    ignored: ClassVar[dict[tuple[str, str], list[str]]] = {}

    def RegisterResource(self, request):
        self.ignored[request.type, request.name] = list(request.ignoreChanges)
        return super().RegisterResource(request)


@pytest.fixture
def recorded(monkeypatch):
    """Run the program recording ignoreChanges and the SSM parameters it reads."""
    monkeypatch.setattr(offline, "UniqueUrnMonitor", OptionsRecordingMonitor)
    OptionsRecordingMonitor.ignored = {}
    read: list[str] = []
    parameter = fakes.INVOKES["aws:ssm/getParameter:getParameter"]
    monkeypatch.setitem(fakes.INVOKES, "aws:ssm/getParameter:getParameter", lambda args: read.append(args["name"]) or parameter(args))

    def run(plan):
        return offline.run_offline(RAW, plan), OptionsRecordingMonitor.ignored, read

    return run


def test_an_unpinned_ami_is_looked_up_once_and_kept(recorded):
    result, ignored, read = recorded(changed(1))
    assert read == [image_parameters()["gpu"].parameter]
    assert one(result, LT, "llm-lt")["inputs"]["imageId"] == fakes.GPU_AMI
    assert ignored[LT, "llm-lt"] == ["imageId"]  # a new DLAMI release does not roll the nodes


def test_a_pinned_ami_is_used_without_a_look_up_and_rolls_when_it_changes(recorded):
    result, ignored, read = recorded(changed(1, image=PINNED_AMI))
    assert read == []
    assert one(result, LT, "llm-lt")["inputs"]["imageId"] == PINNED_AMI
    assert ignored[LT, "llm-lt"] == []


def args_class(annotation: str):
    """The SDK input type a property's annotation names ("pulumi.Input['GroupInstanceRefreshArgs']"), or None."""
    match = re.search(r"'(\w+Args)'", annotation)
    return getattr(aws.autoscaling, match.group(1)) if match else None


def unknown_names(cls, value, path: str) -> list[str]:
    """Every key of `value` (inputs as the engine received them) that the SDK's input type `cls` has no property for."""
    if isinstance(value, list):
        return [name for i, item in enumerate(value) for name in unknown_names(cls, item, f"{path}[{i}]")]
    if not isinstance(value, dict) or cls is None:
        return []
    properties = {getattr(p.fget, "_pulumi_name", None): p for p in vars(cls).values() if isinstance(p, property)}
    found = []
    for key, item in value.items():
        if key not in properties:
            found.append(f"{path}.{key}")
        else:
            found += unknown_names(args_class(str(properties[key].fget.__annotations__.get("return", ""))), item, f"{path}.{key}")
    return found


def test_every_autoscaling_group_argument_is_one_the_installed_sdk_knows():
    """An argument the SDK does not know reaches the engine untranslated (snake_case) and the provider ignores or
    refuses it: each name, nested ones too, must be a property of the SDK's input types."""
    result = offline.run_offline(RAW, changed(3, 2, spot_policy="auto", fallback_offers=same_gpu_offers(GPU_GROUP)[:2]))
    asg = one(result, ASG, "llm-asg")["inputs"]
    assert {"mixedInstancesPolicy", "instanceRefresh", "capacityRebalance", "waitForElbCapacity"} <= set(asg)
    assert unknown_names(aws.autoscaling.GroupArgs, asg, "Group") == []
    assert unknown_names(aws.autoscaling.GroupArgs, {"instanceRefresh": {"preferences": {"warmup": "1"}}}, "Group") == [
        "Group.instanceRefresh.preferences.warmup"]  # the check sees a wrong name
