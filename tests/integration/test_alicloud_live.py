"""Live Alibaba Cloud: `pulumi up` a small stack (one ecs.gn7i-c8g1.2xlarge, A10 24 GB), call it, destroy it.

Runs where the Pulumi CLI and Alibaba Cloud credentials exist (ALICLOUD_ACCESS_KEY +
ALICLOUD_SECRET_KEY of a RAM user allowed to manage VPC, ECS, ESS, ALB, OOS and RAM roles/policies).
The region (LLM_DEPLOY_LIVE_ALICLOUD_REGION, default ap-southeast-1) must offer gn7i pay-as-you-go.
    pytest -m integration tests/integration/test_alicloud_live.py
"""

from __future__ import annotations

import os

import pytest
from live import SMALL_SERVICES, run_live, unique_stack_name

from infra import clouds

CONFIG = {
    "cloud": "alicloud",
    "region": os.environ.get("LLM_DEPLOY_LIVE_ALICLOUD_REGION", "ap-southeast-1"),
    "services": SMALL_SERVICES,
    "budgetUsdPerHour": 3,
}


@pytest.mark.integration
def test_alicloud_stack_serves_chat_embeddings_and_rerank():
    outputs = run_live(unique_stack_name("live-alicloud"), CONFIG, clouds.ALICLOUD.credentials)
    assert outputs["cloud"] == "alicloud"
    assert outputs["instance_types"] == {name: "ecs.gn7i-c8g1.2xlarge" for name in outputs["instance_types"]}
    # ALB DNS names: alb-<id>.<region>.alb.aliyuncsslb.com (older instances: ...alb.aliyuncs.com)
    assert outputs["endpoint"].startswith("http://") and ".alb.aliyuncs" in outputs["endpoint"]
