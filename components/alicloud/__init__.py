"""Alibaba Cloud: GPU ECS instances in ESS scaling groups behind one Application Load Balancer.

The steps of `components.base.CloudDeployment`. Its look-up step reads everything from the cloud
(zones, images, account) and renders every node group's user-data, so a region without the GPU type,
a missing image or an oversized user-data fails with nothing built. Then: VPC + vSwitches + security group → OOS encrypted parameters + the node RAM role → one ESS
scaling group per node group → the ALB with path rules → per node group the rollout gate that enables
its scaling group and waits until its nodes are healthy behind the ALB (components/alicloud/rollout.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import pulumi
import pulumi_alicloud as alicloud

from bootstrap import render_user_data
from bootstrap.delivery import BootTarget, InlineSecrets, SecretDelivery, SecretStore
from components import stack
from components.alicloud.layout import (
    IMAGE_ARCHITECTURE,
    IMAGE_OS_RELEASE,
    IMAGE_OS_TYPE,
    IMAGE_OWNER,
    UBUNTU_IMAGE_REGEX,
    ZonePlan,
    choose_zones,
    disk_layout,
    launch_types,
    zones_of_any,
)
from components.alicloud.load_balancer import AlicloudLoadBalancer
from components.alicloud.monitoring import AlicloudMonitoring
from components.alicloud.network import AlicloudNetwork
from components.alicloud.node_group import AlicloudNodeGroup
from components.alicloud.rollout import Rollout
from components.alicloud.scaling import AlicloudScaling
from components.alicloud.secrets import AlicloudSecrets, secret_store
from components.base import BuiltNodeGroup, CloudDeployment, StackSecrets
from infra.config import problem
from infra.errors import ConfigError
from infra.plan import DeploymentPlan, NodeGroup

__all__ = ["AlicloudDeployment"]


@dataclass(frozen=True)
class AlicloudLookup:
    """Everything read from the cloud or rendered before the first resource is created."""

    zones: ZonePlan
    image_ids: Mapping[str, str]  # node group name → its pinned image, else the newest Ubuntu 22.04 for its type
    account_id: str
    delivery: SecretStore
    user_data: Mapping[str, str]  # node group name → cloud-config text


class AlicloudDeployment(CloudDeployment[AlicloudNetwork, AlicloudNodeGroup, AlicloudLookup]):
    """`llm-deploy:alicloud:Deployment`."""

    cloud: ClassVar[str] = "alicloud"

    def create_provider(self) -> pulumi.ProviderResource:
        return alicloud.Provider(f"{self.name}-alicloud", region=self.plan.region, opts=pulumi.ResourceOptions(parent=self))

    def look_up(self, invoke: pulumi.InvokeOptions) -> AlicloudLookup:
        """Zones, images and the account id from the cloud, and every node group's user-data."""
        plan = self.plan
        instance_types = sorted({t for g in plan.node_groups for t in launch_types(g)})
        offered = {t: self.zones_offering(t, invoke) for t in instance_types}
        alb_zones = [zone.zone_id for zone in alicloud.alb.get_zones(opts=invoke).zones]
        try:
            zones = choose_zones(alb_zones, {g.name: zones_of_any(launch_types(g), offered) for g in plan.node_groups})
        except ValueError as error:
            raise ConfigError([problem(plan.source, "region", f"{plan.region}: {error}")]) from None
        newest = {t: self.ubuntu_image(t, invoke) for t in sorted({g.offer.instance_type for g in plan.node_groups if not g.image})}
        return AlicloudLookup(
            zones=zones,
            image_ids={g.name: g.image or newest[g.offer.instance_type] for g in plan.node_groups},
            account_id=alicloud.get_caller_identity(opts=invoke).account_id,
            delivery=secret_store(plan),
            # bootstrap refuses user-data over ECS's limit here, before any resource
            user_data=self.node_user_data(plan, None),
        )

    def create_network(self) -> AlicloudNetwork:
        return AlicloudNetwork(f"{self.name}-network", self.plan, self.lookup.zones, opts=self.child_opts)

    def zones_offering(self, instance_type: str, invoke: pulumi.InvokeOptions) -> list[str]:
        """Zones of the region where the instance type can be launched pay-as-you-go with ESSD disks."""
        zones = alicloud.get_zones(
            available_instance_type=instance_type,
            available_disk_category="cloud_essd",
            instance_charge_type="PostPaid",
            opts=invoke,
        ).zones
        return [zone.id for zone in zones]

    def ubuntu_image(self, instance_type: str, invoke: pulumi.InvokeOptions) -> str:
        """The newest Ubuntu 22.04 x86_64 system image that runs on the instance type."""
        images = alicloud.ecs.get_images(
            name_regex=UBUNTU_IMAGE_REGEX,
            owners=IMAGE_OWNER,
            most_recent=True,
            os_type=IMAGE_OS_TYPE,
            architecture=IMAGE_ARCHITECTURE,
            instance_type=instance_type,
            opts=invoke,
        ).images
        if not images:
            message = f"{self.plan.region}: no Ubuntu 22.04 system image for {instance_type}"
            raise ConfigError([problem(self.plan.source, "region", message)])
        return images[0].id

    def store_secrets(self, secrets: StackSecrets) -> SecretStore:
        self.secrets = AlicloudSecrets(f"{self.name}-secrets", self.plan, secrets, self.lookup.account_id, opts=self.child_opts)
        return self.secrets.store

    def create_node_group(
        self, group: NodeGroup, network: AlicloudNetwork, delivery: SecretDelivery
    ) -> BuiltNodeGroup[AlicloudNodeGroup]:
        if delivery != self.lookup.delivery:
            raise RuntimeError("the secret store differs from the one the user-data was rendered with")
        user_data = self.lookup.user_data[group.name]
        nodes = AlicloudNodeGroup(
            f"{self.name}-{group.name}",
            self.plan,
            group,
            user_data,
            self.lookup.image_ids[group.name],
            network,
            self.secrets,
            opts=self.child_opts,
        )
        return BuiltNodeGroup(group=group, user_data=pulumi.Output.from_input(user_data), members=nodes)

    def create_load_balancer(
        self, network: AlicloudNetwork, groups: list[BuiltNodeGroup[AlicloudNodeGroup]]
    ) -> pulumi.Output[str]:
        """The ALB, then each node group's rollout gate: it enables the group once the ALB attachments and rules exist."""
        balancer = AlicloudLoadBalancer(f"{self.name}-lb", self.plan, network, groups, opts=self.child_opts)
        # `llm-deploy status` reads each service's server health through these (infra/cli/status/alicloud.py).
        self.extra_outputs.update({"listener_id": balancer.listener.id,
                                   "server_groups": {n: g.id for n, g in balancer.server_groups.items()}})
        for built in groups:
            group = built.group
            Rollout(
                f"{self.name}-{group.name}-rollout",
                node_group=group.name,
                region=self.plan.region,
                scaling_group_id=built.members.scaling_group_id,
                listener_id=balancer.listener.id,
                server_group_ids=[balancer.server_groups[s.name].id for s in group.services],
                size=group.count,
                batch=self.plan.batch_size(group),
                timeout_seconds=group.boot.grace_seconds,
                opts=pulumi.ResourceOptions(parent=built.members, depends_on=[balancer]),
            )
        if self.plan.schedule or any(g.scaling for g in self.plan.node_groups):
            AlicloudScaling(f"{self.name}-scaling", self.plan, [g.members.scaling_group_id for g in groups], balancer.server_groups,
                            balancer.listener, self.lookup.account_id, stack.deploy_instant(), opts=self.child_opts)
        if self.plan.alert_email:  # a CloudMonitor alarm needs a contact group: without an address, no alarm
            monitoring = AlicloudMonitoring(f"{self.name}-monitoring", self.plan, balancer, opts=self.child_opts)
            self.extra_outputs.update(monitoring.outputs)
        return balancer.endpoint

    @classmethod
    def node_user_data(cls, plan: DeploymentPlan, inline: InlineSecrets | None) -> dict[str, str]:
        """The nodes read their secrets from OOS, so the user-data holds only the parameter names (`inline` is unused)."""
        delivery = secret_store(plan)
        return {g.name: render_user_data(g, cls.boot_target(g), delivery, ssh_public_keys=plan.access.ssh_public_keys)
                for g in plan.node_groups}

    @classmethod
    def boot_target(cls, group: NodeGroup) -> BootTarget:
        """Plain Ubuntu 22.04: bootstrap installs the NVIDIA driver; a data disk holds big model caches."""
        return BootTarget(
            cloud=cls.cloud,
            image_has_driver=False,
            os_release=IMAGE_OS_RELEASE,
            data_device=disk_layout(group.disk_gb).data_device,
        )
