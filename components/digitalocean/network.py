"""The VPC, the droplet tags, and with more than one node group an internal load balancer per group."""

from __future__ import annotations

import pulumi
import pulumi_digitalocean as do

from infra.plan import DeploymentPlan, NodeGroup

from .layout import upstream_groups
from .load_balancer import load_balancer


class DigitalOceanNetwork(pulumi.ComponentResource):
    """`llm-deploy:digitalocean:Network`.

    Tags (auto-named, so two stacks never share one): `stack_tag` on every droplet of the stack (the
    public load balancer and the firewall select by it), one tag per node group. When the services
    sit on more than one node group, each group gets an internal load balancer (VPC only) in front
    of its droplets: the gateway of a node proxies the kinds it does not serve to the internal load
    balancer of the group that serves them (`upstreams`).
    """

    def __init__(self, name: str, plan: DeploymentPlan, opts: pulumi.ResourceOptions) -> None:
        super().__init__("llm-deploy:digitalocean:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.plan = plan
        self.vpc = do.Vpc(f"{name}-vpc", region=plan.region, description=f"llm-deploy stack {plan.stack}", opts=child)
        self.stack_tag = do.Tag(f"{name}-nodes", opts=child)
        # "-group-" keeps a node group's tag apart from the stack tag whatever the group is called (a service "nodes")
        self.group_tags = {g.name: do.Tag(f"{name}-group-{g.name}", opts=child) for g in plan.node_groups}
        self.internal: dict[str, do.LoadBalancer] = {}
        if len(plan.node_groups) > 1:
            for group in plan.node_groups:
                self.internal[group.name] = load_balancer(
                    f"{name}-{group.name}-internal", plan, self.vpc, self.group_tags[group.name], child, network="INTERNAL"
                )
        self.register_outputs({"vpc_id": self.vpc.id})

    def upstreams(self, group: NodeGroup) -> dict[str, pulumi.Output[str]]:
        """Service kinds this group does not serve → base URL of the internal load balancer of the group that does."""
        return {
            kind: self.internal[other].ip.apply(lambda ip: f"http://{ip}") for kind, other in upstream_groups(self.plan, group).items()
        }

