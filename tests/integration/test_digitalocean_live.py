"""Live DigitalOcean: `pulumi up` a small stack, call it through its one endpoint, destroy it.

Runs where the Pulumi CLI and a DigitalOcean API token exist (DIGITALOCEAN_TOKEN, or
DIGITALOCEAN_ACCESS_TOKEN) on an account with GPU Droplet access. The region
(LLM_DEPLOY_LIVE_DO_REGION, default tor1) must offer gpu-4000adax1-20gb right now.
    pytest -m integration tests/integration/test_digitalocean_live.py

Two stacks: everything on one RTX 4000 Ada droplet (~$0.76/h), and the split layout (LLM on the
GPU droplet, embedding and rerank on a CPU droplet, ~$0.90/h plus two internal load balancers) that
checks one public endpoint reaches the services of both node groups.
"""

from __future__ import annotations

import os

import pytest
from live import SMALL_SERVICES, run_live, unique_stack_name

from infra import clouds

CONFIG = {
    "cloud": "digitalocean",
    "region": os.environ.get("LLM_DEPLOY_LIVE_DO_REGION", "tor1"),
    "services": SMALL_SERVICES,
    "budgetUsdPerHour": 2,
}
SPLIT_CONFIG = {
    **CONFIG,
    "services": [SMALL_SERVICES[0], {**SMALL_SERVICES[1], "accelerator": "cpu"}, {**SMALL_SERVICES[2], "accelerator": "cpu"}],
}


@pytest.mark.integration
def test_digitalocean_stack_serves_chat_embeddings_and_rerank():
    outputs = run_live(unique_stack_name("live-do"), CONFIG, clouds.DIGITALOCEAN.credentials)
    assert outputs["cloud"] == "digitalocean"
    assert outputs["endpoint"].startswith("http://")


@pytest.mark.integration
def test_digitalocean_split_stack_reaches_every_service_through_one_endpoint():
    outputs = run_live(unique_stack_name("live-do-split"), SPLIT_CONFIG, clouds.DIGITALOCEAN.credentials)
    assert len(outputs["instance_types"]) == 2, outputs["instance_types"]
