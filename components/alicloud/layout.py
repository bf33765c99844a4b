"""Alibaba Cloud choices as plain data: zones, subnets, disks, names and the node RAM policy.

Pure functions (no Pulumi, no SDK), so each rule is tested on its own and the components only wire
resources from what these return.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from infra.plan import NodeGroup

VPC_CIDR = "10.42.0.0/16"
VSWITCH_PREFIX = 20  # /20 per zone: room for 16 zones in the /16
LB_ZONE_COUNT = 2  # an ALB needs zone mappings in two zones
# Zones a scaling group may launch in: every zone offering one of its instance types, up to the vSwitches
# ESS takes per group (CreateScalingGroup VSwitchIds.N: up to 8, UNVERIFIED), so ESS falls back to
# another zone when one has no stock.
NODE_ZONE_COUNT = 8

# ESSD system disks of ECS instances take 20..500 GiB (ecs.Instance `system_disk_size` in the SDK).
SYSTEM_DISK_MIN_GB = 40  # Ubuntu images are 20 GiB; Docker images live on the system disk too
SYSTEM_DISK_MAX_GB = 500
SYSTEM_DISK_WITH_DATA_GB = 100  # OS + Docker images when the model cache has a data disk of its own
# The first data disk of a virtio ECS instance appears as /dev/vdb (UNVERIFIED for NVMe-only families).
DATA_DEVICE = "/dev/vdb"

# Ubuntu 22.04 x86_64 system images are named like ubuntu_22_04_x64_20G_alibase_20240220.vhd. The family both
# the look-up step (ecs.get_images) and `llm-deploy images` (infra/cli/images/alicloud.py, DescribeImages) take
# the newest of: Alibaba's own (system) Linux x86_64 images whose name matches, that run on the instance type.
UBUNTU_IMAGE_REGEX = r"^ubuntu_22_04_x64"
IMAGE_OWNER = "system"
IMAGE_OS_TYPE = "linux"
IMAGE_ARCHITECTURE = "x86_64"
IMAGE_OS_RELEASE = "ubuntu-22.04"

# ECS instances assume the node role through the ECS service (Alibaba's instance RAM role trust policy).
ECS_TRUST_POLICY = {
    "Statement": [{"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": ["ecs.aliyuncs.com"]}}],
    "Version": "1",
}


@dataclass(frozen=True)
class ZonePlan:
    """Where the ALB listens (two zones) and where each node group may launch (zones offering its type)."""

    lb_zones: tuple[str, ...]
    node_zones: Mapping[str, tuple[str, ...]]  # node group name → zones

    @property
    def zones(self) -> tuple[str, ...]:
        """Every zone that needs a vSwitch: the ALB zones first, then the node groups' others."""
        ordered = list(self.lb_zones)
        for zones in self.node_zones.values():
            ordered += [z for z in zones if z not in ordered]
        return tuple(ordered)

    def vswitch_cidrs(self) -> dict[str, str]:
        """One /20 of the VPC per zone, in zone order (stable while the zones stay the same)."""
        subnets = ipaddress.ip_network(VPC_CIDR).subnets(new_prefix=VSWITCH_PREFIX)
        return {zone: str(cidr) for zone, cidr in zip(self.zones, subnets)}


def launch_types(group: NodeGroup) -> list[str]:
    """The instance types a node group's scaling configuration lists: its offer's, then its fallback offers'."""
    return [group.offer.instance_type, *(o.instance_type for o in group.fallback_offers)]


def zones_of_any(instance_types: Sequence[str], offered: Mapping[str, Sequence[str]]) -> list[str]:
    """Zones offering at least one of the types (instance type → zones), first type's zones first."""
    return list(dict.fromkeys(zone for t in instance_types for zone in offered[t]))


def choose_zones(lb_candidates: Sequence[str], offered: Mapping[str, Sequence[str]]) -> ZonePlan:
    """Two ALB zones (those where the most node groups can run first) and every zone that can run a group.

    lb_candidates: zones where ALB is available, in the region's order. offered: node group name →
    zones that offer one of its instance types. ValueError when the region cannot host the plan.
    """
    if len(lb_candidates) < LB_ZONE_COUNT:
        raise ValueError(f"ALB is available in {len(lb_candidates)} zone(s) of the region; it needs {LB_ZONE_COUNT}")
    missing = sorted(name for name, zones in offered.items() if not zones)
    if missing:
        raise ValueError(f"no zone of the region offers the instance type of node group(s) {', '.join(missing)}")
    runs_here = {zone: sum(zone in zones for zones in offered.values()) for zone in lb_candidates}
    lb_zones = tuple(sorted(lb_candidates, key=lambda zone: -runs_here[zone])[:LB_ZONE_COUNT])
    node_zones = {
        name: tuple(sorted(zones, key=lambda zone: zone not in lb_zones)[:NODE_ZONE_COUNT]) for name, zones in offered.items()
    }
    return ZonePlan(lb_zones, node_zones)


