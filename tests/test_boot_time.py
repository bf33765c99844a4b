"""Time to healthy and disk sizing: the estimate against hand-computed values, its data against its
sources in the repository, and every shipped stack's node groups sized and estimated."""

from __future__ import annotations

import csv
import math
import re

import pytest

from bootstrap.services import CUDA_CHECK_IMAGE, TEI_ARCH_PREFIX, VLLM_IMAGE, tei_image
from components.aws.node_group import CPU_IMAGE, GPU_IMAGE
from components.digitalocean.layout import NVIDIA_IMAGES
from infra.boot_time import BootInputs, ImageSize, ServiceLoad, constant, estimate_boot, image_sizes, node_image, service_images
from infra.catalog import DATA_DIR
from infra.config import load_raw, parse_config
from infra.cost import cost_preview
from infra.models import checkpoint_disk_gb, find_model
from infra.node_storage import gp3_performance
from infra.placement import evaluate
from tests.helpers import ROOT, STACKS, STACKS_DIR, planner, shipped_plan

planned = planner({})
DATA_FILES = ("boot_time.csv", "images.csv", "instance_disks.csv", "node_images.csv")


def test_the_estimate_of_a_documented_case_matches_the_hand_computed_one():
    """A vLLM + TEI node without driver install, root disk 1,000 MB/s, cache disk 500 MB/s, no bandwidth cap."""
    assert [constant(n) for n in ("node_start_minutes", "registry_pull_mbps", "image_extract_mbps", "hf_download_mbps")] == [
        3, 100, 100, 100]
    assert [constant(n) for n in ("restart_delay_minutes", "grace_margin", "restart_margin")] == [0.25, 1.5, 1.5]
    estimate = estimate_boot(
        BootInputs(
            images=(ImageSize("vllm", 12, 28), ImageSize("tei", 1, 2)),
            services=(ServiceLoad("llm", 60, 3), ServiceLoad("embedding", 1.2, 0.5)),
            root_mbps=1000,
            cache_mbps=500,
            network_mbps=None,
            installs_driver=False,
            installs_docker=False,
        )
    )
    steps = {s.name: s.minutes for s in estimate.steps}
    # start 3; images 13 GB / 100 MB/s = 2.1667 min + 30 GB unpacked at 100 MB/s = 5 min;
    # download 61.2 GB / 100 MB/s = 10.2 min; load 61.2 GB / 500 MB/s = 2.04 min; warm-up 3 + 0.5
    assert steps == {"start": 3, "driver": 0, "images": 7.17, "download weights": 10.2, "load weights": 2.04, "warm-up": 3.5}
    assert estimate.minutes == 25.9  # 25.9067
    assert estimate.grace_seconds == 39 * 60  # ceil(25.9067 x 1.5 = 38.86) minutes
    # restart: (0.25 + 60 GB / 500 MB/s = 2 min + 3) x 1.5 = 7.875 min = 472.5 s; (0.25 + 0.04 + 0.5) x 1.5 = 71.1 s
    assert estimate.restart_seconds == (("llm", 473), ("embedding", 72))


def test_a_node_that_installs_its_driver_behind_a_bandwidth_cap_takes_longer():
    base = BootInputs((ImageSize("vllm", 12, 28),), (ServiceLoad("llm", 15, 3),), 165, 165, None, False, False)
    capped = BootInputs(base.images, base.services, 165, 165, 12.5, True, True)
    fast, slow = estimate_boot(base), estimate_boot(capped)
    steps = {s.name: s.minutes for s in slow.steps}
    assert steps["start"] == 3 + 2 and steps["driver"] == 8 + 3
    # 12 GB at 12.5 MB/s (100 Mbit/s) = 16 min, unpacked 28 GB at 100 MB/s = 4.67 min
    assert steps["images"] == pytest.approx(16 + 4.67, abs=0.01)
    assert steps["download weights"] == pytest.approx(15_000 / 12.5 / 60, abs=0.01)
    assert slow.minutes > fast.minutes + 30


def test_gp3_gets_what_the_instance_link_carries_and_the_iops_that_throughput_needs():
    assert gp3_performance(1250) == (1000, 4000)  # p5.4xlarge: the link carries more than gp3's maximum
    assert gp3_performance(437.5) == (417, 3000)  # g5.xlarge: 437.5 MB/s = 417 MiB/s, within the 3,000 IOPS included
    assert gp3_performance(None) == (1000, 4000)  # an instance type without a row: gp3's maximum
    assert gp3_performance(50) == (125, 3000)  # never below gp3's baseline


