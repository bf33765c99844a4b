"""The health gate in real time: real sockets, the real clock, short bounds.

Nodes are small HTTP servers whose /healthz flips from 503 to 200 and names the node in the gateway's
header; the load balancer stand-in is as strict as DigitalOcean's: its own health check (interval,
healthy and unhealthy thresholds) decides which targets it forwards to, round robin, a new connection
per request, and 503 without a target header when none is healthy.
"""

from __future__ import annotations

import asyncio
import http.client
import http.server
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pulumi
import pytest
from pulumi.runtime import MockResourceArgs, rpc

from bootstrap.gateway import NODE_HEADER
from components.health_gate import HealthGate, HealthGateArgs, HealthGateProvider

CHECK_INTERVAL_S = 0.2  # the stand-in balancer's health check (DigitalOcean's: 10 s, 3 healthy / 3 unhealthy)
THRESHOLD = 2
POLL_S = 0.1  # the gate's interval


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


def reply(handler: http.server.BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    handler.send_response(status)
    for name, value in headers:
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class Node:
    """A node's gateway: /healthz 503 until `healthy_at` (monotonic), then 200; both name the node."""

    def __init__(self, name: str, healthy_after: float | None = 0.0) -> None:
        self.name = name
        self.healthy_at = None if healthy_after is None else time.monotonic() + healthy_after
        node = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                healthy = node.healthy_at is not None and time.monotonic() >= node.healthy_at
                body = b'{"status":"ok"}\n' if healthy else b'{"status":"unavailable"}\n'
                reply(self, 200 if healthy else 503, [(NODE_HEADER, node.name)], body)

            def log_message(self, *args) -> None:
                pass

        self.server = Server(Handler)


class Balancer:
    """Forwards to the targets its own health check passed (THRESHOLD checks in a row), round robin."""

    def __init__(self, targets: list[Node]) -> None:
        self.targets = targets
        self.streak = {t.name: 0 for t in targets}  # > 0: healthy checks in a row, < 0: failed ones
        self.in_rotation: set[str] = set()
        self.turn = 0
        self.stopped = threading.Event()
        balancer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                healthy = [t for t in balancer.targets if t.name in balancer.in_rotation]
                if not healthy:
                    reply(self, 503, [], b"")
                    return
                balancer.turn += 1
                status, headers, body = balancer.ask(healthy[balancer.turn % len(healthy)], self.path)
                relayed = [(n, v) for n, v in headers if n.lower() not in ("content-length", "connection", "date", "server")]
                reply(self, status, relayed, body)

            def log_message(self, *args) -> None:
                pass

        self.server = Server(Handler)
        self.checker = threading.Thread(target=self.check, daemon=True)
        self.checker.start()

    @staticmethod
    def ask(target: Node, path: str) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", target.server.server_address[1], timeout=2)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def check(self) -> None:
        while not self.stopped.wait(CHECK_INTERVAL_S):
            for target in list(self.targets):
                ok = self.ask(target, "/healthz")[0] == 200
                streak = self.streak.get(target.name, 0)
                self.streak[target.name] = max(streak, 0) + 1 if ok else min(streak, 0) - 1
                if self.streak[target.name] >= THRESHOLD:
                    self.in_rotation.add(target.name)
                elif self.streak[target.name] <= -THRESHOLD:
                    self.in_rotation.discard(target.name)

    def close(self) -> None:
        self.stopped.set()
        self.server.close()


@pytest.fixture
def cluster() -> Iterator[dict]:
    """The old node (healthy, in rotation) behind a balancer; each test adds the new one it needs."""
    made: dict = {"nodes": [Node("do-test-llm-0-aaaaaaa")]}
    made["balancer"] = Balancer(list(made["nodes"]))
    deadline = time.monotonic() + 5
    while "do-test-llm-0-aaaaaaa" not in made["balancer"].in_rotation and time.monotonic() < deadline:
        time.sleep(0.05)
    yield made
    made["balancer"].close()
    for node in made["nodes"]:
        node.server.close()


def props(balancer: Balancer, node: str, timeout_s: float, trigger: str = "401234567") -> dict:
    return {
        "url": f"{balancer.server.url}/healthz", "node": node, "header": NODE_HEADER, "trigger": trigger,
        "label": "node group 'llm', replica 2 of 2", "timeout_seconds": timeout_s, "interval_seconds": POLL_S,
        "healthy_after_seconds": None,
    }  # fmt: skip


def add(cluster: dict, node: Node, behind_balancer: bool = True) -> Node:
    cluster["nodes"].append(node)
    if behind_balancer:
        cluster["balancer"].targets.append(node)
    return node


def test_a_node_that_turns_healthy_within_the_bound_passes_once_the_balancer_forwards_to_it(cluster):
    new = add(cluster, Node("do-test-llm-1-bbbbbbb", healthy_after=1.5))
    start = time.monotonic()
    result = HealthGateProvider().create(props(cluster["balancer"], new.name, timeout_s=6))
    done = time.monotonic()
    elapsed = done - start
    # not before the node was healthy (its clock started when it was made, before `start`) and the balancer counted
    # THRESHOLD good checks; well within the bound
    assert done >= new.healthy_at + (THRESHOLD - 1) * CHECK_INTERVAL_S, done - new.healthy_at
    assert elapsed < 4.0, elapsed
    assert result.id == new.name
    assert result.outs["healthy_after_seconds"] == pytest.approx(elapsed, abs=0.2)
    assert new.name in cluster["balancer"].in_rotation


def test_a_node_never_healthy_fails_after_the_bound_naming_group_and_replica(cluster):
    new = add(cluster, Node("do-test-llm-1-bbbbbbb", healthy_after=None))
    start = time.monotonic()
    with pytest.raises(RuntimeError) as failed:
        HealthGateProvider().create(props(cluster["balancer"], new.name, timeout_s=2))
    elapsed = time.monotonic() - start
    assert 2.0 <= elapsed < 2.6, elapsed
    message = str(failed.value)
    assert "node group 'llm', replica 2 of 2" in message
    assert f"{new.name} did not answer" in message and "within 2 s" in message
    assert "do-test-llm-0-aaaaaaa (" in message  # the old node kept answering through the balancer


def test_a_healthy_node_the_balancer_never_forwards_to_fails(cluster):
    """Healthy on its own address, but not a target (untagged, or the firewall keeps the balancer out)."""
    new = add(cluster, Node("do-test-llm-1-bbbbbbb"), behind_balancer=False)
    assert Balancer.ask(new, "/healthz")[0] == 200
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="nodes that answered through the load balancer: do-test-llm-0-aaaaaaa"):
        HealthGateProvider().create(props(cluster["balancer"], new.name, timeout_s=1.5))
    assert 1.5 <= time.monotonic() - start < 2.1


