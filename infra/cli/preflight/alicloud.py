"""Alibaba Cloud preflight: the zones with stock of each node group's type."""

from __future__ import annotations

from infra.cli.preflight import FAILED, OK, Check, _asked
from infra.plan import DeploymentPlan, NodeGroup

UNCHECKED = "instance type stock per zone (DescribeAvailableResource)"


def checks(plan: DeploymentPlan) -> list[Check]:
    from infra.cli.refresh import alicloud

    ecs = alicloud.client()
    checks = []
    for group in plan.node_groups:
        instance_type = group.offer.instance_type

        def ask(group: NodeGroup = group, instance_type: str = instance_type) -> Check:
            answer = ecs.call("DescribeAvailableResource", alicloud.region_endpoint(plan.region), RegionId=plan.region,
                              DestinationResource="InstanceType", InstanceChargeType="PostPaid", InstanceType=instance_type)
            zones = sorted(alicloud.available_in_zones(answer).get(instance_type, ()))
            if not zones:
                return Check(group.name, "offering", FAILED, f"{instance_type} has no stock in any zone of {plan.region} "
                             "(DescribeAvailableResource, pay-as-you-go); choose another region or instance type")
            return Check(group.name, "offering", OK, f"{instance_type} in stock in {len(zones)} zone(s): {', '.join(zones)}",
                         zones=tuple(zones))

        checks.append(_asked(group.name, "offering", ask))
    return checks
