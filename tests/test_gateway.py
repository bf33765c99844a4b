"""bootstrap/gateway.py: the node gateway under the real nginx, with stand-ins for the model servers.

Where nginx is missing the test skips locally with the reason, and fails when CI is set.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bootstrap import BootTarget, InlineSecrets, render_gateway
from bootstrap.gateway import NODE_HEADER
from infra.plan import SERVICE_PATHS
from tests.helpers import CASES, FAKE_API_KEY, FAKE_HF_TOKEN, USER_API_KEY, Case, group, make_node, need, offer, svc


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stub:
    """A stand-in for vLLM/TEI (or another node's gateway): answers with its name, the path and the auth header."""

    def __init__(self, name: str, port: int = 0) -> None:
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

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def nginx_serving(tmp_path: Path, config: str, port: int):
    """The real nginx running CONFIG (a rendered gateway listening on 127.0.0.1:PORT) until the block ends."""
    nginx = need("nginx")
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
    try:
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def node_gateway(tmp_path: Path, node_group, upstreams=None) -> tuple[str, int]:
    """The node group's gateway config with a loopback port and every file under tmp_path (as make_node moves them)."""
    port = free_port()
    config = render_gateway(
        node_group, upstreams, listen=[f"127.0.0.1:{port}"],
        auth_file=str(tmp_path / "nginx" / "auth.conf"), health_file=str(tmp_path / "run" / "healthy"),
        service_health_dir=str(tmp_path / "run" / "healthy-services"), drain_file=str(tmp_path / "run" / "draining"),
    )  # fmt: skip
    return config, port


@pytest.fixture
def gateway(tmp_path):
    """nginx on a loopback port with this node's gateway config; llm and embedding local, rerank on another node."""
    stubs = {kind: Stub(kind) for kind in ("llm", "embedding", "rerank-node")}
    node_group = group(
        "llm-embed", offer("digitalocean", "gpu-l40sx1-48gb", "L40S", 1, "89", 48),
        svc("llm", port=stubs["llm"].port), svc("embedding", port=stubs["embedding"].port),
    )  # fmt: skip
    upstreams = {"rerank": f"http://127.0.0.1:{stubs['rerank-node'].port}"}
    node = make_node(tmp_path, Case(node_group, BootTarget("digitalocean", True), InlineSecrets(FAKE_API_KEY), upstreams))
    node.tool("secrets")
    config, port = node_gateway(tmp_path, node_group, upstreams)
    with nginx_serving(tmp_path, config, port):
        yield port, stubs, node
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


def test_gateway_healthz_names_the_node_healthy_or_not(gateway):
    """The health gate tells which node a load balancer forwarded to by this header: the node's hostname
    (a droplet's name), on 503 as on 200, and on /healthz only."""
    port, _, node = gateway

    def answer(path: str) -> tuple[int, str | None]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        conn.close()
        return response.status, response.getheader(NODE_HEADER)

    assert answer("/healthz") == (503, socket.gethostname())
    assert node.tool("health", "--once").returncode == 0
    assert answer("/healthz") == (200, socket.gethostname())
    (node.root / "run" / "draining").touch()  # a draining node: still named, so a gate sees it leave
    assert answer("/healthz") == (503, socket.gethostname())
    (node.root / "run" / "draining").unlink()
    assert answer("/healthz/llm") == (200, None)
    assert answer("/v1/unknown")[1] is None
