"""The memory rule as vLLM applies it, held to published facts (each test cites its source)."""

from __future__ import annotations

import pytest

from infra.catalog import load_offers
from infra.config import ConfigError, load_raw, parse_config
from infra.models import checkpoint_disk_gb, find_model, kv_cache_gb, llm_memory_gb, served_dtype, weights_gb
from infra.placement import fit, place, service_need
from tests.helpers import STACKS_DIR


def _need(service: dict, stack_file):
    config = parse_config(load_raw(config_file=str(stack_file({"services": [service]}))))
    return service_need(0, config.services[0])


def _offer(instance_type: str, cloud: str = "aws"):
    return next(o for o in load_offers() if o.cloud == cloud and o.instance_type == instance_type)


@pytest.mark.parametrize("instance_type", ["g6.xlarge", "g5.xlarge"])
def test_llama_8b_bf16_at_8192_fits_one_24_gb_gpu(stack_file, instance_type):
    """kvplan (pypi.org/project/kvplan, vLLM's own accounting) puts Llama-3.1-8B bf16 on one L4 at 14.96 GiB of
    weights with KV room for 40,208 tokens: one 8192-token sequence fits on a 24 GB L4 or A10G."""
    need = _need({"name": "llm", "kind": "llm", "model": "meta-llama/Llama-3.1-8B-Instruct", "maxModelLen": 8192}, stack_file)
    placed = fit([need], _offer(instance_type))
    assert placed.feasible, placed.reason
    assert placed.services[0].tensor_parallel_size == 1
    # 16.06 GB of weights + 1.07 GB of KV cache for one 8192-token sequence + 2 GB runtime
    assert need.required_gb == pytest.approx(16.06 + 131072 * 8192 / 1e9 + 2, abs=0.1)


def test_gpt_oss_120b_fits_one_80_gb_h100(stack_file):
    """OpenAI's gpt-oss model card: gpt-oss-120b (MXFP4 MoE weights, 60.8 GiB checkpoint) runs on a single 80 GB GPU."""
    need = _need({"name": "llm", "kind": "llm", "model": "openai/gpt-oss-120b"}, stack_file)
    assert weights_gb(need.info, "bf16") == pytest.approx(60.8 * 2**30 / 1e9, abs=0.1)
    assert served_dtype(need.info, "bf16") == "mxfp4"
    placed = fit([need], _offer("p5.4xlarge"))
    assert placed.feasible, placed.reason
    assert placed.services[0].tensor_parallel_size == 1 and placed.services[0].dtype == "mxfp4"


def test_deepseek_r1_fp8_fits_eight_h200_but_not_eight_h100(stack_file):
    """vLLM's DeepSeek-V3/R1 recipe (docs.vllm.ai/projects/recipes): "8xH200 with fp8: native FP8"; SGLang's guide lists
    FP8 on 8 x H200 and 2 x 8 x H100 (one 8 x H100 node is too small)."""
    need = _need({"name": "llm", "kind": "llm", "model": "deepseek-ai/DeepSeek-R1"}, stack_file)
    assert served_dtype(need.info, "bf16") == "fp8"  # vLLM never upcasts the FP8 checkpoint
    h200 = fit([need], _offer("p5en.48xlarge"))
    assert h200.feasible, h200.reason
    assert h200.services[0].tensor_parallel_size == 8
    assert not fit([need], _offer("p5.48xlarge")).feasible


