"""Placement for the user's load: `load` and `latency` decide replicas and offer; `cost` shows what each option serves."""

from __future__ import annotations

import math

import pytest

from infra.catalog import load_offers
from infra.config import ConfigError, load_raw, parse_config
from infra.placement import evaluate, fit, place, replicas_for, service_need
from infra.throughput import kv_cache_tokens, replica_capacity

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
CHAT = {"requestsPerSecond": 20, "promptTokens": 1024, "outputTokens": 256}


def _config(stack_file, values):
    return parse_config(load_raw(config_file=str(stack_file(values))))


@pytest.mark.parametrize(
    ("service", "field", "message"),
    [
        ({"kind": "llm", "model": LLAMA, "load": {"requestsPerSecond": 1, "tokensPerRequest": 10}},
         "services[0].load", "a llm service's load is requestsPerSecond with outputTokens and promptTokens"),
        ({"kind": "embedding", "model": "BAAI/bge-m3", "load": {"requestsPerSecond": 1, "promptTokens": 10, "outputTokens": 1}},
         "services[0].load", "a embedding service's load is requestsPerSecond with tokensPerRequest"),
        ({"kind": "rerank", "model": "BAAI/bge-reranker-base", "latency": {"timePerOutputTokenMs": 50}},
         "services[0].latency", "only for kind 'llm'"),
        ({"kind": "llm", "model": LLAMA, "maxModelLen": 1024, "load": CHAT},
         "services[0].load", "promptTokens + outputTokens exceed maxModelLen"),
        ({"kind": "llm", "model": LLAMA, "load": {**CHAT, "requestsPerSecond": 0}}, "services[0].load.requestsPerSecond", "must be > 0"),
        ({"kind": "llm", "model": LLAMA, "latency": {"timeToFirstTokenMs": 500, "p99": 1}}, "services[0].latency.p99", "unknown key"),
    ],
)
def test_bad_load_or_latency_names_the_field(stack_file, service, field, message):
    with pytest.raises(ConfigError) as error:
        _config(stack_file, {"services": [{"name": "svc", **service}]})
    assert any(p.field == field and p.message.startswith(message) for p in error.value.problems), error.value.problems


def test_replicas_follow_the_load_and_replicas_stays_a_minimum(stack_file):
    busy = {**CHAT, "requestsPerSecond": 100}
    services = [{"name": "llm", "kind": "llm", "model": LLAMA, "load": busy}]
    config = _config(stack_file, {"cloud": "aws", "region": "us-east-1", "services": services})
    plan = place(config)
    (group,) = plan.node_groups
    llm = group.services[0]
    need = service_need(0, config.services[0])
    needed, capacity = replicas_for(need, group.offer, llm.tensor_parallel_size, llm.gpu_memory_utilization)
    assert needed == math.ceil(busy["requestsPerSecond"] / capacity) > 1
    assert group.count * llm.replicas_per_node >= needed and (group.count - 1) * llm.replicas_per_node < needed
    floor = _config(stack_file, {"cloud": "aws", "region": "us-east-1", "services": [
        {**services[0], "replicas": needed + 3}]})
    (floored,) = place(floor).node_groups
    assert floored.count * floored.services[0].replicas_per_node >= needed + 3


def test_a_latency_target_caps_the_batch_and_needs_more_replicas(stack_file):
    base = {"cloud": "aws", "region": "us-east-1"}
    loose = evaluate(_config(stack_file, {**base, "services": [{"name": "llm", "kind": "llm", "model": LLAMA, "load": CHAT}]}))
    tight = evaluate(_config(stack_file, {**base, "services": [
        {"name": "llm", "kind": "llm", "model": LLAMA, "load": CHAT, "latency": {"timePerOutputTokenMs": 25}}]}))
    assert tight.plan.hourly_usd > loose.plan.hourly_usd
    (group,) = tight.plan.node_groups
    llm = group.services[0]
    kv = kv_cache_tokens(tight.needs[0].info, "bf16", group.offer, llm.tensor_parallel_size, llm.gpu_memory_utilization)
    capped = replica_capacity(tight.needs[0].info, "bf16", group.offer, llm.tensor_parallel_size, kv, 1024, 256, tpot_ms=25)
    assert capped.at.time_per_output_token_s * 1e3 <= 25 and capped.limit == "timePerOutputTokenMs"
    # an L4 cannot decode 16 GB of weights in 25 ms a token at any batch: refused there
    l4 = next(o for o in load_offers() if o.instance_type == "g6.xlarge")
    assert "latency target" in fit([tight.needs[0]], l4).reason


def test_encoder_replicas_follow_their_load(stack_file):
    config = _config(stack_file, {"cloud": "aws", "region": "us-east-1", "services": [
        {"name": "emb", "kind": "embedding", "model": "BAAI/bge-m3", "load": {"requestsPerSecond": 400, "tokensPerRequest": 512}}]})
    (group,) = place(config).node_groups
    need = service_need(0, config.services[0])
    needed, capacity = replicas_for(need, group.offer, 1)
    assert group.count == needed == math.ceil(400 * 512 / (capacity * 512)) > 1


def test_cost_shows_what_each_option_serves_at_the_load(cli, stack_file):
    path = stack_file({"cloud": "aws", "region": "us-east-1", "services": [
        {"name": "llm", "kind": "llm", "model": LLAMA, "load": CHAT, "latency": {"timePerOutputTokenMs": 60}},
        {"name": "emb", "kind": "embedding", "model": "BAAI/bge-m3", "load": {"requestsPerSecond": 100, "tokensPerRequest": 256}}]})
    preview = cli("cost", "--config", str(path), "--format", "json").json()
    llm, emb = preview["services"]
    assert llm["load"] == CHAT and llm["latency"] == {"timePerOutputTokenMs": 60}
    for option in (o for o in llm["options"] if o["feasible"]):
        assert option["nodes"] * option["replicas_per_node"] >= option["replicas_needed"] >= 1
        assert option["time_per_output_token_ms"] <= 60
        assert option["tokens_per_second_per_replica"] == pytest.approx(20 * 256 / option["replicas_running"], rel=1e-3)
        assert option["usd_per_million_output_tokens"] == pytest.approx(option["hourly_usd"] / (20 * 256 * 3600) * 1e6, rel=1e-3)
        assert option["tokens_per_second"] > 0 and option["usd_per_million_tokens"] > 0  # the old keys stay
    for option in (o for o in emb["options"] if o["feasible"]):
        assert option["usd_per_million_embedded_tokens"] == pytest.approx(option["hourly_usd"] / (100 * 256 * 3600) * 1e6, rel=1e-3)
    text = cli("cost", "--config", str(path), "--wide").stdout
    assert "ms/tok" in text and "$/1M out" in text and "$/1M emb" in text


def test_a_latency_no_instance_meets_is_refused_naming_latency(cli, stack_file):
    path = stack_file({"cloud": "aws", "services": [{"name": "llm", "kind": "llm", "model": "meta-llama/Llama-3.1-70B-Instruct",
                                                     "load": {"requestsPerSecond": 1, "promptTokens": 512, "outputTokens": 128},
                                                     "latency": {"timePerOutputTokenMs": 2}}]})
    result = cli("validate", "--config", str(path))
    assert result.code == 2
    assert f"{path}: services[0].latency: no aws instance type in the catalog meets timePerOutputTokenMs 2" in result.stderr
