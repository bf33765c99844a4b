"""The CloudWatch agent's configuration on AWS nodes: scrape each local service's Prometheus `/metrics`, publish
the gauges and counters scaling and dashboards use (infra/service_metrics.py) as embedded-metric-format logs.

CloudWatch turns those logs into metrics in `NAMESPACE` with the dimensions (AutoScalingGroupName, service),
what target tracking on queue depth reads. The autoscaling group's name is known only on the node (the
group is created after its launch template): the scrape config carries `GROUP_PLACEHOLDER`, which the
node tool replaces with the name it reads from the instance metadata before it starts the agent.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass

import yaml

from infra.data_files import data_rows
from infra.plan import NodeGroup
from infra.service_metrics import (
    ASG_DIMENSION,
    DIMENSIONS,
    NAMESPACE,
    SERVICE_DIMENSION,
    cloudwatch_names,
    engine_of,
    republished_metrics,
)

CONFIG_DIR = "/etc/llm-deploy/cloudwatch"
AGENT_CONFIG = f"{CONFIG_DIR}/agent.json"
SCRAPE_TEMPLATE = f"{CONFIG_DIR}/prometheus.yaml.in"
SCRAPE_CONFIG = f"{CONFIG_DIR}/prometheus.yaml"  # written on the node from the template
REPUBLISH_CONFIG = f"{CONFIG_DIR}/ttft.json"  # llm-deploy-ttft's: the local vLLM servers whose histograms it republishes
REPUBLISH_PORT = 9401  # llm-deploy-ttft on loopback; no service listens there (config_files checks)
GROUP_PLACEHOLDER = "@@autoscaling_group@@"
SCRAPE_SECONDS = 60  # CloudWatch's standard resolution; target tracking evaluates per minute
ENGINE_LABEL = "engine"
REPLICA_LABEL = "replica"


@dataclass(frozen=True)
class MetricsAgent:
    """A pinned agent package and how to check it (data/metrics_agents.csv)."""

    agent: str
    version: str
    package_url: str
    signature_url: str
    key_url: str
    key_fingerprint: str
    source: str
    as_of: str


@functools.cache
def metrics_agent(name: str) -> MetricsAgent:
    return next(MetricsAgent(**row) for row in data_rows("metrics_agents.csv") if row["agent"] == name)


def republished_servers(group: NodeGroup) -> dict[str, int]:
    """Local server name → port of each server whose engine has histograms the node republishes (vLLM's)."""
    return {name: port for s in group.services if republished_metrics(engine_of(s))
            for name, port in s.instances}


def scrape_config(group: NodeGroup) -> str:
    """Prometheus scrape config: one job per local server (each LLM replica its own), and one per server whose
    histograms llm-deploy-ttft republishes, labelled with its service, engine and the node's autoscaling group
    (filled in on the node)."""
    jobs = []
    republished = republished_servers(group)
    for service in (s for s in group.services if s.publishes_metrics):  # Ollama serves no /metrics to scrape
        for name, port in service.instances:
            labels = {SERVICE_DIMENSION: service.name, REPLICA_LABEL: name, ENGINE_LABEL: engine_of(service),
                      ASG_DIMENSION: GROUP_PLACEHOLDER}  # fmt: skip
            jobs.append({"job_name": name, "metrics_path": "/metrics",
                         "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": labels}]})  # fmt: skip
            if name in republished:
                jobs.append({"job_name": f"{name}-republished", "metrics_path": f"/{name}",
                             "static_configs": [{"targets": [f"127.0.0.1:{REPUBLISH_PORT}"], "labels": labels}]})  # fmt: skip
    config = {"global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "scrape_timeout": "10s"}, "scrape_configs": jobs}
    return yaml.safe_dump(config, sort_keys=False)


def config_files(group: NodeGroup, log_group: str) -> dict[str, str]:
    """What the node gets besides the agent script: the agent's configuration and the scrape template, and on a
    node with vLLM llm-deploy-ttft's."""
    files = {AGENT_CONFIG: agent_config(group, log_group), SCRAPE_TEMPLATE: scrape_config(group)}
    servers = republished_servers(group)
    if servers:
        if REPUBLISH_PORT in {port for s in group.services for _, port in s.instances}:
            raise ValueError(f"node group {group.name}: a service listens on {REPUBLISH_PORT}, llm-deploy-ttft's port")
        (metric,) = {m.metric for s in group.services for m in republished_metrics(engine_of(s))}
        files[REPUBLISH_CONFIG] = json.dumps({"listen": f"127.0.0.1:{REPUBLISH_PORT}", "metric": metric, "servers": servers},
                                             indent=2) + "\n"
    return files


def agent_config(group: NodeGroup, log_group: str) -> str:
    """The agent's JSON configuration (its schema: translator/config/schema.json of the pinned version)."""
    declarations = []
    for engine in sorted({engine_of(s) for s in group.services if s.publishes_metrics}):
        names = cloudwatch_names(engine)
        declarations.append({
            "source_labels": [ENGINE_LABEL],
            "label_matcher": f"^{re.escape(engine)}$",
            "dimensions": [list(DIMENSIONS)],
            "metric_selectors": [f"^{re.escape(name)}$" for name in names],
        })  # fmt: skip
    config = {
        "agent": {"metrics_collection_interval": SCRAPE_SECONDS, "logfile": "/opt/aws/amazon-cloudwatch-agent/logs/amazon-cloudwatch-agent.log"},
        "logs": {
            "metrics_collected": {
                "prometheus": {
                    "log_group_name": log_group,  # the stack's, which Pulumi creates with a retention
                    "prometheus_config_path": SCRAPE_CONFIG,
                    "emf_processor": {"metric_declaration_dedup": True, "metric_namespace": NAMESPACE, "metric_declaration": declarations},
                }
            },
            "force_flush_interval": 15,
        },
    }
    return json.dumps(config, indent=2) + "\n"
