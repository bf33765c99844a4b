"""What the tests share: the repository's stacks, values as users have them, builders of configs and plans,
offline runs of the real program, and the bootstrap cases the node tests render.

Fixtures live in conftest.py; everything else that more than one test file needs lives here.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NoReturn

import pytest
import yaml

from bootstrap import BootTarget, InlineSecrets, SecretStore, render_user_data
from bootstrap.gateway import FILES
from components.stack import GENERATED_API_KEY_LENGTH
from infra.cli.offline import OfflineResult, run_offline
from infra.config import RawConfig, StackConfig, load_raw, load_stack, parse_config
from infra.errors import ConfigError, Problem
from infra.placement import evaluate, load_config, place
from infra.plan import SERVICE_PORTS, DeploymentPlan, NodeGroup, Offer, PlacedService

ROOT = Path(__file__).resolve().parents[1]
STACKS_DIR = ROOT / "stacks"
STACKS = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in STACKS_DIR.glob("Pulumi.*.yaml"))

# --- values as users have them ------------------------------------------------------------------

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@example"
# Keys as users have them: the length the program generates and a long one of the user's.
FAKE_API_KEY = ("FAKEkey7f3a9c1e5b2d4f6a8c0e" * 2)[:GENERATED_API_KEY_LENGTH]
USER_API_KEY = ("sk-user-FAKE-" + "0123456789abcdef" * 8)[:128]
FAKE_HF_TOKEN = "hf_FAKEtoken9d8c7b6a5f4e3d2c1b0a"
REGIONS = {"aws": "us-east-1", "digitalocean": "tor1", "alicloud": "ap-southeast-1"}  # one region of each cloud
LLM = {"name": "llm", "kind": "llm", "model": "Qwen/Qwen2.5-7B-Instruct", "maxModelLen": 8192}


def missing(message: str) -> NoReturn:
    """Something a test needs is not here: fail under CI, which must run every check, skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{message}, and CI must run this check")
    pytest.skip(message)


# --- stubs of the clouds' APIs on 127.0.0.1 -------------------------------------------------------

DO_TOKEN = "dop_v1_" + "b" * 64  # a DigitalOcean personal access token's shape
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "DIGITALOCEAN_TOKEN",
                        "DIGITALOCEAN_ACCESS_TOKEN", "ALICLOUD_ACCESS_KEY", "ALICLOUD_SECRET_KEY", "ALICLOUD_SECURITY_TOKEN")
ALI_KEY, ALI_SECRET = "LTAI5tQ2example7key8X", "s3cr3tExampleKeyOfThirtyChars0"


class JsonStub(BaseHTTPRequestHandler):
    """A stub of a cloud's API: quiet, answering JSON (a test's subclass answers what the test sets)."""

    def log_message(self, *args):
        pass

    def _json(self, status: int, document: dict) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def moto_account(monkeypatch, make: Callable[[], object]) -> Iterator:
    """An AWS account in moto (test keys in the environment) whose session `make()` builds: what the CLI's AWS
    readers get from `credentialed_session` (a test's fake may wrap a client, e.g. with a Stubber)."""
    import moto

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    with moto.mock_aws():
        fake = make()
        monkeypatch.setattr("infra.cli.refresh.aws.credentialed_session", lambda: fake)
        yield fake


