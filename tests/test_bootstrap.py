"""bootstrap: user-data checked by the real cloud-init, shellcheck and nginx; the node tool run for real.

Where a tool is missing the test skips locally with the reason, and fails when CI is set.
"""

from __future__ import annotations

import base64
import http.client
import importlib.util
import json
import os
import shutil
import socket
import stat
import subprocess
import threading
import time
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import yaml

from bootstrap import BootTarget, InlineSecrets, SecretStore, encode_user_data, render_gateway, render_user_data
from bootstrap.gateway import FILES, MAX_BODY_BYTES
from bootstrap.render import USER_DATA_LIMITS
from bootstrap.services import CACHE_DIR, CUDA_CHECK_IMAGE, VLLM_IMAGE, service_launches
from components.stack import GENERATED_API_KEY_LENGTH
from infra.config import load_raw, parse_config
from infra.node_storage import node_group
from infra.placement import place
from infra.plan import SERVICE_PATHS, NodeGroup, Offer, PlacedService
from tests.conftest import STACKS_DIR

ROOT = Path(__file__).resolve().parents[1]
# Keys as users have them: the length the program generates and a long one of the user's.
FAKE_API_KEY = ("FAKEkey7f3a9c1e5b2d4f6a8c0e" * 2)[:GENERATED_API_KEY_LENGTH]
USER_API_KEY = ("sk-user-FAKE-" + "0123456789abcdef" * 8)[:128]
FAKE_HF_TOKEN = "hf_FAKEtoken9d8c7b6a5f4e3d2c1b0a"
TOOL = FILES / "llm-deploy"
STACKS = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))


def need(tool: str) -> str:
    """The tool's path; skip without it locally, fail without it in CI."""
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is not installed (Debian package {'cloud-init' if tool == 'cloud-init' else tool})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}, and CI must run this check")
        pytest.skip(message)
    return path


# --- a small plan factory ----------------------------------------------------------------------


def offer(cloud: str, instance: str, gpu: str | None, count: int, arch: str | None, memory: float = 80) -> Offer:
    return Offer(
        cloud=cloud, instance_type=instance, region="test-1", gpu=gpu, gpu_count=count, gpu_memory_gb=memory if gpu else 0,
        vcpus=16, memory_gb=128, hourly_usd=1.0, source="test", as_of="2025-01-01", gpu_arch=arch, cuda=gpu is not None,
    )  # fmt: skip


MODELS = {"llm": "Qwen/Qwen2.5-7B-Instruct", "embedding": "BAAI/bge-m3", "rerank": "BAAI/bge-reranker-large"}
PORTS = {"llm": 8000, "embedding": 8080, "rerank": 8081}


def svc(kind: str, tp: int = 1, accelerator: str = "gpu", port: int | None = None, **extra) -> PlacedService:
    return PlacedService(
        name=kind, kind=kind, model=MODELS[kind], dtype=extra.pop("dtype", "bf16" if kind == "llm" else "fp16"),
        accelerator=accelerator, port=port or PORTS[kind], required_gpu_memory_gb=10,
        tensor_parallel_size=tp if accelerator == "gpu" else 0, **extra,
    )  # fmt: skip


def group(name: str, node_offer: Offer, *services: PlacedService) -> NodeGroup:
    return NodeGroup(name=name, offer=node_offer, count=1, services=services, disk_gb=200)


AWS_STORE = SecretStore("aws-ssm", "us-east-1", "/llm-deploy/test/api-key", "/llm-deploy/test/hf-token")
OOS_STORE = SecretStore("alicloud-oos", "ap-southeast-1", "llm-deploy-test-api-key")

