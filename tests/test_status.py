"""`llm-deploy status`: one clear line without the Pulumi CLI; per cloud the nodes and services as the cloud reports
them (moto's Auto Scaling and ELBv2 for AWS, a stub of DigitalOcean's API and of the nodes' gateways on 127.0.0.1,
a stub of Alibaba Cloud's signed ESS RPC), the endpoint's /healthz, and the cost of what runs now."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from typing import ClassVar

import boto3
import pytest

from components.alicloud.rollout import ALB_VERSION
from infra.cli import status
from infra.cli.environments import INSTALL_HINT
from infra.cli.status.alicloud import ESS_VERSION
from infra.cli.status.digitalocean import group_tag
from tests.alicloud_api import COMMON, signed_params
from tests.helpers import ALI_KEY, ALI_SECRET, DO_TOKEN, ROOT, JsonStub, moto_account, shipped_plan, stub_api
from tests.test_environments import FAKE_PULUMI, FakePulumi

# --- without the Pulumi CLI ------------------------------------------------------------------------


def test_without_the_pulumi_cli_status_prints_one_line_and_exits_1(tmp_path):
    """PATH holds the interpreter's directory and the system's, none of them a `pulumi`."""
    path = os.pathsep.join([os.path.dirname(sys.executable), "/usr/bin", "/bin"])
    assert shutil.which("pulumi", path=path) is None
    result = subprocess.run([sys.executable, "-m", "infra", "status", "--stack", "prod"], cwd=ROOT, capture_output=True, text=True,
                            env={"PATH": path, "HOME": str(tmp_path)}, timeout=120, check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"error: the Pulumi CLI was not found: {INSTALL_HINT}"]
    assert result.stdout == ""


# --- AWS: moto -------------------------------------------------------------------------------------


class Aws:
    """A deployed stack in moto: per node group an Auto Scaling group tagged as the components tag it, with a
    target group per service."""

    def __init__(self, region: str) -> None:
        self.session = boto3.Session(region_name=region)
        self.ec2, self.elb = self.session.client("ec2"), self.session.client("elbv2")
        self.autoscaling = self.session.client("autoscaling")
        self.vpc = self.ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
        self.subnet = self.ec2.create_subnet(VpcId=self.vpc, CidrBlock="10.42.0.0/20", AvailabilityZone=f"{region}a")["Subnet"]["SubnetId"]

    def client(self, service: str, region_name: str | None = None, **kwargs):
        return self.session.client(service, region_name=region_name, **kwargs)

    def deploy(self, plan, running: dict[str, int]) -> dict[str, str]:
        """Node group → its ASG's name, with `running[group]` instances; every service gets its target group."""
        image = self.ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        names = {}
        for group in plan.node_groups:
            arns = [self.elb.create_target_group(
                Name=f"{s.name}-{len(names)}", Protocol="HTTP", Port=80, VpcId=self.vpc, TargetType="instance",
                Tags=[{"Key": "llm-deploy:node-group", "Value": group.name}, {"Key": "llm-deploy:service", "Value": s.name}],
            )["TargetGroups"][0]["TargetGroupArn"] for s in group.services]
            template = self.ec2.create_launch_template(LaunchTemplateName=f"{group.name}-lt", LaunchTemplateData={
                "ImageId": image, "InstanceType": group.offer.instance_type})["LaunchTemplate"]["LaunchTemplateId"]
            names[group.name] = f"{group.name}-asg-8c1f2e0"
            count = running[group.name]
            self.autoscaling.create_auto_scaling_group(
                AutoScalingGroupName=names[group.name], LaunchTemplate={"LaunchTemplateId": template, "Version": "$Latest"},
                MinSize=count, MaxSize=count, DesiredCapacity=count, VPCZoneIdentifier=self.subnet, TargetGroupARNs=arns,
                Tags=[{"Key": "llm-deploy:stack", "Value": plan.stack, "PropagateAtLaunch": False},
                      {"Key": "llm-deploy:node-group", "Value": group.name, "PropagateAtLaunch": False}])
        return names

    def instances(self, asg: str) -> list[str]:
        (group,) = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg])["AutoScalingGroups"]
        return [i["InstanceId"] for i in group["Instances"]]


@pytest.fixture
def aws(monkeypatch, no_credentials):
    with moto_account(monkeypatch, lambda: Aws("us-east-1")) as fake:
        yield fake


