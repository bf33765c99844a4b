"""On-prem: the team's own servers, reached over SSH, with the same node as every cloud.

Steps: network (the team's own: nothing created, the hosts named), secrets (no store: written 0600 over SSH),
node groups (per host a HostFiles resource delivering bootstrap's node files and running the node tool, host
after host behind each one's /healthz), load balancer (a front gateway on endpointHost, or the user's own).
"""

from __future__ import annotations

import dataclasses

import pulumi

from bootstrap.delivery import BootTarget, InlineSecrets, SecretDelivery
from bootstrap.services import Sources
from components.base import BuiltNodeGroup, CloudDeployment, StackSecrets, inline_delivery
from infra.plan import DeploymentPlan, NodeGroup, OnPremSite

from .load_balancer import OnPremLoadBalancer
from .network import OnPremNetwork
from .node_group import OnPremNodeGroup, render

__all__ = ["OnPremDeployment"]

# Picks driver packages only, and a host with GPUs brings its driver (placement read the GPUs with nvidia-smi).
OS_RELEASE = "ubuntu-22.04"


class OnPremDeployment(CloudDeployment[OnPremNetwork, OnPremNodeGroup, OnPremSite]):
    """`llm-deploy:onprem:Deployment`."""

    cloud = "onprem"

    def __init__(self, name: str, plan: DeploymentPlan, secrets: StackSecrets, opts: pulumi.ResourceOptions | None = None) -> None:
        self.secrets = secrets
        self.previous: pulumi.Resource | None = None  # the last host delivered: the next one waits for it
        super().__init__(name, plan, secrets, opts)

    def create_provider(self) -> None:
        return None  # every resource is a HostFiles, whose dynamic provider is its own

    def look_up(self, invoke: pulumi.InvokeOptions) -> OnPremSite:
        """Nothing left to read: placement read each host's GPUs (nvidia-smi over SSH) where the stack does not name them."""
        assert self.plan.onprem is not None, "placement sets the site of an onprem plan"
        return self.plan.onprem

    def create_network(self) -> OnPremNetwork:
        return OnPremNetwork(f"{self.name}-network", self.plan, opts=self.child_opts)

    def store_secrets(self, secrets: StackSecrets) -> pulumi.Output[SecretDelivery]:
        return inline_delivery(secrets)

    def create_node_group(
        self, group: NodeGroup, network: OnPremNetwork, delivery: pulumi.Output[SecretDelivery]
    ) -> BuiltNodeGroup[OnPremNodeGroup]:
        members = OnPremNodeGroup(f"{self.name}-{group.name}", self.plan, group, self.target(self.plan, group), delivery,
                                  self.secrets.ssh_private_key, self.previous, opts=self.child_opts)
        self.previous = members.hosts[-1]
        return BuiltNodeGroup(group=group, user_data=members.user_data, members=members)

    def create_load_balancer(self, network: OnPremNetwork, groups: list[BuiltNodeGroup[OnPremNodeGroup]]) -> pulumi.Output[str]:
        tls = (self.secrets.tls_certificate, self.secrets.tls_private_key) if self.secrets.tls_certificate is not None else None
        balancer = OnPremLoadBalancer(f"{self.name}-endpoint", self.plan, self.secrets.ssh_private_key, tls,
                                      [h for built in groups for h in built.members.hosts], opts=self.child_opts)
        self.extra_outputs["upstreams"] = balancer.upstreams
        self.extra_outputs["hosts"] = {g.name: [h.label for h in g.hosts] for g in self.plan.node_groups}
        return balancer.endpoint

    @classmethod
    def boot_target(cls, group: NodeGroup) -> BootTarget:
        return BootTarget(cloud=cls.cloud, image_has_driver=group.offer.gpu_count > 0, os_release=OS_RELEASE)

    @classmethod
    def target(cls, plan: DeploymentPlan, group: NodeGroup) -> BootTarget:
        """The boot target with the site's sources: its image mirror and its pre-staged models, where it has them."""
        assert plan.onprem is not None, "placement sets the site of an onprem plan"
        sources = Sources(plan.onprem.image_registry, plan.onprem.model_source)
        return dataclasses.replace(cls.boot_target(group), sources=sources)

    @classmethod
    def node_user_data(cls, plan: DeploymentPlan, inline: InlineSecrets | None) -> dict[str, str]:
        if inline is None:
            raise ValueError("on-prem hosts have no secret store: their files need the secret values")
        return {g.name: render(g, cls.target(plan, g), inline) for g in plan.node_groups}
