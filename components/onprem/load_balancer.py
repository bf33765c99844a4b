"""The one endpoint of an on-prem stack: a front gateway (nginx) on endpointHost, or the user's own load balancer.

The front gateway routes each path to the node group that serves it, over upstreams of every host's gateway
that a probe health-checks (/healthz), admits allowedCidrs only, and serves TLS with the user's certificate and
key (written 0600, Pulumi secrets). With `ownLoadBalancer: true` nothing is installed: the stack prints the
upstream list (output `upstreams`) for the user's load balancer to check on /healthz.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi

from infra.plan import HEALTH_PATH, DeploymentPlan, Host

from .delivery import HostFiles, host_props
from .layout import (
    FRONT_CONF,
    FRONT_DIR,
    FRONT_HEALTH_UNIT,
    front_gateway_conf,
    front_health_script,
    front_port,
    host_url,
    upstream_file,
)


def front_files(plan: DeploymentPlan) -> list[dict[str, str]]:
    """The front gateway's plain files: its nginx config, the upstream per group (every host up until probed), the probe."""
    assert plan.onprem is not None
    groups = [(g.name, g.hosts) for g in plan.node_groups]
    paths = {g.name: g.paths for g in plan.node_groups}
    conf = front_gateway_conf(groups, paths, plan.access.allowed_cidrs, plan.onprem.tls, plan.access.domain)
    files = [{"path": FRONT_CONF, "content": conf, "mode": "0644"}]
    files += [{"path": f"{FRONT_DIR}/{name}.upstream", "content": upstream_file(hosts), "mode": "0644"} for name, hosts in groups]
    files += [{"path": "/usr/local/sbin/llm-deploy-front-health", "content": front_health_script(groups), "mode": "0755"},
              {"path": "/etc/systemd/system/llm-deploy-front-health.service", "content": FRONT_HEALTH_UNIT, "mode": "0644"}]
    return files


def endpoint_of(plan: DeploymentPlan) -> str:
    """The endpoint's base URL: https://domain (or the host) with TLS, http://host:8880 without."""
    assert plan.onprem is not None
    host = plan.onprem.endpoint_host.address
    host = f"[{host}]" if ":" in host else host
    if plan.onprem.tls:
        return f"https://{plan.access.domain or host}"
    return f"http://{host}:{front_port(False)}"


class OnPremLoadBalancer(pulumi.ComponentResource):
    """`llm-deploy:onprem:LoadBalancer`: the front gateway's HostFiles on endpointHost, after every node."""

    def __init__(
        self,
        name: str,
        plan: DeploymentPlan,
        private_key: pulumi.Output[str] | None,
        tls: tuple[pulumi.Output[str], pulumi.Output[str]] | None,
        depends_on: Sequence[pulumi.Resource],
        opts: pulumi.ResourceOptions,
    ) -> None:
        super().__init__("llm-deploy:onprem:LoadBalancer", name, None, opts)
        assert plan.onprem is not None
        hosts: list[Host] = [h for g in plan.node_groups for h in g.hosts]
        self.upstreams = [f"http://{host_url(h)}{HEALTH_PATH}" for h in hosts]
        self.front: HostFiles | None = None
        if plan.onprem.own_load_balancer:
            self.endpoint = pulumi.Output.from_input(f"http://{host_url(hosts[0])}")
        else:
            secret_files: object = []
            if tls is not None:
                secret_files = pulumi.Output.secret(pulumi.Output.all(*tls).apply(lambda pem: [
                    {"path": f"{FRONT_DIR}/tls.crt", "content": pem[0], "mode": "0600"},
                    {"path": f"{FRONT_DIR}/tls.key", "content": pem[1], "mode": "0600"}]))  # fmt: skip
            site = plan.onprem
            props = host_props(site.endpoint_host, site.known_hosts, private_key) | {
                "kind": "front", "files": front_files(plan), "secret_files": secret_files, "commands": "",
                "services": [], "images": [], "tls": site.tls, "also_a_node": site.endpoint_host in hosts,
                "healthy_within": 0,
            }  # fmt: skip
            self.front = HostFiles(f"{name}-front", props, pulumi.ResourceOptions(parent=self, depends_on=list(depends_on)))
            self.endpoint = self.front.id.apply(lambda _: endpoint_of(plan))
        self.register_outputs({"endpoint": self.endpoint, "upstreams": self.upstreams})
