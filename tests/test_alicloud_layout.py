"""Alibaba Cloud's plain rules (components.alicloud.layout): zones, disks, names, the node policy."""

from __future__ import annotations

import ipaddress

import pytest

from components.alicloud.layout import (
    DATA_DEVICE,
    SYSTEM_DISK_MAX_GB,
    SYSTEM_DISK_MIN_GB,
    VPC_CIDR,
    ZonePlan,
    choose_zones,
    cloud_name,
    disk_layout,
    launch_fingerprint,
    node_secrets_policy,
    secret_parameter_name,
)

ZONES = ["ap-southeast-1a", "ap-southeast-1b", "ap-southeast-1c"]


def test_alb_zones_prefer_where_the_gpu_is():
    plan = choose_zones(ZONES, {"llm": ["ap-southeast-1c"], "embed": ["ap-southeast-1b", "ap-southeast-1c"]})
    assert plan.lb_zones == ("ap-southeast-1c", "ap-southeast-1b")
    assert plan.node_zones == {"llm": ("ap-southeast-1c",), "embed": ("ap-southeast-1b", "ap-southeast-1c")}
    assert plan.zones == ("ap-southeast-1c", "ap-southeast-1b")


def test_a_gpu_zone_without_alb_still_gets_a_vswitch():
    plan = choose_zones(["ap-southeast-1a", "ap-southeast-1b"], {"llm": ["ap-southeast-1c"]})
    assert plan.lb_zones == ("ap-southeast-1a", "ap-southeast-1b")
    assert plan.node_zones["llm"] == ("ap-southeast-1c",)
    assert plan.zones == ("ap-southeast-1a", "ap-southeast-1b", "ap-southeast-1c")


def test_node_groups_use_at_most_two_zones_alb_zones_first():
    plan = choose_zones(ZONES[:2], {"llm": ["ap-southeast-1c", "ap-southeast-1b", "ap-southeast-1a"]})
    assert plan.node_zones["llm"] == ("ap-southeast-1b", "ap-southeast-1a")


def test_vswitch_cidrs_are_disjoint_and_inside_the_vpc():
    cidrs = ZonePlan(tuple(ZONES[:2]), {"x": (ZONES[2],)}).vswitch_cidrs()
    assert list(cidrs) == ZONES
    networks = [ipaddress.ip_network(c) for c in cidrs.values()]
    assert all(n.subnet_of(ipaddress.ip_network(VPC_CIDR)) for n in networks)
    assert not any(a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1 :])


@pytest.mark.parametrize(
    ("alb", "offered", "message"),
    [
        (ZONES[:1], {"llm": ZONES}, "needs 2"),
        (ZONES, {"llm": ZONES, "embed": []}, r"node group\(s\) embed"),
    ],
)
def test_regions_that_cannot_host_the_plan_are_refused(alb, offered, message):
    with pytest.raises(ValueError, match=message):
        choose_zones(alb, offered)


@pytest.mark.parametrize(
    ("disk_gb", "system_gb", "data_gb"),
    [(10, SYSTEM_DISK_MIN_GB, None), (80, 80, None), (SYSTEM_DISK_MAX_GB, SYSTEM_DISK_MAX_GB, None), (900, 100, 900)],
)
def test_disk_layout(disk_gb, system_gb, data_gb):
    layout = disk_layout(disk_gb)
    assert (layout.system_gb, layout.data_gb) == (system_gb, data_gb)
    assert layout.data_device == (DATA_DEVICE if data_gb else None)
    assert 20 <= layout.system_gb <= SYSTEM_DISK_MAX_GB


def test_cloud_names_are_accepted_everywhere():
    assert cloud_name("llm-deploy", "my_stack.v2", "node") == "llm-deploy-my-stack-v2-node"
    assert cloud_name("2024", "x") == "s-2024-x"
    assert len(cloud_name("llm-deploy", "s" * 100)) == 64
    assert not cloud_name("llm-deploy", "a" * 52 + "-bcd").endswith("-")


def test_secret_parameter_names_keep_one_folder_per_stack():
    assert secret_parameter_name("prod.eu", "api-key") == "llm-deploy/prod-eu/api-key"


def test_node_policy_names_each_parameter_and_its_kms_secret():
    policy = node_secrets_policy("ap-southeast-1", "123", ["llm-deploy/s/api-key"])
    resources = [r for statement in policy["Statement"] for r in statement["Resource"]]
    assert resources == [
        "acs:oos:ap-southeast-1:123:secretparameter/llm-deploy/s/api-key",
        "acs:kms:ap-southeast-1:123:secret/oos/llm-deploy/s/api-key",
    ]
    assert all("*" not in r for r in resources)


def test_fingerprint_changes_with_what_the_node_boots():
    base = launch_fingerprint("ecs.gn7i-c8g1.2xlarge", disk_layout(80), "#cloud-config\na")
    assert base == launch_fingerprint("ecs.gn7i-c8g1.2xlarge", disk_layout(80), "#cloud-config\na")
    assert base != launch_fingerprint("ecs.gn7i-c8g1.2xlarge", disk_layout(80), "#cloud-config\nb")
    assert base != launch_fingerprint("ecs.gn7i-c8g1.2xlarge", disk_layout(90), "#cloud-config\na")
