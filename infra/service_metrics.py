"""The Prometheus metrics the pinned vLLM and TEI publish (data/service_metrics.csv), and the CloudWatch names
the nodes publish some of them under.

Scaling (target tracking on queue depth), dashboards and alarms name metrics through `metric(engine, signal)`,
never as literals, so a pinned-version bump that renames a metric is one data row to change.

CloudWatch (AWS nodes): the CloudWatch agent scrapes each local service's `/metrics` and publishes, as
embedded-metric-format logs, the gauges and counters below into `NAMESPACE` with the dimensions
`DIMENSIONS` (the node's autoscaling group, the service name as the stack config spells it). The metric
name in CloudWatch is the Prometheus name. The agent's Prometheus input publishes gauges, counters (as the
delta per scrape) and summaries, and drops histograms (amazon-cloudwatch-agent v1.300069.0
plugins/inputs/prometheus/metrics_filter.go; it types a series by its target's `# TYPE` metadata under the name
before relabelling, so no scrape config changes that). The histograms of REPUBLISHED_SIGNALS (time to first
token) reach CloudWatch through the node's llm-deploy-ttft, which serves their `_sum` and `_count` typed as a
summary: CloudWatch has them as `<metric>_sum` and `<metric>_count`, per-minute deltas whose ratio is the mean.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from infra.data_files import data_rows

if TYPE_CHECKING:
    from infra.plan import PlacedService

NAMESPACE = "LlmDeploy"
ASG_DIMENSION = "AutoScalingGroupName"
SERVICE_DIMENSION = "service"
DIMENSIONS = (ASG_DIMENSION, SERVICE_DIMENSION)
# Days CloudWatch keeps the agent's embedded-metric-format logs. They only carry the metrics: CloudWatch keeps the
# metrics made from them on its own terms (up to 15 months), so a week of the raw logs is enough to look back at.
METRICS_LOG_RETENTION_DAYS = 7
ENGINES = {"llm": "vllm", "embedding": "tei", "rerank": "tei"}  # service kind → the engine serving it
# What the nodes publish to CloudWatch, per engine: the scaling signal and what the dashboard and alarms show.
CLOUDWATCH_SIGNALS = ("queue_depth", "running", "generation_tokens", "requests", "request_success", "request_errors")
CLOUDWATCH_TYPES = ("gauge", "counter")  # what the agent's Prometheus input publishes (histograms: dropped)
# Histograms the node republishes as summaries (bootstrap/files/llm-deploy-ttft), so their _sum and _count reach CloudWatch.
REPUBLISHED_SIGNALS = ("time_to_first_token",)


@dataclass(frozen=True)
class ServiceMetric:
    """One metric a pinned engine serves on its `/metrics`, with where in its source it is defined."""

    metric: str  # the name as scraped (counters with their _total where the client library adds it)
    engine: str  # "vllm" | "tei"
    engine_version: str
    type: str  # "gauge" | "counter" | "histogram"
    signal: str  # what it measures, engine-neutral: queue_depth, running, time_to_first_token, ...
    meaning: str
    source: str
    as_of: str

    @property
    def series(self) -> tuple[str, ...]:
        """The series names a scrape shows: a histogram's _bucket, _sum and _count; else the name itself."""
        if self.type == "histogram":
            return tuple(f"{self.metric}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        return (self.metric,)


def log_group(stack: str) -> str:
    """The stack's log group the agent writes its embedded-metric-format logs to (CloudWatch makes the metrics from
    them): one per stack, so each stack's Pulumi owns its group and its retention."""
    return f"/llm-deploy/{stack}/metrics"


@functools.cache
def service_metrics() -> tuple[ServiceMetric, ...]:
    return tuple(ServiceMetric(**row) for row in data_rows("service_metrics.csv"))


def engine_of(service: PlacedService) -> str:
    """The engine serving a placed service: its own for an LLM (vLLM or Ollama), TEI for the encoders."""
    return service.engine if service.kind == "llm" else ENGINES[service.kind]


def metric(engine: str, signal: str) -> ServiceMetric:
    """The metric of ENGINE that measures SIGNAL; KeyError when the engine publishes none."""
    found = [m for m in service_metrics() if m.engine == engine and m.signal == signal]
    if not found:
        raise KeyError(f"{engine} publishes no {signal} metric (data/service_metrics.csv)")
    return found[0]


def cloudwatch_metrics(engine: str) -> tuple[ServiceMetric, ...]:
    """What a node publishes to CloudWatch for a service of ENGINE."""
    return tuple(
        m for m in service_metrics() if m.engine == engine and m.signal in CLOUDWATCH_SIGNALS and m.type in CLOUDWATCH_TYPES
    )


def republished_metrics(engine: str) -> tuple[ServiceMetric, ...]:
    """The histograms of ENGINE a node republishes for CloudWatch (their _sum and _count)."""
    return tuple(m for m in service_metrics() if m.engine == engine and m.signal in REPUBLISHED_SIGNALS and m.type == "histogram")


def cloudwatch_names(engine: str) -> tuple[str, ...]:
    """Every metric name a node publishes to CloudWatch for ENGINE: the gauges and counters, and each republished
    histogram's _sum and _count."""
    return (*(m.metric for m in cloudwatch_metrics(engine)),
            *(f"{m.metric}{suffix}" for m in republished_metrics(engine) for suffix in ("_sum", "_count")))