OPS_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@example"


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
        BootTarget("aws", image_has_driver=True),
        AWS_STORE,
        ssh_public_keys=(OPS_KEY,),
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
        BootTarget("aws", image_has_driver=False, os_release="ubuntu-24.04"),
        AWS_STORE,
        {"llm": "http://10.0.2.9"},
    ),
    "aws-tp4-l40s": Case(
        group("llm-embed", offer("aws", "g6e.12xlarge", "L40S", 4, "89", 48), svc("llm", tp=4, gpu_memory_utilization=0.85), svc("embedding")),
        BootTarget("aws", image_has_driver=True),
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


def is_shell(text: str) -> bool:
    return text.startswith(("#!/bin/bash", "# shellcheck shell=bash"))


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


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return {name: case.render() for name, case in CASES.items()}


# --- the real tools on every kind of node ------------------------------------------------------


def check_with_tools(user_data: str, where: Path) -> None:
    """cloud-init's schema check on the user-data, shellcheck on every shell file it writes."""
    cloud_init, shellcheck = need("cloud-init"), need("shellcheck")
    where.mkdir(parents=True, exist_ok=True)
    config = where / "user-data.yaml"
    config.write_text(user_data)
    schema = subprocess.run([cloud_init, "schema", "--config-file", str(config)], check=False, capture_output=True, text=True)
    assert schema.returncode == 0 and "Valid cloud-config" in schema.stdout, schema.stdout + schema.stderr
    scripts = []
    for path, file in node_files(user_data).items():
        if is_shell(file.text):
            scripts.append(where / path.strip("/").replace("/", "__"))
            scripts[-1].write_text(file.text)
    assert any(p.name.endswith("llm-deploy") for p in scripts) and any(p.name.endswith("node.env") for p in scripts)
    check = subprocess.run([shellcheck, *map(str, scripts)], check=False, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("name", CASES)
def test_user_data_passes_cloud_init_schema_and_shellcheck(name, rendered, tmp_path):
    check_with_tools(rendered[name], tmp_path)


def test_cloud_init_schema_check_can_fail(tmp_path):
    """The schema check above is not a rubber stamp: a bad cloud-config is refused."""
    cloud_init = need("cloud-init")
    config = tmp_path / "bad.yaml"
    config.write_text("#cloud-config\nwrite_files:\n  - path: /x\n    permissions: 600\n")
    assert subprocess.run([cloud_init, "schema", "--config-file", str(config)], check=False, capture_output=True).returncode != 0


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_renders_valid_user_data(stack, tmp_path):
    """Each stack's program, offline: the user-data its cloud's component renders passes both tools."""
    from infra.cli.offline import run_offline
    from infra.config import load_raw

    result = run_offline(load_raw(stack))
    assert result.user_data
    for name, text in result.user_data.items():
        check_with_tools(text, tmp_path / name)


# --- what the node will run --------------------------------------------------------------------


TEI = "ghcr.io/huggingface/text-embeddings-inference"


@pytest.mark.parametrize(
    ("gpu", "arch", "tag"),
    [("A10G", "86", "86-1.9"), ("L4", "89", "89-1.9"), ("L40S", "89", "89-1.9"), ("H100", "hopper", "hopper-1.9"),
     ("H200", "hopper", "hopper-1.9"), ("A100", "ampere80", "1.9"), ("T4", "turing", "turing-1.9"), (None, None, "cpu-1.9")],
)  # fmt: skip
def test_tei_image_tag_follows_the_gpu_architecture(gpu, arch, tag, tmp_path):
    accelerator = "gpu" if gpu else "cpu"
    node = group("embed", offer("aws", "x", gpu, 1 if gpu else 0, arch), svc("embedding", accelerator=accelerator))
    files = node_files(render_user_data(node, BootTarget("aws", True), AWS_STORE))
    conf = files["/etc/llm-deploy/services/embedding.conf"].text
    assert bash_array(conf, "SERVICE_IMAGE", tmp_path) == [f"{TEI}:{tag}"]
    docker_args = bash_array(conf, "SERVICE_DOCKER_ARGS", tmp_path)
    assert ("--gpus" in docker_args) == (gpu is not None)


def test_unknown_gpu_architecture_is_refused():
    node = group("embed", offer("aws", "x", "B200", 1, "blackwell"), svc("embedding"))
    with pytest.raises(ValueError, match="gpu_arch"):
        render_user_data(node, BootTarget("aws", True), AWS_STORE)


def test_cpu_node_has_no_gpu_step(rendered):
    user_data = rendered["aws-cpu"]
    everything = user_data + "".join(f.text for f in node_files(user_data).values())
    assert "nvidia" not in everything.lower()
    assert "--gpus" not in everything
    files = node_files(user_data)
    assert "/usr/local/sbin/llm-deploy-gpu" not in files
    assert "LLM_DEPLOY_ACCELERATOR=cpu" in files["/etc/llm-deploy/node.env"].text
    # A GPU node of the same services does carry the GPU steps: the check above can fail.
    assert "/usr/local/sbin/llm-deploy-gpu" in node_files(rendered["aws-ssm-driver-image"])


@pytest.mark.parametrize(
    ("name", "tp", "devices"), [("aws-tp4-l40s", 4, "0,1,2,3"), ("alicloud-tp8-a100-no-driver", 8, "0,1,2,3,4,5,6,7")]
)
def test_vllm_tensor_parallel_size_is_the_plans(name, tp, devices, rendered, tmp_path):
    conf = node_files(rendered[name])["/etc/llm-deploy/services/llm.conf"].text
    args = bash_array(conf, "SERVICE_ARGS", tmp_path)
    planned = next(s for s in CASES[name].group.services if s.kind == "llm")
    assert int(flag(args, "--tensor-parallel-size")) == planned.tensor_parallel_size == tp
    docker_args = bash_array(conf, "SERVICE_DOCKER_ARGS", tmp_path)
    assert flag(docker_args, "--gpus") == f'"device={devices}"'
    assert bash_array(conf, "SERVICE_IMAGE", tmp_path) == [VLLM_IMAGE]


def test_vllm_flags_follow_the_plan(rendered, tmp_path):
    args = bash_array(node_files(rendered["aws-tp4-l40s"])["/etc/llm-deploy/services/llm.conf"].text, "SERVICE_ARGS", tmp_path)
    assert args[0] == flag(args, "--served-model-name") == MODELS["llm"]  # `vllm serve MODEL`: positional
    assert "--model" not in args
    assert flag(args, "--gpu-memory-utilization") == "0.85"
    assert flag(args, "--dtype") == "bfloat16"
    assert flag(args, "--port") == "8000"
    fp8 = node_files(rendered["alicloud-tp8-a100-no-driver"])["/etc/llm-deploy/services/llm.conf"].text
    fp8_args = bash_array(fp8, "SERVICE_ARGS", tmp_path)
    assert flag(fp8_args, "--quantization") == "fp8"
    assert flag(fp8_args, "--gpu-memory-utilization") == "0.9"  # the default when the plan leaves it open
    with_len = replace(CASES["aws-tp4-l40s"].group.services[0], max_model_len=16384)
    launch = service_launches(replace(CASES["aws-tp4-l40s"].group, services=(with_len,)))[0]
    assert flag(list(launch.args), "--max-model-len") == "16384"


def test_services_listen_on_localhost_only(rendered, tmp_path):
    for name, user_data in rendered.items():
        for path, file in node_files(user_data).items():
            if path.startswith("/etc/llm-deploy/services/"):
                docker_args = bash_array(file.text, "SERVICE_DOCKER_ARGS", tmp_path)
                port = bash_array(file.text, "SERVICE_PORT", tmp_path)[0]
                assert flag(docker_args, "-p") == f"127.0.0.1:{port}:{port}", (name, path)


def test_gpus_are_split_when_services_fit_side_by_side_and_shared_otherwise(tmp_path):
    split = group("two", offer("aws", "g6.12xlarge", "L4", 4, "89", 24), svc("llm", tp=2), svc("embedding"), svc("rerank"))
    devices = {launch.service.name: launch.gpu_devices for launch in service_launches(split)}
    assert devices == {"llm": (0, 1), "embedding": (2,), "rerank": (3,)}
    shared = {launch.service.name: launch.gpu_devices for launch in service_launches(CASES["aws-tp4-l40s"].group)}
    assert shared == {"llm": (0, 1, 2, 3), "embedding": (0,)}


def test_driver_install_only_where_the_image_has_none(rendered, tmp_path):
    def env(name: str) -> dict[str, str]:
        text = node_files(rendered[name])["/etc/llm-deploy/node.env"].text
        (tmp_path / "node.env").write_text(text)
        out = subprocess.run(["bash", "-c", '. "$1"; set | grep "^LLM_DEPLOY_"', "_", str(tmp_path / "node.env")],
                             capture_output=True, text=True, check=True)  # fmt: skip
        return dict(line.split("=", 1) for line in out.stdout.splitlines())

    assert env("aws-ssm-driver-image")["LLM_DEPLOY_IMAGE_HAS_DRIVER"] == "1"
    no_driver = env("alicloud-oos-no-driver")
    assert no_driver["LLM_DEPLOY_IMAGE_HAS_DRIVER"] == "0" and no_driver["LLM_DEPLOY_DRIVER_BRANCH"] == "580"
    assert no_driver["LLM_DEPLOY_CUDA_CHECK_IMAGE"] == CUDA_CHECK_IMAGE
    assert env("alicloud-tp8-a100-no-driver")["LLM_DEPLOY_FABRIC_MANAGER"] == "1"
    assert no_driver["LLM_DEPLOY_FABRIC_MANAGER"] == "0"
    gpu_script = (FILES / "llm-deploy-gpu").read_text()
    assert "nvidia-ctk runtime configure --runtime=docker" in gpu_script


def test_boot_resumes_after_the_driver_reboot(rendered):
    """The bootstrap is a unit enabled before any reboot, run at each boot until its done-marker exists."""
    user_data = yaml.safe_load(rendered["alicloud-oos-no-driver"])
    assert ["systemctl", "enable", "llm-deploy-bootstrap.service"] in user_data["runcmd"]
    unit = node_files(rendered["alicloud-oos-no-driver"])["/etc/systemd/system/llm-deploy-bootstrap.service"].text
    assert "ConditionPathExists=!/var/lib/llm-deploy/bootstrap.done" in unit
    assert "WantedBy=multi-user.target" in unit and "Restart=on-failure" in unit
    # Started, not waited for: multi-user.target and cloud-final do not wait for a resumed bootstrap.
    assert "Type=exec" in unit and "Type=oneshot" not in unit
    service_unit = node_files(rendered["alicloud-oos-no-driver"])["/etc/systemd/system/llm-deploy@.service"].text
    assert "Restart=always" in service_unit


def test_systemd_units_verify(rendered, tmp_path):
    """systemd's own check of the units as the node gets them (an extra: skipped where systemd is absent)."""
    analyze, system_units = shutil.which("systemd-analyze"), Path("/lib/systemd/system")
    if analyze is None or not system_units.is_dir():
        pytest.skip("systemd-analyze or /lib/systemd/system is not available")
    shutil.copytree(system_units, tmp_path / "lib/systemd/system", symlinks=True)
    units = tmp_path / "etc/systemd/system"
    units.mkdir(parents=True)
    for stub in ("docker.service", "nginx.service"):  # installed by the bootstrap; stand-ins here
        (units / stub).write_text("[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/true\n")
    for path, file in node_files(rendered["aws-ssm-driver-image"]).items():
        if path.startswith(("/etc/systemd/system/", "/usr/local/sbin/")):
            (tmp_path / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path.lstrip("/")).write_text(file.text)
            (tmp_path / path.lstrip("/")).chmod(int(file.permissions, 8))
    names = ["llm-deploy-bootstrap.service", "llm-deploy-secrets.service", "llm-deploy-health.service", "llm-deploy@llm.service"]
    result = subprocess.run([analyze, "verify", f"--root={tmp_path}", *names], check=False, capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout + result.stderr, result.stdout + result.stderr


def test_user_data_is_deterministic():
    """DigitalOcean replaces a droplet whose user-data changes: the same plan must give the same bytes."""
    case = CASES["digitalocean-inline-driver-image"]
    assert case.render() == case.render()


def test_largest_aws_node_fits_the_ec2_user_data_limit():
    long_model = "meta-llama/Llama-3.3-70B-Instruct-quantized.w8a8-dynamic"
    llm = replace(svc("llm", tp=8, max_model_len=131072, gpu_memory_utilization=0.85), model=long_model)
    node = group("llm-embedding-rerank", offer("aws", "p5.48xlarge", "H100", 8, "hopper"), llm, svc("embedding"), svc("rerank"))
    store = SecretStore("aws-ssm", "eu-central-1", "/llm-deploy/production-eu/api-key", "/llm-deploy/production-eu/hf-token")
    sent = base64.b64decode(encode_user_data(render_user_data(node, BootTarget("aws", False), store)))
    assert len(sent) <= USER_DATA_LIMITS["aws"]  # EC2 counts the bytes before base64: gzip inside


# --- secrets -----------------------------------------------------------------------------------


def test_store_user_data_names_the_parameters_only(rendered):
    for name in ("aws-ssm-driver-image", "alicloud-oos-no-driver"):
        files = node_files(rendered[name])
        assert "/etc/llm-deploy/secrets.env" not in files
        env = files["/etc/llm-deploy/node.env"].text
        store = CASES[name].secrets
        assert f"LLM_DEPLOY_API_KEY_NAME={store.api_key_name}" in env
        assert f"LLM_DEPLOY_SECRET_STORE={store.kind}" in env
    assert "/usr/local/lib/llm-deploy/alicloud_oos.py" in node_files(rendered["alicloud-oos-no-driver"])


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_in_user_data_where_the_cloud_has_a_store(stack):
    """The whole program offline with a distinctive key: only DigitalOcean's user-data may carry it, root-only."""
    from infra.cli.offline import run_offline
    from infra.config import load_raw

    raw = load_raw(stack)
    values = raw.values | {"apiKey": FAKE_API_KEY, "hfToken": FAKE_HF_TOKEN}
    result = run_offline(replace(raw, values=values, secret_keys=raw.secret_keys | {"apiKey", "hfToken"}))
    cloud = result.outputs["cloud"]
    for text in result.user_data.values():
        if cloud != "digitalocean":
            assert FAKE_API_KEY not in text and FAKE_HF_TOKEN not in text
            continue
        # No store on DigitalOcean: the values live in one 0600 file and nowhere else.
        files = node_files(text)
        assert "LLM_DEPLOY_SECRET_STORE=inline" in files["/etc/llm-deploy/node.env"].text
        assert [path for path, f in files.items() if FAKE_API_KEY in f.text] == ["/etc/llm-deploy/secrets.env"]
        assert files["/etc/llm-deploy/secrets.env"].permissions == "0600"
        assert FAKE_HF_TOKEN in files["/etc/llm-deploy/secrets.env"].text


def test_bad_input_is_refused_naming_the_field():
    case = CASES["aws-ssm-driver-image"]
    with pytest.raises(ValueError, match=r"upstreams: unknown service kind 'chat'"):
        render_user_data(case.group, case.target, case.secrets, {"chat": "http://10.0.0.1"})
    with pytest.raises(ValueError, match=r"upstreams\[llm\]"):
        render_user_data(CASES["aws-cpu"].group, CASES["aws-cpu"].target, AWS_STORE, {"llm": "http://10.0.0.1/v1; evil"})
    with pytest.raises(ValueError, match="secrets.api_key"):
        render_user_data(group("g", offer("digitalocean", "x", "H100", 1, "hopper"), svc("llm")),
                         BootTarget("digitalocean", True), InlineSecrets('key"; rm -rf /'))  # fmt: skip
    with pytest.raises(ValueError, match="secrets.kind"):
        render_user_data(case.group, case.target, OOS_STORE)
    with pytest.raises(ValueError, match="aws has a secret store"):
        render_user_data(case.group, case.target, InlineSecrets(FAKE_API_KEY))
    with pytest.raises(ValueError, match="target.cloud"):
        render_user_data(case.group, BootTarget("alicloud", False), case.secrets)
    with pytest.raises(ValueError, match="target.os_release"):
        render_user_data(case.group, BootTarget("aws", True, os_release="centos-7"), case.secrets)
    with pytest.raises(ValueError, match="needs 8 GPUs"):
        render_user_data(group("g", offer("aws", "g6e.12xlarge", "L40S", 4, "89"), svc("llm", tp=8)), case.target, AWS_STORE)
    with pytest.raises(ValueError, match="needs a GPU"):
        render_user_data(group("g", offer("aws", "c7i", None, 0, None), svc("llm", accelerator="cpu")), case.target, AWS_STORE)


# --- the gateway under the real nginx ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stub:
    """A stand-in for vLLM/TEI (or another node's gateway): answers with its name, the path and the auth header."""

    def __init__(self, name: str) -> None:
        self.name, self.healthy, self.hits = name, True, []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def answer(self) -> None:
                if self.path == "/health":
                    self.send_response(200 if stub.healthy else 503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                stub.hits.append(self.path)
                if self.path == "/v1/chat/completions":  # a stream: two events a second apart
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    for event in (b"data: one\n\n", b"data: two\n\n"):
                        self.wfile.write(event)
                        self.wfile.flush()
                        time.sleep(1.0)
                    return
                body = json.dumps({"stub": stub.name, "path": self.path, "auth": self.headers.get("Authorization")}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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
    }
    for path, file in files.items():
        if path.startswith("/etc/llm-deploy/"):
            target = root / "etc" / path.removeprefix("/etc/llm-deploy/")
            text = file.text
            if path.endswith("node.env"):  # node.env sets these paths itself: move them after it does
                text += "".join(f"{k}={v}\n" for k, v in moved.items())
            target.write_text(text)
            target.chmod(int(file.permissions, 8))
    return Node(root, {**os.environ, **moved, "LLM_DEPLOY_HEALTH_INTERVAL": "1"})


def test_node_tool_writes_root_only_secret_files(tmp_path):
    node = make_node(tmp_path, CASES["digitalocean-inline-driver-image"])
    node.tool("secrets")
    for path in (node.etc / "hf.env", tmp_path / "nginx" / "auth.conf"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert (node.etc / "hf.env").read_text() == f"HF_TOKEN={FAKE_HF_TOKEN}\n"
    assert f'"Bearer {FAKE_API_KEY}" 1;' in (tmp_path / "nginx" / "auth.conf").read_text()
    # A key that could break out of the nginx string is refused, and nothing is rewritten.
    (node.etc / "secrets.env").write_text("LLM_DEPLOY_API_KEY='abc\" 1; default 1; \"'\n")
    refused = node.tool("secrets", check=False)
    assert refused.returncode != 0
    assert f'"Bearer {FAKE_API_KEY}" 1;' in (tmp_path / "nginx" / "auth.conf").read_text()


@pytest.mark.parametrize("key", [FAKE_API_KEY, USER_API_KEY], ids=["generated-key", "128-character-key"])
def test_gateway_config_passes_nginx_t_as_deployed(tmp_path, key):
    """The config exactly as a node gets it (port 80, both stacks), with only the key file moved.

    nginx's default map_hash_bucket_size fails this for the generated 40-character key.
    """
    nginx = need("nginx")
    case = CASES["digitalocean-inline-driver-image"]
    node = make_node(tmp_path, replace(case, secrets=InlineSecrets(key, FAKE_HF_TOKEN)))
    node.tool("secrets")
    gateway = (
        (node.etc / "gateway.conf").read_text().replace("/etc/nginx/llm-deploy/auth.conf", str(tmp_path / "nginx" / "auth.conf"))
    )
    assert gateway.count(str(tmp_path)) == 1 and "listen 80 default_server;" in gateway
    (tmp_path / "gateway.conf").write_text(gateway)
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"pid {tmp_path}/nginx.pid;\nevents {{}}\nhttp {{\n    include {tmp_path}/gateway.conf;\n}}\n")
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(conf)],
                            check=False, capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    assert f'"Bearer {key}" 1;' in (tmp_path / "nginx" / "auth.conf").read_text()


def test_node_tool_refuses_a_key_longer_than_the_gateway_holds(tmp_path):
    node = make_node(tmp_path, replace(CASES["digitalocean-inline-driver-image"], secrets=InlineSecrets("k" * 241)))
    refused = node.tool("secrets", check=False)
    assert refused.returncode != 0 and not (tmp_path / "nginx" / "auth.conf").exists()


@pytest.fixture
def gateway(tmp_path):
    """nginx on a loopback port with this node's gateway config; llm and embedding local, rerank on another node."""
    nginx = need("nginx")
    stubs = {kind: Stub(kind) for kind in ("llm", "embedding", "rerank-node")}
    node_group = group(
        "llm-embed", offer("digitalocean", "gpu-l40sx1-48gb", "L40S", 1, "89", 48),
        svc("llm", port=stubs["llm"].port), svc("embedding", port=stubs["embedding"].port),
    )  # fmt: skip
    upstreams = {"rerank": f"http://127.0.0.1:{stubs['rerank-node'].port}"}
    node = make_node(tmp_path, Case(node_group, BootTarget("digitalocean", True), InlineSecrets(FAKE_API_KEY), upstreams))
    node.tool("secrets")
    port = free_port()
    config = render_gateway(
        node_group, upstreams, listen=[f"127.0.0.1:{port}"],
        auth_file=str(tmp_path / "nginx" / "auth.conf"), health_file=str(tmp_path / "run" / "healthy"),
        service_health_dir=str(tmp_path / "run" / "healthy-services"),
    )  # fmt: skip
    (tmp_path / "gateway.conf").write_text(config)
    temp = "".join(f"    {d}_temp_path {tmp_path}/{d};\n" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach the health file under tmp_path
    (tmp_path / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {tmp_path}/nginx.pid;\nevents {{}}\n"
        f"http {{\n    access_log off;\n{temp}    include {tmp_path}/gateway.conf;\n}}\n"
    )
    process = subprocess.Popen(
        [nginx, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"]
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    else:
        process.kill()
        pytest.fail("nginx did not start: " + (tmp_path / "error.log").read_text())
    yield port, stubs, node
    process.terminate()
    process.wait(timeout=10)
    for stub in stubs.values():
        stub.close()


def request(port: int, path: str, key: str | None = FAKE_API_KEY, method: str = "POST", body: bytes = b"{}"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    conn.request(method, path, body=body if method == "POST" else None, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def test_gateway_routes_every_path_to_its_service(gateway):
    port, stubs, _ = gateway
    expected = {"llm": "llm", "embedding": "embedding", "rerank": "rerank-node"}
    for kind, paths in SERVICE_PATHS.items():
        for path in paths:
            if path == "/v1/chat/completions":
                continue  # streamed: its own test
            status, data = request(port, path)
            assert status == 200, (path, data)
            answer = json.loads(data)
            assert (answer["stub"], answer["path"]) == (expected[kind], path)
    # The other node group's gateway checks the key again: it is passed through.
    assert json.loads(request(port, "/rerank")[1])["auth"] == f"Bearer {FAKE_API_KEY}"
    # vLLM also serves /v1/embeddings and /health: the gateway, not luck, decides who answers.
    assert "/v1/embeddings" not in stubs["llm"].hits


def test_gateway_refuses_requests_without_the_key(gateway):
    port, stubs, _ = gateway
    for path in (*[p for paths in SERVICE_PATHS.values() for p in paths], "/v1/unknown", "/v1/models"):
        for key in (None, "wrong-key", FAKE_API_KEY + "x"):
            status, data = request(port, path, key=key)
            assert status == 401, (path, key, status)
            assert json.loads(data)["error"]["code"] == "invalid_api_key"
    assert all(not stub.hits for stub in stubs.values())


def test_gateway_unknown_paths_are_404(gateway):
    port, _, _ = gateway
    assert request(port, "/v1/unknown")[0] == 404
    assert request(port, "/health", key=None, method="GET")[0] == 404  # the services' own health stays inside
    assert request(port, "/metrics", key=None, method="GET")[0] == 404
    assert request(port, "/embed_all")[0] == 404


def test_gateway_healthz_follows_the_local_services(gateway):
    port, stubs, node = gateway
    assert request(port, "/healthz", key=None, method="GET")[0] == 503  # nothing probed yet
    assert node.tool("health", "--once").returncode == 0
    status, data = request(port, "/healthz", key=None, method="GET")
    assert (status, json.loads(data)["status"]) == (200, "ok")
    stubs["embedding"].healthy = False
    assert node.tool("health", "--once", check=False).returncode != 0
    assert request(port, "/healthz", key=None, method="GET")[0] == 503
    assert "embedding=503" in (node.root / "run" / "healthy.services").read_text()
    # Each service's own health, for load balancers that route by path: no key needed, like /healthz.
    assert request(port, "/healthz/llm", key=None, method="GET")[0] == 200
    assert request(port, "/healthz/embedding", key=None, method="GET")[0] == 503
    assert request(port, "/healthz/rerank", key=None, method="GET")[0] == 503  # served by another node
    stubs["embedding"].healthy = True
    assert node.tool("health", "--once").returncode == 0
    assert request(port, "/healthz/embedding", key=None, method="GET")[0] == 200


def test_gateway_streams_without_buffering_and_limits_bodies(gateway):
    port, _, _ = gateway
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    started = time.monotonic()
    conn.request("POST", "/v1/chat/completions", body=b"{}", headers={"Authorization": f"Bearer {FAKE_API_KEY}"})
    response = conn.getresponse()
    assert response.status == 200
    first = response.read1(64)
    assert first.startswith(b"data: one") and time.monotonic() - started < 0.9  # not held back until the end
    assert b"data: two" in response.read()
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("POST", "/embed")
    conn.putheader("Authorization", f"Bearer {FAKE_API_KEY}")
    conn.putheader("Content-Length", str(64 * 1024 * 1024))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()


# --- Alibaba Cloud: the signed OOS call ----------------------------------------------------------


def load_oos_module():
    spec = importlib.util.spec_from_file_location("alicloud_oos", FILES / "alicloud_oos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_oos_signature_matches_alibabas_documented_example():
    params = {
        "AccessKeyId": "testid", "Action": "DescribeRegions", "Format": "XML", "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "SignatureVersion": "1.0",
        "Timestamp": "2016-02-23T12:46:24Z", "Version": "2014-05-26",
    }  # fmt: skip
    assert load_oos_module().sign("GET", params, "testsecret") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_oos_fetch_uses_the_instance_role_and_decrypts():
    """The script against stand-ins for the metadata service and OOS: token, role, signed GetSecretParameter."""
    module = load_oos_module()
    seen: dict[str, object] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def reply(self, code: int, body: str) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body.encode())))
            self.end_headers()
            self.wfile.write(body.encode())

        def do_PUT(self) -> None:
            seen["ttl"] = self.headers.get("X-aliyun-ecs-metadata-token-ttl-seconds")
            self.reply(200, "metadata-token")

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path.startswith("/latest/meta-data/ram/security-credentials/"):
                seen.setdefault("tokens", []).append(self.headers.get("X-aliyun-ecs-metadata-token"))
                role = url.path.rsplit("/", 1)[1]
                if not role:
                    return self.reply(200, "llm-deploy-node-role\n")
                assert role == "llm-deploy-node-role"
                creds = {
                    "AccessKeyId": "STS.id",
                    "AccessKeySecret": "sts-secret",
                    "SecurityToken": "sts-token",
                    "Code": "Success",
                }
                return self.reply(200, json.dumps(creds))
            params = dict(parse_qsl(url.query))
            signature = params.pop("Signature")
            seen["params"], seen["valid"] = params, signature == module.sign("GET", params, "sts-secret")
            self.reply(200, json.dumps({"Parameter": {"Name": params["Name"], "Value": FAKE_API_KEY}}))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    env = {**os.environ, "ALICLOUD_METADATA_URL": base, "ALICLOUD_OOS_ENDPOINT": base}
    try:
        out = subprocess.run(["python3", str(FILES / "alicloud_oos.py"), "ap-southeast-1", "llm-deploy-test-api-key"],
                             check=False, env=env, capture_output=True, text=True, timeout=30)  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert out.returncode == 0, out.stderr
    assert out.stdout == FAKE_API_KEY and FAKE_API_KEY not in out.stderr
    assert seen["tokens"] == ["metadata-token", "metadata-token"] and seen["valid"] is True
    params = seen["params"]
    assert params["Action"] == "GetSecretParameter" and params["WithDecryption"] == "true"
    assert (params["Name"], params["RegionId"], params["SecurityToken"]) == (
        "llm-deploy-test-api-key",
        "ap-southeast-1",
        "sts-token",
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_password_ssh_is_off_on_every_node(name):
    """DigitalOcean sets a root password on a droplet without SSH keys: only keys may log in."""
    assert yaml.safe_load(CASES[name].render())["ssh_pwauth"] is False


def test_ssh_keys_are_authorized_only_when_given(rendered):
    assert yaml.safe_load(rendered["aws-ssm-driver-image"])["ssh_authorized_keys"] == [OPS_KEY]
    assert "ssh_authorized_keys" not in yaml.safe_load(rendered["aws-cpu"])


def test_vllm_compile_cache_is_on_the_cache_disk(rendered, tmp_path):
    conf = node_files(rendered["aws-tp4-l40s"])["/etc/llm-deploy/services/llm.conf"].text
    docker_args = bash_array(conf, "SERVICE_DOCKER_ARGS", tmp_path)
    volumes = [docker_args[i + 1] for i, arg in enumerate(docker_args) if arg == "-v"]
    assert f"{CACHE_DIR}/vllm:/root/.cache/vllm" in volumes  # --rm containers otherwise compile again at each start


def test_services_start_after_the_cache_disk_is_mounted(rendered):
    unit = node_files(rendered["alicloud-oos-no-driver"])["/etc/systemd/system/llm-deploy@.service"].text
    assert f"RequiresMountsFor={CACHE_DIR}\n" in unit


def test_tei_takes_the_bodies_the_gateway_lets_through(rendered, tmp_path):
    conf = node_files(rendered["aws-ssm-driver-image"])["/etc/llm-deploy/services/embedding.conf"].text
    assert int(flag(bash_array(conf, "SERVICE_ARGS", tmp_path), "--payload-limit")) == MAX_BODY_BYTES
    assert f"client_max_body_size {MAX_BODY_BYTES // 2**20}m;" in node_files(rendered["aws-ssm-driver-image"])["/etc/llm-deploy/gateway.conf"].text


def test_encoders_sharing_vllms_gpu_wait_for_it(rendered, tmp_path):
    shared = node_files(rendered["aws-tp4-l40s"])  # TEI on GPU 0 of the four vLLM spans
    assert bash_array(shared["/etc/llm-deploy/services/embedding.conf"].text, "SERVICE_WAITS_FOR", tmp_path) == ["llm"]
    assert "\nSERVICE_WAITS_FOR=()\n" in shared["/etc/llm-deploy/services/llm.conf"].text
    split = group("two", offer("aws", "g6.12xlarge", "L4", 4, "89", 24), svc("llm", tp=2), svc("embedding"), svc("rerank"))
    assert {launch.service.name: launch.waits_for for launch in service_launches(split)} == {"llm": (), "embedding": (), "rerank": ()}
    cpu = service_launches(CASES["aws-cpu"].group)
    assert all(launch.waits_for == () for launch in cpu)


def test_an_aws_gpu_group_with_instance_store_nvme_gets_the_local_cache_and_a_cpu_group_does_not():
    """The placed plan says where the local NVMe is; the node learns it from node.env (and nothing else does)."""
    (gpu,) = place(parse_config(load_raw("prod", stacks_dir=STACKS_DIR))).node_groups
    assert gpu.offer.instance_type == "p5.4xlarge" and gpu.storage.instance_store_gb == 3800
    cpu = node_group("encoders", offer("aws", "c7i.xlarge", None, 0, None), 1,
                     [svc("embedding", accelerator="cpu"), svc("rerank", accelerator="cpu")], [1.1, 1.1])  # fmt: skip
    for placed, target, line in ((gpu, BootTarget("aws", True), "LLM_DEPLOY_LOCAL_CACHE=/opt/dlami/nvme"),
                                 (cpu, BootTarget("aws", False), "LLM_DEPLOY_LOCAL_CACHE=''")):  # fmt: skip
        env = node_files(render_user_data(placed, target, AWS_STORE))["/etc/llm-deploy/node.env"].text
        assert f"{line}\n" in env, env
