"""Alibaba Cloud's plain rules (components.alicloud.layout): zones, disks, names, the node policy."""

from __future__ import annotations

import ipaddress

import pytest

from components.alicloud.layout import (
    DATA_DEVICE,
    NODE_ZONE_COUNT,
    SYSTEM_DISK_MAX_GB,
    SYSTEM_DISK_MIN_GB,
    VPC_CIDR,
    Capacity,
    ZonePlan,
    capacity,
    choose_zones,
    cloud_name,
    disk_layout,
    launch_fingerprint,
    node_secrets_policy,
    rollout_steps,
    secret_parameter_name,
    zones_of_any,
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


def test_node_groups_use_every_zone_offering_a_type_alb_zones_first():
    plan = choose_zones(ZONES[:2], {"llm": ["ap-southeast-1c", "ap-southeast-1b", "ap-southeast-1a"]})
    assert plan.node_zones["llm"] == ("ap-southeast-1b", "ap-southeast-1a", "ap-southeast-1c")


def test_node_groups_take_at_most_the_vswitches_ess_accepts():
    many = [f"ap-southeast-1{letter}" for letter in "abcdefghij"]
    assert len(choose_zones(many[:2], {"llm": many}).node_zones["llm"]) == NODE_ZONE_COUNT == 8


def test_a_group_runs_in_the_zones_of_any_of_its_types_the_placed_type_first():
    offered = {"ecs.gn7i-c16g1.4xlarge": ["ap-southeast-1c"], "ecs.gn7i-c32g1.8xlarge": ["ap-southeast-1a", "ap-southeast-1c"]}
    assert zones_of_any(["ecs.gn7i-c16g1.4xlarge", "ecs.gn7i-c32g1.8xlarge"], offered) == ["ap-southeast-1c", "ap-southeast-1a"]


@pytest.mark.parametrize(("count", "batch", "steps"), [(1, 1, (1,)), (3, 1, (1, 2, 3)), (3, 2, (2, 3)), (4, 2, (2, 4)), (2, 2, (2,))])
def test_a_rollout_grows_the_new_group_a_batch_at_a_time(count, batch, steps):
    assert rollout_steps(count, batch) == steps


def test_on_demand_groups_keep_balance_and_no_spot():
    assert capacity("on-demand", 3) == Capacity({"multi_az_policy": "BALANCE"}, None)


@pytest.mark.parametrize(("policy", "fallback"), [("spot", False), ("auto", True)])
def test_spot_groups_are_cost_optimized_and_auto_falls_back_to_pay_as_you_go(policy, fallback):
    spot = capacity(policy, 3)
    assert spot.spot_strategy == "SpotAsPriceGo"
    assert spot.group_args == {"multi_az_policy": "COST_OPTIMIZED", "on_demand_base_capacity": 0,
                               "on_demand_percentage_above_base_capacity": 0, "spot_instance_pools": 3,
                               "spot_instance_remedy": True, "compensate_with_on_demand": fallback}


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
