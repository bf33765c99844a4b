"""The Alibaba Cloud rollout gate (components/alicloud/rollout.py) in real time against a local stand-in of ESS and
ALB: signed RPC GETs checked like the real endpoints check them (signature, each product's API version, the
documented parameters of each action, nothing else), and a scaling group whose instances boot, join the ALB
server groups and pass their health checks as time goes by. Field names are the APIs' (ESS 2014-08-28
DescribeScalingInstances / DescribeScalingGroups / DescribeScalingActivities; ALB 2020-06-16
ListServerGroupServers / GetListenerHealthStatus)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import pytest
from pulumi.dynamic.dynamic import serialize_provider

from components.alicloud.rollout import ALB_VERSION, ESS_VERSION, Gate, RolloutFailed, RolloutProvider, roll_out
from infra.cli.refresh.alicloud import client
from tests.alicloud_api import COMMON, SignedRpc, serve

KEY, SECRET = "LTAI5tFAKEgate0123", "gate-secret-0123456789abcdef01"
REGION = "ap-southeast-1"
GROUP_ID = "asg-t4n0tsb3cl2m2kxpzhqd"
LISTENER = "lsn-0bfuc8a7p0kz2c9ss5"
SERVER_GROUPS = ("sgp-llm00000000000001", "sgp-emb00000000000002")

# Each action's product version and the request parameters its API reference documents (the ones the gate may send).
ACTIONS = {
    "DescribeScalingGroups": (ESS_VERSION, {"RegionId", "ScalingGroupIds.1", "PageNumber", "PageSize"}),
    "ModifyScalingGroup": (ESS_VERSION, {"RegionId", "ScalingGroupId", "MinSize", "MaxSize", "DesiredCapacity"}),
    "EnableScalingGroup": (ESS_VERSION, {"RegionId", "ScalingGroupId", "ActiveScalingConfigurationId"}),
    "DescribeScalingInstances": (ESS_VERSION, {"RegionId", "ScalingGroupId", "PageNumber", "PageSize", "HealthStatus",
                                               "LifecycleState"}),
    "DescribeScalingActivities": (ESS_VERSION, {"RegionId", "ScalingGroupId", "PageNumber", "PageSize", "StatusCode"}),
    "ListServerGroupServers": (ALB_VERSION, {"ServerGroupId", "MaxResults", "NextToken"}),
    "GetListenerHealthStatus": (ALB_VERSION, {"ListenerId", "IncludeRule", "MaxResults", "NextToken"}),
}
REQUIRED = {"DescribeScalingGroups": {"RegionId"}, "ModifyScalingGroup": {"ScalingGroupId"}, "EnableScalingGroup": {"ScalingGroupId"},
            "DescribeScalingInstances": {"RegionId"}, "DescribeScalingActivities": {"RegionId", "ScalingGroupId"},
            "ListServerGroupServers": set(), "GetListenerHealthStatus": {"ListenerId"}}


@dataclass
class Node:
    instance_id: str
    launched: float
    healthy_after: float | None  # seconds from launch until the ALB checks pass; None: never


@dataclass
class Cloud:
    """One scaling group and the ALB in front of it, moving on with the clock."""

    boot_s: float = 0.3  # Pending → InService, and the ALB attach (Adding → Available)
    healthy_after: list[float | None] = field(default_factory=list)  # per launched node, in launch order; default 0.6 s
    stock: int = 100  # nodes ESS can launch before "no stock"
    state: str = "Inactive"
    size: int = 0  # MinSize = MaxSize
    nodes: list[Node] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    resizes: list[tuple[int, int]] = field(default_factory=list)  # (new size, nodes healthy at that moment)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def tick(self) -> None:
        """ESS launches up to the group's size while enabled and in stock."""
        if self.state != "Active":
            return
        while len(self.nodes) < min(self.size, self.stock):
            n = len(self.nodes)
            delay = self.healthy_after[n] if n < len(self.healthy_after) else 0.6
            self.nodes.append(Node(f"i-t4n{n:017d}", time.monotonic(), delay))

    def in_service(self, node: Node) -> bool:
        return time.monotonic() - node.launched >= self.boot_s

    def passing(self, node: Node) -> bool:
        return node.healthy_after is not None and time.monotonic() - node.launched >= node.healthy_after

    def healthy_count(self) -> int:
        return sum(self.in_service(n) and self.passing(n) for n in self.nodes)


