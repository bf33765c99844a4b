"""Plausible AWS answers for the offline plan: invokes and the computed outputs of the resources we create.

No SDK import (the offline engine loads every cloud's fakes). Keys are the wire names (camelCase),
as a provider would return them. Ids derive from the resource name, so plans are reproducible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

ACCOUNT = "123456789012"
ZONE_LETTERS = "abcdef"
GPU_AMI, CPU_AMI = "ami-0d1a2b3c4d5e6f708", "ami-0c0a1b2c3d4e5f607"
AMI_SNAPSHOT_GB = {GPU_AMI: "75", CPU_AMI: "8"}
# The region comes from the explicit provider, created before any resource that needs it.
_state = {"region": "us-east-1"}


def _hex(name: str, length: int = 17) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:length]


def _arn(service: str, resource: str, region: bool = True) -> str:
    return f"arn:aws:{service}:{_state['region'] if region else ''}:{ACCOUNT}:{resource}"


def _provider(name: str, inputs: dict) -> dict:
    _state["region"] = inputs.get("region") or _state["region"]
    return {}


def _zones(args: dict) -> dict:
    region = args.get("region") or _state["region"]
    names = [f"{region}{letter}" for letter in ZONE_LETTERS]
    return {"id": region, "names": names, "zoneIds": [f"use1-az{i + 1}" for i in range(len(names))], "state": "available"}


def _offerings(args: dict) -> dict:
    """Every requested type in every zone but the first: placement's types exist, zone choice still matters."""
    types = next((f["values"] for f in args.get("filters") or [] if f["name"] == "instance-type"), [])
    zones = _zones(args)["names"][1:]
    pairs = [(t, z) for t in types for z in zones]
    return {
        "id": _state["region"],
        "instanceTypes": [t for t, _ in pairs],
        "locations": [z for _, z in pairs],
        "locationTypes": ["availability-zone"] * len(pairs),
    }


def _parameter(args: dict) -> dict:
    name = args["name"]
    value = GPU_AMI if "deeplearning" in name else CPU_AMI if "/aws/service/" in name else "offline-parameter"
    return {
        "id": name,
        "name": name,
        "arn": _arn("ssm", f"parameter{name}"),
        "type": "String",
        "value": value,
        "insecureValue": value,
        "version": 1,
    }


def _ami(args: dict) -> dict:
    image_id = next((f["values"][0] for f in args.get("filters") or [] if f["name"] == "image-id"), GPU_AMI)
    return {
        "id": image_id,
        "imageId": image_id,
        "architecture": "x86_64",
        "rootDeviceName": "/dev/sda1",
        "blockDeviceMappings": [
            {
                "deviceName": "/dev/sda1",
                "ebs": {"volume_size": AMI_SNAPSHOT_GB.get(image_id, "8"), "volume_type": "gp3", "encrypted": "false"},
            }
        ],
    }


INVOKES: dict[str, Callable[[dict], dict]] = {
    "aws:index/getAvailabilityZones:getAvailabilityZones": _zones,
    "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": _offerings,
    "aws:ssm/getParameter:getParameter": _parameter,
    "aws:ec2/getAmi:getAmi": _ami,
}


def _ec2(prefix: str, kind: str) -> Callable[[str, dict], dict]:
    def outputs(name: str, inputs: dict) -> dict:
        resource_id = f"{prefix}-{_hex(name)}"
        return {"id": resource_id, "arn": _arn("ec2", f"{kind}/{resource_id}")}

    return outputs


def _named(service: str, kind: str, region: bool = True) -> Callable[[str, dict], dict]:
    """Resources whose physical name Pulumi autonames: name-<7 hex>."""

    def outputs(name: str, inputs: dict) -> dict:
        physical = inputs.get("name") or f"{name}-{_hex(name, 7)}"
        return {"id": physical, "name": physical, "arn": _arn(service, f"{kind}/{physical}", region)}

    return outputs


def _arn_named(service: str, kind: str) -> Callable[[str, dict], dict]:
    """Autonamed resources whose ARN ends in `<kind><name>` (SNS topics: no kind; alarms: `alarm:`)."""

    def outputs(name: str, inputs: dict) -> dict:
        physical = inputs.get("name") or f"{name}-{_hex(name, 7)}"
        return {"id": physical if kind else _arn(service, physical), "name": physical, "arn": _arn(service, f"{kind}{physical}")}

    return outputs


def _parameter_resource(name: str, inputs: dict) -> dict:
    return {"id": inputs["name"], "arn": _arn("ssm", f"parameter{inputs['name']}"), "version": 1}


