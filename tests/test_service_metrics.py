"""infra/service_metrics.py and bootstrap/cloudwatch.py: the metric names as data, and the CloudWatch agent's
configuration checked against the agent's own schema (vendored: tests/data/cloudwatch_agent_schema.json)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from bootstrap import cloudwatch
from infra.service_metrics import ASG_DIMENSION, DIMENSIONS, ENGINES, NAMESPACE, cloudwatch_metrics, metric, service_metrics
from tests.helpers import AWS_LOG_GROUP, CASES, FILES, TOOL, group, make_node, need, node_files, offer, svc

SCHEMA = json.loads((Path(__file__).parent / "data" / "cloudwatch_agent_schema.json").read_text())
REPLICAS = group("llm", offer("aws", "g6.12xlarge", "L4", 4, "89", 24), svc("llm", replicas_per_node=4))


def test_every_metric_row_names_its_source_commit_and_line():
    rows = service_metrics()
    assert len({(m.engine, m.metric) for m in rows}) == len(rows)
    for m in rows:
        assert m.type in ("gauge", "counter", "histogram"), m
        assert re.search(r"@[0-9a-f]{9,40} .* \S+\.(py|rs):\d+$", m.source), m.source
        assert m.as_of == "2026-12-01" and m.meaning
        assert (m.engine, m.engine_version) in (("vllm", "v0.19.1"), ("tei", "1.9"))


def test_the_scaling_signal_of_each_engine():
    assert metric("vllm", "queue_depth").metric == "vllm:num_requests_waiting"
    assert metric("tei", "queue_depth").metric == "te_queue_size"
    assert metric("vllm", "time_to_first_token").series[-1] == "vllm:time_to_first_token_seconds_count"
    with pytest.raises(KeyError, match="tei publishes no time_to_first_token"):
        metric("tei", "time_to_first_token")
    for engine in set(ENGINES.values()):  # what the node publishes: the queue first, no histogram (the agent drops them)
        published = cloudwatch_metrics(engine)
        assert metric(engine, "queue_depth") in published
        assert {m.type for m in published} <= {"gauge", "counter"}


@pytest.mark.parametrize("node_group", [CASES["aws-ssm-driver-image"].group, CASES["aws-cpu"].group, REPLICAS], ids=["all", "cpu", "replicas"])
def test_agent_config_passes_the_agents_schema_and_scrapes_every_local_server(node_group):
    config = json.loads(cloudwatch.agent_config(node_group, AWS_LOG_GROUP))
    jsonschema.Draft4Validator.check_schema(SCHEMA)
    jsonschema.Draft4Validator(SCHEMA).validate(config)
    prometheus = config["logs"]["metrics_collected"]["prometheus"]
    assert prometheus["prometheus_config_path"] == cloudwatch.SCRAPE_CONFIG
    assert prometheus["log_group_name"] == AWS_LOG_GROUP  # the stack's, which Pulumi creates with its retention
    emf = prometheus["emf_processor"]
    assert emf["metric_namespace"] == NAMESPACE
    engines = {ENGINES[s.kind] for s in node_group.services}
    assert len(emf["metric_declaration"]) == len(engines)
    for declaration in emf["metric_declaration"]:
        assert declaration["dimensions"] == [list(DIMENSIONS)]
        (engine,) = [e for e in engines if re.match(declaration["label_matcher"], e)]
        names = {m.metric for m in cloudwatch_metrics(engine)}
        assert {n for n in names if any(re.match(p, n) for p in declaration["metric_selectors"])} == names
    # The scrape config, as the node writes it with its autoscaling group's name filled in.
    text = cloudwatch.scrape_config(node_group).replace(cloudwatch.GROUP_PLACEHOLDER, "llm-deploy-prod-llm-asg-1a2b3c")
    scrape = yaml.safe_load(text)
    assert scrape["global"]["scrape_interval"] == "60s"
    servers = {name: port for s in node_group.services for name, port in s.instances}
    vllm = {name for s in node_group.services if s.kind == "llm" for name, _ in s.instances}  # TTFT republished (test_ttft_republish)
    assert {job["job_name"] for job in scrape["scrape_configs"]} == set(servers) | {f"{name}-republished" for name in vllm}
    for job in scrape["scrape_configs"]:
        (static,) = job["static_configs"]
        if job["job_name"].endswith("-republished"):
            assert static["targets"] == [f"127.0.0.1:{cloudwatch.REPUBLISH_PORT}"]
        else:
            assert job["metrics_path"] == "/metrics" and static["targets"] == [f"127.0.0.1:{servers[job['job_name']]}"]
        assert static["labels"][ASG_DIMENSION] == "llm-deploy-prod-llm-asg-1a2b3c"
        assert set(DIMENSIONS) <= set(static["labels"]) and static["labels"][cloudwatch.ENGINE_LABEL] in engines


def test_a_config_the_schema_refuses_is_refused():
    """The schema really checks: a misspelt key of the prometheus section fails it."""
    config = json.loads(cloudwatch.agent_config(REPLICAS, AWS_LOG_GROUP))
    config["logs"]["metrics_collected"]["prometheus"]["prometheus_config"] = "/typo"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(SCHEMA).validate(config)


def test_only_aws_nodes_carry_the_agent():
    for name, case in CASES.items():
        files = node_files(case.render())
        assert (cloudwatch.AGENT_CONFIG in files) == (case.group.cloud == "aws"), name
        assert ("/usr/local/sbin/llm-deploy-cloudwatch" in files) == (case.group.cloud == "aws"), name
        assert ("/etc/systemd/system/llm-deploy-metrics.service" in files) == (case.group.cloud == "aws"), name


@pytest.mark.parametrize("tamper", ["another key", "another package"])
def test_agent_install_refuses_a_package_the_pinned_key_did_not_sign(tmp_path, tamper):
    """llm-deploy-cloudwatch install: the key must have the pinned fingerprint, and the package its signature."""
    gpg_path = need("gpg")
    node = make_node(tmp_path / "node", CASES["aws-cpu"])
    gnupg = tmp_path / "gnupg"
    gnupg.mkdir(mode=0o700)
    gpg = [gpg_path, "--homedir", str(gnupg), "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    subprocess.run([*gpg, "--quick-gen-key", "publisher <agent@localhost>", "ed25519", "sign", "never"], check=True, capture_output=True)
    listing = subprocess.run([*gpg, "--with-colons", "--fingerprint"], check=True, capture_output=True, text=True).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    package, signature, key = tmp_path / "agent.deb", tmp_path / "agent.deb.sig", tmp_path / "key.gpg"
    package.write_bytes(b"a package")
    subprocess.run([*gpg, "--detach-sign", "-o", str(signature), str(package)], check=True, capture_output=True)
    key.write_bytes(subprocess.run([*gpg, "--export"], check=True, capture_output=True).stdout)
    pinned = fingerprint if tamper == "another package" else "0" * 40
    if tamper == "another package":
        package.write_bytes(b"a package, changed on the way")
    with open(node.etc / "node.env", "a") as env:
        env.write(f"LLM_DEPLOY_AGENT_PACKAGE_URL=file://{package}\nLLM_DEPLOY_AGENT_SIGNATURE_URL=file://{signature}\n"
                  f"LLM_DEPLOY_AGENT_KEY_URL=file://{key}\nLLM_DEPLOY_AGENT_KEY_FINGERPRINT={pinned}\n")  # fmt: skip
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dpkg").write_text(f"#!/bin/sh\ntouch {tmp_path}/dpkg-ran\nexit 1\n")  # never install anything here
    (bin_dir / "dpkg").chmod(0o755)
    env = node.env | {"LLM_DEPLOY_TOOL": str(TOOL), "PATH": f"{bin_dir}:{node.env['PATH']}"}
    # -x: the trace names the check that stopped it (the tool logs to syslog when not on a terminal).
    done = subprocess.run(["bash", "-x", str(FILES / "llm-deploy-cloudwatch"), "install"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert not (tmp_path / "dpkg-ran").exists()
    reason = f"key has fingerprint {fingerprint}, not {pinned}" if tamper == "another key" else "signature does not verify"
    assert "+ die " in done.stderr and reason in done.stderr, done.stderr[-2000:]
