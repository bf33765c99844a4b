"""AWS status: each node group's Auto Scaling group (desired, in service, healthy) and each service's target group
(its targets' health), found by the tags the components give them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from infra.cli.refresh import RefreshError
from infra.cli.status import GroupStatus, Reading, ServiceStatus, target_counts
from infra.plan import DeploymentPlan

UNREAD = "Auto Scaling groups (DescribeAutoScalingGroups), target health (DescribeTargetHealth)"
STACK_TAG, GROUP_TAG, SERVICE_TAG = "llm-deploy:stack", "llm-deploy:node-group", "llm-deploy:service"


def read(plan: DeploymentPlan, outputs: Mapping[str, Any], get: Callable[[str], tuple[str, str]]) -> Reading:
    from infra.cli.refresh.aws import credentialed_session, pages

    session = credentialed_session()
    import botocore.exceptions

    autoscaling = session.client("autoscaling", region_name=plan.region)
    elb = session.client("elbv2", region_name=plan.region)
    try:
        found = pages(autoscaling, "describe_auto_scaling_groups", "AutoScalingGroups",
                      Filters=[{"Name": f"tag:{STACK_TAG}", "Values": [plan.stack]}])
        by_group = {tag["Value"]: g for g in found for tag in g.get("Tags", []) if tag["Key"] == GROUP_TAG}
        groups, services = [], []
        for group in plan.node_groups:
            asg = by_group.get(group.name)
            instances = (asg or {}).get("Instances", [])
            in_service = [i for i in instances if i["LifecycleState"] == "InService"]
            groups.append(GroupStatus(group.name, group.offer.instance_type, (asg or {}).get("DesiredCapacity", 0), len(in_service),
                                      sum(i["HealthStatus"] == "Healthy" for i in in_service), group.offer.hourly_usd))
            target_groups = _by_service(elb, (asg or {}).get("TargetGroupARNs", []))
            for service in group.services:
                arn = target_groups.get(service.name)
                if arn is None:
                    services.append(ServiceStatus(service.name, group.name, "unhealthy", "no target group (not deployed?)"))
                    continue
                states = [d["TargetHealth"]["State"] for d in elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]]
                state, detail, healthy, registered = target_counts(states)
                services.append(ServiceStatus(service.name, group.name, state, detail, healthy, registered))
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        raise RefreshError(f"aws: {error}") from None
    return Reading(tuple(groups), tuple(services))


def _by_service(elb, arns: list[str]) -> dict[str, str]:
    """Service name → target group ARN, from the target groups' `llm-deploy:service` tags."""
    if not arns:
        return {}
    found = {}
    for description in elb.describe_tags(ResourceArns=arns)["TagDescriptions"]:
        for tag in description.get("Tags", []):
            if tag["Key"] == SERVICE_TAG:
                found[tag["Value"]] = description["ResourceArn"]
    return found
