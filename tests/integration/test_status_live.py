"""Live: `llm-deploy status` of a real stack on AWS (one g6.xlarge, ~$0.80/h while it runs): once it serves, the
Automation API gives its endpoint, the Auto Scaling group and target groups its nodes and services, all healthy,
and the cost now is the plan's. Destroyed after.
    pytest -m integration tests/integration/test_status_live.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from live import PROJECT_DIR, _workspace_env, deployed_stack, skip_reason, unique_stack_name, wait_healthy
from test_aws_live import CONFIG as AWS_CONFIG

from infra import clouds
from infra.cli import status

CONFIG = {
    **AWS_CONFIG,  # the live AWS test's small stack
    # alarms to your own address (AWS mails it a confirmation link first); none without it
    **({"alertEmail": os.environ["LLM_DEPLOY_LIVE_ALERT_EMAIL"]} if os.environ.get("LLM_DEPLOY_LIVE_ALERT_EMAIL") else {}),
}


@pytest.mark.integration
def test_status_of_a_live_aws_stack_reports_every_node_and_service_healthy(monkeypatch):
    reason = skip_reason(clouds.AWS.credentials)
    if reason:
        pytest.skip(reason)
    for name, value in _workspace_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(PROJECT_DIR)
    stack = unique_stack_name("live-status")
    with deployed_stack(stack, CONFIG, {"apiKey": "live-status-" + os.urandom(12).hex()}) as outputs:
        wait_healthy(outputs["endpoint"].rstrip("/"))
        result = status.run(stack, Path("."))
        assert result.endpoint == outputs["endpoint"] and result.endpoint_state == status.HEALTHY
        assert all(g.desired == g.running == g.healthy for g in result.groups)
        assert all(s.state == status.HEALTHY and s.healthy == s.registered for s in result.services)
        assert result.hourly_usd == pytest.approx(result.planned_hourly_usd)
        assert result.exit_code == 0 and not result.notes
