"""The DigitalOcean deployment, run for real under Pulumi's mock engine (`infra.cli.offline.run_offline`).

What is checked is what DigitalOcean would be asked to create: the VPC, droplets of the placed size on
a GPU image, the load balancer(s) with their health check, the firewall, and the user-data each node
boots with (rendered by the real bootstrap).
"""

from __future__ import annotations

import dataclasses
import re

import pulumi
import pytest

from components.digitalocean.layout import CPU_IMAGE, NVIDIA_IMAGES
from components.digitalocean.node_group import droplet_image
from components.digitalocean.offline import image_id
from infra.cli.offline import SECRET_MARK, run_offline
from infra.config import ConfigError, RawConfig, parse_config
from infra.placement import place
from infra.plan import SERVICE_PORTS
from tests.helpers import SSH_KEY, WORLD, answer, id_of, of_type, planner, raw_config, shipped_plan, stacks_on

DROPLET = "digitalocean:index/droplet:Droplet"
LB = "digitalocean:index/loadBalancer:LoadBalancer"
FIREWALL = "digitalocean:index/firewall:Firewall"
VPC = "digitalocean:index/vpc:Vpc"
VOLUME = "digitalocean:index/volume:Volume"
CERTIFICATE = "digitalocean:index/certificate:Certificate"
TAG = "digitalocean:index/tag:Tag"

