"""The public load balancer, its TLS certificate and the cloud firewall in front of the droplets.

DigitalOcean's load balancer routes by port only; the gateway on every node routes by path. The same
`load_balancer` function builds the internal per-group load balancers of the network step. It cannot answer by
itself either: while the schedule has the stack asleep (no GPU droplet), `asleep_droplet` is the one target it
forwards to, answering 503 with when the stack wakes up (bootstrap/asleep.py).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_digitalocean as do

from bootstrap.asleep import asleep_user_data
from infra.asleep import asleep_node
from infra.plan import GATEWAY_PORT, HEALTH_PATH, DeploymentPlan
from infra.schedule import Stretch

# DigitalOcean allows 30..600 s (API spec: `http_idle_timeout_seconds`, default 60). A streamed LLM
# answer can sit idle before its first token; take the maximum.
LB_IDLE_TIMEOUT_S = 600
ANYWHERE = ["0.0.0.0/0", "::/0"]
LB_CHECK_INTERVAL_S = 10
LB_HEALTHY_THRESHOLD = 3
# A new droplet that turned healthy gets traffic after this many seconds at most (the health gate's extra bound).
LB_SECONDS_TO_HEALTHY = LB_CHECK_INTERVAL_S * LB_HEALTHY_THRESHOLD


def load_balancer(
    name: str, plan: DeploymentPlan, vpc: do.Vpc, tag: do.Tag, opts: pulumi.ResourceOptions, **extra: Any
) -> do.LoadBalancer:
    """A load balancer in the VPC in front of every droplet carrying `tag`, checking the gateway's /healthz.

    extra: more LoadBalancer arguments; `forwarding_rules` are added to the HTTP 80 → 80 rule.
    """
    http = do.LoadBalancerForwardingRuleArgs(
        entry_port=80, entry_protocol="http", target_port=GATEWAY_PORT, target_protocol="http"
    )
    return do.LoadBalancer(
        name,
        region=plan.region,
        vpc_uuid=vpc.id,
        droplet_tag=tag.name,
        forwarding_rules=[http, *extra.pop("forwarding_rules", [])],
        healthcheck=do.LoadBalancerHealthcheckArgs(
            protocol="http",
            port=GATEWAY_PORT,
            path=HEALTH_PATH,
            check_interval_seconds=LB_CHECK_INTERVAL_S,
            response_timeout_seconds=5,
            healthy_threshold=LB_HEALTHY_THRESHOLD,
            unhealthy_threshold=3,
        ),
        http_idle_timeout_seconds=LB_IDLE_TIMEOUT_S,
        **extra,
        opts=opts,
    )


class DigitalOceanLoadBalancer(pulumi.ComponentResource):
    """`llm-deploy:digitalocean:LoadBalancer`: the stack's one public endpoint and the nodes' firewall.

    Created before the droplets: it selects them by the stack tag (a new droplet joins as it is created and
    gets traffic once the health check passes, old and new serve side by side during a rollout), and each
    droplet's health gate asks it."""

    def __init__(
        self,
        name: str,
        plan: DeploymentPlan,
        vpc: do.Vpc,
        stack_tag: do.Tag,
        internal: list[do.LoadBalancer],
        opts: pulumi.ResourceOptions,
    ) -> None:
        super().__init__("llm-deploy:digitalocean:LoadBalancer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        access = plan.access
        extra: dict[str, Any] = {}
        if access.domain:
            # Let's Encrypt on DigitalOcean needs the domain's DNS hosted at DigitalOcean; it then also
            # creates the A record for the domain pointing at the load balancer.
            certificate = do.Certificate(f"{name}-cert", type="lets_encrypt", domains=[access.domain], opts=child)
            extra["forwarding_rules"] = [
                do.LoadBalancerForwardingRuleArgs(
                    entry_port=443,
                    entry_protocol="https",
                    target_port=GATEWAY_PORT,
                    target_protocol="http",
                    certificate_name=certificate.name,
                )
            ]
            extra["redirect_http_to_https"] = True
        if set(access.allowed_cidrs) != {"0.0.0.0/0"}:
            extra["firewall"] = do.LoadBalancerFirewallArgs(allows=[f"cidr:{cidr}" for cidr in access.allowed_cidrs])
        self.balancer = load_balancer(
            name, plan, vpc, stack_tag, child, network="EXTERNAL", **extra
        )
        self.firewall = node_firewall(f"{name}-nodes", plan, stack_tag, [self.balancer, *internal], child)
        if access.domain:
            self.endpoint: pulumi.Output[str] = pulumi.Output.from_input(f"https://{access.domain}")
        else:
            self.endpoint = self.balancer.ip.apply(lambda ip: f"http://{ip}")
        # What the droplets' health gates ask: the clients' own path (with a domain, https and its certificate).
        self.health_url: pulumi.Output[str] = self.endpoint.apply(lambda e: e + HEALTH_PATH)
        self.register_outputs({"endpoint": self.endpoint, "ip": self.balancer.ip})


def node_firewall(
    name: str, plan: DeploymentPlan, stack_tag: do.Tag, balancers: list[do.LoadBalancer], opts: pulumi.ResourceOptions
) -> do.Firewall:
    """Every droplet of the stack: the gateway port from the load balancers only, SSH from sshCidrs only
    (no rule when empty: closed), egress open (images, model weights, apt)."""
    inbound = [
        do.FirewallInboundRuleArgs(
            protocol="tcp", port_range=str(GATEWAY_PORT), source_load_balancer_uids=[lb.id for lb in balancers]
        )
    ]
    if plan.access.ssh_cidrs:
        inbound.append(do.FirewallInboundRuleArgs(protocol="tcp", port_range="22", source_addresses=list(plan.access.ssh_cidrs)))
    outbound = [
        do.FirewallOutboundRuleArgs(protocol="tcp", port_range="1-65535", destination_addresses=ANYWHERE),
        do.FirewallOutboundRuleArgs(protocol="udp", port_range="1-65535", destination_addresses=ANYWHERE),
        do.FirewallOutboundRuleArgs(protocol="icmp", destination_addresses=ANYWHERE),
    ]
    return do.Firewall(name, tags=[stack_tag.name], inbound_rules=inbound, outbound_rules=outbound, opts=opts)


def asleep_droplet(name: str, plan: DeploymentPlan, vpc: do.Vpc, stack_tag: do.Tag, stretch: Stretch,
                   opts: pulumi.ResourceOptions) -> do.Droplet:
    """The smallest CPU droplet (data/asleep_nodes.csv), tagged like the nodes so the load balancer and the firewall
    take it, answering the asleep JSON of the sleep after `stretch` until the next wake's `pulumi up` removes it."""
    assert plan.schedule is not None, "only a scheduled stack sleeps"
    node = asleep_node(plan.cloud)
    assert node is not None, "data/asleep_nodes.csv has a row for every cloud whose load balancer cannot answer"
    return do.Droplet(
        name,
        image=node.image,
        size=node.instance_type,
        region=plan.region,
        vpc_uuid=vpc.id,
        user_data=asleep_user_data(plan.schedule.asleep_answer(stretch), plan.access.ssh_public_keys),
        tags=[stack_tag.name],
        opts=opts,
    )
