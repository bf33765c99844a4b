"""The Grafana dashboard shipped for users' own Prometheus (dashboards/llm-deploy.json), and the metric data it is
checked against (data/service_metrics.csv): it parses, and every PromQL expression names only series the pinned
vLLM and TEI publish."""

from __future__ import annotations

import json
import re

import pytest

from infra import service_metrics
from infra.data_files import data_rows
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
    published = service_metrics.series_names("vllm") | service_metrics.series_names("tei")
    named = {name for e in expressions(dashboard) for name in metric_names(e)}
    assert named and named <= published, sorted(named - published)


def test_a_name_the_engines_do_not_publish_would_be_caught(dashboard):
    """vLLM v0.19 renamed vllm:gpu_cache_usage_perc (kv_cache_usage_perc now); an old dashboard's name fails the check."""
    published = service_metrics.series_names("vllm") | service_metrics.series_names("tei")
    assert metric_names("max(vllm:gpu_cache_usage_perc)") - published == {"vllm:gpu_cache_usage_perc"}


def test_the_dashboard_shows_queue_depth_time_to_first_token_and_tokens_per_second_of_both_engines(dashboard):
    named = {name for e in expressions(dashboard) for name in metric_names(e)}
    assert {"vllm:num_requests_waiting", "te_queue_size", "vllm:time_to_first_token_seconds_bucket",
            "vllm:generation_tokens_total", "te_request_input_length_sum"} <= named


def test_metric_rows_have_a_source_and_the_pinned_engine_versions():
    """Each row names the version it was read from, and that version is the one the nodes run (data/images.csv)."""
    tags: dict[str, set[str]] = {}  # engine → the tags of its images (TEI: one per GPU flavour, `86-1.9`)
    for row in data_rows("images.csv"):
        tags.setdefault(row["engine"], set()).add(row["image"].rpartition(":")[2])
    rows = data_rows("service_metrics.csv")
    assert {r["engine"] for r in rows} == {"vllm", "tei"}
    for row in rows:
        assert row["source"] and row["as_of"] and row["meaning"], row
        assert row["type"] in ("gauge", "counter", "histogram"), row
        version = row["engine_version"]
        assert all(tag == version or tag.endswith(f"-{version}") for tag in tags[row["engine"]]), (row, tags[row["engine"]])
    assert len({(r["engine"], r["metric"]) for r in rows}) == len(rows)