API_KEY = "do-test-key-4f7c2a9e0b1d3f5a7c9e1b3d"
# The L40S pin keeps all three on one droplet (unpinned, two RTX 4000 Ada droplets are 0.05 $/h cheaper).
SERVICES = [
    {"name": "llm", "kind": "llm", "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "maxModelLen": 8192, "gpu": "L40S"},
    {"name": "embedding", "kind": "embedding", "model": "intfloat/multilingual-e5-large-instruct"},
    {"name": "rerank", "kind": "rerank", "model": "BAAI/bge-reranker-large"},
]
# LLM on a GPU, embedding and rerank on a CPU droplet: placement makes two node groups of this.
SPLIT_SERVICES = [
    {**SERVICES[0], "replicas": 2},
    {**SERVICES[1], "accelerator": "cpu"},
    {**SERVICES[2], "accelerator": "cpu"},
]


DO_STACKS = stacks_on("digitalocean")


def booted(slug: str) -> str:
    """The image id a droplet of an unpinned group boots: the one its slug names at the look-up (the getImage fake)."""
    return str(image_id(slug))


def do_config(stack: str = "do-test", **values: object) -> RawConfig:
    """A DigitalOcean stack config with a known API key (so tests can look for leaks)."""
    return raw_config(stack, {"cloud": "digitalocean", "region": "tor1", "services": SERVICES, "apiKey": API_KEY, **values})


def matching(result, typ: str, **match: object) -> dict:
    found = [r for r in of_type(result, typ) if all(r["inputs"].get(k) == v for k, v in match.items())]
    assert len(found) == 1, f"expected one {typ} with {match}, found {[r['name'] for r in found]}"
    return found[0]


def public_lb(result) -> dict:
    return matching(result, LB, network="EXTERNAL")


def first_group(offer: dict | None = None, **fields: object):
    """A plan change: the (only) node group with `fields` and its offer with `offer` replaced."""

    def change(plan):
        group = plan.node_groups[0]
        if offer:
            fields["offer"] = dataclasses.replace(group.offer, **offer)
        return dataclasses.replace(plan, node_groups=(dataclasses.replace(group, **fields),))

    return change


def with_plan(raw: RawConfig, change) -> object:
    """Run the program on the placed plan changed by `change(plan)` (placement itself is tested elsewhere)."""
    return run_offline(raw, change(place(parse_config(raw))))


# This module's own configs: the three services on one droplet, split over two node groups, and
# with a domain, SSH and an allow list.
RAW = {
    "do-test": do_config,
    "do-split": lambda: do_config("do-split", services=SPLIT_SERVICES),
    "do-tls": lambda: do_config(
        "do-tls", domain="llm.acme-inference.io", sshCidrs=["203.0.113.0/24"], sshPublicKeys=[SSH_KEY], allowedCidrs=["198.51.100.0/24"]
    ),
}
planned = planner(RAW)


@pytest.mark.parametrize("stack", DO_STACKS)
def test_every_digitalocean_stack_builds_vpc_gpu_droplets_lb_and_firewall(stack):
    plan, result = planned(stack)
    vpc = matching(result, VPC)
    assert vpc["inputs"]["region"] == plan.region
    droplets = of_type(result, DROPLET)
    assert sorted(d["inputs"]["size"] for d in droplets) == sorted(
        g.offer.instance_type for g in plan.node_groups for _ in range(g.count)
    )
    for droplet in droplets:
        assert droplet["inputs"]["region"] == plan.region
        assert droplet["inputs"]["image"] in {booted(slug) for slug in (*NVIDIA_IMAGES.values(), CPU_IMAGE)}
        assert droplet["inputs"]["userData"] == SECRET_MARK
    assert public_lb(result)["inputs"]["healthcheck"]["path"] == "/healthz"
    assert of_type(result, FIREWALL)
    assert set(result.user_data) == {g.name for g in plan.node_groups}


def test_staging_is_a_digitalocean_stack_on_h200():
    assert "staging" in DO_STACKS
    plan = shipped_plan("staging")
    assert [g.offer.instance_type for g in plan.node_groups] == ["gpu-h200x1-141gb"]


def test_droplets_get_the_placed_size_a_gpu_image_the_vpc_tags_and_monitoring():
    plan, single = planned("do-test")
    (group,) = plan.node_groups
    vpc = matching(single, VPC)
    tags = {t["name"]: t for t in of_type(single, TAG)}
    assert len(tags) == 2  # one for the stack, one for the node group
    droplets = of_type(single, DROPLET)
    assert len(droplets) == group.count
    for droplet in droplets:
        inputs = droplet["inputs"]
        assert inputs["size"] == group.offer.instance_type
        assert inputs["image"] == booted(NVIDIA_IMAGES[group.offer.gpu_count])
        assert inputs["region"] == "tor1" == vpc["inputs"]["region"]
        assert inputs["vpcUuid"] and inputs["monitoring"] is True
        assert len(inputs["tags"]) == 2 and all(inputs["tags"])
        assert "sshKeys" not in inputs  # the stack config has no SSH keys to give


def test_user_data_is_a_secret_and_the_api_key_appears_nowhere_in_plain_text():
    _, single = planned("do-test")
    (droplet,) = of_type(single, DROPLET)
    assert droplet["inputs"]["userData"] == SECRET_MARK
    assert API_KEY not in str(single.resources) and API_KEY not in str(single.outputs)
    (text,) = single.user_data.values()
    assert text.startswith("#cloud-config") and API_KEY in text  # no secret store on DigitalOcean: it travels in user-data


def test_load_balancer_checks_healthz_keeps_long_streams_and_targets_the_stack_tag():
    _, single = planned("do-test")
    lb = public_lb(single)["inputs"]
    assert lb["healthcheck"]["path"] == "/healthz"
    assert lb["healthcheck"]["protocol"] == "http" and lb["healthcheck"]["port"] == 80
    assert lb["httpIdleTimeoutSeconds"] == 600  # DigitalOcean's maximum
    assert lb["forwardingRules"] == [{"entryPort": 80, "entryProtocol": "http", "targetPort": 80, "targetProtocol": "http"}]
    assert "redirectHttpToHttps" not in lb and "firewall" not in lb
    assert lb["vpcUuid"] == matching(single, DROPLET)["inputs"]["vpcUuid"]
    stack_tag = lb["dropletTag"]
    assert all(stack_tag in d["inputs"]["tags"] for d in of_type(single, DROPLET))
    assert single.outputs["endpoint"].startswith("http://203.0.113.")


def test_domain_adds_lets_encrypt_https_and_redirect():
    _, tls = planned("do-tls")
    certificate = matching(tls, CERTIFICATE)["inputs"]
    assert certificate == {"type": "lets_encrypt", "domains": ["llm.acme-inference.io"]}
    lb = public_lb(tls)["inputs"]
    https = [r for r in lb["forwardingRules"] if r["entryPort"] == 443]
    assert len(https) == 1
    assert https[0]["entryProtocol"] == "https" and https[0]["targetPort"] == 80 and https[0]["targetProtocol"] == "http"
    assert https[0]["certificateName"]
    assert lb["redirectHttpToHttps"] is True
    assert tls.outputs["endpoint"] == "https://llm.acme-inference.io"


def test_allowed_cidrs_become_the_load_balancer_firewall():
    _, tls = planned("do-tls")
    assert public_lb(tls)["inputs"]["firewall"] == {"allows": ["cidr:198.51.100.0/24"]}


def ports(rule: dict) -> set[int]:
    low, _, high = rule["portRange"].partition("-")
    return set(range(int(low), int(high or low) + 1))


@pytest.mark.parametrize("stack", ["do-test", "do-split", "do-tls"], ids=["single", "split", "tls"])
def test_firewall_lets_only_the_load_balancers_reach_the_gateway(stack):
    _, result = planned(stack)
    (firewall,) = of_type(result, FIREWALL)
    inbound = firewall["inputs"]["inboundRules"]
    (gateway,) = [r for r in inbound if 80 in ports(r)]
    assert gateway["portRange"] == "80" and "sourceAddresses" not in gateway
    assert set(gateway["sourceLoadBalancerUids"]) == {id_of(result, LB, lb["name"]) for lb in of_type(result, LB)}
    assert firewall["inputs"]["tags"] == [public_lb(result)["inputs"]["dropletTag"]]
    assert not [r for r in inbound if set(SERVICE_PORTS.values()) & ports(r)]  # 8000/8080/8081 stay on the node
    internet = [r for r in inbound if WORLD & set(r.get("sourceAddresses", []))]
    assert not internet


def test_ssh_is_closed_without_ssh_cidrs_and_limited_to_them_with():
    _, single = planned("do-test")
    _, tls = planned("do-tls")
    (closed,) = of_type(single, FIREWALL)
    assert not [r for r in closed["inputs"]["inboundRules"] if 22 in ports(r)]
    (limited,) = of_type(tls, FIREWALL)
    (ssh,) = [r for r in limited["inputs"]["inboundRules"] if 22 in ports(r)]
    assert ssh["sourceAddresses"] == ["203.0.113.0/24"] and ssh["portRange"] == "22"


def test_two_node_groups_still_give_one_endpoint_that_reaches_every_service():
    plan, split = planned("do-split")
    assert len(plan.node_groups) == 2, "the split config should place two node groups"
    droplets = of_type(split, DROPLET)
    assert len(droplets) == sum(g.count for g in plan.node_groups)
    by_size = {g.offer.instance_type: g for g in plan.node_groups}
    assert {d["inputs"]["size"] for d in droplets} == set(by_size)
    assert {d["inputs"]["image"] for d in droplets} == {booted(NVIDIA_IMAGES[1]), booted(CPU_IMAGE)}

    public = public_lb(split)
    internal = [r for r in of_type(split, LB) if r["inputs"]["network"] == "INTERNAL"]
    assert len(internal) == 2
    # The public LB targets every droplet of the stack; each internal LB the droplets of one group.
    assert all(public["inputs"]["dropletTag"] in d["inputs"]["tags"] for d in droplets)
    group_tags = {lb["inputs"]["dropletTag"] for lb in internal}
    assert all(len(group_tags & set(d["inputs"]["tags"])) == 1 for d in droplets)
    for lb in internal:
        assert lb["inputs"]["healthcheck"]["path"] == "/healthz"
        assert lb["inputs"]["vpcUuid"] == public["inputs"]["vpcUuid"]

    # The gateway of each group proxies the other group's kinds to that group's internal LB.
    ip_of = {lb["name"]: answer(split, LB, lb["name"])["ip"] for lb in internal}
    assert len(set(ip_of.values())) == 2
    for group in plan.node_groups:
        text = split.user_data[group.name]
        own = ip_of[f"do-split-{group.name}-internal"]
        (other,) = [ip for name, ip in ip_of.items() if name != f"do-split-{group.name}-internal"]
        assert f"http://{other}" in text, f"{group.name} does not proxy to the other group"
        assert own not in text, f"{group.name} proxies to itself"


def test_one_node_group_has_no_internal_load_balancer():
    _, single = planned("do-test")
    assert [r["inputs"]["network"] for r in of_type(single, LB)] == ["EXTERNAL"]


def test_droplet_count_follows_replicas():
    raw = do_config("do-replicas")
    result = with_plan(raw, first_group(count=3))
    assert len(of_type(result, DROPLET)) == 3
    assert len({d["name"] for d in of_type(result, DROPLET)}) == 3


def recording_options(monkeypatch) -> list[tuple[str, str, pulumi.ResourceOptions | None]]:
    """(type, name, options) of every custom resource the program declares, as it declares them."""
    seen: list[tuple[str, str, pulumi.ResourceOptions | None]] = []
    original = pulumi.CustomResource.__init__

    def recording(self, t, name, props=None, opts=None, *args, **kwargs):
        seen.append((t, name, opts))
        original(self, t, name, props, opts, *args, **kwargs)

    monkeypatch.setattr(pulumi.CustomResource, "__init__", recording)
    return seen


def waits_for(opts: pulumi.ResourceOptions | None) -> list[str]:
    return sorted(r._name for r in (opts.depends_on or [])) if opts else []


def test_no_resource_is_deleted_before_its_replacement_is_created(monkeypatch):
    """Droplets are replaced when user-data changes: Pulumi's create-before-delete must stay in force."""
    seen = recording_options(monkeypatch)
    run_offline(do_config("do-options", services=SPLIT_SERVICES))
    droplets = [(name, opts) for t, name, opts in seen if t == DROPLET]
    assert len(droplets) == 3
    assert all(opts is None or not opts.delete_before_replace for _, opts in droplets)
    assert not [name for _, name, opts in seen if opts is not None and opts.delete_before_replace]
    # Auto-named: no physical name is forced on a droplet, so a replacement never collides with the original.
    assert all("name" not in r["inputs"] for r in of_type(run_offline(do_config()), DROPLET))


def test_resources_use_the_explicit_provider():
    result = run_offline(do_config("do-provider"))
    for resource in result.resources:
        if resource["type"].startswith("digitalocean:index/"):
            provider = result.providers[resource["type"], resource["name"]] or ""
            assert "pulumi:providers:digitalocean::digitalocean::" in provider, resource["name"]


def test_a_droplet_disk_too_small_for_the_cache_gets_a_volume_per_droplet():
    raw = do_config("do-volume")
    result = with_plan(raw, first_group(disk_gb=900, count=2))
    volumes = of_type(result, VOLUME)
    assert len(volumes) == 2
    assert all(v["inputs"]["size"] == 900 and v["inputs"]["region"] == "tor1" for v in volumes)
    droplets = of_type(result, DROPLET)
    assert sorted(vid for d in droplets for vid in d["inputs"]["volumeIds"]) == sorted(id_of(result, VOLUME, v["name"]) for v in volumes)
    (text,) = result.user_data.values()
    (name,) = re.findall(r"/dev/disk/by-id/scsi-0DO_Volume_([a-z0-9-]+)", text)
    assert len(name) <= 64 and re.fullmatch(r"[a-z][a-z0-9-]*", name)


def test_the_volume_is_renamed_with_the_user_data_so_a_replacement_never_fights_for_it():
    def device(raw: RawConfig) -> str:
        (text,) = with_plan(raw, first_group(disk_gb=900)).user_data.values()
        return re.findall(r"/dev/disk/by-id/scsi-0DO_Volume_[a-z0-9-]+", text)[0]

    first = device(do_config("do-volume"))
    assert device(do_config("do-volume")) == first  # same user-data: same volume, nothing replaced
    rotated = do_config("do-volume")
    rotated.values["apiKey"] = API_KEY + "-rotated"
    assert device(rotated) != first  # new user-data: a new droplet, and a new volume for it


def test_a_droplet_disk_large_enough_needs_no_volume():
    _, single = planned("do-test")
    assert not of_type(single, VOLUME)
    assert "volumeIds" not in matching(single, DROPLET)["inputs"]
    assert "scsi-0DO_Volume" not in next(iter(single.user_data.values()))


def test_a_size_digitalocean_does_not_list_gets_a_volume():
    raw = do_config("do-unlisted")
    result = with_plan(raw, first_group(offer={"instance_type": "gpu-h100x1-80gb-contract"}))
    assert len(of_type(result, VOLUME)) == 1


def test_a_gpu_without_cuda_is_refused_before_anything_is_created():
    raw = do_config("do-amd")
    with pytest.raises(ConfigError, match=r"^tests/do-amd: catalogFile: gpu-mi300x1-192gb \(node group '.+'\): MI300X is not a CUDA GPU"):
        with_plan(raw, first_group(offer={"instance_type": "gpu-mi300x1-192gb", "gpu": "MI300X", "cuda": False}))


def test_image_choice_per_gpu_count():
    plan, _ = planned("do-test")
    group = plan.node_groups[0]

    def image(gpus: int) -> str:
        return droplet_image(dataclasses.replace(group, offer=dataclasses.replace(group.offer, gpu_count=gpus)))

    assert image(1) == "gpu-h100x1-base"
    assert image(8) == "gpu-h100x8-base"
    assert image(0) == "ubuntu-22-04-x64"
    with pytest.raises(ValueError, match="not 4"):
        image(4)


# --- rollout: health gates, batches, pinned images, capacity fallback, spot sizes ----------------------------

GATE = "pulumi-python:dynamic/llm-deploy:HealthGate"
SIZES_INVOKE = "digitalocean:index/getSizes:getSizes"


@pytest.mark.parametrize(("count", "batch", "batches"), [
    (3, 1, [[0], [1], [2]]),
    (5, 2, [[0, 1], [2, 3], [4]]),
    (2, 4, [[0, 1]]),  # a batch larger than the group: all at once
])  # fmt: skip
def test_each_rollout_batch_of_droplets_waits_for_the_gates_of_the_batch_before(monkeypatch, count, batch, batches):
    seen = recording_options(monkeypatch)
    raw = do_config("do-rollout")
    result = run_offline(raw, dataclasses.replace(first_group(count=count)(place(parse_config(raw))), rollout_batch_size=batch))
    (group,) = result.summary.node_groups
    prefix = f"do-rollout-{group.name}"
    droplets = {name: opts for t, name, opts in seen if t == DROPLET}
    assert sorted(droplets) == sorted(f"{prefix}-{i}" for i in range(count))
    for before, batch_indices in zip([[], *batches], batches):
        for index in batch_indices:
            assert waits_for(droplets[f"{prefix}-{index}"]) == sorted(f"{prefix}-{i}-healthy" for i in before), index
    # Create before delete everywhere: the old droplets serve until the update's end.
    assert not [name for _, name, opts in seen if opts is not None and opts.delete_before_replace]


def test_each_droplet_has_a_gate_on_its_own_name_and_id_through_the_public_load_balancer():
    raw = do_config("do-gates")
    result = with_plan(raw, first_group(count=2))
    (group,) = result.summary.node_groups
    lb_ip = answer(result, LB, public_lb(result)["name"])["ip"]
    gates = {g["name"]: g["inputs"] for g in of_type(result, GATE)}
    assert len(gates) == 2
    for index in range(2):
        droplet = f"do-gates-{group.name}-{index}"
        gate = gates[f"{droplet}-healthy"]
        assert gate["url"] == f"http://{lb_ip}/healthz"
        assert (gate["node"], gate["trigger"]) == (answer(result, DROPLET, droplet)["name"], id_of(result, DROPLET, droplet))
        assert gate["header"] == "X-LLM-Deploy-Node"
        assert gate["label"] == f"node group {group.name!r}, replica {index + 1} of 2"
        # the plan's time to healthy (its grace) and the balancer's 3 checks 10 s apart
        assert gate["timeout_seconds"] == group.boot.grace_seconds + 30
        assert gate["__provider"] == SECRET_MARK


def test_the_gates_ask_the_domain_over_https_when_there_is_one():
    _, result = planned("do-tls")
    assert {g["inputs"]["url"] for g in of_type(result, GATE)} == {"https://llm.acme-inference.io/healthz"}


def test_the_load_balancer_comes_before_the_droplets_and_selects_them_by_the_stack_tag(monkeypatch):
    """A tag: a new droplet is a target as soon as it exists and gets traffic once healthy, beside the old ones."""
    seen = recording_options(monkeypatch)
    result = run_offline(do_config("do-split", services=SPLIT_SERVICES))
    lb = public_lb(result)
    assert "dropletIds" not in lb["inputs"] and lb["inputs"]["dropletTag"] == answer(result, TAG, "do-split-nodes")["name"]
    (lb_opts,) = [opts for t, name, opts in seen if t == LB and name == lb["name"]]
    assert not waits_for(lb_opts)
    order = [name for t, name, _ in seen if t in (LB, DROPLET)]
    assert order.index(lb["name"]) < min(order.index(d["name"]) for d in of_type(result, DROPLET))


def test_an_unpinned_droplet_keeps_its_image_and_a_pin_is_the_image_id(monkeypatch):
    seen = recording_options(monkeypatch)
    unpinned = run_offline(do_config())
    assert matching(unpinned, DROPLET)["inputs"]["image"] == booted("gpu-h100x1-base")  # the id the slug names now
    raw = do_config("do-pinned")
    pinned = with_plan(raw, first_group(image="181234567"))
    assert matching(pinned, DROPLET)["inputs"]["image"] == "181234567"
    ignored = {name: opts.ignore_changes for t, name, opts in seen if t == DROPLET}
    assert ignored == {"do-test-llm-embedding-rerank-0": ["image"], "do-pinned-llm-embedding-rerank-0": None}


def sizes_answer(listing: dict[str, tuple[bool, list[str]]]):
    """A getSizes fake from `listing` (slug → (available, regions)), 500 GB disks; other slugs unlisted."""

    def answer_sizes(args: dict) -> dict:
        sizes = [{"slug": slug, "disk": 500, "available": available, "regions": regions, "gpu_infos": [], "memory": 0,
                  "price_hourly": 0.0, "price_monthly": 0.0, "transfer": 0.0, "vcpus": 0}
                 for slug, (available, regions) in listing.items()]  # fmt: skip
        return {"id": "sizes", "filters": args.get("filters"), "sizes": sizes, "sorts": None}

    return answer_sizes


def with_fallbacks(*sizes: str, policy: str = "on-demand", primary: str | None = None):
    """The one node group with fallback offers of these sizes (same GPU model and count) and a spot policy."""

    def change(plan):
        group = plan.node_groups[0]
        offer = dataclasses.replace(group.offer, instance_type=primary) if primary else group.offer
        fallbacks = tuple(dataclasses.replace(offer, instance_type=s) for s in sizes)
        group = dataclasses.replace(group, offer=offer, fallback_offers=fallbacks, spot_policy=policy)
        return dataclasses.replace(plan, node_groups=(group,))

    return change


def test_a_size_without_capacity_in_the_region_gives_way_to_the_next_fallback(monkeypatch):
    from components.digitalocean import offline as fakes

    monkeypatch.setitem(fakes.INVOKES, SIZES_INVOKE, sizes_answer({
        "gpu-l40sx1-48gb": (True, ["nyc2"]), "gpu-l40sx1-48gb-b": (False, ["tor1"]), "gpu-l40sx1-48gb-c": (True, ["tor1"]),
    }))  # fmt: skip
    result = with_plan(do_config("do-fallback"), with_fallbacks("gpu-l40sx1-48gb-b", "gpu-l40sx1-48gb-c"))
    assert matching(result, DROPLET)["inputs"]["size"] == "gpu-l40sx1-48gb-c"
    (group,) = result.summary.node_groups
    assert group.offer.instance_type == "gpu-l40sx1-48gb-c" and result.outputs["instance_types"] == {group.name: "gpu-l40sx1-48gb-c"}
    assert result.outputs["capacity_fallbacks"] == {
        group.name: "gpu-l40sx1-48gb → gpu-l40sx1-48gb-c: gpu-l40sx1-48gb is not available in tor1 for this account (/v2/sizes); "
                    "gpu-l40sx1-48gb-c is the next of its on-demand sizes with the same GPU model and count"}  # fmt: skip


def test_without_a_size_in_the_region_the_stack_moves_to_the_first_region_that_has_one(monkeypatch):
    from components.digitalocean import offline as fakes

    monkeypatch.setitem(fakes.INVOKES, SIZES_INVOKE, sizes_answer({"gpu-l40sx1-48gb": (True, ["sfo3", "nyc2", "tor1-x"])}))
    result = run_offline(do_config("do-region"))
    assert {r["inputs"]["region"] for r in result.resources if "region" in r["inputs"]} == {"nyc2"}
    assert result.outputs["region"] == "nyc2"
    assert result.outputs["capacity_fallbacks"]["region"].startswith(
        "tor1 → nyc2: no size of node group 'llm-embedding-rerank' (gpu-l40sx1-48gb) is available in tor1")


def test_no_size_anywhere_is_refused_naming_region_before_anything_is_created(monkeypatch):
    from components.digitalocean import offline as fakes

    monkeypatch.setitem(fakes.INVOKES, SIZES_INVOKE, sizes_answer({"gpu-l40sx1-48gb": (False, ["tor1"])}))
    with pytest.raises(ConfigError, match=r"^tests/do-none: region: no size of node group 'llm-embedding-rerank' "
                                          r"\(gpu-l40sx1-48gb\) is available in tor1 for this account"):
        run_offline(do_config("do-none"))


@pytest.mark.parametrize(("policy", "available", "taken"), [
    ("spot", {"gpu-l40sx1-48gb-spot": True, "gpu-l40sx1-48gb": True}, "gpu-l40sx1-48gb-spot"),
    ("auto", {"gpu-l40sx1-48gb-spot": True, "gpu-l40sx1-48gb": True}, "gpu-l40sx1-48gb-spot"),
    ("auto", {"gpu-l40sx1-48gb-spot": False, "gpu-l40sx1-48gb": True}, "gpu-l40sx1-48gb"),  # spot gone: on-demand
    ("on-demand", {"gpu-l40sx1-48gb-spot": True, "gpu-l40sx1-48gb": True}, "gpu-l40sx1-48gb"),
    ("on-demand", {"gpu-l40sx1-48gb-spot": True, "gpu-l40sx1-48gb": False}, None),  # never a spot size
    ("spot", {"gpu-l40sx1-48gb-spot": False, "gpu-l40sx1-48gb": True}, None),  # never an on-demand size
])  # fmt: skip
def test_the_droplet_takes_the_spot_size_as_its_spot_policy_allows(monkeypatch, policy, available, taken):
    from components.digitalocean import offline as fakes

    monkeypatch.setitem(fakes.INVOKES, SIZES_INVOKE, sizes_answer({s: (ok, ["tor1"]) for s, ok in available.items()}))
    raw = do_config("do-spot")
    primary, other = ("gpu-l40sx1-48gb", "gpu-l40sx1-48gb-spot") if policy == "on-demand" else ("gpu-l40sx1-48gb-spot", "gpu-l40sx1-48gb")
    change = with_fallbacks(other, policy=policy, primary=primary)
    if taken is None:
        with pytest.raises(ConfigError, match="region: no size of node group"):
            with_plan(raw, change)
        return
    assert matching(with_plan(raw, change), DROPLET)["inputs"]["size"] == taken
