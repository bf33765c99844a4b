"""Autoscaling and the schedule on AWS: target tracking on queue depth, scheduled actions, drain on scale-in, and
the load balancer's "asleep" answer.

- Target tracking: one policy per autoscaled service on its queue depth per replica, the metric the CloudWatch
  agent on each node publishes (infra/service_metrics.py: namespace `LlmDeploy`, dimensions AutoScalingGroupName
  and service; the Prometheus name as the metric name). Each replica is one datapoint, so the group's Average is the queue per
  replica; the policy holds it near the plan's target. Several policies on one group: it scales out when any
  asks and in only when all agree.
- Scale-in never cuts a request mid-stream: the group first deregisters the node from its target groups (no
  new requests; those in flight finish, up to the deregistration delay), and a terminate lifecycle hook then
  holds it (Terminating:Wait) for that delay again while the node's gateway, seeing the lifecycle state
  `Terminated` in the instance metadata, answers /healthz 503 and lets its streams end.
- Schedule: scheduled actions in the stack's timezone set the group to 0 at each sleep and back to `replicas`
  (and the ceiling) at each wake. While asleep the listener's first rule answers 503 with a JSON body saying
  when the stack wakes up: EventBridge Scheduler, at the same times, calls elasticloadbalancingv2 ModifyRule
  (a universal target) to make that rule match every path at a sleep (with the body of the wake that follows
  it) and match none at a wake (a host that no request names: `asleep.invalid`, RFC 2606).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import time

import pulumi
import pulumi_aws as aws

from infra.plan import DeploymentPlan, ScalingTarget
from infra.schedule import NO_REQUEST_HOST, Schedule, Stretch, quartz_days, unix_cron
from infra.service_metrics import ASG_DIMENSION, ENGINES, NAMESPACE, SERVICE_DIMENSION, metric

from .layout import short_name
from .node_group import AwsNodeGroup

ASLEEP_RULE_PRIORITY = 1  # before every path rule (load_balancer.py numbers them from 2 when the stack has a schedule)
MODIFY_RULE = "arn:aws:scheduler:::aws-sdk:elasticloadbalancingv2:modifyRule"
SCHEDULER_TRUST_POLICY = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "scheduler.amazonaws.com"}, "Action": "sts:AssumeRole"}],
})


def scheduler_cron(days: Sequence[str], at: time) -> str:
    """EventBridge Scheduler's cron(minutes hours day-of-month month day-of-week year)."""
    return f"cron({at.minute} {at.hour} ? * {quartz_days(days)} *)"


def asleep_rule_inputs(rule_arn: str, schedule: Schedule, stretch: Stretch | None) -> dict:
    """ModifyRule's request (the API's own field names): at a stretch's end, every path answered with the body of
    the wake that follows; `stretch` None (a wake), no request matched."""
    if stretch is None:
        return {"RuleArn": rule_arn, "Conditions": [{"Field": "host-header", "HostHeaderConfig": {"Values": [NO_REQUEST_HOST]}}]}
    return {"RuleArn": rule_arn, "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/*"]}}],
            "Actions": [{"Type": "fixed-response", "FixedResponseConfig": {
                "StatusCode": "503", "ContentType": "application/json", "MessageBody": json.dumps(schedule.asleep_answer(stretch))}}]}


def queue_metric_name(kind: str) -> str:
    """The CloudWatch name of a service kind's queue depth: its engine's Prometheus name (data/service_metrics.csv)."""
    return metric(ENGINES[kind], "queue_depth").metric


def queue_policy(target: ScalingTarget, asg_name: pulumi.Input[str]) -> dict:
    """A target-tracking configuration on the service's queue depth per replica."""
    return {
        "target_value": target.target_queue_per_replica,
        "customized_metric_specification": {
            "namespace": NAMESPACE,
            "metric_name": queue_metric_name(target.kind),
            "metric_dimensions": [{"name": ASG_DIMENSION, "value": asg_name}, {"name": SERVICE_DIMENSION, "value": target.service}],
            "statistic": "Average",
        },
    }


