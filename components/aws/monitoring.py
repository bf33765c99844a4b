"""CloudWatch for a stack: one dashboard (requests, queue depth, time to first token, tokens/s, healthy hosts,
5xx) and the alarms a user wants to be woken by (a service with no healthy host, a 5xx rate, a queue over its
target for 10 minutes), sent to an SNS topic that mails `alertEmail` when the stack sets one.

The load balancer's metrics come from `AWS/ApplicationELB`; the services' own from the namespace the nodes'
CloudWatch agent publishes them to, under the names and dimensions of infra/service_metrics.py (the metric names
the pinned vLLM and TEI publish, data/service_metrics.csv). The agent drops Prometheus histograms, so the node
republishes time to first token's `_sum` and `_count` as a summary (bootstrap/files/llm-deploy-ttft): its widget
is their ratio per minute, the mean time to first token (percentiles stay on the Grafana dashboard, from
/metrics/<service>). The dashboard's body is built by pure functions from plain values, once Pulumi has the
resources' names, so it is tested as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import service_metrics
from infra.plan import DeploymentPlan, NodeGroup, PlacedService

from .layout import short_name
from .load_balancer import AwsLoadBalancer
from .node_group import AwsNodeGroup

ELB_NAMESPACE = "AWS/ApplicationELB"
PERIOD_S = 60  # ALB metrics come every 60 s; the agent publishes at the same interval
NO_HOST_MINUTES = 2  # a target group without a healthy host for this long: every request to it fails
FIVE_XX_PERCENT = 5.0  # share of requests answered 5xx (by the nodes or by the ALB itself) that alarms
FIVE_XX_MINUTES = 5
QUEUE_MINUTES = 10  # a queue over its target this long means the service needs more replicas than it has
WIDTH, HEIGHT = 12, 6  # a widget: half the dashboard's 24 columns
# Queued requests per replica the queue alarm allows, until the scaling target (issue 15 part 1: the load model's,
# or targetQueuePerReplica) is in the plan: a replica with requests waiting this long is saturated.
QUEUE_TARGET = 4.0
TTFT_TITLE = "Time to first token (mean per minute, s)"


def queue_target(group: NodeGroup, service: PlacedService) -> float:
    """Queued requests per replica above which the service is short of replicas: an autoscaled service's scaling
    target (the plan's, from `targetQueuePerReplica` or the load model), else QUEUE_TARGET."""
    targets = {t.service: t.target_queue_per_replica for t in group.scaling.targets} if group.scaling else {}
    return targets.get(service.name, QUEUE_TARGET)


@dataclass(frozen=True)
class ServiceTarget:
    """One service as the dashboard and the alarms see it: its target group and where the agent files its metrics."""

    service: str
    engine: str  # the engine serving it (service_metrics.engine_of): what it publishes, if anything
    target_group: str  # the target group's ARN suffix (CloudWatch's TargetGroup dimension)
    autoscaling_group: str  # the name of its node group's Auto Scaling group (the agent's dimension)

    @property
    def dimensions(self) -> dict[str, str]:
        return agent_dimensions(self.autoscaling_group, self.service)


def agent_dimensions(autoscaling_group: str, service: str) -> dict[str, str]:
    """The dimensions the nodes' agent files a service's metrics under."""
    return {service_metrics.ASG_DIMENSION: autoscaling_group, service_metrics.SERVICE_DIMENSION: service}


@dataclass(frozen=True)
class ServicePanel:
    """A dashboard widget over the services' own metrics: the signal (data/service_metrics.csv) it shows of each
    engine that publishes it to CloudWatch."""

    title: str
    signal: str
    reading: str  # "gauge": the value, summed over the group's replicas; "rate": a counter's increase per second


SERVICE_PANELS = (
    ServicePanel("Queue depth (requests waiting)", "queue_depth", "gauge"),
    ServicePanel("Requests per second (by the services)", "requests", "rate"),
    ServicePanel("Tokens per second (generated)", "generation_tokens", "rate"),
    ServicePanel("Running requests", "running", "gauge"),
)


def cloudwatch_metric(engine: str, signal: str) -> str | None:
    """The name under which the nodes publish an engine's signal to CloudWatch, or None when they do not."""
    return next((m.metric for m in service_metrics.cloudwatch_metrics(engine) if m.signal == signal), None)


def _widget(title: str, metrics: list, stat: str, region: str, index: int) -> dict:
    return {
        "type": "metric",
        "x": (index % 2) * WIDTH,
        "y": (index // 2) * HEIGHT,
        "width": WIDTH,
        "height": HEIGHT,
        "properties": {"title": title, "region": region, "view": "timeSeries", "stacked": False, "stat": stat,
                       "period": PERIOD_S, "metrics": metrics},
    }


def _elb_metric(name: str, load_balancer: str, target: ServiceTarget | None, stat: str, label: str | None = None) -> list:
    dimensions = ["TargetGroup", target.target_group, "LoadBalancer", load_balancer] if target else ["LoadBalancer", load_balancer]
    return [ELB_NAMESPACE, name, *dimensions, {"stat": stat, "label": label or (target.service if target else "load balancer")}]


def _service_metrics(panel: ServicePanel, targets: Sequence[ServiceTarget]) -> list:
    """The widget's lines: per service whose engine publishes the panel's signal, the metric or its rate."""
    lines: list = []
    for n, target in enumerate(targets):
        name = cloudwatch_metric(target.engine, panel.signal)
        if name is None:
            continue
        dims = [part for item in target.dimensions.items() for part in item]
        if panel.reading == "gauge":
            lines.append([service_metrics.NAMESPACE, name, *dims, {"stat": "Sum", "label": target.service}])
        else:  # the agent publishes a counter's increase per scrape: the period's sum over its seconds
            lines.append([service_metrics.NAMESPACE, name, *dims, {"id": f"m{n}", "stat": "Sum", "visible": False}])
            lines.append([{"expression": f"m{n} / PERIOD(m{n})", "label": target.service, "id": f"e{n}"}])
    return lines


def _mean_metrics(signal: str, targets: Sequence[ServiceTarget]) -> list:
    """The widget's lines for a republished histogram: per service whose engine has it, the minute's sum over its
    count (both per-scrape deltas summed over the group's replicas), the mean."""
    lines: list = []
    for n, target in enumerate(targets):
        histogram = next((m.metric for m in service_metrics.republished_metrics(target.engine) if m.signal == signal), None)
        if histogram is None:
            continue
        dims = [part for item in target.dimensions.items() for part in item]
        lines.append([service_metrics.NAMESPACE, f"{histogram}_sum", *dims, {"id": f"s{n}", "stat": "Sum", "visible": False}])
        lines.append([service_metrics.NAMESPACE, f"{histogram}_count", *dims, {"id": f"c{n}", "stat": "Sum", "visible": False}])
        lines.append([{"expression": f"s{n} / c{n}", "label": f"{target.service} mean", "id": f"t{n}"}])
    return lines


def dashboard_body(region: str, load_balancer: str, targets: Sequence[ServiceTarget]) -> str:
    """The dashboard as CloudWatch takes it: JSON naming the ALB, the target groups (ARN suffixes) and the Auto
    Scaling groups (names)."""
    requests = ("Requests (at the load balancer)", [_elb_metric("RequestCount", load_balancer, t, "Sum") for t in targets], "Sum")
    latency = ("Target response time (s)", [_elb_metric("TargetResponseTime", load_balancer, t, "p95", f"{t.service} p95")
                                            for t in targets], "p95")
    healthy = ("Healthy hosts", [_elb_metric("HealthyHostCount", load_balancer, t, "Minimum") for t in targets], "Minimum")
    errors = ("5xx responses", [*(_elb_metric("HTTPCode_Target_5XX_Count", load_balancer, t, "Sum") for t in targets),
                                _elb_metric("HTTPCode_ELB_5XX_Count", load_balancer, None, "Sum")], "Sum")
    queue, *served = [(p.title, _service_metrics(p, targets), "Sum") for p in SERVICE_PANELS]
    ttft = (TTFT_TITLE, _mean_metrics("time_to_first_token", targets), "Sum")
    panels = [(title, lines, stat) for title, lines, stat in [requests, queue, ttft, latency, *served, healthy, errors] if lines]
    widgets = [_widget(title, lines, stat, region, i) for i, (title, lines, stat) in enumerate(panels)]
    return json.dumps({"widgets": widgets})


def five_xx_queries(load_balancer: str) -> list[dict]:
    """The 5xx rate as a metric-math alarm: 5xx answers (nodes' and the ALB's own) per 100 requests."""

    def metric(query_id: str, name: str) -> dict:
        return {"id": query_id, "return_data": False, "metric": {
            "namespace": ELB_NAMESPACE, "metric_name": name, "dimensions": {"LoadBalancer": load_balancer},
            "period": PERIOD_S, "stat": "Sum"}}

    return [
        metric("requests", "RequestCount"),
        metric("target5xx", "HTTPCode_Target_5XX_Count"),
        metric("elb5xx", "HTTPCode_ELB_5XX_Count"),
        {"id": "rate", "return_data": True, "label": "5xx per 100 requests",
         "expression": "100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / requests"},
    ]


class AwsMonitoring(pulumi.ComponentResource):
    """`llm-deploy:aws:Monitoring`: the stack's CloudWatch dashboard and alarms, and with `alertEmail` the SNS topic
    they notify (AWS mails the address a confirmation link first; nothing is delivered until it is clicked)."""

    def __init__(
        self,
        name: str,
        plan: DeploymentPlan,
        load_balancer: AwsLoadBalancer,
        node_groups: Sequence[AwsNodeGroup],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("llm-deploy:aws:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        target_groups = {n: tg for m in node_groups for n, tg in m.target_groups.items()}  # service names are unique
        # node group → its Auto Scaling group's name (the components are in the plan's order)
        asgs = {g.name: m.autoscaling_group.name for g, m in zip(plan.node_groups, node_groups, strict=True)}
        actions: list[pulumi.Output[str]] = []
        self.outputs: dict[str, object] = {}
        if plan.alert_email:
            topic = aws.sns.Topic(f"{name}-alarms", display_name=f"llm-deploy {plan.stack} alarms", opts=child)
            aws.sns.TopicSubscription(f"{name}-email", topic=topic.arn, protocol="email", endpoint=plan.alert_email, opts=child)
            actions = [topic.arn]
            self.outputs["alarm_topic_arn"] = topic.arn

        lb_suffix = load_balancer.alb.arn_suffix
        services = [(g, s) for g in plan.node_groups for s in g.services]

        suffixes = [target_groups[s.name].arn_suffix for _, s in services]
        asg_names = [asgs[g.name] for g, _ in services]

        def targets(values: Sequence[str]) -> list[ServiceTarget]:
            count = len(services)
            return [ServiceTarget(s.name, service_metrics.engine_of(s), tg, asg)
                    for (_, s), tg, asg in zip(services, values[:count], values[count:], strict=True)]

        resolved = pulumi.Output.all(lb_suffix, *suffixes, *asg_names).apply(lambda v: (v[0], targets(v[1:])))
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=short_name("llm-deploy", plan.stack, limit=255),
            dashboard_body=resolved.apply(lambda v: dashboard_body(plan.region, v[0], v[1])),
            opts=child,
        )
        self.outputs["dashboard_name"] = self.dashboard.dashboard_name

        alarm = {"alarm_actions": actions, "ok_actions": actions, "opts": child}
        for (g, s), suffix, asg in zip(services, suffixes, asg_names, strict=True):
            aws.cloudwatch.MetricAlarm(
                f"{name}-{s.name}-no-healthy-host",
                alarm_description=f"llm-deploy {plan.stack}: no healthy node serves {s.name}; its requests fail",
                namespace=ELB_NAMESPACE, metric_name="HealthyHostCount",
                dimensions={"TargetGroup": suffix, "LoadBalancer": lb_suffix},
                statistic="Minimum", period=PERIOD_S, evaluation_periods=NO_HOST_MINUTES,
                comparison_operator="LessThanThreshold", threshold=1,
                treat_missing_data="breaching",  # ALB reports the count while health checks run; none is no host
                **alarm,
            )
            if not s.publishes_metrics:  # Ollama: no queue metric reaches CloudWatch, so no queue alarm
                continue
            queue = service_metrics.metric(service_metrics.engine_of(s), "queue_depth").metric
            aws.cloudwatch.MetricAlarm(
                f"{name}-{s.name}-queue",
                alarm_description=(f"llm-deploy {plan.stack}: {s.name} has queued more than {queue_target(g, s):g} "
                                   f"requests per replica for {QUEUE_MINUTES} minutes; it needs more replicas"),
                namespace=service_metrics.NAMESPACE, metric_name=queue,
                dimensions=asg.apply(lambda name, service=s.name: agent_dimensions(name, service)),
                statistic="Average", period=PERIOD_S, evaluation_periods=QUEUE_MINUTES, datapoints_to_alarm=QUEUE_MINUTES,
                comparison_operator="GreaterThanThreshold", threshold=queue_target(g, s),
                treat_missing_data="notBreaching",  # no node publishing (scaled to zero, booting) is no queue
                **alarm,
            )
        aws.cloudwatch.MetricAlarm(
            f"{name}-5xx-rate",
            alarm_description=f"llm-deploy {plan.stack}: over {FIVE_XX_PERCENT:g} % of requests answered 5xx for {FIVE_XX_MINUTES} minutes",
            metric_queries=lb_suffix.apply(five_xx_queries),
            evaluation_periods=FIVE_XX_MINUTES, comparison_operator="GreaterThanThreshold", threshold=FIVE_XX_PERCENT,
            treat_missing_data="notBreaching",  # no requests: no rate
            **alarm,
        )
        self.register_outputs(self.outputs)
