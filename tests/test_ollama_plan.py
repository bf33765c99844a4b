"""An `engine: ollama` stack under the mock engine on every target: a CPU instance (or the team's CPU host), user-data
without a single GPU step, and the Ollama unit's settings on the node."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.helpers import OLLAMA_TAG
from tests.test_ollama import CPU_ENCODERS, CPU_LLM
from tests.test_onprem import known

# Where each cloud's program names the instance type it launches (the resource type, then its input).
INSTANCE_TYPE = {
    "aws": ("aws:ec2/launchTemplate:LaunchTemplate", "instanceType"),
    "digitalocean": ("digitalocean:index/droplet:Droplet", "size"),
    "alicloud": ("alicloud:ess/scalingConfiguration:ScalingConfiguration", "instanceTypes"),
}
# What a GPU node's user-data carries (the GPU steps' script, the driver and toolkit settings, GPU options); the node
# tool itself is the same on every node, its GPU steps behind LLM_DEPLOY_ACCELERATOR == gpu.
GPU_STEPS = ("/usr/local/sbin/llm-deploy-gpu", "nvidia", "LLM_DEPLOY_GPU_COUNT", "LLM_DEPLOY_DRIVER_BRANCH", "--gpus")
HOST = {"address": "10.0.0.21", "user": "ubuntu", "gpuCount": 0, "vcpus": 16, "memoryGb": 64}


def values(cloud: str) -> dict:
    base = {"cloud": cloud, "services": [CPU_LLM, *CPU_ENCODERS]}
    if cloud == "onprem":
        base |= {"hosts": [HOST], "sshKnownHosts": known(HOST["address"])}
    return base


@pytest.mark.parametrize("cloud", ["aws", "digitalocean", "alicloud", "onprem"])
def test_an_ollama_stack_plans_onto_cpu_nodes_with_no_gpu_step_and_the_ollama_unit(cloud, cli, stack_file, tmp_path):
    path = stack_file(values(cloud))
    cost = cli("cost", "--config", str(path), "--format", "json")
    assert cost.code == 0, cost.stderr
    preview = json.loads(cost.stdout)
    llm = preview["services"][0]
    assert llm["chosen"]["cloud"] == cloud and llm["chosen"]["gpu_count"] == 0 and llm["engine"] == "ollama"
    render = tmp_path / "render"
    planned = cli("plan", "--config", str(path), "--render-dir", str(render), "--format", "json")
    assert planned.code == 0, planned.stderr
    resources = json.loads(planned.stdout)["resources"]
    if cloud in INSTANCE_TYPE:
        token, field = INSTANCE_TYPE[cloud]
        launched = {str(r["inputs"][field]) for r in resources if r["type"] == token}
        assert any(llm["chosen"]["instance_type"] in each for each in launched), launched
    else:
        assert any(r["type"] == "pulumi-python:dynamic/onprem:HostFiles" for r in resources)
    texts = {p.stem: p.read_text() for p in render.glob("*.yaml")}
    llm_group = next(name for name, text in texts.items() if "/etc/llm-deploy/services/llm.conf" in text)
    user_data = texts[llm_group]
    assert not [step for step in GPU_STEPS if step in user_data], llm_group
    files = {f["path"]: f["content"] for f in yaml.safe_load(user_data)["write_files"]}
    conf = files["/etc/llm-deploy/services/llm.conf"]
    assert "SERVICE_IMAGE=ollama/ollama:0.32.15\n" in conf and f"SERVICE_PULL={OLLAMA_TAG}\n" in conf
    assert "LLM_DEPLOY_ACCELERATOR=cpu\n" in files["/etc/llm-deploy/node.env"]
    assert "/etc/systemd/system/llm-deploy@.service" in files


@pytest.mark.parametrize("key", ["memoryGb", "vcpus"])
def test_a_cpu_host_without_its_ram_or_cpus_is_refused_naming_the_key(key, cli, stack_file):
    path = stack_file(values("onprem") | {"hosts": [{k: v for k, v in HOST.items() if k != key}]})
    checked = cli("validate", "--config", str(path))
    assert checked.code == 2
    assert f"{path}: hosts[0].{key}: 10.0.0.21 has no GPU: services on CPU need its {key}" in checked.stdout + checked.stderr


def test_on_aws_an_ollama_llm_gets_its_health_alarm_but_no_queue_alarm_or_engine_metrics_it_never_publishes(cli, stack_file):
    """Ollama serves no /metrics: a queue alarm on it would never fire, and dashboard lines would stay empty."""
    planned = cli("plan", "--config", str(stack_file(values("aws"))), "--format", "json")
    assert planned.code == 0, planned.stderr
    resources = json.loads(planned.stdout)["resources"]
    alarms = {r["name"] for r in resources if r["type"] == "aws:cloudwatch/metricAlarm:MetricAlarm"}
    assert "monitoring-llm-no-healthy-host" in alarms and "monitoring-llm-queue" not in alarms, alarms
    assert {f"monitoring-{s['name']}-queue" for s in CPU_ENCODERS} <= alarms, alarms
    (dashboard,) = [r for r in resources if r["type"] == "aws:cloudwatch/dashboard:Dashboard"]
    lines = [line for w in json.loads(dashboard["inputs"]["dashboardBody"])["widgets"] for line in w["properties"]["metrics"]]
    llm_agent_lines = [line for line in lines if line[0] == "LlmDeploy" and "llm" in line]
    assert llm_agent_lines == [], llm_agent_lines
    assert any(line[0] == "AWS/ApplicationELB" and line[-1].get("label") == "llm" for line in lines)
