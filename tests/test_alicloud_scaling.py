"""Alibaba Cloud autoscaling and schedules under the offline mock engine: ESS target tracking on (ALB) QPS per
backend server, scheduled tasks in UTC at the zone's offset when `pulumi up` runs (fixed clocks here), the
scale-in hook and the server groups' connection draining."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

import components.stack
from components.alicloud.scaling import DRAIN_SECONDS, REQUEST_TARGET_SHARE, REQUESTS_METRIC, utc_cron
from infra.cli.offline import run_offline
from infra.config import parse_config
from infra.placement import place
from tests.helpers import LLM, answer, of_type, one, raw_config, shipped, stack_problems, stacks_on

SCALING_GROUP = "alicloud:ess/scalingGroup:ScalingGroup"
RULE = "alicloud:ess/scalingRule:ScalingRule"
TASK = "alicloud:ess/scheduledTask:ScheduledTask"
HOOK = "alicloud:ess/lifecycleHook:LifecycleHook"
SERVER_GROUP = "alicloud:alb/serverGroup:ServerGroup"
LOAD = {"requestsPerSecond": 1, "promptTokens": 1000, "outputTokens": 200}
SCALED = {
    "cloud": "alicloud",
    "schedule": {"timezone": "Europe/Berlin", "activeHours": "Mon-Fri 08:00-20:00"},
    "services": [{**LLM, "maxReplicas": 3, "load": LOAD},
                 {"name": "embedding", "kind": "embedding", "model": "intfloat/multilingual-e5-large-instruct", "maxReplicas": 2}],
}
WINTER, SUMMER = datetime(2026, 12, 1, 9, 0, tzinfo=UTC), datetime(2027, 6, 1, 9, 0, tzinfo=UTC)


def run_at(monkeypatch, now: datetime, values: dict, stack: str = "ali-scaled"):
    monkeypatch.setattr(components.stack, "deploy_instant", lambda: now)
    raw = raw_config(stack, values)
    return place(parse_config(raw)), run_offline(raw)


def tasks(result) -> dict[str, dict]:
    return {t["inputs"]["scheduledTaskName"]: t["inputs"] for t in of_type(result, TASK)}


def test_winter_tasks_run_at_the_utc_of_cet_and_end_at_the_spring_change(monkeypatch):
    plan, result = run_at(monkeypatch, WINTER, SCALED)
    (group,) = plan.node_groups
    found = tasks(result)
    assert sorted(found) == ["sleep-llm-embedding-1900", "wake-llm-embedding-0700"]
    wake, sleep = found["wake-llm-embedding-0700"], found["sleep-llm-embedding-1900"]
    assert (wake["recurrenceType"], wake["recurrenceValue"]) == ("Cron", "0 7 * * 1,2,3,4,5")  # 08:00 CET
    assert sleep["recurrenceValue"] == "0 19 * * 1,2,3,4,5"  # 20:00 CET
    assert {t["recurrenceEndTime"] for t in found.values()} == {"2027-03-28T01:00:00Z"}  # the last Sunday of March
    assert (wake["minValue"], wake["maxValue"]) == (group.count, group.max_count)
    assert (sleep["minValue"], sleep["maxValue"]) == (0, 0)
    assert {t["scalingGroupId"] for t in found.values()} == {answer(result, SCALING_GROUP, "ali-scaled-llm-embedding-nodes")["id"]}


def test_summer_tasks_run_at_the_utc_of_cest_and_end_at_the_autumn_change(monkeypatch):
    _, result = run_at(monkeypatch, SUMMER, SCALED)
    found = tasks(result)
    assert found["wake-llm-embedding-0600"]["recurrenceValue"] == "0 6 * * 1,2,3,4,5"  # 08:00 CEST
    assert {t["recurrenceEndTime"] for t in found.values()} == {"2027-10-31T01:00:00Z"}


def test_a_half_hour_zone_without_daylight_saving_crosses_midnight_in_utc_and_ends_in_a_year(monkeypatch):
    values = {"cloud": "alicloud", "schedule": {"timezone": "Asia/Kolkata", "activeHours": "Mon-Fri 03:00-18:00"}, "services": [LLM]}
    plan, result = run_at(monkeypatch, WINTER, values, "ali-india")
    assert plan.node_groups[0].scaling is None and of_type(result, RULE) == []  # a schedule without maxReplicas
    found = tasks(result)
    assert found["wake-llm-2130"]["recurrenceValue"] == "30 21 * * 0,1,2,3,4"  # Mon 03:00 IST is Sun 21:30 UTC
    assert found["sleep-llm-1230"]["recurrenceValue"] == "30 12 * * 1,2,3,4,5"
    assert {t["recurrenceEndTime"] for t in found.values()} == {"2027-12-01T09:00:00Z"}  # 365 days: ESS's limit


def test_each_autoscaled_service_tracks_qps_per_server_of_its_own_server_group(monkeypatch):
    plan, result = run_at(monkeypatch, WINTER, SCALED)
    (group,) = plan.node_groups
    rules = {r["inputs"]["scalingRuleName"]: r["inputs"] for r in of_type(result, RULE)}
    assert sorted(rules) == ["llm-deploy-ali-scaled-embedding-requests", "llm-deploy-ali-scaled-llm-requests"]
    for target in group.scaling.targets:
        rule = rules[f"llm-deploy-ali-scaled-{target.service}-requests"]
        placed = next(s for s in group.services if s.name == target.service)
        assert (rule["scalingRuleType"], rule["metricName"]) == ("TargetTrackingScalingRule", REQUESTS_METRIC)
        assert rule["targetValue"] == round(target.requests_per_second * placed.replicas_per_node * REQUEST_TARGET_SHARE, 3)
        assert rule["alarmDimension"] == {"dimensionKey": "rulePool",
                                          "dimensionValue": answer(result, SERVER_GROUP, f"ali-scaled-lb-{target.service}")["id"]}
        assert rule["estimatedInstanceWarmup"] == group.boot.grace_seconds
    nodes = one(result, SCALING_GROUP, "ali-scaled-llm-embedding-nodes")["inputs"]
    assert (nodes["minSize"], nodes["maxSize"]) == (1, 3)


def test_scale_in_drains_connections_then_holds_the_instance(monkeypatch):
    _, result = run_at(monkeypatch, WINTER, SCALED)
    hook = one(result, HOOK, "ali-scaled-scaling-llm-embedding-drain")["inputs"]
    assert (hook["lifecycleTransition"], hook["heartbeatTimeout"], hook["defaultResult"]) == ("SCALE_IN", DRAIN_SECONDS, "CONTINUE")
    for server_group in of_type(result, SERVER_GROUP):
        assert server_group["inputs"]["connectionDrainConfig"] == {"connectionDrainEnabled": True, "connectionDrainTimeout": 300}


def test_an_autoscaled_llm_needs_its_load_where_the_cloud_scales_on_requests(stack_file):
    path = stack_file({"cloud": "alicloud", "services": [{**LLM, "maxReplicas": 3}]})
    (problem,) = stack_problems(path)
    assert problem.field == "services[0].load"
    assert problem.message.startswith("alicloud scales on requests per node")


@pytest.mark.parametrize("stack", stacks_on("alicloud"))
def test_a_stack_without_schedule_or_max_replicas_gets_none_of_it(stack):
    _, result = shipped(stack)
    assert [r for r in result.resources if r["type"] in (RULE, TASK, HOOK)] == []
    assert all("connectionDrainConfig" not in g["inputs"] for g in of_type(result, SERVER_GROUP))


def test_utc_cron_names_sunday_zero():
    assert utc_cron(("Sun", "Sat"), time(21, 30)) == "30 21 * * 0,6"
