"""DigitalOcean choices as plain data: resource name prefixes, volume devices, which group serves a kind, the
rollout batches, and which size and region the account's capacity allows.

Pure functions (no Pulumi, no SDK), so each rule is tested on its own and the components only wire
resources from what these return.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from infra import clouds
from infra.plan import DeploymentPlan, NodeGroup, Offer

# NVIDIA "AI/ML ready" images (driver, CUDA, NVIDIA Container Toolkit) by GPUs per droplet (infra/data/gpu_base_images.csv).
NVIDIA_IMAGES = clouds.DIGITALOCEAN.base_images
CPU_IMAGE = "ubuntu-22-04-x64"


def image_slug(offer: Offer) -> str:
    """The base image slug for a size; ValueError when DigitalOcean has no CUDA image for it (placement
    refuses such an offer first, by the cloud's record; the look-up step names the field for a plan made otherwise)."""
    if offer.gpu_count == 0:
        return CPU_IMAGE
    if offer.cuda and offer.gpu_count in NVIDIA_IMAGES:
        return NVIDIA_IMAGES[offer.gpu_count]
    raise ValueError(f"{offer.gpu} is not a CUDA GPU (vLLM and TEI need NVIDIA)" if not offer.cuda
                     else clouds.DIGITALOCEAN.gpu_count_problem(offer.gpu_count))


def dns_name(text: str) -> str:
    """A name prefix DigitalOcean accepts for droplets, volumes, tags (stack names may hold '_' or '.')."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "stack"
    return name if name[0].isalpha() else f"s-{name}"


def volume_device(volume_name: str) -> str:
    """Where DigitalOcean exposes an attached volume inside the droplet."""
    return f"/dev/disk/by-id/scsi-0DO_Volume_{volume_name}"


def upstream_groups(plan: DeploymentPlan, group: NodeGroup) -> dict[str, str]:
    """Service kinds this group does not serve → the name of the node group that serves them."""
    local = {s.kind for s in group.services}
    return {s.kind: other.name for other in plan.node_groups if other is not group for s in other.services if s.kind not in local}


def rollout_batches(count: int, batch_size: int) -> list[range]:
    """The replica indices of each rollout step, in order: droplets of a batch are replaced together, after
    every droplet of the batch before answers through the load balancer."""
    return [range(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]


@dataclass(frozen=True)
class SizeListing:
    """What the account's /v2/sizes says about one size: can new droplets have it, and where."""

    available: bool
    regions: tuple[str, ...]
    disk_gb: int


class NoCapacity(ValueError):
    """No size a node group can run on is available in any region that could host the whole stack."""


def is_spot_size(size: str) -> bool:
    return clouds.DIGITALOCEAN.spot_problem(size) is None


def size_candidates(group: NodeGroup) -> tuple[Offer, ...]:
    """The group's offer, then its fallbacks, that its spot policy allows, in the order to try them: on-demand
    takes no spot size, spot only spot sizes, auto spot sizes first, then the others."""
    offers = (group.offer, *group.fallback_offers)
    spot = tuple(o for o in offers if is_spot_size(o.instance_type))
    on_demand = tuple(o for o in offers if not is_spot_size(o.instance_type))
    return {"on-demand": on_demand, "spot": spot}.get(group.spot_policy, spot + on_demand)


def _take(group: NodeGroup, region: str, listed: Mapping[str, SizeListing]) -> Offer | None:
    """The first of the group's sizes /v2/sizes lists as available in `region`; else its own offer when /v2/sizes
    does not list that at all (unknown, not refused: DigitalOcean answers at creation, preflight flags it)."""
    candidates = size_candidates(group)
    for offer in candidates:
        size = listed.get(offer.instance_type)
        if size is not None and size.available and region in size.regions:
            return offer
    return group.offer if group.offer in candidates and group.offer.instance_type not in listed else None


def with_capacity(plan: DeploymentPlan, listed: Mapping[str, SizeListing]) -> tuple[DeploymentPlan, dict[str, str]]:
    """The plan as it can be built now, and why it differs: per node group the first size among its offer and
    fallbacks (size_candidates) that /v2/sizes says is available in the plan's region; when a group has none
    there, the whole stack (one VPC, one load balancer) moves to the first region, by name, where every group
    has one. Deterministic: the same listing gives the same plan. Raises NoCapacity when no region serves."""
    taken = {g.name: _take(g, plan.region, listed) for g in plan.node_groups}
    reasons: dict[str, str] = {}
    region = plan.region
    if any(o is None for o in taken.values()):
        short = [g for g in plan.node_groups if taken[g.name] is None]
        sizes = {g.name: ", ".join(o.instance_type for o in size_candidates(g)) for g in plan.node_groups}
        regions = sorted({r for s in listed.values() if s.available for r in s.regions} - {plan.region})
        region = next((r for r in regions if all(_take(g, r, listed) for g in plan.node_groups)), None)
        missing = "; ".join(f"node group {g.name!r} ({sizes[g.name]})" for g in short)
        if region is None:
            raise NoCapacity(f"no size of {missing} is available in {plan.region} for this account (/v2/sizes), "
                             "and no region has a size for every node group")
        taken = {g.name: _take(g, region, listed) for g in plan.node_groups}
        reasons["region"] = (f"{plan.region} → {region}: no size of {missing} is available in {plan.region} for this "
                             f"account (/v2/sizes); {region} is the first region by name with one for every node group")
    groups = []
    for group in plan.node_groups:
        offer = replace(taken[group.name], region=region)
        if offer.instance_type != group.offer.instance_type:
            reasons[group.name] = (f"{group.offer.instance_type} → {offer.instance_type}: {group.offer.instance_type} is not "
                                   f"available in {region} for this account (/v2/sizes); {offer.instance_type} is the next "
                                   f"of its {group.spot_policy} sizes with the same GPU model and count")
        groups.append(replace(group, offer=offer, fallback_offers=tuple(replace(o, region=region) for o in group.fallback_offers)))
    return replace(plan, region=region, node_groups=tuple(groups)), reasons
