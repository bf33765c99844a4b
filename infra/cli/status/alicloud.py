"""Alibaba Cloud status: each node group's ESS scaling group (desired, in service, healthy), found by the tags the
components give it, and each service's health from the ALB as its health checks see it: the servers attached to
the service's server group (ListServerGroupServers) less those the listener reports failing
(GetListenerHealthStatus), as AWS reads target health. The listener and server groups come from the stack's
outputs (components/alicloud/__init__.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from infra.cli.status import UNHEALTHY, UNKNOWN, GroupStatus, Reading, ServiceStatus, target_counts
from infra.plan import DeploymentPlan

UNREAD = ("ESS scaling groups and their instances (DescribeScalingGroups, DescribeScalingInstances), ALB server health "
          "(ListServerGroupServers, GetListenerHealthStatus)")
ESS_VERSION = "2014-08-28"
STACK_TAG, GROUP_TAG = "llm-deploy-stack", "llm-deploy-group"  # components/alicloud/node_group.py
PAGE_SIZE = 50


def ess_endpoint(region: str) -> str:
    return f"ess.{region}.aliyuncs.com"


def alb_endpoint(region: str) -> str:
    return f"alb.{region}.aliyuncs.com"


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


def service_states(api, region: str, outputs: Mapping[str, Any]) -> dict[str, tuple[str, str, int | None, int | None]]:
    """Service → (state, detail, healthy, registered) from the ALB; {} when the outputs name no listener."""
    from components.alicloud.rollout import server_health

    listener, server_groups = outputs.get("listener_id"), outputs.get("server_groups") or {}
    if not listener or not server_groups:
        return {}
    health = server_health(api, alb_endpoint(region), listener, tuple(server_groups.values()))
    states = {}
    for service, group_id in server_groups.items():
        attached, passing = health[group_id]
        if passing is None:
            states[service] = (UNHEALTHY, f"server group {group_id} is not health-checked by the listener", None, len(attached))
        else:
            states[service] = target_counts(["healthy"] * len(passing) + ["failing"] * (len(attached) - len(passing)), "servers")
    return states


def read(plan: DeploymentPlan, outputs: Mapping[str, Any], get: Callable[[str], tuple[str, str]]) -> Reading:
    from infra.cli.refresh.alicloud import client

    api = client()
    scaling_groups = _pages(api, "DescribeScalingGroups", plan.region, ("ScalingGroups", "ScalingGroup"),
                            **{"Tag.1.Key": STACK_TAG, "Tag.1.Value": plan.stack})
    by_group = {t["Value"]: g for g in scaling_groups for t in g.get("Tags", {}).get("Tag", []) if t["Key"] == GROUP_TAG}
    states = service_states(api, plan.region, outputs)
    groups, services = [], []
    for group in plan.node_groups:
        found = by_group.get(group.name)
        instances = _pages(api, "DescribeScalingInstances", plan.region, ("ScalingInstances", "ScalingInstance"),
                           ScalingGroupId=found["ScalingGroupId"]) if found else []
        in_service = [i for i in instances if i.get("LifecycleState") == "InService"]
        desired = int(found.get("DesiredCapacity", found.get("MinSize", 0))) if found else 0
        groups.append(GroupStatus(group.name, group.offer.instance_type, desired, len(in_service),
                                  sum(i.get("HealthStatus") == "Healthy" for i in in_service), group.offer.hourly_usd))
        for service in group.services:
            state, detail, healthy, registered = states.get(service.name) or (
                UNKNOWN, "the stack's outputs name no ALB server group (deployed before status read them: run `pulumi up`)", None, None)
            services.append(ServiceStatus(service.name, group.name, state, detail, healthy, registered))
    return Reading(tuple(groups), tuple(services))
