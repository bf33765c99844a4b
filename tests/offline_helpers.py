"""Helpers the cloud tests share: stack configs, cached offline runs, resource look-ups."""

from __future__ import annotations

import functools
from collections.abc import Callable

from infra.cli.offline import OfflineResult, run_offline
from infra.config import RawConfig, load_raw, parse_config
from infra.placement import place
from infra.plan import SERVICE_PORTS, DeploymentPlan
from tests.conftest import STACKS, STACKS_DIR

WORLD = {"0.0.0.0/0", "::/0"}
GUARDED_PORTS = {22, *SERVICE_PORTS.values()}  # SSH and the model servers: never open to WORLD


def stacks_on(cloud: str) -> list[str]:
    """The shipped stacks whose placement lands on this cloud."""
    return [s for s in STACKS if place(parse_config(load_raw(s, stacks_dir=STACKS_DIR))).cloud == cloud]


def raw_config(stack: str, values: dict) -> RawConfig:
    """A stack config of the test's own; apiKey/hfToken count as secrets, as `pulumi config set --secret` makes them."""
    secret = {k for k in ("apiKey", "hfToken") if k in values}
    return RawConfig(stack=stack, source=f"tests/{stack}", values=values, secret_keys=secret)


def plan_and_run(raw: RawConfig) -> tuple[DeploymentPlan, OfflineResult]:
    return place(parse_config(raw)), run_offline(raw)


def shipped_or_own(stack: str, own: dict) -> RawConfig:
    """A shipped stack by name, or one of the test module's own configs (name → RawConfig factory)."""
    return own[stack]() if stack in own else load_raw(stack, stacks_dir=STACKS_DIR)


def planner(own: dict) -> Callable[[str], tuple[DeploymentPlan, OfflineResult]]:
    """`planned(stack)`: placement and the offline run of a shipped or own stack, once per test session."""
    return functools.cache(lambda stack: plan_and_run(shipped_or_own(stack, own)))


def of_type(result: OfflineResult, token: str) -> list[dict]:
    return [r for r in result.resources if r["type"] == token]


def one(result: OfflineResult, token: str, name: str) -> dict:
    matches = [r for r in of_type(result, token) if r["name"] == name]
    assert len(matches) == 1, f"expected one {token} named {name}, found {len(matches)}"
    return matches[0]
