"""GPU nodes of one node group: an ESS scaling group (min = max = replicas) and its scaling configuration.

Every node group is a scaling group, one replica or many: ESS replaces a node whose instance stops
or is released, and with a vSwitch in every zone that offers one of its instance types (the placed
type first, then the plan's fallback offers) it launches where a type is in stock (a plain
ecs.Instance is pinned to one zone and fails when that zone has none). The scaling group's name
carries a fingerprint of what the nodes boot with (type, disks, user-data, a pinned image, the spot
policy) and the generation of the secrets they read at boot, and a change of that name replaces the
group: blue/green. The new group is created disabled;
components/alicloud/rollout.py grows it `rollout.batchSize` nodes at a time, each batch healthy in the
ALB before the next, and only then, at the end of the update, Pulumi deletes the old group.
"""

from __future__ import annotations

import pulumi
import pulumi_alicloud as alicloud

from bootstrap import encode_user_data
from components.alicloud.layout import capacity, cloud_name, disk_layout, launch_fingerprint, launch_types
from components.alicloud.network import AlicloudNetwork
from components.alicloud.secrets import GENERATION_BYTES, AlicloudSecrets
from infra.boot_time import constant
from infra.plan import DeploymentPlan, NodeGroup

# Public bandwidth (pay by traffic) for downloads: driver, Docker images and model weights.
# Instances need a public address (or a NAT gateway) to reach the internet; the security group keeps
# everything but the VPC and sshCidrs out. 100 Mbit/s is the ECS maximum for PayByTraffic; the boot
# estimate (infra/boot_time.py) downloads at this rate too, so it is read from the same data file.
PUBLIC_BANDWIDTH_MBPS = int(constant("alicloud_public_bandwidth_mbit"))
ESSD = "cloud_essd"
SCALING_GROUP_NAME_LIMIT = 64  # ESS CreateScalingGroup ScalingGroupName: 2 to 64 characters


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
        instance_types = launch_types(group)
        spot = capacity(group.spot_policy, len(instance_types))
        # A pinned image and a spot policy enter the fingerprint only when set, so a stack using neither keeps its nodes.
        fingerprint = launch_fingerprint(group.offer.instance_type, disks, user_data,
                                         *([group.image] if group.image else []),
                                         *([group.spot_policy] if spot.spot_strategy else []))
        tags = {"llm-deploy-stack": plan.stack, "llm-deploy-group": group.name}
        self.scaling_group = alicloud.ess.ScalingGroup(
            f"{name}-nodes",
            # The fingerprint and the secrets' generation in full at the end of the name (ESS allows 64 characters).
            scaling_group_name=pulumi.Output.concat(
                cloud_name("llm-deploy", plan.stack, group.name, limit=SCALING_GROUP_NAME_LIMIT - len(fingerprint) - 2
                           - 2 * GENERATION_BYTES), "-", fingerprint, "-", secrets.generation),
            min_size=group.count,
            max_size=group.count,
            vswitch_ids=network.vswitch_ids(network.zones.node_zones[group.name]),
            removal_policies=["OldestScalingConfiguration", "OldestInstance"],
            # Instance health only: the ALB check fails for the whole first boot (driver, images,
            # weights) and ESS has no grace period, so LOAD_BALANCER checks would recycle booting nodes.
            # The rollout gate waits for ALB health instead.
            health_check_types=["ECS"],
            tags=tags,
            **spot.group_args,
            opts=child.merge(pulumi.ResourceOptions(replace_on_changes=["scaling_group_name"])),
        )
        self.configuration = alicloud.ess.ScalingConfiguration(
            f"{name}-launch",
            scaling_group_id=self.scaling_group.id,
            scaling_configuration_name=cloud_name("llm-deploy", plan.stack, group.name, fingerprint),
            instance_types=instance_types,  # in order: ESS launches the first with stock in a zone
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
            spot_strategy=spot.spot_strategy,
            tags=tags,
            active=True,
            # Left disabled: the rollout gate enables the group once the ALB attachments exist and grows it
            # in batches; later updates leave the group's state to it.
            enable=False,
            force_delete=True,  # the last configuration goes with its group
            opts=child.merge(pulumi.ResourceOptions(
                depends_on=secrets.ready,
                # An unpinned image is the newest at the first `pulumi up`, then kept (README "Changing a running stack").
                ignore_changes=["enable", *([] if group.image else ["image_id"])],
            )),
        )
        # Read through the configuration, so whatever attaches to the group waits until it has an active configuration.
        self.scaling_group_id: pulumi.Output[str] = self.configuration.scaling_group_id
        self.register_outputs({"scaling_group_id": self.scaling_group_id})