def _launch_template(name: str, inputs: dict) -> dict:
    resource_id = f"lt-{_hex(name)}"
    return {"id": resource_id, "arn": _arn("ec2", f"launch-template/{resource_id}"), "latestVersion": 1, "defaultVersion": 1}


def _elb(kind: str) -> Callable[[str, dict], dict]:
    def outputs(name: str, inputs: dict) -> dict:
        physical = f"{name}-{_hex(name, 7)}"[:32]
        arn = _arn("elasticloadbalancing", f"{kind}/{physical}/{_hex(name, 16)}")
        out = {"id": arn, "arn": arn, "arnSuffix": arn.split(":", 5)[5].removeprefix("loadbalancer/"), "name": physical}
        if kind == "loadbalancer/app":
            out |= {
                "dnsName": f"{physical}-{int(_hex(name, 8), 16) % 10**10}.{_state['region']}.elb.amazonaws.com",
                "zoneId": "Z35SXDOTRQ7X7K",
            }
        return out

    return outputs


def _certificate(name: str, inputs: dict) -> dict:
    arn = _arn("acm", f"certificate/{_hex(name, 8)}-{_hex(name + 'a', 4)}-{_hex(name + 'b', 4)}-{_hex(name + 'c', 12)}")
    domain = inputs["domainName"]
    return {
        "id": arn,
        "arn": arn,
        "status": "PENDING_VALIDATION",
        "domainValidationOptions": [
            {
                "domainName": domain,
                "resourceRecordName": f"_{_hex(domain, 32)}.{domain}.",
                "resourceRecordType": "CNAME",
                "resourceRecordValue": f"_{_hex(domain + 'v', 32)}.xlfgrmvvlj.acm-validations.aws.",
            }
        ],
    }


OUTPUTS: dict[str, Callable[[str, dict], dict]] = {
    "pulumi:providers:aws": _provider,
    "aws:ec2/vpc:Vpc": _ec2("vpc", "vpc"),
    "aws:ec2/subnet:Subnet": _ec2("subnet", "subnet"),
    "aws:ec2/internetGateway:InternetGateway": _ec2("igw", "internet-gateway"),
    "aws:ec2/routeTable:RouteTable": _ec2("rtb", "route-table"),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": _ec2("rtbassoc", "route-table-association"),
    "aws:ec2/securityGroup:SecurityGroup": _ec2("sg", "security-group"),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": _ec2("sgr", "security-group-rule"),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": _ec2("sgr", "security-group-rule"),
    "aws:ec2/launchTemplate:LaunchTemplate": _launch_template,
    "aws:ssm/parameter:Parameter": _parameter_resource,
    "aws:iam/role:Role": _named("iam", "role", region=False),
    "aws:iam/rolePolicy:RolePolicy": _named("iam", "role-policy", region=False),
    "aws:iam/instanceProfile:InstanceProfile": _named("iam", "instance-profile", region=False),
    "aws:autoscaling/group:Group": _named("autoscaling", "autoScalingGroup"),
    "aws:lb/loadBalancer:LoadBalancer": _elb("loadbalancer/app"),
    "aws:lb/targetGroup:TargetGroup": _elb("targetgroup"),
    "aws:lb/listener:Listener": _elb("listener/app"),
    "aws:lb/listenerRule:ListenerRule": _elb("listener-rule/app"),
    "aws:acm/certificate:Certificate": _certificate,
    "aws:acm/certificateValidation:CertificateValidation": lambda name, inputs: {"id": inputs["certificateArn"]},
    "aws:sns/topic:Topic": _arn_named("sns", ""),
    # an email subscription stays "pending confirmation" until its link is clicked
    "aws:sns/topicSubscription:TopicSubscription": lambda name, inputs: {
        "id": f"{inputs['topic']}:{_hex(name, 8)}", "arn": f"{inputs['topic']}:{_hex(name, 8)}", "pendingConfirmation": True},
    # the provider's ARN drops the ":*" the API appends (the log group, not its streams)
    "aws:cloudwatch/logGroup:LogGroup": lambda name, inputs: {
        "id": inputs["name"], "name": inputs["name"], "arn": _arn("logs", f"log-group:{inputs['name']}")},
    "aws:cloudwatch/metricAlarm:MetricAlarm": _arn_named("cloudwatch", "alarm:"),
    "aws:cloudwatch/dashboard:Dashboard": lambda name, inputs: {
        "id": inputs["dashboardName"], "dashboardArn": _arn("cloudwatch", f"dashboard/{inputs['dashboardName']}", region=False)},
    # components/aws/node_group.py's dynamic resource: a new group has seen no instance refresh yet
    "pulumi-python:dynamic/llm-deploy:RolloutGate": lambda name, inputs: {"id": inputs["group"], "refresh": ""},
}
