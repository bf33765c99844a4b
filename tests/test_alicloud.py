"""The Alibaba Cloud component under the offline mock engine (the engine `llm-deploy plan` uses).

Checked: every stack in stacks/ that places on alicloud, plus configs of this module's own: one with
distinctive secrets, SSH, an allow list and an LLM with two replicas, and one left at the defaults.
"""

from __future__ import annotations

import base64
import json

import pytest

from components.alicloud import offline as fakes
from components.alicloud.layout import VPC_CIDR
from components.alicloud.load_balancer import LISTENER_TIMEOUT_S
from components.alicloud.secrets import secret_store
from infra.cli.offline import SECRET_MARK, decode_user_data, run_offline
from infra.config import ConfigError
from infra.plan import GATEWAY_PORT, HEALTH_PATH, SERVICE_PORTS
from tests.helpers import SSH_KEY, WORLD, answer, id_of, of_type, one, planner, raw_config, stacks_on

API_KEY = "sk-alicloud-test-7e3b9c1d5f2a"
HF_TOKEN = "hf_alicloudTestToken4d3c2b1a"

VPC = "alicloud:vpc/network:Network"
VSWITCH = "alicloud:vpc/switch:Switch"
SG = "alicloud:ecs/securityGroup:SecurityGroup"
SG_RULE = "alicloud:ecs/securityGroupRule:SecurityGroupRule"
ASG = "alicloud:ess/scalingGroup:ScalingGroup"
LAUNCH = "alicloud:ess/scalingConfiguration:ScalingConfiguration"
ESS_ATTACH = "alicloud:ess/albServerGroupAttachment:AlbServerGroupAttachment"
ALB = "alicloud:alb/loadBalancer:LoadBalancer"
SERVER_GROUP = "alicloud:alb/serverGroup:ServerGroup"
LISTENER = "alicloud:alb/listener:Listener"
RULE = "alicloud:alb/rule:Rule"
ACL = "alicloud:alb/acl:Acl"
ACL_ENTRIES = "alicloud:alb/aclEntryAttachment:AclEntryAttachment"
LISTENER_ACL = "alicloud:alb/listenerAclAttachment:ListenerAclAttachment"
PARAMETER = "alicloud:oos/secretParameter:SecretParameter"
POLICY = "alicloud:ram/policy:Policy"
ROLE = "alicloud:ram/role:Role"

SECRETS_CONFIG = {
    "cloud": "alicloud",
    "region": "ap-southeast-1",
    "services": [
        {"name": "chat", "kind": "llm", "model": "Qwen/Qwen2.5-7B-Instruct", "maxModelLen": 8192, "replicas": 2},
        {"name": "embed", "kind": "embedding", "model": "intfloat/multilingual-e5-large-instruct"},
        {"name": "rank", "kind": "rerank", "model": "BAAI/bge-reranker-base"},
    ],
    "allowedCidrs": ["198.51.100.0/24", "192.0.2.0/24"],
    "sshCidrs": ["203.0.113.0/24"],
    "sshPublicKeys": [SSH_KEY],
    "apiKey": API_KEY,
    "hfToken": HF_TOKEN,
}
DEFAULTS_CONFIG = {"cloud": "alicloud", "region": "ap-southeast-1"}


RAW = {
    "ali-secrets": lambda: raw_config("ali-secrets", SECRETS_CONFIG),
    "ali-defaults": lambda: raw_config("ali-defaults", DEFAULTS_CONFIG),
}
CASES = [*stacks_on("alicloud"), *RAW]
planned = planner(RAW)


def test_an_alicloud_stack_exists():
    assert stacks_on("alicloud"), "stacks/ should hold at least one Alibaba Cloud stack"


