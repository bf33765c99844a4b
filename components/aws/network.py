"""VPC, a public subnet per availability zone the node groups can launch in (at least two) and the two security groups: the internet reaches the ALB only, the ALB reaches the nodes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from infra.plan import GATEWAY_PORT, DeploymentPlan

from .layout import VPC_CIDR, cidr_field, subnet_cidrs

HTTP_PORT, HTTPS_PORT, SSH_PORT = 80, 443, 22


def offerings_by_type(result: aws.ec2.GetInstanceTypeOfferingsResult) -> dict[str, set[str]]:
    offered: dict[str, set[str]] = {}
    for instance_type, zone in zip(result.instance_types, result.locations):
        offered.setdefault(instance_type, set()).add(zone)
    return offered


class AwsNetwork(pulumi.ComponentResource):
    """`llm-deploy:aws:Network`: what the node groups and the load balancer are placed in."""

    def __init__(
        self,
        name: str,
        plan: DeploymentPlan,
        zones: Sequence[str],
        offered: Mapping[str, set[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """zones: the subnets' AZs (`pick_zones`); offered: instance type → AZs where EC2 offers it (the look-up step's)."""
        super().__init__("llm-deploy:aws:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.zones, self.offered = tuple(zones), offered

        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=VPC_CIDR,
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags={"Name": f"llm-deploy-{plan.stack}"},
            opts=child,
        )
        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, opts=child)
        routes = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=self.vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": gateway.id}],
            opts=child,
        )
        self.subnets: list[aws.ec2.Subnet] = []
        for index, cidr in enumerate(subnet_cidrs(len(self.zones))):
            subnet = aws.ec2.Subnet(
                f"{name}-public-{index}",
                vpc_id=self.vpc.id,
                cidr_block=cidr,
                availability_zone=self.zones[index],
                map_public_ip_on_launch=True,  # nodes pull images and weights without a NAT gateway
                tags={"Name": f"llm-deploy-{plan.stack}-public-{index}"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(f"{name}-public-{index}", subnet_id=subnet.id, route_table_id=routes.id, opts=child)
            self.subnets.append(subnet)

        self.alb_security_group = aws.ec2.SecurityGroup(
            f"{name}-alb", vpc_id=self.vpc.id, description="llm-deploy load balancer: HTTP(S) from allowedCidrs", opts=child
        )
        self.node_security_group = aws.ec2.SecurityGroup(
            f"{name}-nodes",
            vpc_id=self.vpc.id,
            description="llm-deploy nodes: gateway port from the load balancer only",
            opts=child,
        )
        alb, nodes = self.alb_security_group, self.node_security_group
        for port in (HTTP_PORT, HTTPS_PORT) if plan.access.domain else (HTTP_PORT,):
            for index, cidr in enumerate(plan.access.allowed_cidrs):
                self._rule(f"{name}-alb-{port}-{index}", alb, port, "clients (allowedCidrs)", **cidr_field(cidr))
        self._rule(
            f"{name}-alb-to-nodes", alb, GATEWAY_PORT, "to the node gateways", egress=True, referenced_security_group_id=nodes.id
        )
        self._rule(
            f"{name}-nodes-from-alb",
            nodes,
            GATEWAY_PORT,
            "gateway, from the load balancer only",
            referenced_security_group_id=alb.id,
        )
        for index, cidr in enumerate(plan.access.ssh_cidrs):
            self._rule(f"{name}-nodes-ssh-{index}", nodes, SSH_PORT, "SSH (sshCidrs)", **cidr_field(cidr))
        self._rule(f"{name}-nodes-egress", nodes, None, "images, model weights, SSM", egress=True, cidr_ipv4="0.0.0.0/0")
        self.register_outputs({"vpc_id": self.vpc.id, "subnet_ids": [s.id for s in self.subnets]})

    def _rule(
        self, name: str, group: aws.ec2.SecurityGroup, port: int | None, description: str, egress: bool = False, **source
    ) -> None:
        """One security group rule: a TCP port (None: all traffic) to or from a CIDR or another group."""
        kind = aws.vpc.SecurityGroupEgressRule if egress else aws.vpc.SecurityGroupIngressRule
        ports = {"ip_protocol": "-1"} if port is None else {"ip_protocol": "tcp", "from_port": port, "to_port": port}
        kind(
            name, security_group_id=group.id, description=description, **ports, **source, opts=pulumi.ResourceOptions(parent=self)
        )

    def subnet_ids_offering(self, instance_types: Sequence[str]) -> pulumi.Output[list[str]]:
        """The subnets whose AZ offers any of the instance types (all of them if EC2 lists none: the ASG then says why)."""
        offered = set().union(*(self.offered.get(t, set()) for t in instance_types))
        chosen = [subnet.id for subnet, zone in zip(self.subnets, self.zones, strict=True) if zone in offered]
        if not chosen:
            pulumi.log.warn(f"{', '.join(instance_types)}: not offered in the chosen zones; the autoscaling group will report it")
        return pulumi.Output.all(*(chosen or [subnet.id for subnet in self.subnets]))
