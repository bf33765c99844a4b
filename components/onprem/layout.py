"""Pure helpers for `cloud: onprem`: the node files out of bootstrap's cloud-config, the scripts that install and
remove them over SSH, and the front gateway's nginx config. No Pulumi, no SSH here.

A host gets exactly what cloud-init would write on a cloud node (bootstrap.render_user_data's
`write_files`, their modes, `runcmd`): the render is bootstrap's, only the transport differs.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

import yaml

from infra.plan import GATEWAY_PORT, HEALTH_PATH, Host, NodeGroup

ETC = "/etc/llm-deploy"
SECRET_FILES = (f"{ETC}/secrets.env",)  # written 0600; a Pulumi secret in state, never a plain input
# What the bootstrap installs where the host lacks it; removal takes off those it installed.
PACKAGES = ("nginx", "docker.io", "nvidia-container-toolkit")
SYSTEM_UNITS = ("nginx", "docker")  # the bootstrap enables and starts them
DAEMON_JSON = "/etc/docker/daemon.json"
TOOLKIT_SOURCES = ("/etc/apt/sources.list.d/nvidia-container-toolkit.list", "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg",
                   "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg.asc")
# What the node tool writes besides the files it was given (README "What runs on a node").
NODE_STATE = ("/etc/llm-deploy", "/var/lib/llm-deploy", "/var/log/llm-deploy", "/run/llm-deploy", "/opt/llm-deploy",
              "/etc/nginx/llm-deploy", "/etc/nginx/conf.d/llm-deploy.conf")
UNITS = ("llm-deploy-bootstrap.service", "llm-deploy-health.service", "llm-deploy-secrets.service")
# Steps the node tool runs again after a change (each checks before it acts): the rest (disk, gateway, driver,
# docker, toolkit) stays done; the gateway's changed config is reloaded, not restarted, so its connections live on.
RERUN_STEPS = ("secrets", "images", "services")
RELOAD_GATEWAY = "if systemctl is-active --quiet nginx; then nginx -t && systemctl reload nginx; fi"
STATE = "/var/lib/llm-deploy"
METADATA_ADDRESSES = ("169.254.169.254", "100.100.100.200")  # the node tool's DOCKER-USER drops
FRONT_CONF = "/etc/nginx/conf.d/llm-deploy-front.conf"
FRONT_DIR = "/etc/nginx/llm-deploy-front"
FRONT_TLS_PORT, FRONT_HTTP_PORT = 443, 8880
PROBE_INTERVAL_S = 2  # the front gateway's probe of every host's /healthz (a file test in nginx: cheap on a LAN)
PROBE_TIMEOUT_S = 2  # one host's answer to the probe (curl -m)
FAIL_TIMEOUT_S = 10  # a host that failed a request gets none for this long (nginx max_fails=1)
UNHEALTHY_AFTER = 2  # failed probes in a row before the probe takes a host out (one slow answer on a busy host is not down)
# A rolling change drains each host before its services change: its /healthz answers 503, the balancer takes it
# out, the requests in flight there finish (at most DRAIN_TIMEOUT_S, as a cloud balancer's deregistration delay);
# after the change it serves again once the balancer has seen its /healthz 200.
OWN_BALANCER_NOTICE_S = 30  # ownLoadBalancer: it must see a host's /healthz change within this (README "Your own servers")
DRAIN_TIMEOUT_S = 300  # a streamed completion on a draining host has that long to finish
NODE_TOOL = "/usr/local/sbin/llm-deploy"
DRAIN, UNDRAIN = f"{NODE_TOOL} drain rolling-change", f"{NODE_TOOL} drain --cancel"


def nothing_in_flight(port: int) -> str:
    """Exits 0 once no TCP connection to the local `port` is established: every request the balancer sent the
    node's gateway has been answered (nginx closes its idle upstream connections to a host once it has taken the
    host out and reloaded). Read from /proc/net/tcp{,6} (state 01, the local address's port in hex), not with
    `ss`, which a minimal host may lack: there `$(ss ...)` is empty and the change would not wait at all."""
    established = f"awk '$4 == \"01\" && $2 ~ /:{port:04X}$/' \"$t\" || exit 1"
    return f'open=$(for t in /proc/net/tcp /proc/net/tcp6; do if [ -e "$t" ]; then {established}; fi; done) && test -z "$open"'


NOTHING_IN_FLIGHT = nothing_in_flight(GATEWAY_PORT)
# A node is through a change once its bootstrap has run again (the marker start_script removed is back) and every
# service answers now (`llm-deploy health --once`, not the last probe's file); then its gateway's /healthz.
SERVICES_READY = f"test -f {STATE}/bootstrap.done && {NODE_TOOL} health --once >/dev/null"
GATEWAY_HEALTHY = f"test \"$(curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1{HEALTH_PATH})\" = 200"
GATEWAY_HEALTHY_WITHIN_S = 60  # its /healthz once the services answer: the next probe of the node tool's health loop
HEALTHY_WITHIN_S = 3600  # a host's /healthz after a change: image pulls and weights can take most of an hour


def front_notice_s(hosts: int) -> int:
    """Seconds until the front gateway has seen a host's /healthz change and reloaded: one round of its probe
    (the pause, then every host's answer at most PROBE_TIMEOUT_S), and a second for the reload."""
    return PROBE_INTERVAL_S + PROBE_TIMEOUT_S * hosts + 1


@dataclass(frozen=True)
class NodeFile:
    path: str
    content: str
    mode: str


def node_files(user_data: str) -> tuple[tuple[NodeFile, ...], tuple[tuple[str, ...], ...]]:
    """The files (path, content, mode) and commands of bootstrap's cloud-config, as cloud-init would apply them."""
    config = yaml.safe_load(user_data)
    files = tuple(NodeFile(f["path"], f["content"], f.get("permissions", "0644")) for f in config["write_files"])
    return files, tuple(tuple(command) for command in config["runcmd"])


def links_made(runcmd: Sequence[Sequence[str]]) -> list[str]:
    """The links cloud-init's runcmd makes (`ln -sf TARGET LINK`: the node tool's other names): removal takes them off."""
    return [command[-1] for command in runcmd if tuple(command[:2]) == ("ln", "-sf")]


def split_secret(files: Sequence[NodeFile]) -> tuple[list[NodeFile], list[NodeFile]]:
    """(plain files, secret files): the secrets go into state only as a Pulumi secret."""
    return [f for f in files if f.path not in SECRET_FILES], [f for f in files if f.path in SECRET_FILES]


def q(*words: str) -> str:
    return " ".join(shlex.quote(w) for w in words)


def before_script() -> str:
    """What the host has before llm-deploy touches it, one `name value` line each: the packages the bootstrap
    would install, whether nginx and docker are enabled and running, the default nginx site, Docker's
    daemon.json (base64; the toolkit step adds its runtime there). Removal puts each back."""
    lines = [f"if dpkg-query -W -f='${{Status}}' {p} 2>/dev/null | grep -q 'ok installed'; then echo {p} installed; else echo {p} absent; fi"
             for p in PACKAGES]
    lines += [f'echo "{u}-enabled $(systemctl is-enabled {u} 2>/dev/null || true)"; echo "{u}-active $(systemctl is-active {u} 2>/dev/null || true)"'
              for u in SYSTEM_UNITS]
    lines.append("if [ -e /etc/nginx/sites-enabled/default ]; then echo default-site present; else echo default-site absent; fi")
    lines.append(f'if [ -e {DAEMON_JSON} ]; then echo "daemon.json $(base64 -w0 {DAEMON_JSON})"; else echo daemon.json absent; fi')
    return "\n".join(lines)


def parse_before(output: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in output.strip().splitlines() if " " in line)


def stop_script(services: Sequence[str], node_units: bool = True) -> str:
    """Stop, then disable, the given services and, on removal (`node_units`), the node's own units. Two commands:
    `disable --now` stops nothing when its daemon reload fails, and a unit left running outlives its files."""
    units = q(*UNITS if node_units else (), *(f"llm-deploy@{s}.service" for s in services))
    return f"systemctl stop {units} 2>/dev/null || true\nsystemctl disable {units} 2>/dev/null || true"


def start_script(runcmd: Sequence[Sequence[str]]) -> str:
    """After the files: the re-runnable steps' markers cleared, then cloud-init's runcmd (the same commands)."""
    markers = [f"{STATE}/steps/{step}.done" for step in RERUN_STEPS] + [f"{STATE}/bootstrap.done"]
    return "\n".join(["set -e", f"rm -f {q(*markers)}", RELOAD_GATEWAY, *(q(*command) for command in runcmd)])


def remove_script(paths: Sequence[str], services: Sequence[str], images: Sequence[str], before: dict[str, str]) -> str:
    """Everything llm-deploy put on the host taken off again: units, files, containers, images, the node tool's
    firewall rules, the packages it installed (and the toolkit's apt source); nginx and docker enabled or not as
    they were, Docker's daemon.json and the default nginx site as they were."""
    lines = [stop_script(services)]
    lines += [f"docker rm -f {q('llm-deploy-' + s)} >/dev/null 2>&1 || true" for s in services]
    lines += [f"docker rmi {q(image)} >/dev/null 2>&1 || true" for image in images]
    lines += [f"iptables -D DOCKER-USER -d {a} -j DROP 2>/dev/null || true" for a in METADATA_ADDRESSES]
    lines.append(f"rm -rf {q(*paths, *NODE_STATE)}")
    for unit in SYSTEM_UNITS:  # before a purge, while their unit files exist
        if before.get(f"{unit}-enabled") in ("disabled", ""):
            lines.append(f"systemctl disable {unit} 2>/dev/null || true")
        if before.get(f"{unit}-active") != "active":
            lines.append(f"systemctl stop {unit} 2>/dev/null || true")
    installed = [p for p in PACKAGES if before.get(p) == "absent"]
    if installed:
        lines.append(f"DEBIAN_FRONTEND=noninteractive apt-get purge -y -q {q(*installed)} >/dev/null 2>&1 || true")
    if "nvidia-container-toolkit" in installed:
        lines.append(f"rm -f {q(*TOOLKIT_SOURCES)}")
    daemon = before.get("daemon.json", "absent")
    if daemon == "absent":
        lines.append(f"rm -f {DAEMON_JSON}; rmdir {DAEMON_JSON.rsplit('/', 1)[0]} 2>/dev/null || true")
    else:
        lines.append(f"echo {q(daemon)} | base64 -d > {DAEMON_JSON}")
    lines.append("systemctl daemon-reload")
    lines += [f"systemctl restart {unit} 2>/dev/null || true" for unit in SYSTEM_UNITS if before.get(f"{unit}-active") == "active"]
    lines.append(restore_nginx(before))
    return "\n".join(lines)


def restore_nginx(before: dict[str, str]) -> str:
    """The default site back where the host had it, and a running nginx reloaded."""
    relink = "ln -sf /etc/nginx/sites-available/default /etc/nginx/sites-enabled/default; " if before.get("default-site") == "present" else ""
    return f"if command -v nginx >/dev/null; then {relink}if systemctl is-active --quiet nginx; then systemctl reload nginx || true; fi; fi"


def node_images(files: Sequence[NodeFile]) -> list[str]:
    """The images the services' confs name (SERVICE_IMAGE=...), pulled by the node tool."""
    images = []
    for file in files:
        for line in file.content.splitlines():
            if line.startswith("SERVICE_IMAGE="):
                images.append(shlex.split(line.partition("=")[2])[0])
    return images


def services_of(group: NodeGroup) -> list[str]:
    return [name for s in group.services for name, _ in s.instances]


def host_url(host: Host) -> str:
    """A host's gateway as an upstream (port 80)."""
    address = f"[{host.address}]" if ":" in host.address else host.address
    return f"{address}:{GATEWAY_PORT}"


def front_port(tls: bool) -> int:
    return FRONT_TLS_PORT if tls else FRONT_HTTP_PORT


Upstreams = Sequence[tuple[str, Sequence[Host]]]  # (node group, its hosts), in plan order


def front_gateway_conf(groups: Upstreams, paths: dict[str, Sequence[str]], allowed_cidrs: Sequence[str], tls: bool,
                       domain: str | None) -> str:
    """The front gateway (nginx on endpointHost): per node group an upstream of its hosts' gateways, each request
    path to the group that serves it (`/` and /healthz to the first); a host is taken out for 10 s after a failed
    request (passive) and while the probe (`front_health_script`) finds its /healthz not 200 (active: the probe
    writes `down` into the group's upstream file). Only allowedCidrs get in; TLS with the user's certificate."""
    for cidr in allowed_cidrs:
        ipaddress.ip_network(cidr)  # validated by the config: nothing but a network gets into the file
    allow = "".join(f"    allow {cidr};\n" for cidr in allowed_cidrs) + "    deny all;\n"
    port = front_port(tls)
    ssl = " ssl" if tls else ""
    listen = f"    listen {port}{ssl};\n    listen [::]:{port}{ssl};\n"
    certificate = (f"    ssl_certificate {FRONT_DIR}/tls.crt;\n    ssl_certificate_key {FRONT_DIR}/tls.key;\n"
                   "    ssl_protocols TLSv1.2 TLSv1.3;\n") if tls else ""
    name = f"    server_name {domain};\n" if domain else ""
    upstreams = "".join(f"upstream llm_deploy_{_ident(g)} {{\n    include {FRONT_DIR}/{g}.upstream;\n    keepalive 16;\n}}\n"
                        for g, _ in groups)
    locations = [("/", groups[0][0])] + [(path, g) for g, _ in groups for path in paths[g]]
    proxy = ("        proxy_http_version 1.1;\n        proxy_set_header Connection \"\";\n        proxy_set_header Host $host;\n"
             "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
             "        proxy_next_upstream error timeout http_502 http_503 non_idempotent;\n")
    blocks = "".join(f"    location {'' if path == '/' else '^~ '}{path} {{\n        proxy_pass http://llm_deploy_{_ident(g)};\n{proxy}    }}\n"
                     for path, g in locations)
    return (
        "# llm-deploy front gateway: the one endpoint of an on-prem stack (components/onprem/layout.py).\n"
        f"{upstreams}server {{\n{listen}{name}{certificate}{allow}"
        "    client_max_body_size 32m;\n    proxy_read_timeout 900s;\n    proxy_send_timeout 900s;\n"
        # Responses stream as they come; a request is read whole before it goes to a host, so that one that host
        # failed before answering (an error, 502, 503) can go to the next (a streamed body could not be sent twice).
        f"    proxy_buffering off;\n    proxy_request_buffering on;\n{blocks}}}\n"
    )


def _ident(group: str) -> str:
    return group.replace("-", "_")


def upstream_file(hosts: Sequence[Host]) -> str:
    """A group's upstream servers, every one up until the probe has seen it."""
    return "".join(f"server {host_url(h)} max_fails=1 fail_timeout={FAIL_TIMEOUT_S}s;\n" for h in hosts)


FRONT_HEALTH_UNIT = f"""[Unit]
Description=llm-deploy front gateway: probe every host's {HEALTH_PATH}, keep only healthy ones in the upstreams
After=nginx.service

[Service]
ExecStart=/usr/local/sbin/llm-deploy-front-health
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
"""


def front_health_script(groups: Upstreams) -> str:
    """Every PROBE_INTERVAL_S: each host's /healthz; a group's upstream file rewritten (and nginx reloaded) when its healthy
    hosts change: a host out after two failed probes, or at once when it is draining, and back after one 200.
    A group with no healthy host keeps them all, so nginx answers 502 rather than failing to load."""
    pairs = " ".join(shlex.quote(f"{g}={host_url(h)}") for g, hosts in groups for h in hosts)
    names = " ".join(shlex.quote(g) for g, _ in groups)
    return f"""#!/bin/bash
# llm-deploy front gateway health probe (components/onprem/layout.py): active health checks for nginx's upstreams.
set -u
groups=({names})
servers=({pairs})
declare -A failures=()
while true; do
    changed=0
    for group in "${{groups[@]}}"; do
        healthy=0 text=""
        for pair in "${{servers[@]}}"; do
            [[ ${{pair%%=*}} == "$group" ]] || continue
            server=${{pair#*=}}
            answer=$(curl -s -m {PROBE_TIMEOUT_S} -w ' %{{http_code}}' "http://$server{HEALTH_PATH}")
            if [[ $answer == *' 200' ]]; then
                failures[$pair]=0
            elif [[ $answer == *'"draining"'* ]]; then  # it asked to be taken out (a rolling change): at once
                failures[$pair]={UNHEALTHY_AFTER}
            else
                failures[$pair]=$((${{failures[$pair]:-0}} + 1))
            fi
            if ((failures[$pair] >= {UNHEALTHY_AFTER})); then
                text+="server $server max_fails=1 fail_timeout={FAIL_TIMEOUT_S}s down;"$'\\n'
            else
                text+="server $server max_fails=1 fail_timeout={FAIL_TIMEOUT_S}s;"$'\\n'
                healthy=$((healthy + 1))
            fi
        done
        if ((healthy == 0)); then text=${{text// down;/;}}; fi
        file={FRONT_DIR}/$group.upstream
        if [[ $text != "$(cat "$file" 2>/dev/null)"$'\\n' ]]; then
            printf '%s' "$text" >"$file.new" && mv -f "$file.new" "$file" && changed=1
        fi
    done
    if ((changed)); then systemctl reload nginx; fi
    sleep {PROBE_INTERVAL_S}
done
"""


FRONT_STATE = (FRONT_CONF, FRONT_DIR, "/usr/local/sbin/llm-deploy-front-health", "/etc/systemd/system/llm-deploy-front-health.service")


# The front gateway after its files: nginx (installed where missing), checked, reloaded; the probe (re)started.
FRONT_START = """set -e
command -v nginx >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx; }
nginx -t
systemctl enable nginx
systemctl reload nginx || systemctl restart nginx
systemctl daemon-reload
systemctl enable llm-deploy-front-health.service
systemctl restart llm-deploy-front-health.service
"""


def front_remove_script(before: dict[str, str], also_a_node: bool) -> str:
    """The front gateway's files and probe taken off; nginx purged where llm-deploy installed it for the front
    gateway alone (on a host that is also a node, the node's removal does that)."""
    lines = ["systemctl disable --now llm-deploy-front-health.service 2>/dev/null || true", f"rm -rf {q(*FRONT_STATE)}",
             "systemctl daemon-reload"]
    if before.get("nginx") == "absent" and not also_a_node:
        lines.append("DEBIAN_FRONTEND=noninteractive apt-get purge -y -q nginx nginx-common >/dev/null 2>&1 || true")
    lines.append(restore_nginx(before))
    return "\n".join(lines)
