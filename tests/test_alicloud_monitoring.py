"""The Alibaba Cloud stack's CloudMonitor alarms and contact group, run for real under the offline mock engine."""

from __future__ import annotations

import json

import pytest

from components.alicloud.monitoring import ALB_PROJECT, FIVE_XX_MINUTES, FIVE_XX_PER_SECOND, NO_HOST_MINUTES, PERIOD_S
from infra.plan import GATEWAY_PORT
from tests.helpers import id_of, of_type, one, planner, raw_config, stacks_on

ALB = "alicloud:alb/loadBalancer:LoadBalancer"
SERVER_GROUP = "alicloud:alb/serverGroup:ServerGroup"
CONTACT = "alicloud:cms/alarmContact:AlarmContact"
CONTACT_GROUP = "alicloud:cms/alarmContactGroup:AlarmContactGroup"
ALARM = "alicloud:cms/alarm:Alarm"
EMAIL = "oncall@acme-inference.io"

ALERTED = {"cloud": "alicloud", "region": "ap-southeast-1", "alertEmail": EMAIL}
RAW = {"ali-alerted": lambda: raw_config("ali-alerted", ALERTED)}
planned = planner(RAW)


def test_alerted_stack_gets_a_contact_for_the_email_in_a_group_every_alarm_notifies():
    _, result = planned("ali-alerted")
    (contact,) = of_type(result, CONTACT)
    (group,) = of_type(result, CONTACT_GROUP)
    assert contact["inputs"]["channelsMail"] == EMAIL
    assert group["inputs"]["contacts"] == [contact["inputs"]["alarmContactName"]]
    alarms = of_type(result, ALARM)
    assert alarms and all(a["inputs"]["contactGroups"] == [group["inputs"]["alarmContactGroupName"]] for a in alarms)
    assert result.outputs["alarm_contact_group"] == group["inputs"]["alarmContactGroupName"]


def test_every_server_group_alarms_when_it_has_no_healthy_server():
    plan, result = planned("ali-alerted")
    alb = id_of(result, ALB, "ali-alerted-lb-alb")
    for service in (s for g in plan.node_groups for s in g.services):
        alarm = one(result, ALARM, f"ali-alerted-monitoring-{service.name}-no-healthy-host")["inputs"]
        assert (alarm["project"], alarm["metric"], alarm["period"]) == (ALB_PROJECT, "ServerGroupHealthyHostCount", PERIOD_S)
        assert json.loads(alarm["metricDimensions"]) == [{
            "loadBalancerId": alb, "listenerProtocol": "HTTP", "listenerPort": str(GATEWAY_PORT),
            "serverGroupId": id_of(result, SERVER_GROUP, f"ali-alerted-lb-{service.name}")}]
        assert alarm["escalationsCritical"] == {"comparisonOperator": "<", "statistics": "Value", "threshold": "1", "times": NO_HOST_MINUTES}


def test_5xx_answers_of_the_real_alb_alarm():
    _, result = planned("ali-alerted")
    alarm = one(result, ALARM, "ali-alerted-monitoring-5xx")["inputs"]
    assert (alarm["project"], alarm["metric"]) == (ALB_PROJECT, "LoadBalancerHTTPCode5XX")
    assert json.loads(alarm["metricDimensions"]) == [{"loadBalancerId": id_of(result, ALB, "ali-alerted-lb-alb")}]
    assert alarm["escalationsCritical"] == {"comparisonOperator": ">", "statistics": "Value", "threshold": f"{FIVE_XX_PER_SECOND:g}",
                                            "times": FIVE_XX_MINUTES}


@pytest.mark.parametrize("stack", stacks_on("alicloud"))
def test_without_alert_email_no_cloudmonitor_resource_exists(stack):
    """A CloudMonitor alarm needs a contact group: with nobody to tell, nothing is created."""
    _, result = planned(stack)
    assert not [r for r in result.resources if r["type"].startswith("alicloud:cms/") or r["type"] == "llm-deploy:alicloud:Monitoring"]
    assert "alarm_contact_group" not in result.outputs
