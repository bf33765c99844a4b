"""Files and commands delivered to a host over SSH: a Pulumi dynamic provider over paramiko (infra.ssh).

Why a dynamic provider and not pulumi-command's `remote.CopyToRemote` + `remote.Command`: its create,
update and delete are Python that runs here too, so the tests drive them against a real sshd (no Pulumi
CLI exists where they run), and one resource per host owns the whole life of what it put there: the
host's state before (packages, the default nginx site) is kept in its outputs so that delete leaves the
host as it was, and a change restarts only what the node tool re-runs. Host keys are pinned (paramiko's
RejectPolicy: never trust on first use); secret files travel as a Pulumi secret and are written 0600.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pulumi
from pulumi import dynamic

from infra import ssh
from infra.plan import HEALTH_PATH, Host

from .layout import (
    DRAIN,
    FRONT_START,
    GATEWAY_HEALTHY,
    GATEWAY_HEALTHY_WITHIN_S,
    NOTHING_IN_FLIGHT,
    SERVICES_READY,
    UNDRAIN,
    before_script,
    front_port,
    front_remove_script,
    parse_before,
    remove_script,
    stop_script,
)

SECRET_OUTPUTS = ["private_key", "secret_files", "secret_digest"]
# A change to one of these is a change on the host; anything else (a new key to log in with) is not.
CONTENT = ("files", "secret_files", "commands", "services", "images", "kind", "tls")


def _host(props: dict[str, Any]) -> Host:
    return Host(props["host"]["address"], props["host"]["user"], int(props["host"]["port"]))


@contextmanager
def _session(props: dict[str, Any]) -> Iterator[tuple[Any, Host]]:
    host = _host(props)
    client = ssh.connect(host, ssh.Access(tuple(props["known_hosts"]), props.get("private_key") or None))
    try:
        yield client, host
    finally:
        client.close()


def _digest(files: list[dict[str, str]]) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def _write(client: Any, host: Host, files: list[dict[str, str]]) -> None:
    for file in files:
        ssh.write_file(client, host, file["path"], file["content"].encode(), file["mode"])


def _drain(client: Any, host: Host, props: dict[str, Any]) -> None:
    """The host out of the balancer before anything on it changes: its /healthz 503 (`llm-deploy drain`), the time
    the balancer takes to see that, then until the requests in flight there are answered (at most the drain timeout:
    past it the change goes ahead, as a cloud balancer's deregistration delay ends)."""
    ssh.run(client, host, DRAIN)
    time.sleep(float(props["balancer_notice_s"]))
    try:
        ssh.wait_until(client, host, NOTHING_IN_FLIGHT, float(props["drain_timeout_s"]), "requests in flight not answered")
    except ssh.SshError:
        pass  # the drain timeout: it changes now (the balancer sends it nothing new)


def _apply(client: Any, host: Host, props: dict[str, Any], dropped: list[str], serving: bool = False) -> None:
    """Write every file, run the node tool (or the front gateway's start), wait for /healthz. A host already
    `serving` (an update) is drained first and serves again once the balancer has seen it healthy."""
    node = props["kind"] == "node"
    if node and serving:
        _drain(client, host, props)
    if node and dropped:
        ssh.run(client, host, stop_script(dropped, node_units=False))
    _write(client, host, props["files"])
    _write(client, host, props.get("secret_files") or [])
    ssh.run(client, host, props["commands"] if node else FRONT_START, timeout=1800)
    if not node:
        return
    ssh.wait_until(client, host, SERVICES_READY, float(props["healthy_within"]), "its services not healthy after the change")
    if serving:
        ssh.run(client, host, UNDRAIN)
    ssh.wait_until(client, host, GATEWAY_HEALTHY, GATEWAY_HEALTHY_WITHIN_S, f"{HEALTH_PATH} not 200 after the change")
    if serving:
        time.sleep(float(props["balancer_notice_s"]))  # the balancer sends it requests again before the next host drains


def _outs(props: dict[str, Any], before: dict[str, str]) -> dict[str, Any]:
    secret = props.get("secret_files") or []
    outs = {k: v for k, v in props.items() if k != "secret_files"}
    return outs | {"before": before, "secret_digest": _digest(secret), "secret_paths": [f["path"] for f in secret]}


class HostFilesProvider(dynamic.ResourceProvider):
    """create: note what the host has, write the files, run the commands, wait until healthy; update: the same,
    between draining the host and letting it serve again; delete: take everything off again."""

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        with _session(props) as (client, host):
            before = parse_before(ssh.run(client, host, before_script())[1])
            _apply(client, host, props, [])
        return dynamic.CreateResult(id_=f"{host.label}/{props['kind']}", outs=_outs(props, before))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        changed = [k for k in CONTENT if k != "secret_files" and olds.get(k) != news.get(k)]
        if olds.get("secret_digest") != _digest(news.get("secret_files") or []):
            changed.append("secret_files")
        replaces = ["host"] if olds.get("host") != news.get("host") else []
        return dynamic.DiffResult(changes=bool(changed or replaces), replaces=replaces, delete_before_replace=True)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        dropped = [s for s in olds.get("services", []) if s not in news.get("services", [])]
        with _session(news) as (client, host):
            _apply(client, host, news, dropped, serving=True)
        return dynamic.UpdateResult(outs=_outs(news, olds.get("before") or {}))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        before = props.get("before") or {}
        with _session(props) as (client, host):
            if props["kind"] == "node":
                paths = [f["path"] for f in props["files"]] + list(props.get("secret_paths") or []) + list(props.get("links") or [])
                script = remove_script(paths, props["services"], props["images"], before)
            else:
                script = front_remove_script(before, bool(props.get("also_a_node")))
            ssh.run(client, host, script, timeout=900)


class HostFiles(dynamic.Resource, module="onprem", name="HostFiles"):
    """What llm-deploy put on one host: `pulumi-python:dynamic/onprem:HostFiles`."""

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        secret = pulumi.ResourceOptions(additional_secret_outputs=SECRET_OUTPUTS)
        super().__init__(HostFilesProvider(), name, props, pulumi.ResourceOptions.merge(opts, secret))


def host_props(host: Host, known_hosts: tuple[str, ...], private_key: pulumi.Output[str] | None) -> dict[str, Any]:
    """The connection part of a HostFiles' inputs; the private key only as a secret."""
    return {
        "host": {"address": host.address, "user": host.user, "port": host.port},
        "known_hosts": list(known_hosts),
        "private_key": pulumi.Output.secret(private_key) if private_key is not None else "",
    }


__all__ = ["HostFiles", "HostFilesProvider", "front_port", "host_props"]
