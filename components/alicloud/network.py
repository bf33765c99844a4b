"""VPC, one vSwitch per zone in use, and the nodes' security group: only the VPC reaches the gateway port."""

from __future__ import annotations

import ipaddress

import pulumi
import pulumi_alicloud as alicloud

from components.alicloud.layout import VPC_CIDR, ZonePlan, cloud_name
from infra.plan import GATEWAY_PORT, DeploymentPlan

SSH_PORT = 22


def port_range(port: int) -> str:
    """Security group rules take ports as "from/to"."""
    return f"{port}/{port}"


def source_field(cidr: str) -> dict[str, str]:
    """Security group rules take IPv4 and IPv6 sources in different arguments."""
    return {"ipv6_cidr_ip" if ipaddress.ip_network(cidr).version == 6 else "cidr_ip": cidr}


class AlicloudNetwork(pulumi.ComponentResource):
    """`llm-deploy:alicloud:Network`: what the node groups and the ALB are placed in.

    The ALB forwards to the nodes from its own addresses inside the VPC, so the gateway port is open
    to the VPC's CIDR only; SSH only from `sshCidrs` (no rule at all when empty). Egress stays the
    security group default (all allowed): nodes download drivers, images and weights.
    """

    def __init__(self, name: str, plan: DeploymentPlan, zones: ZonePlan, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llm-deploy:alicloud:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.zones = zones
        self.vpc = alicloud.vpc.Network(
            f"{name}-vpc", vpc_name=cloud_name("llm-deploy", plan.stack), cidr_block=VPC_CIDR, opts=child
        )
        self.vswitches = {
            zone: alicloud.vpc.Switch(
                f"{name}-{zone}",
                vswitch_name=cloud_name("llm-deploy", plan.stack, zone),
                vpc_id=self.vpc.id,
                zone_id=zone,
                cidr_block=cidr,
                opts=child,
            )
            for zone, cidr in zones.vswitch_cidrs().items()
        }
        self.security_group = alicloud.ecs.SecurityGroup(
            f"{name}-nodes",
            security_group_name=cloud_name("llm-deploy", plan.stack, "nodes"),
            description="llm-deploy GPU nodes: gateway from the VPC (the ALB) only",
            vpc_id=self.vpc.id,
            inner_access_policy="Drop",  # nodes never talk to each other
            opts=child,
        )
        self.ingress(f"{name}-gateway-from-vpc", GATEWAY_PORT, VPC_CIDR, "node gateway, from the ALB inside the VPC", child)
        # by position: names made from the CIDR text collide ("1::2/128" and "1:2::/128" both clean to "1-2-128")
        for index, cidr in enumerate(plan.access.ssh_cidrs):
            self.ingress(f"{name}-ssh-{index}", SSH_PORT, cidr, "SSH from sshCidrs", child)
        self.register_outputs({"vpc_id": self.vpc.id, "security_group_id": self.security_group.id})

    def ingress(self, name: str, port: int, cidr: str, description: str, opts: pulumi.ResourceOptions) -> None:
        alicloud.ecs.SecurityGroupRule(
            name,
            security_group_id=self.security_group.id,
            type="ingress",
            ip_protocol="tcp",
            port_range=port_range(port),
            **source_field(cidr),
            nic_type="intranet",  # VPC security groups take intranet rules only
            policy="accept",
            description=description,
            opts=opts,
        )

    def vswitch_ids(self, zones: tuple[str, ...]) -> list[pulumi.Output[str]]:
        return [self.vswitches[zone].id for zone in zones]
