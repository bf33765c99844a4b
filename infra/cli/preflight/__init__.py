"""`llm-deploy preflight`: before anything is created, ask the chosen cloud whether this account can build the plan.

Per node group: the zones of the region that offer its instance type, and the quota it needs against the
quota left. AWS: EC2 DescribeInstanceTypeOfferings per zone, and the On-Demand vCPU quota of the type's
family (Service Quotas, data/aws_vcpu_quotas.csv) less the vCPUs other running instances hold.
DigitalOcean: `/v2/sizes` (the size is available in the region), `/v2/account` (droplet limit) against
`/v2/droplets`, and with `domain` that DigitalOcean DNS hosts it (`/v2/domains/<name>`; Let's Encrypt on
DigitalOcean needs it). Alibaba Cloud: ECS DescribeAvailableResource (zones with stock).

The API clients are the catalog refresh's (infra/cli/refresh); each cloud's checks are `infra.cli.preflight.<cloud>`
(`checks(plan)` and what stays `UNCHECKED` without credentials), found through its record like its refresh. Without credentials every check is
reported as not checked and the result is ok (exit 0); a check that fails exits 2 naming the node group.
An API that refuses one call (e.g. no permission for Service Quotas) leaves that check not checked.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infra import clouds
from infra.cli.refresh import MissingCredentials, RefreshError
from infra.errors import BadInput
from infra.plan import DeploymentPlan

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
    cloud = importlib.import_module(f"{__name__}.{clouds.get(plan.cloud).name}")
    try:
        checks = cloud.checks(plan)
    except MissingCredentials as missing:
        checks = [Check("account", "credentials", NOT_CHECKED, f"{plan.cloud}: {missing}; not checked: {cloud.UNCHECKED}")]
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
