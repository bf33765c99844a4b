"""The small interface every cloud implements: look-up, network, secrets, node groups, load balancer.

`CloudDeployment` is a template: its constructor creates the provider, runs the look-up step (every
read from the cloud and every refusal), then the four building steps in order, and registers the
outputs; a cloud subclass supplies the steps (see components/aws for the reference). Differences
between clouds are fields of their record (infra/clouds.py), data on the subclass (`cloud`,
`boot_target`) or one of these methods.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

import pulumi

from bootstrap.delivery import BootTarget, InlineSecrets, SecretDelivery
from infra.plan import DeploymentPlan, NodeGroup


@dataclass(frozen=True)
class StackSecrets:
    """The stack's secrets as Pulumi secret outputs; hf_token is None when the config has none."""

    api_key: pulumi.Output[str]
    hf_token: pulumi.Output[str] | None = None
    ssh_private_key: pulumi.Output[str] | None = None  # onprem: None, the SSH agent
    tls_certificate: pulumi.Output[str] | None = None  # onprem: the front gateway's certificate and key (PEM)
    tls_private_key: pulumi.Output[str] | None = None


def inline_delivery(secrets: StackSecrets) -> pulumi.Output[SecretDelivery]:
    """For a cloud without a secret store: the values themselves, as one secret output, for the node's files."""
    both = pulumi.Output.all(secrets.api_key, secrets.hf_token)
    return pulumi.Output.secret(both.apply(lambda values: InlineSecrets(api_key=values[0], hf_token=values[1])))


NetworkT = TypeVar("NetworkT", bound=pulumi.ComponentResource)  # the cloud's Network component
MembersT = TypeVar("MembersT", bound=pulumi.ComponentResource)  # the cloud's NodeGroup component
LookupT = TypeVar("LookupT")  # what the cloud's look-up step read (zones, images, ...)


@dataclass
class BuiltNodeGroup(Generic[MembersT]):
    """What the load balancer step needs from a node group the cloud created."""

    group: NodeGroup
    user_data: pulumi.Output[str]  # decoded cloud-config, for `plan --render-dir`
    members: MembersT  # the cloud's NodeGroup component: autoscaling group, droplets, scaling group


class CloudDeployment(pulumi.ComponentResource, abc.ABC, Generic[NetworkT, MembersT, LookupT]):
    """One stack on one cloud: `llm-deploy:<cloud>:Deployment`, generic over its Network and NodeGroup components
    and what its look-up step reads."""

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
        provider = self.create_provider()
        self.child_opts = pulumi.ResourceOptions(parent=self, provider=provider)
        # Every read from the cloud and every refusal happen here, before any resource: the steps after it
        # raise for no input of the user's, and nothing raises inside an `apply`.
        self.lookup: LookupT = self.look_up(pulumi.InvokeOptions(parent=self, provider=provider))
        network = self.create_network()
        delivery = self.store_secrets(secrets)
        # self.plan: the look-up step may have taken another offer where the placed one has no capacity now
        self.node_groups: list[BuiltNodeGroup[MembersT]] = [self.create_node_group(g, network, delivery) for g in self.plan.node_groups]
        self.endpoint: pulumi.Output[str] = self.create_load_balancer(network, self.node_groups)
        self.register_outputs({"endpoint": self.endpoint})

    @property
    def user_data(self) -> dict[str, pulumi.Output[str]]:
        return {b.group.name: b.user_data for b in self.node_groups}

    @abc.abstractmethod
    def create_provider(self) -> pulumi.ProviderResource | None:
        """An explicit provider for the plan's region, so no ambient default decides it (None: the cloud's
        resources are dynamic ones, each its own provider).

        Raises: nothing of its own; the provider reads its credentials when a resource is first created.
        """

    @abc.abstractmethod
    def look_up(self, invoke: pulumi.InvokeOptions) -> LookupT:
        """Read what the steps need from the cloud (the zones offering the plan's instance types, images, ...)
        through `invoke` (synchronous invokes, on the explicit provider), and refuse a plan the region or
        the cloud cannot host. Placement already refused whatever the cloud's record rules out; what is left
        here is known only to the cloud.

        Raises: ConfigError naming the stack file and the field (`region`, `catalogFile`), before any resource
        exists but the provider, which creates nothing in the cloud (every invoke goes through a provider).
        """

    @abc.abstractmethod
    def create_network(self) -> NetworkT:
        """VPC/subnets/security groups: the cloud's Network component, which the later steps are placed in.

        Raises: nothing for bad input: the look-up step refused a region that cannot host the plan.
        """

    @abc.abstractmethod
    def store_secrets(self, secrets: StackSecrets) -> SecretDelivery | pulumi.Output[SecretDelivery]:
        """Put the secrets in the cloud's store (or not) and say how nodes get them.

        Raises: ValueError when the plan expects an HF token the stack secrets do not hold.
        """

    @abc.abstractmethod
    def create_node_group(
        self, group: NodeGroup, network: NetworkT, delivery: SecretDelivery | pulumi.Output[SecretDelivery]
    ) -> BuiltNodeGroup[MembersT]:
        """Instances for one node group, booted with bootstrap's user-data.

        Raises: UserDataTooLarge when the group's user-data passes the cloud's limit; RuntimeError when the
        secret delivery differs from the one the user-data was rendered with (a bug, not bad input).
        """

    @abc.abstractmethod
    def create_load_balancer(self, network: NetworkT, groups: list[BuiltNodeGroup[MembersT]]) -> pulumi.Output[str]:
        """The one public endpoint; returns its base URL (https://domain or http://lb-dns).

        Raises: nothing of its own; a refused domain or CIDR is refused by validation before this step.
        """

    @classmethod
    @abc.abstractmethod
    def boot_target(cls, group: NodeGroup) -> BootTarget:
        """What the cloud's image brings (driver or not) and where the cache disk appears.

        Raises: nothing; it reads the placed offer only.
        """

    @classmethod
    @abc.abstractmethod
    def node_user_data(cls, plan: DeploymentPlan, inline: InlineSecrets | None) -> dict[str, str]:
        """Every node group's user-data as this cloud renders it, from the plan alone, before any resource
        exists. `inline` holds the secret values, for a cloud that sends them in user-data.

        Raises: UserDataTooLarge past the cloud's limit; ValueError when the cloud needs `inline` and it is None.
        """