class Api(SignedRpc):
    cloud: Cloud

    def answer(self, params: dict[str, str]) -> tuple[int, dict]:
        action = params.get("Action", "")
        if action not in ACTIONS:
            return 404, {"Code": "InvalidAction.NotFound", "Message": f"Specified api is not found: {action}"}
        version, allowed = ACTIONS[action]
        if params.get("Version") != version:
            return 400, {"Code": "InvalidVersion", "Message": f"{action} is not in version {params.get('Version')}"}
        own = set(params) - COMMON
        if own - allowed or REQUIRED[action] - own:
            return 400, {"Code": "InvalidParameter", "Message": f"{action}: unknown {sorted(own - allowed)}, missing {sorted(REQUIRED[action] - own)}"}
        with self.cloud.lock:
            self.cloud.tick()
            self.cloud.calls.append(action)
            return 200, getattr(self, action)(params)

    def DescribeScalingGroups(self, params: dict) -> dict:
        group = {"ScalingGroupId": GROUP_ID, "LifecycleState": self.cloud.state, "MinSize": self.cloud.size,
                 "MaxSize": self.cloud.size, "TotalCapacity": len(self.cloud.nodes)}
        found = [group] if params.get("ScalingGroupIds.1") == GROUP_ID else []
        return {"TotalCount": len(found), "PageNumber": 1, "PageSize": 10, "ScalingGroups": {"ScalingGroup": found}}

    def ModifyScalingGroup(self, params: dict) -> dict:
        size = int(params["MinSize"])
        assert params["MaxSize"] == params["MinSize"]
        self.cloud.resizes.append((size, self.cloud.healthy_count()))
        self.cloud.size = size
        self.cloud.tick()
        return {}

    def EnableScalingGroup(self, params: dict) -> dict:
        self.cloud.state = "Active"
        self.cloud.tick()
        return {}

    def DescribeScalingInstances(self, params: dict) -> dict:
        page, per_page = int(params.get("PageNumber", "1")), int(params.get("PageSize", "10"))
        rows = [{"InstanceId": n.instance_id, "ScalingGroupId": GROUP_ID, "HealthStatus": "Healthy", "CreationType": "AutoCreated",
                 "LifecycleState": "InService" if self.cloud.in_service(n) else "Pending", "ZoneId": f"{REGION}a"}
                for n in self.cloud.nodes]
        return {"TotalCount": len(rows), "PageNumber": page, "PageSize": per_page,
                "ScalingInstances": {"ScalingInstance": rows[(page - 1) * per_page:page * per_page]}}

    def DescribeScalingActivities(self, params: dict) -> dict:
        activities = []
        if self.cloud.size > self.cloud.stock:
            activities.append({"StatusCode": "Failed", "Progress": 0, "Description": "Add instances",
                               "StatusMessage": "Fail to create Instance into scaling group(The resource is out of stock in the "
                                                "specified zone. Please try other types, or choose other regions and zones.)."})
        activities.append({"StatusCode": "Successful", "Progress": 100, "Description": "Add instances", "StatusMessage": ""})
        return {"TotalCount": len(activities), "PageNumber": 1, "PageSize": 10, "ScalingActivities": {"ScalingActivity": activities}}

    def ListServerGroupServers(self, params: dict) -> dict:
        if params.get("ServerGroupId") not in SERVER_GROUPS:
            return {"Servers": [], "TotalCount": 0, "MaxResults": 20}
        servers = [{"ServerId": n.instance_id, "ServerType": "Ecs", "Port": 80, "Weight": 100, "ServerGroupId": params["ServerGroupId"],
                    "Status": "Available" if self.cloud.in_service(n) else "Adding"} for n in self.cloud.nodes]
        # one server per page, so the gate must follow NextToken
        start = int(params.get("NextToken") or 0)
        more = start + 1 < len(servers)
        return {"Servers": servers[start:start + 1], "TotalCount": len(servers), "MaxResults": 1,
                **({"NextToken": str(start + 1)} if more else {})}

    def GetListenerHealthStatus(self, params: dict) -> dict:
        def info(server_group: str) -> dict:
            failing = [{"ServerId": n.instance_id, "Port": 80, "ServerIp": "10.42.0.7", "Status": "Initial" if n.healthy_after else "Unhealthy",
                        "Reason": {"ReasonCode": "RESPONSE_MISMATCH", "ExpectedResponse": "HTTP_2xx", "ActualResponse": "HTTP_503"}}
                       for n in self.cloud.nodes if not self.cloud.passing(n)]
            return {"ServerGroupId": server_group, "ActionType": "ForwardGroup", "HealthCheckEnabled": "on", "NonNormalServers": failing}

        return {"ListenerHealthStatus": [{"ListenerId": LISTENER, "ListenerPort": 80, "ListenerProtocol": "HTTP",
                                          "ServerGroupInfos": [info(SERVER_GROUPS[0])]}],
                "RuleHealthStatus": [{"RuleId": f"rule-{n}", "ServerGroupInfos": [info(sg)]} for n, sg in enumerate(SERVER_GROUPS)]}


@pytest.fixture
def cloud(monkeypatch):
    Api.cloud = Cloud()
    with serve(Api, monkeypatch, KEY, SECRET):
        yield Api.cloud


def gate(size: int, batch: int, timeout_seconds: int = 3) -> Gate:
    return Gate("llm", REGION, GROUP_ID, LISTENER, SERVER_GROUPS, size, batch, timeout_seconds)


FAST = {"poll_seconds": 0.05}


