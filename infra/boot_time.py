"""Time to healthy: how long a new node takes from launch to a healthy gateway, estimated step by step.

A pure function of what the plan knows: the images the node pulls, the bytes of weights it downloads
and loads, the throughput of its disks and network, and whether its image lacks the driver or Docker.
The rates are typical figures with a source each (data/boot_time.csv); the estimate sets each node
group's health-check grace (estimate x `grace_margin`) and the window in which a restarting service
is not yet counted as failed (systemd's restart delay + its weights from disk + warm-up, x `restart_margin`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from infra.data_files import data_rows
from infra.plan import BootEstimate, BootStep, PlacedService


@functools.cache
def constant(name: str) -> float:
    """A named rate or duration of data/boot_time.csv."""
    return {row["name"]: float(row["value"]) for row in data_rows("boot_time.csv")}[name]


@dataclass(frozen=True)
class ImageSize:
    image: str
    compressed_gb: float
    on_disk_gb: float


@functools.cache
def image_sizes() -> dict[tuple[str, str], ImageSize]:
    """(engine, flavour) → the pinned image and its size (data/images.csv)."""
    return {
        (row["engine"], row["flavour"]): ImageSize(row["image"], float(row["compressed_gb"]), float(row["on_disk_gb"]))
        for row in data_rows("images.csv")
    }


@dataclass(frozen=True)
class NodeImage:
    """What a cloud's machine image brings and how much of the root disk it takes."""

    has_driver: bool
    has_docker: bool
    os_footprint_gb: float
    local_cache_mount: str  # where the image mounts the instance's local NVMe ("": it does not)


@functools.cache
def node_image(cloud: str, accelerator: str) -> NodeImage:
    row = next(r for r in data_rows("node_images.csv") if (r["cloud"], r["accelerator"]) == (cloud, accelerator))
    return NodeImage(row["has_driver"] == "true", row["has_docker"] == "true", float(row["os_footprint_gb"]), row["local_cache_mount"])


@dataclass(frozen=True)
class ServiceLoad:
    """One service's share of a boot: its checkpoint and its warm-up after loading."""

    name: str
    weights_gb: float
    warmup_minutes: float


@dataclass(frozen=True)
class BootInputs:
    images: tuple[ImageSize, ...]  # each pulled once
    services: tuple[ServiceLoad, ...]  # started one after another (vLLM first)
    root_mbps: float  # disk the images are unpacked to
    cache_mbps: float  # disk the weights are written to and read from
    network_mbps: float | None  # the node's own bandwidth cap in MB/s; None: above the CDNs' rates
    installs_driver: bool
    installs_docker: bool


def _minutes(gigabytes: float, mbps: float) -> float:
    return gigabytes * 1000 / mbps / 60


def _capped(rate: float, *caps: float | None) -> float:
    return min([rate, *(c for c in caps if c)])


def estimate_boot(inputs: BootInputs) -> BootEstimate:
    """Minutes per step from launch to healthy, with the grace and restart windows derived from them."""
    pull_mbps = _capped(constant("registry_pull_mbps"), inputs.network_mbps)
    download_mbps = _capped(constant("hf_download_mbps"), inputs.network_mbps, inputs.cache_mbps)
    weights_gb = sum(s.weights_gb for s in inputs.services)
    start = constant("node_start_minutes") + (constant("docker_install_minutes") if inputs.installs_docker else 0)
    driver = constant("driver_install_minutes") + constant("reboot_minutes") if inputs.installs_driver else 0
    images = _minutes(sum(i.compressed_gb for i in inputs.images), pull_mbps) + _minutes(
        sum(i.on_disk_gb for i in inputs.images), _capped(constant("image_extract_mbps"), inputs.root_mbps)
    )
    steps = (
        BootStep("start", start),
        BootStep("driver", driver),
        BootStep("images", images),
        BootStep("download weights", _minutes(weights_gb, download_mbps)),
        BootStep("load weights", _minutes(weights_gb, inputs.cache_mbps)),
        BootStep("warm-up", sum(s.warmup_minutes for s in inputs.services)),
    )
    rounded = tuple(BootStep(s.name, round(s.minutes, 2)) for s in steps)
    total = sum(s.minutes for s in steps)
    restart_delay, restart_margin = constant("restart_delay_minutes"), constant("restart_margin")
    restarts = tuple(
        (s.name, math.ceil((restart_delay + _minutes(s.weights_gb, inputs.cache_mbps) + s.warmup_minutes) * restart_margin * 60))
        for s in inputs.services
    )
    return BootEstimate(rounded, grace_seconds=math.ceil(total * constant("grace_margin")) * 60, restart_seconds=restarts)


def warmup_minutes(service: PlacedService) -> float:
    if service.engine == "ollama":
        return constant("ollama_warmup_minutes")
    return constant("vllm_warmup_minutes") if service.kind == "llm" else constant("tei_warmup_minutes")


def service_images(services: Sequence[PlacedService], gpu_arch: str | None, on_gpu: bool) -> tuple[ImageSize, ...]:
    """The images a node pulls, each once: vLLM (or Ollama) for an LLM, TEI of the GPU's flavour (or CPU) for the
    encoders, and the CUDA base image of the GPU check."""
    sizes = image_sizes()

    def key(service: PlacedService) -> tuple[str, str]:
        if service.engine == "ollama":
            return ("ollama", "any")
        return ("vllm", "cuda") if service.kind == "llm" else ("tei", gpu_arch if on_gpu and gpu_arch else "cpu")

    keys = [key(s) for s in services]
    if on_gpu:
        keys.append(("cuda-check", "cuda"))
    return tuple(sizes[key] for key in dict.fromkeys(keys))
