"""No GPU paid for and idle: every GPU of a node runs an LLM replica (or its tensor-parallel share), several
replicas per node sit on their own GPUs behind the node's nginx, and a pin that would idle GPUs is refused."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from bootstrap import BootTarget, SecretStore, render_gateway, render_user_data
from bootstrap.services import service_launches
from infra.catalog import load_offers
from infra.config import load_raw, parse_config
from infra.placement import evaluate, fit, place, service_need
from tests.helpers import AWS_LOG_GROUP, consecutive_free_ports

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
KEY = "k" * 40  # the generated key's length


def _config(stack_file, values):
    return parse_config(load_raw(config_file=str(stack_file(values))))


def test_llama_8b_two_replicas_on_aws_no_longer_pays_for_idle_gpus(stack_file):
    """Issue 13: 2 × g6.12xlarge (4 L4 each) running TP 2 on GPUs 0 and 1 at 9.20 $/h; one L4 per replica holds it."""
    plan = place(_config(stack_file, {"cloud": "aws", "services": [
        {"name": "llm", "kind": "llm", "model": LLAMA, "maxModelLen": 8192, "replicas": 2}]}))
    (group,) = plan.node_groups
    assert (group.offer.instance_type, group.count, plan.hourly_usd) == ("g6.xlarge", 2, pytest.approx(2 * 0.8048))
    assert group.services[0].tensor_parallel_size * group.services[0].replicas_per_node == group.offer.gpu_count


def test_every_feasible_llm_layout_uses_every_gpu(stack_file):
    """Over the catalog's GPU instance types: tensor-parallel size × replicas per node is always the GPU count."""
    seen, checked = set(), 0
    needs = [service_need(0, _config(stack_file, {"services": [{"name": "llm", "kind": "llm", "model": model, **extra}]}).services[0])
             for model, extra in ((LLAMA, {"replicas": 3}), ("deepseek-ai/DeepSeek-R1-Distill-Llama-70B", {}),
                                  ("openai/gpt-oss-120b", {"replicas": 2}))]
    for offer in load_offers():
        if offer.gpu_count == 0 or (offer.cloud, offer.instance_type) in seen:
            continue
        seen.add((offer.cloud, offer.instance_type))
        for need in needs:
            fitted = fit([need], offer)
            if fitted.feasible:
                (llm,) = fitted.services
                assert llm.tensor_parallel_size * llm.replicas_per_node == offer.gpu_count, (offer.instance_type, need.config.model)
                assert fitted.count == -(-need.config.replicas // llm.replicas_per_node)
                checked += 1
    assert checked > 20


def test_h100_x2_pin_is_refused_naming_gpu_count_and_the_alternatives(cli, stack_file):
    """Issue 13: `gpu: H100, gpuCount: 2` validated at 98.32 $/h on a p5.48xlarge with 6 of its 8 GPUs unused."""
    path = stack_file({"cloud": "aws", "services": [{"name": "llm", "kind": "llm", "model": LLAMA, "gpu": "H100", "gpuCount": 2}]})
    result = cli("validate", "--config", str(path))
    assert result.code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"{path}: services[0].gpuCount: 2 H100s per replica leave GPUs paid for and idle")
    assert "p5.48xlarge 8x H100: 4 replicas of 2 GPUs for 1 needed, 6 GPUs idle" in line
    assert "gpuCount: 1 (1x p5.4xlarge, 4.38 $/h)" in line and "replicas: 4 (1x p5.48xlarge, 55.04 $/h)" in line
    assert "no gpu/gpuCount (1x g6.xlarge, 0.80 $/h)" in line
    # filling the instance is accepted: 4 replicas of TP 2 on the 8 GPUs
    filled = stack_file({"cloud": "aws", "services": [
        {"name": "llm", "kind": "llm", "model": LLAMA, "gpu": "H100", "gpuCount": 2, "replicas": 4}]}, name="filled")
    (group,) = place(parse_config(load_raw(config_file=str(filled)))).node_groups
    assert (group.offer.instance_type, group.count, group.services[0].replicas_per_node) == ("p5.48xlarge", 1, 4)


