"""An on-prem stack's program under the mock engine: the resources, their order (host after host, the front
gateway last), secrets only as Pulumi secrets, and the node files the same as a cloud node's."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest
import yaml

from bootstrap import InlineSecrets, render_user_data
from components.onprem import OnPremDeployment
from components.onprem.layout import (
    FRONT_CONF,
    FRONT_DIR,
    FRONT_START,
    GATEWAY_HEALTHY,
    NOTHING_IN_FLIGHT,
    PROBE_INTERVAL_S,
    SERVICES_READY,
    before_script,
    node_files,
    nothing_in_flight,
    remove_script,
)
from infra.cli import offline
from infra.config import parse_config
from infra.placement import place
from tests.helpers import need
from tests.test_onprem import ENCODERS, LLM_32B, known, onprem

HOST_FILES = "pulumi-python:dynamic/onprem:HostFiles"
DEPENDENCIES: dict[str, list[str]] = {}  # URN → the URNs it depends on, of the last offline run
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


class DependencyRecordingMonitor(offline.UniqueUrnMonitor):
    def RegisterResource(self, request):
        DEPENDENCIES[self.make_urn(request.parent, request.type, request.name)] = list(request.dependencies)
        return super().RegisterResource(request)


def run(raw, monkeypatch):
    monkeypatch.setattr(offline, "UniqueUrnMonitor", DependencyRecordingMonitor)
    DEPENDENCIES.clear()
    return offline.run_offline(raw)


def named(result, token):
    return {r["name"]: r["inputs"] for r in result.resources if r["type"] == token}


def depends(name: str) -> list[str]:
    """The HostFiles a HostFiles waits for (the API key it carries is a dependency too)."""
    (urn,) = [u for u in DEPENDENCIES if u.endswith(f"::{name}")]
    return [u.rsplit("::", 1)[1] for u in DEPENDENCIES[urn] if HOST_FILES in u]


def split() -> dict:
    """The LLM on the L40S host, the encoders pinned to the L4 host: two node groups."""
    return {"hosts": [{"address": "10.0.0.11", "gpu": "L40S", "gpuCount": 2}, {"address": "10.0.0.12", "gpu": "L4", "gpuCount": 1}],
            "services": [LLM_32B, *({**e, "gpu": "L4"} for e in ENCODERS)]}


def test_each_host_gets_a_host_files_resource_after_the_previous_host_and_the_front_gateway_after_all(monkeypatch):
    three = onprem(hosts=[{"address": f"10.0.0.1{i}", "gpu": "L40S", "gpuCount": 2} for i in range(3)],
                   services=[{"name": "llm", "kind": "llm", "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
                              "maxModelLen": 8192, "replicas": 2}],
                   sshKnownHosts=known("10.0.0.10", "10.0.0.11", "10.0.0.12"))
    result = run(three, monkeypatch)
    tokens = {r["type"] for r in result.resources}
    assert {"llm-deploy:onprem:Deployment", "llm-deploy:onprem:Network", "llm-deploy:onprem:NodeGroup",
            "llm-deploy:onprem:LoadBalancer", HOST_FILES} <= tokens
    hosts = named(result, HOST_FILES)
    assert sorted(hosts) == ["onprem-test-endpoint-front", "onprem-test-llm-0", "onprem-test-llm-1"]
    assert depends("onprem-test-llm-0") == []
    assert depends("onprem-test-llm-1") == ["onprem-test-llm-0"]
    assert sorted(depends("onprem-test-endpoint-front")) == ["onprem-test-llm-0", "onprem-test-llm-1"]
    assert [hosts[f"onprem-test-llm-{i}"]["host"]["address"] for i in (0, 1)] == ["10.0.0.10", "10.0.0.11"]
    assert result.outputs["upstreams"] == ["http://10.0.0.10:80/healthz", "http://10.0.0.11:80/healthz"]
    assert result.outputs["endpoint"] == "http://10.0.0.10:8880"


def test_secrets_are_pulumi_secrets_and_the_plain_files_hold_none(monkeypatch):
    raw = onprem(apiKey="sk-onprem-" + "a" * 30, sshPrivateKey="-----BEGIN OPENSSH PRIVATE KEY-----", tlsCertificate=PEM,
                 tlsPrivateKey="-----BEGIN PRIVATE KEY-----", domain="llm.acme-inference.io")
    raw.secret_keys.add("apiKey")
    result = run(raw, monkeypatch)
    for name, inputs in named(result, HOST_FILES).items():
        assert inputs["private_key"] == "[secret]" and inputs["secret_files"] == "[secret]", name
        assert "sk-onprem" not in str(inputs) and "PRIVATE KEY" not in str(inputs), name
        if name.endswith("-front"):
            assert inputs["files"][0]["path"] == FRONT_CONF
            assert "listen 443 ssl" in inputs["files"][0]["content"] and "server_name llm.acme-inference.io" in inputs["files"][0]["content"]
        else:
            assert "/etc/llm-deploy/secrets.env" not in [f["path"] for f in inputs["files"]]
    assert result.outputs["endpoint"] == "https://llm.acme-inference.io"


def test_the_node_files_are_bootstraps_render_for_the_host(monkeypatch):
    """Exactly cloud-init's write_files (less the secret file, which goes as a secret) and its runcmd."""
    raw = onprem(apiKey="k" * 40)
    raw.secret_keys.add("apiKey")
    plan = place(parse_config(raw))
    result = run(raw, monkeypatch)
    for group in plan.node_groups:
        rendered = render_user_data(group, OnPremDeployment.target(plan, group), InlineSecrets("k" * 40))
        files, runcmd = node_files(rendered)
        inputs = named(result, HOST_FILES)[f"onprem-test-{group.name}-0"]
        assert [(f["path"], f["content"], f["mode"]) for f in inputs["files"]] == [
            (f.path, f.content, f.mode) for f in files if f.path != "/etc/llm-deploy/secrets.env"]
        assert all(" ".join(c) in inputs["commands"].replace("'", "") for c in runcmd)
        assert yaml.safe_load(rendered)["write_files"][-1]["permissions"] == "0600"