class AwsScaling(pulumi.ComponentResource):
    """`llm-deploy:aws:Scaling`: per node group its target-tracking policies, scheduled actions and drain hook; with a
    schedule, the listener's asleep rule and the EventBridge schedules that switch it."""

    def __init__(
        self,
        name: str,
        plan: DeploymentPlan,
        node_groups: Sequence[AwsNodeGroup],
        listener: aws.lb.Listener,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """node_groups: the plan's node groups in order; listener: the one serving the API (HTTPS with a domain)."""
        super().__init__("llm-deploy:aws:Scaling", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        schedule = plan.schedule
        for group, members in zip(plan.node_groups, node_groups, strict=True):
            asg = members.autoscaling_group
            if group.scaling is None and schedule is None:
                continue
            assert group.boot is not None, "placement estimates every node group"
            for target in group.scaling.targets if group.scaling else ():
                aws.autoscaling.Policy(
                    f"{group.name}-{target.service}-queue",
                    autoscaling_group_name=asg.name,
                    policy_type="TargetTrackingScaling",
                    estimated_instance_warmup=group.boot.grace_seconds,  # a booting node publishes no queue yet
                    target_tracking_configuration=queue_policy(target, asg.name),
                    opts=child,
                )
            delays = [tg.deregistration_delay for tg in members.target_groups.values()]
            aws.autoscaling.LifecycleHook(
                f"{group.name}-drain",
                autoscaling_group_name=asg.name,
                lifecycle_transition="autoscaling:EC2_INSTANCE_TERMINATING",
                heartbeat_timeout=pulumi.Output.all(*delays).apply(lambda d: max(int(x) for x in d)),
                default_result="CONTINUE",  # terminate when the wait ends (the node may complete it sooner)
                opts=child,
            )
            for kind, days, at in schedule.transitions() if schedule else ():
                awake = kind == "wake"
                aws.autoscaling.Schedule(
                    f"{group.name}-{kind}-{at:%H%M}-{'-'.join(days).lower()}",
                    scheduled_action_name=f"llm-deploy-{kind}-{at:%H%M}-{'-'.join(days).lower()}",
                    autoscaling_group_name=asg.name,
                    recurrence=unix_cron(days, at),
                    time_zone=schedule.timezone,
                    min_size=group.count if awake else 0,
                    max_size=group.max_count if awake else 0,
                    desired_capacity=group.count if awake else 0,
                    opts=child,
                )
        if schedule is not None:
            self._asleep_answer(plan, schedule, listener, child)
        self.register_outputs({})

    def _asleep_answer(self, plan: DeploymentPlan, schedule: Schedule, listener: aws.lb.Listener,
                       child: pulumi.ResourceOptions) -> None:
        first = schedule.stretches[0]
        rule = aws.lb.ListenerRule(
            "asleep",
            listener_arn=listener.arn,
            priority=ASLEEP_RULE_PRIORITY,
            # Created awake (matching no request), as `pulumi up` leaves the groups awake until the next sleep.
            conditions=[{"host_header": {"values": [NO_REQUEST_HOST]}}],
            actions=[{"type": "fixed-response", "fixed_response": {
                "status_code": "503", "content_type": "application/json", "message_body": json.dumps(schedule.asleep_answer(first))}}],
            opts=child,
        )
        role = aws.iam.Role(short_name(plan.stack, "asleep-switch", limit=48), assume_role_policy=SCHEDULER_TRUST_POLICY, opts=child)
        aws.iam.RolePolicy(
            "asleep-switch",
            role=role.id,
            policy=rule.arn.apply(lambda arn: json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "elasticloadbalancing:ModifyRule", "Resource": arn}]})),
            opts=child,
        )
        for kind, days, at, stretch in schedule.asleep_switches():
            aws.scheduler.Schedule(
                f"{kind}-{at:%H%M}-{'-'.join(days).lower()}",
                schedule_expression=scheduler_cron(days, at),
                schedule_expression_timezone=schedule.timezone,
                flexible_time_window={"mode": "OFF"},
                target={"arn": MODIFY_RULE, "role_arn": role.arn,
                        "input": rule.arn.apply(lambda arn, s=stretch: json.dumps(asleep_rule_inputs(arn, schedule, s)))},
                opts=child,
            )
