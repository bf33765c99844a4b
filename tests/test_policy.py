"""The policy pack: each policy rejects a violating resource and accepts every stack's own plan.

Violating resources are built with the real provider SDKs under the mock engine, so their inputs
have the exact (camelCase) shape the engine hands a policy pack; the project's plans come from
`infra.cli.offline.run_offline`, one run per stack for the whole module. The last tests start the real
pack the way the Pulumi CLI does (`python -m pulumi.policy ENGINE policy/`) and talk gRPC to it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable

import pulumi
import pytest

from infra.cli.offline import CloudFakes, RecordingMocks
from infra.config import CONFIG_NAMESPACE, load_raw
from tests.helpers import ROOT, STACKS, STACKS_DIR, missing, shipped

POLICY_DIR = ROOT / "policy"


def _load_policies():
    spec = importlib.util.spec_from_file_location("llm_deploy_policies", POLICY_DIR / "llm_deploy_policies.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


P = _load_policies()
POLICY_NAMES = [p.name for p in P.RESOURCE_POLICIES]


@pytest.fixture(scope="module")
def plans():
    """Each stack's offline plan, computed once for this module (a few seconds per stack)."""
    return {stack: shipped(stack)[1] for stack in STACKS}


def record(build: Callable[[], object]) -> list[dict]:
    """Resources (type, name, inputs as the engine receives them) that `build` creates under the mock engine."""
    mocks = RecordingMocks(CloudFakes())
    pulumi.runtime.set_mocks(mocks, project="llm-deploy", stack="policy-test", preview=False)
    pulumi.runtime.mocks.test(lambda: build() or pulumi.Output.from_input(None))()
    return [r for r in mocks.resources if not r["type"].startswith("pulumi:providers:")]


def only(build: Callable[[], object]) -> dict:
    (resource,) = record(build)
    return resource


def violations(resource: dict) -> dict[str, list[str]]:
    return P.resource_violations(resource["type"], resource["inputs"])


# --- the project's own plans pass ----------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_plan_passes_every_resource_policy(plans, stack):
    found = {f"{r['type']} {r['name']}": v for r in plans[stack].resources if (v := violations(r))}
    assert found == {}


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_plan_is_inspected_by_the_cloud_independent_policies(plans, stack):
    """The passing result above means something: each stack has resources these policies look at."""
    types = {r["type"] for r in plans[stack].resources}
    for policy in P.RESOURCE_POLICIES:
        if policy.name in ("no-public-service-ports", "load-balancer-health-check", "catalog-instance-types"):
            assert types & set(policy.types), f"{stack}: nothing for {policy.name} to inspect"


def test_every_policy_inspects_some_stack(plans):
    types = {r["type"] for result in plans.values() for r in result.resources}
    assert [p.name for p in P.RESOURCE_POLICIES if not types & set(p.types)] == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_is_within_its_budget(stack):
    assert P.budget_violations(load_raw(stack, stacks_dir=STACKS_DIR)) == []


# --- violating resources are rejected, by the policy that owns the rule ----------------------------


def test_aws_security_group_inline_ingress_to_service_ports_from_anywhere():
    import pulumi_aws as aws

    sg = only(lambda: aws.ec2.SecurityGroup("sg", ingress=[
        {"protocol": "tcp", "from_port": 8000, "to_port": 8081, "cidr_blocks": ["0.0.0.0/0"]},
        {"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"]},
        {"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["10.0.0.0/8"]},
    ]))
    lines = violations(sg)["no-public-service-ports"]
    assert lines == ["ingress[0]: port 8000 (llm service) is open to 0.0.0.0/0", "ingress[0]: port 8080 (embedding service) is open to 0.0.0.0/0",
                     "ingress[0]: port 8081 (rerank service) is open to 0.0.0.0/0"]


def test_aws_security_group_rule_all_protocols_from_anywhere_opens_every_protected_port():
    import pulumi_aws as aws

    rule = only(lambda: aws.ec2.SecurityGroupRule("all", type="ingress", protocol="-1", from_port=0, to_port=0,
                                                  cidr_blocks=["0.0.0.0/0"], security_group_id="sg-1"))
    assert [line.split(" (")[0] for line in violations(rule)["no-public-service-ports"]] == [
        "rule: port 22", "rule: port 8000", "rule: port 8080", "rule: port 8081"]
    egress = only(lambda: aws.ec2.SecurityGroupRule("out", type="egress", protocol="-1", from_port=0, to_port=0,
                                                    cidr_blocks=["0.0.0.0/0"], security_group_id="sg-1"))
    assert violations(egress) == {}


