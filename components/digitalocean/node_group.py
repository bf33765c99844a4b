"""The droplets of one node group, booted with bootstrap's user-data, each with a cache volume when needed.

Replacement without downtime: DigitalOcean replaces a droplet whose user-data, size or image changes, and
Pulumi deletes what it replaced only at the end of the update (pulumi/pulumi#9979). Nothing here sets
`delete_before_replace`, and droplets are auto-named, so each new droplet is created beside the old one;
it joins the load balancers through its tags, which forward to it once their health check passes. Each
droplet has a health gate (components/health_gate.py) that waits until it answers /healthz through the
public load balancer, and the droplets of the next rollout batch depend on the gates of this one: a
change replaces `rollout.batchSize` droplets at a time, the old ones serve until the update ends, and a
gate that times out fails the update with the old droplets still serving.

A cache volume attaches to one droplet at a time, so its name carries a digest of the droplet's
user-data: a new droplet gets a new volume (no name collision), and the old volume goes with the old droplet.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import replace

import pulumi
import pulumi_digitalocean as do

from bootstrap.delivery import BootTarget, SecretDelivery
from components.health_gate import HealthGate, HealthGateArgs
from infra.plan import DeploymentPlan, NodeGroup

from .layout import image_slug, rollout_batches, volume_device
from .load_balancer import LB_SECONDS_TO_HEALTHY
from .network import DigitalOceanNetwork

VOLUME_NAME_MAX = 64  # DigitalOcean volume names: lowercase letters, digits and '-', starting with a letter


def droplet_image(group: NodeGroup) -> str:
    """The image for a node group: its `nodeImages` pin (an image id) when set, else the slug of the base image
    for its size (`image_slug`, which raises ValueError for a size DigitalOcean has no CUDA image for)."""
    return group.image if group.image is not None else image_slug(group.offer)


def render(
    group: NodeGroup,
    target: BootTarget,
    secrets: SecretDelivery,
    upstreams: Mapping[str, str],
    volume_prefix: str | None,
    ssh_public_keys: Sequence[str] = (),
) -> tuple[str, str | None]:
    """(user-data, cache volume name or None) for one droplet.

    The volume name is `<prefix>-<digest of the user-data without it and the volume size>`, so it
    changes exactly when the droplet will be replaced (or the volume resized).
    """
    from bootstrap import render_user_data

    text = render_user_data(group, target, secrets, dict(upstreams) or None, ssh_public_keys)
    if volume_prefix is None:
        return text, None
    digest = hashlib.sha256(f"{group.disk_gb}\n{text}".encode()).hexdigest()[:8]
    volume_name = f"{volume_prefix[: VOLUME_NAME_MAX - 9].rstrip('-')}-{digest}"
    with_volume = replace(target, data_device=volume_device(volume_name))
    return render_user_data(group, with_volume, secrets, dict(upstreams) or None, ssh_public_keys), volume_name


def gate_timeout_seconds(group: NodeGroup) -> int:
    """How long a new droplet may take, once active, to answer through the load balancer: the plan's
    health-check grace (its boot estimate with a margin) and the balancer's own checks to count it healthy."""
    assert group.boot is not None, "placement estimates every boot"
    return group.boot.grace_seconds + LB_SECONDS_TO_HEALTHY


class DigitalOceanNodeGroup(pulumi.ComponentResource):
    """`llm-deploy:digitalocean:NodeGroup`: `group.count` droplets of the size the look-up step took, each
    with a health gate, replaced batch after batch."""

    def __init__(
        self,
        name: str,
        plan: DeploymentPlan,
        group: NodeGroup,
        network: DigitalOceanNetwork,
        target: BootTarget,
        delivery: pulumi.Output[SecretDelivery],
        image: str,
        with_volume: bool,
        health_url: pulumi.Output[str],
        opts: pulumi.ResourceOptions,
    ) -> None:
        """image and with_volume: the droplet image and whether the size's own disk is too small for the cache, as
        the look-up step found them (`group.offer` is the size it took: the placed one or a fallback). health_url: the public load balancer's /healthz, which each droplet's gate asks."""
        super().__init__("llm-deploy:digitalocean:NodeGroup", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        upstreams = network.upstreams(group)
        kinds = sorted(upstreams)
        inputs = pulumi.Output.all(delivery, *(upstreams[k] for k in kinds))
        self.droplets: list[do.Droplet] = []
        self.gates: list[HealthGate] = []
        self.user_data: list[pulumi.Output[str]] = []
        # Unpinned, the image is the id its slug named at the droplet's creation: ignore_changes keeps it when the
        # slug moves on, also for a replacement (the engine takes an ignored input from the old state). A new pin
        # replaces the droplets, batch after batch.
        keep_image = None if group.image is not None else ["image"]
        previous: list[HealthGate] = []  # the gates of the batch before: this batch's droplets wait for them
        for batch in rollout_batches(group.count, plan.batch_size(group)):
            current = []
            for index in batch:
                droplet_name = f"{name}-{index}"
                rendered = inputs.apply(
                    lambda values, prefix=(droplet_name if with_volume else None): render(
                        group, target, values[0], dict(zip(kinds, values[1:])), prefix, plan.access.ssh_public_keys
                    )
                )
                user_data = pulumi.Output.secret(rendered.apply(lambda r: r[0]))
                volume_ids = None
                if with_volume:
                    volume = do.Volume(
                        f"{droplet_name}-cache",
                        region=plan.region,
                        size=group.disk_gb,
                        name=rendered.apply(lambda r: r[1]),
                        description=f"llm-deploy model cache ({plan.stack}/{group.name})",
                        tags=[network.stack_tag.name],
                        opts=child,
                    )
                    volume_ids = [volume.id]  # attached at creation, so the device is there when cloud-init runs
                droplet = do.Droplet(
                    droplet_name,
                    image=image,
                    size=group.offer.instance_type,
                    region=plan.region,
                    vpc_uuid=network.vpc.id,
                    user_data=user_data,
                    tags=[network.stack_tag.name, network.group_tags[group.name].name],
                    monitoring=True,
                    volume_ids=volume_ids,
                    # No ssh_keys: the stack config has no key fingerprints to give. No delete_before_replace.
                    opts=pulumi.ResourceOptions(parent=self, depends_on=previous, ignore_changes=keep_image),
                )
                gate = HealthGate(
                    f"{droplet_name}-healthy",
                    HealthGateArgs(
                        url=health_url,
                        node=droplet.name,  # its hostname, which the gateway names in its /healthz answers
                        trigger=droplet.id,  # a new droplet, a new id: the gate waits again
                        label=f"node group {group.name!r}, replica {index + 1} of {group.count}",
                        timeout_seconds=gate_timeout_seconds(group),
                    ),
                    opts=child,
                )
                self.droplets.append(droplet)
                self.gates.append(gate)
                self.user_data.append(user_data)
                current.append(gate)
            previous = current
        self.register_outputs({"droplet_ids": [d.id for d in self.droplets]})