def test_the_front_gateway_admits_allowed_cidrs_only_and_routes_each_path_to_its_group(monkeypatch):
    result = run(onprem(allowedCidrs=["10.20.0.0/16", "192.168.1.0/24"], **split()), monkeypatch)
    conf = named(result, HOST_FILES)["onprem-test-endpoint-front"]["files"][0]["content"]
    assert "allow 10.20.0.0/16;\n    allow 192.168.1.0/24;\n    deny all;" in conf
    assert "location ^~ /v1/chat/completions {\n        proxy_pass http://llm_deploy_llm;" in conf
    assert "location ^~ /rerank {\n        proxy_pass http://llm_deploy_embedding_rerank;" in conf


@pytest.mark.parametrize("own", [True])
def test_with_the_users_own_load_balancer_there_is_no_front_gateway_and_the_upstreams_are_printed(own, monkeypatch):
    result = run(onprem(ownLoadBalancer=own, **split()), monkeypatch)
    assert "onprem-test-endpoint-front" not in named(result, HOST_FILES)
    assert result.outputs["upstreams"] == ["http://10.0.0.11:80/healthz", "http://10.0.0.12:80/healthz"]


@pytest.mark.parametrize("tls", [False, True], ids=["http", "tls"])
def test_the_front_gateway_config_passes_nginx_t(tmp_path, monkeypatch, tls):
    """The front gateway's files as the host gets them, under the real nginx (with a throw-away certificate)."""
    nginx, openssl = need("nginx"), need("openssl")
    extra = {"tlsCertificate": PEM, "tlsPrivateKey": "k", "domain": "llm.acme-inference.io"} if tls else {}
    result = run(onprem(**split(), **extra), monkeypatch)
    files = named(result, HOST_FILES)["onprem-test-endpoint-front"]["files"]
    for file in files:
        target = tmp_path / file["path"].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(file["content"].replace(FRONT_DIR, str(tmp_path / FRONT_DIR.lstrip("/"))))
    if tls:
        subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=llm.acme-inference.io", "-days", "1",
                        "-keyout", str(tmp_path / FRONT_DIR.lstrip("/") / "tls.key"), "-out", str(tmp_path / FRONT_DIR.lstrip("/") / "tls.crt")],
                       check=True, capture_output=True)  # fmt: skip
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"pid {tmp_path}/nginx.pid;\nevents {{}}\nhttp {{\n    include {tmp_path}{FRONT_CONF};\n}}\n")
    checked = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(conf)],
                             check=False, capture_output=True, text=True)  # fmt: skip
    assert checked.returncode == 0 and "test is successful" in checked.stderr, checked.stderr


