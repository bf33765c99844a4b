"""The health gate of a node group's scaling group: it grows the group in batches and waits for ALB health.

ESS has no rolling update that waits for load-balancer health on a scaling configuration's user-data
(its instance refresh takes an image or a launch template only, and ESS's LOAD_BALANCER health check has
no grace period, so it would recycle nodes that are still booting). So a change is blue/green: a new
scaling group (components/alicloud/node_group.py), created disabled, beside the old one. This gate, a
Pulumi dynamic resource created after the ALB attachments, enables it at `rollout.batchSize` nodes and
grows it batch by batch; a batch counts only when ESS reports each of its instances InService and
Healthy and the ALB has it in every server group of the node group with no failing health check. Each
batch has the node group's time-to-healthy bound (its boot estimate's grace); past it `pulumi up` fails
with ESS's last failed scaling activity (e.g. no stock of any listed type in any zone), and the old
group, deleted only at the end of a successful update, keeps serving.

The calls are Alibaba's OpenAPI (RPC, signed like the catalog refresh's ECS calls, with the same
ALICLOUD_ACCESS_KEY / ALICLOUD_SECRET_KEY the provider reads), so no SDK of its own is needed:
ESS 2014-08-28 DescribeScalingGroups, ModifyScalingGroup, EnableScalingGroup, DescribeScalingInstances,
DescribeScalingActivities; ALB 2020-06-16 ListServerGroupServers, GetListenerHealthStatus.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import pulumi
import pulumi.dynamic

from components.alicloud.layout import rollout_steps

ESS_VERSION = "2014-08-28"
ALB_VERSION = "2020-06-16"
POLL_SECONDS = 15  # the ALB checks every 10 s (components/alicloud/load_balancer.py health_check)
PAGE_SIZE = 50  # the most DescribeScalingInstances returns per page


class Api(Protocol):
    def call(self, action: str, endpoint: str, version: str = ..., **params: str) -> dict: ...


class RolloutFailed(Exception):
    """A batch did not become healthy in time: `pulumi up` fails and the old scaling group keeps serving."""


@dataclass(frozen=True)
class Gate:
    """What one node group's gate watches and how it grows the group."""

    node_group: str
    region: str
    scaling_group_id: str
    listener_id: str
    server_group_ids: tuple[str, ...]
    size: int  # the group's min = max size when the rollout is done
    batch: int  # nodes added per step
    timeout_seconds: int  # per batch: the node group's time-to-healthy bound

    @property
    def ess(self) -> str:
        return f"ess.{self.region}.aliyuncs.com"

    @property
    def alb(self) -> str:
        return f"alb.{self.region}.aliyuncs.com"

    @classmethod
    def of(cls, props: dict[str, Any]) -> Gate:
        """From the dynamic resource's properties (the engine hands numbers over as floats)."""
        return cls(node_group=props["node_group"], region=props["region"], scaling_group_id=props["scaling_group_id"],
                   listener_id=props["listener_id"], server_group_ids=tuple(props["server_group_ids"]),
                   size=int(props["size"]), batch=int(props["batch"]), timeout_seconds=int(props["timeout_seconds"]))


def _scaling_instances(api: Api, gate: Gate) -> Iterator[dict]:
    page = 1
    while True:
        answer = api.call("DescribeScalingInstances", gate.ess, ESS_VERSION, RegionId=gate.region,
                          ScalingGroupId=gate.scaling_group_id, PageNumber=str(page), PageSize=str(PAGE_SIZE))
        instances = answer["ScalingInstances"]["ScalingInstance"]
        yield from instances
        if page * PAGE_SIZE >= answer["TotalCount"] or not instances:
            return
        page += 1


def alb_pages(api: Api, action: str, endpoint: str, **params: str) -> Iterator[dict]:
    """Every page of an ALB list call (NextToken paging); `llm-deploy status` reads server health with it too."""
    token = ""
    while True:
        answer = api.call(action, endpoint, ALB_VERSION, **params, **({"NextToken": token} if token else {}))
        yield answer
        token = answer.get("NextToken", "")
        if not token:
            return


def healthy_instances(api: Api, gate: Gate) -> list[str]:
    """The group's instances that serve: InService and Healthy in ESS, and in each of the node group's ALB server
    groups attached (Available) with no failing health check."""
    serving = [i["InstanceId"] for i in _scaling_instances(api, gate) if (i["LifecycleState"], i["HealthStatus"]) == ("InService", "Healthy")]
    if not serving:
        return []
    health = server_health(api, gate.alb, gate.listener_id, gate.server_group_ids)
    if any(passing is None for _, passing in health.values()):
        return []  # a server group the listener does not check (yet): nothing of it counts as healthy
    return [i for i in serving if all(i in health[sg][1] for sg in gate.server_group_ids)]


def server_health(api: Api, endpoint: str, listener_id: str,
                  server_group_ids: tuple[str, ...]) -> dict[str, tuple[set[str], set[str] | None]]:
    """Per server group (attached servers, those of them that pass): attached is Available; passing is not failing the
    listener's health check, None for a group the listener (or one of its rules) does not health-check."""
    members = {sg: {s["ServerId"] for page in alb_pages(api, "ListServerGroupServers", endpoint, ServerGroupId=sg)
                    for s in page["Servers"] if s["Status"] == "Available"} for sg in server_group_ids}
    # GetListenerHealthStatus lists only the servers that are not healthy, per server group of the listener and of its rules.
    checked: set[str] = set()
    failing: set[tuple[str, str]] = set()
    for page in alb_pages(api, "GetListenerHealthStatus", endpoint, ListenerId=listener_id, IncludeRule="true"):
        for entry in [*page.get("ListenerHealthStatus", []), *page.get("RuleHealthStatus", [])]:
            for info in entry["ServerGroupInfos"]:
                if info["HealthCheckEnabled"] == "on":
                    checked.add(info["ServerGroupId"])
                failing.update((info["ServerGroupId"], s["ServerId"]) for s in info.get("NonNormalServers", []))
    return {sg: (members[sg], {i for i in members[sg] if (sg, i) not in failing} if sg in checked else None)
            for sg in server_group_ids}


