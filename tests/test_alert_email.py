"""`alertEmail`: one address, validated; it reaches the plan; clouds where llm-deploy builds no alarms refuse it."""

from __future__ import annotations

import pytest

from infra import clouds
from infra.placement import CLOUDS_WITH_ALARMS, evaluate, place
from tests.helpers import stack_config, stack_problems

LLM = {"name": "llm", "kind": "llm", "model": "Qwen/Qwen2.5-7B-Instruct"}
EMAIL = "oncall+llm@acme-inference.io"

NOT_ONE_ADDRESS = [
    "oncall",  # no domain
    "oncall@acme",  # no top-level domain
    "On Call <oncall@acme-inference.io>",  # a display name
    "a@acme-inference.io, b@acme-inference.io",  # a list
    "oncall@acme-inference.io\n",  # a trailing newline
    "oncall@-acme.io",  # a label starting with '-'
    "x" * 65 + "@acme-inference.io",  # a local part past 64 characters
]


@pytest.mark.parametrize("value", NOT_ONE_ADDRESS)
def test_anything_but_one_address_is_refused_naming_the_field(stack_file, value):
    path = stack_file({"cloud": "aws", "services": [LLM], "alertEmail": value})
    (problem,) = stack_problems(path)
    assert (problem.source, problem.field) == (str(path), "alertEmail")
    assert "is not one email address" in problem.message or "at most 254 characters" in problem.message


def test_a_refused_address_exits_2_with_one_line(cli, stack_file):
    path = stack_file({"cloud": "aws", "services": [LLM], "alertEmail": "oncall"})
    result = cli("validate", "--config", str(path))
    assert result.code == 2
    assert result.stderr.splitlines() == [f"{path}: alertEmail: 'oncall' is not one email address ('ops@your-company.com', no name, no list)"]


@pytest.mark.parametrize("cloud", CLOUDS_WITH_ALARMS)
def test_the_address_reaches_the_plan_on_clouds_with_alarms(stack_file, cloud):
    plan = place(stack_config(stack_file, {"cloud": cloud, "services": [LLM], "alertEmail": EMAIL}))
    assert plan.alert_email == EMAIL


def test_the_clouds_with_alarms_are_those_whose_record_names_them():
    assert set(CLOUDS_WITH_ALARMS) == {"aws", "alicloud"}
    assert all(clouds.get(c).alarms for c in CLOUDS_WITH_ALARMS)
    assert clouds.get("digitalocean").alarms is None


def test_a_cloud_without_alarms_refuses_alert_email_and_says_what_to_do(stack_file):
    path = stack_file({"cloud": "digitalocean", "services": [LLM], "alertEmail": EMAIL})
    (problem,) = stack_problems(path)
    assert problem.field == "alertEmail"
    assert problem.message == f"llm-deploy builds no alarms on digitalocean, so nothing would send to {EMAIL}"
    assert problem.hint == "remove alertEmail (scrape /metrics/<service> with your own Prometheus) or deploy on aws or alicloud"


def test_auto_never_places_a_stack_with_alert_email_where_no_alarm_would_reach_it(stack_file):
    """DigitalOcean is cheapest here; with alertEmail the stack goes to the cheapest cloud that alarms."""
    cheap_do = {"services": [LLM], "priceOverrides": {"digitalocean/gpu-6000adax1-48gb": 0.01}}
    assert place(stack_config(stack_file, cheap_do)).cloud == "digitalocean"
    result = evaluate(stack_config(stack_file, {**cheap_do, "alertEmail": EMAIL}))
    assert result.plan is not None and result.plan.cloud in CLOUDS_WITH_ALARMS
    assert result.by_cloud["digitalocean"].plan is None


def test_without_alert_email_the_plan_has_none(stack_file):
    assert place(stack_config(stack_file, {"cloud": "aws", "services": [LLM]})).alert_email is None
