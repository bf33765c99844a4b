"""DigitalOcean choices as plain data: resource name prefixes, volume devices, which group serves a kind.

Pure functions (no Pulumi, no SDK), so each rule is tested on its own and the components only wire
resources from what these return.
"""

from __future__ import annotations

import re

from infra.plan import DeploymentPlan, NodeGroup


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