def answers(states: dict[str, str]):
    """A health prober answering from a table (URL → state), and recording what it was asked."""
    asked: list[str] = []

    def get(url: str) -> tuple[str, str]:
        asked.append(url)
        state = states[url]
        return state, "200" if state == status.HEALTHY else "503"

    get.asked = asked  # type: ignore[attr-defined]
    return get


ENDPOINT = "http://prod-alb-d64619d-3594918365.us-east-1.elb.amazonaws.com"


def test_aws_reports_desired_running_healthy_nodes_each_services_targets_and_the_cost_now(aws):
    plan = shipped_plan("prod")  # one node group (llm, embedding, rerank) of 2 x p5.4xlarge
    (group,) = plan.node_groups
    aws.deploy(plan, {group.name: group.count})
    outputs = {"endpoint": ENDPOINT, "cloud": "aws", "instance_types": {group.name: group.offer.instance_type}}
    result = status.collect(plan, outputs, answers({f"{ENDPOINT}/healthz": status.HEALTHY}))
    (found,) = result.groups
    assert (found.desired, found.running, found.healthy) == (group.count, group.count, group.count)
    assert [(s.name, s.state, s.healthy, s.registered) for s in result.services] == [
        (s.name, status.HEALTHY, group.count, group.count) for s in group.services]
    assert result.hourly_usd == pytest.approx(group.count * group.offer.hourly_usd) == pytest.approx(plan.hourly_usd)
    assert result.healthy and result.exit_code == 0 and not result.notes
    assert result.schedule == "always on (no schedule)"


def test_aws_an_unhealthy_node_and_a_stopped_target_show_and_fail_the_status(aws):
    plan = shipped_plan("prod")
    (group,) = plan.node_groups
    asg = aws.deploy(plan, {group.name: group.count})[group.name]
    first, second = aws.instances(asg)
    aws.autoscaling.set_instance_health(InstanceId=first, HealthStatus="Unhealthy")
    aws.ec2.stop_instances(InstanceIds=[first, second])  # moto: a stopped instance's targets are no longer healthy
    result = status.collect(plan, {"endpoint": ENDPOINT}, answers({f"{ENDPOINT}/healthz": status.UNHEALTHY}))
    (found,) = result.groups
    assert (found.desired, found.healthy) == (group.count, group.count - 1)
    assert all(s.state == status.UNHEALTHY and s.healthy == 0 for s in result.services)
    assert not result.healthy and result.exit_code == 1
    assert "endpoint: " + ENDPOINT + ": unhealthy (/healthz: 503)" in status.lines(result)


def test_aws_a_stack_that_is_not_deployed_has_no_nodes_and_no_target_groups(aws):
    plan = shipped_plan("prod")
    result = status.collect(plan, {}, answers({}))
    assert result.endpoint_state == status.UNKNOWN and [(g.desired, g.running) for g in result.groups] == [(0, 0)]
    assert {s.detail for s in result.services} == {"no target group (not deployed?)"}
    assert result.hourly_usd == 0 and result.exit_code == 1


def test_without_credentials_the_cloud_is_not_read_and_says_what(no_credentials):
    plan = shipped_plan("prod")
    result = status.collect(plan, {"endpoint": ENDPOINT}, answers({f"{ENDPOINT}/healthz": status.HEALTHY}))
    assert result.groups == () and result.hourly_usd is None
    (note,) = result.notes
    assert note.startswith("aws: no AWS credentials") and "DescribeTargetHealth" in note
    assert {s.state for s in result.services} == {status.UNKNOWN} and result.exit_code == 1
    assert f"cost: not read (planned: {plan.hourly_usd:.2f} $/h)" in status.lines(result)


def test_a_stack_file_that_now_places_another_type_says_so(aws):
    plan = shipped_plan("prod")
    (group,) = plan.node_groups
    aws.deploy(plan, {group.name: group.count})
    result = status.collect(plan, {"endpoint": ENDPOINT, "instance_types": {group.name: "p4d.24xlarge"}},
                            answers({f"{ENDPOINT}/healthz": status.HEALTHY}))
    (note,) = result.notes
    assert "p4d.24xlarge" in note and "llm-deploy env up" in note


