"""Draining a node: the real watcher (bootstrap/files/llm-deploy-metadata) against a metadata service as strict as
the cloud's, and the real nginx gateway turning every /healthz to 503 while requests in flight finish.

The watcher's addresses come from the cloud's record through the rendered node.env; the test points only its
base URL (and its poll interval) at the stub, which is tests/boot/cloud_endpoints.py, the boot test's own.
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from infra import clouds
from tests.helpers import CASES, FAKE_API_KEY, FILES, TOOL, make_node, node_files
from tests.test_gateway import Stub, free_port, nginx_serving, node_gateway, request

STUB = Path(__file__).parent / "boot" / "cloud_endpoints.py"
WATCHER = FILES / "llm-deploy-metadata"
SPOT = {"aws": "latest/meta-data/spot/instance-action", "alicloud": "latest/meta-data/instance/spot/termination-time"}
NOTICE = {"aws": '{"action": "terminate", "time": "2026-12-01T15:04:05Z"}', "alicloud": "2026-12-01T15:09:05Z"}


class Metadata:
    """cloud_endpoints.py's metadata service on a loopback port; items are files under `state`."""

    def __init__(self, cloud: str, state: Path) -> None:
        self.state, self.port = state, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, str(STUB), "metadata", cloud, "127.0.0.1", str(self.port), str(state)])
        deadline = time.monotonic() + 10
        while self.get("/")[0] == 0:
            assert time.monotonic() < deadline, "the metadata stub did not start"
            time.sleep(0.05)

    def set(self, item: str, value: str | None) -> None:
        path = self.state / item
        if value is None:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(value)

    def get(self, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, str]:
        request = urllib.request.Request(self.url + path, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, ""
        except OSError:
            return 0, ""

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def drained_node(tmp_path, request):
    """A node of the cloud (its gateway under the real nginx, its services stand-ins), its metadata stub, and
    a function that starts the watcher; everything stopped after."""
    cloud = request.param
    case = {"aws": CASES["aws-ssm-driver-image"], "alicloud": CASES["alicloud-oos-no-driver"]}[cloud]
    stubs = [Stub(s.name) for s in case.group.services]
    node_group = replace(
        case.group, services=tuple(replace(s, port=stub.port) for s, stub in zip(case.group.services, stubs, strict=True))
    )
    node = make_node(tmp_path, replace(case, group=node_group))
    metadata = Metadata(cloud, tmp_path / "metadata")
    with open(node.etc / "node.env", "a") as env:  # the watcher's one knob: where the metadata service is
        env.write(f"LLM_DEPLOY_METADATA_URL={metadata.url}\n")
    (tmp_path / "nginx").mkdir(exist_ok=True)
    (tmp_path / "nginx" / "auth.conf").write_text(
        f'map $http_authorization $llm_deploy_authorized {{\n    default 0;\n    "Bearer {FAKE_API_KEY}" 1;\n}}\n'
    )
    config, port = node_gateway(tmp_path, node_group)
    watchers: list[subprocess.Popen] = []

    def watch() -> subprocess.Popen:
        env = node.env | {"LLM_DEPLOY_TOOL": str(TOOL), "LLM_DEPLOY_NOTICE_INTERVAL": "0.5"}
        watchers.append(subprocess.Popen(["bash", str(WATCHER), "watch"], env=env, stderr=subprocess.PIPE, text=True))
        return watchers[-1]

    with nginx_serving(tmp_path, config, port):
        yield cloud, node_group, node, metadata, port, watch
    for watcher in watchers:
        watcher.terminate()
        watcher.wait(timeout=10)
    metadata.close()
    for stub in stubs:
        stub.close()


def healthz(port: int, path: str = "/healthz") -> int:
    return request(port, path, key=None, method="GET")[0]


def wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def progress_line(node, text: str) -> str:
    """The node's progress line containing `text`. The drain writes its flag (which nginx sees at once) before
    it logs the line, so the line may follow the 503 by a moment."""
    progress = node.root / "log" / "progress"

    def lines() -> list[str]:
        return [line for line in (progress.read_text() if progress.exists() else "").splitlines() if text in line]

    wait_for(lambda: bool(lines()), 3, f"no progress line with {text!r}")
    return lines()[0]


def test_the_metadata_stub_is_as_strict_as_the_cloud():
    """IMDSv2 (and Alibaba Cloud's hardened mode): no GET without a token; no token without its TTL header."""
    for cloud, refused in {"aws": 401, "alicloud": 403}.items():
        record = clouds.get(cloud).metadata
        ttl_header, token_header = record.token_ttl_header, record.token_header
        with tempfile.TemporaryDirectory() as state:
            metadata = Metadata(cloud, Path(state))
            try:
                assert metadata.get("/latest/api/token", method="PUT")[0] == 400
                assert metadata.get("/latest/api/token", {ttl_header: "21601"}, method="PUT")[0] == 400
                status, token = metadata.get("/latest/api/token", {ttl_header: "1"}, method="PUT")
                assert status == 200 and token
                assert metadata.get(f"/{SPOT[cloud]}")[0] == refused
                assert metadata.get(f"/{SPOT[cloud]}", {token_header: "not-the-token"})[0] == refused
                assert metadata.get(f"/{SPOT[cloud]}", {token_header: token})[0] == 404  # no notice
                metadata.set(SPOT[cloud], NOTICE[cloud])
                assert metadata.get(f"/{SPOT[cloud]}", {token_header: token}) == (200, NOTICE[cloud])
                time.sleep(1.1)
                assert metadata.get(f"/{SPOT[cloud]}", {token_header: token})[0] == refused  # the token expired
            finally:
                metadata.close()


@pytest.mark.parametrize("drained_node", ["aws", "alicloud"], indirect=True)
def test_a_spot_notice_drains_the_node_at_once_and_requests_in_flight_finish(drained_node):
    cloud, node_group, node, metadata, port, watch = drained_node
    record = clouds.get(cloud).metadata
    assert record.notices[0].path.lstrip("/") == SPOT[cloud]
    metadata.set("latest/meta-data/autoscaling/target-lifecycle-state", "InService")
    assert node.tool("health", "--once").returncode == 0
    watcher = watch()
    time.sleep(2)  # several polls: no notice, no drain
    assert watcher.poll() is None, watcher.stderr.read() if watcher.stderr else ""
    assert healthz(port) == 200
    service = node_group.services[0].name
    assert healthz(port, f"/healthz/{service}") == 200
    # A streamed LLM answer (two events a second apart) in flight when the notice comes: it finishes.
    kind_path = "/v1/chat/completions"
    finished: dict[str, object] = {}

    def long_request() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", kind_path, body=b"{}", headers={"Authorization": f"Bearer {FAKE_API_KEY}"})
        response = conn.getresponse()
        finished["status"], finished["body"] = response.status, response.read()
        conn.close()

    in_flight = threading.Thread(target=long_request)
    in_flight.start()
    started = time.monotonic()
    metadata.set(SPOT[cloud], NOTICE[cloud])
    wait_for(lambda: healthz(port) == 503, 3, "/healthz still 200 three seconds after the notice")
    assert time.monotonic() - started < 3
    assert healthz(port, f"/healthz/{service}") == 503
    assert request(port, "/healthz", key=None, method="GET")[1] == b'{"status":"draining"}\n'
    in_flight.join(timeout=10)
    assert finished["status"] == 200
    assert request(port, kind_path)[0] == 200  # the node still answers whatever the load balancer already sent
    progress = progress_line(node, "draining (spot")
    assert "2026-12-01T15:" in progress, progress
    assert node.tool("health", "--once").returncode == 0 and healthz(port) == 503  # healthy services do not undo it


@pytest.mark.parametrize("drained_node", ["aws"], indirect=True)
def test_scale_in_drains_only_when_the_lifecycle_state_is_terminated(drained_node):
    """EC2 Auto Scaling: target-lifecycle-state is InService while the node stays, Terminated once it is scaled in."""
    _, _, node, metadata, port, watch = drained_node
    state = "latest/meta-data/autoscaling/target-lifecycle-state"
    metadata.set(state, "InService")
    assert node.tool("health", "--once").returncode == 0
    watch()
    time.sleep(2)
    assert healthz(port) == 200
    metadata.set(state, "Terminated")
    wait_for(lambda: healthz(port) == 503, 3, "/healthz still 200 after the scale-in")
    progress_line(node, "draining (scale-in: Terminated)")


@pytest.mark.parametrize("drained_node", ["aws"], indirect=True)
def test_the_watcher_renews_its_token_and_survives_an_unreachable_service(drained_node):
    _, _, node, metadata, port, watch = drained_node
    with open(node.etc / "node.env", "a") as env:
        env.write("LLM_DEPLOY_METADATA_TOKEN_TTL=2\n")  # tokens the stub expires after 2 s: renewed after 1 s
    assert node.tool("health", "--once").returncode == 0
    watcher = watch()
    time.sleep(3)
    metadata.set(SPOT["aws"], NOTICE["aws"])
    wait_for(lambda: healthz(port) == 503, 3, "the watcher stopped seeing notices once its first token expired")
    assert watcher.poll() is None


@pytest.mark.parametrize("drained_node", ["aws"], indirect=True)
def test_drain_by_hand_and_cancel(drained_node):
    _, _, node, _, port, _ = drained_node
    assert node.tool("health", "--once").returncode == 0
    assert healthz(port) == 200
    assert node.tool("drain", "scale-down by hand").returncode == 0
    assert healthz(port) == 503
    assert node.tool("drain", "--cancel").returncode == 0
    assert healthz(port) == 200


def test_only_nodes_whose_cloud_has_a_metadata_service_get_the_watcher():
    watcher = {"/usr/local/sbin/llm-deploy-metadata", "/etc/systemd/system/llm-deploy-watch.service"}
    for name, case in CASES.items():
        paths = set(node_files(case.render()))
        assert (watcher <= paths) == (clouds.get(case.group.cloud).metadata is not None), name
        assert watcher & paths in (set(), watcher), name
