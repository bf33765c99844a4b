"""The live tier's shared driver: `pulumi up` a real stack, call it through its endpoint, always destroy it.

Every cloud's live test calls `run_live` with its own stack config and credential variables, so the
steps (and what counts as a working stack) are the same on AWS, DigitalOcean and Alibaba Cloud.
Needs the Pulumi CLI and the cloud's credentials; `skip_reason` says which one is missing.

State goes to `PULUMI_BACKEND_URL` when set, else to a local backend in
`~/.llm-deploy-live-state` (kept, so a failed destroy can be finished by hand with
`pulumi destroy -s <stack>` against that backend).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from infra.cli.environments import write_plain_config

PROJECT_DIR = Path(__file__).resolve().parents[2]
NAMESPACE = "llm-deploy"
HEALTH_TIMEOUT_S = 40 * 60  # driver check + image pulls + weight downloads on a cold node
POLL_INTERVAL_S = 20
# /healthz reports the node group behind it; another group (e.g. embeddings alone) may still be starting.
READY_TIMEOUT_S = 15 * 60
DEFAULT_STATE_DIR = Path.home() / ".llm-deploy-live-state"


# The smallest stack that exercises all three services: a 1.5B LLM, e5 embeddings, a base reranker.
SMALL_SERVICES = [
    {"name": "llm", "kind": "llm", "model": "Qwen/Qwen2.5-1.5B-Instruct", "paramsB": 1.54, "maxModelLen": 4096},
    {"name": "embedding", "kind": "embedding", "model": "intfloat/multilingual-e5-large-instruct"},
    {"name": "rerank", "kind": "rerank", "model": "BAAI/bge-reranker-base"},
]


def skip_reason(credential_env: Sequence[Sequence[str]]) -> str | None:
    """Why the live tier cannot run here, or None when it can.

    credential_env: alternatives, each a set of variables that must all be set, e.g.
    `[("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), ("AWS_PROFILE",)]`.
    """
    if shutil.which("pulumi") is None:
        return "the Pulumi CLI is not installed (https://www.pulumi.com/docs/install/)"
    if not any(all(os.environ.get(name) for name in option) for option in credential_env):
        wanted = " or ".join(" + ".join(option) for option in credential_env)
        return f"no cloud credentials in the environment: set {wanted}"
    return None


def unique_stack_name(prefix: str) -> str:
    """A fresh stack name, so parallel or leftover runs never share state."""
    return f"{prefix}-{secrets.token_hex(3)}"


def _workspace_env() -> dict[str, str]:
    env = {}
    if not os.environ.get("PULUMI_BACKEND_URL") and not os.environ.get("PULUMI_ACCESS_TOKEN"):
        DEFAULT_STATE_DIR.mkdir(parents=True, exist_ok=True)
        env["PULUMI_BACKEND_URL"] = DEFAULT_STATE_DIR.as_uri()
    if "PULUMI_CONFIG_PASSPHRASE" not in os.environ and "PULUMI_CONFIG_PASSPHRASE_FILE" not in os.environ:
        env["PULUMI_CONFIG_PASSPHRASE"] = "llm-deploy-live-tests"  # throwaway test stacks only
    return env


def stack_file(stack_name: str) -> Path:
    """Where the CLI keeps the stack's config: the project's stackConfigDir (the Automation API's
    stack-settings helpers ignore it, so the file is edited here directly)."""
    project = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
    return PROJECT_DIR / project.get("stackConfigDir", ".") / f"Pulumi.{stack_name}.yaml"


@contextmanager
def deployed_stack(stack_name: str, config: Mapping[str, Any], secret_config: Mapping[str, str]) -> Iterator[dict[str, Any]]:
    """`pulumi up` the project as `stack_name`; yields the stack outputs; destroys and removes the stack after.

    config / secret_config: `llm-deploy:` keys without the namespace. If destroy fails the stack
    is kept (not removed), so its state still lists what to delete.
    """
    from pulumi import automation as auto

    opts = auto.LocalWorkspaceOptions(work_dir=str(PROJECT_DIR), env_vars=_workspace_env())
    stack = auto.create_stack(stack_name=stack_name, work_dir=str(PROJECT_DIR), opts=opts)
    try:
        write_plain_config(stack_file(stack_name), config)
        for key, value in secret_config.items():  # the CLI encrypts these into the same file
            stack.set_config(f"{NAMESPACE}:{key}", auto.ConfigValue(value=value, secret=True))
        result = stack.up(on_output=print, color="never")
        yield {key: output.value for key, output in result.outputs.items()}
    finally:
        stack.destroy(on_output=print, color="never")
        stack.workspace.remove_stack(stack_name)
        stack_file(stack_name).unlink(missing_ok=True)  # never leave a throwaway stack in stacks/


def http(method: str, url: str, api_key: str | None = None, body: Any = None, timeout: float = 300) -> tuple[int, Any]:
    """One request; returns (status, parsed JSON or text). HTTP errors are results, not exceptions."""
    headers = {"Content-Type": "application/json"}
    if api_key is not None:
        headers["Authorization"] = f"Bearer {api_key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode(errors="replace")
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def call(method: str, url: str, api_key: str | None = None, body: Any = None) -> tuple[int, Any]:
    """`http`, retried while the load balancer answers 502/503/504 (targets not healthy yet)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        status, reply = http(method, url, api_key, body)
        if status not in (502, 503, 504) or time.monotonic() > deadline:
            return status, reply
        time.sleep(POLL_INTERVAL_S)


