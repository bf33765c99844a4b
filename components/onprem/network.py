"""The hosts' network is the team's own: llm-deploy creates nothing in it. The component names the hosts the
stack reaches and how (their pinned keys), so that the plan shows them."""

from __future__ import annotations

import pulumi

from infra.plan import DeploymentPlan


class OnPremNetwork(pulumi.ComponentResource):
    """`llm-deploy:onprem:Network`: no resources; its outputs list the hosts (address, user, port)."""

    def __init__(self, name: str, plan: DeploymentPlan, opts: pulumi.ResourceOptions) -> None:
        super().__init__("llm-deploy:onprem:Network", name, None, opts)
        self.hosts = [h for g in plan.node_groups for h in g.hosts]
        self.register_outputs({"hosts": [h.label for h in self.hosts]})
