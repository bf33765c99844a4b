"""`llm-deploy preflight`: before anything is created, ask the chosen cloud whether this account can build the plan.

Per node group: the zones of the region that offer its instance type, and the quota it needs against the
quota left. AWS: EC2 DescribeInstanceTypeOfferings per zone, and the On-Demand vCPU quota of the type's
family (Service Quotas, data/aws_vcpu_quotas.csv) less the vCPUs other running instances hold.
DigitalOcean: `/v2/sizes` (the size is available in the region), `/v2/account` (droplet limit) against
`/v2/droplets`, and with `domain` that DigitalOcean DNS hosts it (`/v2/domains/<name>`; Let's Encrypt on
DigitalOcean needs it). Alibaba Cloud: ECS DescribeAvailableResource (zones with stock).

The API clients are the catalog refresh's (infra/cli/refresh). Without credentials every check is
reported as not checked and the result is ok (exit 0); a check that fails exits 2 naming the node group.
An API that refuses one call (e.g. no permission for Service Quotas) leaves that check not checked.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infra.cli.refresh import MissingCredentials, RefreshError
from infra.data_files import data_rows
from infra.errors import BadInput
from infra.plan import DeploymentPlan, NodeGroup

OK, FAILED, NOT_CHECKED = "ok", "failed", "not checked"
EXIT_FAILED = 2


@dataclass(frozen=True)
class Check:
    """One question asked of the cloud: about a node group, the account or the domain."""

    subject: str  # a node group's name, "account" or "domain"
    check: str  # "offering", "vCPU quota L-...", "droplet limit", "DNS", "credentials"
    status: str  # OK | FAILED | NOT_CHECKED
    detail: str
    zones: tuple[str, ...] = ()
    needed: int | None = None
    available: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"subject": self.subject, "check": self.check, "status": self.status, "detail": self.detail,
                "zones": list(self.zones), "needed": self.needed, "available": self.available}


@dataclass(frozen=True)
class Preflight:
    stack: str
    cloud: str
    region: str
    checks: tuple[Check, ...]

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status == FAILED)

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.failed else 0

    def problems(self) -> list[str]:
        """One line per failed check, naming the node group (or account, domain)."""
        return [f"preflight: {self.stack}: {c.subject}: {c.check}: {c.detail}" for c in self.failed]

    def as_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "cloud": self.cloud, "region": self.region, "ok": not self.failed,
                "checks": [c.as_json() for c in self.checks]}


class PreflightFailed(BadInput):
    """The account cannot build the plan as it is (a type not offered, a quota short): exit 2, one line per
    failed check, before anything is created."""

    def __init__(self, result: Preflight) -> None:
        self.result = result
        super().__init__("\n".join(result.problems()))

    def lines(self) -> list[str]:
        return self.result.problems()


def run(plan: DeploymentPlan) -> Preflight:
    """Ask the plan's cloud; without credentials, say what could not be checked."""
    checker = CHECKERS[plan.cloud]
    try:
        checks = checker(plan)
    except MissingCredentials as missing:
        checks = [Check("account", "credentials", NOT_CHECKED, f"{plan.cloud}: {missing}; not checked: {WHAT[plan.cloud]}")]
    return Preflight(plan.stack, plan.cloud, plan.region, tuple(checks))


def lines(result: Preflight) -> list[str]:
    """The report as plain lines (the `env` commands' log): one per check, then the verdict."""
    found = [f"preflight {c.subject}: {c.check}: {c.status}: {c.detail}" for c in result.checks]
    unchecked = sum(c.status == NOT_CHECKED for c in result.checks)
    verdict = (f"failed: {len(result.failed)} check(s)" if result.failed
               else f"ok ({unchecked} not checked)" if unchecked else "ok")
    return [*found, f"preflight {result.stack} ({result.cloud} {result.region}): {verdict}"]


def table(result: Preflight):
    """The report as a rich table (`--format table`)."""
    from rich.table import Table

    grid = Table(title=f"Preflight: {result.stack} ({result.cloud} {result.region})", title_justify="left")
    for column in ("node group", "check", "status", "needed", "available", "detail"):
        grid.add_column(column, justify="right" if column in ("needed", "available") else "left", overflow="fold")
    for c in result.checks:
        grid.add_row(c.subject, c.check, c.status, "" if c.needed is None else str(c.needed),
                     "" if c.available is None else str(c.available), c.detail)
    return grid


def _asked(subject: str, check: str, ask: Callable[[], Check]) -> Check:
    """A check whose API call failed is not checked, with the API's answer as the reason."""
    try:
        return ask()
    except RefreshError as error:
        return Check(subject, check, NOT_CHECKED, str(error))


# --- AWS -----------------------------------------------------------------------------------------


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


