"""Run the real stack program under Pulumi's mock engine: no CLI, no credentials, no network.

Used by `llm-deploy plan` and by the tests. Each cloud package has an `offline` module (no SDK
import) with plausible answers for its invokes and the computed outputs of its resources.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import importlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks, rpc
from pulumi.runtime.mocks import MockMonitor

from infra import clouds
from infra.config import CONFIG_NAMESPACE, SECRET_PLACEHOLDER, RawConfig
from infra.plan import DeploymentPlan
from infra.plan_summary import PlanSummary

SECRET_MARK = "[secret]"
SECRET_FILE_MODE = 0o600  # user-data that carries a secret inline (DigitalOcean's has the API key)
FILE_MODE = 0o644


def redact(value: Any) -> Any:
    """Inputs as the engine receives them, with every secret replaced by "[secret]"."""
    if isinstance(value, dict):
        if rpc.is_rpc_secret(value):
            return SECRET_MARK
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def _unwrap(value: Any) -> Any:
    """Inputs with secrets unwrapped, as a provider would see them (for computed outputs)."""
    if isinstance(value, dict):
        if rpc.is_rpc_secret(value):
            return _unwrap(rpc.unwrap_rpc_secret(value))
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


@dataclass
class CloudFakes:
    """The invokes and computed outputs that all clouds' offline modules provide together."""

    invokes: dict[str, Callable[[dict], dict]] = field(default_factory=dict)
    outputs: dict[str, Callable[[str, dict], dict]] = field(default_factory=dict)

    @classmethod
    def load(cls) -> CloudFakes:
        fakes = cls(outputs={"random:index/randomPassword:RandomPassword": lambda name, inputs: {"result": "x" * int(inputs["length"])}})
        for name in (cloud.offline_module for cloud in clouds.CLOUDS):
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name is None or not name.startswith(exc.name):  # a cloud package not written yet is fine
                    raise
                continue
            fakes.invokes.update(module.INVOKES)
            fakes.outputs.update(module.OUTPUTS)
        return fakes


class RecordingMocks(Mocks):
    """Records every resource; answers invokes and computed outputs from the clouds' fakes."""

    def __init__(self, fakes: CloudFakes) -> None:
        self.fakes = fakes
        self.resources: list[dict[str, Any]] = []
        self.answers: dict[tuple[str, str], dict[str, Any]] = {}  # (type, name) → the id and computed outputs given
        self.providers: dict[tuple[str, str], str | None] = {}  # (type, name) → the provider reference it was created with

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict]:
        self.resources.append({"type": args.typ, "name": args.name, "inputs": redact(args.inputs)})
        inputs = _unwrap(args.inputs)
        computed = self.fakes.outputs.get(args.typ, lambda name, inputs: {})(args.name, inputs)
        resource_id = computed.pop("id", f"{args.name}-id")
        self.answers[args.typ, args.name] = {"id": resource_id, **computed}
        self.providers[args.typ, args.name] = args.provider
        return resource_id, {**inputs, **computed}

    def call(self, args: MockCallArgs) -> tuple[dict, list | None]:
        answer = self.fakes.invokes.get(args.token)
        if answer is None:
            raise KeyError(f"offline plan has no fake for invoke {args.token}; add one to the cloud's offline module")
        return answer(_unwrap(args.args)), []


class DuplicateUrnError(RuntimeError):
    """Two resources with the same URN (type chain and name): the real engine refuses the program."""


class UniqueUrnMonitor(MockMonitor):
    """Pulumi's mock monitor, strict as the real engine: a URN registered twice (same type, name and
    parent type) fails the run instead of quietly overwriting the first resource."""

    def __init__(self, mocks: Mocks) -> None:
        super().__init__(mocks)
        self.urns: set[str] = set()

    def RegisterResource(self, request):  # the gRPC method it overrides
        urn = self.make_urn(request.parent, request.type, request.name)
        if urn in self.urns:
            raise DuplicateUrnError(f"Duplicate resource URN '{urn}'; try giving it a unique name")
        self.urns.add(urn)
        return super().RegisterResource(request)