def test_aws_vpc_ingress_rule_ssh_from_any_ipv6():
    import pulumi_aws as aws

    rule = only(lambda: aws.vpc.SecurityGroupIngressRule("ssh", ip_protocol="tcp", from_port=22, to_port=22, cidr_ipv6="::/0",
                                                         security_group_id="sg-1"))
    assert violations(rule) == {"no-public-service-ports": ["rule: port 22 (SSH) is open to ::/0"]}
    https = only(lambda: aws.vpc.SecurityGroupIngressRule("https", ip_protocol="tcp", from_port=443, to_port=443,
                                                          cidr_ipv4="0.0.0.0/0", security_group_id="sg-1"))
    assert violations(https) == {}


def test_digitalocean_firewall_service_port_range_from_anywhere():
    import pulumi_digitalocean as do

    firewall = only(lambda: do.Firewall("fw", inbound_rules=[
        do.FirewallInboundRuleArgs(protocol="tcp", port_range="8000-8081", source_addresses=["0.0.0.0/0", "::/0"]),
        do.FirewallInboundRuleArgs(protocol="tcp", port_range="22", source_addresses=["203.0.113.0/24"]),
    ]))
    assert violations(firewall)["no-public-service-ports"] == [
        f"inboundRules[0]: port {port} ({what}) is open to 0.0.0.0/0, ::/0"
        for port, what in ((8000, "llm service"), (8080, "embedding service"), (8081, "rerank service"))
    ]


def test_alicloud_security_group_rule_ssh_from_anywhere():
    import pulumi_alicloud as alicloud

    rule = only(lambda: alicloud.ecs.SecurityGroupRule("ssh", type="ingress", ip_protocol="tcp", port_range="22/22",
                                                       cidr_ip="0.0.0.0/0", security_group_id="sg-1"))
    assert violations(rule) == {"no-public-service-ports": ["rule: port 22 (SSH) is open to 0.0.0.0/0"]}
    dropped = only(lambda: alicloud.ecs.SecurityGroupRule("drop", type="ingress", ip_protocol="all", port_range="-1/-1",
                                                          policy="drop", cidr_ip="0.0.0.0/0", security_group_id="sg-1"))
    assert violations(dropped) == {}


def _launch_template(**overrides):
    import pulumi_aws as aws

    args = {
        "image_id": "ami-1",
        "instance_type": "p5.4xlarge",
        "metadata_options": {"http_tokens": "required", "http_endpoint": "enabled"},
        "block_device_mappings": [{"device_name": "/dev/sda1", "ebs": {"volume_size": 200, "encrypted": "true"}}],
        **overrides,
    }
    return only(lambda: aws.ec2.LaunchTemplate("lt", **args))


def test_aws_launch_template_passes_when_hardened():
    assert violations(_launch_template()) == {}


def test_aws_launch_template_without_imdsv2():
    lt = _launch_template(metadata_options={"http_tokens": "optional"})
    assert violations(lt) == {"aws-imdsv2-required": ["metadataOptions.httpTokens is 'optional', must be 'required' (IMDSv2)"]}
    assert "aws-imdsv2-required" in violations(_launch_template(metadata_options=None))


def test_aws_launch_template_with_unencrypted_or_default_root_volume():
    lt = _launch_template(block_device_mappings=[{"device_name": "/dev/sda1", "ebs": {"volume_size": 200, "encrypted": "false"}}])
    assert violations(lt) == {"encrypted-volumes": ["blockDeviceMappings[0] (/dev/sda1): ebs.encrypted is 'false', must be true"]}
    assert "encrypted-volumes" in violations(_launch_template(block_device_mappings=None))


def test_aws_ebs_volume_unencrypted():
    import pulumi_aws as aws

    volume = only(lambda: aws.ebs.Volume("cache", availability_zone="us-east-1a", size=100))
    assert violations(volume) == {"encrypted-volumes": ["encrypted is None, must be true"]}