def test_native_checkpoint_formats_size_the_disk(stack_file):
    """DeepSeek-R1 ships FP8 (~690 GB), gpt-oss MXFP4, the bge models fp32: the disk holds what is published."""
    assert checkpoint_disk_gb(find_model("deepseek-ai/DeepSeek-R1")) == pytest.approx(688.6)
    assert checkpoint_disk_gb(find_model("openai/gpt-oss-120b")) == pytest.approx(65.28)
    assert checkpoint_disk_gb(find_model("BAAI/bge-m3")) == pytest.approx(0.568 * 4)
    assert checkpoint_disk_gb(find_model("Qwen/Qwen2.5-7B-Instruct")) == pytest.approx(7.62 * 2)
    plan = place(parse_config(load_raw(config_file=str(stack_file({"cloud": "aws", "services": [
        {"name": "llm", "kind": "llm", "model": "deepseek-ai/DeepSeek-R1", "maxModelLen": 8192}]})))))
    (group,) = plan.node_groups
    assert group.offer.instance_type == "p5en.48xlarge"
    assert 688.6 * 1.1 < group.disk_gb < 1000  # sized for 689 GB, not for 1,342 GB of 16-bit weights


def test_min_concurrency_sizes_the_kv_cache(stack_file):
    info = find_model("meta-llama/Llama-3.1-8B-Instruct")
    assert kv_cache_gb(info, 8192, 4) == pytest.approx(4 * kv_cache_gb(info, 8192))
    one = _need({"name": "llm", "kind": "llm", "model": "meta-llama/Llama-3.1-8B-Instruct"}, stack_file)
    four = _need({"name": "llm", "kind": "llm", "model": "meta-llama/Llama-3.1-8B-Instruct", "minConcurrency": 4}, stack_file)
    assert four.required_gb == pytest.approx(one.required_gb + 3 * kv_cache_gb(info, 8192), abs=0.1)
    assert not fit([four], _offer("g6.xlarge")).feasible  # 22.4 GB > 21.6 GB usable on one L4
    assert llm_memory_gb(info, "bf16", 8192, 2, 4) == pytest.approx(16.06 + 4 * 1.074 + 4.0, abs=0.01)


def test_fp8_is_quantized_online_and_int4_needs_a_quantized_checkpoint(stack_file):
    """vLLM quantizes a 16-bit checkpoint to FP8 at load (`--quantization fp8`, docs "Online Dynamic Quantization");
    int8 and int4 need an AWQ/GPTQ checkpoint, which a registry model served from its own repository is not."""
    info = find_model("meta-llama/Llama-3.1-8B-Instruct")
    assert weights_gb(info, "fp8") == pytest.approx(8.03)
    assert served_dtype(find_model("openai/gpt-oss-120b"), "fp8") == "mxfp4"  # already smaller: served as published
    with pytest.raises(ConfigError) as error:
        _need({"name": "llm", "kind": "llm", "model": "meta-llama/Llama-3.1-8B-Instruct", "dtype": "int4"}, stack_file)
    (found,) = error.value.problems
    assert found.field == "services[0].dtype" and "AWQ/GPTQ" in found.message
    custom = _need({"name": "llm", "kind": "llm", "model": "someone/Llama-3.1-8B-AWQ", "paramsB": 8.03, "dtype": "int4"},
                   stack_file)
    assert weights_gb(custom.info, "int4") == pytest.approx(4.015)
    assert checkpoint_disk_gb(custom.info) == pytest.approx(4.015)


def test_min_concurrency_only_for_llms(stack_file):
    with pytest.raises(ConfigError) as error:
        _need({"name": "emb", "kind": "embedding", "model": "BAAI/bge-m3", "minConcurrency": 2}, stack_file)
    (found,) = error.value.problems
    assert (found.field, found.message) == ("services[0].minConcurrency", "only for kind 'llm'")


def test_shipped_stacks_are_sized_by_the_new_rule():
    """prod's 32B fp8 at 16384 needs 39.1 GB with one full-length sequence (52.0 GB with four)."""
    plan = place(parse_config(load_raw(stack="prod", stacks_dir=STACKS_DIR)))
    llm = next(s for g in plan.node_groups for s in g.services if s.kind == "llm")
    assert llm.required_gpu_memory_gb == pytest.approx(32.8 + 262144 * 16384 / 1e9 + 2, abs=0.1)
