"""bootstrap/files/llm-deploy-ttft: vLLM's time-to-first-token histogram republished as a summary the CloudWatch agent
keeps (it drops histograms by their `# TYPE`), run as the node runs it, against a stand-in vLLM /metrics."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from bootstrap import cloudwatch
from infra.service_metrics import cloudwatch_names, metric, republished_metrics
from tests.helpers import FILES, consecutive_free_ports, group, offer, svc

TTFT = metric("vllm", "time_to_first_token").metric
# What vLLM v0.19.1 serves for it: a histogram per (engine, model) label set; two engines on this node's replica.
VLLM_METRICS = f"""# HELP {TTFT} Histogram of time to first token in seconds.
# TYPE {TTFT} histogram
{TTFT}_bucket{{engine="0",le="0.1",model_name="Qwen/Qwen2.5-7B-Instruct"}} 3.0
{TTFT}_bucket{{engine="0",le="+Inf",model_name="Qwen/Qwen2.5-7B-Instruct"}} 4.0
{TTFT}_count{{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"}} 4.0
{TTFT}_sum{{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"}} 0.75
{TTFT}_bucket{{engine="1",le="+Inf",model_name="Qwen/Qwen2.5-7B-Instruct"}} 2.0
{TTFT}_count{{engine="1",model_name="Qwen/Qwen2.5-7B-Instruct"}} 2.0
{TTFT}_sum{{engine="1",model_name="Qwen/Qwen2.5-7B-Instruct"}} 1.25
# HELP {TTFT}_seconds_created not this metric: a longer name with the same prefix
# TYPE vllm:time_to_first_token_seconds_extra gauge
vllm:time_to_first_token_seconds_extra_sum 99.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"}} 2.0
"""


@pytest.fixture
def vllm():
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            data = VLLM_METRICS.encode()
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def republisher(tmp_path, vllm):
    listen, down = consecutive_free_ports(2), None
    down = listen + 1  # nothing listens there: a replica still loading
    config = tmp_path / "ttft.json"
    config.write_text(json.dumps({"listen": f"127.0.0.1:{listen}", "metric": TTFT, "servers": {"llm": vllm, "llm-replica-2": down}}))
    process = subprocess.Popen([sys.executable, str(FILES / "llm-deploy-ttft"), str(config)])
    deadline = time.monotonic() + 10
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{listen}/none", timeout=1)
        except urllib.error.HTTPError:
            break
        except OSError:
            assert time.monotonic() < deadline, "llm-deploy-ttft did not start"
            time.sleep(0.05)
    yield listen
    process.terminate()
    process.wait(timeout=10)


def get(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def test_it_serves_the_histograms_sum_and_count_as_a_summary(republisher):
    status, content_type, body = get(republisher, "/llm")
    assert (status, content_type) == (200, "text/plain; version=0.0.4; charset=utf-8")
    samples = [line for line in body.splitlines() if not line.startswith("#")]
    assert f"# TYPE {TTFT} summary" in body.splitlines()  # what the agent keeps
    assert samples == [f"{TTFT}_sum 2.0", f"{TTFT}_count 6.0"]  # both label sets, not the longer-named metric


def test_a_server_not_answering_is_503_and_an_unknown_one_404(republisher):
    assert get(republisher, "/llm-replica-2")[0] == 503
    assert get(republisher, "/embedding")[0] == 404


def test_the_agent_scrapes_it_for_every_vllm_server_and_selects_its_series():
    node = group("llm-embed", offer("aws", "g6.12xlarge", "L4", 4, "89", 24), svc("llm", replicas_per_node=2), svc("embedding"))
    files = cloudwatch.config_files(node, "/llm-deploy/prod/metrics")
    config = json.loads(files[cloudwatch.REPUBLISH_CONFIG])
    assert config == {"listen": f"127.0.0.1:{cloudwatch.REPUBLISH_PORT}", "metric": TTFT,
                      "servers": {name: port for name, port in node.services[0].instances}}
    jobs = {j["job_name"]: j for j in yaml.safe_load(files[cloudwatch.SCRAPE_TEMPLATE])["scrape_configs"]}
    for name, _ in node.services[0].instances:
        job = jobs[f"{name}-republished"]
        (static,) = job["static_configs"]
        assert job["metrics_path"] == f"/{name}" and static["targets"] == [f"127.0.0.1:{cloudwatch.REPUBLISH_PORT}"]
        assert static["labels"] == jobs[name]["static_configs"][0]["labels"]  # the same dimensions as the server's own
    assert not any(j.endswith("-republished") for j in jobs if j.startswith("embedding"))
    emf = json.loads(files[cloudwatch.AGENT_CONFIG])["logs"]["metrics_collected"]["prometheus"]["emf_processor"]
    (vllm_declaration,) = [d for d in emf["metric_declaration"] if "vllm" in d["label_matcher"]]
    for name in (f"{TTFT}_sum", f"{TTFT}_count"):
        assert name in cloudwatch_names("vllm") and any(re.match(p, name) for p in vllm_declaration["metric_selectors"])
    assert not any(re.match(p, f"{TTFT}_bucket") for p in vllm_declaration["metric_selectors"])
    assert [m.metric for m in republished_metrics("tei")] == []


def test_a_node_without_vllm_runs_no_republisher():
    node = group("encoders", offer("aws", "c7i.4xlarge", None, 0, None), svc("embedding", accelerator="cpu"))
    assert cloudwatch.REPUBLISH_CONFIG not in cloudwatch.config_files(node, "/llm-deploy/prod/metrics")


def test_a_service_on_the_republishers_port_is_refused():
    node = group("llm", offer("aws", "g6.xlarge", "L4", 1, "89", 24), svc("llm", port=cloudwatch.REPUBLISH_PORT))
    with pytest.raises(ValueError, match="llm-deploy-ttft's port"):
        cloudwatch.config_files(node, "/llm-deploy/prod/metrics")
