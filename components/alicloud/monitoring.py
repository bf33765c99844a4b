"""CloudMonitor alarms for a stack, mailed to `alertEmail`: a service with no healthy server, and 5xx answers.

What CloudMonitor has of the AWS side (components/aws/monitoring.py): ALB metrics in `acs_alb` per server group
(`ServerGroupHealthyHostCount`) and per instance (`LoadBalancerHTTPCode5XX`, in answers per second: the ALB
publishes no 5xx share per instance to alarm on). What it does not have here: the services' own metrics (no
node publishes vLLM's or TEI's queue to CloudMonitor, so there is no queue alarm), and a dashboard (the provider
has no CloudMonitor dashboard resource): scrape `/metrics/<service>` with your own Prometheus and import
dashboards/llm-deploy.json. The deployment creates this component only with `alertEmail`: a CloudMonitor alarm
needs a contact group.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_alicloud as alicloud

from infra.plan import GATEWAY_PORT, DeploymentPlan

from .layout import cloud_name
from .load_balancer import AlicloudLoadBalancer

ALB_PROJECT = "acs_alb"
PERIOD_S = 60
NO_HOST_MINUTES = 2  # as on AWS: a server group without a healthy server this long fails every request to it
FIVE_XX_PER_SECOND = 1.0  # 5xx answers per second, over FIVE_XX_MINUTES, that alarm
FIVE_XX_MINUTES = 5


def dimensions(load_balancer_id: str, server_group_id: str | None = None) -> str:
    """CloudMonitor's dimensions of the ALB's metrics (or one server group's), as an alarm takes them: a JSON list
    of one object."""
    found = {"loadBalancerId": load_balancer_id}
    if server_group_id:
        found |= {"listenerProtocol": "HTTP", "listenerPort": str(GATEWAY_PORT), "serverGroupId": server_group_id}
    return json.dumps([found])


def critical(operator: str, threshold: float, times: int) -> dict:
    return {"comparison_operator": operator, "statistics": "Value", "threshold": f"{threshold:g}", "times": times}


class AlicloudMonitoring(pulumi.ComponentResource):
    """`llm-deploy:alicloud:Monitoring`: a contact for `alertEmail` (CloudMonitor mails it an activation link
    first), its contact group, and the alarm rules that notify it."""

    def __init__(
        self,
        name: str,
        plan: DeploymentPlan,
        load_balancer: AlicloudLoadBalancer,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("llm-deploy:alicloud:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        assert plan.alert_email, "created only for a stack with alertEmail"
        contact = alicloud.cms.AlarmContact(
            f"{name}-contact",
            alarm_contact_name=cloud_name("llm-deploy", plan.stack, limit=40),
            describe=f"llm-deploy {plan.stack} alarms",
            channels_mail=plan.alert_email,
            opts=child,
        )
        group = alicloud.cms.AlarmContactGroup(
            f"{name}-contacts",
            alarm_contact_group_name=cloud_name("llm-deploy", plan.stack),
            contacts=[contact.alarm_contact_name],
            describe=f"llm-deploy {plan.stack}: who gets its alarms",
            opts=child,
        )
        alb_id = load_balancer.alb.id
        for service, server_group in load_balancer.server_groups.items():
            alicloud.cms.Alarm(
                f"{name}-{service}-no-healthy-host",
                name=cloud_name("llm-deploy", plan.stack, service, "no-healthy-host"),
                project=ALB_PROJECT,
                metric="ServerGroupHealthyHostCount",
                metric_dimensions=pulumi.Output.all(alb_id, server_group.id).apply(lambda ids: dimensions(*ids)),
                period=PERIOD_S,
                escalations_critical=critical("<", 1, NO_HOST_MINUTES),
                contact_groups=[group.alarm_contact_group_name],
                opts=child,
            )
        alicloud.cms.Alarm(
            f"{name}-5xx",
            name=cloud_name("llm-deploy", plan.stack, "5xx"),
            project=ALB_PROJECT,
            metric="LoadBalancerHTTPCode5XX",
            metric_dimensions=alb_id.apply(dimensions),
            period=PERIOD_S,
            escalations_critical=critical(">", FIVE_XX_PER_SECOND, FIVE_XX_MINUTES),
            contact_groups=[group.alarm_contact_group_name],
            opts=child,
        )
        self.outputs: dict[str, object] = {"alarm_contact_group": group.alarm_contact_group_name}
        self.register_outputs(self.outputs)
