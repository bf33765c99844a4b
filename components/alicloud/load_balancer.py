"""The stack's one public endpoint: an Internet-facing ALB in two zones that routes by path.

One server group per service, filled by ESS with the instances of the node group running it and
health-checked on the node gateway's `/healthz/<service>`, so a restarting vLLM takes only the LLM's
paths off a node, not its embedding and rerank; one forwarding rule per service sends the service's
paths to its server group. ESS checks instance health only (components/alicloud/node_group.py), so these
checks route and never replace a node: they stay quick. HTTP only: Alibaba Cloud cannot issue a certificate for a domain by itself, so a stack with
`domain` is refused by placement (the record in infra/clouds.py: `managed_tls=False`).
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_alicloud as alicloud

from components.alicloud.layout import cloud_name
from components.alicloud.network import AlicloudNetwork
from components.alicloud.node_group import AlicloudNodeGroup
from components.alicloud.scaling import DRAIN_SECONDS
from components.base import BuiltNodeGroup
from infra.plan import GATEWAY_PORT, HEALTH_PATH, DeploymentPlan

# Every ALB edition forwards by path; Basic is the cheapest (Alibaba's edition comparison).
ALB_EDITION = "Basic"
# Listener idle and request timeouts: the SDK documents 0..600 s, default 60 s. A long LLM answer
# (or a long wait before its first streamed token) needs more than 60 s; take the maximum.
LISTENER_TIMEOUT_S = 600
OPEN_TO_ALL = {"0.0.0.0/0", "::/0"}
# Each service's forwarding rule priority (ALB allows 1..10000), keyed by the service's kind: a stack has at
# most one service of each kind (infra/config.py), so no two rules share one, and adding, removing or moving a
# service leaves every other rule's priority as it is. Above the 1..3 that rules once took from their list
# position, so no rule updated in place lands on a priority another rule still holds.
RULE_PRIORITY = {"llm": 10, "embedding": 20, "rerank": 30}


def health_check(service: str) -> dict:
    """GET the gateway's /healthz/<service> on the backend port; only 2xx is healthy."""
    return {
        "health_check_enabled": True,
        "health_check_protocol": "HTTP",
        "health_check_method": "GET",
        "health_check_path": f"{HEALTH_PATH}/{service}",
        "health_check_codes": ["http_2xx"],
        "health_check_connect_port": 0,  # the backend port (the gateway)
        "health_check_interval": 10,
        "health_check_timeout": 5,
        "healthy_threshold": 2,
        "unhealthy_threshold": 3,
    }


def forward_to(server_group_id: pulumi.Input[str]) -> dict:
    return {"server_group_tuples": [{"server_group_id": server_group_id}]}


def allow_list(allowed_cidrs: Sequence[str]) -> list[str]:
    """The CIDRs to whitelist on the listener; empty when anyone may connect (no ACL at all)."""
    return [] if OPEN_TO_ALL & set(allowed_cidrs) else list(allowed_cidrs)


