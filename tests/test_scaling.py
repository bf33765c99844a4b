"""Autoscaling and schedule keys: what config refuses (naming the field), what placement puts in the plan
(the ceiling, the queue targets the load model derives), and what `cost` shows, checked by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import components.stack
from infra.asleep import asleep_node
from infra.cli.offline import run_offline
from infra.cost import cost_preview
from infra.placement import evaluate
from tests.helpers import LLM, ROOT, of_type, raw_config, stack_config, stack_problems

OFFICE = {"timezone": "Europe/Berlin", "activeHours": "Mon-Fri 08:00-20:00"}
EMBEDDING = {"name": "embedding", "kind": "embedding", "model": "intfloat/multilingual-e5-large-instruct"}


@pytest.mark.parametrize(("values", "field", "message"), [
    ({"cloud": "aws", "services": [{**LLM, "replicas": 2, "maxReplicas": 1}]}, "services[0].maxReplicas",
     "must be >= replicas (2): replicas is the floor, maxReplicas the ceiling"),
    ({"cloud": "aws", "services": [{**LLM, "targetQueuePerReplica": 4}]}, "services[0].targetQueuePerReplica",
     "only with maxReplicas above replicas (it is the autoscaling target)"),
    ({"cloud": "aws", "services": [{**LLM, "maxReplicas": 3, "targetQueuePerReplica": 0}]}, "services[0].targetQueuePerReplica",
     "must be > 0.0"),
    ({"schedule": {"timezone": "Mars/Olympus", "activeHours": "Mon-Fri 08:00-20:00"}}, "schedule.timezone",
     "'Mars/Olympus' is not an IANA timezone (e.g. Europe/Berlin, America/New_York, UTC)"),
    ({"schedule": {"timezone": "UTC", "activeHours": "Mon-Fri 20:00-08:00"}}, "schedule.activeHours",
     "'Mon-Fri 20:00-08:00': 20:00-08:00 ends before it starts; a night is two windows ('Fri 22:00-24:00; Sat 00:00-02:00')"),
    ({"schedule": {"timezone": "UTC"}}, "schedule.activeHours", "Field required"),
    ({"schedule": {**OFFICE, "days": "Mon"}}, "schedule.days", "unknown key"),
])
def test_bad_scaling_keys_are_one_problem_naming_the_field(stack_file, values, field, message):
    path = stack_file(values)
    (problem,) = stack_problems(path)
    assert (problem.field, problem.message) == (field, message)


def test_digitalocean_refuses_max_replicas_and_points_to_the_schedule(stack_file):
    path = stack_file({"cloud": "digitalocean", "services": [{**LLM, "gpu": "L40S"}, {**EMBEDDING, "maxReplicas": 2}]})
    (problem,) = stack_problems(path)
    assert problem.field == "services[1].maxReplicas"
    assert problem.message.startswith("digitalocean has no managed GPU autoscaling")
    assert "schedule: {timezone, activeHours}" in problem.hint


def test_digitalocean_takes_a_schedule(stack_file):
    config = stack_config(stack_file, {"cloud": "digitalocean", "schedule": OFFICE, "services": [{**LLM, "gpu": "L40S"}]})
    plan = evaluate(config).plan
    assert plan.schedule.timezone == "Europe/Berlin" and plan.schedule.weekly_hours == 60


def test_auto_places_max_replicas_only_on_clouds_that_autoscale(stack_file):
    evaluation = evaluate(stack_config(stack_file, {"services": [{**LLM, "maxReplicas": 3}]}))
    assert not evaluation.problems
    assert evaluation.by_cloud["digitalocean"].plan is None
    assert evaluation.plan.cloud in ("aws", "alicloud")


def test_the_ceiling_is_the_nodes_max_replicas_need(stack_file):
    plan = evaluate(stack_config(stack_file, {"cloud": "aws", "services": [{**LLM, "replicas": 2, "maxReplicas": 5}]})).plan
    (group,) = plan.node_groups
    assert (group.count, group.max_count) == (2, 5)  # one vLLM server per g-instance GPU, one GPU each
    assert group.scaling.targets[0].service == "llm"


def test_targets_are_the_load_models_concurrency_unless_given(stack_file):
    config = stack_config(stack_file, {"cloud": "aws", "services": [
        {**LLM, "maxReplicas": 3}, {**EMBEDDING, "maxReplicas": 2, "load": {"requestsPerSecond": 10, "tokensPerRequest": 256}}]})
    targets = {t.service: t for g in evaluate(config).plan.node_groups for t in g.scaling.targets}
    assert targets["embedding"].target_queue_per_replica == 16384 // 256  # one TEI batch of 256-token requests
    assert targets["llm"].basis.startswith("full-length sequences (8192 tokens) one replica's KV cache holds")
    given = stack_config(stack_file, {"cloud": "aws", "services": [{**LLM, "maxReplicas": 3, "targetQueuePerReplica": 2.5}]})
    (target,) = evaluate(given).plan.node_groups[0].scaling.targets
    assert (target.target_queue_per_replica, target.basis) == (2.5, "targetQueuePerReplica")


def test_an_llm_with_a_load_targets_its_batch_at_that_load(stack_file):
    load = {"requestsPerSecond": 2, "promptTokens": 1000, "outputTokens": 200}
    config = stack_config(stack_file, {"cloud": "aws", "services": [{**LLM, "maxReplicas": 4, "load": load}]})
    (target,) = evaluate(config).plan.node_groups[0].scaling.targets
    assert target.basis.startswith("one replica's batch at the service's load")
    assert target.target_queue_per_replica >= 1


def test_cost_shows_the_schedule_month_and_the_autoscaling_range_by_hand(stack_file):
    config = stack_config(stack_file, {"cloud": "aws", "schedule": OFFICE, "services": [{**LLM, "replicas": 1, "maxReplicas": 3}]})
    preview = cost_preview(evaluate(config))
    hourly = preview.total_hourly_usd
    document = preview.as_json()
    # 60 h a week; an average month is 730 h, 730 / 168 weeks: 60 × 730 / 168 = 260.714… h
    assert document["schedule"] == {"timezone": "Europe/Berlin", "active_hours": "Mon-Fri 08:00-20:00", "weekly_hours": 60.0,
                                    "monthly_hours": 260.71, "monthly_usd": round(hourly * 60 * 730 / 168, 2),
                                    "monthly_usd_max": round(hourly * 3 * 60 * 730 / 168, 2),
                                    "asleep_node": None}  # AWS: the load balancer itself answers while asleep
    assert document["max_hourly_usd"] == round(hourly * 3, 6)
    assert document["max_monthly_usd"] == round(hourly * 3 * 730, 2)
    assert document["total_monthly_usd"] == round(hourly * 730, 2)  # the old fields keep their meaning
    (group,) = document["node_groups"]
    assert (group["count"], group["max_count"], group["max_hourly_usd"]) == (1, 3, round(hourly * 3, 6))


def test_cost_table_says_the_month_is_for_the_active_hours(cli, stack_file):
    path = stack_file({"cloud": "aws", "schedule": OFFICE, "services": [{**LLM, "gpu": "L4", "maxReplicas": 2}]})
    result = cli("cost", "--config", str(path))
    assert result.code == 0, result.stderr
    # g6.xlarge (1x L4): 0.8048 $/h in us-east-1; 0.8048 × 260.714 = 209.82; × 2 nodes = 419.65
    assert "Autoscaling: 0.80 to 1.61 $/h (llm 1-2 nodes), 587.50 to 1,175.01 $/month around the clock" in result.stdout
    assert ("Schedule Mon-Fri 08:00-20:00 (Europe/Berlin): 60 h a week, 260.7 h a month: 209.82 to 419.65 $/month "
            "for the active hours only (0 nodes outside them)") in result.stdout


def test_a_stack_without_the_keys_has_no_schedule_and_no_range(stack_file):
    document = cost_preview(evaluate(stack_config(stack_file, {"cloud": "aws", "services": [LLM]}))).as_json()
    assert document["schedule"] is None
    assert document["max_hourly_usd"] == document["total_hourly_usd"]


DO_OFFICE = {"cloud": "digitalocean", "schedule": OFFICE, "services": [{**LLM, "gpu": "L40S"}]}


@pytest.mark.parametrize(("now", "droplets"), [
    (datetime(2026, 12, 1, 9, 0, tzinfo=UTC), 1),  # Tue 10:00 CET: awake
    (datetime(2026, 12, 1, 19, 0, tzinfo=UTC), 0),  # Tue 20:00 CET: asleep
    (datetime(2026, 12, 5, 12, 0, tzinfo=UTC), 0),  # Saturday
])
def test_digitalocean_deploys_the_droplets_due_when_it_runs(monkeypatch, now, droplets):
    monkeypatch.setattr(components.stack, "deploy_instant", lambda: now)
    result = run_offline(raw_config("do-office", DO_OFFICE))
    sizes = [d["inputs"]["size"] for d in of_type(result, "digitalocean:index/droplet:Droplet")]
    assert sum(size.startswith("gpu-") for size in sizes) == droplets
    assert sizes.count(asleep_node("digitalocean").instance_type) == (droplets == 0)  # asleep: the droplet that answers
    assert len(of_type(result, "digitalocean:index/loadBalancer:LoadBalancer")) == 1  # the endpoint stays


def test_schedule_command_prints_what_is_due_at_an_instant(cli, stack_file):
    path = stack_file(DO_OFFICE)
    result = cli("schedule", "--config", str(path), "--at", "2026-12-04T19:30:00Z", "--since", "2026-12-04T18:30:00Z",
                 "--format", "json")
    assert result.code == 0, result.stderr
    state = result.json()
    assert (state["active"], state["node_groups"], state["replicas"]) == (False, {"llm": 0}, {"llm": 0})
    assert (state["next_wake"], state["next_sleep"]) == ("2026-12-07T08:00:00+01:00", "2026-12-07T20:00:00+01:00")  # Friday → Monday
    assert state["local_time"] == "2026-12-04T20:30:00+01:00"
    assert state["active_hours_this_month"] == 23 * 12
    assert (state["deployed_on_schedule"], state["changed"], state["deploy_now"]) == (True, True, True)
    table = cli("schedule", "--config", str(path), "--at", "2026-12-02T10:00:00+01:00")
    assert table.stdout.startswith("test: awake at 2026-12-02T10:00:00+01:00 (Europe/Berlin, Mon-Fri 08:00-20:00); nodes due {'llm': 1}")


@pytest.mark.parametrize(("at", "message"), [
    ("2026-12-04T19:30", "--at: '2026-12-04T19:30' has no UTC offset; add one (Z, +01:00)"),
    ("tomorrow", "--at: 'tomorrow' is not an ISO 8601 time (e.g. 2026-12-01T08:00:00+01:00, or now)"),
])
def test_schedule_command_refuses_an_instant_it_cannot_place(cli, stack_file, at, message):
    result = cli("schedule", "--config", str(stack_file(DO_OFFICE)), "--at", at)
    assert result.code == 2
    assert result.stderr.strip() == message


def test_aws_follows_its_schedule_by_scheduled_actions_not_by_updates(cli, stack_file):
    path = stack_file({"cloud": "aws", "schedule": OFFICE, "services": [LLM]})
    state = cli("schedule", "--config", str(path), "--at", "2026-12-01T19:30:00Z", "--since", "2026-12-01T18:30:00Z",
                "--format", "json").json()
    assert (state["deployed_on_schedule"], state["changed"], state["deploy_now"]) == (False, True, False)


def test_readme_scaling_example_costs_what_readme_says(cli, tmp_path):
    section = (ROOT / "README.md").read_text().split("## Scaling and monitoring", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "Pulumi.office.yaml"
    path.write_text(example)
    result = cli("cost", "--config", str(path))
    assert result.code == 0, result.stderr
    shown = section.split("$ llm-deploy cost --stack office\n...\n", 1)[1].split("```", 1)[0].splitlines()
    printed = result.stdout.splitlines()
    assert all(line in printed for line in shown), [line for line in shown if line not in printed]
    (group,) = cli("cost", "--config", str(path), "--format", "json").json()["node_groups"]
    llm = next(t for t in group["scaling_targets"] if t["service"] == "llm")
    assert f"{llm['target_queue_per_replica']:g} sequences above on a {group['instance_type']}" in " ".join(section.split())
