"""The stack program: config → placement → the cloud's deployment → stack outputs.

`__main__.py` (under `pulumi up`) and `llm-deploy plan` (under the mock engine) both call `program`,
so what the offline plan shows is what `pulumi up` builds.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from datetime import UTC, datetime

import pulumi
from pydantic import SecretStr

from bootstrap import InlineSecrets, UnreadableSecret, UserDataTooLarge
from components.base import CloudDeployment, StackSecrets
from infra import clouds
from infra.config import StackConfig, problem
from infra.errors import ConfigError, Problem
from infra.placement import place
from infra.plan import SERVICE_PATHS, DeploymentPlan
from infra.scaling import due_at

GENERATED_API_KEY_LENGTH = 40



def deploy_instant() -> datetime:
    """The instant `pulumi up` (or `plan`) runs: the program reads the clock here, the schedule's functions take it."""
    return datetime.now(UTC)


@dataclass
class StackProgram:
    plan: DeploymentPlan
    deployment: CloudDeployment
    outputs: dict[str, object]


def deployment_class(cloud: str) -> type[CloudDeployment]:
    """The cloud's deployment template, imported lazily: a stack on one cloud loads only that cloud's SDK."""
    module, _, cls = clouds.get(cloud).deployment.partition(":")
    return getattr(importlib.import_module(module), cls)


def stack_secrets(config: StackConfig) -> StackSecrets:
    """The configured API key, or one generated once and kept (encrypted) in the stack's state."""
    if config.api_key is not None:
        api_key = pulumi.Output.secret(config.api_key.get_secret_value())
    else:
        import pulumi_random

        api_key = pulumi_random.RandomPassword("api-key", length=GENERATED_API_KEY_LENGTH, special=False).result
    def secret(value: SecretStr | None) -> pulumi.Output[str] | None:
        return pulumi.Output.secret(value.get_secret_value()) if value is not None else None

    return StackSecrets(api_key=api_key, hf_token=secret(config.hf_token), ssh_private_key=secret(config.ssh_private_key),
                        tls_certificate=secret(config.tls_certificate), tls_private_key=secret(config.tls_private_key))


def stack_outputs(plan: DeploymentPlan, endpoint: pulumi.Output[str], api_key: pulumi.Output[str]) -> dict[str, object]:
    """Everything a user needs to call the stack and know what it costs."""
    outputs: dict[str, object] = {
        "endpoint": endpoint,
        "api_key": pulumi.Output.secret(api_key),
        "cloud": plan.cloud,
        "region": plan.region,
        "instance_types": {g.name: g.offer.instance_type for g in plan.node_groups},
        "estimated_hourly_usd": plan.hourly_usd,
        "estimated_monthly_usd": plan.monthly_usd,
    }
    for group in plan.node_groups:
        for service in group.services:
            outputs[f"{service.name}_url"] = endpoint.apply(lambda e, k=service.kind: e + SERVICE_PATHS[k][0])
    llm = plan.group_serving("llm")
    if llm is not None:
        model = next(s.model for s in llm.services if s.kind == "llm")
        outputs["curl_example"] = endpoint.apply(
            lambda e: (
                f'curl -sS {e}/v1/chat/completions -H "Authorization: Bearer $(pulumi stack output api_key --show-secrets)" '
                f"-H 'Content-Type: application/json' "
                f'-d \'{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello"}}]}}\''
            )
        )
    return outputs


SECRET_FIELDS = {"api_key": "apiKey", "hf_token": "hfToken"}  # InlineSecrets field → stack key


def user_data_problems(config: StackConfig, plan: DeploymentPlan) -> list[Problem]:
    """Render every node group's user-data as its cloud will, before any resource exists, and name the
    field that makes one larger than the cloud accepts. `validate`, `env up`/`preview` and the program call this."""
    api_key = config.api_key.get_secret_value() if config.api_key else "x" * GENERATED_API_KEY_LENGTH
    inline = InlineSecrets(api_key=api_key, hf_token=config.hf_token.get_secret_value() if config.hf_token else None)
    deployment = deployment_class(plan.cloud)

    def fits(candidate: DeploymentPlan) -> bool:
        try:
            deployment.node_user_data(candidate, inline)
        except UserDataTooLarge:
            return False
        return True

    try:
        deployment.node_user_data(plan, inline)
    except UserDataTooLarge as too_large:
        keys = plan.access.ssh_public_keys
        if keys and fits(dataclasses.replace(plan, access=dataclasses.replace(plan.access, ssh_public_keys=()))):
            return [problem(config.source, "sshPublicKeys", f"{too_large}, with the {len(keys)} keys in it: authorize fewer keys")]
        return [problem(config.source, "services", f"{too_large}: fewer services per node or shorter model names")]
    except UnreadableSecret as bad:  # known only where the value is (under `pulumi up`)
        return [problem(config.source, SECRET_FIELDS[bad.secret], bad.message)]
    return []


def program(config: StackConfig, plan: DeploymentPlan | None = None) -> StackProgram:
    """Place the stack, or take PLAN when given (tests deploy plans placement would not make), and declare
    its resources. Raises ConfigError (every placement problem, or a user-data the cloud would refuse)
    before any resource exists."""
    plan = place(config) if plan is None else plan
    problems = user_data_problems(config, plan)
    if problems:
        raise ConfigError(problems)
    if plan.schedule and not clouds.get(plan.cloud).autoscaling:  # no scheduled actions there: the nodes due now
        plan = due_at(plan, deploy_instant())
    secrets = stack_secrets(config)
    deployment = deployment_class(plan.cloud)(plan.stack, plan, secrets)
    built = deployment.plan  # as its look-up step found the cloud (e.g. a fallback size where the placed one has no capacity)
    outputs = {**stack_outputs(built, deployment.endpoint, secrets.api_key), **deployment.extra_outputs}
    return StackProgram(built, deployment, outputs)
