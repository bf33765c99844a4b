"""Alibaba Cloud preflight: the zones with stock of each node group's types, its placed type and its fallback offers.

The scaling group lists all of them (components/alicloud/node_group.py) and ESS launches the first with stock,
so a group passes when one of them has stock in some zone; the detail names each type's zones.
"""

from __future__ import annotations

import functools

from infra.cli.preflight import FAILED, OK, Check, _asked
from infra.plan import DeploymentPlan, NodeGroup

UNCHECKED = "instance type stock per zone, placed and fallback types (DescribeAvailableResource)"


def checks(plan: DeploymentPlan) -> list[Check]:
    from infra.cli.refresh import alicloud

    ecs = alicloud.client()

    @functools.cache
    def stocked(instance_type: str) -> tuple[str, ...]:
        answer = ecs.call("DescribeAvailableResource", alicloud.region_endpoint(plan.region), RegionId=plan.region,
                          DestinationResource="InstanceType", InstanceChargeType="PostPaid", InstanceType=instance_type)
        return tuple(sorted(alicloud.available_in_zones(answer).get(instance_type, ())))

    def ask(group: NodeGroup) -> Check:
        types = [group.offer.instance_type, *(o.instance_type for o in group.fallback_offers)]
        zones = {t: stocked(t) for t in types}
        in_stock = [t for t in types if zones[t]]
        if not in_stock:
            what = f"{types[0]} has no stock" if len(types) == 1 else f"none of {', '.join(types)} has stock"
            return Check(group.name, "offering", FAILED, f"{what} in any zone of {plan.region} "
                         "(DescribeAvailableResource, pay-as-you-go); choose another region or instance type")
        detail = "; ".join(f"{t} in stock in {len(zones[t])} zone(s): {', '.join(zones[t])}" for t in in_stock)
        if types[0] not in in_stock:
            detail = f"{types[0]} has no stock; ESS launches the fallback types: {detail}"
        return Check(group.name, "offering", OK, detail, zones=tuple(sorted({z for t in in_stock for z in zones[t]})))

    return [_asked(group.name, "offering", lambda group=group: ask(group)) for group in plan.node_groups]
