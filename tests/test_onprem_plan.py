"""An on-prem stack's program under the mock engine: the resources, their order (host after host, the front
gateway last), secrets only as Pulumi secrets, and the node files the same as a cloud node's."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from bootstrap import InlineSecrets, render_user_data
from components.onprem import OnPremDeployment
from components.onprem.layout import FRONT_CONF, FRONT_DIR, FRONT_START, HEALTHY, before_script, node_files, remove_script
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
        rendered = render_user_data(group, OnPremDeployment.boot_target(group), InlineSecrets("k" * 40))
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
               "before": "#!/bin/sh\n" + before_script(), "healthy": "#!/bin/sh\n" + HEALTHY,
               "remove": "#!/bin/sh\n" + remove_script(["/etc/llm-deploy/node.env"], ["llm"], ["vllm/vllm-openai:v0.19.1"],
                                                        {"nginx": "absent", "daemon.json": "e30K", "default-site": "present"})}
    for name, text in scripts.items():
        (tmp_path / name).write_text(text)
        checked = subprocess.run([shellcheck, str(tmp_path / name)], check=False, capture_output=True, text=True)
        assert checked.returncode == 0, f"{name}:\n{checked.stdout}"