@pytest.mark.parametrize("stack", CASES)
def test_network_is_a_vpc_with_vswitches_in_two_zones(stack):
    plan, result = planned(stack)
    (vpc,) = of_type(result, VPC)
    assert vpc["inputs"]["cidrBlock"] == VPC_CIDR
    switches = of_type(result, VSWITCH)
    zones = [s["inputs"]["zoneId"] for s in switches]
    assert len(set(zones)) == len(zones) >= 2
    assert all(z.startswith(plan.region) for z in zones)
    vpc_id = id_of(result, VPC, vpc["name"])
    assert all(s["inputs"]["vpcId"] == vpc_id for s in switches)
    (group,) = of_type(result, SG)
    assert group["inputs"]["vpcId"] == vpc_id


@pytest.mark.parametrize("stack", CASES)
def test_no_rule_opens_service_ports_or_ssh_to_the_world(stack):
    plan, result = planned(stack)
    rules = of_type(result, SG_RULE)
    assert rules, "the gateway needs an ingress rule"
    for rule in rules:
        inputs = rule["inputs"]
        low, high = (int(p) for p in inputs["portRange"].split("/"))
        source = inputs.get("cidrIp") or inputs.get("ipv6CidrIp")
        assert inputs["type"] == "ingress" and inputs["policy"] == "accept"
        assert source not in WORLD, f"{rule['name']} opens {inputs['portRange']} to {source}"
        assert not any(low <= port <= high for port in SERVICE_PORTS.values()), f"{rule['name']} opens a service port"
        if low <= 22 <= high:
            assert source in plan.access.ssh_cidrs
    gateway = [r["inputs"] for r in rules if r["inputs"]["portRange"] == f"{GATEWAY_PORT}/{GATEWAY_PORT}"]
    assert [g["cidrIp"] for g in gateway] == [VPC_CIDR]
    ssh = sorted(r["inputs"].get("cidrIp") for r in rules if r["inputs"]["portRange"] == "22/22")
    assert ssh == sorted(plan.access.ssh_cidrs)


def test_ssh_is_closed_without_ssh_cidrs():
    plan, result = planned("ali-defaults")
    assert plan.access.ssh_cidrs == ()
    assert not [r for r in of_type(result, SG_RULE) if r["inputs"]["portRange"] == "22/22"]


@pytest.mark.parametrize("stack", CASES)
def test_every_node_group_is_a_scaling_group_of_the_placed_type(stack):
    plan, result = planned(stack)
    launches = of_type(result, LAUNCH)
    assert len(launches) == len(plan.node_groups)
    for group in plan.node_groups:
        scaling = one(result, ASG, f"{plan.stack}-{group.name}-nodes")["inputs"]
        assert scaling["minSize"] == scaling["maxSize"] == group.count
        assert 1 <= len(scaling["vswitchIds"]) <= 8
        launch = one(result, LAUNCH, f"{plan.stack}-{group.name}-launch")["inputs"]
        assert launch["scalingGroupId"] == id_of(result, ASG, f"{plan.stack}-{group.name}-nodes")
        assert launch["instanceTypes"] == [group.offer.instance_type, *(o.instance_type for o in group.fallback_offers)]
        assert launch["imageId"] == fakes.UBUNTU_IMAGE
        assert launch["systemDiskCategory"] == "cloud_essd"
        assert 20 <= launch["systemDiskSize"] <= 500
        cache_gb = max([launch["systemDiskSize"], *(d["size"] for d in launch.get("dataDisks", []))])
        assert cache_gb >= group.disk_gb
        assert launch["roleName"] == one(result, ROLE, f"{plan.stack}-secrets-node-role")["inputs"]["roleName"]
        assert launch["active"] and not launch["enable"]  # the rollout gate enables it (tests/test_alicloud_rollout_plan.py)
        assert decode_user_data(launch["userData"]) == result.user_data[group.name]


def test_replicas_become_the_size_of_a_scaling_group_across_the_zones():
    plan, result = planned("ali-secrets")
    chat = plan.group_serving("llm")
    assert chat.count == 2
    scaling = one(result, ASG, f"{plan.stack}-{chat.name}-nodes")["inputs"]
    assert scaling["minSize"] == scaling["maxSize"] == 2
    assert len(scaling["vswitchIds"]) == 3  # every zone of the (fake) region offers the type
    assert scaling["multiAzPolicy"] == "BALANCE"
    assert scaling["healthCheckTypes"] == ["ECS"]