def test_an_unreachable_balancer_fails_after_the_bound_and_says_what_it_saw():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nothing listens there once it is closed
    gate = {"url": f"http://127.0.0.1:{port}/healthz", "node": "n", "header": NODE_HEADER, "trigger": "1", "label": "node group 'llm', replica 1 of 1",
            "timeout_seconds": 1, "interval_seconds": POLL_S}  # fmt: skip
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"nodes that answered through the load balancer: none; last: URLError: .*refused"):
        HealthGateProvider().wait(gate)
    assert 1.0 <= time.monotonic() - start < 1.5


def test_an_update_waits_for_a_new_node_and_not_for_a_new_bound(cluster):
    provider = HealthGateProvider()
    old = props(cluster["balancer"], "do-test-llm-0-aaaaaaa", timeout_s=3, trigger="401234567")
    old["healthy_after_seconds"] = 0.4
    new = add(cluster, Node("do-test-llm-0-ccccccc", healthy_after=1.0))
    replaced = {**old, "node": new.name, "trigger": "409999999", "healthy_after_seconds": None}
    diff = provider.diff("do-test-llm-0-aaaaaaa", old, replaced)
    assert diff.changes and not diff.replaces and not diff.delete_before_replace
    start = time.monotonic()
    outs = provider.update("do-test-llm-0-aaaaaaa", old, replaced).outs
    assert new.healthy_at <= time.monotonic() < start + 3.0  # it waited for the node (healthy 1.0 s after it was made)
    assert outs["healthy_after_seconds"] >= 1.0
    # the same node with a longer bound: recorded at once, even with the balancer gone
    cluster["balancer"].close()
    longer = {**replaced, "timeout_seconds": 3600}
    assert provider.diff(new.name, outs, longer).changes
    start = time.monotonic()
    assert provider.update(new.name, outs, longer).outs["healthy_after_seconds"] == outs["healthy_after_seconds"]
    assert time.monotonic() - start < 0.1
    # nothing of the user's changed (the serialized provider and the measured time are outputs): no update
    assert not provider.diff(new.name, {**outs, "__provider": "old"}, {**replaced, "__provider": "new"}).changes


