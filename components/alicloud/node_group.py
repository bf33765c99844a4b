"""GPU nodes of one node group: an ESS scaling group (min = max = replicas) and its scaling configuration.

Every node group is a scaling group, one replica or many: ESS replaces a node whose instance stops
or is released, and with a vSwitch in each of two zones it launches where the GPU type is in stock
(a plain ecs.Instance is pinned to one zone and fails when that zone has none). The scaling group's
name carries a fingerprint of what the nodes boot with, and a change of that name replaces the
group, so a new model or instance type really reaches the nodes; the new group is created before
the old one is deleted.
"""

from __future__ import annotations

import pulumi
import pulumi_alicloud as alicloud

from bootstrap import encode_user_data
from components.alicloud.layout import cloud_name, disk_layout, launch_fingerprint
from components.alicloud.network import AlicloudNetwork
from components.alicloud.secrets import AlicloudSecrets
from infra.boot_time import constant
from infra.plan import DeploymentPlan, NodeGroup

# Public bandwidth (pay by traffic) for downloads: driver, Docker images and model weights.
# Instances need a public address (or a NAT gateway) to reach the internet; the security group keeps
# everything but the VPC and sshCidrs out. 100 Mbit/s is the ECS maximum for PayByTraffic; the boot
# estimate (infra/boot_time.py) downloads at this rate too, so it is read from the same data file.
PUBLIC_BANDWIDTH_MBPS = int(constant("alicloud_public_bandwidth_mbit"))
ESSD = "cloud_essd"


def data_disks(size_gb: int | None) -> list[dict] | None:
    return [{"category": ESSD, "size": size_gb, "delete_with_instance": True}] if size_gb else None


class AlicloudNodeGroup(pulumi.ComponentResource):
    """`llm-deploy:alicloud:NodeGroup`: `group.count` instances of the placed type, kept at that count by ESS."""

    def __init__(
        self,
        name: str,
        plan: DeploymentPlan,
        group: NodeGroup,
        user_data: str,
        image_id: str,
        network: AlicloudNetwork,
        secrets: AlicloudSecrets,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("llm-deploy:alicloud:NodeGroup", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        disks = disk_layout(group.disk_gb)
        fingerprint = launch_fingerprint(group.offer.instance_type, disks, user_data)
        tags = {"llm-deploy-stack": plan.stack, "llm-deploy-group": group.name}
        self.scaling_group = alicloud.ess.ScalingGroup(
            f"{name}-nodes",
            scaling_group_name=cloud_name("llm-deploy", plan.stack, group.name, fingerprint),
            min_size=group.count,
            max_size=group.max_count,  # above count: the target-tracking rules (scaling.py) add nodes
            vswitch_ids=network.vswitch_ids(network.zones.node_zones[group.name]),
            multi_az_policy="BALANCE",
            removal_policies=["OldestScalingConfiguration", "OldestInstance"],
            # Instance health only: the ALB check fails for the whole first boot (driver, images,
            # weights) and ESS has no grace period, so LOAD_BALANCER checks would recycle booting nodes.
            health_check_types=["ECS"],
            tags=tags,
            opts=child.merge(pulumi.ResourceOptions(replace_on_changes=["scaling_group_name"])),
        )
        self.configuration = alicloud.ess.ScalingConfiguration(
            f"{name}-launch",
            scaling_group_id=self.scaling_group.id,
            scaling_configuration_name=cloud_name("llm-deploy", plan.stack, group.name, fingerprint),
            instance_type=group.offer.instance_type,
            image_id=image_id,
            security_group_id=network.security_group.id,
            role_name=secrets.role_name,
            user_data=encode_user_data(user_data),
            system_disk_category=ESSD,
            system_disk_size=disks.system_gb,
            data_disks=data_disks(disks.data_gb),
            internet_charge_type="PayByTraffic",
            internet_max_bandwidth_out=PUBLIC_BANDWIDTH_MBPS,
            instance_name=cloud_name("llm-deploy", plan.stack, group.name),
            tags=tags,
            active=True,
            enable=True,  # enables the group: ESS launches min_size instances
            force_delete=True,  # the last configuration goes with its group
            opts=child.merge(pulumi.ResourceOptions(depends_on=secrets.ready)),
        )
        # Read through the configuration, so whatever attaches to the group waits until it is enabled.
        self.scaling_group_id: pulumi.Output[str] = self.configuration.scaling_group_id
        self.register_outputs({"scaling_group_id": self.scaling_group_id})
