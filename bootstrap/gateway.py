"""The node gateway: nginx config that routes each API path to a local service or to another node group.

The config is the template `files/nginx/gateway.conf` with one `location` per routed path; only values
from the plan (validated here) are substituted. Tests render it through `render_gateway` with
their own listen address and file paths, so what they run under the real nginx is this same output.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.plan import GATEWAY_PORT, SERVICE_PATHS, NodeGroup

FILES = Path(__file__).parent / "files"
AUTH_FILE = "/etc/nginx/llm-deploy/auth.conf"
HEALTH_FILE = "/run/llm-deploy/healthy"
SERVICE_HEALTH_DIR = "/run/llm-deploy/healthy-services"  # one file per healthy local service, for /healthz/<service>
DRAIN_FILE = "/run/llm-deploy/draining"  # while it exists every /healthz answers 503 (llm-deploy drain)
DEFAULT_LISTEN = (f"{GATEWAY_PORT} default_server", f"[::]:{GATEWAY_PORT} default_server")
# /healthz names the node that answered (nginx's $hostname; a droplet's hostname is its name), so a health gate
# can tell which node a load balancer forwarded to (components/health_gate.py).
NODE_HEADER = "X-LLM-Deploy-Node"
MAX_BODY_BYTES = 32 * 1024 * 1024  # request bodies: nginx's limit, and TEI's --payload-limit
TIMEOUT = "900s"  # >= 600 s: long generations stream that long

_UPSTREAM = re.compile(r"^https?://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?/?$")
_PATH = re.compile(r"^/[A-Za-z0-9/_.-]*$")
_FILE = re.compile(r"^/[A-Za-z0-9/_.-]+$")


class _Template(string.Template):
    """`@@{name}` placeholders: nginx itself uses `$`."""

    delimiter = "@@"


@dataclass(frozen=True)
class Route:
    kind: str
    path: str
    backend: str  # proxy_pass target: http://127.0.0.1:PORT, http://<local upstream> or another node group's base URL
    local: bool


def local_upstream(kind: str) -> str:
    """The nginx upstream that balances a kind over its servers on this node (several LLM replicas)."""
    return f"llm_deploy_{kind}"


def upstream_blocks(group: NodeGroup) -> str:
    """One `upstream` per service with several servers on the node: least_conn, since LLM requests stream for long."""
    blocks = []
    for service in group.services:
        if len(service.instances) > 1:
            servers = "".join(f"    server 127.0.0.1:{port};  # {name}\n" for name, port in service.instances)
            blocks.append(f"upstream {local_upstream(service.kind)} {{\n    least_conn;\n{servers}    keepalive 32;\n}}\n")
    return "".join(blocks)


def check_upstreams(group: NodeGroup, upstreams: Mapping[str, str] | None) -> dict[str, str]:
    """Validated upstreams for the kinds this node does not serve (entries for local kinds are ignored)."""
    local = {s.kind for s in group.services}
    checked = {}
    for kind, url in (upstreams or {}).items():
        if kind not in SERVICE_PATHS:
            raise ValueError(f"upstreams: unknown service kind {kind!r}; known: {', '.join(SERVICE_PATHS)}")
        if not isinstance(url, str) or not _UPSTREAM.match(url):
            raise ValueError(
                f"upstreams[{kind}]: {url!r} must be a base URL like http://10.0.0.5 or http://10.0.0.5:80 (no path)"
            )
        if kind not in local:
            checked[kind] = url.rstrip("/")
    return checked


def routes(group: NodeGroup, upstreams: Mapping[str, str] | None = None) -> list[Route]:
    """Every path the gateway answers, in SERVICE_PATHS order: local services first choice, then upstreams."""
    remote = check_upstreams(group, upstreams)
    by_kind = {s.kind: s for s in group.services}
    result = []
    for kind, paths in SERVICE_PATHS.items():
        if kind in by_kind and len(by_kind[kind].instances) > 1:
            backend, local = f"http://{local_upstream(kind)}", True
        elif kind in by_kind:
            backend, local = f"http://127.0.0.1:{by_kind[kind].port}", True
        elif kind in remote:
            backend, local = remote[kind], False
        else:
            continue
        result += [Route(kind, path, backend, local) for path in paths]
    return result


def metrics_locations(group: NodeGroup) -> list[str]:
    """`/metrics/<name>` → that server's own `/metrics` (vLLM and TEI both serve Prometheus text there; Ollama has none)."""
    return [
        f"    location = /metrics/{name} {{ proxy_pass http://127.0.0.1:{port}/metrics; }}"
        for service in group.services if service.publishes_metrics
        for name, port in service.instances
    ]


def render_gateway(
    group: NodeGroup,
    upstreams: Mapping[str, str] | None = None,
    *,
    listen: Sequence[str] = DEFAULT_LISTEN,
    auth_file: str = AUTH_FILE,
    health_file: str = HEALTH_FILE,
    service_health_dir: str = SERVICE_HEALTH_DIR,
    drain_file: str = DRAIN_FILE,
) -> str:
    """nginx `http`-level config (the key map include, a map and one server block) for a node group."""
    files = (("auth_file", auth_file), ("health_file", health_file), ("service_health_dir", service_health_dir), ("drain_file", drain_file))
    for name, value in files:
        if not _FILE.match(value):
            raise ValueError(f"{name}: {value!r} must be an absolute path of letters, digits and / _ . -")
    for address in listen:
        if not re.match(r"^[A-Za-z0-9.:\[\] _-]+$", address):
            raise ValueError(f"listen: {address!r} is not an nginx listen address")
    lines = []
    for route in routes(group, upstreams):
        if not _PATH.match(route.path):
            raise ValueError(f"SERVICE_PATHS[{route.kind}]: {route.path!r} is not a plain path")
        where = "" if route.local else ", another node group"
        lines.append(f"    location = {route.path} {{ proxy_pass {route.backend}; }}  # {route.kind}{where}")
    return _Template((FILES / "nginx" / "gateway.conf").read_text()).substitute(
        group=group.name,
        node_header=NODE_HEADER,
        auth_file=auth_file,
        health_file=health_file,
        service_health_dir=service_health_dir,
        drain_file=drain_file,
        listen="\n".join(f"    listen {address};" for address in listen),
        max_body=f"{MAX_BODY_BYTES // 2**20}m",
        upstreams=upstream_blocks(group),
        timeout=TIMEOUT,
        routes="\n".join(lines) + "\n",
        metrics="\n".join(metrics_locations(group)) + "\n",
    )
