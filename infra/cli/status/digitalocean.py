"""DigitalOcean status: each node group's droplets (by the group's tag) and each service's health through the load
balancer. DigitalOcean keeps no group of droplets to a wanted size (desired is the plan's count) and reports no
droplet's health, so a service's state is what the nodes' gateways answer on `/healthz/<service>`, asked twice per
running droplet (the load balancer takes turns): healthy when some node answers 200."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from infra.cli.status import HEALTHY, UNHEALTHY, UNKNOWN, GroupStatus, Reading, ServiceStatus
from infra.plan import HEALTH_PATH, DeploymentPlan

UNREAD = "droplets by node group tag (/v2/droplets)"
ASKS_PER_DROPLET = 2


def group_tag(stack: str, group: str) -> re.Pattern[str]:
    """A node group's droplet tag: `<stack>-group-<group>-<suffix Pulumi adds>` (components/digitalocean/network.py)."""
    from components.digitalocean.layout import dns_name

    return re.compile(rf"{re.escape(dns_name(stack))}-group-{re.escape(group)}-[a-z0-9]+")


def read(plan: DeploymentPlan, outputs: Mapping[str, Any], get: Callable[[str], tuple[str, str]]) -> Reading:
    from infra.cli.refresh import digitalocean as do

    droplets = do.listing("/v2/droplets", "droplets", do.api_token())
    endpoint = outputs.get("endpoint")
    groups, services = [], []
    for group in plan.node_groups:
        tag = group_tag(plan.stack, group.name)
        mine = [d for d in droplets if any(tag.fullmatch(t) for t in d.get("tags", []))]
        running = sum(d["status"] == "active" for d in mine)
        groups.append(GroupStatus(group.name, group.offer.instance_type, group.count, running, None, group.offer.hourly_usd))
        for service in group.services:
            if not endpoint:
                services.append(ServiceStatus(service.name, group.name, UNKNOWN, "no endpoint to ask"))
                continue
            answers = [get(f"{endpoint}{HEALTH_PATH}/{service.name}")[0] for _ in range(max(1, ASKS_PER_DROPLET * running))]
            ok = answers.count(HEALTHY)
            state = HEALTHY if ok else UNHEALTHY if UNHEALTHY in answers else UNKNOWN
            services.append(ServiceStatus(service.name, group.name, state,
                                          f"{HEALTH_PATH}/{service.name}: {ok} of {len(answers)} answers 200 through the load balancer"))
    return Reading(tuple(groups), tuple(services))
