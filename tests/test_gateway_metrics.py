"""The gateway's /metrics/<server>: each local server's own Prometheus metrics, behind the API key, under the real nginx."""

from __future__ import annotations

import json

import pytest

from bootstrap import BootTarget, InlineSecrets
from tests.helpers import FAKE_API_KEY, Case, consecutive_free_ports, group, make_node, offer, svc
from tests.test_gateway import Stub, nginx_serving, node_gateway, request


@pytest.fixture
def metrics_gateway(tmp_path):
    """Two vLLM replicas and an embedding TEI on the node, rerank on another node group."""
    llm_port = consecutive_free_ports(2)
    stubs = {"llm": Stub("llm", llm_port), "llm-replica-2": Stub("llm-replica-2", llm_port + 1), "embedding": Stub("embedding")}
    node_group = group(
        "llm-embed", offer("digitalocean", "gpu-h100x8-640gb", "H100", 8, "hopper", 80),
        svc("llm", port=llm_port, replicas_per_node=2), svc("embedding", port=stubs["embedding"].port),
    )  # fmt: skip
    upstreams = {"rerank": "http://10.0.0.9"}
    node = make_node(tmp_path, Case(node_group, BootTarget("digitalocean", True), InlineSecrets(FAKE_API_KEY), upstreams))
    node.tool("secrets")
    config, port = node_gateway(tmp_path, node_group, upstreams)
    with nginx_serving(tmp_path, config, port):
        yield port, stubs
    for stub in stubs.values():
        stub.close()


def test_each_local_server_serves_its_own_metrics_behind_the_key(metrics_gateway):
    port, stubs = metrics_gateway
    for name in stubs:
        assert request(port, f"/metrics/{name}", key=None, method="GET")[0] == 401
        status, body = request(port, f"/metrics/{name}", key="wrong-" + FAKE_API_KEY, method="GET")
        assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"
        status, body = request(port, f"/metrics/{name}", method="GET")
        assert status == 200 and json.loads(body) == {"stub": name, "path": "/metrics", "auth": f"Bearer {FAKE_API_KEY}"}
    assert all(stub.hits == ["/metrics"] for stub in stubs.values())  # refused requests never reached a server


def test_unknown_or_remote_servers_have_no_metrics_here(metrics_gateway):
    port, stubs = metrics_gateway
    for name in ("rerank", "llm-replica-3", "nope", "llm/extra"):
        assert request(port, f"/metrics/{name}", method="GET")[0] == 404, name
    assert request(port, "/metrics/rerank", key=None, method="GET")[0] == 401  # the key is checked first, as for /v1/*
    assert not any(stub.hits for stub in stubs.values())
