"""Live: the CI path for an ephemeral stack, end to end, with the real Pulumi CLI and a real cloud.

`llm-deploy env up --stack ci-live-<hex> --config stacks/Pulumi.dev.yaml --policy-pack policy`
(config copied from dev, API key from LLM_DEPLOY_API_KEY) → /healthz → chat, embeddings, rerank with
the bearer key → `env reap` with a zero age removes it (the scheduled workflow's job). dev is
`cloud: auto`, so the credentials needed are those of the cloud placement picks for it (see
`llm-deploy env matrix`). Costs dev's hourly price for the time it runs.
    pytest -m integration tests/integration/test_environments_live.py
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
from live import (
    PROJECT_DIR,
    _workspace_env,
    check_serving,
    skip_reason,
    unique_stack_name,
)

from infra import clouds
from infra.cli import environments as env
from infra.config import load_raw


@pytest.mark.integration
def test_ephemeral_stack_from_dev_config_serves_and_is_reaped(monkeypatch):
    source = PROJECT_DIR / "stacks" / "Pulumi.dev.yaml"
    raw = load_raw("dev", stacks_dir=PROJECT_DIR / "stacks")
    cloud = env.validate(raw).cloud
    reason = skip_reason(clouds.get(cloud).credentials)
    if reason:
        pytest.skip(f"dev lands on {cloud}: {reason}")
    for name, value in _workspace_env().items():
        monkeypatch.setenv(name, value)
    api_key = secrets.token_urlsafe(32)
    monkeypatch.setenv("LLM_DEPLOY_API_KEY", api_key)
    monkeypatch.chdir(PROJECT_DIR)
    stack = unique_stack_name("ci-live")
    own_file = PROJECT_DIR / "stacks" / f"Pulumi.{stack}.yaml"
    try:
        outputs = env.up(stack, str(source), Path("."), policy_packs=["policy"], environ=os.environ)
        assert outputs["cloud"] == cloud and outputs["api_key"] == "[secret]"
        embedding = next(s for s in raw.values["services"] if s["kind"] == "embedding")
        check_serving(outputs["endpoint"].rstrip("/"), api_key, embedding["model"])
        reaped = env.reap(stack, max_age_hours=0, project_dir=Path("."))
        assert reaped == [stack]
        assert stack not in {env.short_name(s.name) for s in env.workspace(Path(".")).list_stacks()}
    finally:
        if stack in {env.short_name(s.name) for s in env.workspace(Path(".")).list_stacks()}:
            env.destroy(stack, Path("."), remove=True)
        own_file.unlink(missing_ok=True)
