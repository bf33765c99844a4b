"""The Grafana dashboard shipped for users' own Prometheus (dashboards/llm-deploy.json): it parses, and every PromQL
expression names only series the pinned vLLM and TEI publish (data/service_metrics.csv, infra/service_metrics.py)."""

from __future__ import annotations

import json
import re

import pytest

from infra.data_files import data_rows
from infra.service_metrics import metric, service_metrics
from tests.helpers import ROOT

DASHBOARD = ROOT / "dashboards" / "llm-deploy.json"
# PromQL words that are not metric names: aggregation modifiers, set and vector-matching operators, offset, bool.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool", "inf", "nan"}
IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are neither functions (followed by '('),
    nor keywords, nor inside label matchers, strings, grouping label lists or range/offset durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)  # strings (label values, regexes)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries: [5m], [$__rate_interval]
    text = re.sub(r"\$\w+", " ", text)  # Grafana variables outside matchers
    names = set()
    for match in IDENTIFIER.finditer(text):
        rest = text[match.end():].lstrip()
        if rest.startswith("(") or match.group().lower() in KEYWORDS:
            continue
        if match.start() and (text[match.start() - 1].isdigit() or text[match.start() - 1] == "."):
            continue  # the unit of a number (1e3) or a duration outside brackets (offset 5m)
        names.add(match.group())
    return names


def published() -> set[str]:
    """Every series the pinned engines' /metrics carry: a gauge's or counter's name, a histogram's _bucket, _sum and
    _count (its bare name selects nothing)."""
    return {series for m in service_metrics() for series in m.series}


def expressions(dashboard: dict) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_the_metric_name_reader_finds_metrics_and_nothing_else():
    expression = ('histogram_quantile(0.95, sum by (le, instance) (rate(vllm:time_to_first_token_seconds_bucket'
                  '{job=~"$job", model_name!="x{y}"}[$__rate_interval]))) / on (instance) group_left up offset 5m'
                  ' + sum without (le) (te_queue_size) > bool 1e3')
    assert metric_names(expression) == {"vllm:time_to_first_token_seconds_bucket", "up", "te_queue_size"}


def test_the_dashboard_parses_as_a_grafana_dashboard(dashboard):
    assert dashboard["title"] == "llm-deploy" and dashboard["uid"]
    assert dashboard["panels"] and all({"id", "type", "title", "gridPos"} <= set(p) for p in dashboard["panels"])
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    # no datasource of the author's: a variable the user picks on import
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert all(t["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"] for t in p.get("targets", []))


def test_every_expression_names_only_series_the_pinned_engines_publish(dashboard):
    named = {name for e in expressions(dashboard) for name in metric_names(e)}
    assert named and named <= published(), sorted(named - published())


def test_a_name_the_engines_do_not_publish_would_be_caught(dashboard):
    """vLLM v0.19 renamed vllm:gpu_cache_usage_perc (kv_cache_usage_perc now); an old dashboard's name fails the check."""
    assert metric_names("max(vllm:gpu_cache_usage_perc)") - published() == {"vllm:gpu_cache_usage_perc"}


def test_the_dashboard_shows_queue_depth_time_to_first_token_and_tokens_per_second_of_both_engines(dashboard):
    named = {name for e in expressions(dashboard) for name in metric_names(e)}
    wanted = {metric("vllm", "queue_depth").metric, metric("tei", "queue_depth").metric,
              f"{metric('vllm', 'time_to_first_token').metric}_bucket", metric("vllm", "generation_tokens").metric}
    assert wanted <= named


def test_the_metric_names_are_those_of_the_versions_the_nodes_run():
    """Each row names the version it was read from; that is the version of every image of its engine (data/images.csv)."""
    tags: dict[str, set[str]] = {}  # engine → the tags of its images (TEI: one per GPU flavour, `86-1.9`)
    for row in data_rows("images.csv"):
        tags.setdefault(row["engine"], set()).add(row["image"].rpartition(":")[2])
    for m in service_metrics():
        assert all(tag == m.engine_version or tag.endswith(f"-{m.engine_version}") for tag in tags[m.engine]), (m, tags[m.engine])
