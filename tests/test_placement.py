"""Placement picks the cheapest feasible offers: checked against brute force over the catalog."""

from __future__ import annotations

import itertools

import pytest

from infra.catalog import CATALOG_COLUMNS, gpu_specs, load_offers
from infra.config import load_raw, parse_config
from infra.errors import ConfigError
from infra.models import VLLM_GPU_MEMORY_UTILIZATION, find_model, kv_cache_gb, llm_memory_gb, weights_gb
from infra.placement import ServiceNeed, evaluate, fit, partitions, place, service_need
from tests.helpers import STACKS, STACKS_DIR
from tests.helpers import stack_config as _config


def _brute_force_cheapest(needs: tuple[ServiceNeed, ...], offers, clouds) -> float:
    """Every grouping × every combination of offers in one region of one cloud; `fit` (the sizing rule: does it fit,
    how many nodes) is the only shared code."""
    best = float("inf")
    regions = {(o.cloud, o.region) for o in offers if o.cloud in clouds}
    fitted: dict[tuple, object] = {}

    def fit_of(block, offer):
        key = (tuple(n.index for n in block), offer)
        if key not in fitted:
            fitted[key] = fit(block, offer)
        return fitted[key]

    for cloud, region in regions:
        local = [o for o in offers if (o.cloud, o.region) == (cloud, region)]
        for part in partitions(list(needs)):
            if any(len({n.config.accelerator for n in block}) > 1 for block in part):
                continue
            for combo in itertools.product(local, repeat=len(part)):
                fits = [fit_of(block, offer) for block, offer in zip(part, combo, strict=True)]
                if all(f.feasible for f in fits):
                    best = min(best, round(sum(f.offer.hourly_usd * f.count for f in fits), 6))
    return best


@pytest.mark.parametrize("stack", STACKS)
def test_shipped_stack_placement_is_the_brute_force_optimum(stack):
    config = parse_config(load_raw(stack, stacks_dir=STACKS_DIR))
    result = evaluate(config)
    clouds = ["aws", "digitalocean", "alicloud"] if config.cloud == "auto" else [config.cloud]
    offers = [o for o in load_offers() if not config.region or o.region == config.region]
    assert result.plan is not None
    assert result.plan.hourly_usd == _brute_force_cheapest(result.needs, offers, clouds)


CHAT = {"requestsPerSecond": 6, "promptTokens": 1024, "outputTokens": 256}
LOADED_STACKS = {
    "aws-chat-rag": {"cloud": "aws", "region": "us-east-1", "services": [
        {"name": "llm", "kind": "llm", "model": "meta-llama/Llama-3.1-8B-Instruct", "load": CHAT, "latency": {"timePerOutputTokenMs": 40}},
        {"name": "embedding", "kind": "embedding", "model": "BAAI/bge-m3", "load": {"requestsPerSecond": 300, "tokensPerRequest": 512}},
        {"name": "rerank", "kind": "rerank", "model": "BAAI/bge-reranker-base", "load": {"requestsPerSecond": 50, "tokensPerRequest": 2048}}]},
    "do-70b-interactive": {"cloud": "digitalocean", "services": [
        {"name": "llm", "kind": "llm", "model": "deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "dtype": "fp8", "maxModelLen": 16384,
         "load": {"requestsPerSecond": 2, "promptTokens": 4096, "outputTokens": 1024},
         "latency": {"timeToFirstTokenMs": 2000, "timePerOutputTokenMs": 50}},
        {"name": "embedding", "kind": "embedding", "model": "BAAI/bge-m3", "load": {"requestsPerSecond": 20, "tokensPerRequest": 512}}]},
    "alicloud-cpu-encoders": {"cloud": "alicloud", "region": "ap-southeast-1", "services": [
        {"name": "llm", "kind": "llm", "model": "Qwen/Qwen2.5-7B-Instruct", "replicas": 2, "load": CHAT},
        {"name": "embedding", "kind": "embedding", "model": "BAAI/bge-m3", "accelerator": "cpu",
         "load": {"requestsPerSecond": 10, "tokensPerRequest": 256}}]},
}


@pytest.mark.parametrize("name", LOADED_STACKS)
def test_placement_for_a_load_is_the_brute_force_optimum(stack_file, name):
    """Stacks of our own with a `load` (and latency targets): placement's choice is what brute force finds."""
    values = LOADED_STACKS[name]
    config = _config(stack_file, values)
    result = evaluate(config)
    offers = [o for o in load_offers() if not config.region or o.region == config.region]
    assert result.plan is not None, result.problems
    assert result.plan.hourly_usd == _brute_force_cheapest(result.needs, offers, [values["cloud"]])
    assert sum(g.count for g in result.plan.node_groups) >= 2  # the loads need more than one node