def serialized_by_the_program() -> str:
    """The `__provider` input of a HealthGate as the program declares it, under Pulumi's mock engine."""
    seen: list[MockResourceArgs] = []

    class Recording(pulumi.runtime.Mocks):
        def new_resource(self, args: MockResourceArgs):
            seen.append(args)
            return f"{args.name}-id", args.inputs

        def call(self, args):
            return {}, None

    pulumi.runtime.set_mocks(Recording(), project="llm-deploy", stack="do-test", preview=False)

    @pulumi.runtime.test
    def declare():
        args = HealthGateArgs(url="http://203.0.113.7/healthz", node="do-test-llm-0-aaaaaaa", trigger="401234567",
                              label="node group 'llm', replica 1 of 2", timeout_seconds=1800)  # fmt: skip
        return HealthGate("do-test-llm-0-healthy", args).id

    declare()
    (gate,) = seen
    assert gate.typ == "pulumi-python:dynamic/llm-deploy:HealthGate"
    assert rpc.is_rpc_secret(gate.inputs["__provider"])  # the pickle is a secret in state, though it holds none
    assert gate.inputs["timeout_seconds"] == 1800 and gate.inputs["header"] == NODE_HEADER
    return rpc.unwrap_rpc_secret(gate.inputs["__provider"])


HOST = """
import sys

class NoProjectCode:
    # the provider host has no project code to lean on: the state's pickle must carry all of it
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("components", "infra", "bootstrap", "tests"):
            raise ImportError(f"{name}: project code in the dynamic provider host")
        return None

sys.meta_path.insert(0, NoProjectCode())
import runpy
runpy.run_module("pulumi.dynamic.__main__", run_name="__main__")
"""


def test_the_serialized_gate_runs_in_pulumis_own_provider_host_without_the_project(cluster, tmp_path):
    """What `pulumi up` does: the provider pickled into the inputs, Pulumi's dynamic provider host (a process
    of its own, here without any project module importable) unpickling it and serving Create over gRPC."""
    import grpc
    from pulumi.runtime import proto, rpc
    from pulumi.runtime.proto import provider_pb2_grpc

    provider = serialized_by_the_program()
    host = subprocess.Popen([sys.executable, "-c", HOST], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = int(host.stdout.readline())
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = provider_pb2_grpc.ResourceProviderStub(channel)

        def create(gate: dict):
            loop = asyncio.new_event_loop()
            try:
                properties = loop.run_until_complete(rpc.serialize_properties({**gate, "__provider": provider}, {}))
            finally:
                loop.close()
            return stub.Create(proto.CreateRequest(urn="urn:pulumi:do-test::llm-deploy::gate::g", properties=properties), timeout=30)

        new = add(cluster, Node("do-test-llm-1-bbbbbbb", healthy_after=0.5))
        answer = create(props(cluster["balancer"], new.name, timeout_s=5))
        assert answer.id == new.name
        outs = rpc.deserialize_properties(answer.properties)
        assert 0.5 <= outs["healthy_after_seconds"] < 5
        with pytest.raises(grpc.RpcError) as failed:
            create(props(cluster["balancer"], "do-test-llm-1-never", timeout_s=1))
        assert "health gate: node group 'llm', replica 2 of 2: do-test-llm-1-never did not answer" in failed.value.details()
    finally:
        host.kill()
        host.wait(timeout=10)
        assert b"project code in the dynamic provider host" not in host.stderr.read()
