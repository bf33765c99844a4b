"""The AWS stack's CloudWatch dashboard, alarms and SNS topic, run for real under the offline mock engine.

Every shipped stack on AWS, plus one of this module's own that sets alertEmail (two node groups: the LLM on a
GPU, embedding and rerank on CPU). The dashboard's body is parsed as JSON and checked against the names the
engine gave the load balancer and the target groups, and against the metric names the pinned engines publish.
"""

from __future__ import annotations

import json

import pytest

from components.aws.layout import short_name
from components.aws.monitoring import (
    ELB_NAMESPACE,
    FIVE_XX_PERCENT,
    NO_HOST_MINUTES,
    PERIOD_S,
    QUEUE_MINUTES,
    QUEUE_TARGET,
    TTFT_TITLE,
    agent_dimensions,
    queue_target,
)
from infra import service_metrics
from infra.plan import DeploymentPlan
from tests.helpers import GPU_LLM_CPU_ENCODERS, answer, of_type, one, planner, raw_config, stacks_on

ALB = "aws:lb/loadBalancer:LoadBalancer"
TG = "aws:lb/targetGroup:TargetGroup"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
ASG = "aws:autoscaling/group:Group"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
EMAIL = "oncall@acme-inference.io"

ALERTED = {
    "cloud": "aws",
    "region": "us-east-1",
    "services": GPU_LLM_CPU_ENCODERS,
    "alertEmail": EMAIL,
}
# the chat service autoscales with a queue target of its own: its alarm fires above that target, not the default
SCALED = {**ALERTED, "services": [{**ALERTED["services"][0], "maxReplicas": 3, "targetQueuePerReplica": 7}, *ALERTED["services"][1:]]}
RAW = {"aws-alerted": lambda: raw_config("aws-alerted", ALERTED), "aws-scaled": lambda: raw_config("aws-scaled", SCALED)}
CASES = [*stacks_on("aws"), *RAW]
planned = planner(RAW)


def services(plan: DeploymentPlan):
    return [(g, s) for g in plan.node_groups for s in g.services]


def asg_name(result, group: str) -> str:
    """The name the engine gave a node group's Auto Scaling group (the agent's dimension)."""
    return answer(result, ASG, f"{group}-asg")["name"]


def body(result) -> dict:
    (dashboard,) = of_type(result, DASHBOARD)
    return json.loads(dashboard["inputs"]["dashboardBody"])


def metric_lines(document: dict) -> list[list]:
    """Every metric line of every widget (expressions left out): [namespace, name, dim, value, ..., options]."""
    return [line for w in document["widgets"] if w["type"] == "metric" for line in w["properties"]["metrics"] if isinstance(line[0], str)]


def dimensions_of(line: list) -> dict[str, str]:
    values = [part for part in line[2:] if isinstance(part, str)]
    return dict(zip(values[::2], values[1::2], strict=True))


def test_the_repository_has_an_aws_stack_and_this_module_one_with_alert_email():
    assert stacks_on("aws") and ALERTED["alertEmail"]


@pytest.mark.parametrize("stack", CASES)
def test_the_dashboard_names_the_stack_and_is_valid_json(stack):
    plan, result = planned(stack)
    (dashboard,) = of_type(result, DASHBOARD)
    assert dashboard["inputs"]["dashboardName"] == short_name("llm-deploy", plan.stack, limit=255)
    document = body(result)
    assert {w["properties"]["region"] for w in document["widgets"] if w["type"] == "metric"} == {plan.region}
    assert result.outputs["dashboard_name"] == dashboard["inputs"]["dashboardName"]


@pytest.mark.parametrize("stack", CASES)
def test_the_dashboard_shows_what_the_issue_asks_for(stack):
    titles = {w["properties"]["title"] for w in body(planned(stack)[1])["widgets"] if w["type"] == "metric"}
    assert {"Requests (at the load balancer)", "Queue depth (requests waiting)", "Target response time (s)",
            "Tokens per second (generated)", "Healthy hosts", "5xx responses"} <= titles


