"""A node group of the plan → `#cloud-config` user-data.

The cloud-config is a typed structure dumped with `yaml.safe_dump`-compatible output: no YAML is
built from strings. It carries, as readable text, the static scripts and units of `files/` and the
few generated files that hold this node's values: `node.env`, one `services/<name>.conf` per
service, the gateway config, the metrics agent's configuration where the cloud's record names an agent,
and, only on clouds without a secret store, `secrets.env`. Clouds whose
record says `gzip_user_data` (AWS, Alibaba Cloud) get the whole document gzipped (`encode_user_data`) to stay under their limits. The scripts read those files, so they stay the same on every
node and shellcheck checks exactly what runs.
"""

from __future__ import annotations

import base64
import gzip
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NotRequired, TypedDict

import yaml

from bootstrap import cloudwatch
from bootstrap.delivery import BootTarget, InlineSecrets, SecretDelivery, SecretStore
from bootstrap.gateway import AUTH_FILE, DRAIN_FILE, FILES, HEALTH_FILE, SERVICE_HEALTH_DIR, render_gateway
from bootstrap.services import CACHE_DIR, CUDA_CHECK_IMAGE, DRIVER_BRANCH, ServiceLaunch, service_launches
from infra import clouds
from infra.errors import BadInput
from infra.node_metadata import TOKEN_TTL_SECONDS
from infra.plan import GATEWAY_PORT, NodeGroup

ETC = "/etc/llm-deploy"
# Most user-data each cloud accepts (bytes, before base64), from its record.
USER_DATA_LIMITS = {c.name: c.user_data_limit for c in clouds.CLOUDS}
OS_RELEASES = ("ubuntu-22.04", "ubuntu-24.04")
API_KEY_CHARS = re.compile(r"^[A-Za-z0-9._~+/=-]+$")  # must match llm-deploy-secrets' check
HF_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9._-]+$")
PARAMETER_NAME = re.compile(r"^[A-Za-z0-9_./-]{1,1011}$")


class UserDataTooLarge(BadInput):
    """The rendered user-data is over the cloud's limit (`size` and `limit` in bytes, as sent): the
    user's input (SSH keys, services) made it so."""

    def __init__(self, group: str, cloud: str, size: int, limit: int) -> None:
        super().__init__(f"node group {group!r}: user-data is {size} bytes as sent; {cloud} accepts {limit}")
        self.size, self.limit = size, limit


class UnreadableSecret(BadInput, ValueError):
    """A secret value with characters the node's scripts refuse; `secret` names the InlineSecrets field."""

    def __init__(self, secret: str, message: str) -> None:
        super().__init__(f"secrets.{secret}: {message}")
        self.secret, self.message = secret, message


class WriteFile(TypedDict):
    """One entry of cloud-init's `write_files` module (owner defaults to root:root, mode to 0644)."""

    path: str
    content: str
    encoding: NotRequired[str]
    permissions: NotRequired[str]


class CloudConfig(TypedDict):
    write_files: list[WriteFile]
    runcmd: list[list[str]]
    ssh_pwauth: bool  # keys only: a droplet created without SSH keys gets a root password otherwise
    ssh_authorized_keys: NotRequired[list[str]]


@dataclass(frozen=True)
class StaticFile:
    """A file of `files/` and where it lands on the node."""

    source: str
    path: str
    permissions: str
    when: str = "always"  # "always" | "gpu" | a secret store kind | "metadata" | "metrics-agent" | that agent


STATIC_FILES = (
    StaticFile("llm-deploy", "/usr/local/sbin/llm-deploy", "0755"),
    StaticFile("llm-deploy-gpu", "/usr/local/sbin/llm-deploy-gpu", "0755", when="gpu"),
    StaticFile("alicloud_oos.py", "/usr/local/lib/llm-deploy/alicloud_oos.py", "0755", when="alicloud-oos"),
    StaticFile("systemd/llm-deploy-bootstrap.service", "/etc/systemd/system/llm-deploy-bootstrap.service", "0644"),
    StaticFile("systemd/llm-deploy-secrets.service", "/etc/systemd/system/llm-deploy-secrets.service", "0644"),
    StaticFile("systemd/llm-deploy@.service", "/etc/systemd/system/llm-deploy@.service", "0644"),
    StaticFile("systemd/llm-deploy-health.service", "/etc/systemd/system/llm-deploy-health.service", "0644"),
    StaticFile("llm-deploy-metadata", "/usr/local/sbin/llm-deploy-metadata", "0755", when="metadata"),
    StaticFile("systemd/llm-deploy-watch.service", "/etc/systemd/system/llm-deploy-watch.service", "0644", when="metadata"),
    StaticFile("systemd/llm-deploy-metrics.service", "/etc/systemd/system/llm-deploy-metrics.service", "0644", when="metrics-agent"),
    StaticFile("llm-deploy-cloudwatch", "/usr/local/sbin/llm-deploy-cloudwatch", "0755", when="cloudwatch"),
    StaticFile("llm-deploy-ttft", "/usr/local/sbin/llm-deploy-ttft", "0755", when="cloudwatch"),
    StaticFile("systemd/llm-deploy-ttft.service", "/etc/systemd/system/llm-deploy-ttft.service", "0644", when="cloudwatch"),
)