def test_the_json_report_carries_every_field(aws):
    plan = shipped_plan("prod")
    (group,) = plan.node_groups
    aws.deploy(plan, {group.name: group.count})
    document = status.collect(plan, {"endpoint": ENDPOINT}, answers({f"{ENDPOINT}/healthz": status.HEALTHY})).as_json()
    assert json.loads(json.dumps(document)) == document
    assert set(document) == {"stack", "cloud", "region", "endpoint", "endpoint_state", "endpoint_detail", "schedule", "healthy",
                             "groups", "services", "hourly_usd", "planned_hourly_usd", "notes"}
    assert document["groups"][0] == {"name": group.name, "instance_type": group.offer.instance_type, "desired": group.count,
                                     "running": group.count, "healthy": group.count, "hourly_usd": round(plan.hourly_usd, 6)}


# --- DigitalOcean and Alibaba Cloud: stubs on 127.0.0.1 ---------------------------------------------


# Each Alibaba action `status` calls: its product version and the request parameters its API reference documents.
ALI_ACTIONS = {
    "DescribeScalingGroups": (ESS_VERSION, {"RegionId", "PageNumber", "PageSize", "Tag.1.Key", "Tag.1.Value"}),
    "DescribeScalingInstances": (ESS_VERSION, {"RegionId", "ScalingGroupId", "PageNumber", "PageSize"}),
    "ListServerGroupServers": (ALB_VERSION, {"ServerGroupId", "MaxResults", "NextToken"}),
    "GetListenerHealthStatus": (ALB_VERSION, {"ListenerId", "IncludeRule", "MaxResults", "NextToken"}),
}


class Api(JsonStub):
    """DigitalOcean's /v2/droplets (bearer token), the nodes' gateways behind the load balancer (/healthz...),
    and Alibaba Cloud's ESS RPC (signed)."""

    droplets: ClassVar[list[dict]] = []
    health: ClassVar[dict[str, list[int]]] = {}  # path → the answers the nodes give, in turn
    scaling_groups: ClassVar[list[dict]] = []
    scaling_instances: ClassVar[dict[str, list[dict]]] = {}
    listener: ClassVar[str] = ""
    servers: ClassVar[dict[str, list[dict]]] = {}  # ALB server group → its servers (ListServerGroupServers)
    failing: ClassVar[dict[str, list[str]]] = {}  # server group → servers failing the listener's health check
    checked: ClassVar[set[str]] = set()  # server groups the listener health-checks
    calls: ClassVar[list[str]] = []

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        self.calls.append(url.path)
        if url.path.startswith("/healthz"):
            turns = self.health.get(url.path, [503])
            code = turns.pop(0) if len(turns) > 1 else turns[0]
            self._json(code, {"status": "ok" if code == 200 else "unavailable"})
        elif url.path.startswith("/v2/"):
            if self.headers.get("Authorization") != f"Bearer {DO_TOKEN}":
                self._json(401, {"id": "Unauthorized", "message": "Unable to authenticate you"})
            elif url.path == "/v2/droplets":
                self._json(200, {"droplets": self.droplets, "links": {}, "meta": {"total": len(self.droplets)}})
            else:
                self._json(404, {"id": "not_found", "message": "The resource you were accessing could not be found."})
        else:
            self.alicloud(url)

    def alicloud(self, url) -> None:
        params = signed_params(self, url.query, ALI_KEY, ALI_SECRET)
        if params is None:
            return
        version, documented = ALI_ACTIONS.get(params["Action"], (None, set()))
        unknown = set(params) - COMMON - documented
        if params.get("Version") != version or unknown:
            self._json(400, {"Code": "InvalidParameter", "Message": f"{params['Action']} {params.get('Version')}: {sorted(unknown)}"})
            return
        self.calls.append(params["Action"])
        if params["Action"] == "ListServerGroupServers":
            servers = self.servers.get(params["ServerGroupId"], [])
            start = int(params.get("NextToken") or 0)  # one server per page: the reader must follow NextToken
            self._json(200, {"Servers": servers[start:start + 1], "TotalCount": len(servers), "MaxResults": 1,
                             **({"NextToken": str(start + 1)} if start + 1 < len(servers) else {})})
        elif params["Action"] == "GetListenerHealthStatus":
            if params["ListenerId"] != self.listener:
                self._json(404, {"Code": "ResourceNotFound.Listener", "Message": "The specified resource Listener is not found."})
                return
            infos = [{"ServerGroupId": sg, "ActionType": "ForwardGroup", "HealthCheckEnabled": "on" if sg in self.checked else "off",
                      "NonNormalServers": [{"ServerId": i, "Port": 80, "Status": "Unhealthy", "Reason": {"ReasonCode": "RESPONSE_MISMATCH"}}
                                           for i in self.failing.get(sg, [])]} for sg in self.servers]
            self._json(200, {"ListenerHealthStatus": [{"ListenerId": self.listener, "ListenerPort": 80, "ListenerProtocol": "HTTP",
                                                       "ServerGroupInfos": infos[:1]}],
                             "RuleHealthStatus": [{"RuleId": f"rule-{n}", "ServerGroupInfos": [info]} for n, info in enumerate(infos[1:])]})
        elif params["Action"] == "DescribeScalingGroups":
            wanted = (params["Tag.1.Key"], params["Tag.1.Value"])
            found = [g for g in self.scaling_groups if wanted in {(t["Key"], t["Value"]) for t in g["Tags"]["Tag"]}]
            self._json(200, {"TotalCount": len(found), "ScalingGroups": {"ScalingGroup": found}})
        elif params["Action"] == "DescribeScalingInstances":
            found = self.scaling_instances.get(params["ScalingGroupId"], [])
            self._json(200, {"TotalCount": len(found), "ScalingInstances": {"ScalingInstance": found}})
        else:
            self._json(400, {"Code": "InvalidAction.NotFound", "Message": params["Action"]})


