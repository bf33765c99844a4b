"""A node's disks: how big (OS image + pulled images + weights) and how fast, per cloud.

Sizes come from the real image sizes (data/images.csv) and the machine image's own footprint
(data/node_images.csv). Speeds: AWS gp3 is provisioned up to what the instance's EBS link carries
(data/instance_disks.csv, moto's EC2 data), and where the instance has a local NVMe SSD that holds the
model cache and the machine image mounts it, the cache is bound onto it and read at its rate; Alibaba Cloud's ESSD PL1 grows with its size; DigitalOcean is assumed to use a
network volume for the cache (the slower case). The root disk is always sized for the weights too.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

from infra.boot_time import (
    BootInputs,
    ImageSize,
    ServiceLoad,
    constant,
    estimate_boot,
    node_image,
    service_images,
    warmup_minutes,
)
from infra.catalog import data_rows
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
        node_image(cloud, accelerator).os_footprint_gb
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


def _aws(offer: Offer, cache_gb: float) -> Storage:
    disks = instance_disks().get(("aws", offer.instance_type))
    ebs_max = float(disks["ebs_max_mbps"]) if disks else None
    throughput, iops = gp3_performance(ebs_max)
    root_mbps = min(throughput * MIB, ebs_max or math.inf)
    local = int(disks["local_nvme_disks"]) * int(disks["local_nvme_gb_each"]) if disks and offer.gpu_count else 0
    mount = node_image("aws", "gpu" if offer.gpu_count else "cpu").local_cache_mount
    if local < cache_gb or not mount:
        return Storage(root_mbps, root_mbps, throughput, iops)
    return Storage(root_mbps, constant("instance_store_nvme_mbps"), throughput, iops, local, mount)


def _alicloud(size_gb: int) -> Storage:
    mbps = min(constant("essd_pl1_base_mbps") + constant("essd_pl1_mbps_per_gb") * size_gb, constant("essd_pl1_max_mbps"))
    return Storage(mbps, mbps)


def storage(offer: Offer, size_gb: int, cache_gb: float) -> Storage:
    """How fast a node's disks are; cache_gb is what the model cache needs (local NVMe must hold it)."""
    if offer.cloud == "aws":
        return _aws(offer, cache_gb)
    if offer.cloud == "alicloud":
        return _alicloud(size_gb)
    return Storage(constant("do_droplet_disk_mbps"), constant("do_volume_mbps"))


def network_mbps(cloud: str) -> float | None:
    """A node's own download cap in MB/s where the deployment sets one (Alibaba Cloud's public bandwidth)."""
    return constant("alicloud_public_bandwidth_mbit") / 8 if cloud == "alicloud" else None


def node_group(name: str, offer: Offer, count: int, services: Sequence[PlacedService], checkpoints_gb: Sequence[float]) -> NodeGroup:
    """A node group with its disk sized, its disks' speed and its boot estimated (checkpoints_gb per service)."""
    accelerator = "gpu" if offer.gpu_count else "cpu"
    images = service_images([s.kind for s in services], offer.gpu_arch, accelerator == "gpu")
    size = disk_gb(offer.cloud, accelerator, images, sum(checkpoints_gb))
    disks = storage(offer, size, constant("cache_factor") * sum(checkpoints_gb) + constant("disk_headroom_gb"))
    image = node_image(offer.cloud, accelerator)
    boot = estimate_boot(
        BootInputs(
            images=images,
            services=tuple(ServiceLoad(s.name, gb, warmup_minutes(s.kind)) for s, gb in zip(services, checkpoints_gb)),
            root_mbps=disks.root_mbps,
            cache_mbps=disks.cache_mbps,
            network_mbps=network_mbps(offer.cloud),
            installs_driver=accelerator == "gpu" and not image.has_driver,
            installs_docker=not image.has_docker,
        )
    )
    return NodeGroup(name=name, offer=offer, count=count, services=tuple(services), disk_gb=size, storage=disks, boot=boot)