@pytest.mark.parametrize(
    "service",
    [
        {"name": "llm", "kind": "llm", "model": "Qwen/Qwen2.5-7B-Instruct"},
        {"name": "llm", "kind": "llm", "model": "meta-llama/Llama-3.1-70B-Instruct"},
        {"name": "llm", "kind": "llm", "model": "openai/gpt-oss-120b", "dtype": "fp8"},
        {"name": "emb", "kind": "embedding", "model": "BAAI/bge-m3"},
        {"name": "emb", "kind": "embedding", "model": "BAAI/bge-m3", "accelerator": "cpu"},
        {"name": "rr", "kind": "rerank", "model": "BAAI/bge-reranker-base"},
    ],
    ids=lambda s: f"{s['model']}-{s.get('dtype', 'bf16')}-{s.get('accelerator', 'gpu')}",
)
def test_single_service_choice_is_cheapest_feasible_in_catalog_json(cli, stack_file, service):
    """`cost` chooses the cheapest offer of `catalog --format json` that the sizing rule admits."""
    path = stack_file({"services": [service]})
    preview = cli("cost", "--config", str(path), "--format", "json").json()
    catalog = cli("catalog", "--format", "json").json()
    required = preview["services"][0]["required_gpu_memory_gb"]

    def admits(offer) -> bool:
        if service.get("accelerator") == "cpu":
            return offer["gpu_count"] == 0 and offer["memory_gb"] - 2 >= required
        if offer["gpu_count"] == 0:
            return False
        spec = gpu_specs()[offer["gpu"]]  # vLLM and TEI need CUDA and compute capability 7.5; TEI an image for the GPU
        if not spec.cuda or spec.compute_capability < 7.5 or (service["kind"] != "llm" and spec.tei_arch is None):
            return False
        if service["kind"] != "llm":  # an encoder uses one GPU: more would be paid for and idle
            return offer["gpu_count"] == 1 and offer["gpu_memory_gb"] * VLLM_GPU_MEMORY_UTILIZATION >= required
        # each extra tensor-parallel GPU adds 2 GB of runtime overhead; replicas of tp GPUs fill the instance
        return any(
            required + 2 * (tp - 1) <= tp * offer["gpu_memory_gb"] * VLLM_GPU_MEMORY_UTILIZATION
            for tp in (1, 2, 4, 8) if offer["gpu_count"] % tp == 0
        )

    cheapest = min((o for o in catalog if admits(o)), key=lambda o: o["hourly_usd"])
    assert preview["services"][0]["chosen"]["hourly_usd"] == cheapest["hourly_usd"]
    assert preview["total_hourly_usd"] == pytest.approx(cheapest["hourly_usd"])


def test_memory_need_is_weights_plus_kv_plus_overhead():
    info = find_model("meta-llama/Llama-3.1-8B-Instruct")
    # 8.03e9 params × 2 bytes; KV: 32 layers × 2 × 8 heads × 128 × 2 bytes = 131072 B/token × 8192 × 1 sequence (minConcurrency)
    assert weights_gb(info, "bf16") == pytest.approx(16.06)
    assert kv_cache_gb(info, 8192) == pytest.approx(131072 * 8192 / 1e9)
    assert llm_memory_gb(info, "bf16", 8192, 2) == pytest.approx(16.06 + 1.074 + 4.0, abs=0.01)
    assert weights_gb(info, "int4") == pytest.approx(4.015)


def test_tensor_parallel_when_one_gpu_is_too_small(stack_file):
    config = _config(stack_file, {"cloud": "aws", "services": [
        {"name": "llm", "kind": "llm", "model": "meta-llama/Llama-3.1-70B-Instruct", "gpu": "L40S"}]})
    plan = place(config)
    (group,) = plan.node_groups
    assert group.offer.instance_type == "g6e.12xlarge"
    assert group.services[0].tensor_parallel_size == 4  # 70B bf16 needs ~163 GB: 4 × 48 GB × 0.9
    assert group.services[0].required_gpu_memory_gb <= 4 * 48 * VLLM_GPU_MEMORY_UTILIZATION


def test_tensor_parallel_respects_attention_heads():
    """Qwen2.5-7B has 28 heads: vLLM cannot split them over 8 GPUs."""
    need = service_need(0, parse_config(load_raw(stack="dev", stacks_dir=STACKS_DIR)).services[0])
    offer = next(o for o in load_offers() if o.instance_type == "g5.48xlarge")
    placed = fit([need], offer)
    assert placed.services is not None and placed.services[0].tensor_parallel_size in (1, 2, 4)


def test_small_services_colocate_when_cheaper(stack_file):
    config = _config(stack_file, {"cloud": "aws", "services": [
        {"name": "llm", "kind": "llm", "model": "Qwen/Qwen2.5-7B-Instruct", "maxModelLen": 4096},
        {"name": "embedding", "kind": "embedding", "model": "BAAI/bge-m3"},
        {"name": "rerank", "kind": "rerank", "model": "BAAI/bge-reranker-base"}]})
    plan = place(config)
    # three nodes (L4 0.8048 + 2 × T4 0.526) or one L40S for all (1.861) lose to an L4 for the LLM and one encoder
    # and a T4 for the other (us-east-1 list prices)
    assert plan.hourly_usd == pytest.approx(0.8048 + 0.526)
    assert sorted(len(g.services) for g in plan.node_groups) == [1, 2]
    assert sorted(g.offer.instance_type for g in plan.node_groups) == ["g4dn.xlarge", "g6.xlarge"]