@pytest.fixture
def api(monkeypatch, no_credentials):
    Api.droplets, Api.health, Api.scaling_groups, Api.scaling_instances, Api.calls = [], {}, [], {}, []
    Api.listener, Api.servers, Api.failing, Api.checked = "", {}, {}, set()
    with stub_api(monkeypatch, Api) as endpoint:
        Api.endpoint = endpoint  # type: ignore[attr-defined]
        yield Api


def droplet(number: int, status_: str, *tags: str) -> dict:
    return {"id": 3164444 + number, "name": f"d{number}", "status": status_, "tags": list(tags)}


def test_digitalocean_counts_each_groups_droplets_and_asks_the_gateways_for_each_service(api):
    plan = shipped_plan("staging")  # DigitalOcean, one node group of one droplet
    (group,) = plan.node_groups
    tag = f"staging-group-{group.name}-4f1e2a9"
    assert group_tag("staging", group.name).fullmatch(tag)
    api.droplets = [droplet(1, "active", "staging-nodes-1b2c3d4", tag), droplet(2, "active", "other-group-llm-0a0a0a0")]
    llm, *others = group.services
    api.health = {"/healthz": [200], f"/healthz/{llm.name}": [200], **{f"/healthz/{s.name}": [503] for s in others}}
    result = status.collect(plan, {"endpoint": api.endpoint}, status.probe)
    (found,) = result.groups
    assert (found.desired, found.running, found.healthy) == (group.count, 1, None)
    states = {s.name: (s.state, s.detail) for s in result.services}
    assert states[llm.name] == (status.HEALTHY, f"/healthz/{llm.name}: 2 of 2 answers 200 through the load balancer")
    assert all(states[s.name][0] == status.UNHEALTHY for s in others)
    assert result.endpoint_state == status.HEALTHY and result.exit_code == 1
    assert result.hourly_usd == pytest.approx(group.offer.hourly_usd)
    assert f"node group {group.name}: ? healthy / 1 running / {group.count} desired {group.offer.instance_type} " \
           f"({group.offer.hourly_usd:.2f} $/h)" in status.lines(result)


def test_digitalocean_a_service_up_on_some_node_is_healthy(api):
    plan = shipped_plan("staging")
    (group,) = plan.node_groups
    tag = f"staging-group-{group.name}-4f1e2a9"
    api.droplets = [droplet(1, "active", tag), droplet(2, "active", tag), droplet(3, "new", tag)]
    api.health = {"/healthz": [200], **{f"/healthz/{s.name}": [503, 200, 503, 503] for s in group.services}}
    result = status.collect(plan, {"endpoint": api.endpoint}, status.probe)
    assert result.groups[0].running == 2
    assert all(s.state == status.HEALTHY and "1 of 4 answers 200" in s.detail for s in result.services)


