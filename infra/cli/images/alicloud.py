"""Alibaba Cloud image resolver: the newest image of the family the look-up step takes (`llm-deploy images --update`).

The family is components/alicloud/layout.py's: Alibaba's own (system) Linux x86_64 images named like Ubuntu
22.04 (`^ubuntu_22_04_x64`) that run on the node group's instance type. ECS DescribeImages in the plan's
region (every page), the newest by CreationTime, as `ecs.get_images(most_recent=True)` picks it; signed with
ALICLOUD_ACCESS_KEY / ALICLOUD_SECRET_KEY like the catalog refresh.
"""

from __future__ import annotations

import re

from infra.cli.refresh import RefreshError
from infra.plan import DeploymentPlan

PAGE_SIZE = 100  # DescribeImages' largest page


def newest_image(ecs, region: str, instance_type: str) -> str:
    """The id of the family's newest image for the type; RefreshError naming the type when there is none."""
    from components.alicloud.layout import IMAGE_ARCHITECTURE, IMAGE_OS_TYPE, IMAGE_OWNER, UBUNTU_IMAGE_REGEX
    from infra.cli.refresh.alicloud import region_endpoint

    images, page = [], 1
    while True:
        answer = ecs.call("DescribeImages", region_endpoint(region), RegionId=region, ImageOwnerAlias=IMAGE_OWNER,
                          OSType=IMAGE_OS_TYPE, Architecture=IMAGE_ARCHITECTURE, InstanceType=instance_type,
                          Status="Available", PageSize=str(PAGE_SIZE), PageNumber=str(page))
        images += answer["Images"]["Image"]
        if page * PAGE_SIZE >= answer["TotalCount"] or not answer["Images"]["Image"]:
            break
        page += 1
    family = [i for i in images if re.search(UBUNTU_IMAGE_REGEX, i["ImageName"])]
    if not family:
        raise RefreshError(f"alicloud: DescribeImages {region}: no {IMAGE_OWNER} image matching {UBUNTU_IMAGE_REGEX} for {instance_type}")
    return max(family, key=lambda i: i["CreationTime"])["ImageId"]


def latest(plan: DeploymentPlan) -> dict[str, str]:
    """Node group → the newest image for its instance type. MissingCredentials without credentials."""
    from infra.cli.refresh.alicloud import client

    ecs = client()
    newest = {t: newest_image(ecs, plan.region, t) for t in sorted({g.offer.instance_type for g in plan.node_groups})}
    return {g.name: newest[g.offer.instance_type] for g in plan.node_groups}
