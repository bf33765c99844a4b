"""Alibaba Cloud status: each node group's ESS scaling group (desired, in service, healthy), found by the tags the
components give it. ESS judges ECS health only (components/alicloud/node_group.py), and the ALB's per-server
health (GetListenerHealthStatus) is not read here, so a service's state is unknown unless it is the one the
endpoint's /healthz reaches (the listener's default action: the LLM's server group)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from infra.cli.status import UNKNOWN, GroupStatus, Reading, ServiceStatus
from infra.plan import HEALTH_PATH, DeploymentPlan

UNREAD = "ESS scaling groups and their instances (DescribeScalingGroups, DescribeScalingInstances)"
ESS_VERSION = "2014-08-28"
STACK_TAG, GROUP_TAG = "llm-deploy-stack", "llm-deploy-group"  # components/alicloud/node_group.py
PAGE_SIZE = 50


def ess_endpoint(region: str) -> str:
    return f"ess.{region}.aliyuncs.com"


def _pages(client, action: str, region: str, key: tuple[str, str], **params: str) -> list[dict]:
    found, page = [], 1
    while True:
        answer = client.call(action, ess_endpoint(region), ESS_VERSION, RegionId=region, PageNumber=str(page),
                             PageSize=str(PAGE_SIZE), **params)
        items = answer.get(key[0], {}).get(key[1], [])
        found += items
        if len(found) >= int(answer.get("TotalCount", 0)) or not items:
            return found
        page += 1


def read(plan: DeploymentPlan, outputs: Mapping[str, Any], get: Callable[[str], tuple[str, str]]) -> Reading:
    from infra.cli.refresh.alicloud import client

    ess = client()
    scaling_groups = _pages(ess, "DescribeScalingGroups", plan.region, ("ScalingGroups", "ScalingGroup"),
                            **{"Tag.1.Key": STACK_TAG, "Tag.1.Value": plan.stack})
    by_group = {t["Value"]: g for g in scaling_groups for t in g.get("Tags", {}).get("Tag", []) if t["Key"] == GROUP_TAG}
    endpoint = outputs.get("endpoint")
    # the listener's default action, which /healthz takes, goes to this service's server group (load_balancer.py)
    default_service = (plan.group_serving("llm") or plan.node_groups[0]).services[0]
    default_state = get(f"{endpoint}{HEALTH_PATH}") if endpoint else (UNKNOWN, "no endpoint")
    groups, services = [], []
    for group in plan.node_groups:
        found = by_group.get(group.name)
        instances = _pages(ess, "DescribeScalingInstances", plan.region, ("ScalingInstances", "ScalingInstance"),
                           ScalingGroupId=found["ScalingGroupId"]) if found else []
        in_service = [i for i in instances if i.get("LifecycleState") == "InService"]
        desired = int(found.get("DesiredCapacity", found.get("MinSize", 0))) if found else 0
        groups.append(GroupStatus(group.name, group.offer.instance_type, desired, len(in_service),
                                  sum(i.get("HealthStatus") == "Healthy" for i in in_service), group.offer.hourly_usd))
        for service in group.services:
            if service is default_service:
                services.append(ServiceStatus(service.name, group.name, default_state[0],
                                              f"{HEALTH_PATH} through the load balancer: {default_state[1]}"))
            else:
                services.append(ServiceStatus(service.name, group.name, UNKNOWN, "the ALB's per-server health is not read"))
    return Reading(tuple(groups), tuple(services))
