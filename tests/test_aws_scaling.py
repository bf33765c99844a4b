"""AWS autoscaling and schedules, run under the offline mock engine: target tracking on queue depth, the drain
hook, scheduled actions in the stack's timezone, and the listener's asleep answer switched by EventBridge."""

from __future__ import annotations

import json
from datetime import time

import pytest

from components.aws.scaling import MODIFY_RULE, NO_REQUEST_HOST, scheduler_cron
from infra.schedule import unix_cron
from infra.service_metrics import NAMESPACE
from tests.helpers import LLM, answer, of_type, one, planner, raw_config, stacks_on

ASG = "aws:autoscaling/group:Group"
POLICY = "aws:autoscaling/policy:Policy"
HOOK = "aws:autoscaling/lifecycleHook:LifecycleHook"
ACTION = "aws:autoscaling/schedule:Schedule"
TG = "aws:lb/targetGroup:TargetGroup"
RULE = "aws:lb/listenerRule:ListenerRule"
SWITCH = "aws:scheduler/schedule:Schedule"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
SCALING_TYPES = (POLICY, HOOK, ACTION, SWITCH)

SCALED = {
    "cloud": "aws",
    "schedule": {"timezone": "Europe/Berlin", "activeHours": "Mon-Thu 08:00-20:00; Fri 08:00-16:00"},
    "services": [
        {**LLM, "replicas": 1, "maxReplicas": 4},
        {"name": "embedding", "kind": "embedding", "model": "intfloat/multilingual-e5-large-instruct", "accelerator": "cpu",
         "maxReplicas": 3, "targetQueuePerReplica": 20},
    ],
}
INDIA = {"cloud": "aws", "schedule": {"timezone": "Asia/Kolkata", "activeHours": "Mon-Fri 09:30-18:00"}, "services": [LLM]}
RAW = {"aws-scaled": lambda: raw_config("aws-scaled", SCALED), "aws-india": lambda: raw_config("aws-india", INDIA)}
planned = planner(RAW)


def asg_name(result, group: str) -> str:
    """The name AWS gave the node group's autoscaling group (what the metric dimensions and actions name)."""
    return answer(result, ASG, f"{group}-asg")["name"]


def test_each_autoscaled_service_tracks_its_queue_per_replica():
    plan, result = planned("aws-scaled")
    policies = {p["name"]: p["inputs"] for p in of_type(result, POLICY)}
    expected = {f"{g.name}-{t.service}-queue": (g, t) for g in plan.node_groups for t in g.scaling.targets}
    assert sorted(policies) == sorted(expected) and len(expected) == 2
    for name, (group, target) in expected.items():
        policy = policies[name]
        assert policy["policyType"] == "TargetTrackingScaling"
        assert policy["estimatedInstanceWarmup"] == group.boot.grace_seconds
        tracking = policy["targetTrackingConfiguration"]
        assert tracking["targetValue"] == target.target_queue_per_replica
        metric = tracking["customizedMetricSpecification"]
        queue = {"llm": "vllm:num_requests_waiting", "embedding": "te_queue_size"}[target.kind]  # as the pinned engines name it
        assert (metric["namespace"], metric["metricName"], metric["statistic"]) == (NAMESPACE, queue, "Average")
        assert metric["metricDimensions"] == [{"name": "AutoScalingGroupName", "value": asg_name(result, group.name)},
                                              {"name": "service", "value": target.service}]
    embedding = next(t for g in plan.node_groups for t in g.scaling.targets if t.service == "embedding")
    assert embedding.target_queue_per_replica == 20  # the stack's targetQueuePerReplica


def test_the_group_runs_from_replicas_to_the_ceiling():
    plan, result = planned("aws-scaled")
    for group in plan.node_groups:
        asg = one(result, ASG, f"{group.name}-asg")["inputs"]
        assert (asg["minSize"], asg["desiredCapacity"], asg["maxSize"]) == (group.count, group.count, group.max_count)
        assert group.max_count > group.count