@pytest.mark.parametrize("stack", CASES)
def test_alb_spans_two_zones_and_is_public_pay_as_you_go(stack):
    plan, result = planned(stack)
    (alb,) = of_type(result, ALB)
    inputs = alb["inputs"]
    mappings = inputs["zoneMappings"]
    assert len(mappings) == 2 and len({m["zoneId"] for m in mappings}) == 2
    assert all(m["zoneId"].startswith(plan.region) for m in mappings)
    switch_of_zone = {s["inputs"]["zoneId"]: id_of(result, VSWITCH, s["name"]) for s in of_type(result, VSWITCH)}
    assert all(switch_of_zone[m["zoneId"]] == m["vswitchId"] for m in mappings)
    assert inputs["addressType"] == "Internet"
    assert inputs["loadBalancerBillingConfig"] == {"payType": "PayAsYouGo"}
    assert inputs["loadBalancerEdition"] == "Basic"
    assert result.outputs["endpoint"] == f"http://{answer(result, ALB, alb['name'])['dnsName']}"


@pytest.mark.parametrize("stack", CASES)
def test_each_service_has_a_server_group_checking_its_own_health_and_ess_fills_it(stack):
    plan, result = planned(stack)
    attachments = of_type(result, ESS_ATTACH)
    services = [s for g in plan.node_groups for s in g.services]
    assert len(of_type(result, SERVER_GROUP)) == len(services) == len(attachments)
    for group in plan.node_groups:
        for service in group.services:
            server_group = one(result, SERVER_GROUP, f"{plan.stack}-lb-{service.name}")["inputs"]
            check = server_group["healthCheckConfig"]
            assert check["healthCheckEnabled"] is True
            assert check["healthCheckPath"] == f"{HEALTH_PATH}/{service.name}"
            assert check["healthCheckProtocol"] == "HTTP"
            assert check["healthCheckCodes"] == ["http_2xx"]
            assert "servers" not in server_group, "ESS owns the servers"
            pair = (id_of(result, ASG, f"{plan.stack}-{group.name}-nodes"), id_of(result, SERVER_GROUP, f"{plan.stack}-lb-{service.name}"))
            linked = [a["inputs"] for a in attachments if (a["inputs"]["scalingGroupId"], a["inputs"]["albServerGroupId"]) == pair]
            assert len(linked) == 1 and linked[0]["port"] == GATEWAY_PORT


@pytest.mark.parametrize("stack", CASES)
def test_path_rules_send_every_service_path_to_its_server_group(stack):
    plan, result = planned(stack)
    (listener,) = of_type(result, LISTENER)
    assert listener["inputs"]["listenerPort"] == 80 and listener["inputs"]["listenerProtocol"] == "HTTP"
    assert listener["inputs"]["idleTimeout"] == listener["inputs"]["requestTimeout"] == LISTENER_TIMEOUT_S > 60
    listener_id = id_of(result, LISTENER, listener["name"])
    routed: dict[str, str] = {}
    for rule in of_type(result, RULE):
        inputs = rule["inputs"]
        assert inputs["listenerId"] == listener_id
        (action,) = inputs["ruleActions"]
        (target,) = action["forwardGroupConfig"]["serverGroupTuples"]
        for condition in inputs["ruleConditions"]:
            assert condition["type"] == "Path"
            for path in condition["pathConfig"]["values"]:
                assert path not in routed, f"{path} routed twice"
                routed[path] = target["serverGroupId"]
    expected = {
        path: id_of(result, SERVER_GROUP, f"{plan.stack}-lb-{service.name}")
        for group in plan.node_groups
        for service in group.services
        for path in service.paths
    }
    assert routed == expected
    # The rest (/healthz among it) goes to the LLM's server group.
    (default,) = listener["inputs"]["defaultActions"]
    llm = next(s for g in plan.node_groups for s in g.services if s.kind == "llm")
    assert default["forwardGroupConfig"]["serverGroupTuples"] == [{"serverGroupId": id_of(result, SERVER_GROUP, f"{plan.stack}-lb-{llm.name}")}]
    priorities = [r["inputs"]["priority"] for r in of_type(result, RULE)]
    assert len(set(priorities)) == len(priorities)