def test_digitalocean_a_refused_token_is_a_note_not_a_traceback(api, monkeypatch):
    monkeypatch.setenv("DIGITALOCEAN_TOKEN", "dop_v1_" + "0" * 64)
    result = status.collect(shipped_plan("staging"), {"endpoint": api.endpoint}, status.probe)
    (note,) = result.notes
    assert "GET /v2/droplets: 401 Unable to authenticate you" in note and result.groups == ()


def test_alicloud_reads_each_scaling_group_by_its_tags(api):
    plan = shipped_plan("alicloud-dev")  # two node groups
    for n, group in enumerate(plan.node_groups):
        group_id = f"asg-t4n{n}x8ee3y2oq0ft"
        api.scaling_groups.append({"ScalingGroupId": group_id, "ScalingGroupName": f"llm-deploy-alicloud-dev-{group.name}-1a2b",
                                   "MinSize": group.count, "DesiredCapacity": group.count, "Tags": {"Tag": [
                                       {"Key": "llm-deploy-stack", "Value": "alicloud-dev"}, {"Key": "llm-deploy-group", "Value": group.name}]}})
        api.scaling_instances[group_id] = [{"InstanceId": f"i-t4n{n}", "LifecycleState": "InService", "HealthStatus": "Healthy"}]
    api.scaling_groups.append({"ScalingGroupId": "asg-other", "ScalingGroupName": "someone-else", "MinSize": 3, "Tags": {"Tag": [
        {"Key": "llm-deploy-stack", "Value": "other"}]}})
    api.health = {"/healthz": [200]}
    result = status.collect(plan, {"endpoint": api.endpoint}, status.probe)
    assert [(g.name, g.desired, g.running, g.healthy) for g in result.groups] == [(g.name, g.count, 1, 1) for g in plan.node_groups]
    states = {s.name: s.state for s in result.services}
    # a stack deployed before its outputs named the ALB's server groups: said so, not guessed
    assert set(states.values()) == {status.UNKNOWN} and all("run `pulumi up`" in s.detail for s in result.services)
    assert result.hourly_usd == pytest.approx(plan.hourly_usd)


def test_alicloud_reads_each_services_server_health_from_the_alb(api):
    plan = shipped_plan("alicloud-dev")
    services = [s.name for g in plan.node_groups for s in g.services]
    groups = {name: f"sgp-{n}k2p9w3x0q1ab7cdefgh" for n, name in enumerate(services)}
    api.listener = "lsn-0bfuc8a7p0kz2c9ss5"
    for name, group_id in groups.items():
        api.servers[group_id] = [{"ServerId": f"i-t4n{n}{name}", "ServerType": "Ecs", "Port": 80, "Weight": 100, "ServerGroupId": group_id,
                                  "Status": "Available"} for n in range(2)]
    api.servers[groups[services[0]]].append({"ServerId": "i-t4nleaving", "ServerType": "Ecs", "Port": 80, "Weight": 100,
                                             "ServerGroupId": groups[services[0]], "Status": "Removing"})  # not attached: not counted
    api.failing[groups[services[0]]] = [f"i-t4n1{services[0]}"]
    api.failing[groups[services[1]]] = [f"i-t4n0{services[1]}", f"i-t4n1{services[1]}"]
    api.checked = set(groups.values()) - {groups[services[-1]]} if len(services) > 2 else set(groups.values())
    api.health = {"/healthz": [200]}
    outputs = {"endpoint": api.endpoint, "listener_id": api.listener, "server_groups": groups}
    result = status.collect(plan, outputs, status.probe)
    found = {s.name: s for s in result.services}
    first, second = found[services[0]], found[services[1]]
    assert (first.state, first.detail, first.healthy, first.registered) == (status.HEALTHY, "1 of 2 servers healthy", 1, 2)
    assert (second.state, second.healthy, second.registered) == (status.UNHEALTHY, 0, 2)
    if len(services) > 2:  # a server group the listener does not check cannot be called healthy
        last = found[services[-1]]
        assert last.state == status.UNHEALTHY and "not health-checked" in last.detail
    assert api.calls.count("GetListenerHealthStatus") == 1
    assert api.calls.count("ListServerGroupServers") == sum(len(v) for v in api.servers.values())  # every page followed
    assert result.exit_code == 1


