"""`llm-deploy status --stack S`: a deployed stack as it runs now: its endpoint and whether it answers, each
service's health, healthy and desired replicas per node group, the schedule's state, and what it costs per hour.

The stack's outputs (endpoint, cloud, region) come through the Automation API, so the Pulumi CLI and the stack's
backend are needed; the replicas come from the cloud, with its credentials, through
`infra.cli.status.<cloud>` (`read(plan, outputs)` and what stays `UNREAD` without credentials), found through the
cloud's record like its preflight. The cost is the plan's price per node times the nodes running now. Exit 0 when
the endpoint and every service are healthy, 1 otherwise (the report is printed either way), 2 for bad input.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra import clouds
from infra.cli.refresh import MissingCredentials, RefreshError
from infra.plan import HEALTH_PATH, DeploymentPlan

TIMEOUT_S = 10
HEALTHY, UNHEALTHY, UNKNOWN = "healthy", "unhealthy", "unknown"


@dataclass(frozen=True)
class GroupStatus:
    """A node group as the cloud reports it: nodes wanted, running and passing their health checks."""

    name: str
    instance_type: str
    desired: int
    running: int
    healthy: int | None  # None: the cloud does not report node health (DigitalOcean)
    node_hourly_usd: float  # the plan's price of one node

    @property
    def hourly_usd(self) -> float:
        return round(self.running * self.node_hourly_usd, 6)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "instance_type": self.instance_type, "desired": self.desired, "running": self.running,
                "healthy": self.healthy, "hourly_usd": self.hourly_usd}


@dataclass(frozen=True)
class ServiceStatus:
    """A service's health: healthy replicas of those registered, or what its health check answered."""

    name: str
    group: str
    state: str  # HEALTHY | UNHEALTHY | UNKNOWN
    detail: str  # "2 of 2 targets healthy", "/healthz/llm: 503 through the load balancer"
    healthy: int | None = None
    registered: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "group": self.group, "state": self.state, "detail": self.detail,
                "healthy": self.healthy, "registered": self.registered}


@dataclass(frozen=True)
class Reading:
    """What a cloud's status reader found."""

    groups: tuple[GroupStatus, ...]
    services: tuple[ServiceStatus, ...]


@dataclass(frozen=True)
class Status:
    stack: str
    cloud: str
    region: str
    endpoint: str | None
    endpoint_state: str  # HEALTHY | UNHEALTHY | UNKNOWN
    endpoint_detail: str
    schedule: str  # "always on (no schedule)", or the schedule's state now
    groups: tuple[GroupStatus, ...]
    services: tuple[ServiceStatus, ...]
    planned_hourly_usd: float
    notes: tuple[str, ...] = ()  # what could not be read, and why

    @property
    def hourly_usd(self) -> float | None:
        """What the nodes running now cost per hour; None when the cloud could not be read."""
        return round(sum(g.hourly_usd for g in self.groups), 6) if self.groups else None

    @property
    def healthy(self) -> bool:
        return self.endpoint_state == HEALTHY and all(s.state == HEALTHY for s in self.services)

    @property
    def exit_code(self) -> int:
        return 0 if self.healthy else 1

    def as_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "cloud": self.cloud, "region": self.region, "endpoint": self.endpoint,
                "endpoint_state": self.endpoint_state, "endpoint_detail": self.endpoint_detail, "schedule": self.schedule,
                "healthy": self.healthy, "groups": [g.as_json() for g in self.groups],
                "services": [s.as_json() for s in self.services], "hourly_usd": self.hourly_usd,
                "planned_hourly_usd": self.planned_hourly_usd, "notes": list(self.notes)}


def probe(url: str) -> tuple[str, str]:
    """(state, detail) of one GET of a health URL: 200 healthy, another answer unhealthy, no answer unknown."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=TIMEOUT_S) as response:
            return HEALTHY, f"{response.status}"
    except urllib.error.HTTPError as error:
        return UNHEALTHY, f"{error.code}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        return UNKNOWN, f"no answer ({getattr(error, 'reason', error)})"


def schedule_state(plan: DeploymentPlan, now: datetime | None = None) -> str:
    """What the stack's schedule holds now: awake until its next sleep, or asleep until its next wake (in its zone)."""
    schedule = plan.schedule
    if schedule is None or schedule.always:
        return "always on (no schedule)"
    now = now or datetime.now(UTC)
    if schedule.active_at(now):
        return f"awake ({schedule.active_hours}, {schedule.timezone}): sleeps {schedule.next_sleep(now).astimezone(schedule.zone):%a %H:%M}"
    return f"asleep ({schedule.active_hours}, {schedule.timezone}): wakes {schedule.next_wake(now).astimezone(schedule.zone):%a %H:%M}"