RUNCMD = [
    ["ln", "-sf", "/usr/local/sbin/llm-deploy", "/usr/local/bin/llm-deploy-status"],
    ["ln", "-sf", "/usr/local/sbin/llm-deploy", "/usr/local/bin/llm-deploy-node"],  # the node tool's unambiguous name
    ["systemctl", "daemon-reload"],
    ["systemctl", "enable", "llm-deploy-bootstrap.service"],
    # --no-block: cloud-init must finish; the unit runs on (and after the driver's reboot) by itself.
    ["systemctl", "start", "--no-block", "llm-deploy-bootstrap.service"],
]


def shell_assignments(header: str, values: Mapping[str, str | int | Sequence[str]]) -> str:
    """A bash file of `NAME=value` / `NAME=(a b)` lines, every value shell-quoted."""
    lines = ["# shellcheck shell=bash disable=SC2034", *(f"# {line}" for line in header.splitlines())]
    for name, value in values.items():
        if isinstance(value, str | int):
            lines.append(f"{name}={shlex.quote(str(value))}")
        else:
            lines.append(f"{name}=({' '.join(shlex.quote(v) for v in value)})")
    return "\n".join(lines) + "\n"


def node_env(group: NodeGroup, target: BootTarget, secrets: SecretDelivery) -> str:
    values: dict[str, str | int | Sequence[str]] = {
        "LLM_DEPLOY_GROUP": group.name,
        "LLM_DEPLOY_CLOUD": group.cloud,
        "LLM_DEPLOY_OS_RELEASE": target.os_release,
        "LLM_DEPLOY_ACCELERATOR": group.accelerator,
        "LLM_DEPLOY_SERVICES": [name for s in group.services for name, _ in s.instances],
        "LLM_DEPLOY_CACHE_DIR": CACHE_DIR,
        "LLM_DEPLOY_DATA_DEVICE": target.data_device or "",
        "LLM_DEPLOY_LOCAL_CACHE": (group.storage and group.storage.local_cache_mount) or "",
        "LLM_DEPLOY_HEALTH_FILE": HEALTH_FILE,
        "LLM_DEPLOY_SERVICE_HEALTH_DIR": SERVICE_HEALTH_DIR,
        "LLM_DEPLOY_AUTH_FILE": AUTH_FILE,
        "LLM_DEPLOY_DRAIN_FILE": DRAIN_FILE,
    }
    values |= metadata_env(group.cloud)
    if group.accelerator == "gpu":
        values |= {
            "LLM_DEPLOY_GPU_COUNT": group.offer.gpu_count,
            "LLM_DEPLOY_IMAGE_HAS_DRIVER": int(target.image_has_driver),
            "LLM_DEPLOY_DRIVER_BRANCH": DRIVER_BRANCH,
            "LLM_DEPLOY_FABRIC_MANAGER": int(group.offer.gpu_count >= 8 and not target.image_has_driver),
            "LLM_DEPLOY_CUDA_CHECK_IMAGE": target.sources.image(CUDA_CHECK_IMAGE),
        }
    if isinstance(secrets, SecretStore):
        values |= {
            "LLM_DEPLOY_SECRET_STORE": secrets.kind,
            "LLM_DEPLOY_SECRET_REGION": secrets.region,
            "LLM_DEPLOY_API_KEY_NAME": secrets.api_key_name,
            "LLM_DEPLOY_HF_TOKEN_NAME": secrets.hf_token_name or "",
        }
    else:
        values["LLM_DEPLOY_SECRET_STORE"] = "inline"
    header = f"Node group {group.name}: {group.offer.instance_type} on {group.cloud}, read by /usr/local/sbin/llm-deploy."
    return shell_assignments(header, values)