def test_instance_types_outside_the_catalog():
    import pulumi_alicloud as alicloud
    import pulumi_digitalocean as do

    allowed = P.catalog_instance_types()
    assert "t3.nano" not in allowed["aws"] and "s-1vcpu-1gb" not in allowed["digitalocean"]
    assert "ecs.t5-lc2m1.nano" not in allowed["alicloud"]
    lt = _launch_template(instance_type="t3.nano")
    assert violations(lt) == {"catalog-instance-types": ["instanceType 't3.nano' is not a aws instance type in the llm-deploy catalog"]}
    droplet = only(lambda: do.Droplet("d", image="ubuntu-24-04-x64", size="s-1vcpu-1gb", region="nyc3"))
    assert list(violations(droplet)) == ["catalog-instance-types"]
    scaling = only(lambda: alicloud.ess.ScalingConfiguration("sc", scaling_group_id="asg-1", image_id="img",
                                                            instance_types=["ecs.gn7i-c8g1.2xlarge", "ecs.t5-lc2m1.nano"]))
    assert violations(scaling) == {"catalog-instance-types": [
        "instanceTypes[1] 'ecs.t5-lc2m1.nano' is not a alicloud instance type in the llm-deploy catalog"]}
    # a stack with a catalog of its own: the pack's extraInstanceTypes config allows more
    assert P.catalog_instance_types_only(lt["type"], lt["inputs"], P.catalog_instance_types(["aws/t3.nano"])) == []


def test_load_balancer_pools_without_health_checks():
    import pulumi_alicloud as alicloud
    import pulumi_aws as aws
    import pulumi_digitalocean as do

    disabled = only(lambda: aws.lb.TargetGroup("tg", port=80, protocol="HTTP", vpc_id="vpc-1", health_check={"enabled": False}))
    assert violations(disabled) == {"load-balancer-health-check": ["healthCheck.enabled is false"]}
    no_path = only(lambda: aws.lb.TargetGroup("tg2", port=80, protocol="HTTP", vpc_id="vpc-1", health_check={"protocol": "HTTP"}))
    assert violations(no_path) == {"load-balancer-health-check": ["healthCheck.path: missing for an HTTP check"]}
    lb = only(lambda: do.LoadBalancer("lb", region="nyc3", forwarding_rules=[do.LoadBalancerForwardingRuleArgs(
        entry_port=80, entry_protocol="http", target_port=80, target_protocol="http")]))
    assert list(violations(lb)) == ["load-balancer-health-check"]
    group = only(lambda: alicloud.alb.ServerGroup("sg", server_group_name="g", vpc_id="vpc-1", protocol="HTTP",
                                                  health_check_config={"health_check_enabled": False}))
    assert violations(group) == {"load-balancer-health-check": ["healthCheckConfig.healthCheckEnabled is not true"]}


def test_budget_policy_rejects_a_stack_over_its_budget_or_the_pack_cap():
    raw = load_raw("prod", stacks_dir=STACKS_DIR)
    raw.values["budgetUsdPerHour"] = 1
    (line,) = P.budget_violations(raw)
    assert ": budgetUsdPerHour: " in line and "over the budget of 1.00 $/h" in line
    capped = P.budget_violations(load_raw("prod", stacks_dir=STACKS_DIR), max_hourly_usd=2)
    assert len(capped) == 1 and "over the policy's maxHourlyUsd of 2.00 $/h" in capped[0]


def test_budget_policy_reports_a_bad_config_by_field():
    raw = load_raw("dev", stacks_dir=STACKS_DIR)
    raw.values["budgetUsdPerHour"] = -1
    assert any("budgetUsdPerHour" in line for line in P.budget_violations(raw))


def test_policy_module_imports_without_pulumi_policy(monkeypatch):
    monkeypatch.setitem(sys.modules, "pulumi_policy", None)  # `import pulumi_policy` now fails
    module = _load_policies()
    assert module.resource_violations("aws:ec2/securityGroup:SecurityGroup", {}) == {}
    with pytest.raises(ImportError):
        module.pulumi_policies()


# --- the real pack, started as the Pulumi CLI starts it ------------------------------------------