def last_failure(api: Api, gate: Gate) -> str:
    """ESS's newest scaling activity that did not succeed, as it words it (no stock, quota, ...), or ''."""
    answer = api.call("DescribeScalingActivities", gate.ess, ESS_VERSION, RegionId=gate.region,
                      ScalingGroupId=gate.scaling_group_id, PageSize="10")
    for activity in answer["ScalingActivities"]["ScalingActivity"]:
        if activity["StatusCode"] in ("Failed", "Warning", "Rejected"):
            return f"{activity['StatusCode']}: {activity['StatusMessage']}"
    return ""


def wait_healthy(api: Api, gate: Gate, size: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, poll_seconds: float | None = None) -> int:
    """Poll until `size` instances serve (every POLL_SECONDS unless told); RolloutFailed once the gate's bound has passed."""
    deadline = clock() + gate.timeout_seconds
    while True:
        healthy = len(healthy_instances(api, gate))
        if healthy >= size:
            return healthy
        if clock() >= deadline:
            reason = last_failure(api, gate)
            raise RolloutFailed(
                f"node group {gate.node_group}: {healthy} of {size} node(s) of scaling group {gate.scaling_group_id} "
                f"healthy behind the load balancer after {gate.timeout_seconds} s (its time-to-healthy bound)"
                + (f"; ESS: {reason}" if reason else "")
                + "; the previous nodes keep serving until an update succeeds"
            )
        sleep(poll_seconds or POLL_SECONDS)


def _group(api: Api, gate: Gate) -> dict:
    answer = api.call("DescribeScalingGroups", gate.ess, ESS_VERSION, RegionId=gate.region, **{"ScalingGroupIds.1": gate.scaling_group_id})
    groups = answer["ScalingGroups"]["ScalingGroup"]
    if not groups:
        raise RolloutFailed(f"node group {gate.node_group}: scaling group {gate.scaling_group_id} not found")
    return groups[0]


def _resize(api: Api, gate: Gate, size: int) -> None:
    api.call("ModifyScalingGroup", gate.ess, ESS_VERSION, RegionId=gate.region, ScalingGroupId=gate.scaling_group_id,
             MinSize=str(size), MaxSize=str(size))


def roll_out(api: Api, gate: Gate, **waiting: Any) -> int:
    """Enable a new (Inactive) group at the first batch and grow it to its size batch by batch, each batch healthy
    before the next; a group already enabled (a gate re-run after a failure, or an existing stack) resumes from
    its current size and never shrinks. Returns the healthy count."""
    group = _group(api, gate)
    steps = rollout_steps(gate.size, gate.batch)
    if group["LifecycleState"] == "Inactive":
        _resize(api, gate, steps[0])
        api.call("EnableScalingGroup", gate.ess, ESS_VERSION, RegionId=gate.region, ScalingGroupId=gate.scaling_group_id)
        healthy = wait_healthy(api, gate, steps[0], **waiting)
        steps = steps[1:]
    else:
        steps = tuple(s for s in steps if s > group["MinSize"])
        healthy = wait_healthy(api, gate, min(group["MinSize"], gate.size), **waiting)
    for size in steps:
        _resize(api, gate, size)
        healthy = wait_healthy(api, gate, size, **waiting)
    return healthy


def _api() -> Api:
    from infra.cli.refresh.alicloud import client

    return client()


class RolloutProvider(pulumi.dynamic.ResourceProvider):
    """Create: the rollout of a new scaling group. Update (a new size or batch, same group): wait until that many
    serve. Delete: nothing; the gate owns no cloud resource."""

    serialize_as_secret_always = False  # it captures no secret, so its code stays readable in the state

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        gate = Gate.of(props)
        healthy = roll_out(_api(), gate)
        return pulumi.dynamic.CreateResult(id_=f"{gate.scaling_group_id}-rollout", outs={**props, "healthy": healthy})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        changed = [k for k in Gate.__dataclass_fields__ if olds.get(k) != news.get(k)]
        # A new scaling group is a new rollout; anything else is waited for in place.
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=[k for k in changed if k == "scaling_group_id"],
                                         delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        gate = Gate.of(news)
        return pulumi.dynamic.UpdateResult(outs={**news, "healthy": wait_healthy(_api(), gate, gate.size)})


class Rollout(pulumi.dynamic.Resource, module="alicloud", name="Rollout"):
    """`pulumi-python:dynamic/alicloud:Rollout`: the health gate of one node group's scaling group; its inputs are
    the fields of `Gate`."""

    healthy: pulumi.Output[int]

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None, **gate: pulumi.Input[Any]) -> None:
        if sorted(gate) != sorted(Gate.__dataclass_fields__):
            raise TypeError(f"Rollout takes the fields of Gate, not {sorted(gate)}")
        super().__init__(RolloutProvider(), name, {**gate, "healthy": None}, opts)
