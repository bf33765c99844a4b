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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, time, timedelta

import pulumi
import pulumi_alicloud as alicloud

from components.alicloud.layout import cloud_name
from infra.plan import DeploymentPlan, NodeGroup
from infra.schedule import DAYS, Schedule

REQUESTS_METRIC = "LoadBalancerRealServerAverageQps"
# CreateScalingRule: with that metric, AlarmDimension names the ALB server group as `rulePool`.
SERVER_GROUP_DIMENSION = "rulePool"
REQUEST_TARGET_SHARE = 0.8  # scale out before a node's replicas are full, so requests do not queue meanwhile
DRAIN_SECONDS = 300  # as AWS's deregistration delay: a streamed completion has that long to finish
LONGEST_RECURRENCE = timedelta(days=365)  # ESS: RecurrenceEndTime at most 365 days after the task's creation


def utc_cron(days: Sequence[str], at: time) -> str:
    """ESS's Cron recurrence (UTC; minute hour day month weekday, Sunday 0)."""
    return f"{at.minute} {at.hour} * * {','.join(str((DAYS.index(d) + 1) % 7) for d in days)}"


def task_end(schedule: Schedule, now: datetime) -> datetime:
    """When the tasks written at `now` stop: the zone's next offset change, or ESS's longest recurrence."""
    change = schedule.offset_change_after(now, LONGEST_RECURRENCE)
    return change or (now + LONGEST_RECURRENCE).replace(second=0, microsecond=0)


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
        now: datetime,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """scaling_groups: each node group's ESS group id, in the plan's order; server_groups: by service name;
        now: when `pulumi up` runs (the UTC offset the scheduled tasks are written at)."""
        super().__init__("llm-deploy:alicloud:Scaling", name, None, opts)
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
                    recurrence_value=utc_cron(days, at),
                    recurrence_end_time=f"{end:%Y-%m-%dT%H:%M:%SZ}",
                    min_value=group.count if awake else 0,
                    max_value=group.max_count if awake else 0,
                    task_enabled=True,
                    opts=child,
                )
        self.register_outputs({})
