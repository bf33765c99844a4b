"""The AWS components' pure helpers (no Pulumi resources, no SDK): names and tags, the zone choice and
subnet ranges, security-group CIDR fields, and the target groups' health checks."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping, Sequence

from infra.plan import HEALTH_PATH, BootEstimate, DeploymentPlan, PlacedService

# Autonamed AWS resources get "-" plus 7 random characters; ALB and target group names allow 32 in all.
MAX_LB_LOGICAL_NAME = 24


def short_name(*parts: str, limit: int = MAX_LB_LOGICAL_NAME) -> str:
    """Letters, digits and '-' only (what ALB / target group names allow), cut to `limit`."""
    text = re.sub(r"[^A-Za-z0-9-]+", "-", "-".join(parts))
    return text[:limit].strip("-")


def stack_tags(plan: DeploymentPlan) -> dict[str, str]:
    """Default tags on every resource, so a stack's resources can be found (and billed) together."""
    return {"llm-deploy:stack": plan.stack, "managed-by": "pulumi"}


def parameter_prefix(plan: DeploymentPlan) -> str:
    """Where the stack's secrets live in SSM Parameter Store."""
    return f"/llm-deploy/{plan.stack}"


VPC_CIDR = "10.42.0.0/16"
SUBNET_CIDRS = ("10.42.0.0/20", "10.42.16.0/20")  # one public subnet per AZ; an ALB needs two AZs


def pick_zones(zones: Sequence[str], offered: Mapping[str, set[str]], instance_types: Sequence[str]) -> list[str]:
    """Two AZs, preferring those that offer the most of the plan's instance types (GPU types are in few AZs).

    offered: instance type → AZs where EC2 offers it. Ties keep the region's AZ order.
    """
    if len(zones) < len(SUBNET_CIDRS):
        raise ValueError(f"the region has {len(zones)} usable availability zone(s); the load balancer needs {len(SUBNET_CIDRS)}")
    score = {zone: sum(zone in offered.get(t, set()) for t in instance_types) for zone in zones}
    return sorted(zones, key=lambda zone: -score[zone])[: len(SUBNET_CIDRS)]


def cidr_field(cidr: str) -> dict[str, str]:
    """SecurityGroup*Rule takes IPv4 and IPv6 ranges in different arguments."""
    family = "cidr_ipv6" if ipaddress.ip_network(cidr).version == 6 else "cidr_ipv4"
    return {family: cidr}


# ALB target group health checks (SDK: interval 5-300 s, thresholds 2-10).
HEALTH_INTERVAL_S = 15
MAX_HEALTH_INTERVAL_S = 300
HEALTH_TIMEOUT_S = 5
HEALTHY_THRESHOLD = 2
MIN_UNHEALTHY_THRESHOLD, MAX_UNHEALTHY_THRESHOLD = 2, 10


def health_check(service: PlacedService, boot: BootEstimate) -> dict:
    """The gateway's /healthz/<service>; failed only after the service's estimated restart time
    (interval x unhealthy threshold >= restart_seconds)."""
    window = boot.restart_of(service.name)
    interval = min(MAX_HEALTH_INTERVAL_S, max(HEALTH_INTERVAL_S, math.ceil(window / MAX_UNHEALTHY_THRESHOLD)))
    unhealthy = min(MAX_UNHEALTHY_THRESHOLD, max(MIN_UNHEALTHY_THRESHOLD, math.ceil(window / interval)))
    return {
        "path": f"{HEALTH_PATH}/{service.name}",
        "port": "traffic-port",
        "protocol": "HTTP",
        "matcher": "200",
        "interval": interval,
        "timeout": HEALTH_TIMEOUT_S,
        "healthy_threshold": HEALTHY_THRESHOLD,
        "unhealthy_threshold": unhealthy,
    }
