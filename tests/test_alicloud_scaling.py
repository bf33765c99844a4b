"""Alibaba Cloud autoscaling and schedules under the offline mock engine: ESS target tracking on (ALB) QPS per
backend server, scheduled tasks in UTC at the zone's offset when `pulumi up` runs (fixed clocks here), the
scale-in hook and the server groups' connection draining."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from typing import ClassVar

import pytest

import components.stack
from components.alicloud.offline import ACCOUNT_ID
from components.alicloud.scaling import (
    DRAIN_SECONDS,
    OOS_VERSION,
    REQUEST_TARGET_SHARE,
    REQUESTS_METRIC,
    SwitchExecutionProvider,
    oos_cron,
)
from infra.cli.offline import run_offline
from infra.cli.refresh import RefreshError
from infra.config import parse_config
from infra.placement import place
from infra.schedule import NO_REQUEST_HOST, unix_cron
from tests.alicloud_api import COMMON, SignedRpc, serve
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


def test_unix_cron_names_sunday_zero():
    assert unix_cron(("Sun", "Sat"), time(21, 30)) == "30 21 * * 0,6"


ALB_RULE = "alicloud:alb/rule:Rule"
TEMPLATE = "alicloud:oos/template:Template"
EXECUTION = "pulumi-python:dynamic/alicloud:SwitchExecution"
WEEKDAYS_AND_FRIDAY = {**SCALED, "schedule": {"timezone": "Europe/Berlin", "activeHours": "Mon-Thu 08:00-20:00; Fri 08:00-16:00"}}


def switches(result) -> dict[str, dict]:
    """The OOS templates by name, their content parsed."""
    return {t["inputs"]["templateName"]: json.loads(t["inputs"]["content"]) for t in of_type(result, TEMPLATE)}


def test_asleep_the_alb_answers_503_json_with_the_wake_up_time_of_each_stretch(monkeypatch):
    plan, result = run_at(monkeypatch, WINTER, WEEKDAYS_AND_FRIDAY)
    rules = of_type(result, ALB_RULE)
    asleep = one(result, ALB_RULE, "ali-scaled-scaling-asleep")["inputs"]
    assert asleep["priority"] == 1 and all(r["inputs"]["priority"] > 1 for r in rules if r["name"] != "ali-scaled-scaling-asleep")
    assert asleep["listenerId"] == answer(result, "alicloud:alb/listener:Listener", "ali-scaled-lb-http")["id"]
    assert asleep["ruleConditions"] == [{"type": "Host", "hostConfig": {"values": [NO_REQUEST_HOST]}}]  # created awake
    (created,) = asleep["ruleActions"]
    assert (created["type"], created["fixedResponseConfig"]["httpCode"]) == ("FixedResponse", "503")
    rule_id = answer(result, ALB_RULE, "ali-scaled-scaling-asleep")["id"]
    role = one(result, "alicloud:ram/role:Role", "ali-scaled-scaling-asleep-switch")["inputs"]["roleName"]
    found = switches(result)
    prefix = "llm-deploy-ali-scaled-"
    assert sorted(found) == [f"{prefix}sleep-1600-fri", f"{prefix}sleep-2000-mon", f"{prefix}sleep-2000-thu",
                             f"{prefix}sleep-2000-tue", f"{prefix}sleep-2000-wed", f"{prefix}wake-0800-mon-tue-wed-thu-fri"]
    for template in found.values():
        timer, change = template["Tasks"]
        assert template["FormatVersion"] == "OOS-2019-06-01" and template["RamRole"] == role
        assert (timer["Action"], timer["Properties"]["Type"], timer["Properties"]["TimeZone"]) == (
            "ACS::TimerTrigger", "cron", "Europe/Berlin")  # wall-clock times: no daylight-saving drift
        assert datetime.fromisoformat(timer["Properties"]["EndDate"]) > WINTER
        assert (change["Action"], change["Properties"]["Service"], change["Properties"]["API"]) == (
            "ACS::ExecuteAPI", "ALB", "UpdateRuleAttribute")
        assert change["Properties"]["Parameters"]["RuleId"] == rule_id
    friday = found[f"{prefix}sleep-1600-fri"]["Tasks"]
    assert friday[0]["Properties"]["Expression"] == "0 0 16 ? * FRI"
    parameters = friday[1]["Properties"]["Parameters"]
    assert parameters["RuleConditions"] == [{"Type": "Path", "PathConfig": {"Values": ["/*"]}}]
    (action,) = parameters["RuleActions"]
    response = action["FixedResponseConfig"]
    assert (action["Type"], response["HttpCode"], response["ContentType"]) == ("FixedResponse", "503", "application/json")
    assert len(response["Content"]) <= 1024 and response["Content"].isascii()  # ALB: at most 1 KB of ASCII
    body = json.loads(response["Content"])
    assert (body["error"], body["wakes_at"], body["timezone"]) == ("asleep", "Mon 08:00", "Europe/Berlin")
    tuesday = found[f"{prefix}sleep-2000-tue"]["Tasks"][1]["Properties"]["Parameters"]
    assert json.loads(tuesday["RuleActions"][0]["FixedResponseConfig"]["Content"])["wakes_at"] == "Wed 08:00"
    wake = found[f"{prefix}wake-0800-mon-tue-wed-thu-fri"]["Tasks"]
    assert wake[0]["Properties"]["Expression"] == "0 0 8 ? * MON,TUE,WED,THU,FRI"
    assert wake[1]["Properties"]["Parameters"] == {"RuleId": rule_id,
                                                   "RuleConditions": [{"Type": "Host", "HostConfig": {"Values": [NO_REQUEST_HOST]}}]}
    # One waiting execution per template, of its current version (a changed template starts a new one).
    executions = {e["inputs"]["template_name"]: e["inputs"] for e in of_type(result, EXECUTION)}
    assert sorted(executions) == sorted(found)
    assert all((e["template_version"], e["region"]) == ("v1", plan.region) for e in executions.values())
    assert of_type(result, "alicloud:oos/execution:Execution") == []  # the provider's waits for Success: a timer never is


def test_the_switch_role_is_oos_s_and_may_update_the_asleep_rule_only(monkeypatch):
    plan, result = run_at(monkeypatch, WINTER, SCALED)
    trust = json.loads(one(result, "alicloud:ram/role:Role", "ali-scaled-scaling-asleep-switch")["inputs"]["assumeRolePolicyDocument"])
    assert trust["Statement"] == [{"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": ["oos.aliyuncs.com"]}}]
    policy = json.loads(one(result, "alicloud:ram/policy:Policy", "ali-scaled-scaling-asleep-switch")["inputs"]["policyDocument"])
    rule_id = answer(result, ALB_RULE, "ali-scaled-scaling-asleep")["id"]
    assert policy["Statement"] == [{"Effect": "Allow", "Action": ["alb:UpdateRuleAttribute"],
                                    "Resource": [f"acs:alb:{plan.region}:{ACCOUNT_ID}:rule/{rule_id}"]}]


def test_no_schedule_no_asleep_rule(monkeypatch):
    values = {key: value for key, value in SCALED.items() if key != "schedule"}
    _, result = run_at(monkeypatch, WINTER, values)
    assert of_type(result, TEMPLATE) == of_type(result, EXECUTION) == []
    assert all(r["inputs"]["priority"] > 1 for r in of_type(result, ALB_RULE))


def test_oos_cron_has_seconds_first_and_day_names():
    assert oos_cron(("Sat", "Sun"), time(21, 30)) == "0 30 21 ? * SAT,SUN"


# --- the switch's execution: OOS StartExecution / CancelExecution, signed, against a stand-in ---------------

KEY, SECRET = "LTAI5tFAKEswitch0123", "switch-secret-0123456789abcdef0"
# Each action's version and the parameters its API reference documents (StartExecution, CancelExecution 2019-06-01).
OOS_ACTIONS = {"StartExecution": {"RegionId", "TemplateName", "TemplateVersion", "Description", "Parameters", "Mode", "LoopMode",
                                  "SafetyCheck", "ParentExecutionId", "ResourceGroupId", "Tags", "TemplateContent"},
               "CancelExecution": {"RegionId", "ExecutionId"}}


class Oos(SignedRpc):
    executions: ClassVar[dict[str, dict]] = {}
    calls: ClassVar[list[dict]] = []

    def answer(self, params):
        action = params["Action"]
        if params["Version"] != OOS_VERSION or action not in OOS_ACTIONS or set(params) - COMMON - OOS_ACTIONS[action]:
            return 400, {"Code": "InvalidParameter", "Message": f"{action}: {sorted(set(params) - COMMON)}"}
        self.calls.append(params)
        if action == "StartExecution":
            if not params.get("TemplateName"):
                return 400, {"Code": "MissingParameter.TemplateName", "Message": "TemplateName is mandatory"}
            execution_id = f"exec-{len(self.executions):016x}"
            self.executions[execution_id] = {"ExecutionId": execution_id, "Status": "Waiting", "TemplateName": params["TemplateName"],
                                             "TemplateVersion": params.get("TemplateVersion", "")}
            return 200, {"Execution": self.executions[execution_id]}
        found = self.executions.get(params["ExecutionId"])
        if found is None:
            return 404, {"Code": "EntityNotExists.Execution", "Message": "The specified execution does not exist."}
        found["Status"] = "Cancelled"
        return 200, {}


@pytest.fixture
def oos(monkeypatch):
    Oos.executions, Oos.calls = {}, []
    with serve(Oos, monkeypatch, KEY, SECRET):
        yield Oos


PROPS = {"region": "ap-southeast-1", "template_name": "llm-deploy-prod-sleep-2000-mon", "template_version": "v2",
         "description": "llm-deploy stack prod: sleep at Mon 20:00 Europe/Berlin"}


def test_the_switch_starts_one_waiting_execution_of_the_templates_version_and_cancels_it(oos):
    provider = SwitchExecutionProvider()
    created = provider.create(dict(PROPS))
    (start,) = oos.calls
    assert (start["Action"], start["RegionId"], start["TemplateName"], start["TemplateVersion"]) == (
        "StartExecution", "ap-southeast-1", PROPS["template_name"], "v2")
    assert created.id == "exec-0000000000000000" and created.outs["status"] == "Waiting"
    provider.delete(created.id, created.outs)
    assert oos.calls[-1]["Action"] == "CancelExecution" and oos.executions[created.id]["Status"] == "Cancelled"


def test_an_execution_gone_with_its_template_is_deleted_quietly_and_other_errors_raise(oos):
    provider = SwitchExecutionProvider()
    provider.delete("exec-00000000000000ff", dict(PROPS))  # EntityNotExists: nothing left to cancel
    with pytest.raises(RefreshError, match="MissingParameter.TemplateName"):
        provider.create({**PROPS, "template_name": ""})


def test_a_new_template_version_replaces_the_execution():
    diff = SwitchExecutionProvider().diff("exec-1", dict(PROPS), {**PROPS, "template_version": "v3"})
    assert diff.changes and diff.replaces == ["template_version"] and diff.delete_before_replace
    assert not SwitchExecutionProvider().diff("exec-1", dict(PROPS), dict(PROPS)).changes
