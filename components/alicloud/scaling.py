"""Autoscaling and the schedule on Alibaba Cloud: ESS target-tracking rules on CloudMonitor, ESS scheduled tasks,
and a scale-in lifecycle hook.

- Signal: requests per node, CloudMonitor's `LoadBalancerRealServerAverageQps` ((ALB) QPS per backend server of
  one server group), a system metric ESS target tracking takes. Queue depth would be the better signal, but
  the nodes publish nothing to CloudMonitor here (the record's `queue_metric` is false: only AWS nodes run a
  metrics agent), so one rule per autoscaled service holds its server group's QPS per node at
  REQUEST_TARGET_SHARE of what the node's replicas serve by the load model.
- Scheduled tasks: ESS takes no timezone; its cron is UTC. Each task is the stack's local time moved to UTC at
  the zone's offset when `pulumi up` runs, and ends at the zone's next offset change (daylight saving) or in
  a year (ESS's limit on a recurrence), whichever is first: run `pulumi up` again after such a change (the
  stack's tasks then stop rather than fire an hour off). Sleep sets the group to 0..0, wake back to
  `replicas`..ceiling.
- Scale-in: the server groups drain connections for DRAIN_SECONDS (load_balancer.py, with this module), and a
  SCALE_IN lifecycle hook holds a leaving instance that long before ESS releases it.
- Asleep answer: the listener's first rule answers 503 with a JSON body saying when the stack wakes up (ALB
  FixedResponse). OOS switches it: per switch (each wake; each stretch's end, with the body of the wake after it)
  a template whose first task is an ACS::TimerTrigger (cron in the stack's own timezone, so no daylight-saving
  drift) and whose second calls ALB UpdateRuleAttribute (ACS::ExecuteAPI) as a RAM role that may do only that;
  an OOS execution of each template waits for its timer, runs, and waits again. At a sleep the rule matches every
  path; at a wake a host no request names (infra/schedule.py NO_REQUEST_HOST), as on AWS. The executions are
  started by `SwitchExecution`, a dynamic resource calling OOS StartExecution (signed like the rollout gate's
  calls): the provider's `oos.Execution` waits for the execution to succeed, which a timer's never does before
  its EndDate, so `pulumi up` would hang on it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, time, timedelta
from typing import Any

import pulumi
import pulumi.dynamic
import pulumi_alicloud as alicloud

from components.alicloud.layout import cloud_name
from infra.plan import DeploymentPlan, NodeGroup
from infra.schedule import NO_REQUEST_HOST, Schedule, Stretch, quartz_days, unix_cron

REQUESTS_METRIC = "LoadBalancerRealServerAverageQps"
# CreateScalingRule: with that metric, AlarmDimension names the ALB server group as `rulePool`.
SERVER_GROUP_DIMENSION = "rulePool"
REQUEST_TARGET_SHARE = 0.8  # scale out before a node's replicas are full, so requests do not queue meanwhile
DRAIN_SECONDS = 300  # as AWS's deregistration delay: a streamed completion has that long to finish
LONGEST_RECURRENCE = timedelta(days=365)  # ESS: RecurrenceEndTime at most 365 days after the task's creation
ASLEEP_RULE_PRIORITY = 1  # before every path rule (load_balancer.py RULE_PRIORITY starts at 10)
# ACS::TimerTrigger requires an EndDate; OOS's own scheduled templates default to this one (aliyun/oos-templates).
SWITCH_END = "2099-12-01T00:00:00Z"
OOS_TRUST_POLICY = {"Version": "1", "Statement": [
    {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": ["oos.aliyuncs.com"]}}]}


def task_end(schedule: Schedule, now: datetime) -> datetime:
    """When the tasks written at `now` stop: the zone's next offset change, or ESS's longest recurrence."""
    change = schedule.offset_change_after(now, LONGEST_RECURRENCE)
    return change or (now + LONGEST_RECURRENCE).replace(second=0, microsecond=0)


def oos_cron(days: Sequence[str], at: time) -> str:
    """ACS::TimerTrigger's cron (seconds minutes hours day-of-month month day-of-week, Quartz style)."""
    return f"0 {at.minute} {at.hour} ? * {quartz_days(days)}"


def asleep_rule_change(rule_id: str, schedule: Schedule, stretch: Stretch | None) -> dict:
    """UpdateRuleAttribute's parameters (the API's names): at a stretch's end every path answered with the body of
    the wake that follows; `stretch` None (a wake), no request matched."""
    if stretch is None:
        return {"RuleId": rule_id, "RuleConditions": [{"Type": "Host", "HostConfig": {"Values": [NO_REQUEST_HOST]}}]}
    return {"RuleId": rule_id, "RuleConditions": [{"Type": "Path", "PathConfig": {"Values": ["/*"]}}],
            "RuleActions": [{"Order": 1, "Type": "FixedResponse", "FixedResponseConfig": {
                "HttpCode": "503", "ContentType": "application/json", "Content": json.dumps(schedule.asleep_answer(stretch))}}]}