@dataclass(frozen=True)
class DiskLayout:
    """ESSD sizes for a node: the system disk, plus a data disk for the model cache when it is too big."""

    system_gb: int
    data_gb: int | None = None

    @property
    def data_device(self) -> str | None:
        return DATA_DEVICE if self.data_gb else None


def disk_layout(disk_gb: int) -> DiskLayout:
    """All on the system disk up to its 500 GiB limit; beyond it, the cache gets a data disk of its own."""
    if disk_gb <= SYSTEM_DISK_MAX_GB:
        return DiskLayout(system_gb=max(disk_gb, SYSTEM_DISK_MIN_GB))
    return DiskLayout(system_gb=SYSTEM_DISK_WITH_DATA_GB, data_gb=disk_gb)


def cloud_name(*parts: str, limit: int = 64) -> str:
    """A name every Alibaba resource here accepts: letters, digits and '-', starting with a letter.

    RAM policy names allow only those characters; role names at most 64.
    """
    text = re.sub(r"[^A-Za-z0-9-]+", "-", "-".join(parts)).strip("-")
    if not text[:1].isalpha():
        text = f"s-{text}"
    return text[:limit].rstrip("-")


def secret_parameter_name(stack: str, key: str) -> str:
    """OOS parameter names take letters, digits, '-', '_' and '/'; one folder per stack."""
    return "llm-deploy/" + re.sub(r"[^A-Za-z0-9_-]+", "-", stack) + f"/{key}"


def node_secrets_policy(region: str, account_id: str, parameter_names: Sequence[str]) -> dict:
    """Read exactly the stack's OOS encrypted parameters, nothing else.

    GetSecretParameter decrypts through KMS Secrets Manager: an encrypted parameter is backed by the
    KMS secret `oos/<parameter name>`, so the caller also needs kms:GetSecretValue on that secret
    (Alibaba's GetSecretParameter API reference; UNVERIFIED whether kms:Decrypt is ever needed too).
    """
    return {
        "Version": "1",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["oos:GetSecretParameter"],
                "Resource": [f"acs:oos:{region}:{account_id}:secretparameter/{name}" for name in parameter_names],
            },
            {
                "Effect": "Allow",
                "Action": ["kms:GetSecretValue"],
                "Resource": [f"acs:kms:{region}:{account_id}:secret/oos/{name}" for name in parameter_names],
            },
        ],
    }


def launch_fingerprint(*values: object) -> str:
    """A short hash of what a node boots with; part of the scaling group's name, so a change replaces the nodes."""
    return hashlib.sha256(repr(values).encode()).hexdigest()[:8]


# How ESS fills a node group per `spotPolicy`. On-demand: BALANCE spreads the nodes over the zones and
# launches the first instance type of the configuration's list that has stock. Spot and auto: COST_OPTIMIZED
# is the policy that launches preemptible instances (cheapest type first) with an on-demand share; auto
# backs spot with pay-as-you-go when no spot stock is left (`compensate_with_on_demand`). Both replace a
# spot node when its reclaim notice comes (`spot_instance_remedy`), before the instance is released.
# Argument names: pulumi_alicloud 4 ess.ScalingGroup / ess.ScalingConfiguration.
SPOT_STRATEGY = "SpotAsPriceGo"  # pay the market price, at most the pay-as-you-go price


@dataclass(frozen=True)
class Capacity:
    """The scaling group's multi-zone policy and spot arguments, and the configuration's spot strategy."""

    group_args: Mapping[str, object]
    spot_strategy: str | None  # None: pay-as-you-go instances only


def capacity(spot_policy: str, instance_types: int) -> Capacity:
    """ESS arguments for one node group of `instance_types` types under a spot policy (infra/plan.py SPOT_POLICIES)."""
    if spot_policy == "on-demand":
        return Capacity({"multi_az_policy": "BALANCE"}, None)
    return Capacity(
        {
            "multi_az_policy": "COST_OPTIMIZED",
            "on_demand_base_capacity": 0,
            "on_demand_percentage_above_base_capacity": 0,
            "spot_instance_pools": instance_types,
            "spot_instance_remedy": True,
            "compensate_with_on_demand": spot_policy == "auto",
        },
        SPOT_STRATEGY,
    )


def rollout_steps(count: int, batch: int) -> tuple[int, ...]:
    """The sizes a new scaling group grows through, `batch` nodes at a time: (batch, 2*batch, ..., count)."""
    return (*range(batch, count, batch), count)
