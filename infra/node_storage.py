"""A node's disks: how big (OS image + pulled images + weights) and how fast, per cloud.

Sizes come from the real image sizes (data/images.csv) and the machine image's own footprint
(data/node_images.csv). Speeds: AWS gp3 is provisioned up to what the instance's EBS link carries
(data/instance_disks.csv, moto's EC2 data); Alibaba Cloud's ESSD PL1 grows with its size; DigitalOcean is
assumed to use a network volume for the cache (the slower case); each cloud's record names its disk model.
Where the instance has a local NVMe SSD that holds the model cache and the machine image mounts it, the
cache is bound onto it and read at its rate. The root disk is always sized for the weights too.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import replace

from infra import clouds
from infra.boot_time import (
    BootInputs,
    ImageSize,
    ServiceLoad,
    constant,
    estimate_boot,
    service_images,
    warmup_minutes,
)
from infra.data_files import data_rows
from infra.models import round_up
from infra.plan import NodeGroup, Offer, PlacedService, Storage

MIB = 1.048576  # MB per MiB


@functools.cache
def instance_disks() -> dict[tuple[str, str], dict[str, str]]:
    """(cloud, instance type) → its local NVMe SSDs and EBS bandwidth (data/instance_disks.csv)."""
    return {(r["cloud"], r["instance_type"]): r for r in data_rows("instance_disks.csv")}


def disk_gb(cloud: str, accelerator: str, images: Sequence[ImageSize], checkpoints_gb: float) -> int:
    """OS image footprint + every pulled image unpacked + the model cache with headroom."""
    need = (
        clouds.get(cloud).node_image(accelerator).os_footprint_gb
        + sum(i.on_disk_gb for i in images)
        + constant("cache_factor") * checkpoints_gb
        + constant("disk_headroom_gb")
    )
    return round_up(need, 10)


def gp3_performance(ebs_max_mbps: float | None) -> tuple[int, int]:
    """(throughput MiB/s, IOPS) for a gp3 root volume: as much as the instance's EBS link carries, within
    gp3's range, with the IOPS gp3 needs for that throughput (at most 0.25 MiB/s per IOPS)."""
    ceiling = constant("gp3_max_throughput_mibps")
    throughput = int(min(ceiling, ebs_max_mbps / MIB)) if ebs_max_mbps else int(ceiling)
    throughput = max(throughput, int(constant("gp3_base_throughput_mibps")))
    iops = max(int(constant("gp3_base_iops")), math.ceil(throughput / constant("gp3_mibps_per_iops")))
    return throughput, iops


def _ebs_gp3(offer: Offer, size_gb: int) -> Storage:
    """AWS: gp3 provisioned up to what the instance's EBS link carries."""
    disks = instance_disks().get((offer.cloud, offer.instance_type))
    ebs_max = float(disks["ebs_max_mbps"]) if disks else None
    throughput, iops = gp3_performance(ebs_max)
    root_mbps = min(throughput * MIB, ebs_max or math.inf)
    return Storage(root_mbps, root_mbps, throughput, iops)


def _essd_pl1(offer: Offer, size_gb: int) -> Storage:
    """Alibaba Cloud: ESSD PL1, faster the bigger it is."""
    mbps = min(constant("essd_pl1_base_mbps") + constant("essd_pl1_mbps_per_gb") * size_gb, constant("essd_pl1_max_mbps"))
    return Storage(mbps, mbps)


def _droplet(offer: Offer, size_gb: int) -> Storage:
    """DigitalOcean: the droplet's own disk, the cache on a network volume (the slower case)."""
    return Storage(constant("do_droplet_disk_mbps"), constant("do_volume_mbps"))


def _host(offer: Offer, size_gb: int) -> Storage:
    """The team's own server: its local disk holds the OS, the images and the model cache."""
    mbps = constant("onprem_host_disk_mbps")
    return Storage(mbps, mbps)


ROOT_DISK_MODELS = {"ebs-gp3": _ebs_gp3, "essd-pl1": _essd_pl1, "droplet": _droplet, "host": _host}  # keyed by clouds.ROOT_DISKS


def _local_cache(offer: Offer, disks: Storage, cache_gb: float) -> Storage:
    """The cache on the instance's local NVMe, where the GPU instance has one that holds it and the machine image mounts it."""
    row = instance_disks().get((offer.cloud, offer.instance_type))
    local = int(row["local_nvme_disks"]) * int(row["local_nvme_gb_each"]) if row and offer.gpu_count else 0
    mount = clouds.get(offer.cloud).node_image("gpu" if offer.gpu_count else "cpu").local_cache_mount
    if local < cache_gb or not mount:
        return disks
    return replace(disks, cache_mbps=constant("instance_store_nvme_mbps"), instance_store_gb=local, local_cache_mount=mount)


def storage(offer: Offer, size_gb: int, cache_gb: float) -> Storage:
    """How fast a node's disks are; cache_gb is what the model cache needs (local NVMe must hold it)."""
    disks = ROOT_DISK_MODELS[clouds.get(offer.cloud).root_disk](offer, size_gb)
    return _local_cache(offer, disks, cache_gb)


def network_mbps(cloud: str) -> float | None:
    """A node's own download cap in MB/s where the deployment sets one (Alibaba Cloud's public bandwidth)."""
    limit = clouds.get(cloud).bandwidth_limit
    return constant(limit) / 8 if limit else None


def node_group(name: str, offer: Offer, count: int, services: Sequence[PlacedService], checkpoints_gb: Sequence[float]) -> NodeGroup:
    """A node group with its disk sized, its disks' speed and its boot estimated (checkpoints_gb per service)."""
    accelerator = "gpu" if offer.gpu_count else "cpu"
    images = service_images(services, offer.gpu_arch, accelerator == "gpu")
    size = disk_gb(offer.cloud, accelerator, images, sum(checkpoints_gb))
    disks = storage(offer, size, constant("cache_factor") * sum(checkpoints_gb) + constant("disk_headroom_gb"))
    image = clouds.get(offer.cloud).node_image(accelerator)
    boot = estimate_boot(
        BootInputs(
            images=images,
            services=tuple(ServiceLoad(s.name, gb, warmup_minutes(s)) for s, gb in zip(services, checkpoints_gb)),
            root_mbps=disks.root_mbps,
            cache_mbps=disks.cache_mbps,
            network_mbps=network_mbps(offer.cloud),
            installs_driver=accelerator == "gpu" and not image.has_driver,
            installs_docker=not image.has_docker,
        )
    )
    return NodeGroup(name=name, offer=offer, count=count, services=tuple(services), disk_gb=size, storage=disks, boot=boot)
