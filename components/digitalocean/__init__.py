"""DigitalOcean: GPU droplets in a VPC behind one DigitalOcean load balancer.

Steps (each a ComponentResource of its own module): look-up (/v2/sizes: the size and region the account
can have now, the droplet disk), network (VPC, droplet tags, internal load balancers when there is more than
one node group) with the public load balancer (LB, Let's Encrypt certificate, cloud firewall; it comes first
because the droplets' health gates ask it), node groups (droplets, cache volumes, health gates).

DigitalOcean's load balancer routes by port only, so the gateway on every node routes by path, and
proxies the service kinds its node does not run to the internal load balancer of the group that
runs them; the public load balancer targets every droplet of the stack. DigitalOcean has no secret
store: the API key and HF token travel in the droplet's user-data, a Pulumi secret in state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as do

from bootstrap.delivery import BootTarget, InlineSecrets, SecretDelivery
from components.base import BuiltNodeGroup, CloudDeployment, StackSecrets
from infra.config import problem
from infra.errors import ConfigError
from infra.plan import DeploymentPlan, NodeGroup

from .layout import NoCapacity, SizeListing, dns_name, size_candidates, upstream_groups, with_capacity
from .load_balancer import DigitalOceanLoadBalancer, asleep_droplet
from .network import DigitalOceanNetwork
from .node_group import DigitalOceanNodeGroup, droplet_image, render
from .secrets import inline_delivery

__all__ = ["DigitalOceanDeployment"]

# ubuntu-22-04-x64 for CPU sizes. The GPU base images are Ubuntu too (their release is UNVERIFIED); it only
# picks driver packages, and those images bring the driver.
IMAGE_OS_RELEASE = "ubuntu-22.04"
# The longest base URL an internal load balancer can have, for user-data rendered before it exists.
LONGEST_UPSTREAM = "http://255.255.255.255"


@dataclass(frozen=True)
class DigitalOceanLookup:
    """Per node group, what the look-up step found before the first resource is created."""

    plan: DeploymentPlan  # the plan as it can be built now: each group's size (placed or fallback), the region
    fallbacks: Mapping[str, str]  # node group name (or "region") → which offer was taken instead, and why
    images: Mapping[str, str]  # node group name → droplet image
    volumes: Mapping[str, bool]  # node group name → the size's own disk is smaller than the group needs (or unknown)


class DigitalOceanDeployment(CloudDeployment[DigitalOceanNetwork, DigitalOceanNodeGroup, DigitalOceanLookup]):
    """`llm-deploy:digitalocean:Deployment`."""

    cloud = "digitalocean"

    def __init__(
        self, name: str, plan: DeploymentPlan, secrets: StackSecrets, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        self.prefix = dns_name(name)
        super().__init__(name, plan, secrets, opts)

    def create_provider(self) -> pulumi.ProviderResource:
        # The API token comes from DIGITALOCEAN_TOKEN; each DigitalOcean resource names its region.
        return do.Provider("digitalocean", opts=pulumi.ResourceOptions(parent=self))

    def look_up(self, invoke: pulumi.InvokeOptions) -> DigitalOceanLookup:
        """From /v2/sizes: each group's size (its own, else the next fallback its spot policy allows) in the region,
        or the first region with one for every group; each group's droplet image (its pin, else the id its base
        image's slug names now); whether the size's own disk holds the cache. The steps after it build that plan (`self.plan`), and `capacity_fallbacks` says why."""
        plan = self.plan
        wanted = sorted({o.instance_type for g in plan.node_groups for o in size_candidates(g)})
        listed = self.listed_sizes(wanted, invoke)
        try:
            built, fallbacks = with_capacity(plan, listed)
        except NoCapacity as none:
            raise ConfigError([problem(plan.source, "region", str(none), "pick another region, or another gpu")]) from None
        images, newest = {}, {}
        for group in built.node_groups:
            try:
                image = droplet_image(group)
            except ValueError as error:
                message = f"{group.offer.instance_type} (node group {group.name!r}): {error}"
                raise ConfigError([problem(plan.source, "catalogFile", message, "pin another gpu")]) from None
            if group.image is None:  # a slug: its image now, which the droplets keep (ignore_changes)
                image = newest.setdefault(image, self.image_id(image, invoke))
            images[group.name] = image
        volumes = {}
        for group in built.node_groups:
            size = listed.get(group.offer.instance_type)
            volumes[group.name] = group.disk_gb > (size.disk_gb if size else 0)
        self.plan = built
        if fallbacks:
            self.extra_outputs["capacity_fallbacks"] = dict(fallbacks)
        return DigitalOceanLookup(built, fallbacks, images, volumes)

    def create_network(self) -> DigitalOceanNetwork:
        network = DigitalOceanNetwork(self.prefix, self.plan, opts=self.child_opts)
        # Before the droplets: each droplet's health gate asks it (see DigitalOceanLoadBalancer).
        self.balancer = DigitalOceanLoadBalancer(
            f"{self.prefix}-lb", self.plan, network.vpc, network.stack_tag, list(network.internal.values()), opts=self.child_opts
        )
        return network

    def store_secrets(self, secrets: StackSecrets) -> pulumi.Output[SecretDelivery]:
        """No secret store on DigitalOcean: the values go into user-data, which stays a secret in state."""
        return inline_delivery(secrets)

    def create_node_group(
        self, group: NodeGroup, network: DigitalOceanNetwork, delivery: pulumi.Output[SecretDelivery]
    ) -> BuiltNodeGroup[DigitalOceanNodeGroup]:
        members = DigitalOceanNodeGroup(
            f"{self.prefix}-{group.name}",
            self.plan,
            group,
            network,
            self.boot_target(group),
            delivery,
            self.lookup.images[group.name],
            with_volume=self.lookup.volumes[group.name],
            health_url=self.balancer.health_url,
            opts=self.child_opts,
        )
        # Asleep (schedule: zero droplets at this run) a group has no user-data to show.
        user_data = members.user_data[0] if members.user_data else pulumi.Output.from_input("")
        return BuiltNodeGroup(group=group, user_data=user_data, members=members)

    def create_load_balancer(
        self, network: DigitalOceanNetwork, groups: list[BuiltNodeGroup[DigitalOceanNodeGroup]]
    ) -> pulumi.Output[str]:
        """The balancer exists already (create_network): its endpoint; while the schedule has the stack asleep, the
        droplet that answers for it."""
        schedule = self.plan.schedule
        stretch = schedule.sleeping_after(self.plan.counted_at) if schedule and self.plan.counted_at else None
        if stretch is not None:
            asleep_droplet(f"{self.prefix}-asleep", self.plan, network.vpc, network.stack_tag, stretch,
                           pulumi.ResourceOptions(parent=self.balancer))
        return self.balancer.endpoint

    @classmethod
    def boot_target(cls, group: NodeGroup) -> BootTarget:
        # GPU sizes boot the NVIDIA base image (driver inside); the cache device is set per droplet.
        return BootTarget(cloud=cls.cloud, image_has_driver=group.offer.gpu_count > 0, os_release=IMAGE_OS_RELEASE)

    @classmethod
    def node_user_data(cls, plan: DeploymentPlan, inline: InlineSecrets | None) -> dict[str, str]:
        """The largest user-data a droplet of each group gets: the secrets inline, a cache volume (its device
        named in it), the longest internal load balancer URLs and droplet index."""
        if inline is None:
            raise ValueError("DigitalOcean has no secret store: its user-data needs the secret values")
        return {
            g.name: render(g, cls.boot_target(g), inline, dict.fromkeys(upstream_groups(plan, g), LONGEST_UPSTREAM),
                           f"{dns_name(plan.stack)}-{g.name}-{g.count - 1}", plan.access.ssh_public_keys)[0]
            for g in plan.node_groups
        }

    @staticmethod
    def image_id(slug: str, invoke: pulumi.InvokeOptions) -> str:
        """The id of the image a slug names now (/v2/images/<slug>): a droplet created from it keeps that image, even
        when it is replaced for another change, while the slug moves on to each new release."""
        return str(do.get_image(slug=slug, opts=invoke).id)

    @staticmethod
    def listed_sizes(sizes: list[str], invoke: pulumi.InvokeOptions) -> dict[str, SizeListing]:
        """What /v2/sizes says of these sizes for this account; a size it does not list is left out."""
        found = do.get_sizes(filters=[do.GetSizesFilterArgs(key="slug", values=sizes)], opts=invoke)
        return {s.slug: SizeListing(bool(s.available), tuple(s.regions), int(s.disk)) for s in found.sizes if s.slug in sizes}