def test_a_gpu_count_no_instance_divides_is_blamed_on_gpu_count_not_model(cli, stack_file):
    """Issue 13: `gpuCount: 3` was reported against `model`; no tensor-parallel size (and no instance) takes 3 GPUs."""
    path = stack_file({"cloud": "aws", "services": [{"name": "llm", "kind": "llm", "model": LLAMA, "gpuCount": 3}]})
    result = cli("validate", "--config", str(path))
    assert result.code == 2 and f"{path}: services[0].gpuCount: " in result.stderr and ".model:" not in result.stderr
    assert "valid: 1, 2, 4, 8" in result.stderr


def test_gpu_pin_for_an_encoder_on_an_eight_gpu_instance_is_refused_naming_gpu(cli, stack_file):
    path = stack_file({"cloud": "aws", "services": [{"name": "emb", "kind": "embedding", "model": "BAAI/bge-m3", "gpu": "A100"}]})
    result = cli("validate", "--config", str(path))
    assert result.code == 2
    assert f"{path}: services[0].gpu: any number of A100s per replica leave GPUs paid for and idle" in result.stderr
    assert "8x A100: the encoders use one, 7 GPUs idle" in result.stderr and "no gpu/gpuCount (1x g4dn.xlarge" in result.stderr


def test_a_gpu_pin_that_tensor_parallel_fills_is_accepted(stack_file):
    """`gpu: A100` (p4d.24xlarge, 8 GPUs) for one replica: TP 8 across all of them, nothing idle."""
    plan = place(_config(stack_file, {"cloud": "aws", "services": [{"name": "llm", "kind": "llm", "model": LLAMA, "gpu": "A100"}]}))
    (group,) = plan.node_groups
    assert (group.offer.instance_type, group.services[0].tensor_parallel_size, group.services[0].replicas_per_node) == \
        ("p4d.24xlarge", 8, 1)