@pytest.mark.parametrize("stack", CASES)
def test_the_time_to_first_token_widget_is_the_republished_sum_over_count(stack):
    """The agent drops histograms; the nodes republish TTFT's _sum and _count (llm-deploy-ttft): the widget is their
    ratio per minute, per LLM, under the dimensions the agent files them with."""
    plan, result = planned(stack)
    ttft = service_metrics.metric("vllm", "time_to_first_token").metric
    widgets = [w for w in body(result)["widgets"] if w["properties"].get("title") == TTFT_TITLE]
    llms = [(g, s) for g, s in services(plan) if s.kind == "llm"]
    if not llms:
        assert widgets == []
        return
    (widget,) = widgets
    assert all(w["type"] == "metric" for w in body(result)["widgets"])  # no note saying it is missing
    lines = widget["properties"]["metrics"]
    expressions = [line[0] for line in lines if isinstance(line[0], dict)]
    series = {line[-1]["id"]: line for line in lines if not isinstance(line[0], dict)}
    assert len(expressions) == len(llms)
    for (group, service), expression in zip(llms, expressions, strict=True):
        total, count = expression["expression"].split(" / ")
        assert series[total][1] == f"{ttft}_sum" and series[count][1] == f"{ttft}_count"
        for line in (series[total], series[count]):
            assert line[1] in service_metrics.cloudwatch_names("vllm")  # what the agent's declaration selects
            assert dimensions_of(line) == agent_dimensions(asg_name(result, group.name), service.name)
            assert line[-1]["stat"] == "Sum" and line[-1]["visible"] is False


@pytest.mark.parametrize("stack", CASES)
def test_load_balancer_widgets_name_the_real_alb_and_target_groups(stack):
    plan, result = planned(stack)
    lb = answer(result, ALB, short_name(plan.stack, "alb"))["arnSuffix"]
    suffixes = {s.name: answer(result, TG, short_name(s.name))["arnSuffix"] for _, s in services(plan)}
    lines = [line for line in metric_lines(body(result)) if line[0] == ELB_NAMESPACE]
    for name in ("RequestCount", "HealthyHostCount", "HTTPCode_Target_5XX_Count", "TargetResponseTime"):
        per_group = {dimensions_of(line)["TargetGroup"] for line in lines if line[1] == name}
        assert per_group == set(suffixes.values()), name
    assert {dimensions_of(line)["LoadBalancer"] for line in lines} == {lb}
    assert any(line[1] == "HTTPCode_ELB_5XX_Count" and dimensions_of(line) == {"LoadBalancer": lb} for line in lines)


@pytest.mark.parametrize("stack", CASES)
def test_service_widgets_use_only_metrics_the_nodes_publish_under_the_real_group_names(stack):
    plan, result = planned(stack)
    engine_of = {s.name: service_metrics.ENGINES[s.kind] for _, s in services(plan)}
    group_of = {s.name: g.name for g, s in services(plan)}
    lines = [line for line in metric_lines(body(result)) if line[0] == service_metrics.NAMESPACE]
    assert lines
    for line in lines:
        dims = dimensions_of(line)
        service = dims[service_metrics.SERVICE_DIMENSION]
        assert dims == agent_dimensions(asg_name(result, group_of[service]), service)
        assert line[1] in service_metrics.cloudwatch_names(engine_of[service]), line
    # every service's queue is on the dashboard
    queues = {service_metrics.metric(e, "queue_depth").metric for e in ("vllm", "tei")}
    queued = {dimensions_of(line)[service_metrics.SERVICE_DIMENSION] for line in lines if line[1] in queues}
    assert queued == set(engine_of)


@pytest.mark.parametrize("stack", CASES)
def test_expressions_refer_to_metrics_of_their_own_widget(stack):
    for widget in (w for w in body(planned(stack)[1])["widgets"] if w["type"] == "metric"):
        lines = widget["properties"]["metrics"]
        ids = {line[-1]["id"] for line in lines if isinstance(line[0], str) and "id" in line[-1]}
        for line in lines:
            if isinstance(line[0], dict):
                used = {token for token in line[0]["expression"].replace("(", " ").replace(")", " ").replace("/", " ").split()
                        if token[0].isalpha() and token != "PERIOD"}
                assert used and used <= ids, (widget["properties"]["title"], line)