def metadata_env(cloud_name: str) -> dict[str, str | int | Sequence[str]]:
    """Where the node reads notices of its end, and its autoscaling group's name (the cloud's record)."""
    cloud = clouds.get(cloud_name)
    values: dict[str, str | int | Sequence[str]] = {}
    if cloud.metadata:
        service = cloud.metadata
        values |= {
            "LLM_DEPLOY_METADATA_URL": service.url,
            "LLM_DEPLOY_METADATA_TOKEN_PATH": service.token_path,
            "LLM_DEPLOY_METADATA_TOKEN_TTL_HEADER": service.token_ttl_header,
            "LLM_DEPLOY_METADATA_TOKEN_TTL": TOKEN_TTL_SECONDS,
            "LLM_DEPLOY_METADATA_TOKEN_HEADER": service.token_header,
            "LLM_DEPLOY_NOTICE_PATHS": [n.path for n in service.notices],
            "LLM_DEPLOY_NOTICE_ANSWERS": [n.answer for n in service.notices],
            "LLM_DEPLOY_NOTICE_REASONS": [n.reason for n in service.notices],
            "LLM_DEPLOY_GROUP_NAME_PATH": service.group_name_path or "",
        }
    if cloud.metrics_agent:
        agent = cloudwatch.metrics_agent(cloud.metrics_agent)
        values |= {
            "LLM_DEPLOY_METRICS_AGENT": agent.agent,
            "LLM_DEPLOY_AGENT_VERSION": agent.version,
            "LLM_DEPLOY_AGENT_PACKAGE_URL": agent.package_url,
            "LLM_DEPLOY_AGENT_SIGNATURE_URL": agent.signature_url,
            "LLM_DEPLOY_AGENT_KEY_URL": agent.key_url,
            "LLM_DEPLOY_AGENT_KEY_FINGERPRINT": agent.key_fingerprint,
        }
    return values


# A metrics agent (a cloud record's `metrics_agent`) → the configuration files it needs on a node of the group.
AGENT_CONFIGS = {"cloudwatch": cloudwatch.config_files}


def agent_files(group: NodeGroup, target: BootTarget) -> list[WriteFile]:
    """The metrics agent's configuration, on clouds whose record names one."""
    agent = clouds.get(group.cloud).metrics_agent
    if not agent:
        return []
    if target.metrics_log_group is None:
        raise ValueError(f"{group.cloud}: a node with the {agent} agent needs the stack's metrics log group")
    return [_text(path, text) for path, text in AGENT_CONFIGS[agent](group, target.metrics_log_group).items()]


def service_conf(launch: ServiceLaunch) -> str:
    service = launch.service
    return shell_assignments(
        f"Run by llm-deploy@{service.name}.service.",
        {
            "SERVICE_KIND": service.kind,
            "SERVICE_PORT": service.port,
            "SERVICE_IMAGE": launch.image,
            "SERVICE_DOCKER_ARGS": launch.docker_args,
            "SERVICE_ARGS": launch.args,
            "SERVICE_WAITS_FOR": launch.waits_for,
            "SERVICE_HEALTH_PATH": launch.health_path,
            "SERVICE_PULL": launch.pull,
        },
    )


def secrets_env(secrets: InlineSecrets) -> str:
    values = {"LLM_DEPLOY_API_KEY": secrets.api_key}
    if secrets.hf_token:
        values["HF_TOKEN"] = secrets.hf_token
    return shell_assignments("Secrets delivered in user-data: this cloud has no secret store.", values)


