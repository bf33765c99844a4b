"""AWS preflight: the zones offering each node group's type and each of its fallback types, and its On-Demand vCPU
quota against the quota left."""

from __future__ import annotations

import functools
import re

# the types a node group's autoscaling group may launch, in its order (components/aws/layout.py is plain functions)
from components.aws.layout import instance_types
from infra.cli.preflight import FAILED, NOT_CHECKED, OK, Check
from infra.cli.refresh import RefreshError
from infra.data_files import data_rows
from infra.plan import DeploymentPlan, NodeGroup

UNCHECKED = "instance type offerings per zone (DescribeInstanceTypeOfferings), On-Demand vCPU quotas (Service Quotas)"


@functools.cache
def vcpu_quotas() -> dict[str, tuple[str, str]]:
    """Instance family letters (`g`, `p`, `vt`, ...) → (quota code, quota name), data/aws_vcpu_quotas.csv."""
    return {row["family"]: (row["quota_code"], row["quota_name"]) for row in data_rows("aws_vcpu_quotas.csv")}


def family_letters(instance_type: str) -> str:
    """`g6e.xlarge` → `g`, `p5en.48xlarge` → `p`, `vt1.3xlarge` → `vt`."""
    match = re.match(r"[a-z]+", instance_type)
    return match.group() if match else ""


def quota_of(instance_type: str) -> tuple[str, str] | None:
    return vcpu_quotas().get(family_letters(instance_type))


def _aws_error(error: Exception) -> RefreshError:
    return RefreshError(f"aws: {error}")


def checks(plan: DeploymentPlan) -> list[Check]:
    from infra.cli.refresh.aws import credentialed_session, pages

    session = credentialed_session()
    import botocore.exceptions

    failures = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)
    ec2 = session.client("ec2", region_name=plan.region)
    types = sorted({t for g in plan.node_groups for t in instance_types(g)})

    def zones() -> dict[str, set[str]]:
        try:
            offerings = pages(ec2, "describe_instance_type_offerings", "InstanceTypeOfferings", LocationType="availability-zone",
                              Filters=[{"Name": "instance-type", "Values": types}])
        except failures as error:
            raise _aws_error(error) from None
        found: dict[str, set[str]] = {}
        for offering in offerings:
            found.setdefault(offering["InstanceType"], set()).add(offering["Location"])
        return found

    checks: list[Check] = []
    try:
        offered = zones()
    except RefreshError as error:
        offered = None
        checks += [Check(g.name, "offering", NOT_CHECKED, str(error)) for g in plan.node_groups]
    if offered is not None:
        for group in plan.node_groups:
            checks.append(_offering(group, offered, plan.region))
            checks += [_fallback(group, t, sorted(offered.get(t, ())), plan.region) for t in instance_types(group)[1:]]
    checks += _aws_quotas(plan, session, ec2, failures)
    return checks


def _offering(group: NodeGroup, offered: dict[str, set[str]], region: str) -> Check:
    """The placed type's zones; with fallback types a group whose own type is offered nowhere still launches."""
    primary, *fallbacks = instance_types(group)
    zones = sorted(offered.get(primary, ()))
    if zones:
        return Check(group.name, "offering", OK, f"{primary} offered in {len(zones)} zone(s): {', '.join(zones)}", zones=tuple(zones))
    usable = sorted(set().union(*(offered.get(t, set()) for t in fallbacks)))
    if usable:
        return Check(group.name, "offering", OK, f"{primary} is not offered in any zone of {region}; the group launches its "
                     f"fallback types there, in {len(usable)} zone(s): {', '.join(usable)}", zones=tuple(usable))
    also = f" nor are its fallback types {', '.join(fallbacks)}" if fallbacks else ""
    return Check(group.name, "offering", FAILED, f"{primary} is not offered in any zone of {region}{also} "
                 "(DescribeInstanceTypeOfferings); choose another region or instance type")