def test_a_new_group_is_enabled_at_one_batch_and_grows_only_when_the_batch_is_healthy(cloud):
    started = time.monotonic()
    assert roll_out(client(), gate(3, 1), **FAST) == 3
    # each resize came when every node before it was healthy behind the ALB: one node at a time
    assert cloud.resizes == [(1, 0), (2, 1), (3, 2)]
    assert cloud.calls.index("EnableScalingGroup") > cloud.calls.index("ModifyScalingGroup")  # sized before it launches
    assert time.monotonic() - started >= 3 * 0.6  # three boots one after the other


def test_batches_of_two_add_two_nodes_at_a_time(cloud):
    assert roll_out(client(), gate(3, 2), **FAST) == 3
    assert cloud.resizes == [(2, 0), (3, 2)]


def test_a_node_that_never_passes_its_health_check_fails_the_rollout_within_the_bound(cloud):
    cloud.healthy_after = [0.4, None]  # the second node's /healthz never answers 200
    started = time.monotonic()
    with pytest.raises(RolloutFailed) as failed:
        roll_out(client(), gate(3, 1, timeout_seconds=2), **FAST)
    elapsed = time.monotonic() - started
    assert 2 <= elapsed < 4.5
    assert str(failed.value).startswith(f"node group llm: 1 of 2 node(s) of scaling group {GROUP_ID} healthy behind the load balancer")
    assert "the previous nodes keep serving" in str(failed.value)
    assert cloud.resizes == [(1, 0), (2, 1)]  # the third batch never started


def test_no_stock_fails_with_esss_own_reason_naming_the_node_group(cloud):
    cloud.stock = 0
    with pytest.raises(RolloutFailed, match=r"node group llm: 0 of 1 node\(s\).*ESS: Failed: Fail to create Instance.*out of stock"):
        roll_out(client(), gate(1, 1, timeout_seconds=1), **FAST)


def test_an_enabled_group_resumes_from_its_size_and_never_shrinks(cloud):
    cloud.state, cloud.size = "Active", 2
    cloud.tick()
    assert roll_out(client(), gate(3, 1), **FAST) == 3
    assert cloud.resizes == [(3, 2)]
    assert "EnableScalingGroup" not in cloud.calls


def test_a_running_group_at_its_size_only_waits(cloud):
    cloud.state, cloud.size = "Active", 2
    cloud.tick()
    assert roll_out(client(), gate(2, 1), **FAST) == 2
    assert cloud.resizes == [] and "EnableScalingGroup" not in cloud.calls


def test_the_provider_rolls_out_from_the_properties_the_engine_hands_it(cloud, monkeypatch):
    """The engine passes numbers as floats; the provider reads its credentials from the environment like the provider."""
    monkeypatch.setattr("components.alicloud.rollout.POLL_SECONDS", 0.05)
    props = {"node_group": "llm", "region": REGION, "scaling_group_id": GROUP_ID, "listener_id": LISTENER,
             "server_group_ids": list(SERVER_GROUPS), "size": 2.0, "batch": 1.0, "timeout_seconds": 3.0, "healthy": None}
    created = RolloutProvider().create(props)
    assert created.id == f"{GROUP_ID}-rollout" and created.outs["healthy"] == 2
    assert cloud.resizes == [(1, 0), (2, 1)]
    diff = RolloutProvider().diff(created.id, props, {**props, "scaling_group_id": "asg-other"})
    assert diff.changes and diff.replaces == ["scaling_group_id"] and diff.delete_before_replace is False
    assert RolloutProvider().update(created.id, props, {**props, "size": 2.0}).outs["healthy"] == 2


def test_the_stand_in_refuses_what_the_real_api_refuses(cloud):
    """The stub is as strict as the endpoints: a wrong version or an undocumented parameter is an error."""
    from infra.cli.refresh import RefreshError

    api = client()
    with pytest.raises(RefreshError, match="InvalidVersion"):
        api.call("DescribeScalingInstances", "ess", ALB_VERSION, RegionId=REGION, ScalingGroupId=GROUP_ID)
    with pytest.raises(RefreshError, match="InvalidParameter"):
        api.call("ModifyScalingGroup", "ess", ESS_VERSION, RegionId=REGION, ScalingGroupId=GROUP_ID, MinSizes="1")


def test_the_gate_loads_in_a_fresh_interpreter_as_pulumis_dynamic_provider_host_loads_it(tmp_path):
    """`pulumi up` runs the gate in another process: the provider as Pulumi serializes it (dill, base64) loads there
    by reference to its module, with the module's poll interval and the ESS/ALB versions it calls."""
    (tmp_path / "provider.b64").write_text(serialize_provider(RolloutProvider()))
    script = ("import base64, dill, sys; p = dill.loads(base64.b64decode(open(sys.argv[1]).read())); m = sys.modules[type(p).__module__]; "
              "print(type(p).__module__, type(p).__name__, m.POLL_SECONDS, m.ESS_VERSION, m.ALB_VERSION)")
    loaded = subprocess.run([sys.executable, "-c", script, str(tmp_path / "provider.b64")], capture_output=True, text=True,
                            cwd=tmp_path, check=True)
    assert loaded.stdout.split() == ["components.alicloud.rollout", "RolloutProvider", "15", ESS_VERSION, ALB_VERSION]