def test_the_front_gateways_probe_and_the_scripts_run_over_ssh_pass_shellcheck(tmp_path, monkeypatch):
    shellcheck = need("shellcheck")
    result = run(onprem(**split()), monkeypatch)
    inputs = named(result, HOST_FILES)
    probe = next(f["content"] for f in inputs["onprem-test-endpoint-front"]["files"] if f["path"].endswith("front-health"))
    scripts = {"probe": probe, "start": "#!/bin/sh\n" + inputs["onprem-test-llm-0"]["commands"], "front-start": "#!/bin/sh\n" + FRONT_START,
               "before": "#!/bin/sh\n" + before_script(), "ready": "#!/bin/sh\n" + SERVICES_READY,
               "healthy": "#!/bin/sh\n" + GATEWAY_HEALTHY, "in-flight": "#!/bin/sh\n" + NOTHING_IN_FLIGHT,
               "remove": "#!/bin/sh\n" + remove_script(["/etc/llm-deploy/node.env"], ["llm"], ["vllm/vllm-openai:v0.19.1"],
                                                        {"nginx": "absent", "daemon.json": "e30K", "default-site": "present"})}
    for name, text in scripts.items():
        (tmp_path / name).write_text(text)
        checked = subprocess.run([shellcheck, str(tmp_path / name)], check=False, capture_output=True, text=True)
        assert checked.returncode == 0, f"{name}:\n{checked.stdout}"