class Pack:
    """`python -m pulumi.policy <engine> policy/` with a stack's config in PULUMI_CONFIG; an Analyzer gRPC client."""

    def __init__(self, stack: str, config: dict[str, str]) -> None:
        if importlib.util.find_spec("pulumi_policy") is None:  # scripts/test.sh installs policy/requirements.txt
            missing("pulumi-policy is not installed: pip install -r policy/requirements.txt")
        import grpc
        from pulumi.runtime.proto import analyzer_pb2_grpc

        env = {**os.environ, "PULUMI_CONFIG": json.dumps(config), "PULUMI_PROJECT": "llm-deploy", "PULUMI_STACK": stack,
               "PULUMI_DRY_RUN": "true"}
        self.process = subprocess.Popen([sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", str(POLICY_DIR)],
                                        cwd=POLICY_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        port = self.process.stdout.readline().strip()
        if not port.isdigit():
            self.process.kill()
            raise AssertionError(f"the pack did not start: {port!r} {self.process.communicate()[1][-3000:]}")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self.channel)
        self.stack = stack

    def _fields(self, resource: dict) -> dict:
        from google.protobuf import struct_pb2

        props = struct_pb2.Struct()
        props.update(resource["inputs"])
        urn = f"urn:pulumi:{self.stack}::llm-deploy::{resource['type']}::{resource['name']}"
        return {"type": resource["type"], "properties": props, "urn": urn, "name": resource["name"]}

    def analyze(self, resource: dict) -> list[tuple[str, str]]:
        from pulumi.runtime.proto import analyzer_pb2

        response = self.stub.Analyze(analyzer_pb2.AnalyzeRequest(**self._fields(resource)))
        return [(d.policyName, d.message.splitlines()[-1]) for d in response.diagnostics]

    def analyze_stack(self, resources: list[dict]) -> list[tuple[str, str]]:
        from pulumi.runtime.proto import analyzer_pb2

        request = analyzer_pb2.AnalyzeStackRequest(resources=[analyzer_pb2.AnalyzerResource(**self._fields(r)) for r in resources])
        return [(d.policyName, d.message.splitlines()[-1]) for d in self.stub.AnalyzeStack(request).diagnostics]

    def info(self):
        from google.protobuf import empty_pb2

        return self.stub.GetAnalyzerInfo(empty_pb2.Empty())

    def close(self) -> None:
        self.channel.close()
        self.process.terminate()
        self.process.communicate(timeout=10)


def runtime_config(stack: str, **changes) -> dict[str, str]:
    """A stack's config as the engine passes it to a policy pack: namespaced keys, string values."""
    raw = load_raw(stack, stacks_dir=STACKS_DIR)
    raw.values.update(changes)
    return {f"{CONFIG_NAMESPACE}:{k}": v for k, v in raw.pulumi_values().items()}


@pytest.mark.parametrize("stack", STACKS)
def test_the_running_pack_accepts_every_stack(plans, stack):
    pack = Pack(stack, runtime_config(stack))
    try:
        info = pack.info()
        assert info.name == "llm-deploy"
        assert sorted(p.name for p in info.policies) == sorted([*POLICY_NAMES, "stack-budget"])
        assert {p.enforcementLevel for p in info.policies} == {1}  # MANDATORY
        resources = plans[stack].resources
        assert [(r["name"], d) for r in resources for d in pack.analyze(r)] == []
        assert pack.analyze_stack(resources) == []
    finally:
        pack.close()


def test_the_running_pack_rejects_violations_and_an_over_budget_stack():
    import pulumi_aws as aws

    sg = only(lambda: aws.ec2.SecurityGroup("sg", ingress=[{"protocol": "tcp", "from_port": 22, "to_port": 22,
                                                            "cidr_blocks": ["0.0.0.0/0"]}]))
    pack = Pack("prod", runtime_config("prod", budgetUsdPerHour=2))
    try:
        assert pack.analyze(sg) == [("no-public-service-ports", "sg: ingress[0]: port 22 (SSH) is open to 0.0.0.0/0")]
        lt = _launch_template(metadata_options={"http_tokens": "optional"}, instance_type="t3.nano")
        assert sorted(name for name, _ in pack.analyze(lt)) == ["aws-imdsv2-required", "catalog-instance-types"]
        ((name, message),) = pack.analyze_stack([sg])
        assert name == "stack-budget" and "budgetUsdPerHour" in message and "over the budget of 2.00 $/h" in message
    finally:
        pack.close()


def test_the_running_pack_reads_each_of_a_list_of_instance_types():
    """The running pack hands a list input over as a read-only sequence proxy, not a list: each entry is checked."""
    import pulumi_alicloud as alicloud

    launch = only(lambda: alicloud.ess.ScalingConfiguration(
        "launch", scaling_group_id="asg-t4n0tsb3cl2m2kxpzhqd", instance_types=["ecs.gn7i-c16g1.4xlarge", "ecs.t5-lc2m1.nano"]))
    pack = Pack("alicloud-dev", runtime_config("alicloud-dev"))
    try:
        assert pack.analyze(launch) == [("catalog-instance-types",
                                         "launch: instanceTypes[1] 'ecs.t5-lc2m1.nano' is not a alicloud instance type in the llm-deploy catalog")]
    finally:
        pack.close()
