"""How each placed service runs on its node: pinned images, container arguments, GPU assignment.

Everything a node needs to start a service is decided here, in Python, and written to the node as a
small per-service file; the shell scripts on the node only execute it. That keeps the decisions
testable and the scripts static.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bootstrap.gateway import MAX_BODY_BYTES
from bootstrap.ollama import ollama_run
from infra.plan import NodeGroup, PlacedService

# Pinned images. vLLM v0.19.1 is built on CUDA 12.9 (v0.20+ default to CUDA 13, which needs driver
# >= 580 everywhere); the GPU check uses the same CUDA base, so a too-old driver fails that check,
# with a clear message, before any service starts.
VLLM_IMAGE = "vllm/vllm-openai:v0.19.1"
CUDA_CHECK_IMAGE = "nvidia/cuda:12.9.1-base-ubuntu22.04"
TEI_REPOSITORY = "ghcr.io/huggingface/text-embeddings-inference"
TEI_VERSION = "1.9"
# TEI publishes one CUDA image per GPU architecture (README "Docker images" table); the key is
# Offer.gpu_arch from the catalog.
TEI_ARCH_PREFIX = {"turing": "turing-", "ampere80": "", "86": "86-", "89": "89-", "hopper": "hopper-"}
# NVIDIA server driver branch installed where the image has none: 580 supports CUDA 13.0 (so 12.9
# images), Turing..Blackwell, and is a long-term-support branch on Ubuntu 22.04 and 24.04.
DRIVER_BRANCH = 580

# Where the node keeps the HuggingFace cache (the data disk is mounted here when there is one).
CACHE_DIR = "/opt/llm-deploy/cache"

# vLLM's flags for the plan's dtype (the format placement serves the weights in). int8/int4 expect a
# pre-quantized checkpoint (AWQ, GPTQ, compressed-tensors) and mxfp4 is gpt-oss's own format: vLLM reads
# the method from the model's config, so only the dtype is left to it.
VLLM_DTYPE_ARGS: dict[str, tuple[str, ...]] = {
    "bf16": ("--dtype", "bfloat16"),
    "fp16": ("--dtype", "float16"),
    "fp8": ("--dtype", "auto", "--quantization", "fp8"),
    "int8": ("--dtype", "auto"),
    "int4": ("--dtype", "auto"),
    "mxfp4": ("--dtype", "auto"),
}
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9


@dataclass(frozen=True)
class Sources:
    """Where a node gets its images and weights: the public registries and Hugging Face, or, air-gapped, a
    registry mirror holding the pinned images under their own paths and a directory of pre-staged models
    (`<model_dir>/<model id>`, each model's Hugging Face files), mounted read-only: no download."""

    image_registry: str | None = None
    model_dir: str | None = None

    def image(self, image: str) -> str:
        """The pinned image, from the mirror when there is one (`ghcr.io/x/y:t` → `<mirror>/x/y:t`)."""
        if self.image_registry is None:
            return image
        first, _, rest = image.partition("/")
        return f"{self.image_registry}/{rest if '.' in first or ':' in first else image}"

    def model(self, model: str) -> str:
        """What the server loads: the Hugging Face id, or its pre-staged directory as the container sees it."""
        return model if self.model_dir is None else f"{STAGED_MODELS}/{model}"


STAGED_MODELS = "/models"  # the model directory inside the container


@dataclass(frozen=True)
class ServiceLaunch:
    """One container: its image, `docker run` options and the server's own arguments.

    `waits_for` names the services that must be healthy before this one starts: vLLM refuses to
    start when a GPU it shares already holds an encoder, so encoders on its GPUs start after it.
    """

    service: PlacedService
    image: str
    docker_args: tuple[str, ...]
    args: tuple[str, ...]
    gpu_devices: tuple[int, ...] = ()  # empty: runs on CPU
    waits_for: tuple[str, ...] = ()
    health_path: str = "/health"  # GET 200 when the server is ready (vLLM and TEI: /health)
    pull: str = ""  # Ollama: the model tag the node tool pulls once the server answers


def tei_image(gpu_arch: str | None) -> str:
    """The TEI image for a GPU architecture, or the CPU image for None."""
    if gpu_arch is None:
        return f"{TEI_REPOSITORY}:cpu-{TEI_VERSION}"
    if gpu_arch not in TEI_ARCH_PREFIX:
        raise ValueError(f"offer.gpu_arch: {gpu_arch!r} has no TEI image; known: {', '.join(sorted(TEI_ARCH_PREFIX))}")
    return f"{TEI_REPOSITORY}:{TEI_ARCH_PREFIX[gpu_arch]}{TEI_VERSION}"


def runs_on_gpu(group: NodeGroup, service: PlacedService) -> bool:
    return group.accelerator == "gpu" and service.accelerator == "gpu"


def replica_services(group: NodeGroup) -> list[PlacedService]:
    """The servers a node runs, in the plan's order: an LLM with several replicas per node is one vLLM per
    replica, each with its own name and port (PlacedService.instances)."""
    return [replace(service, name=name, port=port) for service in group.services for name, port in service.instances]


def assign_gpus(group: NodeGroup) -> dict[str, tuple[int, ...]]:
    """GPU indices per server: disjoint ranges when the servers fit side by side, else the encoders share GPU 0.

    Sharing is what placement means when the GPUs needed add up to more than the node has (for example
    TEI next to vLLM replicas that span every GPU, with vLLM's memory share lowered to leave room).
    """
    on_gpu = [s for s in replica_services(group) if runs_on_gpu(group, s)]
    available = group.offer.gpu_count
    for service in on_gpu:
        if max(service.tensor_parallel_size, 1) * service.replicas_per_node > available:
            raise ValueError(
                f"node group {group.name!r}: service {service.name!r} needs {service.tensor_parallel_size} GPUs "
                f"x {service.replicas_per_node} replicas, {group.offer.instance_type} has {available}"
            )
    widths = [max(s.tensor_parallel_size, 1) for s in on_gpu]
    side_by_side = sum(widths) <= available
    starts, next_free = [], 0
    for service, width in zip(on_gpu, widths, strict=True):
        if side_by_side or service.kind == "llm":  # an LLM's replicas each keep GPUs of their own
            starts.append(next_free)
            next_free += width
        else:  # the encoders go onto GPU 0
            starts.append(0)
    return {s.name: tuple(range(start, start + width)) for s, start, width in zip(on_gpu, starts, widths, strict=True)}


def vllm_args(service: PlacedService, sources: Sources = Sources()) -> tuple[str, ...]:
    if service.dtype not in VLLM_DTYPE_ARGS:
        raise ValueError(f"service {service.name!r}: dtype {service.dtype!r} is not one of {', '.join(VLLM_DTYPE_ARGS)}")
    # The image's entrypoint is `vllm serve`, which takes the model (an id or a directory) positionally.
    args = [
        sources.model(service.model),
        "--served-model-name", service.model,
        "--tensor-parallel-size", str(max(service.tensor_parallel_size, 1)),
    ]  # fmt: skip
    if service.max_model_len is not None:
        args += ["--max-model-len", str(service.max_model_len)]
    utilization = service.gpu_memory_utilization or DEFAULT_GPU_MEMORY_UTILIZATION
    args += ["--gpu-memory-utilization", f"{utilization:g}", *VLLM_DTYPE_ARGS[service.dtype]]
    args += ["--host", "0.0.0.0", "--port", str(service.port)]
    return tuple(args)


def tei_args(service: PlacedService, sources: Sources = Sources()) -> tuple[str, ...]:
    # TEI's own body limit (2 MB by default) matches the gateway's, so a batch nginx lets through is not a 413 here.
    return ("--model-id", sources.model(service.model), "--port", str(service.port), "--auto-truncate", "--payload-limit", str(MAX_BODY_BYTES))


def service_launches(group: NodeGroup, sources: Sources = Sources()) -> list[ServiceLaunch]:
    """The containers of a node group, in the plan's order, their images and weights from SOURCES."""
    gpus = assign_gpus(group)
    servers = replica_services(group)
    llm_gpus = {s.name: set(gpus.get(s.name, ())) for s in servers if s.kind == "llm"}
    launches = []
    for service in servers:
        devices = gpus.get(service.name, ())
        docker_args = ["-p", f"127.0.0.1:{service.port}:{service.port}"]
        if sources.model_dir is not None:
            docker_args += ["-v", f"{sources.model_dir}:{STAGED_MODELS}:ro"]
        if devices:
            docker_args += ["--gpus", '"device=' + ",".join(map(str, devices)) + '"']
        if service.engine == "ollama":
            run = ollama_run(service, CACHE_DIR, STAGED_MODELS if sources.model_dir else None)
            launches.append(ServiceLaunch(service, sources.image(run.image), (*docker_args, *run.docker_args), run.args, devices,
                                          health_path=run.health_path, pull=run.pull))
            continue
        if service.kind == "llm":
            if not devices:
                raise ValueError(
                    f"node group {group.name!r}: service {service.name!r} (llm) needs a GPU; vLLM has no CPU image here"
                )
            image = sources.image(VLLM_IMAGE)
            # --ipc=host: PyTorch shares tensors between the tensor-parallel workers through shared memory.
            # The compile cache (~/.cache/vllm) lives on the cache disk too: a restart reuses it.
            docker_args += [
                "--ipc=host",
                "-v", f"{CACHE_DIR}/huggingface:/root/.cache/huggingface",
                "-v", f"{CACHE_DIR}/vllm:/root/.cache/vllm",
            ]  # fmt: skip
            args = vllm_args(service, sources)
            waits_for: tuple[str, ...] = ()
        else:
            if devices and group.offer.gpu_arch is None:
                raise ValueError(
                    f"node group {group.name!r}: offer.gpu_arch is not set for {group.offer.gpu}; TEI needs it to pick its image"
                )
            image = sources.image(tei_image(group.offer.gpu_arch if devices else None))
            # TEI keeps its hub cache in /data: the same layout as vLLM's, so both share one cache.
            docker_args += ["-v", f"{CACHE_DIR}/huggingface/hub:/data"]
            args = tei_args(service, sources)
            waits_for = tuple(name for name, shared in llm_gpus.items() if shared & set(devices))
        launches.append(ServiceLaunch(service, image, tuple(docker_args), args, devices, waits_for))
    return launches