@pytest.mark.parametrize("family, address", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_the_in_flight_check_sees_each_open_connection_to_the_gateway_port_until_it_closes(family, address, tmp_path):
    """The check a rolling change waits on, run by /bin/sh against real sockets on a host with no `ss` (a minimal
    image: only sh and awk on the PATH): it fails while a connection to the port is established (what `ss state
    established` lists, where ss exists), passes once it is closed, and does not count a connection to another port."""
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    for tool in ("sh", "awk"):
        (tmp_path / tool).symlink_to(shutil.which(tool))
    with socket.socket(family) as listener, socket.socket(family) as other:
        listener.bind((address, 0))
        listener.listen()
        other.bind((address, 0))
        other.listen()
        port = listener.getsockname()[1]

        def check() -> int:
            command = [str(tmp_path / "sh"), "-c", nothing_in_flight(port)]
            return subprocess.run(command, env={"PATH": str(tmp_path)}, check=False, capture_output=True).returncode

        assert check() == 0  # listening only
        with socket.create_connection((address, other.getsockname()[1])), other.accept()[0]:
            assert check() == 0  # a connection to another port
        client = socket.create_connection((address, port))
        served, _ = listener.accept()
        assert check() == 1
        if shutil.which("ss"):
            listed = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"], capture_output=True, text=True, check=True)
            assert listed.stdout.strip()
        client.close()
        served.close()
        deadline = time.monotonic() + 5
        while check() != 0:
            assert time.monotonic() < deadline, "the closed connection still counts as in flight"
            time.sleep(0.1)


def test_air_gapped_hosts_pull_the_pinned_images_from_the_mirror_and_load_the_staged_weights(monkeypatch):
    result = run(onprem(imageRegistry="registry.lan:5000", modelSource={"path": "/srv/models"}), monkeypatch)
    files = {f["path"]: f["content"] for f in named(result, HOST_FILES)["onprem-test-llm-embedding-rerank-0"]["files"]}
    llm, rerank = files["/etc/llm-deploy/services/llm.conf"], files["/etc/llm-deploy/services/rerank.conf"]
    assert "SERVICE_IMAGE=registry.lan:5000/vllm/vllm-openai:v0.19.1" in llm
    assert "SERVICE_IMAGE=registry.lan:5000/huggingface/text-embeddings-inference:89-1.9" in rerank
    assert "/srv/models:/models:ro" in llm and "/models/deepseek-ai/DeepSeek-R1-Distill-Qwen-32B --served-model-name deepseek-ai/DeepSeek-R1-Distill-Qwen-32B" in llm
    assert "--model-id /models/BAAI/bge-reranker-large" in rerank
    assert "LLM_DEPLOY_CUDA_CHECK_IMAGE=registry.lan:5000/nvidia/cuda:12.9.1-base-ubuntu22.04" in files["/etc/llm-deploy/node.env"]


PROBE_STUB = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

flag = Path(sys.argv[2])


class Health(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        body = b"" if flag.exists() else b'{"status":"draining"}\\n' if Path(f"{flag}.draining").exists() else b'{"status":"unavailable"}\\n'
        if body:  # each answer but 200 recorded, as the node's gateway gives it
            with open(f"{flag}.answers", "a") as answers:
                answers.write(body.decode())
        self.send_response(503 if body else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer((sys.argv[1], 80), Health).serve_forever()
"""


def test_the_front_probe_takes_a_host_out_after_two_failed_probes_at_once_when_draining_and_back_after_one(tmp_path):
    """The probe script itself (real bash and curl) in a network namespace of its own, two stand-in hosts on
    127.0.0.2 and 127.0.0.3 port 80; `systemctl reload nginx` recorded by a stand-in systemctl."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a network namespace of its own")
    need("curl")
    from components.onprem.layout import front_health_script
    from infra.plan import Host

    hosts = [Host("127.0.0.2"), Host("127.0.0.3")]
    script = front_health_script([("llm", hosts)]).replace(FRONT_DIR, str(tmp_path)).replace(f"sleep {PROBE_INTERVAL_S}\n", "sleep 1\n")
    (tmp_path / "probe").write_text(script)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/systemctl").write_text(f"#!/bin/sh\necho \"$*\" >> {tmp_path}/reloads\n")
    (tmp_path / "bin/systemctl").chmod(0o755)
    (tmp_path / "stub.py").write_text(PROBE_STUB)
    for host in hosts:
        (tmp_path / host.address).touch()
    runner = (f"ip link set lo up; for a in 127.0.0.2 127.0.0.3; do python3 {tmp_path}/stub.py $a {tmp_path}/$a & done; sleep 1; "
              f"PATH={tmp_path}/bin:$PATH exec bash {tmp_path}/probe")
    probe = subprocess.Popen(["unshare", "-n", "bash", "-c", runner], start_new_session=True)
    upstream = tmp_path / "llm.upstream"

    def wait_for(text: str, within: float = 15) -> float:
        started = time.monotonic()
        while upstream.read_text() != text if upstream.exists() else True:
            assert time.monotonic() - started < within, f"upstream still {upstream.read_text() if upstream.exists() else None!r}"
            time.sleep(0.1)
        return time.monotonic() - started

    both = "server 127.0.0.2:80 max_fails=1 fail_timeout=10s;\nserver 127.0.0.3:80 max_fails=1 fail_timeout=10s;\n"
    try:
        wait_for(both)
        first_out = both.replace("10s;\nserver 127.0.0.3", "10s down;\nserver 127.0.0.3")
        (tmp_path / "127.0.0.2").unlink()  # its /healthz 503
        wait_for(first_out)
        assert (tmp_path / "127.0.0.2.answers").read_text().count("unavailable") == 2, "out after two failed probes, not one"
        (tmp_path / "127.0.0.2").touch()
        wait_for(both)
        (tmp_path / "127.0.0.2.answers").unlink()
        (tmp_path / "127.0.0.2.draining").touch()  # `llm-deploy drain`: its /healthz 503 {"status":"draining"}
        (tmp_path / "127.0.0.2").unlink()
        wait_for(first_out)
        assert (tmp_path / "127.0.0.2.answers").read_text() == '{"status":"draining"}\n', "out at the first answer draining"
        (tmp_path / "127.0.0.2.draining").unlink()
        (tmp_path / "127.0.0.2").touch()
        wait_for(both)
        (tmp_path / "127.0.0.3").unlink()
        (tmp_path / "127.0.0.2").unlink()
        time.sleep(4)
        assert upstream.read_text() == both  # none healthy: all kept, nginx answers 502 rather than refusing to load
        assert (tmp_path / "reloads").read_text().splitlines() == ["reload nginx"] * 5
    finally:
        os.killpg(probe.pid, 15)
        probe.wait(timeout=10)
