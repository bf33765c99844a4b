"""The asleep node: what a stack runs while its schedule has it asleep on a cloud whose load balancer only
forwards (DigitalOcean). One small CPU droplet whose nginx answers every path 503 with the schedule's JSON (when
the stack wakes up) and `/healthz` 200, so the load balancer keeps forwarding to it; no model, no secret.

The site is rendered here and tested under the real nginx; the cloud-config installs nginx from the image's
apt, enables the site and drops Ubuntu's default one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from bootstrap.render import CloudConfig, dump
from infra.plan import GATEWAY_PORT, HEALTH_PATH

SITE = "/etc/nginx/sites-available/llm-deploy-asleep"
APT_LOCK_WAIT_S = 600
HEALTHY_BODY = {"status": "asleep"}  # /healthz: the load balancer must see a healthy target to forward the answer


def _nginx_string(value: str) -> str:
    """A single-quoted nginx string: the JSON has no `$` (nginx would expand it) by the schedule grammar."""
    if "$" in value:
        raise ValueError(f"an asleep answer cannot hold '$' (nginx would read a variable): {value!r}")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def asleep_site(answer: Mapping[str, str], listen: Sequence[str] = (f"{GATEWAY_PORT} default_server",
                                                                      f"[::]:{GATEWAY_PORT} default_server")) -> str:
    """The nginx server block: 503 and the answer's JSON on every path, 200 on the health check's path."""
    listens = "".join(f"    listen {address};\n" for address in listen)
    return (
        "# llm-deploy: the stack is asleep (its schedule); the GPU nodes come back at its next wake.\n"
        "server {\n"
        f"{listens}"
        "    server_name _;\n"
        "    default_type application/json;\n"
        f"    location = {HEALTH_PATH} {{ return 200 {_nginx_string(json.dumps(HEALTHY_BODY) + chr(10))}; }}\n"
        f"    location / {{ return 503 {_nginx_string(json.dumps(dict(answer)) + chr(10))}; }}\n"
        "}\n"
    )


def asleep_user_data(answer: Mapping[str, str], ssh_public_keys: Sequence[str] = ()) -> str:
    """`#cloud-config` for the asleep droplet (Ubuntu): nginx with only the asleep site."""
    config: CloudConfig = {
        "write_files": [{"path": SITE, "content": asleep_site(answer)}],
        "runcmd": [
            # A fresh Ubuntu droplet's unattended-upgrades may hold apt's lock: wait for it rather than fail.
            ["apt-get", "-o", f"DPkg::Lock::Timeout={APT_LOCK_WAIT_S}", "update"],
            ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-o", f"DPkg::Lock::Timeout={APT_LOCK_WAIT_S}", "install", "-y",
             "--no-install-recommends", "nginx"],
            ["rm", "-f", "/etc/nginx/sites-enabled/default"],
            ["ln", "-sf", SITE, "/etc/nginx/sites-enabled/llm-deploy-asleep"],
            ["nginx", "-t"],
            ["systemctl", "reload-or-restart", "nginx"],
        ],
        "ssh_pwauth": False,
    }
    if ssh_public_keys:
        config["ssh_authorized_keys"] = list(ssh_public_keys)
    return dump(config)
