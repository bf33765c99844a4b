"""A health gate: a resource that is created (or updated) only once a new node answers through the load balancer.

Why: Pulumi counts a VM as created once the cloud says it runs, and deletes what it replaced at the end of
the update (pulumi/pulumi#9979), so without a gate every replica is replaced at once and the old ones
leave while the new ones still boot. A resource that depends on a node's gate waits for that node to serve.

How it proves health: it asks the stack's public load balancer for `/healthz` again and again (a new
connection each time, so the balancer picks a target each time) until an answer is 200 and carries the
node's own name in `header` (the node's gateway adds it, bootstrap/files/nginx/gateway.conf). A load
balancer forwards only to targets its own health check passed, so that answer proves the node is
healthy and in rotation; a node that is healthy but not (yet) behind the balancer never shows up.
It fails after `timeout_seconds` with a message naming the node group and the replica, which fails
`pulumi up` at that node: what was not replaced yet keeps serving.

Use (one gate per node; `trigger` is what makes a new node, e.g. the droplet id):

    gate = HealthGate(f"{name}-healthy", HealthGateArgs(url=..., node=droplet.name, trigger=droplet.id,
                      label="node group 'llm', replica 1 of 2", timeout_seconds=group.boot.grace_seconds),
                      opts=pulumi.ResourceOptions(parent=self))
    next_droplet = do.Droplet(..., opts=pulumi.ResourceOptions(depends_on=[gate]))

Pulumi stores the provider in the state by value (dill): `HealthGateProvider` is self-contained (standard
library only, imported inside its methods), and its inputs hold no secret (a URL, a node name, numbers).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic

from bootstrap.gateway import NODE_HEADER

DEFAULT_INTERVAL_SECONDS = 5.0


@dataclass(frozen=True)
class HealthGateArgs:
    """url: the load balancer's health URL (`http://<ip>/healthz`, `https://<domain>/healthz`).
    node: the name the node's gateway puts in `header` (a droplet's hostname is its name).
    trigger: a value that changes exactly when the node is replaced (its id).
    label: who the node is, for the failure message ("node group 'llm', replica 2 of 3").
    timeout_seconds: how long the node may take, from its creation, to answer through the balancer."""

    url: pulumi.Input[str]
    node: pulumi.Input[str]
    trigger: pulumi.Input[str]
    label: str
    timeout_seconds: int
    header: str = NODE_HEADER
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS


class HealthGateProvider(pulumi.dynamic.ResourceProvider):
    """Waits on create, and on an update that changes a gated input; never touches the cloud itself."""

    # Inputs whose change means another node (or another path to it): the gate waits again. A change of the
    # others (the bound, the label, the polling interval) is recorded without waiting.
    GATED = ("url", "node", "header", "trigger")
    OUTPUTS = ("__provider", "healthy_after_seconds")  # not inputs of the user's: never a reason to update

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        seconds = self.wait(props)
        return pulumi.dynamic.CreateResult(id_=str(props["node"]), outs={**props, "healthy_after_seconds": seconds})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        changed = [k for k in news if k not in self.OUTPUTS and olds.get(k) != news.get(k)]
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        if all(olds.get(k) == news.get(k) for k in self.GATED):
            return pulumi.dynamic.UpdateResult(outs={**news, "healthy_after_seconds": olds.get("healthy_after_seconds")})
        return pulumi.dynamic.UpdateResult(outs={**news, "healthy_after_seconds": self.wait(news)})

    @staticmethod
    def wait(props: dict[str, Any]) -> float:
        """Seconds until `node` answered 200 through `url`; raises after `timeout_seconds` saying what was seen."""
        import time
        import urllib.error
        import urllib.request

        url, node, header = str(props["url"]), str(props["node"]), str(props["header"])
        timeout, interval = float(props["timeout_seconds"]), float(props["interval_seconds"])
        start = time.monotonic()
        deadline = start + timeout
        answered: dict[str, int] = {}  # who answered through the balancer → how often
        last = "no answer yet"
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            request = urllib.request.Request(url, headers={"Connection": "close", "User-Agent": "llm-deploy-health-gate"})
            try:
                with urllib.request.urlopen(request, timeout=max(0.5, min(10.0, left))) as response:
                    status, who = response.status, response.headers.get(header)
            except urllib.error.HTTPError as error:
                status, who = error.code, error.headers.get(header)
            except (OSError, ValueError) as error:  # refused, timed out, DNS not there yet
                status, who, last = None, None, f"{type(error).__name__}: {getattr(error, 'reason', error)}"
            if status is not None:
                last = f"{status} from {who or 'a target without the ' + header + ' header'}"
                if who:
                    answered[who] = answered.get(who, 0) + 1
            if status == 200 and who == node:
                return round(time.monotonic() - start, 3)
            time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
        seen = ", ".join(f"{who} ({count}x)" for who, count in sorted(answered.items())) or "none"
        raise RuntimeError(
            f"health gate: {props['label']}: {node} did not answer {url} with 200 within {timeout:.0f} s "
            f"(the plan's time to healthy); nodes that answered through the load balancer: {seen}; last: {last}. "
            "The nodes not replaced yet keep serving; see the node's boot log (llm-deploy-status on the node), "
            "and check that this machine may reach the load balancer (allowedCidrs)."
        )


class HealthGate(pulumi.dynamic.Resource, module="llm-deploy", name="HealthGate"):
    """`pulumi-python:dynamic/llm-deploy:HealthGate`: created (or updated) once `args.node` answered `args.url`
    with 200 through the load balancer.

    Output `healthy_after_seconds`: how long the node took, as the gate measured it."""

    healthy_after_seconds: pulumi.Output[float]

    def __init__(self, name: str, args: HealthGateArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        props = {
            "url": args.url,
            "node": args.node,
            "header": args.header,
            "trigger": args.trigger,
            "label": args.label,
            "timeout_seconds": args.timeout_seconds,
            "interval_seconds": args.interval_seconds,
            "healthy_after_seconds": None,
        }
        with pickled_by_value(HealthGateProvider):
            super().__init__(HealthGateProvider(), name, props, opts)


@contextlib.contextmanager
def pickled_by_value(cls: type) -> Iterator[None]:
    """While inside, dill pickles `cls` and its methods by value.

    Pulumi pickles a dynamic provider into the state with dill, which stores a class or function of an
    importable module by reference (module and name): Pulumi's provider host would then need this project
    on its path, and a gate in the state would break when the project moves or is not installed. What
    claims to be of `__main__` (and is not found there) dill stores by value (pulumi/pulumi#7453)."""
    functions = [f.__func__ if isinstance(f, staticmethod) else f for f in vars(cls).values()]
    owners = [cls, *(f for f in functions if inspect.isfunction(f))]
    modules = [owner.__module__ for owner in owners]
    for owner in owners:
        owner.__module__ = "__main__"
    try:
        yield
    finally:
        for owner, module in zip(owners, modules):
            owner.__module__ = module
