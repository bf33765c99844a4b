"""Live AWS: `pulumi up` a small stack (one g6.xlarge, ~$0.80/h), call it, destroy it.

Runs where the Pulumi CLI and AWS credentials exist (AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY, or
AWS_PROFILE); the account needs a G-instance vCPU quota of at least 4 in the region.
    pytest -m integration tests/integration/test_aws_live.py
"""

from __future__ import annotations

import os

import pytest
from live import SMALL_SERVICES, run_live, unique_stack_name

from infra import clouds

CONFIG = {
    "cloud": "aws",
    "region": os.environ.get("LLM_DEPLOY_LIVE_AWS_REGION", "us-east-1"),
    "services": SMALL_SERVICES,
    "budgetUsdPerHour": 2,
}


@pytest.mark.integration
def test_aws_stack_serves_chat_embeddings_and_rerank():
    outputs = run_live(unique_stack_name("live-aws"), CONFIG, clouds.AWS.credentials)
    assert outputs["cloud"] == "aws"
    assert outputs["endpoint"].startswith("http://") and outputs["endpoint"].endswith(".elb.amazonaws.com")