# --- through the Automation API (the fake Pulumi CLI of test_environments) -------------------------


@pytest.fixture
def pulumi_cli(monkeypatch, tmp_path) -> FakePulumi:
    """test_environments' fake `pulumi` first on PATH, and a copy of the project's Pulumi.yaml and stacks/ in tmp_path."""
    bin_dir, state, project = tmp_path / "bin", tmp_path / "pulumi-state", tmp_path / "project"
    for directory in (bin_dir, state, project):
        directory.mkdir()
    (bin_dir / "pulumi").write_text(FAKE_PULUMI.replace("PYTHON", sys.executable, 1))
    (bin_dir / "pulumi").chmod(0o755)
    shutil.copy(ROOT / "Pulumi.yaml", project)
    shutil.copytree(ROOT / "stacks", project / "stacks")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PULUMI_STATE", str(state))
    fake = FakePulumi(state)
    fake.project = project  # type: ignore[attr-defined]
    return fake


def test_status_reads_the_stacks_outputs_through_the_automation_api_then_the_cloud(cli, pulumi_cli, aws):
    plan = shipped_plan("prod")
    (group,) = plan.node_groups
    aws.deploy(plan, {group.name: group.count})
    pulumi_cli.set_stacks({"prod": {"resourceCount": 40, "lastUpdate": "2025-01-01T00:00:00.000Z"}})
    result = cli("status", "--stack", "prod", "--project-dir", str(pulumi_cli.project), "--format", "json")
    # the Automation API asks twice (with and without --show-secrets) to tell secret outputs apart
    assert pulumi_cli.commands() == ["version", "stack select", "stack output", "stack output"]
    document = result.json()
    assert "k3y" not in result.stdout and "api_key" not in document  # a secret output is never shown
    assert document["endpoint"] == "http://lb.example.test"  # the fake CLI's output
    assert document["endpoint_state"] == status.UNKNOWN  # nothing answers there
    assert [(g["desired"], g["running"], g["healthy"]) for g in document["groups"]] == [(group.count,) * 3]
    assert result.code == 1 and result.stderr == ""


def test_status_of_a_stack_that_does_not_exist_is_one_line_exit_1(cli, pulumi_cli):
    result = cli("status", "--stack", "prod", "--project-dir", str(pulumi_cli.project))
    assert result.code == 1
    assert result.stderr.splitlines() == ["error: stack 'prod' does not exist"]


def test_status_of_a_bad_stack_file_exits_2_before_any_pulumi_command(cli, pulumi_cli):
    (pulumi_cli.project / "stacks" / "Pulumi.broken.yaml").write_text("config:\n  llm-deploy:cloud: gcp\n")
    result = cli("status", "--stack", "broken", "--project-dir", str(pulumi_cli.project))
    assert result.code == 2 and "llm-deploy:cloud" not in result.stderr and "cloud: must be one of" in result.stderr
    assert pulumi_cli.commands() == []


def test_the_schedule_state_says_awake_or_asleep_and_the_next_change_in_the_stacks_zone():
    """Fixed clocks around Berlin's Monday 08:00 wake (07:00 UTC in winter) and Friday 20:00 sleep."""
    from dataclasses import replace
    from datetime import UTC, datetime

    from infra.schedule import parse_schedule

    plan = replace(shipped_plan("dev"), schedule=parse_schedule("Europe/Berlin", "Mon-Fri 08:00-20:00"))
    assert status.schedule_state(plan, datetime(2026, 12, 7, 6, 59, tzinfo=UTC)) == (
        "asleep (Mon-Fri 08:00-20:00, Europe/Berlin): wakes Mon 08:00")
    assert status.schedule_state(plan, datetime(2026, 12, 7, 7, 0, tzinfo=UTC)) == (
        "awake (Mon-Fri 08:00-20:00, Europe/Berlin): sleeps Mon 20:00")
    assert status.schedule_state(plan, datetime(2026, 12, 11, 19, 30, tzinfo=UTC)) == (
        "asleep (Mon-Fri 08:00-20:00, Europe/Berlin): wakes Mon 08:00")
    assert status.schedule_state(shipped_plan("dev")) == "always on (no schedule)"
