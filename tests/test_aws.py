"""The AWS component, run for real under the offline mock engine (the same engine as `llm-deploy plan`).

Every stack in stacks/ whose placement lands on AWS is checked, plus two configs of this module's own:
one with distinctive secrets, SSH and no domain (two node groups, one of them CPU), one on a domain.
"""

from __future__ import annotations

import base64
import json
import math

import pytest
import yaml

from bootstrap import cloudwatch
from components.aws import offline as fakes
from components.aws.layout import pick_zones, short_name
from components.aws.load_balancer import IDLE_TIMEOUT_S, MAX_PATHS_PER_RULE, routes
from components.aws.node_group import CPU_IMAGE, GPU_IMAGE
from components.aws.secrets import read_secrets_policy
from infra.boot_time import constant
from infra.cli.offline import SECRET_MARK, OfflineResult, decode_user_data
from infra.plan import HEALTH_PATH
from infra.service_metrics import METRICS_LOG_RETENTION_DAYS
from tests.helpers import (
    GPU_LLM_CPU_ENCODERS,
    GUARDED_PORTS,
    SSH_KEY,
    WORLD,
    answer,
    id_of,
    of_type,
    one,
    planner,
    raw_config,
    stacks_on,
)

API_KEY = "sk-aws-test-4c1d9e7f0b2a8e53"
HF_TOKEN = "hf_awsTestToken9f8e7d6c5b4a"