def _fallback(group: NodeGroup, instance_type: str, zones: list[str], region: str) -> Check:
    """A fallback type's zones: where the group may launch it when EC2 has no capacity of the types before it."""
    if not zones:
        return Check(group.name, f"fallback {instance_type}", OK, f"{instance_type} is not offered in any zone of {region}: "
                     "the group does not fall back to it here")
    return Check(group.name, f"fallback {instance_type}", OK, f"{instance_type} offered in {len(zones)} zone(s): {', '.join(zones)}",
                 zones=tuple(zones))


def _aws_quotas(plan: DeploymentPlan, session, ec2, failures: tuple[type[Exception], ...]) -> list[Check]:
    """Per quota the plan draws on: the vCPUs its groups need against the quota less what other instances hold."""
    from infra.cli.refresh.aws import pages

    by_quota: dict[tuple[str, str], list[NodeGroup]] = {}
    checks = []
    for group in plan.node_groups:
        quota = quota_of(group.offer.instance_type)
        if quota is None:
            checks.append(Check(group.name, "vCPU quota", NOT_CHECKED,
                                f"no On-Demand vCPU quota known for the {family_letters(group.offer.instance_type)} family "
                                "(data/aws_vcpu_quotas.csv)"))
        else:
            by_quota.setdefault(quota, []).append(group)
    if not by_quota:
        return checks
    quotas = session.client("service-quotas", region_name=plan.region)
    running = functools.cache(lambda: pages(ec2, "describe_instances", "Reservations",
                                            Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]))

    def ask(code: str) -> tuple[float, int]:
        """(the account's quota, vCPUs other instances hold on it)."""
        try:
            try:
                value = quotas.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"]
            except quotas.exceptions.NoSuchResourceException:  # never changed for this account: the default applies
                value = quotas.get_aws_default_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"]
            return float(value), _vcpus_in_use(ec2, running(), code, plan.stack)
        except failures as error:
            raise _aws_error(error) from None

    for (code, name), groups in by_quota.items():
        label = f"vCPU quota {code}"
        try:
            value, in_use = ask(code)
        except RefreshError as error:
            checks += [Check(g.name, label, NOT_CHECKED, str(error)) for g in groups]
            continue
        available = int(value) - in_use
        needed = sum(g.count * g.offer.vcpus for g in groups)
        for group in groups:
            own = group.count * group.offer.vcpus
            shared = f"; {needed} with {', '.join(g.name for g in groups if g is not group)}" if len(groups) > 1 else ""
            detail = (f"{group.count} x {group.offer.instance_type} need {own} vCPUs{shared}; {name}: {value:g}, "
                      f"{in_use} held by other running instances, {available} available")
            if needed > available:
                checks.append(Check(group.name, label, FAILED, f"{detail}: request an increase of {code} in Service Quotas",
                                    needed=needed, available=available))
            else:
                checks.append(Check(group.name, label, OK, detail, needed=needed, available=available))
    return checks


def _vcpus_in_use(ec2, reservations: list[dict], code: str, stack: str) -> int:
    """vCPUs (each type's default, DescribeInstanceTypes) of the pending and running instances drawing on `code`,
    leaving out this stack's own (tag llm-deploy:stack): an update keeps or replaces those."""
    from infra.cli.refresh.aws import pages

    counted: dict[str, int] = {}
    for reservation in reservations:
        for instance in reservation["Instances"]:
            tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
            if tags.get("llm-deploy:stack") != stack and (quota_of(instance["InstanceType"]) or ("",))[0] == code:
                counted[instance["InstanceType"]] = counted.get(instance["InstanceType"], 0) + 1
    if not counted:
        return 0
    vcpus = {t["InstanceType"]: t["VCpuInfo"]["DefaultVCpus"]
             for t in pages(ec2, "describe_instance_types", "InstanceTypes", InstanceTypes=sorted(counted))}
    return sum(vcpus[instance_type] * count for instance_type, count in counted.items())
