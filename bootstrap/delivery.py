"""How a node learns its secrets and what its image already has: the inputs bootstrap needs besides the node group."""

from __future__ import annotations

from dataclasses import dataclass, field

from bootstrap.services import Sources


@dataclass(frozen=True)
class SecretStore:
    """Secrets live in the cloud's store; the node fetches them at boot with its instance identity.

    kind: "aws-ssm" (SSM Parameter Store SecureString, read with the instance role) or
    "alicloud-oos" (OOS encrypted parameter, read with the instance RAM role).
    """

    kind: str
    region: str
    api_key_name: str
    hf_token_name: str | None = None


@dataclass(frozen=True)
class InlineSecrets:
    """Only for clouds without a secret store (DigitalOcean): the values travel in user-data."""

    api_key: str
    hf_token: str | None = None


SecretDelivery = SecretStore | InlineSecrets


@dataclass(frozen=True)
class BootTarget:
    """What the image brings and where the model cache disk appears."""

    cloud: str
    image_has_driver: bool  # NVIDIA driver (and usually Docker + toolkit) preinstalled
    os_release: str = "ubuntu-22.04"
    data_device: str | None = None  # block device to format and mount for the model cache; None: use the root disk
    sources: Sources = field(default_factory=Sources)  # where images and weights come from (air-gapped on-prem hosts: a mirror, staged models)
    metrics_log_group: str | None = None  # the stack's log group a metrics agent writes to (clouds whose record names an agent)