class Replica:
    """A stand-in vLLM server: counts the requests it answered."""

    def __init__(self, port: int) -> None:
        self.hits = 0
        replica = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                replica.hits += 1
                time.sleep(0.2)  # a request in flight, so least_conn sends the next one elsewhere
                body = json.dumps({"port": port}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def four_replica_group(stack_file):
    """Four replicas of Llama-8B where a g6.12xlarge (4 L4) is the cheapest way: one node, one replica per GPU."""
    plan = place(_config(stack_file, {"cloud": "aws", "region": "us-east-1", "priceOverrides": {"aws/g6.12xlarge": 1.0},
                                      "services": [{"name": "llm", "kind": "llm", "model": LLAMA, "replicas": 4}]}))
    (group,) = plan.node_groups
    assert (group.offer.instance_type, group.count, group.services[0].replicas_per_node) == ("g6.12xlarge", 1, 4)
    return group


def test_each_replica_runs_on_its_own_gpu_and_port(four_replica_group, tmp_path):
    launches = service_launches(four_replica_group)
    assert [launch.service.name for launch in launches] == ["llm", "llm-replica-2", "llm-replica-3", "llm-replica-4"]
    assert [launch.gpu_devices for launch in launches] == [(0,), (1,), (2,), (3,)]
    assert [launch.service.port for launch in launches] == [8000, 8001, 8002, 8003]
    for launch in launches:
        assert f"127.0.0.1:{launch.service.port}:{launch.service.port}" in launch.docker_args
        assert launch.args[launch.args.index("--port") + 1] == str(launch.service.port)
    user_data = render_user_data(four_replica_group, BootTarget("aws", True, metrics_log_group=AWS_LOG_GROUP),
                                 SecretStore("aws-ssm", "us-east-1", "/llm-deploy/test/api-key"))
    files = {f["path"]: f["content"] for f in yaml.safe_load(user_data)["write_files"]}
    assert "LLM_DEPLOY_SERVICES=(llm llm-replica-2 llm-replica-3 llm-replica-4)" in files["/etc/llm-deploy/node.env"]
    confs = [path for path in files if path.startswith("/etc/llm-deploy/services/")]
    assert confs == [f"/etc/llm-deploy/services/{name}.conf" for name in ("llm", "llm-replica-2", "llm-replica-3", "llm-replica-4")]
    shellcheck, cloud_init = shutil.which("shellcheck"), shutil.which("cloud-init")
    if shellcheck is None or cloud_init is None:
        pytest.skip("shellcheck or cloud-init not installed")
    (tmp_path / "user-data.yaml").write_text(user_data)
    schema = subprocess.run([cloud_init, "schema", "--config-file", str(tmp_path / "user-data.yaml")], check=False,
                            capture_output=True, text=True)
    assert schema.returncode == 0 and "Valid cloud-config" in schema.stdout, schema.stdout + schema.stderr
    scripts = []
    for path in [*confs, "/etc/llm-deploy/node.env"]:
        scripts.append(tmp_path / Path(path).name)
        scripts[-1].write_text(files[path])
    check = subprocess.run([shellcheck, *map(str, scripts)], check=False, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


def test_the_gateway_balances_over_the_replicas_under_real_nginx(four_replica_group, tmp_path):
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx is None:
        pytest.skip("nginx not installed")
    from dataclasses import replace

    base = consecutive_free_ports(4)
    llm = replace(four_replica_group.services[0], port=base)
    group = replace(four_replica_group, services=(llm,))
    replicas = [Replica(port) for _, port in llm.instances]
    auth = tmp_path / "auth.conf"
    auth.write_text(f'map $http_authorization $llm_deploy_authorized {{\n    default 0;\n    "Bearer {KEY}" 1;\n}}\n')
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        listen = probe.getsockname()[1]
    config = render_gateway(group, listen=[f"127.0.0.1:{listen}"], auth_file=str(auth),
                            health_file=str(tmp_path / "healthy"), service_health_dir=str(tmp_path / "healthy-services"))
    assert config.count("server 127.0.0.1:") == 4 and "least_conn;" in config
    (tmp_path / "gateway.conf").write_text(config)
    temp = "".join(f"    {d}_temp_path {tmp_path}/{d};\n" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (tmp_path / "nginx.conf").write_text(f"worker_processes 1;\npid {tmp_path}/nginx.pid;\nevents {{}}\n"
                                         f"http {{\n    access_log off;\n{temp}    include {tmp_path}/gateway.conf;\n}}\n")
    args = [nginx, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(tmp_path / "nginx.conf")]
    syntax = subprocess.run([*args, "-t"], check=False, capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    process = subprocess.Popen([*args, "-g", "daemon off;"])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", listen), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.1)

        def ask() -> int:
            connection = http.client.HTTPConnection("127.0.0.1", listen, timeout=10)
            connection.request("POST", "/v1/chat/completions", body="{}", headers={"Authorization": f"Bearer {KEY}"})
            response = connection.getresponse()
            assert response.status == 200
            return json.loads(response.read())["port"]

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(r.hits for r in replicas) == [2, 2, 2, 2]  # least_conn: concurrent requests spread over all four
    finally:
        process.terminate()
        process.wait(timeout=10)
        for replica in replicas:
            replica.server.shutdown()


def test_shipped_stacks_leave_no_gpu_idle():
    from tests.helpers import STACKS, STACKS_DIR

    for stack in STACKS:
        result = evaluate(parse_config(load_raw(stack, stacks_dir=STACKS_DIR)))
        for group in result.plan.node_groups:
            llm = next((s for s in group.services if s.kind == "llm"), None)
            used = llm.tensor_parallel_size * llm.replicas_per_node if llm else min(group.offer.gpu_count, 1)
            assert used == group.offer.gpu_count, (stack, group.name)
