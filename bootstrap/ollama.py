"""How an `engine: ollama` LLM runs on its node: the pinned Ollama image (data/images.csv), its settings as the
environment variables the pinned version reads (envconfig/config.go of ollama v0.32.15), and the model tag the node
tool pulls once the server answers (`POST /api/pull`, what `ollama pull` calls; idempotent: a pulled model is only
checked against the registry).

Health is `GET /v1/models/<tag>`: 200 only once that model is on the node (404 before the pull ends), where Ollama's
`GET /` says "Ollama is running" with no model at all. Air-gapped hosts (`modelSource.path`) serve
`<path>/ollama`, an Ollama models directory copied from a machine that pulled the tag, read-only and never pulled.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.boot_time import image_sizes
from infra.ollama import STAGED_DIR
from infra.plan import PlacedService


@dataclass(frozen=True)
class OllamaRun:
    """What `service_launches` needs beyond the shared `-p` and GPU options."""

    image: str
    docker_args: tuple[str, ...]
    args: tuple[str, ...]
    health_path: str
    pull: str  # the tag to pull at each start, "" when the models are staged


def ollama_image() -> str:
    return image_sizes()[("ollama", "any")].image


def ollama_run(service: PlacedService, cache_dir: str, staged_models: str | None) -> OllamaRun:
    """The container of one Ollama server: listening on the service's port, the tag's context and parallel slots as
    placement sized them, the model kept loaded, models on the cache disk (or the staged directory, read-only)."""
    env = {
        "OLLAMA_HOST": f"0.0.0.0:{service.port}",
        "OLLAMA_CONTEXT_LENGTH": str(service.max_model_len),
        "OLLAMA_NUM_PARALLEL": str(service.parallel_slots),
        "OLLAMA_MAX_LOADED_MODELS": "1",
        "OLLAMA_KEEP_ALIVE": "-1",  # negative: loaded for good; the default 5m would unload it between requests
        "OLLAMA_NO_CLOUD": "1",  # no remote inference or web search through the node
    }
    if service.tensor_parallel_size > 1:
        env["OLLAMA_SCHED_SPREAD"] = "1"  # every GPU of the node, as placement counted them
    if staged_models is not None:  # mounted read-only by service_launches
        env |= {"OLLAMA_MODELS": f"{staged_models}/{STAGED_DIR}", "OLLAMA_NOPRUNE": "1"}
    docker_args = [arg for name, value in env.items() for arg in ("-e", f"{name}={value}")]
    if staged_models is None:
        docker_args += ["-v", f"{cache_dir}/ollama:/root/.ollama"]
    return OllamaRun(ollama_image(), tuple(docker_args), ("serve",), f"/v1/models/{service.model}",
                     service.model if staged_models is None else "")
