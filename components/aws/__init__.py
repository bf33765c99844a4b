"""AWS: a VPC, SSM-held secrets, one autoscaling group per node group and an ALB routing by path.

The reference implementation of `components.base.CloudDeployment`; its look-up step reads the
region's availability zones, where EC2 offers the plan's instance types (fallback types too) and the
AMIs (a node group's `nodeImages` pin, else the SSM parameter's AMI of today, which the launch template
then keeps), and refuses a region with too few zones, before any resource. Each building step is a ComponentResource of its own
module (network, secrets, node_group, load_balancer).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from bootstrap.delivery import BootTarget, InlineSecrets, SecretDelivery
from components.base import BuiltNodeGroup, CloudDeployment, StackSecrets
from infra.config import problem
from infra.errors import ConfigError
from infra.plan import DeploymentPlan, NodeGroup
from infra.service_metrics import log_group

from .layout import instance_types, pick_zones, stack_tags
from .load_balancer import AwsLoadBalancer
from .monitoring import AwsMonitoring
from .network import AwsNetwork, offerings_by_type
from .node_group import AwsNodeGroup, image_for, look_up_ami
from .scaling import AwsScaling
from .secrets import AwsSecrets, secret_store

__all__ = ["AwsDeployment"]


@dataclass(frozen=True)
class AwsLookup:
    """What the steps read from EC2 and SSM, before the first resource is created."""

    zones: tuple[str, ...]  # the subnets' availability zones
    offered: Mapping[str, set[str]]  # instance type → the zones where EC2 offers it
    amis: Mapping[str, aws.ec2.GetAmiResult]  # node group → the AMI its nodes boot


class AwsDeployment(CloudDeployment[AwsNetwork, AwsNodeGroup, AwsLookup]):
    """`llm-deploy:aws:Deployment`."""

    cloud = "aws"

    def create_provider(self) -> pulumi.ProviderResource:
        return aws.Provider(
            "aws",
            region=self.plan.region,
            default_tags={"tags": stack_tags(self.plan)},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def look_up(self, invoke: pulumi.InvokeOptions) -> AwsLookup:
        plan = self.plan
        types = sorted({t for g in plan.node_groups for t in instance_types(g)})
        zones = aws.get_availability_zones(
            state="available", filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}], opts=invoke
        ).names
        offered = offerings_by_type(aws.ec2.get_instance_type_offerings(
            location_type="availability-zone", filters=[{"name": "instance-type", "values": types}], opts=invoke
        ))
        try:
            chosen = pick_zones(zones, offered, types)
        except ValueError as error:
            raise ConfigError([problem(plan.source, "region", f"{plan.region}: {error}")]) from None
        amis = {g.name: look_up_ami(g, invoke) for g in plan.node_groups}
        return AwsLookup(tuple(chosen), offered, amis)

    def create_network(self) -> AwsNetwork:
        return AwsNetwork("network", self.plan, self.lookup.zones, self.lookup.offered, opts=self.child_opts)

    def store_secrets(self, secrets: StackSecrets) -> SecretDelivery:
        self.secrets = AwsSecrets("secrets", self.plan, secrets, opts=self.child_opts)
        return self.secrets.store

    def create_node_group(self, group: NodeGroup, network: AwsNetwork, delivery: SecretDelivery) -> BuiltNodeGroup[AwsNodeGroup]:
        user_data = self.render(self.plan, group, delivery)
        members = AwsNodeGroup(
            group.name, self.plan, group, network, self.secrets, user_data, self.lookup.amis[group.name], opts=self.child_opts
        )
        return BuiltNodeGroup(group=group, user_data=pulumi.Output.from_input(user_data), members=members)

    def create_load_balancer(self, network: AwsNetwork, groups: list[BuiltNodeGroup[AwsNodeGroup]]) -> pulumi.Output[str]:
        balancer = AwsLoadBalancer("lb", self.plan, network, [g.members for g in groups], opts=self.child_opts)
        self.extra_outputs.update(balancer.outputs)
        if self.plan.schedule or any(g.scaling for g in self.plan.node_groups):
            AwsScaling("scaling", self.plan, [g.members for g in groups], balancer.listener, opts=self.child_opts)
        monitoring = AwsMonitoring("monitoring", self.plan, balancer, [g.members for g in groups], opts=self.child_opts)
        self.extra_outputs.update(monitoring.outputs)
        return balancer.endpoint

    @classmethod
    def boot_target(cls, group: NodeGroup) -> BootTarget:
        # The root volume is sized for the model cache, so no separate data device.
        return BootTarget(cloud="aws", image_has_driver=image_for(group).has_driver, os_release="ubuntu-22.04")

    @classmethod
    def render(cls, plan: DeploymentPlan, group: NodeGroup, delivery: SecretDelivery) -> str:
        from bootstrap import render_user_data

        target = dataclasses.replace(cls.boot_target(group), metrics_log_group=log_group(plan.stack))
        return render_user_data(group, target, delivery, ssh_public_keys=plan.access.ssh_public_keys)

    @classmethod
    def node_user_data(cls, plan: DeploymentPlan, inline: InlineSecrets | None) -> dict[str, str]:
        return {g.name: cls.render(plan, g, secret_store(plan)) for g in plan.node_groups}