@contextmanager
def stub_api(monkeypatch, handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` served on 127.0.0.1, with DigitalOcean's and Alibaba Cloud's clients pointed at it and holding the
    stub's credentials; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    for name, value in {"DIGITALOCEAN_TOKEN": DO_TOKEN, "DIGITALOCEAN_API_URL": endpoint, "ALICLOUD_ACCESS_KEY": ALI_KEY,
                        "ALICLOUD_SECRET_KEY": ALI_SECRET, "LLM_DEPLOY_ALICLOUD_ECS_ENDPOINT": endpoint}.items():
        monkeypatch.setenv(name, value)
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()


# Two node groups: the LLM on a GPU, embedding and rerank on CPU.
GPU_LLM_CPU_ENCODERS = [
    {"name": "chat", "kind": "llm", "model": "Qwen/Qwen2.5-7B-Instruct", "maxModelLen": 8192},
    {"name": "embed", "kind": "embedding", "model": "intfloat/multilingual-e5-large-instruct", "accelerator": "cpu"},
    {"name": "rank", "kind": "rerank", "model": "BAAI/bge-reranker-base", "accelerator": "cpu"},
]


# --- the CLI -------------------------------------------------------------------------------------


class CliResult:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def json(self):
        return json.loads(self.stdout)


# --- stack configs and the offline program -------------------------------------------------------

WORLD = {"0.0.0.0/0", "::/0"}
GUARDED_PORTS = {22, *SERVICE_PORTS.values()}  # SSH and the model servers: never open to WORLD


def stack_problems(path: Path) -> list[Problem]:
    """Every problem `validate` and `cost` report for a stack file, typed: the config's, or placement's."""
    try:
        return list(evaluate(load_config(load_raw(config_file=str(path)))).problems)
    except ConfigError as error:
        return error.problems


def fields(problems: list[Problem]) -> list[tuple[str, str]]:
    return [(p.source, p.field) for p in problems]


def stack_config(stack_file: Callable[[dict], Path], values: dict) -> StackConfig:
    """The config of a throw-away stack file (conftest's `stack_file`) with these llm-deploy keys, as the CLI reads it."""
    return load_stack(config_file=str(stack_file(values)))


def shipped_plan(stack: str) -> DeploymentPlan:
    """The placement of a stack in stacks/."""
    return place(parse_config(load_raw(stack, stacks_dir=STACKS_DIR)))


def stacks_on(cloud: str) -> list[str]:
    """The shipped stacks whose placement lands on this cloud."""
    return [s for s in STACKS if shipped_plan(s).cloud == cloud]


def raw_config(stack: str, values: dict) -> RawConfig:
    """A stack config of the test's own; apiKey/hfToken count as secrets, as `pulumi config set --secret` makes them."""
    secret = {k for k in ("apiKey", "hfToken") if k in values}
    return RawConfig(stack=stack, source=f"tests/{stack}", values=values, secret_keys=secret)


def plan_and_run(raw: RawConfig) -> tuple[DeploymentPlan, OfflineResult]:
    return place(parse_config(raw)), run_offline(raw)


@functools.cache
def shipped(stack: str) -> tuple[DeploymentPlan, OfflineResult]:
    """Placement and the offline run of a stack in stacks/, once per test session (every module shares them)."""
    return plan_and_run(load_raw(stack, stacks_dir=STACKS_DIR))


def planner(own: dict) -> Callable[[str], tuple[DeploymentPlan, OfflineResult]]:
    """`planned(stack)`: placement and the offline run of a shipped stack or of one of the test module's own
    configs (name → RawConfig factory), each once per test session."""
    own_runs = functools.cache(lambda stack: plan_and_run(own[stack]()))
    return lambda stack: own_runs(stack) if stack in own else shipped(stack)


def of_type(result: OfflineResult, token: str) -> list[dict]:
    return [r for r in result.resources if r["type"] == token]


def one(result: OfflineResult, token: str, name: str) -> dict:
    matches = [r for r in of_type(result, token) if r["name"] == name]
    assert len(matches) == 1, f"expected one {token} named {name}, found {len(matches)}"
    return matches[0]


def answer(result: OfflineResult, token: str, name: str) -> dict:
    """The id and computed outputs (ips, ARNs) the engine gave the one resource of this type and name."""
    one(result, token, name)
    return result.answers[token, name]


def id_of(result: OfflineResult, token: str, name: str) -> str:
    """The id the engine gave a resource: what other resources' inputs refer to it by."""
    return answer(result, token, name)["id"]


# --- plans built by hand: node groups placement would make, for bootstrap ------------------------

MODELS = {"llm": "Qwen/Qwen2.5-7B-Instruct", "embedding": "BAAI/bge-m3", "rerank": "BAAI/bge-reranker-large"}


def offer(cloud: str, instance: str, gpu: str | None, count: int, arch: str | None, memory: float = 80) -> Offer:
    return Offer(
        cloud=cloud, instance_type=instance, region="test-1", gpu=gpu, gpu_count=count, gpu_memory_gb=memory if gpu else 0,
        vcpus=16, memory_gb=128, hourly_usd=1.0, source="test", as_of="2025-01-01", gpu_arch=arch, cuda=gpu is not None,
    )  # fmt: skip


def svc(kind: str, tp: int = 1, accelerator: str = "gpu", port: int | None = None, **extra) -> PlacedService:
    return PlacedService(
        name=kind, kind=kind, model=MODELS[kind], dtype=extra.pop("dtype", "bf16" if kind == "llm" else "fp16"),
        accelerator=accelerator, port=port or SERVICE_PORTS[kind], required_gpu_memory_gb=10,
        tensor_parallel_size=tp if accelerator == "gpu" else 0, **extra,
    )  # fmt: skip


OLLAMA_TAG = "deepseek-coder:6.7b"  # a tag of infra/data/ollama_models.csv


def ollama_svc(accelerator: str, tp: int = 0) -> PlacedService:
    """An `engine: ollama` LLM as placement places it: one server, the tag's quantisation, 8192 tokens of context."""
    return PlacedService(name="llm", kind="llm", model=OLLAMA_TAG, dtype="q4_0", accelerator=accelerator, port=SERVICE_PORTS["llm"],
                         required_gpu_memory_gb=9.1, tensor_parallel_size=tp, max_model_len=8192, engine="ollama")


def group(name: str, node_offer: Offer, *services: PlacedService) -> NodeGroup:
    return NodeGroup(name=name, offer=node_offer, count=1, services=services, disk_gb=200)


# --- bootstrap: one node of each kind, rendered, and its files as the node sees them -------------

TOOL = FILES / "llm-deploy"
AWS_STORE = SecretStore("aws-ssm", "us-east-1", "/llm-deploy/test/api-key", "/llm-deploy/test/hf-token")
AWS_LOG_GROUP = "/llm-deploy/prod/metrics"  # the log group the AWS cases' agent writes to (infra.service_metrics.log_group)
OOS_STORE = SecretStore("alicloud-oos", "ap-southeast-1", "llm-deploy-test-api-key")


@dataclass(frozen=True)
class Case:
    group: NodeGroup
    target: BootTarget
    secrets: SecretStore | InlineSecrets
    upstreams: dict[str, str] | None = None
    ssh_public_keys: tuple[str, ...] = ()

    def render(self) -> str:
        return render_user_data(self.group, self.target, self.secrets, self.upstreams, self.ssh_public_keys)


CASES = {
    "aws-ssm-driver-image": Case(
        group("all", offer("aws", "p5.4xlarge", "H100", 1, "hopper"), svc("llm"), svc("embedding"), svc("rerank")),
        BootTarget("aws", image_has_driver=True, metrics_log_group=AWS_LOG_GROUP),
        AWS_STORE,
        ssh_public_keys=(SSH_KEY,),
    ),
    "alicloud-oos-no-driver": Case(
        group("llm-rerank", offer("alicloud", "ecs.gn7i-c8g1.2xlarge", "A10", 1, "86", 24), svc("llm"), svc("rerank")),
        BootTarget("alicloud", image_has_driver=False, data_device="/dev/vdb"),
        OOS_STORE,
        {"embedding": "http://10.0.1.7"},
    ),
    "digitalocean-inline-driver-image": Case(
        group("llm", offer("digitalocean", "gpu-h200x1-141gb", "H200", 1, "hopper", 141), svc("llm")),
        BootTarget("digitalocean", image_has_driver=True, data_device="/dev/disk/by-id/scsi-0DO_Volume_llm-cache"),
        InlineSecrets(FAKE_API_KEY, FAKE_HF_TOKEN),
        {"embedding": "http://10.10.0.3", "rerank": "http://10.10.0.3:80"},
    ),
    "aws-cpu": Case(
        group("embed-rerank", offer("aws", "c7i.4xlarge", None, 0, None), svc("embedding", accelerator="cpu"), svc("rerank", accelerator="cpu")),
        BootTarget("aws", image_has_driver=False, os_release="ubuntu-24.04", metrics_log_group=AWS_LOG_GROUP),
        AWS_STORE,
        {"llm": "http://10.0.2.9"},
    ),
    # Ollama serves the LLM on CPU beside the encoders (what placement gives a CPU-only stack); on a small GPU, alone.
    "aws-cpu-ollama": Case(
        group("all", offer("aws", "m7i.2xlarge", None, 0, None), ollama_svc("cpu"), svc("embedding", accelerator="cpu"),
              svc("rerank", accelerator="cpu")),
        BootTarget("aws", image_has_driver=False, os_release="ubuntu-24.04", metrics_log_group=AWS_LOG_GROUP),
        AWS_STORE,
    ),
    "digitalocean-gpu-ollama": Case(
        group("llm", offer("digitalocean", "gpu-4000adax1-20gb", "RTX4000ADA", 1, "89", 20), ollama_svc("gpu", tp=1)),
        BootTarget("digitalocean", image_has_driver=True),
        InlineSecrets(FAKE_API_KEY),
        {"embedding": "http://10.10.0.3", "rerank": "http://10.10.0.3"},
    ),
    "aws-tp4-l40s": Case(
        group("llm-embed", offer("aws", "g6e.12xlarge", "L40S", 4, "89", 48), svc("llm", tp=4, gpu_memory_utilization=0.85), svc("embedding")),
        BootTarget("aws", image_has_driver=True, metrics_log_group=AWS_LOG_GROUP),
        AWS_STORE,
    ),
    "alicloud-tp8-a100-no-driver": Case(
        group("big", offer("alicloud", "ecs.gn7e-c16g1.32xlarge", "A100", 8, "ampere80"), svc("llm", tp=8, dtype="fp8"), svc("embedding"), svc("rerank")),
        BootTarget("alicloud", image_has_driver=False, os_release="ubuntu-24.04", data_device="/dev/vdb"),
        OOS_STORE,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class NodeFile:
    text: str
    permissions: str


def node_files(user_data: str) -> dict[str, NodeFile]:
    """The files cloud-init's write_files will create, decoded as the node sees them."""
    assert user_data.startswith("#cloud-config\n")
    files = {}
    for entry in yaml.safe_load(user_data)["write_files"]:
        assert "encoding" not in entry, "files travel as plain text: the user-data is readable in a review"
        files[entry["path"]] = NodeFile(entry["content"], entry.get("permissions", "0644"))
    return files


def bash_array(conf: str, name: str, tmp_path: Path) -> list[str]:
    """A bash array of a generated file, as bash itself reads it."""
    path = tmp_path / "conf.sh"
    path.write_text(conf)
    out = subprocess.run(
        ["bash", "-c", f'. "$1"; printf "%s\\n" "${{{name}[@]}}"', "_", str(path)], capture_output=True, text=True, check=True
    )
    return out.stdout.splitlines()


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def need(tool: str) -> str:
    """The tool's path; skip without it locally, fail without it in CI."""
    path = shutil.which(tool)
    if path is None:
        missing(f"{tool} is not installed (Debian package {'cloud-init' if tool == 'cloud-init' else tool})")
    return path


@dataclass
class Node:
    """A node's generated files in a temp directory, with the tool's paths pointed there."""

    root: Path
    env: dict[str, str]

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    def tool(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(TOOL), *args], env=self.env, capture_output=True, text=True, check=check, timeout=60)


def make_node(root: Path, case: Case) -> Node:
    """Write the files the user-data carries into ROOT, with the node-wide paths moved into ROOT."""
    files = node_files(case.render())
    (root / "etc" / "services").mkdir(parents=True)
    moved = {
        "LLM_DEPLOY_ETC": str(root / "etc"),
        "LLM_DEPLOY_STATE": str(root / "state"),
        "LLM_DEPLOY_LOG_DIR": str(root / "log"),
        "LLM_DEPLOY_AUTH_FILE": str(root / "nginx" / "auth.conf"),
        "LLM_DEPLOY_HEALTH_FILE": str(root / "run" / "healthy"),
        "LLM_DEPLOY_SERVICE_HEALTH_DIR": str(root / "run" / "healthy-services"),
        "LLM_DEPLOY_DRAIN_FILE": str(root / "run" / "draining"),
    }
    for path, file in files.items():
        if path.startswith("/etc/llm-deploy/"):
            target = root / "etc" / path.removeprefix("/etc/llm-deploy/")
            target.parent.mkdir(parents=True, exist_ok=True)
            text = file.text
            if path.endswith("node.env"):  # node.env sets these paths itself: move them after it does
                text += "".join(f"{k}={v}\n" for k, v in moved.items())
            target.write_text(text)
            target.chmod(int(file.permissions, 8))
    return Node(root, {**os.environ, **moved, "LLM_DEPLOY_HEALTH_INTERVAL": "1"})


def consecutive_free_ports(count: int) -> int:
    """The first of COUNT consecutive free loopback ports (a service's replicas listen on port, port + 1, ...)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        try:
            sockets = [socket.create_server(("127.0.0.1", base + i)) for i in range(count)]
        except OSError:
            continue
        for s in sockets:
            s.close()
        return base
    raise RuntimeError("no consecutive free ports")

