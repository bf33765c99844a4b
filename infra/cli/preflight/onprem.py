"""On-prem preflight, over SSH with every host key pinned: each host answers, has the GPUs the plan puts on it,
and where the stack is air-gapped, its image mirror answers and every model is staged under modelSource.path.

Preflight authenticates with the SSH agent (`ssh-add` the stack's key): the plan it reads holds no secret.
"""

from __future__ import annotations

import os
import shlex

from infra import ollama, ssh
from infra.cli.preflight import FAILED, OK, Check
from infra.cli.refresh import MissingCredentials
from infra.onprem import GPU_QUERY, gpu_from_smi
from infra.plan import DeploymentPlan, Host, NodeGroup

UNCHECKED = ("each host over SSH (its pinned key), its GPUs (nvidia-smi), the image mirror (imageRegistry) and the "
             "staged models (modelSource.path); preflight uses the SSH agent: ssh-add the stack's key")


def checks(plan: DeploymentPlan) -> list[Check]:
    if not os.environ.get("SSH_AUTH_SOCK"):
        raise MissingCredentials("no SSH agent (SSH_AUTH_SOCK)")
    assert plan.onprem is not None, "placement sets the site of an onprem plan"
    access = ssh.Access(plan.onprem.known_hosts)
    found: list[Check] = []
    for group in plan.node_groups:
        for host in group.hosts:
            found += _host_checks(plan, group, host, access)
    return found


def _host_checks(plan: DeploymentPlan, group: NodeGroup, host: Host, access: ssh.Access) -> list[Check]:
    subject = f"{group.name} {host.label}"
    try:
        client = ssh.connect(host, access)
    except ssh.SshError as error:
        return [Check(subject, "ssh", FAILED, str(error))]
    try:
        found = [Check(subject, "ssh", OK, f"{host.user}@{host.label}, host key pinned")]
        _, output = ssh.run(client, host, f"{GPU_QUERY} 2>&1 || true", check=False, timeout=60)
        try:
            gpu, count = gpu_from_smi(output) if "," in output else (None, 0)
        except ValueError as error:
            gpu, count = None, 0
            output = str(error)
        wanted = (group.offer.gpu, group.offer.gpu_count)
        status = OK if (gpu, count) == wanted or (not group.offer.gpu_count and not count) else FAILED
        found.append(Check(subject, "GPUs", status, f"has {count}x {gpu or 'no GPU'}, the plan needs {wanted[1]}x {wanted[0] or 'none'}"
                           + ("" if status == OK else f" ({output.strip()[-200:]})")))
        site = plan.onprem
        if site is not None and site.image_registry:
            registry = site.image_registry
            probe = f"curl -s -o /dev/null -m 10 -w '%{{http_code}}' https://{registry}/v2/ || curl -s -o /dev/null -m 10 -w '%{{http_code}}' http://{registry}/v2/"
            _, code = ssh.run(client, host, probe, check=False)
            answered = code.strip()[-3:] in ("200", "401")
            found.append(Check(subject, "image mirror", OK if answered else FAILED,
                               f"{registry}/v2/ answered {code.strip()[-3:] or 'nothing'} (a registry answers 200 or 401)"))
        if site is not None and site.model_source:
            missing = []
            for service in group.services:
                staged = ollama.staged_file(service.model) if service.engine == ollama.ENGINE else f"{service.model}/config.json"
                path = f"{site.model_source}/{staged}"
                status_code, _ = ssh.run(client, host, f"test -r {shlex.quote(path)}", check=False)
                if status_code != 0:
                    missing.append(path)
            detail = f"missing {', '.join(missing)}" if missing else f"{len(group.services)} model(s) staged under {site.model_source}"
            found.append(Check(subject, "staged models", FAILED if missing else OK, detail))
        return found
    finally:
        client.close()