@pytest.mark.parametrize("stack", CASES)
def test_every_service_alarms_when_no_healthy_host_serves_it(stack):
    plan, result = planned(stack)
    lb = answer(result, ALB, short_name(plan.stack, "alb"))["arnSuffix"]
    for _, service in services(plan):
        alarm = one(result, ALARM, f"monitoring-{service.name}-no-healthy-host")["inputs"]
        assert alarm["namespace"] == ELB_NAMESPACE and alarm["metricName"] == "HealthyHostCount"
        assert alarm["dimensions"] == {"TargetGroup": answer(result, TG, short_name(service.name))["arnSuffix"], "LoadBalancer": lb}
        assert (alarm["statistic"], alarm["comparisonOperator"], alarm["threshold"]) == ("Minimum", "LessThanThreshold", 1)
        assert alarm["period"] * alarm["evaluationPeriods"] == NO_HOST_MINUTES * 60
        assert alarm["treatMissingData"] == "breaching"


@pytest.mark.parametrize("stack", CASES)
def test_a_queue_over_its_target_for_ten_minutes_alarms(stack):
    plan, result = planned(stack)
    for group, service in services(plan):
        alarm = one(result, ALARM, f"monitoring-{service.name}-queue")["inputs"]
        engine = service_metrics.ENGINES[service.kind]
        assert alarm["namespace"] == service_metrics.NAMESPACE
        assert alarm["metricName"] == service_metrics.metric(engine, "queue_depth").metric
        assert service_metrics.metric(engine, "queue_depth") in service_metrics.cloudwatch_metrics(engine)
        assert alarm["dimensions"] == agent_dimensions(asg_name(result, group.name), service.name)
        assert alarm["threshold"] == queue_target(group, service) and alarm["statistic"] == "Average"
        assert alarm["period"] == PERIOD_S and alarm["evaluationPeriods"] == alarm["datapointsToAlarm"] == QUEUE_MINUTES
        assert QUEUE_MINUTES * PERIOD_S == 600
        scaled = {t.service: t.target_queue_per_replica for t in group.scaling.targets} if group.scaling else {}
        assert alarm["threshold"] == scaled.get(service.name, QUEUE_TARGET)
    if stack == "aws-scaled":
        assert one(result, ALARM, "monitoring-chat-queue")["inputs"]["threshold"] == 7


@pytest.mark.parametrize("stack", CASES)
def test_the_5xx_rate_alarm_divides_5xx_answers_by_requests_of_the_real_alb(stack):
    plan, result = planned(stack)
    lb = answer(result, ALB, short_name(plan.stack, "alb"))["arnSuffix"]
    alarm = one(result, ALARM, "monitoring-5xx-rate")["inputs"]
    queries = {q["id"]: q for q in alarm["metricQueries"]}
    assert {q["metric"]["metricName"] for q in queries.values() if "metric" in q} == {
        "RequestCount", "HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count"}
    assert all(q["metric"]["dimensions"] == {"LoadBalancer": lb} for q in queries.values() if "metric" in q)
    (returned,) = [q for q in queries.values() if q.get("returnData")]
    assert "/ requests" in returned["expression"] and alarm["threshold"] == FIVE_XX_PERCENT


def test_alert_email_gets_a_topic_an_email_subscription_and_every_alarm():
    _, result = planned("aws-alerted")
    (topic,) = of_type(result, TOPIC)
    arn = answer(result, TOPIC, topic["name"])["arn"]
    (subscription,) = of_type(result, SUBSCRIPTION)
    assert subscription["inputs"] == {"topic": arn, "protocol": "email", "endpoint": EMAIL}
    alarms = of_type(result, ALARM)
    assert len(alarms) == 2 * 3 + 1  # no healthy host and queue per service, one 5xx rate
    assert all(a["inputs"]["alarmActions"] == [arn] and a["inputs"]["okActions"] == [arn] for a in alarms)
    assert result.outputs["alarm_topic_arn"] == arn


@pytest.mark.parametrize("stack", stacks_on("aws"))
def test_without_alert_email_alarms_only_show_in_cloudwatch(stack):
    _, result = planned(stack)
    assert not of_type(result, TOPIC) and not of_type(result, SUBSCRIPTION)
    assert all(not a["inputs"].get("alarmActions") for a in of_type(result, ALARM))
    assert "alarm_topic_arn" not in result.outputs