def switch_template(role_name: str, schedule: Schedule, days: Sequence[str], at: time, change: dict) -> str:
    """The OOS template of one switch: wait for the time (in the stack's zone), then change the rule."""
    return json.dumps({
        "FormatVersion": "OOS-2019-06-01",
        "Description": f"llm-deploy: the asleep answer at {','.join(days)} {at:%H:%M} {schedule.timezone}",
        "RamRole": role_name,
        "Tasks": [
            {"Name": "timer", "Action": "ACS::TimerTrigger", "Properties": {
                "Type": "cron", "Expression": oos_cron(days, at), "TimeZone": schedule.timezone, "EndDate": SWITCH_END}},
            {"Name": "switchRule", "Action": "ACS::ExecuteAPI", "Properties": {
                "Service": "ALB", "API": "UpdateRuleAttribute", "Parameters": change}},
        ],
    }, indent=2)


def switch_policy(region: str, account_id: str, rule_id: str) -> dict:
    """What the switch's role may do: update the asleep rule, nothing else."""
    return {"Version": "1", "Statement": [{"Effect": "Allow", "Action": ["alb:UpdateRuleAttribute"],
                                           "Resource": [f"acs:alb:{region}:{account_id}:rule/{rule_id}"]}]}


OOS_VERSION = "2019-06-01"
EXECUTION_FIELDS = ("region", "template_name", "template_version", "description")


def oos_endpoint(region: str) -> str:
    return f"oos.{region}.aliyuncs.com"


class SwitchExecutionProvider(pulumi.dynamic.ResourceProvider):
    """Create: StartExecution of the switch's template (its execution then waits for the timer, week after week).
    Delete: CancelExecution. A new template version is a new execution."""

    serialize_as_secret_always = False  # it captures no secret, so its code stays readable in the state

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        from infra.cli.refresh.alicloud import client

        answer = client().call("StartExecution", oos_endpoint(props["region"]), OOS_VERSION, RegionId=props["region"],
                               TemplateName=props["template_name"], TemplateVersion=props["template_version"],
                               Description=props["description"])
        execution = answer["Execution"]
        return pulumi.dynamic.CreateResult(id_=execution["ExecutionId"], outs={**props, "status": execution.get("Status", "")})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        changed = [k for k in EXECUTION_FIELDS if olds.get(k) != news.get(k)]
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=True)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        from infra.cli.refresh import RefreshError
        from infra.cli.refresh.alicloud import client

        try:
            client().call("CancelExecution", oos_endpoint(props["region"]), OOS_VERSION, RegionId=props["region"], ExecutionId=id_)
        except RefreshError as error:
            if "EntityNotExists" not in str(error):  # gone already (its template deleted with its executions)
                raise


class SwitchExecution(pulumi.dynamic.Resource, module="alicloud", name="SwitchExecution"):
    """`pulumi-python:dynamic/alicloud:SwitchExecution`: one asleep switch's waiting OOS execution."""

    status: pulumi.Output[str]

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None, **fields: pulumi.Input[str]) -> None:
        if sorted(fields) != sorted(EXECUTION_FIELDS):
            raise TypeError(f"SwitchExecution takes {EXECUTION_FIELDS}, not {sorted(fields)}")
        super().__init__(SwitchExecutionProvider(), name, {**fields, "status": None}, opts)


def requests_target(group: NodeGroup, service: str, per_replica: float) -> float:
    """QPS per node for ESS to hold: the node's replicas of the service at REQUEST_TARGET_SHARE of their capacity."""
    placed = next(s for s in group.services if s.name == service)
    return round(per_replica * placed.replicas_per_node * REQUEST_TARGET_SHARE, 3)