def check_inputs(group: NodeGroup, target: BootTarget, secrets: SecretDelivery) -> None:
    """Refuse what the node could not run, naming the field, before anything is rendered."""
    if not group.services:
        raise ValueError(f"node group {group.name!r}: services: no service to run")
    if target.cloud != group.cloud:
        raise ValueError(f"target.cloud: {target.cloud!r} but node group {group.name!r} is on {group.cloud!r}")
    if target.os_release not in OS_RELEASES:
        raise ValueError(f"target.os_release: {target.os_release!r} is not one of {', '.join(OS_RELEASES)}")
    if target.data_device is not None and not re.match(r"^/dev/[A-Za-z0-9/_.-]+$", target.data_device):
        raise ValueError(f"target.data_device: {target.data_device!r} is not a /dev path")
    ports = [port for s in group.services for _, port in s.instances]
    for service in group.services:
        for name, port in service.instances:
            if ports.count(port) > 1 or port == GATEWAY_PORT or not 1 <= port <= 65535:
                raise ValueError(f"service {name!r}: port {port} is taken or invalid")
    kinds = [s.kind for s in group.services]
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"node group {group.name!r}: at most one service per kind (the gateway routes by kind)")
    store = clouds.get(group.cloud).secret_store
    if isinstance(secrets, SecretStore):
        if secrets.kind != store:
            raise ValueError(f"secrets.kind: {secrets.kind!r} is not a secret store of {group.cloud!r}")
        for field, name in (("api_key_name", secrets.api_key_name), ("hf_token_name", secrets.hf_token_name)):
            if name is not None and not PARAMETER_NAME.match(name):
                raise ValueError(f"secrets.{field}: {name!r} is not a parameter name")
    elif isinstance(secrets, InlineSecrets):
        if store is not None:
            raise ValueError(f"secrets: {group.cloud} has a secret store; inline secrets would put the key in user-data")
        if not API_KEY_CHARS.match(secrets.api_key):
            raise UnreadableSecret("api_key", "must be non-empty and use only A-Z a-z 0-9 . _ ~ + / = -")
        if secrets.hf_token is not None and not HF_TOKEN_CHARS.match(secrets.hf_token):
            raise UnreadableSecret("hf_token", "must use only A-Z a-z 0-9 . _ -")
    else:
        raise TypeError(f"secrets: expected SecretStore or InlineSecrets, got {type(secrets).__name__}")


def _static(file: StaticFile) -> WriteFile:
    return _text(file.path, (FILES / file.source).read_text(), None if file.permissions == "0644" else file.permissions)


def _text(path: str, content: str, permissions: str | None = None) -> WriteFile:
    entry: WriteFile = {"path": path, "content": content}
    if permissions:
        entry["permissions"] = permissions
    return entry


class _Dumper(yaml.SafeDumper):
    """Safe dumper that writes multi-line strings as literal blocks, so the generated files read as files."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(config: CloudConfig) -> str:
    return "#cloud-config\n" + yaml.dump(dict(config), Dumper=_Dumper, sort_keys=False, width=1_000_000)


def render_user_data(
    group: NodeGroup,
    target: BootTarget,
    secrets: SecretDelivery,
    upstreams: Mapping[str, str] | None = None,
    ssh_public_keys: Sequence[str] = (),
) -> str:
    """`#cloud-config` user-data (plain text) that turns a VM of this node group into a serving node.

    `ssh_public_keys` are authorized for the image's default user; password logins stay off.

    `upstreams` maps a service kind this node does not serve to a base URL its gateway proxies to
    (where the load balancer cannot route by path). With a SecretStore the user-data holds only the
    parameter names; with InlineSecrets the values travel in it (written to a 0600 file).

    Raises UserDataTooLarge past the cloud's limit, UnreadableSecret for an inline secret the node
    could not read, and ValueError for a node group or target it could not run (a bug upstream).
    """
    check_inputs(group, target, secrets)
    launches = service_launches(group, target.sources)
    cloud = clouds.get(group.cloud)
    conditions = {"always", group.accelerator, *(["metadata"] if cloud.metadata else [])}
    if cloud.metrics_agent:
        conditions |= {"metrics-agent", cloud.metrics_agent}
    if isinstance(secrets, SecretStore):
        conditions.add(secrets.kind)
    files = [_static(f) for f in STATIC_FILES if f.when in conditions]
    files.append(_text(f"{ETC}/node.env", node_env(group, target, secrets)))
    files += [_text(f"{ETC}/services/{launch.service.name}.conf", service_conf(launch)) for launch in launches]
    files.append(_text(f"{ETC}/gateway.conf", render_gateway(group, upstreams)))
    files += agent_files(group, target)
    if isinstance(secrets, InlineSecrets):
        files.append(_text(f"{ETC}/secrets.env", secrets_env(secrets), permissions="0600"))
    config: CloudConfig = {"write_files": files, "runcmd": RUNCMD, "ssh_pwauth": False}
    if ssh_public_keys:
        config["ssh_authorized_keys"] = list(ssh_public_keys)
    text = dump(config)
    size = len(_gzip(text)) if cloud.gzip_user_data else len(text.encode())
    if size > cloud.user_data_limit:
        raise UserDataTooLarge(group.name, group.cloud, size, cloud.user_data_limit)
    return text


def _gzip(text: str) -> bytes:
    return gzip.compress(text.encode(), mtime=0)  # mtime 0: the same text gives the same bytes, so no spurious replacement


def encode_user_data(text: str) -> str:
    """gzip + base64, the form EC2 launch templates and ECS/ESS scaling configurations take."""
    return base64.b64encode(_gzip(text)).decode()
