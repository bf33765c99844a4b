"""The AWS components' pure helpers (no Pulumi resources, no SDK): names and tags, the machine images'
SSM parameters, the zone choice and subnet ranges, security-group CIDR fields, the target groups' health
checks, and how a node group rolls and rents its nodes (instance refresh, mixed instances)."""

from __future__ import annotations

import functools
import ipaddress
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from infra import clouds
from infra.data_files import data_rows
from infra.plan import HEALTH_PATH, BootEstimate, DeploymentPlan, NodeGroup, PlacedService

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


@dataclass(frozen=True)
class ImageParameter:
    """A public SSM parameter naming the newest AMI of a node kind, and the account that must own that AMI."""

    parameter: str
    owner: str


@functools.cache
def image_parameters() -> dict[str, ImageParameter]:
    """Accelerator ("gpu", "cpu") → its AMI's SSM parameter (data/aws_images.csv)."""
    return {row["accelerator"]: ImageParameter(row["parameter"], row["owner"]) for row in data_rows("aws_images.csv")}


VPC_CIDR = "10.42.0.0/16"
SUBNET_PREFIX = 20  # one public /20 per AZ, in the VPC's order: 10.42.0.0/20, 10.42.16.0/20, ...
MIN_ZONES = 2  # an ALB needs subnets in two AZs


def subnet_cidrs(count: int) -> list[str]:
    """The first `count` /20 ranges of the VPC (the first two are those of stacks made before fallback types)."""
    return [str(net) for net, _ in zip(ipaddress.ip_network(VPC_CIDR).subnets(new_prefix=SUBNET_PREFIX), range(count))]


def pick_zones(zones: Sequence[str], offered: Mapping[str, set[str]], instance_types: Sequence[str]) -> list[str]:
    """Every AZ that offers any of the node groups' instance types (their fallback types too), those offering the
    most first, and at least two (the load balancer's), so a node group can launch wherever one of its types is.

    offered: instance type → AZs where EC2 offers it. Ties keep the region's AZ order, so the first two are the
    two a stack got before (their subnets keep their names and ranges).
    """
    if len(zones) < MIN_ZONES:
        raise ValueError(f"the region has {len(zones)} usable availability zone(s); the load balancer needs {MIN_ZONES}")
    score = {zone: sum(zone in offered.get(t, set()) for t in instance_types) for zone in zones}
    ranked = sorted(zones, key=lambda zone: -score[zone])
    return ranked[: max(MIN_ZONES, sum(score[zone] > 0 for zone in zones))]


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


# How a change rolls a node group (an instance refresh), from the plan's rollout batch and boot estimate.
LAUNCH_BEFORE_TERMINATE = 100  # min healthy %: no node leaves before its successor is healthy
MAX_SURGE_PERCENT = 200  # AWS: max healthy % is 100-200


@dataclass(frozen=True)
class Rollout:
    """An instance refresh's preferences for one node group, and how long `pulumi up` waits for it."""

    min_healthy_percentage: int
    max_healthy_percentage: int
    instance_warmup: int  # seconds after InService before the refresh counts a new node and moves on
    checkpoints: tuple[int, ...]  # % of the group replaced after which the refresh pauses: each batch's end, the last 100
    checkpoint_delay: int  # seconds it pauses there: a new node that fails soon after it turned healthy is judged
    timeout_seconds: int  # the whole refresh's bound; past it `pulumi up` stops the refresh and fails

    @property
    def preferences(self) -> dict:
        """The SDK's `instance_refresh.preferences` (SDK 7 takes the warm-up and delay as strings)."""
        checkpoints = {"checkpoint_percentages": list(self.checkpoints), "checkpoint_delay": str(self.checkpoint_delay)}
        return {
            "min_healthy_percentage": self.min_healthy_percentage,
            "max_healthy_percentage": self.max_healthy_percentage,
            "instance_warmup": str(self.instance_warmup),
            **(checkpoints if self.checkpoints else {}),
            "auto_rollback": True,  # a refresh that fails returns the group to the nodes it had
            "skip_matching": True,  # nodes already on the new configuration stay
        }


def rollout(group: NodeGroup, batch: int, drain_seconds: int) -> Rollout:
    """Launch before terminate, `batch` nodes at a time (the plan's rollout.batchSize, at most the group).

    Min healthy 100 %: AWS terminates an old node only once a new one is healthy and warmed up. Max healthy
    100 % + the batch's share of the group, rounded down (AWS rounds the min up and the max percentage is
    of the desired capacity): a single node gets 200 %, a new node beside it before the old one leaves;
    2 nodes with batch 1: 150 %; 4 nodes with batch 2: 150 %. Warm-up: the node group's time-to-healthy
    bound (the grace) plus one health-check interval, so the ELB has judged the new node once its grace ends.
    Checkpoints: the end of every batch, the last at 100 (AWS: the last percentage is how much of the group a
    refresh replaces, [50] would stop halfway). Timeout: per batch that warm-up, the old nodes' connection
    draining and a checkpoint's pause.
    """
    assert group.boot is not None, "placement estimates every node group's boot"
    count = max(group.count, 1)
    surge = max(1, min(batch, count))
    batches = math.ceil(count / surge)
    checks = [health_check(service, group.boot) for service in group.services]
    warmup = group.boot.grace_seconds + max(check["interval"] for check in checks)
    delay = max(check["interval"] * check["unhealthy_threshold"] for check in checks)
    return Rollout(
        min_healthy_percentage=LAUNCH_BEFORE_TERMINATE,
        max_healthy_percentage=min(MAX_SURGE_PERCENT, LAUNCH_BEFORE_TERMINATE + 100 * surge // count),
        instance_warmup=warmup,
        checkpoints=tuple(100 * step * surge // count for step in range(1, batches)) + ((100,) if batches > 1 else ()),
        checkpoint_delay=delay,
        timeout_seconds=batches * (warmup + drain_seconds + (delay if batches > 1 else 0)),
    )


# How a node group rents its nodes (`spotPolicy`), as the mixed instances policy's distribution.
SPOT_STRATEGY = "price-capacity-optimized"  # AWS's recommended Spot strategy: pools least likely to be reclaimed, then price
ON_DEMAND_STRATEGY = "prioritized"  # on-demand tries the overrides in order: the placed type, then its fallbacks


def on_demand_base(policy: str, count: int) -> int:
    """On-demand nodes below the Spot ones: none for on-demand (100 % above it is on-demand anyway) and spot; for
    auto the record's `auto_on_demand_nodes` (one: AWS never falls back from Spot to on-demand by itself, so one
    node Spot cannot take away; a one-node group is on-demand under auto). `cost` bills the same split."""
    return min(clouds.AWS.auto_on_demand_nodes, count) if policy == "auto" else 0


def instances_distribution(policy: str, count: int) -> dict:
    """The SDK's `mixed_instances_policy.instances_distribution` for a spot policy."""
    spot = {} if policy == "on-demand" else {"spot_allocation_strategy": SPOT_STRATEGY}
    return {
        "on_demand_allocation_strategy": ON_DEMAND_STRATEGY,
        "on_demand_base_capacity": on_demand_base(policy, count),
        "on_demand_percentage_above_base_capacity": 100 if policy == "on-demand" else 0,
        **spot,
    }


def instance_types(group: NodeGroup) -> list[str]:
    """The placed type first, then its fallback offers in the plan's order (the overrides' priority)."""
    return list(dict.fromkeys([group.offer.instance_type, *(o.instance_type for o in group.fallback_offers)]))
