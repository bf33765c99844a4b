"""`engine: ollama`: its tags and image are sourced data, its memory and decode estimate follow from them, and the
node runs the pinned Ollama image with the settings placement sized (config refusals: tests/test_config.py)."""

from __future__ import annotations

import pytest

from bootstrap.cloudwatch import SCRAPE_TEMPLATE
from bootstrap.services import CACHE_DIR, Sources, service_launches
from infra import ollama
from infra.config import RawConfig, parse_config
from infra.cost import cost_preview
from infra.data_files import data_rows
from infra.models import GB
from infra.placement import evaluate, place
from tests.helpers import CASES, OLLAMA_TAG, bash_array, node_files

CPU_LLM = {"name": "llm", "kind": "llm", "engine": "ollama", "accelerator": "cpu", "model": OLLAMA_TAG}
CPU_ENCODERS = [{"name": "embedding", "kind": "embedding", "model": "intfloat/multilingual-e5-large-instruct", "accelerator": "cpu"},
                {"name": "rerank", "kind": "rerank", "model": "BAAI/bge-reranker-large", "accelerator": "cpu"}]


def stack(*services: dict, **values) -> RawConfig:
    return RawConfig("ollama-test", "stacks/Pulumi.ollama-test.yaml", {"services": list(services), **values})


@pytest.mark.parametrize("name", ["ollama_models.csv", "ollama_quantizations.csv", "ollama_decode.csv"])
def test_every_ollama_fact_has_a_source_and_a_date(name):
    rows = data_rows(name)
    assert rows and all(row["source"].strip() and row["as_of"] == "2026-12-01" for row in rows), name


def test_the_image_is_pinned_by_version_with_its_source():
    (row,) = [r for r in data_rows("images.csv") if r["engine"] == "ollama"]
    assert row["image"] == "ollama/ollama:0.32.15" and "v0.32.15" in row["source"]


def test_every_built_in_tag_is_a_library_tag_with_a_known_quantisation_and_a_size_that_matches_it():
    for tag in ollama.tags().values():
        assert ollama.TAG.fullmatch(tag.tag) and tag.quantization in ollama.bits_per_weight(), tag.tag
        from_bits = tag.params_b * ollama.bits_per_weight()[tag.quantization] / 8
        assert from_bits == pytest.approx(tag.size_gb, rel=0.12), (tag.tag, from_bits)  # the published size, within rounding


def test_memory_is_the_gguf_weights_plus_the_kv_cache_of_every_slot_plus_the_runner():
    """deepseek-coder 6.7B keeps every head's K and V (32 layers x 32 KV heads x 128 x 2 x 2 bytes = 512 KiB a token)."""
    info = ollama.tag_info(OLLAMA_TAG, None)
    assert info.kv_bytes_per_token == 2 * 32 * 32 * 128 * 2
    one = ollama.memory_gb(info, 8192, 1)
    assert one == pytest.approx(3.8 + 524_288 * 8192 / GB + ollama.decode_constant("runtime_overhead_gb"))
    assert ollama.memory_gb(info, 8192, 4) - one == pytest.approx(3 * 524_288 * 8192 / GB)


def test_an_unknown_tag_is_sized_from_paramsb_and_the_quantisation_its_name_gives():
    info = ollama.tag_info("qwen2.5:7b-instruct-q8_0", 7.62)
    assert info.native_gb == pytest.approx(7.62 * 8.5 / 8)
    assert ollama.quantization("qwen2.5:7b-instruct-fp16") == "f16" and ollama.quantization("x:1b-q4_K_M") == "q4_K_M"


def test_cpu_decode_is_the_vcpus_bandwidth_over_the_bytes_read_per_token():
    plan = place(parse_config(stack(CPU_LLM, cloud="digitalocean")))
    (group,) = plan.node_groups
    info = ollama.tag_info(OLLAMA_TAG, None)
    bandwidth = min(group.offer.vcpus * 5.0, 150.0)  # data/ollama_decode.csv
    expected = bandwidth * GB / (3.8 * GB + info.kv_bytes_per_token * 1024)
    assert ollama.tokens_per_second(info, group.offer, 1024) == pytest.approx(expected)
    assert ollama.estimate(info, group.offer, 1).usd_per_million_tokens == pytest.approx(
        group.offer.hourly_usd / (expected * 3600) * 1e6, rel=1e-3)


def test_a_cpu_only_stack_goes_onto_one_cpu_node_whose_ram_holds_all_three():
    config = parse_config(stack(CPU_LLM, *CPU_ENCODERS, cloud="aws"))
    evaluation = evaluate(config)
    groups = evaluation.plan.node_groups
    assert all(g.offer.gpu_count == 0 for g in groups)
    llm = next(s for g in groups for s in g.services if s.kind == "llm")
    assert (llm.engine, llm.accelerator, llm.tensor_parallel_size, llm.dtype, llm.max_model_len) == ("ollama", "cpu", 0, "q4_0", 8192)
    group = next(g for g in groups if llm in g.services)
    assert sum(s.required_gpu_memory_gb for s in group.services) <= group.offer.memory_gb - 2.0


def test_cost_labels_the_ollama_figures_as_its_estimate_and_prices_tokens_with_it():
    preview = cost_preview(evaluate(parse_config(stack(CPU_LLM, cloud="alicloud"))))
    record = preview.as_json()
    (service,) = record["services"]
    assert (service["engine"], service["dtype"], service["throughput_basis"]) == ("ollama", "q4_0", ollama.THROUGHPUT_BASIS)
    feasible = [o for o in service["options"] if o["feasible"]]
    assert feasible and all(o["throughput_is_estimate"] and o["throughput_basis"] == ollama.THROUGHPUT_BASIS for o in feasible)
    chosen = preview.services[0].placed
    info = ollama.tag_info(OLLAMA_TAG, None)
    assert service["tokens_per_second"] == round(ollama.tokens_per_second(info, chosen.group.offer, 1024), 1)
    assert service["usd_per_million_tokens"] == ollama.estimate(info, chosen.group.offer, 1).usd_per_million_tokens
    assert "Ollama: " + ollama.THROUGHPUT_BASIS in record["throughput_note"]