class AlicloudLoadBalancer(pulumi.ComponentResource):
    """`llm-deploy:alicloud:LoadBalancer`: ALB, server groups, listener on 80, path rules, optional allow list."""

    def __init__(
        self,
        name: str,
        plan: DeploymentPlan,
        network: AlicloudNetwork,
        groups: Sequence[BuiltNodeGroup[AlicloudNodeGroup]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("llm-deploy:alicloud:LoadBalancer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.alb = alicloud.alb.LoadBalancer(
            f"{name}-alb",
            load_balancer_name=cloud_name("llm-deploy", plan.stack),
            vpc_id=network.vpc.id,
            address_type="Internet",
            address_allocated_mode="Dynamic",
            load_balancer_edition=ALB_EDITION,
            load_balancer_billing_config={"pay_type": "PayAsYouGo"},
            zone_mappings=[{"zone_id": zone, "vswitch_id": network.vswitches[zone].id} for zone in network.zones.lb_zones],
            opts=child,
        )
        self.server_groups = {
            service.name: self.server_group(name, plan, network, built, service.name, child)
            for built in groups
            for service in built.group.services
        }
        # Everything else (/healthz among it) goes to the LLM's servers, or the first service's.
        default_service = (plan.group_serving("llm") or plan.node_groups[0]).services[0]
        self.listener = alicloud.alb.Listener(
            f"{name}-http",
            load_balancer_id=self.alb.id,
            listener_port=80,
            listener_protocol="HTTP",
            listener_description=f"llm-deploy {plan.stack}",
            idle_timeout=LISTENER_TIMEOUT_S,
            request_timeout=LISTENER_TIMEOUT_S,
            default_actions=[
                {"type": "ForwardGroup", "forward_group_config": forward_to(self.server_groups[default_service.name].id)}
            ],
            opts=child,
        )
        for group in plan.node_groups:
            for service in group.services:
                alicloud.alb.Rule(
                    f"{name}-{service.name}",
                    listener_id=self.listener.id,
                    priority=RULE_PRIORITY[service.kind],
                    rule_name=cloud_name("llm-deploy", plan.stack, service.name),
                    rule_conditions=[{"type": "Path", "path_config": {"values": list(service.paths)}}],
                    rule_actions=[
                        {
                            "order": 1,
                            "type": "ForwardGroup",
                            "forward_group_config": forward_to(self.server_groups[service.name].id),
                        }
                    ],
                    opts=child,
                )
        self.restrict(name, plan, allow_list(plan.access.allowed_cidrs), child)
        self.endpoint: pulumi.Output[str] = self.alb.dns_name.apply(lambda dns: f"http://{dns}")
        self.register_outputs({"endpoint": self.endpoint, "dns_name": self.alb.dns_name})

    def server_group(
        self,
        name: str,
        plan: DeploymentPlan,
        network: AlicloudNetwork,
        built: BuiltNodeGroup[AlicloudNodeGroup],
        service: str,
        opts: pulumi.ResourceOptions,
    ) -> alicloud.alb.ServerGroup:
        """A service's server group, which ESS keeps filled with its node group's instances (gateway port,
        /healthz/<service>)."""
        server_group = alicloud.alb.ServerGroup(
            f"{name}-{service}",
            server_group_name=cloud_name("llm-deploy", plan.stack, service),
            vpc_id=network.vpc.id,
            protocol="HTTP",
            server_group_type="Instance",
            scheduler="Wlc",  # least connections: LLM requests differ wildly in length
            health_check_config=health_check(service),
            # Scale-in (scaling.py): a leaving node's requests finish before the group drops it.
            connection_drain_config={"connection_drain_enabled": True, "connection_drain_timeout": DRAIN_SECONDS}
            if plan.schedule or any(g.scaling for g in plan.node_groups) else None,
            # ESS adds the servers; without this every `pulumi up` would remove them again
            # (aliyun/terraform-provider-alicloud#5671, #8729).
            opts=opts.merge(pulumi.ResourceOptions(ignore_changes=["servers"])),
        )
        alicloud.ess.AlbServerGroupAttachment(
            f"{name}-{service}",
            scaling_group_id=built.members.scaling_group_id,
            alb_server_group_id=server_group.id,
            port=GATEWAY_PORT,
            weight=100,
            force_attach=True,  # also attach instances the group launched before this attachment
            opts=opts,
        )
        return server_group

    def restrict(self, name: str, plan: DeploymentPlan, cidrs: list[str], opts: pulumi.ResourceOptions) -> None:
        """allowedCidrs: a whitelist ACL on the listener, unless the stack is open to everyone."""
        if not cidrs:
            return
        acl = alicloud.alb.Acl(f"{name}-allowed", acl_name=cloud_name("llm-deploy", plan.stack, "allowed"), opts=opts)
        alicloud.alb.AclEntryAttachment(
            f"{name}-allowed",
            acl_id=acl.id,
            entries=[{"entry": cidr, "description": "allowedCidrs"} for cidr in cidrs],
            opts=opts,
        )
        alicloud.alb.ListenerAclAttachment(
            f"{name}-allowed", acl_id=acl.id, acl_type="White", listener_id=self.listener.id, opts=opts
        )