def reader(plan: DeploymentPlan):
    """The cloud's status module, found through its record; None when the cloud has none yet."""
    name = f"{__name__}.{clouds.get(plan.cloud).name}"
    return importlib.import_module(name) if importlib.util.find_spec(name) else None


def collect(plan: DeploymentPlan, outputs: Mapping[str, Any], get: Callable[[str], tuple[str, str]] = probe) -> Status:
    """The status of a deployed stack from its outputs, the cloud (with credentials) and its endpoint's /healthz."""
    endpoint = outputs.get("endpoint")
    notes: list[str] = []
    if endpoint:
        state, answer = get(f"{endpoint}{HEALTH_PATH}")
        detail = f"{HEALTH_PATH}: {answer}"
    else:
        state, detail = UNKNOWN, "the stack has no endpoint output (not deployed, or its update failed)"
    deployed = outputs.get("instance_types")
    planned = {g.name: g.offer.instance_type for g in plan.node_groups}
    if deployed is not None and deployed != planned:
        notes.append(f"the stack file now places {planned}, the stack runs {deployed}: `llm-deploy env up` applies it")
    module = reader(plan)
    unread = Reading((), tuple(ServiceStatus(s.name, g.name, UNKNOWN, "not read") for g in plan.node_groups for s in g.services))
    if module is None:
        notes.append(f"{plan.cloud}: no status reader (infra/cli/status/{plan.cloud}.py): its nodes are not read")
        reading = unread
    else:
        try:
            reading = module.read(plan, outputs, get)
        except (MissingCredentials, RefreshError) as error:
            notes.append(f"{plan.cloud}: {error}; not read: {module.UNREAD}")
            reading = unread
    return Status(plan.stack, plan.cloud, plan.region, endpoint, state, detail, schedule_state(plan), reading.groups,
                  reading.services, plan.hourly_usd, tuple(notes))


def run(stack: str, project_dir: Path = Path("."), environ: Mapping[str, str] = os.environ,
        err: Callable[[str], Any] = print) -> Status:
    """The status of a deployed stack: its outputs through the Automation API, then the cloud and the endpoint.

    Raises EnvCommandError (exit 1) without the Pulumi CLI, before anything else, or when the stack does not
    exist; ConfigError (exit 2) for a bad stack file.
    """
    from infra.cli import environments as env

    env.require_pulumi()
    target, _, plan = env.prepare(stack, None, project_dir, environ, err)
    from pulumi import automation as auto

    handle = env.open_stack(target, project_dir, {}, create=False)
    try:
        outputs = {key: value.value for key, value in handle.outputs().items() if not value.secret}
    except auto.CommandError as error:
        raise env._command_failed("stack output", error) from None
    return collect(plan, outputs)


def target_counts(states: Sequence[str], members: str = "targets") -> tuple[str, str, int, int]:
    """(state, detail, healthy, registered) of a service from its balancer members' health states (`members`: what
    the cloud calls them)."""
    healthy = sum(s == "healthy" for s in states)
    state = HEALTHY if healthy else UNHEALTHY
    return state, f"{healthy} of {len(states)} {members} healthy", healthy, len(states)


def lines(status: Status) -> list[str]:
    """The report as plain lines: endpoint, schedule, each group and service, cost, notes."""
    cost = f"{status.hourly_usd:.2f} $/h now" if status.hourly_usd is not None else "not read"
    found = [
        f"stack {status.stack} ({status.cloud} {status.region}): {'healthy' if status.healthy else 'NOT healthy'}",
        f"endpoint: {status.endpoint or '-'}: {status.endpoint_state} ({status.endpoint_detail})",
        f"schedule: {status.schedule}",
        *(f"node group {g.name}: {g.healthy if g.healthy is not None else '?'} healthy / {g.running} running / {g.desired} desired "
          f"{g.instance_type} ({g.hourly_usd:.2f} $/h)" for g in status.groups),
        *(f"service {s.name} ({s.group}): {s.state}: {s.detail}" for s in status.services),
        f"cost: {cost} (planned: {status.planned_hourly_usd:.2f} $/h)",
        *(f"note: {n}" for n in status.notes),
    ]
    return found
