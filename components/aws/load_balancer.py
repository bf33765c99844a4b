"""The ALB: one endpoint, path rules sending each service's paths to its target group, TLS when a domain is set."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TypeVar

import pulumi
import pulumi_aws as aws

from infra.plan import HEALTH_PATH, DeploymentPlan

from .layout import short_name
from .network import HTTP_PORT, HTTPS_PORT, AwsNetwork
from .node_group import AwsNodeGroup

IDLE_TIMEOUT_S = 900  # a streamed completion may pause between tokens; the ALB default (60 s) cuts long ones
MAX_PATHS_PER_RULE = 5  # ALB: at most 5 values per path-pattern condition
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
NOT_FOUND = {
    "type": "fixed-response",
    "fixed_response": {
        "content_type": "application/json",
        "message_body": json.dumps({"error": "not found"}),
        "status_code": "404",
    },
}
T = TypeVar("T")
REDIRECT_TO_HTTPS = {
    "type": "redirect",
    "redirect": {"port": str(HTTPS_PORT), "protocol": "HTTPS", "status_code": "HTTP_301"},
}


def routes(plan: DeploymentPlan, target_groups: Mapping[str, T]) -> list[tuple[tuple[str, ...], T]]:
    """(paths, target group) per listener rule: each service's paths to its own target group (by service
    name), in chunks ALB accepts.

    /healthz goes with the first service of the group serving the LLM (or of the first group), so the
    endpoint itself reports health.
    """
    primary = (plan.group_serving("llm") or plan.node_groups[0]).services[0]
    out = []
    for service in (s for g in plan.node_groups for s in g.services):
        paths = service.paths + ((HEALTH_PATH,) if service is primary else ())
        out += [(paths[i : i + MAX_PATHS_PER_RULE], target_groups[service.name]) for i in range(0, len(paths), MAX_PATHS_PER_RULE)]
    return out


def validation_records(options: Sequence[aws.acm.outputs.CertificateDomainValidationOption]) -> list[dict[str, str]]:
    return [
        {"name": o.resource_record_name, "type": o.resource_record_type, "value": o.resource_record_value}
        for o in options
        if o.resource_record_name
    ]


def announce(domain: str, records: list[dict[str, str]]) -> list[dict[str, str]]:
    """Show the records during `pulumi up`: it waits for ACM to issue the certificate, which needs them."""
    lines = "; ".join(f"{r['type']} {r['name']} -> {r['value']}" for r in records)
    pulumi.log.info(f"create these DNS records so ACM can issue the certificate for {domain}: {lines}")
    return records


class AwsLoadBalancer(pulumi.ComponentResource):
    """`llm-deploy:aws:LoadBalancer`: ALB, listeners, path rules and, with a domain, the ACM certificate."""

    def __init__(
        self,
        name: str,
        plan: DeploymentPlan,
        network: AwsNetwork,
        node_groups: Sequence[AwsNodeGroup],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("llm-deploy:aws:LoadBalancer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.alb = aws.lb.LoadBalancer(
            short_name(plan.stack, "alb"),
            load_balancer_type="application",
            internal=False,
            security_groups=[network.alb_security_group.id],
            subnets=[s.id for s in network.subnets],
            idle_timeout=IDLE_TIMEOUT_S,
            drop_invalid_header_fields=True,
            opts=child,
        )
        self.outputs: dict[str, object] = {"load_balancer_dns_name": self.alb.dns_name}
        domain = plan.access.domain
        # Port 80 serves the API without a domain, and only redirects to HTTPS with one.
        serving = aws.lb.Listener(
            f"{name}-http",
            load_balancer_arn=self.alb.arn,
            port=HTTP_PORT,
            protocol="HTTP",
            default_actions=[REDIRECT_TO_HTTPS if domain else NOT_FOUND],
            opts=child,
        )
        self.endpoint: pulumi.Output[str] = self.alb.dns_name.apply(lambda dns: f"http://{dns}")
        if domain:
            certificate = aws.acm.Certificate(f"{name}-cert", domain_name=domain, validation_method="DNS", opts=child)
            records = certificate.domain_validation_options.apply(validation_records).apply(lambda r: announce(domain, r))
            # Waits until the user has created the records and ACM has issued the certificate.
            validated = aws.acm.CertificateValidation(
                f"{name}-cert",
                certificate_arn=certificate.arn,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[certificate]),
            )
            serving = aws.lb.Listener(
                f"{name}-https",
                load_balancer_arn=self.alb.arn,
                port=HTTPS_PORT,
                protocol="HTTPS",
                ssl_policy=TLS_POLICY,
                certificate_arn=validated.certificate_arn,
                default_actions=[NOT_FOUND],
                opts=child,
            )
            self.endpoint = pulumi.Output.from_input(f"https://{domain}")
            self.outputs["certificate_validation_records"] = records
            self.outputs["dns_record"] = self.alb.dns_name.apply(lambda dns: {"name": domain, "type": "CNAME", "value": dns})
        self.listener = serving  # the one serving the API: the schedule's asleep rule goes on it (scaling.py)
        first = 2 if plan.schedule else 1  # priority 1: the asleep rule, which must come before every path
        for priority, (paths, target_group) in enumerate(routes(plan, {n: tg for g in node_groups for n, tg in g.target_groups.items()}), start=first):
            aws.lb.ListenerRule(
                f"{name}-rule-{priority}",
                listener_arn=serving.arn,
                priority=priority,
                conditions=[{"path_pattern": {"values": list(paths)}}],
                actions=[{"type": "forward", "target_group_arn": target_group.arn}],
                opts=child,
            )
        self.register_outputs({"endpoint": self.endpoint})