@pytest.mark.parametrize("stack", CASES)
def test_allowed_cidrs_become_a_listener_whitelist(stack):
    plan, result = planned(stack)
    if WORLD & set(plan.access.allowed_cidrs):
        assert not of_type(result, ACL) and not of_type(result, LISTENER_ACL)
        return
    (acl,) = of_type(result, ACL)
    (entries,) = of_type(result, ACL_ENTRIES)
    (attachment,) = of_type(result, LISTENER_ACL)
    assert sorted(e["entry"] for e in entries["inputs"]["entries"]) == sorted(plan.access.allowed_cidrs)
    assert entries["inputs"]["aclId"] == attachment["inputs"]["aclId"] == id_of(result, ACL, acl["name"])
    assert attachment["inputs"]["aclType"] == "White"
    assert attachment["inputs"]["listenerId"] == id_of(result, LISTENER, of_type(result, LISTENER)[0]["name"])


def test_the_secrets_config_has_an_allow_list():
    plan, _ = planned("ali-secrets")
    assert not WORLD & set(plan.access.allowed_cidrs)


@pytest.mark.parametrize("stack", CASES)
def test_secrets_live_in_oos_and_the_node_role_reads_exactly_them(stack):
    plan, result = planned(stack)
    store = secret_store(plan)
    parameters = {p["inputs"]["secretParameterName"]: p["inputs"] for p in of_type(result, PARAMETER)}
    expected = {store.api_key_name} | ({store.hf_token_name} if plan.has_hf_token else set())
    assert set(parameters) == expected
    assert all(p["value"] == SECRET_MARK and p["type"] == "Secret" for p in parameters.values())
    (policy,) = of_type(result, POLICY)
    document = json.loads(policy["inputs"]["policyDocument"])
    granted = {(action, resource) for s in document["Statement"] for action in s["Action"] for resource in s["Resource"]}
    arn = f"{plan.region}:{fakes.ACCOUNT_ID}"
    assert granted == {
        *((("oos:GetSecretParameter", f"acs:oos:{arn}:secretparameter/{name}")) for name in expected),
        *((("kms:GetSecretValue", f"acs:kms:{arn}:secret/oos/{name}")) for name in expected),
    }
    (role,) = of_type(result, ROLE)
    trust = json.loads(role["inputs"]["assumeRolePolicyDocument"])
    assert trust["Statement"][0]["Principal"] == {"Service": ["ecs.aliyuncs.com"]}


def test_no_secret_value_in_plain_text_anywhere():
    plan, result = planned("ali-secrets")
    assert plan.has_hf_token
    everything = json.dumps(result.resources) + json.dumps(result.outputs) + "".join(result.user_data.values())
    for value in (API_KEY, HF_TOKEN, base64.b64encode(API_KEY.encode()).decode()):
        assert value not in everything
    store = secret_store(plan)
    for text in result.user_data.values():
        assert store.api_key_name in text and store.hf_token_name in text


def test_a_domain_is_refused_naming_the_field():
    raw = raw_config("ali-domain", {**DEFAULTS_CONFIG, "domain": "llm.acme-inference.io"})
    with pytest.raises(ConfigError) as error:
        run_offline(raw)
    assert [p.field for p in error.value.problems] == ["domain"]


def test_a_region_without_the_instance_type_is_refused(monkeypatch):
    monkeypatch.setitem(fakes.INVOKES, "alicloud:index/getZones:getZones", lambda args: {"ids": [], "zones": []})
    with pytest.raises(ConfigError) as error:
        run_offline(raw_config("ali-nozone", DEFAULTS_CONFIG))
    (problem,) = error.value.problems
    assert problem.field == "region" and "no zone of the region offers the instance type" in problem.message