def test_colocated_llm_leaves_room_for_encoders(stack_file):
    plan = place(parse_config(load_raw(stack="staging", stacks_dir=STACKS_DIR)))
    (group,) = plan.node_groups
    llm = next(s for s in group.services if s.kind == "llm")
    encoders = sum(s.required_gpu_memory_gb for s in group.services if s.kind != "llm")
    assert llm.gpu_memory_utilization is not None
    assert llm.gpu_memory_utilization * group.offer.gpu_memory_gb + encoders <= VLLM_GPU_MEMORY_UTILIZATION * group.offer.gpu_memory_gb + 0.01


def test_auto_picks_the_cheapest_cloud_and_fixed_cloud_is_respected(stack_file):
    services = [{"name": "llm", "kind": "llm", "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "dtype": "fp8"}]
    auto = evaluate(_config(stack_file, {"services": services}))
    cheapest_cloud = min((r for r in auto.by_cloud.values() if r.plan), key=lambda r: r.plan.hourly_usd)
    assert auto.plan.cloud == cheapest_cloud.cloud
    for cloud in ("aws", "digitalocean"):
        assert place(_config(stack_file, {"cloud": cloud, "services": services})).cloud == cloud


@pytest.mark.parametrize("cloud", ["digitalocean", "alicloud", "aws"])
def test_auto_can_pick_each_cloud_when_it_is_cheapest(stack_file, cloud):
    """Price overrides make one cloud the cheapest: `cloud: auto` follows the prices."""
    services = [{"name": "llm", "kind": "llm", "model": "Qwen/Qwen2.5-7B-Instruct"}]
    cheap = {"digitalocean": "digitalocean/gpu-l40sx1-48gb", "alicloud": "alicloud/ecs.gn7i-c8g1.2xlarge",
             "aws": "aws/g6.xlarge"}[cloud]
    plan = place(_config(stack_file, {"services": services, "priceOverrides": {cheap: 0.01}}))
    assert plan.cloud == cloud
    assert plan.node_groups[0].offer.hourly_usd == 0.01
    assert plan.node_groups[0].offer.source.startswith("priceOverrides")


def test_cpu_services_get_cpu_instances(stack_file):
    plan = place(_config(stack_file, {"cloud": "aws", "services": [
        {"name": "embedding", "kind": "embedding", "model": "BAAI/bge-m3", "accelerator": "cpu"}]}))
    (group,) = plan.node_groups
    assert group.accelerator == "cpu" and group.offer.gpu_count == 0
    assert group.services[0].tensor_parallel_size == 0


def test_own_catalog_file_replaces_the_builtin(stack_file, tmp_path):
    catalog = tmp_path / "mine.csv"
    catalog.write_text(
        "cloud,instance_type,gpu,gpu_count,gpu_memory_gb,vcpus,memory_gb,hourly_usd,regions,source,as_of\n"
        "aws,g6e.xlarge,L40S,1,48,4,32,0.5,eu-west-3,our reserved pricing,2026-11-01\n"
    )
    plan = place(_config(stack_file, {"catalogFile": str(catalog), "services": [
        {"name": "llm", "kind": "llm", "model": "Qwen/Qwen2.5-7B-Instruct"}]}))
    assert (plan.region, plan.hourly_usd) == ("eu-west-3", 0.5)


def test_broken_catalog_file_names_the_field(stack_file, tmp_path):
    catalog = tmp_path / "broken.csv"
    catalog.write_text("cloud,instance_type\naws,x\n")
    with pytest.raises(ConfigError) as error:
        place(_config(stack_file, {"catalogFile": str(catalog)}))
    (problem,) = error.value.problems
    assert (problem.field, problem.hint) == ("catalogFile", f"expected {', '.join(CATALOG_COLUMNS)}")
    assert problem.message.startswith(f"{catalog}: missing column(s) gpu, "), problem.message


def test_disk_is_sized_for_the_model_cache():
    plan = place(parse_config(load_raw(stack="staging", stacks_dir=STACKS_DIR)))
    # 70.6B checkpoint in 16-bit is ~141 GB; the disk holds it with headroom plus the OS and images
    assert plan.node_groups[0].disk_gb >= 141 * 1.2 + 60


def test_auto_never_picks_a_cloud_that_cannot_serve_the_domain(stack_file):
    """Alibaba Cloud would be cheapest here, but it cannot issue the certificate `domain` asks for."""
    services = [{"name": "llm", "kind": "llm", "model": "Qwen/Qwen2.5-7B-Instruct"}]
    cheap_ali = {"priceOverrides": {"alicloud/ecs.gn7i-c8g1.2xlarge": 0.01}, "services": services}
    assert place(_config(stack_file, cheap_ali)).cloud == "alicloud"
    result = evaluate(_config(stack_file, {**cheap_ali, "domain": "llm.acme-inference.io"}))
    assert result.plan.cloud != "alicloud"
    assert result.by_cloud["alicloud"].plan is None