@pytest.mark.parametrize("name", DATA_FILES)
def test_every_fact_has_a_source_and_a_date(name):
    with open(DATA_DIR / name, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(r["source"].strip() and re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["as_of"]) for r in rows)


def test_the_image_sizes_are_of_the_images_the_nodes_pull():
    sizes = image_sizes()
    assert sizes[("vllm", "cuda")].image == VLLM_IMAGE
    assert sizes[("cuda-check", "cuda")].image == CUDA_CHECK_IMAGE
    assert sizes[("tei", "cpu")].image == tei_image(None)
    for arch in TEI_ARCH_PREFIX:
        assert sizes[("tei", arch)].image == tei_image(arch)
    assert sizes[("vllm", "cuda")].on_disk_gb >= 28 and sizes[("vllm", "cuda")].compressed_gb >= 12  # FACTS.md


def test_the_image_facts_agree_with_the_components():
    assert node_image("aws", "gpu").has_driver == GPU_IMAGE.has_driver
    assert node_image("aws", "cpu").has_driver == CPU_IMAGE.has_driver
    assert node_image("digitalocean", "gpu").has_driver and NVIDIA_IMAGES  # the NVIDIA base images
    assert not node_image("alicloud", "gpu").has_driver  # plain Ubuntu; the bootstrap installs the driver
    unit = (ROOT / "bootstrap/files/systemd/llm-deploy@.service").read_text()
    (restart_s,) = re.findall(r"^RestartSec=(\d+)$", unit, re.MULTILINE)
    assert constant("restart_delay_minutes") * 60 == int(restart_s)


@pytest.mark.parametrize("stack", STACKS)
def test_every_disk_holds_the_os_image_the_pulled_images_and_the_weights(stack):
    for group in shipped_plan(stack).node_groups:
        images = service_images(group.services, group.offer.gpu_arch, group.accelerator == "gpu")
        weights = sum(checkpoint_disk_gb(find_model(s.model)) for s in group.services)
        need = node_image(group.cloud, group.accelerator).os_footprint_gb + sum(i.on_disk_gb for i in images) + weights
        assert group.disk_gb >= need, f"{group.name}: {group.disk_gb} GB < {need:.0f} GB"
        if any(s.kind == "llm" for s in group.services):
            assert any(i.image == VLLM_IMAGE for i in images)


def test_prod_root_holds_the_ami_toolkits_the_vllm_image_and_65_gb_of_weights():
    (group,) = shipped_plan("prod").node_groups
    assert group.offer.instance_type == "p5.4xlarge"
    assert group.disk_gb >= 75 + 28 + 65 and group.disk_gb > 150  # it was 150 GB with a 10 GB image assumed
    assert (group.storage.throughput_mibps, group.storage.iops) == (1000, 4000)
    assert group.storage.instance_store_gb == 3800  # moto: 1 x 3,800 GB local NVMe
    # The cache is bound onto the NVMe the Deep Learning AMI mounts, so the weights load at its rate.
    assert group.storage.local_cache_mount == "/opt/dlami/nvme"
    assert group.storage.cache_mbps == constant("instance_store_nvme_mbps") > group.storage.root_mbps


@pytest.mark.parametrize("stack", STACKS)
def test_plan_and_cost_json_show_each_node_groups_estimated_boot_minutes(stack):
    plan, result = planned(stack)
    cost = cost_preview(evaluate(parse_config(load_raw(stack, stacks_dir=STACKS_DIR)))).as_json()
    for records in (result.as_json()["node_groups"], cost["node_groups"]):
        assert [r["name"] for r in records] == [g.name for g in plan.node_groups]
        for record, group in zip(records, plan.node_groups):
            assert record["estimated_boot_minutes"] == group.boot.minutes >= 4.5  # dev's reranker alone on a g4dn.xlarge: 4.5
            assert record["estimated_boot_minutes"] == pytest.approx(sum(record["boot_steps_minutes"].values()), abs=0.1)
            assert record["health_check_grace_s"] == math.ceil(group.boot.minutes_unrounded * constant("grace_margin")) * 60
            assert record["disk_gb"] == group.disk_gb
    assert {"stack", "services", "total_hourly_usd", "total_monthly_usd", "by_cloud"} <= set(cost)