@dataclass(frozen=True)
class OfflineResult:
    """The plan summary (what `plan` prints) and each node group's user-data, decoded (what --render-dir writes)."""

    summary: PlanSummary
    user_data: dict[str, str]
    secret_user_data: frozenset[str] = frozenset()  # node groups whose user-data is a secret output
    # what the engine answered for each resource (type, name): its id and computed outputs; not in the plan's JSON
    answers: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    providers: dict[tuple[str, str], str | None] = field(default_factory=dict)  # likewise: each resource's provider

    @property
    def resources(self) -> tuple[dict[str, Any], ...]:
        return self.summary.resources

    @property
    def outputs(self) -> dict[str, Any]:
        return self.summary.outputs

    def as_json(self) -> dict[str, Any]:
        return self.summary.as_json()

    def render(self, directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for group, text in self.user_data.items():
            path = directory / f"{group}.yaml"
            mode = SECRET_FILE_MODE if group in self.secret_user_data else FILE_MODE
            # created with its final mode (an older file keeps its own, hence the fchmod): a secret is never world-readable
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as handle:
                os.fchmod(handle.fileno(), mode)
                handle.write(text)
            written.append(path)
        return written


async def _resolve(value: Any) -> Any:
    """An output's value, or "[secret]" when it is secret."""
    if isinstance(value, pulumi.Output):
        if await value.is_secret():
            return SECRET_MARK
        return await _resolve(await value.future())
    if isinstance(value, dict):
        return {k: await _resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [await _resolve(v) for v in value]
    return value


def decode_user_data(text: str) -> str:
    """User-data as a node reads it: base64 (and gzip inside it) undone."""
    if text.startswith("#cloud-config"):
        return text
    raw = base64.b64decode(text)
    return (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()


def run_offline(raw: RawConfig, plan: DeploymentPlan | None = None) -> OfflineResult:
    """Run `components.stack.program` for one stack's config under the mock engine (with PLAN instead of
    the config's placement when given).

    Raises ConfigError with every problem of the stack (config and placement) before any resource.
    """
    # A loop of this run's own, closed when it ends: one left for the interpreter's exit to collect may
    # print a traceback ("Invalid file descriptor") after the command's last line.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return _run_offline(raw, plan)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _run_offline(raw: RawConfig, plan: DeploymentPlan | None) -> OfflineResult:
    from components.stack import program
    from infra.placement import load_config

    mocks = RecordingMocks(CloudFakes.load())
    pulumi.runtime.set_mocks(mocks, project="llm-deploy", stack=raw.stack, preview=False, monitor=UniqueUrnMonitor(mocks))
    config_values = {f"{CONFIG_NAMESPACE}:{k}": v for k, v in raw.pulumi_values().items()}
    pulumi.runtime.set_all_config(config_values, [f"{CONFIG_NAMESPACE}:{k}" for k in raw.secret_keys])
    config = load_config(raw)
    result: dict[str, Any] = {}

    def run() -> pulumi.Output:
        built = program(config, plan)
        result["plan"] = built.plan

        async def collect() -> None:
            result["outputs"] = await _resolve(built.outputs)
            result["user_data"] = {
                name: decode_user_data(await ud.future()) for name, ud in built.deployment.user_data.items()
            }
            result["secret_user_data"] = frozenset(
                [name for name, ud in built.deployment.user_data.items() if await ud.is_secret()])

        return pulumi.Output.from_input(asyncio.ensure_future(collect()))

    pulumi.runtime.mocks.test(run)()
    assert SECRET_PLACEHOLDER not in str(result["outputs"]), "a secret leaked into the outputs"
    # the engine registers resources concurrently: sorted, identical runs give identical plans
    resources = sorted(mocks.resources, key=lambda r: (r["name"], r["type"], json.dumps(r["inputs"], sort_keys=True)))
    summary = PlanSummary(raw.stack, tuple(resources), result["outputs"], result["plan"])
    return OfflineResult(summary, result["user_data"], result["secret_user_data"], mocks.answers, mocks.providers)