def aws_checks(plan: DeploymentPlan) -> list[Check]:
    from infra.cli.refresh.aws import credentialed_session, pages

    session = credentialed_session()
    import botocore.exceptions

    failures = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)
    ec2 = session.client("ec2", region_name=plan.region)
    types = sorted({g.offer.instance_type for g in plan.node_groups})

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
        checks += [_offering(g, sorted(offered.get(g.offer.instance_type, ())), plan.region) for g in plan.node_groups]
    checks += _aws_quotas(plan, session, ec2, failures)
    return checks


def _offering(group: NodeGroup, zones: list[str], region: str) -> Check:
    instance_type = group.offer.instance_type
    if not zones:
        return Check(group.name, "offering", FAILED, f"{instance_type} is not offered in any zone of {region} "
                     "(DescribeInstanceTypeOfferings); choose another region or instance type")
    return Check(group.name, "offering", OK, f"{instance_type} offered in {len(zones)} zone(s): {', '.join(zones)}", zones=tuple(zones))


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


# --- DigitalOcean --------------------------------------------------------------------------------


def digitalocean_checks(plan: DeploymentPlan) -> list[Check]:
    from infra.cli.refresh import digitalocean as do

    token = do.api_token()
    base = do.api_base()
    checks: list[Check] = []
    try:
        listed = {s["slug"]: s for s in do.sizes(token)}
    except RefreshError as error:
        checks += [Check(g.name, "offering", NOT_CHECKED, str(error)) for g in plan.node_groups]
    else:
        checks += [_size_check(g, listed.get(g.offer.instance_type), plan.region) for g in plan.node_groups]
    checks.append(_asked("account", "droplet limit", lambda: _droplet_limit(plan, do, base, token)))
    if plan.access.domain:
        domain = plan.access.domain
        checks.append(_asked("domain", "DNS", lambda: _do_domain(domain, do, base, token)))
    return checks


def _size_check(group: NodeGroup, size: dict | None, region: str) -> Check:
    slug = group.offer.instance_type
    if size is None or not size.get("available", True):
        return Check(group.name, "offering", FAILED, f"{slug} is not available to this account (/v2/sizes)")
    regions = sorted(size.get("regions") or ())
    if region not in regions:
        where = ", ".join(regions) or "no region (an account without GPU quota sees none)"
        return Check(group.name, "offering", FAILED, f"{slug} is not available in {region} for this account (/v2/sizes: {where})")
    return Check(group.name, "offering", OK, f"{slug} available in {region}", zones=(region,))


def _droplet_limit(plan: DeploymentPlan, do, base: str, token: str) -> Check:
    from components.digitalocean.layout import dns_name

    limit = int(do.get(f"{base}/v2/account", token)["account"]["droplet_limit"])
    own_tag = re.compile(rf"{re.escape(dns_name(plan.stack))}-nodes-[a-z0-9]+")  # the stack tag, auto-named by Pulumi
    droplets = do.listing("/v2/droplets", "droplets", token)
    others = sum(not any(own_tag.fullmatch(t) for t in d.get("tags", [])) for d in droplets)
    needed = sum(g.count for g in plan.node_groups)
    available = limit - others
    detail = f"{needed} droplet(s) needed; droplet limit {limit}, {others} held by other droplets, {available} available"
    if needed > available:
        return Check("account", "droplet limit", FAILED, f"{detail}: ask DigitalOcean support to raise the limit",
                     needed=needed, available=available)
    return Check("account", "droplet limit", OK, detail, needed=needed, available=available)


def _do_domain(domain: str, do, base: str, token: str) -> Check:
    """The domain, or a parent of it, must be a DigitalOcean DNS zone for its Let's Encrypt certificate."""
    labels = domain.split(".")
    candidates = [".".join(labels[i:]) for i in range(len(labels) - 1)]
    for name in candidates:
        if do.get_if_exists(f"{base}/v2/domains/{name}", token) is not None:
            return Check("domain", "DNS", OK, f"{domain} is in the DigitalOcean DNS zone {name}")
    return Check("domain", "DNS", FAILED, f"neither {domain} nor a parent domain is in DigitalOcean DNS (/v2/domains: 404); "
                 "a Let's Encrypt certificate on DigitalOcean needs it: add the domain under Networking > Domains and "
                 "point its NS records at DigitalOcean")


# --- Alibaba Cloud -------------------------------------------------------------------------------


def alicloud_checks(plan: DeploymentPlan) -> list[Check]:
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


CHECKERS: dict[str, Callable[[DeploymentPlan], list[Check]]] = {
    "aws": aws_checks,
    "digitalocean": digitalocean_checks,
    "alicloud": alicloud_checks,
}
# What a cloud without credentials leaves unchecked.
WHAT = {
    "aws": "instance type offerings per zone (DescribeInstanceTypeOfferings), On-Demand vCPU quotas (Service Quotas)",
    "digitalocean": "sizes in the region (/v2/sizes), the droplet limit (/v2/account), the domain in DigitalOcean DNS (/v2/domains)",
    "alicloud": "instance type stock per zone (DescribeAvailableResource)",
}
