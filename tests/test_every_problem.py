"""Every problem of a stack file in one run: config keys, services, checks across fields, price
overrides and pins together, each naming its own field; a pin names the pin and the valid values."""

from __future__ import annotations

import pytest

from infra.errors import ConfigError, Problem
from infra.models import TENSOR_PARALLEL_SIZES
from tests.helpers import SSH_KEY, fields, stack_problems

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"  # 32 attention heads: every tensor-parallel size divides them
VALID_SIZES = ", ".join(map(str, TENSOR_PARALLEL_SIZES))

# Six mistakes, across stack keys, services, a check across fields, a price override and a pin: each
# used to hide the next (pydantic stops at the first failing layer, placement never ran), five runs in all.
SIX_MISTAKES = {
    "regoin": "us-east-1",  # 1. a stack key misspelt
    "services": [
        {"name": "llm", "kind": "llm", "model": LLAMA, "maxModelLen": 8192, "gpuCount": 3},  # 5. no 3-GPU tensor-parallel size
        {"name": "embedding", "kind": "embedding", "model": "intfloat/multilingual-e5-large-instruct", "replicas": 0},  # 2.
        {"name": "rerank", "kind": "rerank", "model": "BAAI/bge-reranker-large", "gpu": "H1000"},  # 3. no such GPU
    ],
    "sshCidrs": ["0.0.0.0/0"],  # 4. SSH from the whole internet without allowPublicSsh
    "sshPublicKeys": [SSH_KEY],
    "priceOverrides": {"aws/p9.huge": 1.0},  # 6. an instance type the catalog does not have
}


def test_six_mistakes_are_six_problems_in_one_run(cli, stack_file):
    path = stack_file(SIX_MISTAKES)
    problems = stack_problems(path)
    source = str(path)
    assert fields(problems) == [
        (source, "regoin"),
        (source, "services[1].replicas"),
        (source, "services[2].gpu"),
        (source, "sshCidrs[0]"),
        (source, "priceOverrides"),
        (source, "services[0].gpuCount"),
    ]
    assert problems[-1] == Problem(source, "services[0].gpuCount", f"no 3-GPU tensor-parallel size for {LLAMA}", f"valid: {VALID_SIZES}")
    assert problems[-2].message == "aws/p9.huge not in the catalog"
    for command in ("validate", "cost"):
        result = cli(command, "--config", str(path))
        assert result.code == 2, result.stderr
        assert result.stderr.splitlines() == [str(p) for p in problems], command


def test_the_plan_and_the_program_report_the_same_problems(stack_file):
    from infra.cli.offline import run_offline
    from infra.config import load_raw

    path = stack_file(SIX_MISTAKES)
    with pytest.raises(ConfigError) as error:
        run_offline(load_raw(config_file=str(path)))
    assert error.value.problems == stack_problems(path)


def test_a_check_across_fields_is_not_made_on_a_key_that_is_invalid(stack_file):
    """An invalid sshPublicKeys is its own problem; "set sshPublicKeys too" would blame what is there."""
    path = stack_file({"sshCidrs": ["203.0.113.0/24"], "sshPublicKeys": ["not a key"], "services": [{"name": "llm", "kind": "llm",
                                                                                                     "model": LLAMA, "replicas": 0}]})
    assert [p.field for p in stack_problems(path)] == ["services[0].replicas", "sshPublicKeys[0]"]


def test_placement_judges_only_the_whole_stack_against_the_budget(stack_file):
    """With a service left out, the cheapest placement is another stack's: no budget problem from it."""
    services = [{"name": "llm", "kind": "llm", "model": LLAMA, "maxModelLen": 8192},
                {"name": "embedding", "kind": "embedding", "model": "intfloat/multilingual-e5-large-instruct", "replicas": 0}]
    path = stack_file({"budgetUsdPerHour": 0.01, "services": services})
    assert [p.field for p in stack_problems(path)] == ["services[1].replicas"]
    services[1]["replicas"] = 1
    assert [p.field for p in stack_problems(stack_file({"budgetUsdPerHour": 0.01, "services": services}))] == ["budgetUsdPerHour"]


def test_an_invalid_cloud_leaves_placement_out(stack_file):
    """Placed on every cloud instead of the one meant, the services would be judged against other offers."""
    path = stack_file({"cloud": "gcp", "services": [{"name": "llm", "kind": "llm", "model": LLAMA, "gpuCount": 3}]})
    assert [p.field for p in stack_problems(path)] == ["cloud"]


@pytest.mark.parametrize("count", [3, 16])
def test_a_gpu_count_pin_without_a_tensor_parallel_size_names_the_pin(stack_file, count):
    """It was reported against `model` ("needs ... GB ... the largest instance has ...")."""
    path = stack_file({"services": [{"name": "llm", "kind": "llm", "model": LLAMA, "gpuCount": count}]})
    assert stack_problems(path) == [
        Problem(str(path), "services[0].gpuCount", f"no {count}-GPU tensor-parallel size for {LLAMA}", f"valid: {VALID_SIZES}")]


def test_the_valid_sizes_are_the_models_own(stack_file):
    """Qwen2.5-7B has 28 attention heads: vLLM cannot split them 8 ways."""
    path = stack_file({"services": [{"name": "llm", "kind": "llm", "model": "Qwen/Qwen2.5-7B-Instruct", "gpuCount": 8}]})
    (problem,) = stack_problems(path)
    assert (problem.field, problem.hint) == ("services[0].gpuCount", "valid: 1, 2, 4")


def test_a_gpu_count_no_instance_type_has_names_the_counts_offered(stack_file):
    path = stack_file({"cloud": "digitalocean", "services": [{"name": "llm", "kind": "llm", "model": LLAMA, "gpu": "L40S",
                                                              "gpuCount": 2}]})
    assert stack_problems(path) == [
        Problem(str(path), "services[0].gpuCount", "no instance type with 2 L40S GPUs in the catalog", "offered: 1")]