LT = "aws:ec2/launchTemplate:LaunchTemplate"
ASG = "aws:autoscaling/group:Group"
TG = "aws:lb/targetGroup:TargetGroup"
ALB = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
RULE = "aws:lb/listenerRule:ListenerRule"
PARAMETER = "aws:ssm/parameter:Parameter"
# The retentions CloudWatch Logs accepts (PutRetentionPolicy's retentionInDays, AWS API reference).
CLOUDWATCH_RETENTION_DAYS = {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

SECRETS_CONFIG = {
    "cloud": "aws",
    "region": "us-west-2",
    "services": GPU_LLM_CPU_ENCODERS,
    "allowedCidrs": ["198.51.100.0/24", "2001:db8::/32"],
    "sshCidrs": ["203.0.113.0/24"],
    "sshPublicKeys": [SSH_KEY],
    "apiKey": API_KEY,
    "hfToken": HF_TOKEN,
}
DOMAIN_CONFIG = {"cloud": "aws", "region": "eu-west-1", "domain": "llm.acme-inference.io", "apiKey": API_KEY}


RAW = {
    "aws-secrets": lambda: raw_config("aws-secrets", SECRETS_CONFIG),
    "aws-domain": lambda: raw_config("aws-domain", DOMAIN_CONFIG),
}
CASES = [*stacks_on("aws"), *RAW]
planned = planner(RAW)


def ingress_rules(result: OfflineResult) -> list[tuple[str, str, int, int, str]]:
    """(resource, protocol, from, to, cidr) for every way a security group can be opened to a CIDR."""
    rules = []
    for r in result.resources:
        i = r["inputs"]
        if r["type"] == "aws:ec2/securityGroup:SecurityGroup":
            for rule in i.get("ingress") or []:
                for cidr in (rule.get("cidrBlocks") or []) + (rule.get("ipv6CidrBlocks") or []):
                    rules.append((r["name"], rule.get("protocol"), rule.get("fromPort", 0), rule.get("toPort", 65535), cidr))
        elif r["type"] == "aws:ec2/securityGroupRule:SecurityGroupRule" and i.get("type") == "ingress":
            for cidr in (i.get("cidrBlocks") or []) + (i.get("ipv6CidrBlocks") or []):
                rules.append((r["name"], i.get("protocol"), i.get("fromPort", 0), i.get("toPort", 65535), cidr))
        elif r["type"] == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
            for cidr in filter(None, (i.get("cidrIpv4"), i.get("cidrIpv6"))):
                rules.append((r["name"], i.get("ipProtocol"), i.get("fromPort", 0), i.get("toPort", 65535), cidr))
    return rules


def opens(rule: tuple[str, str, int, int, str], port: int) -> bool:
    _, protocol, low, high, _ = rule
    return str(protocol) in ("-1", "all") or low <= port <= high


def serving_listener(result: OfflineResult) -> dict:
    forwarding = [r for r in of_type(result, LISTENER) if r["inputs"]["defaultActions"][0]["type"] != "redirect"]
    assert len(forwarding) == 1, forwarding
    return forwarding[0]


def target_group_arn(result: OfflineResult, service: str) -> str:
    """The ARN the engine gave a service's own target group (named after the service)."""
    return answer(result, TG, short_name(service))["arn"]


def test_the_repository_has_an_aws_stack():
    assert stacks_on("aws"), "no stack in stacks/ lands on AWS; issue 4 asks for one"


@pytest.mark.parametrize("stack", CASES)
def test_instance_types_follow_the_placement(stack):
    plan, result = planned(stack)
    for group in plan.node_groups:
        template = one(result, LT, f"{group.name}-lt")
        assert template["inputs"]["instanceType"] == group.offer.instance_type
        asg = one(result, ASG, f"{group.name}-asg")["inputs"]
        assert asg["desiredCapacity"] == asg["minSize"] == asg["maxSize"] == group.count
        spec = asg["mixedInstancesPolicy"]["launchTemplate"]["launchTemplateSpecification"]
        assert spec["launchTemplateId"] == id_of(result, LT, f"{group.name}-lt") and spec["version"] == "1"
    assert len(of_type(result, LT)) == len(plan.node_groups)
    assert result.outputs["instance_types"] == {g.name: g.offer.instance_type for g in plan.node_groups}


@pytest.mark.parametrize("stack", CASES)
def test_no_rule_opens_a_service_port_or_ssh_to_the_internet(stack):
    _, result = planned(stack)
    rules = ingress_rules(result)
    assert rules, "the load balancer must be reachable from somewhere"
    exposed = [(rule, port) for rule in rules for port in GUARDED_PORTS if rule[4] in WORLD and opens(rule, port)]
    assert exposed == []


@pytest.mark.parametrize("stack", CASES)
def test_nodes_take_the_gateway_port_from_the_load_balancer_only(stack):
    plan, result = planned(stack)
    node_rules = [
        r
        for r in of_type(result, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r["name"].startswith("network-nodes")
    ]
    from_alb = [r["inputs"] for r in node_rules if "referencedSecurityGroupId" in r["inputs"]]
    assert [(i["fromPort"], i["toPort"]) for i in from_alb] == [(80, 80)]
    ssh = sorted(
        r["inputs"].get("cidrIpv4") or r["inputs"].get("cidrIpv6") for r in node_rules if r["inputs"].get("fromPort") == 22
    )
    assert ssh == sorted(plan.access.ssh_cidrs)
    assert len(node_rules) == 1 + len(plan.access.ssh_cidrs)
    alb_rules = [r for r in ingress_rules(result) if r[0].startswith("network-alb")]
    assert {r[4] for r in alb_rules} == set(plan.access.allowed_cidrs)
    assert {(r[2], r[3]) for r in alb_rules} == ({(80, 80), (443, 443)} if plan.access.domain else {(80, 80)})


def test_ipv6_client_ranges_go_in_the_ipv6_argument():
    _, result = planned("aws-secrets")
    rules = [r["inputs"] for r in of_type(result, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")]
    assert any(i.get("cidrIpv6") == "2001:db8::/32" and "cidrIpv4" not in i for i in rules)


@pytest.mark.parametrize("stack", CASES)
def test_launch_templates_require_imdsv2_and_encrypt_a_disk_sized_for_the_cache(stack):
    plan, result = planned(stack)
    for group in plan.node_groups:
        inputs = one(result, LT, f"{group.name}-lt")["inputs"]
        assert inputs["metadataOptions"]["httpTokens"] == "required"
        assert inputs["metadataOptions"]["httpPutResponseHopLimit"] == 2
        (root,) = inputs["blockDeviceMappings"]
        assert root["deviceName"] == "/dev/sda1"
        assert root["ebs"]["encrypted"] == "true"
        assert root["ebs"]["volumeType"] == "gp3"
        assert root["ebs"]["volumeSize"] >= group.disk_gb
        # gp3 provisioned past its 125 MiB/s / 3,000 IOPS default, with the IOPS that throughput needs
        assert root["ebs"]["throughput"] == group.storage.throughput_mibps >= 125
        assert root["ebs"]["iops"] == group.storage.iops >= max(3000, root["ebs"]["throughput"] / 0.25)
        assert inputs["iamInstanceProfile"]["arn"].startswith("arn:aws:iam::")
        assert decode_user_data(inputs["userData"]) == result.user_data[group.name]
        assert result.user_data[group.name].startswith("#cloud-config")
        assert len(base64.b64decode(inputs["userData"])) <= 16384  # EC2's limit, before base64 (gzip inside)


def test_gpu_nodes_boot_the_driver_ami_and_cpu_nodes_ubuntu():
    plan, result = planned("aws-secrets")
    kinds = {g.name: g.accelerator for g in plan.node_groups}
    assert sorted(kinds.values()) == ["cpu", "gpu"], kinds
    for name, accelerator in kinds.items():
        expected = fakes.GPU_AMI if accelerator == "gpu" else fakes.CPU_AMI
        assert one(result, LT, f"{name}-lt")["inputs"]["imageId"] == expected
    assert "deeplearning" in GPU_IMAGE.parameter and GPU_IMAGE.has_driver
    assert "canonical/ubuntu/server/22.04" in CPU_IMAGE.parameter and not CPU_IMAGE.has_driver


def test_root_volume_never_shrinks_below_the_ami_snapshot():
    plan, result = planned("aws-secrets")
    for group in plan.node_groups:
        size = one(result, LT, f"{group.name}-lt")["inputs"]["blockDeviceMappings"][0]["ebs"]["volumeSize"]
        snapshot = int(fakes.AMI_SNAPSHOT_GB[fakes.GPU_AMI if group.accelerator == "gpu" else fakes.CPU_AMI])
        assert size == max(group.disk_gb, snapshot)


@pytest.mark.parametrize("stack", CASES)
def test_autoscaling_groups_wait_for_elb_health_and_roll_without_downtime(stack):
    plan, result = planned(stack)
    subnets = {r["name"]: r for r in of_type(result, "aws:ec2/subnet:Subnet")}
    zones = [s["inputs"]["availabilityZone"] for s in subnets.values()]
    assert len(zones) == len(set(zones)) >= 2
    for group in plan.node_groups:
        asg = one(result, ASG, f"{group.name}-asg")["inputs"]
        assert asg["healthCheckType"] == "ELB"
        # The grace is the node group's estimated time to healthy with its margin, not a fixed figure.
        assert asg["healthCheckGracePeriod"] == group.boot.grace_seconds
        assert group.boot.grace_seconds == math.ceil(group.boot.minutes_unrounded * constant("grace_margin")) * 60
        assert group.boot.grace_seconds > group.boot.minutes * 60
        assert sorted(asg["targetGroupArns"]) == sorted(target_group_arn(result, s.name) for s in group.services)
        assert asg["instanceRefresh"]["strategy"] == "Rolling"
        assert asg["instanceRefresh"]["preferences"]["minHealthyPercentage"] == 100
        assert asg["instanceRefresh"]["preferences"]["maxHealthyPercentage"] > 100
        assert asg["waitForElbCapacity"] == group.count
        assert asg["vpcZoneIdentifiers"] and all(s.startswith("subnet-") for s in asg["vpcZoneIdentifiers"])


@pytest.mark.parametrize("stack", CASES)
def test_each_service_has_a_target_group_checking_its_own_health(stack):
    plan, result = planned(stack)
    groups = {tg["name"]: tg["inputs"] for tg in of_type(result, TG)}
    services = [s for g in plan.node_groups for s in g.services]
    assert sorted(groups) == sorted(s.name for s in services)
    for group in plan.node_groups:
        for service in group.services:
            tg = groups[service.name]
            check = tg["healthCheck"]
            assert check["path"] == f"{HEALTH_PATH}/{service.name}"
            assert check["matcher"] == "200"
            assert tg["port"] == 80 and tg["protocol"] == "HTTP"
            # A restart within its estimate does not count as failed, so the ASG does not replace the node.
            window = check["interval"] * check["unhealthyThreshold"]
            assert window >= group.boot.restart_of(service.name)
            assert 5 <= check["interval"] <= 300 and 2 <= check["unhealthyThreshold"] <= 10
            assert check["timeout"] < check["interval"]


@pytest.mark.parametrize("stack", CASES)
def test_path_rules_send_every_service_path_to_the_group_serving_it(stack):
    plan, result = planned(stack)
    listener = serving_listener(result)
    rules = of_type(result, RULE)
    routed: dict[str, str] = {}
    for rule in rules:
        assert rule["inputs"]["listenerArn"] == answer(result, LISTENER, listener["name"])["arn"]
        (condition,) = rule["inputs"]["conditions"]
        values = condition["pathPattern"]["values"]
        assert 1 <= len(values) <= MAX_PATHS_PER_RULE
        (action,) = rule["inputs"]["actions"]
        assert action["type"] == "forward"
        for path in values:
            assert path not in routed, f"{path} routed twice"
            routed[path] = action["targetGroupArn"]
    for group in plan.node_groups:
        for service in group.services:
            for path in service.paths:
                assert routed.get(path) == target_group_arn(result, service.name), f"{service.name}: {path}"
    assert HEALTH_PATH in routed
    priorities = [r["inputs"]["priority"] for r in rules]
    assert len(set(priorities)) == len(priorities)
    assert listener["inputs"]["defaultActions"][0]["fixedResponse"]["statusCode"] == "404"


def test_rules_split_paths_into_chunks_alb_accepts():
    plan, _ = planned(CASES[0])
    services = [s for g in plan.node_groups for s in g.services]
    chunks = routes(plan, {s.name: f"tg-{s.name}" for s in services})
    assert all(len(paths) <= MAX_PATHS_PER_RULE for paths, _ in chunks)
    assert {tg for _, tg in chunks} == {f"tg-{s.name}" for s in services}
    assert sum(len(paths) for paths, _ in chunks) == sum(len(s.paths) for s in services) + 1  # and /healthz


@pytest.mark.parametrize("stack", CASES)
def test_load_balancer_keeps_streams_open(stack):
    _, result = planned(stack)
    (alb,) = of_type(result, ALB)
    assert alb["inputs"]["idleTimeout"] >= 600 and IDLE_TIMEOUT_S >= 600
    assert alb["inputs"]["loadBalancerType"] == "application"
    assert len(alb["inputs"]["subnets"]) == len(of_type(result, "aws:ec2/subnet:Subnet")) >= 2


@pytest.mark.parametrize("stack", CASES)
def test_tls_on_the_domain_or_plain_http_without_one(stack):
    plan, result = planned(stack)
    listeners = {r["inputs"]["port"]: r["inputs"] for r in of_type(result, LISTENER)}
    domain = plan.access.domain
    if domain:
        (certificate,) = of_type(result, "aws:acm/certificate:Certificate")
        assert certificate["inputs"]["domainName"] == domain
        assert certificate["inputs"]["validationMethod"] == "DNS"
        assert len(of_type(result, "aws:acm/certificateValidation:CertificateValidation")) == 1
        assert of_type(result, "aws:route53/record:Record") == []  # the user's DNS, not necessarily Route 53
        assert set(listeners) == {80, 443}
        assert listeners[443]["protocol"] == "HTTPS" and listeners[443]["certificateArn"].startswith("arn:aws:acm:")
        redirect = listeners[80]["defaultActions"][0]
        assert redirect["type"] == "redirect" and redirect["redirect"]["protocol"] == "HTTPS"
        assert result.outputs["endpoint"] == f"https://{domain}"
        records = result.outputs["certificate_validation_records"]
        assert records and all(r["type"] == "CNAME" and r["name"] and r["value"] for r in records)
        assert result.outputs["dns_record"]["value"] == result.outputs["load_balancer_dns_name"]
    else:
        assert of_type(result, "aws:acm/certificate:Certificate") == []
        assert set(listeners) == {80} and listeners[80]["protocol"] == "HTTP"
        assert result.outputs["endpoint"] == f"http://{result.outputs['load_balancer_dns_name']}"
        assert result.outputs["endpoint"].endswith(".elb.amazonaws.com")


def test_the_domain_case_is_covered():
    assert any(planned(s)[0].access.domain for s in CASES) and any(not planned(s)[0].access.domain for s in CASES)


@pytest.mark.parametrize("stack", ["aws-secrets", "aws-domain"])
def test_no_secret_in_plain_text_anywhere(stack):
    plan, result = planned(stack)
    text = json.dumps(result.as_json()) + "".join(result.user_data.values())
    decoded = "".join(decode_user_data(t["inputs"]["userData"]) for t in of_type(result, LT))
    for secret in (API_KEY, HF_TOKEN):
        assert secret not in text and secret not in decoded
    assert result.outputs["api_key"] == SECRET_MARK
    parameters = {p["inputs"]["name"]: p["inputs"] for p in of_type(result, PARAMETER)}
    expected = {f"/llm-deploy/{stack}/api-key"} | ({f"/llm-deploy/{stack}/hf-token"} if plan.has_hf_token else set())
    assert set(parameters) == expected
    assert all(p["type"] == "SecureString" and p["value"] == SECRET_MARK for p in parameters.values())
    for user_data in result.user_data.values():
        assert f"/llm-deploy/{stack}/api-key" in user_data  # the node is told where, not what


def ssm_decrypt_context(region: str, parameter_arn: str) -> dict[str, str]:
    """The condition keys of the kms:Decrypt call Parameter Store makes for a standard SecureString
    (AWS KMS Developer Guide, "How AWS Systems Manager Parameter Store uses AWS KMS": encryption context
    `{"PARAMETER_ARN": <the parameter's ARN>}`)."""
    return {"kms:ViaService": f"ssm.{region}.amazonaws.com", "kms:EncryptionContext:PARAMETER_ARN": parameter_arn}


def condition_matches(condition: dict, request: dict[str, str]) -> bool:
    """IAM's StringEquals: every key present in the request and equal to one of its values."""
    return all(request.get(key) in (values if isinstance(values, list) else [values])
               for key, values in condition["StringEquals"].items())


@pytest.mark.parametrize("stack", CASES)
def test_node_role_reads_exactly_the_stacks_parameters(stack):
    plan, result = planned(stack)
    arns = sorted(f"arn:aws:ssm:{plan.region}:{fakes.ACCOUNT}:parameter{p['inputs']['name']}" for p in of_type(result, PARAMETER))
    policies = {p["name"].rsplit("-", 1)[-1]: p for p in of_type(result, "aws:iam/rolePolicy:RolePolicy")}
    assert sorted(policies) == ["metrics", "read"]
    document = json.loads(policies["read"]["inputs"]["policy"])
    read, decrypt = document["Statement"]
    assert read["Effect"] == "Allow" and sorted(read["Action"]) == ["ssm:GetParameter", "ssm:GetParameters"]
    assert sorted(read["Resource"]) == arns
    assert decrypt["Action"] == "kms:Decrypt"
    assert decrypt["Condition"]["StringEquals"]["kms:ViaService"] == f"ssm.{plan.region}.amazonaws.com"
    assert set(decrypt["Condition"]) == {"StringEquals"}
    assert sorted(decrypt["Condition"]["StringEquals"]["kms:EncryptionContext:PARAMETER_ARN"]) == arns
    # What KMS sees when SSM decrypts a parameter: its ARN as PARAMETER_ARN in the encryption context.
    for arn in arns:
        assert condition_matches(decrypt["Condition"], ssm_decrypt_context(plan.region, arn))
    other = f"arn:aws:ssm:{plan.region}:{fakes.ACCOUNT}:parameter/llm-deploy/another-stack/api-key"
    assert not condition_matches(decrypt["Condition"], ssm_decrypt_context(plan.region, other))
    assert not condition_matches(decrypt["Condition"], {**ssm_decrypt_context(plan.region, arns[0]), "kms:ViaService": "s3.amazonaws.com"})
    assert "*" not in json.dumps(read)
    # The CloudWatch agent's metric logs, into the stack's log group and nothing else; never a group of its own making.
    (publish,) = json.loads(policies["metrics"]["inputs"]["policy"])["Statement"]
    group = f"arn:aws:logs:{plan.region}:{fakes.ACCOUNT}:log-group:/llm-deploy/{plan.stack}/metrics"
    assert publish["Resource"] == [group, f"{group}:*"] and all(a.startswith("logs:") for a in publish["Action"])
    assert "logs:CreateLogGroup" not in publish["Action"]
    assert len(of_type(result, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")) == 0
    (role,) = of_type(result, "aws:iam/role:Role")
    assert json.loads(role["inputs"]["assumeRolePolicy"])["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}


@pytest.mark.parametrize("stack", CASES)
def test_the_agents_log_group_is_the_stacks_with_a_retention_and_exists_before_any_node(stack):
    plan, result = planned(stack)
    (group,) = of_type(result, "aws:cloudwatch/logGroup:LogGroup")
    assert group["inputs"] == {"name": f"/llm-deploy/{plan.stack}/metrics", "retentionInDays": METRICS_LOG_RETENTION_DAYS}
    assert METRICS_LOG_RETENTION_DAYS in CLOUDWATCH_RETENTION_DAYS  # PutRetentionPolicy takes only these
    for name, text in result.user_data.items():  # every node's agent writes into it
        (agent,) = [f for f in yaml.safe_load(text)["write_files"] if f["path"] == cloudwatch.AGENT_CONFIG]
        assert json.loads(agent["content"])["logs"]["metrics_collected"]["prometheus"]["log_group_name"] == group["inputs"]["name"], name


def test_policy_document_lists_only_what_it_is_given():
    arns = ["arn:aws:ssm:us-east-1:1:parameter/llm-deploy/a/api-key"]
    document = json.loads(read_secrets_policy(arns, "us-east-1"))
    assert document["Statement"][0]["Resource"] == arns


@pytest.mark.parametrize("stack", CASES)
def test_everything_uses_the_explicit_provider_of_the_plans_region(stack):
    plan, result = planned(stack)
    providers = of_type(result, "pulumi:providers:aws")
    assert [p["inputs"]["region"] for p in providers] == [plan.region]
    for token in ("Deployment", "Network", "Secrets", "NodeGroup", "LoadBalancer"):
        assert of_type(result, f"llm-deploy:aws:{token}"), token


def test_zone_choice_takes_every_zone_offering_a_type_and_at_least_two():
    zones = ["z-a", "z-b", "z-c", "z-d"]
    assert pick_zones(zones, {"p5.4xlarge": {"z-c", "z-d"}}, ["p5.4xlarge"]) == ["z-c", "z-d"]
    assert pick_zones(zones, {"p5.4xlarge": {"z-c"}}, ["p5.4xlarge"]) == ["z-c", "z-a"]
    assert pick_zones(zones, {}, ["g6.xlarge"]) == ["z-a", "z-b"]
    # a fallback type offered elsewhere adds its zones, those offering both types first
    both = {"p5.4xlarge": {"z-c", "z-d"}, "p4d.24xlarge": {"z-b", "z-d"}}
    assert pick_zones(zones, both, ["p5.4xlarge", "p4d.24xlarge"]) == ["z-d", "z-b", "z-c"]
    with pytest.raises(ValueError, match="availability zone"):
        pick_zones(["z-a"], {}, ["g6.xlarge"])


def test_nodes_only_go_to_zones_offering_their_type():
    _, result = planned("aws-secrets")
    zone_of = {}
    for subnet in of_type(result, "aws:ec2/subnet:Subnet"):
        subnet_id = id_of(result, "aws:ec2/subnet:Subnet", subnet["name"])
        zone_of[subnet_id] = subnet["inputs"]["availabilityZone"]
    first_zone = "us-west-2a"  # the fakes offer every type everywhere but the first zone
    assert first_zone not in zone_of.values()
    for asg in of_type(result, ASG):
        assert {zone_of[s] for s in asg["inputs"]["vpcZoneIdentifiers"]} <= set(zone_of.values())


def test_rotating_a_secret_rolls_the_nodes():
    """Nodes read the secrets at boot: the parameters' versions are in the launch template, so a new
    value makes a new template version and the instance refresh replaces the nodes."""
    _, result = planned("aws-secrets")
    for template in of_type(result, LT):
        instance_tags = next(t["tags"] for t in template["inputs"]["tagSpecifications"] if t["resourceType"] == "instance")
        assert instance_tags["llm-deploy:secrets-version"] == "1-1"  # api-key and hf-token, each at version 1