class AlicloudScaling(pulumi.ComponentResource):
    """`llm-deploy:alicloud:Scaling`: per node group its ESS target-tracking rules, scheduled tasks and scale-in hook."""

    def __init__(
        self,
        name: str,
        plan: DeploymentPlan,
        scaling_groups: Sequence[pulumi.Output[str]],
        server_groups: Mapping[str, alicloud.alb.ServerGroup],
        listener: alicloud.alb.Listener,
        account_id: str,
        now: datetime,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """scaling_groups: each node group's ESS group id, in the plan's order; server_groups: by service name;
        listener: the ALB's (the asleep rule's); now: when `pulumi up` runs (the UTC offset the scheduled tasks are
        written at)."""
        super().__init__("llm-deploy:alicloud:Scaling", name, None, opts)
        self.name = name
        child = pulumi.ResourceOptions(parent=self)
        schedule = plan.schedule
        for group, group_id in zip(plan.node_groups, scaling_groups, strict=True):
            if group.scaling is None and schedule is None:
                continue
            assert group.boot is not None, "placement estimates every node group"
            for target in group.scaling.targets if group.scaling else ():
                assert target.requests_per_second is not None, "placement refuses an LLM without load here (scaling_problems)"
                alicloud.ess.ScalingRule(
                    f"{name}-{group.name}-{target.service}-requests",
                    scaling_group_id=group_id,
                    scaling_rule_name=cloud_name("llm-deploy", plan.stack, target.service, "requests"),
                    scaling_rule_type="TargetTrackingScalingRule",
                    metric_name=REQUESTS_METRIC,
                    target_value=requests_target(group, target.service, target.requests_per_second),
                    alarm_dimension={"dimension_key": SERVER_GROUP_DIMENSION, "dimension_value": server_groups[target.service].id},
                    estimated_instance_warmup=group.boot.grace_seconds,  # a booting node serves nothing yet
                    opts=child,
                )
            alicloud.ess.LifecycleHook(
                f"{name}-{group.name}-drain",
                scaling_group_id=group_id,
                name=cloud_name("llm-deploy", plan.stack, group.name, "drain"),
                lifecycle_transition="SCALE_IN",
                heartbeat_timeout=DRAIN_SECONDS,
                default_result="CONTINUE",
                opts=child,
            )
            if schedule is None:
                continue
            end = task_end(schedule, now)
            for kind, days, at in schedule.utc_transitions(now):
                awake = kind == "wake"
                alicloud.ess.ScheduledTask(
                    f"{name}-{group.name}-{kind}-{at:%H%M}-{'-'.join(days).lower()}",
                    scheduled_task_name=f"{kind}-{group.name}"[:30] + f"-{at:%H%M}",
                    description=f"llm-deploy {plan.stack}: {kind} ({schedule.active_hours}, {schedule.timezone}; UTC at "
                                f"the offset of {now:%Y-%m-%d})",
                    scaling_group_id=group_id,
                    recurrence_type="Cron",
                    recurrence_value=unix_cron(days, at),
                    recurrence_end_time=f"{end:%Y-%m-%dT%H:%M:%SZ}",
                    min_value=group.count if awake else 0,
                    max_value=group.max_count if awake else 0,
                    task_enabled=True,
                    opts=child,
                )
        if schedule is not None:
            self._asleep_answer(plan, schedule, listener, account_id, child)
        self.register_outputs({})

    def _asleep_answer(self, plan: DeploymentPlan, schedule: Schedule, listener: alicloud.alb.Listener, account_id: str,
                       child: pulumi.ResourceOptions) -> None:
        rule = alicloud.alb.Rule(
            f"{self.name}-asleep",
            listener_id=listener.id,
            priority=ASLEEP_RULE_PRIORITY,
            rule_name=cloud_name("llm-deploy", plan.stack, "asleep"),
            # Created awake (matching no request), as `pulumi up` leaves the groups awake until the next sleep.
            rule_conditions=[{"type": "Host", "host_config": {"values": [NO_REQUEST_HOST]}}],
            rule_actions=[{"order": 1, "type": "FixedResponse", "fixed_response_config": {
                "http_code": "503", "content_type": "application/json",
                "content": json.dumps(schedule.asleep_answer(schedule.stretches[0]))}}],
            opts=child,
        )
        role = alicloud.ram.Role(
            f"{self.name}-asleep-switch",
            role_name=cloud_name("llm-deploy", plan.stack, "asleep-switch"),
            assume_role_policy_document=json.dumps(OOS_TRUST_POLICY),
            description=f"llm-deploy stack {plan.stack}: OOS switches the load balancer's asleep answer",
            force=True,
            opts=child,
        )
        policy = alicloud.ram.Policy(
            f"{self.name}-asleep-switch",
            policy_name=cloud_name("llm-deploy", plan.stack, "asleep-switch", limit=128),
            policy_document=rule.id.apply(lambda rule_id: json.dumps(switch_policy(plan.region, account_id, rule_id))),
            description=f"llm-deploy stack {plan.stack}: update its asleep rule",
            force=True,
            opts=child,
        )
        attachment = alicloud.ram.RolePolicyAttachment(
            f"{self.name}-asleep-switch", role_name=role.role_name, policy_name=policy.policy_name, policy_type="Custom",
            opts=child,
        )
        for kind, days, at, stretch in schedule.asleep_switches():
            label = f"{kind}-{at:%H%M}-{'-'.join(days).lower()}"
            template = alicloud.oos.Template(
                f"{self.name}-{label}",
                template_name=cloud_name("llm-deploy", plan.stack, label, limit=200),
                content=pulumi.Output.all(role.role_name, rule.id).apply(
                    lambda v, days=days, at=at, stretch=stretch: switch_template(
                        v[0], schedule, days, at, asleep_rule_change(v[1], schedule, stretch))),
                auto_delete_executions=True,  # destroying the stack ends its waiting executions
                opts=child,
            )
            # Waits for the timer, switches, waits again; a new template version replaces it.
            SwitchExecution(
                f"{self.name}-{label}",
                region=plan.region,
                template_name=template.template_name,
                template_version=template.template_version,
                description=f"llm-deploy stack {plan.stack}: {kind} at {','.join(days)} {at:%H:%M} {schedule.timezone}",
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[attachment])),
            )
