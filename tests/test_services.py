"""bootstrap/services.py: how each placed service runs on its node (images, container arguments, GPUs),
read back from the generated files as bash reads them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bootstrap import BootTarget, render_user_data
from bootstrap.gateway import MAX_BODY_BYTES
from bootstrap.services import CACHE_DIR, VLLM_IMAGE, service_launches
from tests.helpers import AWS_LOG_GROUP, AWS_STORE, CASES, MODELS, bash_array, flag, group, node_files, offer, svc

TEI = "ghcr.io/huggingface/text-embeddings-inference"


@pytest.mark.parametrize(
    ("gpu", "arch", "tag"),
    [("A10G", "86", "86-1.9"), ("L4", "89", "89-1.9"), ("L40S", "89", "89-1.9"), ("H100", "hopper", "hopper-1.9"),
     ("H200", "hopper", "hopper-1.9"), ("A100", "ampere80", "1.9"), ("T4", "turing", "turing-1.9"), (None, None, "cpu-1.9")],
)  # fmt: skip
def test_tei_image_tag_follows_the_gpu_architecture(gpu, arch, tag, tmp_path):
    accelerator = "gpu" if gpu else "cpu"
    node = group("embed", offer("aws", "x", gpu, 1 if gpu else 0, arch), svc("embedding", accelerator=accelerator))
    files = node_files(render_user_data(node, BootTarget("aws", True, metrics_log_group=AWS_LOG_GROUP), AWS_STORE))
    conf = files["/etc/llm-deploy/services/embedding.conf"].text
    assert bash_array(conf, "SERVICE_IMAGE", tmp_path) == [f"{TEI}:{tag}"]
    docker_args = bash_array(conf, "SERVICE_DOCKER_ARGS", tmp_path)
    assert ("--gpus" in docker_args) == (gpu is not None)


def test_unknown_gpu_architecture_is_refused():
    node = group("embed", offer("aws", "x", "B200", 1, "blackwell"), svc("embedding"))
    with pytest.raises(ValueError, match="gpu_arch"):
        render_user_data(node, BootTarget("aws", True, metrics_log_group=AWS_LOG_GROUP), AWS_STORE)


@pytest.mark.parametrize(
    ("name", "tp", "devices"), [("aws-tp4-l40s", 4, "0,1,2,3"), ("alicloud-tp8-a100-no-driver", 8, "0,1,2,3,4,5,6,7")]
)
def test_vllm_tensor_parallel_size_is_the_plans(name, tp, devices, rendered, tmp_path):
    conf = node_files(rendered[name])["/etc/llm-deploy/services/llm.conf"].text
    args = bash_array(conf, "SERVICE_ARGS", tmp_path)
    planned = next(s for s in CASES[name].group.services if s.kind == "llm")
    assert int(flag(args, "--tensor-parallel-size")) == planned.tensor_parallel_size == tp
    docker_args = bash_array(conf, "SERVICE_DOCKER_ARGS", tmp_path)
    assert flag(docker_args, "--gpus") == f'"device={devices}"'
    assert bash_array(conf, "SERVICE_IMAGE", tmp_path) == [VLLM_IMAGE]


def test_vllm_flags_follow_the_plan(rendered, tmp_path):
    args = bash_array(node_files(rendered["aws-tp4-l40s"])["/etc/llm-deploy/services/llm.conf"].text, "SERVICE_ARGS", tmp_path)
    assert args[0] == flag(args, "--served-model-name") == MODELS["llm"]  # `vllm serve MODEL`: positional
    assert "--model" not in args
    assert flag(args, "--gpu-memory-utilization") == "0.85"
    assert flag(args, "--dtype") == "bfloat16"
    assert flag(args, "--port") == "8000"
    fp8 = node_files(rendered["alicloud-tp8-a100-no-driver"])["/etc/llm-deploy/services/llm.conf"].text
    fp8_args = bash_array(fp8, "SERVICE_ARGS", tmp_path)
    assert flag(fp8_args, "--quantization") == "fp8"
    assert flag(fp8_args, "--gpu-memory-utilization") == "0.9"  # the default when the plan leaves it open
    with_len = replace(CASES["aws-tp4-l40s"].group.services[0], max_model_len=16384)
    launch = service_launches(replace(CASES["aws-tp4-l40s"].group, services=(with_len,)))[0]
    assert flag(list(launch.args), "--max-model-len") == "16384"


def test_services_listen_on_localhost_only(rendered, tmp_path):
    for name, user_data in rendered.items():
        for path, file in node_files(user_data).items():
            if path.startswith("/etc/llm-deploy/services/"):
                docker_args = bash_array(file.text, "SERVICE_DOCKER_ARGS", tmp_path)
                port = bash_array(file.text, "SERVICE_PORT", tmp_path)[0]
                assert flag(docker_args, "-p") == f"127.0.0.1:{port}:{port}", (name, path)


def test_gpus_are_split_when_services_fit_side_by_side_and_shared_otherwise(tmp_path):
    split = group("two", offer("aws", "g6.12xlarge", "L4", 4, "89", 24), svc("llm", tp=2), svc("embedding"), svc("rerank"))
    devices = {launch.service.name: launch.gpu_devices for launch in service_launches(split)}
    assert devices == {"llm": (0, 1), "embedding": (2,), "rerank": (3,)}
    shared = {launch.service.name: launch.gpu_devices for launch in service_launches(CASES["aws-tp4-l40s"].group)}
    assert shared == {"llm": (0, 1, 2, 3), "embedding": (0,)}


def test_vllm_compile_cache_is_on_the_cache_disk(rendered, tmp_path):
    conf = node_files(rendered["aws-tp4-l40s"])["/etc/llm-deploy/services/llm.conf"].text
    docker_args = bash_array(conf, "SERVICE_DOCKER_ARGS", tmp_path)
    volumes = [docker_args[i + 1] for i, arg in enumerate(docker_args) if arg == "-v"]
    assert f"{CACHE_DIR}/vllm:/root/.cache/vllm" in volumes  # --rm containers otherwise compile again at each start


def test_tei_takes_the_bodies_the_gateway_lets_through(rendered, tmp_path):
    conf = node_files(rendered["aws-ssm-driver-image"])["/etc/llm-deploy/services/embedding.conf"].text
    assert int(flag(bash_array(conf, "SERVICE_ARGS", tmp_path), "--payload-limit")) == MAX_BODY_BYTES
    assert f"client_max_body_size {MAX_BODY_BYTES // 2**20}m;" in node_files(rendered["aws-ssm-driver-image"])["/etc/llm-deploy/gateway.conf"].text


def test_encoders_sharing_vllms_gpu_wait_for_it(rendered, tmp_path):
    shared = node_files(rendered["aws-tp4-l40s"])  # TEI on GPU 0 of the four vLLM spans
    assert bash_array(shared["/etc/llm-deploy/services/embedding.conf"].text, "SERVICE_WAITS_FOR", tmp_path) == ["llm"]
    assert "\nSERVICE_WAITS_FOR=()\n" in shared["/etc/llm-deploy/services/llm.conf"].text
    split = group("two", offer("aws", "g6.12xlarge", "L4", 4, "89", 24), svc("llm", tp=2), svc("embedding"), svc("rerank"))
    assert {launch.service.name: launch.waits_for for launch in service_launches(split)} == {"llm": (), "embedding": (), "rerank": ()}
    cpu = service_launches(CASES["aws-cpu"].group)
    assert all(launch.waits_for == () for launch in cpu)