def test_a_node_leaves_only_after_the_deregistration_delay_on_scale_in():
    plan, result = planned("aws-scaled")
    delays = {tg["inputs"]["deregistrationDelay"] for tg in of_type(result, TG)}
    for group in plan.node_groups:
        hook = one(result, HOOK, f"{group.name}-drain")["inputs"]
        assert hook["lifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
        assert hook["defaultResult"] == "CONTINUE"
        assert hook["heartbeatTimeout"] == max(delays) == 300
        assert hook["autoscalingGroupName"] == asg_name(result, group.name)


def test_scheduled_actions_sleep_to_zero_and_wake_to_replicas_in_the_stacks_timezone():
    plan, result = planned("aws-scaled")
    for group in plan.node_groups:
        actions = {a["name"].removeprefix(f"{group.name}-"): a["inputs"] for a in of_type(result, ACTION)
                   if a["name"].startswith(f"{group.name}-")}
        assert sorted(actions) == ["sleep-1600-fri", "sleep-2000-mon-tue-wed-thu", "wake-0800-mon-tue-wed-thu-fri"]
        assert {a["timeZone"] for a in actions.values()} == {"Europe/Berlin"}
        assert actions["wake-0800-mon-tue-wed-thu-fri"]["recurrence"] == "0 8 * * 1,2,3,4,5"
        assert actions["sleep-1600-fri"]["recurrence"] == "0 16 * * 5"
        wake = actions["wake-0800-mon-tue-wed-thu-fri"]
        assert (wake["minSize"], wake["desiredCapacity"], wake["maxSize"]) == (group.count, group.count, group.max_count)
        for name in ("sleep-1600-fri", "sleep-2000-mon-tue-wed-thu"):
            assert (actions[name]["minSize"], actions[name]["desiredCapacity"], actions[name]["maxSize"]) == (0, 0, 0)
        assert {a["autoscalingGroupName"] for a in actions.values()} == {asg_name(result, group.name)}


def test_asleep_the_load_balancer_answers_503_json_with_the_wake_up_time():
    _, result = planned("aws-scaled")
    rules = of_type(result, RULE)
    asleep = one(result, RULE, "asleep")["inputs"]
    assert asleep["priority"] == 1 and all(r["inputs"]["priority"] > 1 for r in rules if r["name"] != "asleep")
    assert asleep["conditions"] == [{"hostHeader": {"values": [NO_REQUEST_HOST]}}]  # created awake
    rule_arn = answer(result, RULE, "asleep")["arn"]
    switches = {s["name"]: s["inputs"] for s in of_type(result, SWITCH)}
    assert sorted(switches) == ["sleep-1600-fri", "sleep-2000-mon", "sleep-2000-thu", "sleep-2000-tue", "sleep-2000-wed",
                                "wake-0800-mon-tue-wed-thu-fri"]
    for switch in switches.values():
        assert switch["scheduleExpressionTimezone"] == "Europe/Berlin"
        assert switch["flexibleTimeWindow"] == {"mode": "OFF"}
        assert switch["target"]["arn"] == MODIFY_RULE
        assert switch["target"]["roleArn"] == answer(result, ROLE, "aws-scaled-asleep-switch")["arn"]
        request = json.loads(switch["target"]["input"])
        assert request["RuleArn"] == rule_arn
    friday = json.loads(switches["sleep-1600-fri"]["target"]["input"])
    assert switches["sleep-1600-fri"]["scheduleExpression"] == "cron(0 16 ? * FRI *)"
    assert friday["Conditions"] == [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/*"]}}]
    (action,) = friday["Actions"]
    response = action["FixedResponseConfig"]
    assert (response["StatusCode"], response["ContentType"]) == ("503", "application/json")
    body = json.loads(response["MessageBody"])
    assert (body["error"], body["wakes_at"], body["timezone"]) == ("asleep", "Mon 08:00", "Europe/Berlin")
    assert len(response["MessageBody"]) <= 1024  # ALB's limit on a fixed response
    tuesday = json.loads(json.loads(switches["sleep-2000-tue"]["target"]["input"])["Actions"][0]["FixedResponseConfig"]["MessageBody"])
    assert tuesday["wakes_at"] == "Wed 08:00"
    wake = json.loads(switches["wake-0800-mon-tue-wed-thu-fri"]["target"]["input"])
    assert wake == {"RuleArn": rule_arn, "Conditions": [{"Field": "host-header", "HostHeaderConfig": {"Values": [NO_REQUEST_HOST]}}]}


def test_the_switch_may_modify_that_rule_only():
    _, result = planned("aws-scaled")
    trust = json.loads(one(result, ROLE, "aws-scaled-asleep-switch")["inputs"]["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "scheduler.amazonaws.com"}
    policy = json.loads(one(result, ROLE_POLICY, "asleep-switch")["inputs"]["policy"])
    assert policy["Statement"] == [{"Effect": "Allow", "Action": "elasticloadbalancing:ModifyRule",
                                    "Resource": answer(result, RULE, "asleep")["arn"]}]


def test_a_half_hour_zone_schedules_on_the_half_hour_without_autoscaling():
    _, result = planned("aws-india")
    assert of_type(result, POLICY) == []  # no maxReplicas: no target tracking, the schedule only
    actions = {a["name"]: a["inputs"] for a in of_type(result, ACTION)}
    assert actions["llm-wake-0930-mon-tue-wed-thu-fri"]["recurrence"] == "30 9 * * 1,2,3,4,5"
    assert actions["llm-wake-0930-mon-tue-wed-thu-fri"]["timeZone"] == "Asia/Kolkata"
    assert one(result, SWITCH, "wake-0930-mon-tue-wed-thu-fri")["inputs"]["scheduleExpression"] == "cron(30 9 ? * MON,TUE,WED,THU,FRI *)"


@pytest.mark.parametrize("stack", stacks_on("aws"))
def test_a_stack_without_schedule_or_max_replicas_gets_none_of_it(stack):
    plan, result = planned(stack)
    assert plan.schedule is None and all(g.scaling is None for g in plan.node_groups)
    assert [r for r in result.resources if r["type"] in SCALING_TYPES] == []
    assert [r["name"] for r in of_type(result, RULE) if r["name"] == "asleep"] == []


def test_cron_forms_name_sunday_as_each_cloud_does():
    assert unix_cron(("Sat", "Sun"), time(0, 0)) == "0 0 * * 6,0"
    assert scheduler_cron(("Sun",), time(23, 45)) == "cron(45 23 ? * SUN *)"
