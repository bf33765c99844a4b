"""The droplets of one node group, booted with bootstrap's user-data, each with a cache volume when needed.

Replacement without downtime: DigitalOcean replaces a droplet whose user-data changes. Nothing here
sets `delete_before_replace`, and droplets are auto-named, so Pulumi creates the new droplet (which
joins the load balancer through its tag) before it deletes the old one. A cache volume attaches to
one droplet at a time, so its name carries a digest of the droplet's user-data: a new droplet gets a
new volume (no name collision), and the old volume goes with the old droplet.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import replace

import pulumi
import pulumi_digitalocean as do

from bootstrap.delivery import BootTarget, SecretDelivery
from infra import clouds
from infra.plan import DeploymentPlan, NodeGroup

from .layout import volume_device
from .network import DigitalOceanNetwork

# NVIDIA "AI/ML ready" images (driver, CUDA, NVIDIA Container Toolkit) by GPUs per droplet (infra/data/gpu_base_images.csv).
NVIDIA_IMAGES = clouds.DIGITALOCEAN.base_images
CPU_IMAGE = "ubuntu-22-04-x64"
VOLUME_NAME_MAX = 64  # DigitalOcean volume names: lowercase letters, digits and '-', starting with a letter


def droplet_image(group: NodeGroup) -> str:
    """The image slug for a node group; ValueError when DigitalOcean has no CUDA image for it (placement
    refuses such an offer first, by the cloud's record; the look-up step names the field for a plan made otherwise)."""
    offer = group.offer
    if offer.gpu_count == 0:
        return CPU_IMAGE
    if offer.cuda and offer.gpu_count in NVIDIA_IMAGES:
        return NVIDIA_IMAGES[offer.gpu_count]
    raise ValueError(f"{offer.gpu} is not a CUDA GPU (vLLM and TEI need NVIDIA)" if not offer.cuda
                     else clouds.DIGITALOCEAN.gpu_count_problem(offer.gpu_count))


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


class DigitalOceanNodeGroup(pulumi.ComponentResource):
    """`llm-deploy:digitalocean:NodeGroup`: `group.count` droplets of the placed size."""

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
        opts: pulumi.ResourceOptions,
    ) -> None:
        """image and with_volume: the droplet image and whether the size's own disk is too small for the
        cache, as the look-up step found them."""
        super().__init__("llm-deploy:digitalocean:NodeGroup", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        upstreams = network.upstreams(group)
        kinds = sorted(upstreams)
        inputs = pulumi.Output.all(delivery, *(upstreams[k] for k in kinds))
        self.droplets: list[do.Droplet] = []
        self.user_data: list[pulumi.Output[str]] = []
        for index in range(group.count):
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
                opts=child,
            )
            self.droplets.append(droplet)
            self.user_data.append(user_data)
        self.register_outputs({"droplet_ids": [d.id for d in self.droplets]})
