"""Plausible Alibaba Cloud answers for the offline plan (no SDK import, no network).

Invoke results and computed outputs use the provider's (camelCase) property names, as the engine
would hand them to the SDK. Zone ids follow the region of the last alicloud provider created, so a
Singapore stack shows ap-southeast-1a/b/c.
"""

from __future__ import annotations

import hashlib

DEFAULT_REGION = "ap-southeast-1"
ACCOUNT_ID = "5123456789012345"
UBUNTU_IMAGE = "ubuntu_22_04_x64_20G_alibase_20250101.vhd"
_state = {"region": DEFAULT_REGION}


def _suffix(name: str, length: int = 17) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:length]


def _zone_ids() -> list[str]:
    return [f"{_state['region']}{letter}" for letter in "abc"]


def _provider(name: str, inputs: dict) -> dict:
    _state["region"] = inputs.get("region") or DEFAULT_REGION
    return {}


def _get_zones(args: dict) -> dict:
    instance_type = args.get("availableInstanceType")
    zones = [
        {
            "id": zone,
            "localName": zone,
            "availableInstanceTypes": [instance_type] if instance_type else [],
            "availableDiskCategories": ["cloud_essd"],
            "availableResourceCreations": ["Instance", "Disk", "VSwitch"],
            "multiZoneIds": [],
            "slbSlaveZoneIds": [],
        }
        for zone in _zone_ids()
    ]
    return {"id": "zones", "ids": [z["id"] for z in zones], "zones": zones}


def _get_alb_zones(args: dict) -> dict:
    zones = [{"id": zone, "zoneId": zone, "localName": zone} for zone in _zone_ids()]
    return {"id": "alb-zones", "ids": [z["id"] for z in zones], "zones": zones}


def _get_images(args: dict) -> dict:
    image = {
        "id": UBUNTU_IMAGE,
        "imageId": UBUNTU_IMAGE,
        "name": UBUNTU_IMAGE,
        "imageName": UBUNTU_IMAGE,
        "architecture": "x86_64",
        "osType": "linux",
        "osName": "Ubuntu  22.04 64 bit",
        "platform": "Ubuntu",
        "imageOwnerAlias": "system",
        "isSupportCloudinit": True,
        "status": "Available",
        "size": 20,
    }
    return {"id": "images", "ids": [UBUNTU_IMAGE], "images": [image], "nameRegex": args.get("nameRegex")}


def _caller_identity(args: dict) -> dict:
    return {"id": ACCOUNT_ID, "accountId": ACCOUNT_ID, "arn": f"acs:ram::{ACCOUNT_ID}:root", "identityType": "Account"}


def _prefixed(prefix: str):
    return lambda name, inputs: {"id": f"{prefix}-{_suffix(name)}"}


def _alb(name: str, inputs: dict) -> dict:
    load_balancer_id = f"alb-{_suffix(name)}"
    return {
        "id": load_balancer_id,
        "dnsName": f"{load_balancer_id}.{_state['region']}.alb.aliyuncsslb.com",
        "status": "Active",
        "regionId": _state["region"],
    }


def _role(name: str, inputs: dict) -> dict:
    role_name = inputs["roleName"]
    return {"id": role_name, "arn": f"acs:ram::{ACCOUNT_ID}:role/{role_name.lower()}", "roleId": _suffix(name, 19)}


def _policy(name: str, inputs: dict) -> dict:
    return {"id": inputs["policyName"], "type": "Custom", "defaultVersion": "v1"}


def _role_policy_attachment(name: str, inputs: dict) -> dict:
    return {"id": f"role:{inputs['policyName']}:{inputs['policyType']}:{inputs['roleName']}"}


def _secret_parameter(name: str, inputs: dict) -> dict:
    return {"id": inputs["secretParameterName"], "keyId": f"key-{_suffix(name, 24)}", "createTime": "2025-01-01T00:00:00Z"}


def _ess_alb_attachment(name: str, inputs: dict) -> dict:
    return {"id": f"{inputs['scalingGroupId']}:{inputs['albServerGroupId']}:{inputs['port']}"}


def _random_id(name: str, inputs: dict) -> dict:
    """components/alicloud/secrets.py's generation id: hex digits of the byte length asked."""
    return {"id": f"generation-{_suffix(name)}", "hex": _suffix(name, 2 * int(inputs["byteLength"]))}


INVOKES = {
    "alicloud:index/getZones:getZones": _get_zones,
    "alicloud:alb/getZones:getZones": _get_alb_zones,
    "alicloud:ecs/getImages:getImages": _get_images,
    "alicloud:index/getCallerIdentity:getCallerIdentity": _caller_identity,
}

OUTPUTS = {
    "pulumi:providers:alicloud": _provider,
    "alicloud:vpc/network:Network": _prefixed("vpc"),
    "alicloud:vpc/switch:Switch": _prefixed("vsw"),
    "alicloud:ecs/securityGroup:SecurityGroup": _prefixed("sg"),
    "alicloud:ecs/securityGroupRule:SecurityGroupRule": _prefixed("sgr"),
    "alicloud:oos/secretParameter:SecretParameter": _secret_parameter,
    "alicloud:ram/role:Role": _role,
    "alicloud:ram/policy:Policy": _policy,
    "alicloud:ram/rolePolicyAttachment:RolePolicyAttachment": _role_policy_attachment,
    "alicloud:ess/scalingGroup:ScalingGroup": _prefixed("asg"),
    "random:index/randomId:RandomId": _random_id,
    "alicloud:ess/scalingConfiguration:ScalingConfiguration": _prefixed("asc"),
    "alicloud:ess/albServerGroupAttachment:AlbServerGroupAttachment": _ess_alb_attachment,
    "alicloud:alb/loadBalancer:LoadBalancer": _alb,
    "alicloud:alb/serverGroup:ServerGroup": _prefixed("sgp"),
    "alicloud:alb/listener:Listener": _prefixed("lsn"),
    "alicloud:alb/rule:Rule": _prefixed("rule"),
    "alicloud:oos/template:Template": lambda name, inputs: {
        "id": inputs["templateName"], "templateName": inputs["templateName"], "templateVersion": "v1"},
    # components/alicloud/scaling.py's dynamic resource: StartExecution's id
    "pulumi-python:dynamic/alicloud:SwitchExecution": lambda name, inputs: {"id": f"exec-{_suffix(name, 16)}", "status": "Waiting"},
    "alicloud:alb/acl:Acl": _prefixed("acl"),
    "alicloud:alb/aclEntryAttachment:AclEntryAttachment": _prefixed("acl-entries"),
    "alicloud:alb/listenerAclAttachment:ListenerAclAttachment": _prefixed("lsn-acl"),
    # CloudMonitor names contacts and contact groups by the names they are given; alarm rules get an id
    "alicloud:cms/alarmContact:AlarmContact": lambda name, inputs: {"id": inputs["alarmContactName"]},
    "alicloud:cms/alarmContactGroup:AlarmContactGroup": lambda name, inputs: {"id": inputs["alarmContactGroupName"]},
    "alicloud:cms/alarm:Alarm": _prefixed("alarm"),
}
