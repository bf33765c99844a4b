"""The small interface every cloud implements: network, secrets, node groups, load balancer.

`CloudDeployment` is a template: its constructor calls the four steps in order and registers the
outputs; a cloud subclass supplies the steps (see components/aws for the reference). Differences
between clouds are data on the subclass (`cloud`, `boot_target`) or one of these methods.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

import pulumi

from bootstrap.delivery import BootTarget, InlineSecrets, SecretDelivery
from infra.plan import DeploymentPlan, NodeGroup


@dataclass(frozen=True)
class StackSecrets:
    """The stack's secrets as Pulumi secret outputs; hf_token is None when the config has none."""

    api_key: pulumi.Output[str]
    hf_token: pulumi.Output[str] | None = None


@dataclass
class BuiltNodeGroup:
    """What the load balancer step needs from a node group the cloud created."""

    group: NodeGroup
    user_data: pulumi.Output[str]  # decoded cloud-config, for `plan --render-dir`
    members: Any  # cloud-specific handle: autoscaling group, droplets, server group, ...


class CloudDeployment(pulumi.ComponentResource, abc.ABC):
    """One stack on one cloud: `llm-deploy:<cloud>:Deployment`."""

    cloud: ClassVar[str]

    def __init__(
        self,
        name: str,
        plan: DeploymentPlan,
        secrets: StackSecrets,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"llm-deploy:{self.cloud}:Deployment", name, None, opts)
        self.name = name
        self.plan = plan
        # Cloud-specific stack outputs the steps may add (e.g. DNS records the user must create).
        self.extra_outputs: dict[str, object] = {}
        self.child_opts = pulumi.ResourceOptions(parent=self, provider=self.create_provider())
        network = self.create_network()
        delivery = self.store_secrets(secrets)
        self.node_groups = [self.create_node_group(g, network, delivery) for g in plan.node_groups]
        self.endpoint: pulumi.Output[str] = self.create_load_balancer(network, self.node_groups)
        self.register_outputs({"endpoint": self.endpoint})

    @property
    def user_data(self) -> dict[str, pulumi.Output[str]]:
        return {b.group.name: b.user_data for b in self.node_groups}

    @abc.abstractmethod
    def create_provider(self) -> pulumi.ProviderResource:
        """An explicit provider for the plan's region, so no ambient default decides it."""

    @abc.abstractmethod
    def create_network(self) -> Any:
        """VPC/subnets/security groups; returns whatever the later steps need."""

    @abc.abstractmethod
    def store_secrets(self, secrets: StackSecrets) -> SecretDelivery | pulumi.Output[SecretDelivery]:
        """Put the secrets in the cloud's store (or not) and say how nodes get them."""

    @abc.abstractmethod
    def create_node_group(
        self, group: NodeGroup, network: Any, delivery: SecretDelivery | pulumi.Output[SecretDelivery]
    ) -> BuiltNodeGroup:
        """Instances for one node group, booted with bootstrap's user-data."""

    @abc.abstractmethod
    def create_load_balancer(self, network: Any, groups: list[BuiltNodeGroup]) -> pulumi.Output[str]:
        """The one public endpoint; returns its base URL (https://domain or http://lb-dns)."""

    @classmethod
    @abc.abstractmethod
    def boot_target(cls, group: NodeGroup) -> BootTarget:
        """What the cloud's image brings (driver or not) and where the cache disk appears."""

    @classmethod
    @abc.abstractmethod
    def node_user_data(cls, plan: DeploymentPlan, inline: InlineSecrets | None) -> dict[str, str]:
        """Every node group's user-data as this cloud renders it, from the plan alone, before any resource
        exists: bootstrap raises UserDataTooLarge past the cloud's limit. `inline` holds the secret values,
        for a cloud that sends them in user-data."""