def wait_healthy(endpoint: str, timeout_s: float = HEALTH_TIMEOUT_S) -> None:
    """Poll `<endpoint>/healthz` until it answers 200 (DNS may not resolve at first)."""
    deadline = time.monotonic() + timeout_s
    last: object = "no answer yet"
    while time.monotonic() < deadline:
        try:
            status, body = http("GET", f"{endpoint}/healthz", timeout=30)
            if status == 200:
                return
            last = f"HTTP {status}: {body!r:.200}"
        except (urllib.error.URLError, OSError) as error:
            last = f"{type(error).__name__}: {error}"
        time.sleep(POLL_INTERVAL_S)
    raise AssertionError(f"{endpoint}/healthz not healthy after {timeout_s:.0f} s; last: {last}")


def check_auth(endpoint: str) -> None:
    """The gateway refuses a request without the bearer key."""
    status, _ = call("POST", f"{endpoint}/v1/embeddings", body={"input": ["x"]})
    assert status == 401, f"request without a key answered {status}, expected 401"


def check_chat(endpoint: str, api_key: str) -> None:
    status, models = call("GET", f"{endpoint}/v1/models", api_key)
    assert status == 200, f"/v1/models: HTTP {status}: {models!r:.300}"
    model = models["data"][0]["id"]
    status, reply = call(
        "POST",
        f"{endpoint}/v1/chat/completions",
        api_key,
        {"model": model, "messages": [{"role": "user", "content": "Say hello in one word."}], "max_tokens": 32},
    )
    assert status == 200, f"/v1/chat/completions: HTTP {status}: {reply!r:.300}"
    assert reply["usage"]["completion_tokens"] > 0, reply
    assert isinstance(reply["choices"][0]["message"]["content"], str), reply


def check_embeddings(endpoint: str, api_key: str, model: str) -> None:
    status, reply = call("POST", f"{endpoint}/v1/embeddings", api_key, {"model": model, "input": ["hello world", "bonjour"]})
    assert status == 200, f"/v1/embeddings: HTTP {status}: {reply!r:.300}"
    vectors = [item["embedding"] for item in reply["data"]]
    assert len(vectors) == 2 and len(vectors[0]) == len(vectors[1]) > 0, reply
    assert all(isinstance(x, float) for x in vectors[0]), vectors[0][:5]


def check_serving(endpoint: str, api_key: str, embedding_model: str) -> None:
    """The deployed endpoint becomes healthy, refuses a wrong key and answers each of the three services."""
    wait_healthy(endpoint)
    check_auth(endpoint)
    check_chat(endpoint, api_key)
    check_embeddings(endpoint, api_key, embedding_model)
    check_rerank(endpoint, api_key)


def check_rerank(endpoint: str, api_key: str) -> None:
    texts = ["Paris is the capital of France.", "Bananas are rich in potassium."]
    status, reply = call("POST", f"{endpoint}/rerank", api_key, {"query": "What is the capital of France?", "texts": texts})
    assert status == 200, f"/rerank: HTTP {status}: {reply!r:.300}"
    ranked = sorted(reply, key=lambda item: item["score"], reverse=True)
    assert ranked[0]["index"] == 0, f"the relevant text was not ranked first: {reply}"


def run_live(stack_name: str, config: Mapping[str, Any], credential_env: Sequence[Sequence[str]]) -> dict[str, Any]:
    """The whole live check for one cloud: up → /healthz → auth, chat, embeddings, rerank → destroy.

    `config` must list `services` (all three kinds); the API key is generated here and set as a
    secret, so the test knows it without reading secret outputs.
    """
    reason = skip_reason(credential_env)
    if reason:
        import pytest

        pytest.skip(reason)
    kinds = {service["kind"]: service for service in config["services"]}
    assert set(kinds) == {"llm", "embedding", "rerank"}, "the live check calls all three services"
    api_key = secrets.token_urlsafe(32)
    with deployed_stack(stack_name, config, {"apiKey": api_key}) as outputs:
        check_serving(outputs["endpoint"].rstrip("/"), api_key, kinds["embedding"]["model"])
        return outputs
