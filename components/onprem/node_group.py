"""A node group on the team's own hosts: per host one HostFiles (components/onprem/delivery.py) carrying exactly
the files bootstrap renders for a cloud node, run with the same node tool.

Hosts change one at a time: each host's HostFiles depends on the previous host's, whose create or update
returns only once that host's /healthz answers 200, so a rolling change never takes two hosts down at once.
An update first drains its host (delivery.py), so that the balancer sends it nothing while its services change.
"""

from __future__ import annotations

import dataclasses

import pulumi

from bootstrap import BootTarget, SecretDelivery, render_user_data
from infra.plan import DeploymentPlan, NodeGroup

from .delivery import HostFiles, host_props
from .layout import (
    DRAIN_TIMEOUT_S,
    HEALTHY_WITHIN_S,
    OWN_BALANCER_NOTICE_S,
    front_notice_s,
    links_made,
    node_files,
    node_images,
    services_of,
    split_secret,
    start_script,
)


def render(group: NodeGroup, target: BootTarget, secrets: SecretDelivery) -> str:
    """The node group's cloud-config as bootstrap renders it for every cloud: its write_files and runcmd are what
    goes over SSH."""
    return render_user_data(group, target, secrets)


class OnPremNodeGroup(pulumi.ComponentResource):
    """`llm-deploy:onprem:NodeGroup`: the group's hosts, each a HostFiles resource, one after the other."""

    def __init__(
        self,
        name: str,
        plan: DeploymentPlan,
        group: NodeGroup,
        target: BootTarget,
        delivery: pulumi.Output[SecretDelivery],
        private_key: pulumi.Output[str] | None,
        after: pulumi.Resource | None,
        opts: pulumi.ResourceOptions,
    ) -> None:
        super().__init__("llm-deploy:onprem:NodeGroup", name, None, opts)
        assert plan.onprem is not None, "placement sets the site of an onprem plan"
        self.user_data: pulumi.Output[str] = delivery.apply(lambda d: render(group, target, d))
        parsed = self.user_data.apply(node_files)
        # The files without a secret in them are plain in state (diffs show them); secrets.env stays a secret.
        plain = pulumi.Output.unsecret(parsed.apply(lambda p: [dataclasses.asdict(f) for f in split_secret(p[0])[0]]))
        secret = parsed.apply(lambda p: [dataclasses.asdict(f) for f in split_secret(p[0])[1]])
        commands = pulumi.Output.unsecret(parsed.apply(lambda p: start_script(p[1])))
        images = pulumi.Output.unsecret(parsed.apply(lambda p: node_images(split_secret(p[0])[0])))
        links = pulumi.Output.unsecret(parsed.apply(lambda p: links_made(p[1])))
        hosts = sum(len(g.hosts) for g in plan.node_groups)
        notice = OWN_BALANCER_NOTICE_S if plan.onprem.own_load_balancer else front_notice_s(hosts)
        self.hosts: list[HostFiles] = []
        for index, host in enumerate(group.hosts):
            props = host_props(host, plan.onprem.known_hosts, private_key) | {
                "kind": "node", "files": plain, "secret_files": secret, "commands": commands, "links": links,
                "services": services_of(group), "images": images, "healthy_within": HEALTHY_WITHIN_S,
                "balancer_notice_s": notice, "drain_timeout_s": DRAIN_TIMEOUT_S,
            }  # fmt: skip
            depends = [after] if after is not None else []
            after = HostFiles(f"{name}-{index}", props, pulumi.ResourceOptions(parent=self, depends_on=depends))
            self.hosts.append(after)
        self.register_outputs({"hosts": [h.label for h in group.hosts]})