def test_on_a_small_gpu_ollama_uses_every_gpu_of_its_node_and_none_idle():
    plan = place(parse_config(stack({**CPU_LLM, "accelerator": "gpu", "model": "llama3.1:8b"}, cloud="aws")))
    (group,) = plan.node_groups
    (llm,) = group.services
    assert group.offer.gpu_count == llm.tensor_parallel_size == 1 and llm.required_gpu_memory_gb <= group.offer.gpu_memory_gb
    two = next(o for o in evaluate(parse_config(stack({**CPU_LLM, "accelerator": "gpu", "model": "llama3.1:8b"}, cloud="aws")))
               .by_cloud["aws"].offers if o.gpu_count == 4)
    assert ollama.fits_gpus(llm.required_gpu_memory_gb, two).endswith("GPUs idle")


def launch_of(case: str, sources: Sources | None = None):
    launches = service_launches(CASES[case].group, sources or Sources())
    return next(launch for launch in launches if launch.service.engine == "ollama")


def test_the_cpu_container_runs_the_pinned_image_with_the_placed_settings_and_no_gpus():
    launch = launch_of("aws-cpu-ollama")
    assert launch.image == "ollama/ollama:0.32.15" and launch.args == ("serve",) and launch.gpu_devices == ()
    args = list(launch.docker_args)
    env = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "-e")
    assert env == {"OLLAMA_HOST": "0.0.0.0:8000", "OLLAMA_CONTEXT_LENGTH": "8192", "OLLAMA_NUM_PARALLEL": "1",
                   "OLLAMA_MAX_LOADED_MODELS": "1", "OLLAMA_KEEP_ALIVE": "-1", "OLLAMA_NO_CLOUD": "1"}
    assert "--gpus" not in args and f"{CACHE_DIR}/ollama:/root/.ollama" in args and args[:2] == ["-p", "127.0.0.1:8000:8000"]
    assert (launch.health_path, launch.pull) == (f"/v1/models/{OLLAMA_TAG}", OLLAMA_TAG)


def test_the_gpu_container_gets_its_gpus_and_staged_models_are_served_read_only_without_a_pull():
    assert '"device=0"' in launch_of("digitalocean-gpu-ollama").docker_args
    staged = launch_of("aws-cpu-ollama", Sources("registry.internal:5000", "/srv/models"))
    args = list(staged.docker_args)
    assert staged.image == "registry.internal:5000/ollama/ollama:0.32.15" and staged.pull == ""
    assert "/srv/models:/models:ro" in args and "OLLAMA_MODELS=/models/ollama" in args and "OLLAMA_NOPRUNE=1" in args
    assert not any(a.endswith(":/root/.ollama") for a in args)


def test_the_node_files_carry_the_health_path_and_the_tag_to_pull(tmp_path):
    files = node_files(CASES["aws-cpu-ollama"].render())
    conf = files["/etc/llm-deploy/services/llm.conf"].text
    assert bash_array(conf, "SERVICE_ARGS", tmp_path) == ["serve"]
    assert f"SERVICE_HEALTH_PATH=/v1/models/{OLLAMA_TAG}\n" in conf and f"SERVICE_PULL={OLLAMA_TAG}\n" in conf
    gateway = files["/etc/llm-deploy/gateway.conf"].text
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/models"):
        assert f"location = {path} {{ proxy_pass http://127.0.0.1:8000; }}  # llm" in gateway
    assert "/metrics/llm" not in gateway and "/metrics/embedding" in gateway  # Ollama has no /metrics
    assert "127.0.0.1:8000" not in files[SCRAPE_TEMPLATE].text and "127.0.0.1:8080" in files[SCRAPE_TEMPLATE].text


def test_every_setting_is_an_environment_variable_the_pinned_ollama_reads():
    """The boot stand-in's list (tests/boot/cli_options.csv, from ollama v0.32.15 envconfig/config.go) is the one the
    docker stand-in refuses others by; the launches of every case use only those."""
    import csv

    from tests.helpers import ROOT

    with open(ROOT / "tests/boot/cli_options.csv") as handle:
        known = {row["option"] for row in csv.DictReader(handle) if row["program"] == "ollama-env"}
    staged = Sources("registry.internal:5000", "/srv/models")
    for case in ("aws-cpu-ollama", "digitalocean-gpu-ollama"):
        for sources in (Sources(), staged):
            args = list(launch_of(case, sources).docker_args)
            names = {args[i + 1].partition("=")[0] for i, a in enumerate(args) if a == "-e"}
            assert names and names <= known, names - known


def test_preflight_looks_for_a_staged_tag_where_the_node_serves_it_from():
    """modelSource.path/<STAGED_DIR> is the node's OLLAMA_MODELS; Ollama keeps a library tag's manifest under it."""
    staged = launch_of("aws-cpu-ollama", Sources(None, "/srv/models"))
    assert f"OLLAMA_MODELS=/models/{ollama.STAGED_DIR}" in staged.docker_args
    assert ollama.staged_file(OLLAMA_TAG) == f"{ollama.STAGED_DIR}/manifests/registry.ollama.ai/library/deepseek-coder/6.7b"
