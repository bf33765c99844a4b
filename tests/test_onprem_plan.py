"""An on-prem stack's program under the mock engine: the resources, their order (host after host, the front
gateway last), secrets only as Pulumi secrets, and the node files the same as a cloud node's."""

from __future__ import annotations

import pytest
import yaml

from bootstrap import InlineSecrets, render_user_data
from components.onprem import OnPremDeployment
from components.onprem.layout import FRONT_CONF, node_files
from infra.cli import offline
from infra.config import parse_config
from infra.placement import place
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
