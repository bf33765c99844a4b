"""The stack's secrets as OOS encrypted parameters, and the RAM role the nodes read them with.

Nodes fetch the values at boot with the instance RAM role's temporary credentials, so user-data
carries only the parameter names. Because they read them at boot only, a changed value must reach them
through new nodes: `generation` is a random id replaced whenever a value changes (its keepers), and the
scaling groups carry it in their names, so a rotated key rolls the nodes like any other change
(components/alicloud/rollout.py). The id is random, not derived from the values.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_alicloud as alicloud
import pulumi_random

from bootstrap.delivery import SecretStore
from components.alicloud.layout import ECS_TRUST_POLICY, cloud_name, node_secrets_policy, secret_parameter_name
from components.base import StackSecrets
from infra.plan import DeploymentPlan

SECRET_STORE_KIND = "alicloud-oos"
GENERATION_BYTES = 3  # six hex digits in each scaling group's name


def secret_store(plan: DeploymentPlan) -> SecretStore:
    """Where the nodes find the stack's secrets; the names follow from the plan alone."""
    return SecretStore(
        kind=SECRET_STORE_KIND,
        region=plan.region,
        api_key_name=secret_parameter_name(plan.stack, "api-key"),
        hf_token_name=secret_parameter_name(plan.stack, "hf-token") if plan.has_hf_token else None,
    )


# The type this component had before every cloud named its secrets component `Secrets`: the alias keeps
# stacks created then from replacing their parameters and node role.
FORMER_TYPE = "llm-deploy:alicloud:NodeSecrets"


class AlicloudSecrets(pulumi.ComponentResource):
    """`llm-deploy:alicloud:Secrets`: encrypted parameters + a node role allowed to read exactly them."""

    def __init__(
        self,
        name: str,
        plan: DeploymentPlan,
        secrets: StackSecrets,
        account_id: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        aliased = pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=FORMER_TYPE)])
        super().__init__("llm-deploy:alicloud:Secrets", name, None, pulumi.ResourceOptions.merge(opts, aliased))
        child = pulumi.ResourceOptions(parent=self)
        self.store = secret_store(plan)
        values = {self.store.api_key_name: secrets.api_key}
        if self.store.hf_token_name is not None:
            if secrets.hf_token is None:
                raise ValueError("the plan has an HF token but the stack secrets do not")
            values[self.store.hf_token_name] = secrets.hf_token
        self.parameters = [
            alicloud.oos.SecretParameter(
                f"{name}-{parameter.rsplit('/', 1)[-1]}",
                secret_parameter_name=parameter,
                value=value,
                type="Secret",
                description=f"llm-deploy stack {plan.stack}",
                opts=child,
            )
            for parameter, value in values.items()
        ]
        role = alicloud.ram.Role(
            f"{name}-node-role",
            role_name=cloud_name("llm-deploy", plan.stack, "node"),
            assume_role_policy_document=json.dumps(ECS_TRUST_POLICY),
            description=f"llm-deploy stack {plan.stack}: GPU nodes read the stack's secrets",
            force=True,  # detach its policies when the stack is destroyed
            opts=child,
        )
        policy = alicloud.ram.Policy(
            f"{name}-node-secrets",
            policy_name=cloud_name("llm-deploy", plan.stack, "node-secrets", limit=128),
            policy_document=json.dumps(node_secrets_policy(plan.region, account_id, list(values))),
            description=f"llm-deploy stack {plan.stack}: read its OOS encrypted parameters",
            force=True,
            opts=child,
        )
        attachment = alicloud.ram.RolePolicyAttachment(
            f"{name}-node-secrets",
            role_name=role.role_name,
            policy_name=policy.policy_name,
            policy_type="Custom",
            opts=child,
        )
        self.generation: pulumi.Output[str] = pulumi_random.RandomId(
            f"{name}-generation", byte_length=GENERATION_BYTES, keepers=values, opts=child).hex
        self.role_name: pulumi.Output[str] = role.role_name
        # Nodes must not boot before they can read their secrets.
        self.ready: list[pulumi.Resource] = [*self.parameters, attachment]
        self.register_outputs({"role_name": self.role_name})
