"""Placement: the cheapest feasible instances for a stack's services, per cloud and region.

For every cloud (or the configured one) and every region (or the configured one), every way of
grouping the services onto node groups is tried (each service alone, small services together,
everything on one node), each group on its cheapest fitting offer. The cheapest total wins;
`cloud: auto` takes the cheapest cloud. `place` returns the DeploymentPlan; `evaluate` also keeps
the per-cloud results the cost preview shows.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from infra import clouds, ollama
from infra.catalog import CLOUDS, CatalogError, load_offers, unknown_overrides
from infra.config import PLACEMENT_KEYS, CheckedConfig, RawConfig, ServiceConfig, StackConfig, check_config, problem
from infra.errors import ConfigError, Problem
from infra.models import (
    CPU_RAM_RESERVE_GB,
    TENSOR_PARALLEL_SIZES,
    VLLM_GPU_MEMORY_UTILIZATION,
    ModelInfo,
    checkpoint_disk_gb,
    effective_max_model_len,
    encoder_memory_gb,
    llm_memory_gb,
    model_info,
    served_dtype,
    valid_tensor_parallel,
)
from infra.node_storage import node_group
from infra.plan import DEFAULT_SPOT_POLICY, SERVICE_PORTS, Access, DeploymentPlan, NodeGroup, Offer, PlacedService, safest_policy
from infra.scaling import scaling_problems, with_scaling
from infra.sizing import best_layout, divides, idle_reason, layouts
from infra.throughput import encoder_tokens_per_second, kv_cache_tokens, mean_decode_context, replica_capacity

if TYPE_CHECKING:
    from infra.onprem import Detector

IDLE_GPUS = "GPUs idle"  # how a fit refused for idle GPUs ends its reason (a pin problem, not a size problem)
LATENCY_MISSED = "cannot meet the latency target"
MIN_VLLM_SHARE = 0.5  # below this, colocating beside vLLM starves it
MIN_COMPUTE_CAPABILITY = 7.5  # vLLM and TEI GPU images
# Clouds that can issue a certificate for `domain` by themselves (their record's managed_tls): a stack with a
# domain cannot go elsewhere.
CLOUDS_WITH_MANAGED_TLS = tuple(c.name for c in clouds.CLOUDS if c.managed_tls)
# Clouds where llm-deploy builds alarms (their record's alarms): a stack with alertEmail cannot go elsewhere.
CLOUDS_WITH_ALARMS = tuple(c.name for c in clouds.CLOUDS if c.alarms)


@dataclass(frozen=True)
class ServiceNeed:
    """A configured service with its model facts and memory need (at one GPU, or in RAM on CPU)."""

    index: int  # position in config.services, for error messages
    config: ServiceConfig
    info: ModelInfo
    max_model_len: int | None
    required_gb: float
    spot_policy: str = DEFAULT_SPOT_POLICY  # what the service asks for: its own spotPolicy, else the stack's

    @property
    def field(self) -> str:
        return f"services[{self.index}]"

    @property
    def weights_format(self) -> str:
        """What messages call the weights' format: the dtype, or an Ollama tag's quantisation."""
        return ollama.quantization(self.config.model) if self.config.engine == ollama.ENGINE else self.config.dtype

    @property
    def spot_policy_field(self) -> str:
        """The key that set its policy: the service's own `spotPolicy`, else the stack's."""
        return f"{self.field}.spotPolicy" if self.config.spot_policy else "spotPolicy"


def service_need(index: int, service: ServiceConfig, stack_spot_policy: str = DEFAULT_SPOT_POLICY) -> ServiceNeed:
    if service.engine == ollama.ENGINE:
        info = ollama.tag_info(service.model, service.params_b)
        max_len = effective_max_model_len(info, service.max_model_len)
        required = ollama.memory_gb(info, max_len, service.min_concurrency)
        return ServiceNeed(index, service, info, max_len, round(required, 1), service.spot_policy or stack_spot_policy)
    info = model_info(service.model, service.kind, service.params_b, service.dtype)
    if service.kind == "llm":
        max_len = effective_max_model_len(info, service.max_model_len)
        required = llm_memory_gb(info, service.dtype, max_len, 1, service.min_concurrency)
    else:
        max_len = None
        required = encoder_memory_gb(info, service.accelerator)
    return ServiceNeed(index, service, info, max_len, round(required, 1), service.spot_policy or stack_spot_policy)


@dataclass(frozen=True)
class Fit:
    """Services on one offer: placed services when they fit, else the reason they do not."""

    offer: Offer
    services: tuple[PlacedService, ...] | None
    reason: str
    count: int = 0  # nodes of this offer the services need (their replicas, or their load)

    @property
    def feasible(self) -> bool:
        return self.services is not None


def _gpu_reason(need: ServiceNeed, offer: Offer) -> str | None:
    """Why a GPU service cannot run on this offer at all, memory aside."""
    service = need.config
    if offer.gpu_count == 0:
        return "CPU-only instance"
    if not offer.cuda:
        return f"{offer.gpu} is not a CUDA GPU (vLLM/TEI images need NVIDIA)"
    if (offer.compute_capability or 0) < MIN_COMPUTE_CAPABILITY:
        return f"{offer.gpu} compute capability below {MIN_COMPUTE_CAPABILITY}"
    if service.kind != "llm" and offer.gpu_arch is None:
        return f"TEI has no image for {offer.gpu}"
    if service.gpu and offer.gpu != service.gpu:
        return f"{need.field} pins GPU {service.gpu}"
    if service.gpu_count and offer.gpu_count < service.gpu_count:
        return f"{need.field} pins {service.gpu_count} GPUs"
    return None


def replicas_for(need: ServiceNeed, offer: Offer, tensor_parallel: int, share: float = VLLM_GPU_MEMORY_UTILIZATION) -> tuple[int, float]:
    """Replicas the service needs on this hardware (at least `replicas`) and requests/s per replica (0: no load;
    replicas 0: this hardware cannot meet the service's latency target)."""
    load, minimum = need.config.load, need.config.replicas
    if load is None:
        return minimum, 0.0
    if need.config.kind != "llm":
        capacity = encoder_tokens_per_second(need.info, offer, need.config.accelerator) / load.tokens_per_request
    elif need.config.engine == ollama.ENGINE:
        assert load.prompt_tokens and load.output_tokens, "config validation requires them for an llm's load"
        capacity = ollama.tokens_per_second(need.info, offer, mean_decode_context(load.prompt_tokens, load.output_tokens)) / load.output_tokens
    else:
        assert load.prompt_tokens and load.output_tokens, "config validation requires them for an llm's load"
        latency = need.config.latency
        kv_tokens = kv_cache_tokens(need.info, need.config.dtype, offer, tensor_parallel, share)
        capacity = replica_capacity(need.info, need.config.dtype, offer, tensor_parallel, kv_tokens, load.prompt_tokens,
                                    load.output_tokens, latency and latency.time_to_first_token_ms,
                                    latency and latency.time_per_output_token_ms).requests_per_second
    if capacity <= 0:
        return 0, 0.0
    return max(minimum, math.ceil(load.requests_per_second / capacity - 1e-9)), capacity


def _place_llm(need: ServiceNeed, offer: Offer, encoder_gb: float) -> tuple[PlacedService | None, int, str]:
    """The layout (tensor-parallel size × replicas per node, every GPU used) that needs the fewest nodes,
    beside the encoders on GPU 0; the nodes it needs, or the reason nothing fits."""
    share = math.floor((VLLM_GPU_MEMORY_UTILIZATION - encoder_gb / offer.gpu_memory_gb) * 100) / 100
    if share < MIN_VLLM_SHARE:
        return None, 0, "no room for the LLM beside the other services"
    pinned = need.config.gpu_count
    sizes = [pinned] if pinned else list(TENSOR_PARALLEL_SIZES)
    if pinned and not divides(offer.gpu_count, pinned):
        return None, 0, f"{offer.gpu_count}x {offer.gpu}: {pinned} per replica leave {IDLE_GPUS}"

    def memory(tp: int) -> float:
        return llm_memory_gb(need.info, need.config.dtype, need.max_model_len, tp, need.config.min_concurrency)

    def fits(tp: int) -> bool:
        return valid_tensor_parallel(need.info, tp) and memory(tp) <= tp * offer.gpu_memory_gb * share

    in_memory = layouts(offer.gpu_count, sizes, fits, lambda tp: replicas_for(need, offer, tp, share))
    if not in_memory:
        usable = offer.gpu_count * offer.gpu_memory_gb * share
        return None, 0, f"needs {need.required_gb} GB GPU memory, {usable:.0f} GB usable on {offer.gpu_count}x {offer.gpu}"
    candidates = [layout for layout in in_memory if layout.replicas > 0]
    if not candidates:
        return None, 0, f"{LATENCY_MISSED} on {offer.gpu}, even one sequence at a time"
    chosen = best_layout(candidates, pinned=bool(need.config.gpu or need.config.gpu_count))
    if chosen is None:
        return None, 0, idle_reason(candidates, offer.gpu_count, offer.gpu or "")
    tp = chosen.tensor_parallel
    placed = PlacedService(
        name=need.config.name,
        kind="llm",
        model=need.config.model,
        dtype=served_dtype(need.info, need.config.dtype) or need.config.dtype,
        accelerator="gpu",
        port=SERVICE_PORTS["llm"],
        required_gpu_memory_gb=round(memory(tp), 1),
        tensor_parallel_size=tp,
        max_model_len=need.max_model_len,
        gpu_memory_utilization=share,
        replicas_per_node=chosen.per_node,
    )
    return placed, chosen.nodes, ""


def _place_ollama(need: ServiceNeed, offer: Offer, encoder_gb: float) -> tuple[PlacedService | None, int, str]:
    """One Ollama server per node, on the node's RAM (CPU) or spread over all of its GPUs (none idle); the nodes it
    needs, or the reason it does not fit. Encoders on a GPU node share GPU 0's memory with it."""
    if offer.gpu_count and (reason := ollama.fits_gpus(need.required_gb + encoder_gb, offer)):
        return None, 0, reason
    nodes, _ = replicas_for(need, offer, 1)
    if nodes == 0:
        return None, 0, "no throughput estimate for this hardware"
    placed = PlacedService(
        name=need.config.name,
        kind="llm",
        model=need.config.model,
        dtype=need.weights_format,  # the GGUF file's format, the tag's
        accelerator=need.config.accelerator,
        port=SERVICE_PORTS["llm"],
        required_gpu_memory_gb=need.required_gb,
        tensor_parallel_size=offer.gpu_count,
        max_model_len=need.max_model_len,
        engine=ollama.ENGINE,
        parallel_slots=need.config.min_concurrency,
    )
    return placed, nodes, ""


def _encoder(need: ServiceNeed) -> PlacedService:
    on_gpu = need.config.accelerator == "gpu"
    return PlacedService(
        name=need.config.name,
        kind=need.config.kind,
        model=need.config.model,
        dtype=need.config.dtype,
        accelerator=need.config.accelerator,
        port=SERVICE_PORTS[need.config.kind],
        required_gpu_memory_gb=need.required_gb,
        tensor_parallel_size=1 if on_gpu else 0,
    )


def spot_reason(needs: Sequence[ServiceNeed], offer: Offer) -> str | None:
    """Why nodes of this offer cannot be rented the way these services ask (their safest spotPolicy), or None."""
    policy = safest_policy([n.spot_policy for n in needs])
    if policy == DEFAULT_SPOT_POLICY:
        return None
    refused = clouds.get(offer.cloud).spot_problem(offer.instance_type)
    return f"spotPolicy {policy}: {refused}" if refused else None


def fit(needs: Sequence[ServiceNeed], offer: Offer) -> Fit:
    """Can these services share instances of this offer, and how many nodes do they need?"""
    if reason := spot_reason(needs, offer):
        return Fit(offer, None, reason)
    encoders = [n for n in needs if n.config.kind != "llm"]
    encoder_gb = sum(n.required_gb for n in encoders)
    encoder_nodes = max((replicas_for(n, offer, 1)[0] for n in encoders), default=0)
    if any(replicas_for(n, offer, 1)[0] == 0 for n in encoders):
        return Fit(offer, None, "no throughput estimate for this hardware")
    llm = next((n for n in needs if n.config.kind == "llm"), None)
    if needs[0].config.accelerator == "cpu":
        if offer.gpu_count:
            return Fit(offer, None, "GPU instance (service runs on CPU)")
        usable = offer.memory_gb - CPU_RAM_RESERVE_GB
        ram_gb = sum(n.required_gb for n in needs)  # on CPU an LLM is an Ollama server, in RAM beside the encoders
        if ram_gb > usable:
            return Fit(offer, None, f"needs {ram_gb:.1f} GB RAM, {usable:.0f} GB usable")
        if llm is None:
            return Fit(offer, tuple(_encoder(n) for n in needs), "", encoder_nodes)
        placed, nodes, reason = _place_ollama(llm, offer, 0.0)
        if placed is None:
            return Fit(offer, None, reason)
        return Fit(offer, tuple(placed if n is llm else _encoder(n) for n in needs), "", max(nodes, encoder_nodes))
    for need in needs:
        reason = _gpu_reason(need, offer)
        if reason:
            return Fit(offer, None, reason)
    if llm is None:
        usable = offer.gpu_memory_gb * VLLM_GPU_MEMORY_UTILIZATION
        if offer.gpu_count > 1:
            return Fit(offer, None, f"{offer.gpu_count}x {offer.gpu}: the encoders use one, {offer.gpu_count - 1} {IDLE_GPUS}")
        if encoder_gb > usable:
            return Fit(offer, None, f"needs {encoder_gb:.1f} GB GPU memory, {usable:.0f} GB usable on one {offer.gpu}")
        return Fit(offer, tuple(_encoder(n) for n in needs), "", encoder_nodes)
    placed, nodes, reason = (_place_ollama if llm.config.engine == ollama.ENGINE else _place_llm)(llm, offer, encoder_gb)
    if placed is None:
        return Fit(offer, None, reason)
    return Fit(offer, tuple(placed if n is llm else _encoder(n) for n in needs), "", max(nodes, encoder_nodes))


def partitions(items: Sequence[ServiceNeed]) -> Iterator[list[list[ServiceNeed]]]:
    """Every way to split the services into node groups (Bell number: 5 for three services)."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in partitions(rest):
        yield [[first], *part]
        for i, block in enumerate(part):
            yield [*part[:i], [first, *block], *part[i + 1 :]]


def _compatible(block: list[ServiceNeed]) -> bool:
    """Services share nodes only when they run on the same kind of hardware (the group has as many nodes as
    its neediest service; the others run one replica on each)."""
    return len({n.config.accelerator for n in block}) == 1


@dataclass(frozen=True)
class RegionPlan:
    cloud: str
    region: str
    groups: tuple[tuple[Fit, int], ...]  # (fit, replicas) per node group

    @property
    def hourly_usd(self) -> float:
        return round(sum(f.offer.hourly_usd * replicas for f, replicas in self.groups), 6)


FitMemo = dict[tuple, tuple[tuple[PlacedService, ...] | None, str, int]]


def _fitted(block: Sequence[ServiceNeed], ids: tuple[int, ...], offer: Offer,
            memo: FitMemo) -> tuple[tuple[PlacedService, ...] | None, str, int]:
    """`fit` depends on an offer's hardware, not on its region or price: worked out once per instance type."""
    key = (ids, offer.cloud, offer.instance_type, offer.gpu, offer.gpu_count, offer.gpu_memory_gb, offer.memory_gb)
    if key not in memo:
        fitted = fit(block, offer)
        memo[key] = (fitted.services, fitted.reason, fitted.count)
    return memo[key]


def cheapest_fit(block: Sequence[ServiceNeed], offers: Sequence[Offer], memo: FitMemo | None = None) -> Fit | None:
    memo = {} if memo is None else memo
    ids = tuple(n.index for n in block)
    fits = [(offer, fitted) for offer in offers if (fitted := _fitted(block, ids, offer, memo))[0] is not None]
    if not fits:
        return None
    offer, fitted = min(fits, key=lambda f: (f[0].hourly_usd * f[1][2], f[0].instance_type))
    return Fit(offer, *fitted)


def plan_region(needs: Sequence[ServiceNeed], cloud: str, region: str, offers: Sequence[Offer],
                memo: FitMemo | None = None) -> RegionPlan | None:
    """The cheapest grouping of the services onto offers of one region; None when none fits."""
    best: RegionPlan | None = None
    for part in partitions(needs):
        if not all(_compatible(block) for block in part):
            continue
        groups = []
        for block in part:
            chosen = cheapest_fit(block, offers, memo)
            if chosen is None:
                break
            groups.append((chosen, chosen.count))
        else:
            candidate = RegionPlan(cloud, region, tuple(groups))
            if best is None or (candidate.hourly_usd, len(candidate.groups)) < (best.hourly_usd, len(best.groups)):
                best = candidate
    return best


@dataclass(frozen=True)
class CloudResult:
    cloud: str
    region: str | None  # the region its best plan uses (or the one configured)
    plan: RegionPlan | None
    offers: tuple[Offer, ...]  # that region's offers (the cost preview's options)


@dataclass(frozen=True)
class Evaluation:
    config: StackConfig
    needs: tuple[ServiceNeed, ...]
    by_cloud: dict[str, CloudResult]
    plan: DeploymentPlan | None
    problems: tuple[Problem, ...]


def _regions(offers: Sequence[Offer], cloud: str) -> list[str]:
    """A cloud's regions in catalog order: the first listed is preferred when prices tie."""
    return list(dict.fromkeys(o.region for o in offers if o.cloud == cloud))


def _evaluate_cloud(config: StackConfig, needs: Sequence[ServiceNeed], cloud: str, region: str | None,
                    offers: Sequence[Offer]) -> CloudResult:
    regions = [region] if region else _regions(offers, cloud)
    if (config.domain and cloud not in CLOUDS_WITH_MANAGED_TLS) or (config.alert_email and cloud not in CLOUDS_WITH_ALARMS):
        regions = []
    if config.cloud == "auto" and any(s.autoscaled for s in config.services) and not clouds.get(cloud).autoscaling:
        regions = []  # maxReplicas: `auto` picks among clouds whose record says they autoscale (config refuses a named other)
    memo: FitMemo = {}
    plans = [
        p
        for r in regions
        if (p := plan_region(needs, cloud, r, [o for o in offers if o.cloud == cloud and o.region == r], memo)) is not None
    ]
    best = min(plans, key=lambda p: (p.hourly_usd, len(p.groups)), default=None)
    shown = best.region if best else (regions[0] if regions else None)
    return CloudResult(cloud, shown, best, tuple(o for o in offers if o.cloud == cloud and o.region == shown))


def _group_names(groups: Sequence[Sequence[PlacedService]]) -> list[str]:
    """DNS-safe names, unique in the plan: the services' names joined ([ab, cd] and [ab-cd] both give
    "ab-cd", so a later repeat gets "-2", "-3", ...)."""
    names: list[str] = []
    for services in groups:
        base = "-".join(s.name for s in services)[:40].rstrip("-")
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base[: 40 - len(str(n)) - 1].rstrip('-')}-{n}"
        names.append(name)
    return names


def _grace(group: NodeGroup) -> int:
    assert group.boot is not None, "node_group estimates every boot"
    return group.boot.grace_seconds


def fallback_offers(needs: Sequence[ServiceNeed], group: NodeGroup, checkpoints: Sequence[float],
                    offers: Sequence[Offer]) -> tuple[Offer, ...]:
    """The offers a component may launch for `group` when its own has no capacity: the same cloud and region,
    the same GPU model and count (CPU groups: no GPU), at least its vCPUs and RAM, on which `fit` places the
    same services on as many nodes with the same disk, so the group's one user-data serves them all, and whose
    estimated boot stays within the group's health-check grace (the rollout's time-to-healthy bound).
    Cheapest first (on-demand price), the group's own offer left out."""
    primary = group.offer
    same_kind = [o for o in offers if (o.cloud, o.region, o.gpu, o.gpu_count) == (primary.cloud, primary.region, primary.gpu,
                                                                                   primary.gpu_count)
                 and o.instance_type != primary.instance_type and o.vcpus >= primary.vcpus and o.memory_gb >= primary.memory_gb]
    served = []
    for offer in same_kind:
        fitted = fit(needs, offer)
        if fitted.services != group.services or fitted.count != group.count:
            continue
        other = node_group(group.name, offer, group.count, group.services, checkpoints)
        if other.disk_gb == group.disk_gb and _grace(other) <= _grace(group):  # same disks, healthy within the group's bound
            served.append(offer)
    return tuple(sorted(served, key=lambda o: (o.hourly_usd, o.instance_type)))


def to_deployment_plan(config: StackConfig, needs: Sequence[ServiceNeed], chosen: RegionPlan,
                       offers: Sequence[Offer] = ()) -> DeploymentPlan:
    """The plan of the chosen placement: per node group its offer, services and disks, its spot policy (the
    safest its services ask for), its image pin, and its fallback offers among `offers`."""
    by_name = {n.config.name: n for n in needs}
    order = {n.config.name: n.index for n in needs}
    fits = sorted(chosen.groups, key=lambda g: min(order[s.name] for s in g[0].services or ()))
    groups = []
    for (fitted, replicas), name in zip(fits, _group_names([f.services or () for f, _ in fits]), strict=True):
        services = fitted.services or ()
        block = [by_name[s.name] for s in services]
        checkpoints = [checkpoint_disk_gb(n.info) for n in block]
        group = node_group(name, fitted.offer, replicas, services, checkpoints)
        groups.append(dataclasses.replace(group, spot_policy=safest_policy([n.spot_policy for n in block]),
                                          fallback_offers=fallback_offers(block, group, checkpoints, offers),
                                          image=config.node_images.get(name)))
    return with_scaling(config, needs, DeploymentPlan(
        stack=config.stack,
        cloud=chosen.cloud,
        region=chosen.region,
        node_groups=tuple(groups),
        access=Access(tuple(config.allowed_cidrs), tuple(config.ssh_cidrs), config.domain, tuple(config.ssh_public_keys)),
        has_hf_token=config.hf_token is not None,
        source=config.source,
        alert_email=config.alert_email,
        rollout_batch_size=config.rollout.batch_size,
    ))


def image_problems(config: StackConfig, plan: DeploymentPlan, whole: bool = True) -> list[Problem]:
    """`nodeImages` entries that name no node group of the plan, or hold what is not an image id of its cloud.
    On part of a stack that places otherwise (`whole` False: a service or a key that shapes the groups left out)
    its groups and, unless `cloud` is set, its cloud are another stack's: only what can be judged is."""
    names = [g.name for g in plan.node_groups]
    cloud = clouds.get(plan.cloud)
    problems = []
    for group, image in config.node_images.items():
        field = f"nodeImages.{group}"
        if whole and group not in names:
            problems.append(problem(config.source, field, f"names no node group of the plan (its groups: {', '.join(names)})",
                                    "`llm-deploy images` lists them"))
        elif (whole or config.cloud == plan.cloud) and (wrong := cloud.image_id_problem(image)):
            problems.append(problem(config.source, field, wrong))
    return problems


def _diagnose(config: StackConfig, needs: Sequence[ServiceNeed], offers: Sequence[Offer], clouds: Sequence[str],
              together: bool = True) -> list[Problem]:
    """Name the fields that make the stack impossible to place; `together`: `needs` are all the stack's
    services, so when each fits somewhere alone, the problem is placing them together."""
    src = config.source
    if config.domain and not set(clouds) & set(CLOUDS_WITH_MANAGED_TLS):
        return [problem(src, "domain", f"TLS for {config.domain} needs a certificate that {'/'.join(clouds)} cannot issue by itself",
                        f"remove domain (plain HTTP endpoint) or deploy on {' or '.join(CLOUDS_WITH_MANAGED_TLS)}")]
    if config.alert_email and not set(clouds) & set(CLOUDS_WITH_ALARMS):
        return [problem(src, "alertEmail", f"llm-deploy builds no alarms on {'/'.join(clouds)}, so nothing would send to {config.alert_email}",
                        f"remove alertEmail (scrape /metrics/<service> with your own Prometheus) or deploy on {' or '.join(CLOUDS_WITH_ALARMS)}")]
    scoped = [o for o in offers if o.cloud in clouds]
    if config.region and not any(o.region == config.region for o in scoped):
        known = ", ".join(sorted({o.region for o in scoped}))
        return [problem(src, "region", f"{config.region!r} is not a region of {'/'.join(clouds)} in the catalog (known: {known})")]
    problems = []
    for need in needs:
        anywhere = [o for o in scoped if fit([need], o).feasible]
        if anywhere and config.region and not any(o.region == config.region for o in anywhere):
            regions = ", ".join(sorted({o.region for o in anywhere}))
            problems.append(
                problem(src, "region", f"{config.region} has no offer that can serve {need.field} ({need.config.model}, "
                        f"{need.required_gb} GB); offered in: {regions}")
            )
        elif not anywhere:
            found = _unplaceable(src, need, scoped, clouds)
            if not any(p.field == found.field == "spotPolicy" for p in problems):  # the stack's key: said once for all services
                problems.append(found)
    if not problems and together:
        problems.append(
            problem(src, "region" if config.region else "cloud",
                    "no single region offers instances for all services together; pin fewer GPUs or choose another cloud")
        )
    return problems


def _cheapest_with(need: ServiceNeed, offers: Sequence[Offer], **pins: object) -> Fit | None:
    """The cheapest fit of the service with its pins changed (None: no pin)."""
    changed = service_need(need.index, need.config.model_copy(update=pins), need.spot_policy)
    return cheapest_fit([changed], offers)


def _idle_pin(source: str, need: ServiceNeed, offers: Sequence[Offer]) -> Problem | None:
    """A pin refused because every instance it allows would pay for idle GPUs: the pin named, and what to do instead."""
    service = need.config
    refused = [f for f in (fit([need], o) for o in offers) if f.reason.endswith(IDLE_GPUS)]
    if not (service.gpu or service.gpu_count) or not refused or any(fit([need], o).feasible for o in offers):
        return None
    field = f"{need.field}.gpuCount" if service.gpu_count else f"{need.field}.gpu"
    pin = f"{service.gpu_count or 'any number of'} {service.gpu or 'GPU'}s per replica"
    example = min(refused, key=lambda f: (f.offer.hourly_usd, f.offer.instance_type))
    options = []
    for count in TENSOR_PARALLEL_SIZES if service.gpu_count else ():
        if count != service.gpu_count and (other := _cheapest_with(need, offers, gpu_count=count)):
            options.append(f"gpuCount: {count} ({other.count}x {other.offer.instance_type}, {other.offer.hourly_usd * other.count:.2f} $/h)")
    if service.gpu_count and example.offer.gpu_count % service.gpu_count == 0:
        fill = example.offer.gpu_count // service.gpu_count
        options.append(f"replicas: {fill} (1x {example.offer.instance_type}, {example.offer.hourly_usd:.2f} $/h)")
    if (unpinned := _cheapest_with(need, offers, gpu=None, gpu_count=None)) is not None:
        options.append(f"no gpu/gpuCount ({unpinned.count}x {unpinned.offer.instance_type}, "
                       f"{unpinned.offer.hourly_usd * unpinned.count:.2f} $/h)")
    return problem(source, field, f"{pin} leave GPUs paid for and idle: {example.offer.instance_type} {example.reason}",
                   f"instead: {', '.join(options) or 'raise replicas to fill the instance'}")


def _spot_refused(source: str, need: ServiceNeed, offers: Sequence[Offer], where: str) -> Problem | None:
    """The service's spotPolicy, named, when it fits on-demand but no offer it fits can be rented as spot
    (the cheapest of them says why)."""
    if need.spot_policy == DEFAULT_SPOT_POLICY:
        return None
    on_demand = dataclasses.replace(need, spot_policy=DEFAULT_SPOT_POLICY)
    fitting = [o for o in offers if fit([on_demand], o).feasible]
    if not fitting:
        return None
    cheapest = min(fitting, key=lambda o: (o.hourly_usd, o.instance_type))
    refused = clouds.get(cheapest.cloud).spot_problem(cheapest.instance_type)
    return problem(source, need.spot_policy_field, f"{need.spot_policy}: no {where} offer that fits can be rented as spot: {refused}",
                   "set spotPolicy: on-demand, or deploy on a cloud that rents spot")


def _counts_that_fit(need: ServiceNeed, offers: Sequence[Offer]) -> list[int]:
    """The GPU counts the service fits on (each offer's smallest), were its gpuCount not pinned."""
    free = dataclasses.replace(need, config=need.config.model_copy(update={"gpu_count": None}))
    fits = [f for f in (fit([free], o) for o in offers) if f.services]
    return sorted({f.services[0].tensor_parallel_size for f in fits if f.services and f.services[0].tensor_parallel_size})


def _unplaceable(source: str, need: ServiceNeed, offers: Sequence[Offer], clouds: Sequence[str]) -> Problem:
    """The real cause: a pin that would leave GPUs idle, a latency no instance meets, no instance type of the kind asked
    for at all, or none big enough."""
    service = need.config
    where = "/".join(clouds)
    if spot := _spot_refused(source, need, offers, where):
        return spot
    if idle := _idle_pin(source, need, offers):
        return idle
    if service.latency and any(fit([need], o).reason.startswith(LATENCY_MISSED) for o in offers):
        target = ", ".join(f"{k} {v:g}" for k, v in service.latency.model_dump(by_alias=True, exclude_none=True).items())
        return problem(source, f"{need.field}.latency", f"no {where} instance type in the catalog meets {target} for "
                       f"{service.model} even one sequence at a time; relax the target or use a smaller model")
    if service.gpu:
        pinned = [o for o in offers if o.gpu == service.gpu]
        if not pinned:
            return problem(source, f"{need.field}.gpu", f"no {service.gpu} instance type for {where} in the catalog")
        counts = _counts_that_fit(need, pinned) if service.gpu_count else []
        if counts:  # the GPU would do: the count pinned is what is too small
            return problem(source, f"{need.field}.gpuCount", f"{service.gpu_count}x {service.gpu} cannot hold {service.model}: "
                           f"it needs {need.required_gb} GB ({need.weights_format})", f"valid: {', '.join(map(str, counts))}")
        largest = max(o.total_gpu_memory_gb for o in pinned)
        return problem(source, f"{need.field}.gpu", f"{service.gpu} cannot hold {service.model}: it needs {need.required_gb} GB "
                       f"({need.weights_format}), the largest {service.gpu} instance has {largest:.0f} GB")
    if service.accelerator == "cpu":
        cpu = [o for o in offers if o.gpu_count == 0]
        if not cpu:
            return problem(source, f"{need.field}.accelerator", f"no CPU instance type for {where} in the catalog")
        largest = max(o.memory_gb for o in cpu)
        return problem(source, f"{need.field}.model", f"needs {need.required_gb} GB RAM; the largest CPU instance type for {where} "
                       f"in the catalog has {largest:.0f} GB")
    if not any(o.cuda for o in offers):
        return problem(source, f"{need.field}.accelerator", f"no CUDA GPU instance type for {where} in the catalog")
    largest = max((o.total_gpu_memory_gb for o in offers if o.cuda), default=0)
    return problem(source, f"{need.field}.model", f"{service.model} needs {need.required_gb} GB GPU memory at {need.weights_format} "
                   f"(weights + KV cache + overhead) on one instance; the largest instance in the catalog has {largest:.0f} GB. "
                   "Use a smaller dtype (fp8/int4) or a multi-node setup outside llm-deploy")


def priced_offers(config: StackConfig, catalog_file: str | None = None) -> tuple[tuple[Offer, ...], list[Problem]]:
    """The stack's offers (its catalogFile, or `catalog_file`) with every priceOverride that names one
    of them, and a `priceOverrides` problem for those that do not.

    Raises ConfigError (field `catalogFile`) when the catalog cannot be read.
    """
    catalog = catalog_file or config.catalog_file
    try:
        offers = load_offers(catalog)
        unknown = unknown_overrides(offers, config.price_overrides)
        known = {key: price for key, price in config.price_overrides.items() if key not in unknown}
        offers = load_offers(catalog, known) if known else offers
    except CatalogError as exc:  # the catalog's own problem (file, line, column) is what is wrong with catalogFile
        where = dataclasses.replace(exc.problem, hint=None)
        raise ConfigError([problem(config.source, "catalogFile", str(where), exc.problem.hint)]) from None
    return offers, [problem(config.source, "priceOverrides", f"{', '.join(unknown)} not in the catalog")] if unknown else []


def stack_offers(config: StackConfig, catalog_file: str | None = None) -> tuple[Offer, ...]:
    """The stack's offers with its priceOverrides. Raises ConfigError naming `catalogFile` or `priceOverrides`."""
    offers, problems = priced_offers(config, catalog_file)
    if problems:
        raise ConfigError(problems)
    return offers


def _pin_problems(source: str, need: ServiceNeed, offers: Sequence[Offer]) -> list[Problem]:
    """A gpuCount pin that no tensor-parallel size or no instance type of the catalog can honour, named
    as the pin with the values that would be valid."""
    service = need.config
    count = service.gpu_count
    if count is None or service.accelerator == "cpu":
        return []
    if service.kind == "llm":
        valid = [n for n in TENSOR_PARALLEL_SIZES if valid_tensor_parallel(need.info, n)]
        if count not in valid:
            return [problem(source, f"{need.field}.gpuCount", f"no {count}-GPU tensor-parallel size for {service.model}",
                            f"valid: {', '.join(map(str, valid))}")]
    kind = [o for o in offers if o.cuda and (service.gpu is None or o.gpu == service.gpu)]
    if kind and not any(o.gpu_count >= count for o in kind):
        counts = ", ".join(map(str, sorted({o.gpu_count for o in kind})))
        return [problem(source, f"{need.field}.gpuCount", f"no instance type with {count} {service.gpu or 'CUDA'} GPUs in the catalog",
                        f"offered: {counts}")]
    return []


def evaluate(config: StackConfig, positions: Sequence[int] | None = None, whole: bool = True,
             detect: Detector | None = None) -> Evaluation:
    """Place the stack on every cloud (for the comparison) and choose per `config.cloud`; on `cloud: onprem`
    also on its hosts (infra.onprem), `detect` reading the GPUs of a host that does not name them.

    `positions` are the services' indices in the stack file when `config` holds only some of them
    (load_config's partial stack), so problems name the right `services[i]`; `whole` False: that part places
    otherwise than the whole stack, so the checks of the whole plan (nodeImages' group names) are left out. Problems come back in
    `Evaluation.problems`, every one found; raises ConfigError only when the catalog cannot be read.
    """
    offers, problems = priced_offers(config)
    indices = range(len(config.services)) if positions is None else positions
    needs = tuple(service_need(i, s, config.spot_policy) for i, s in zip(indices, config.services, strict=True))
    by_cloud = {}
    for cloud in CLOUDS:
        region = config.region if config.region in _regions(offers, cloud) else None
        if config.region and region is None and config.cloud == cloud:
            region = config.region
        by_cloud[cloud] = _evaluate_cloud(config, needs, cloud, region, offers)
    hosted = None
    if config.cloud in (c.name for c in clouds.HOSTED):
        from infra.onprem import evaluate_hosts  # it builds on this module

        by_cloud[config.cloud], hosted = evaluate_hosts(config, needs, detect)
        offers, problems = (*offers, *hosted.offers), [*problems, *hosted.problems]
    targets = list(CLOUDS) if config.cloud == "auto" else [config.cloud]
    if config.cloud == "auto" and config.region:
        targets = [c for c in targets if config.region in _regions(offers, c)] or targets
    scoped = [o for o in offers if o.cloud in targets]
    pins = {need.index: found for need in needs if (found := _pin_problems(config.source, need, scoped))}
    problems += [p for found in pins.values() for p in found]
    feasible = [by_cloud[c].plan for c in targets if by_cloud[c].plan is not None]
    chosen = min(feasible, key=lambda p: (p.hourly_usd, targets.index(p.cloud)), default=None)
    if chosen is None or pins:
        others = [n for n in needs if n.index not in pins]
        short: list[Problem] = []
        if hosted is not None and not pins:  # the stack's own hosts: too few of them, or no number would do
            from infra.onprem import capacity_problems

            short = capacity_problems(config, others, hosted)
        problems += short or _diagnose(config, others, offers, targets, together=not pins)
        return Evaluation(config, needs, by_cloud, None, tuple(problems))
    # The stack's own hosts are no capacity to fall back on: each is placed once.
    alike = [] if hosted is not None else [o for o in offers if o.cloud == chosen.cloud and o.region == chosen.region]
    plan = to_deployment_plan(config, needs, chosen, alike)
    problems += image_problems(config, plan, whole)
    if hosted is not None:
        from infra.onprem import with_hosts

        plan = with_hosts(config, plan, hosted)
    problems += scaling_problems(config, needs, plan)
    if config.budget_usd_per_hour is not None and plan.hourly_usd > config.budget_usd_per_hour:
        problems.append(
            problem(config.source, "budgetUsdPerHour", f"the cheapest placement costs {plan.hourly_usd:.2f} $/h "
                    f"({', '.join(g.offer.instance_type for g in plan.node_groups)}), over the budget of {config.budget_usd_per_hour:.2f} $/h")
        )
    return Evaluation(config, needs, by_cloud, plan, tuple(problems))


def place(config: StackConfig) -> DeploymentPlan:
    """The stack's DeploymentPlan.

    Raises ConfigError with every problem that prevents one (each naming its field), or that the
    cheapest one breaks (budgetUsdPerHour, priceOverrides).
    """
    result = evaluate(config)
    if result.problems:
        raise ConfigError(result.problems)
    assert result.plan is not None
    return result.plan


# Keys whose values shape the plan's node groups (what they are named, where they run).
PLAN_SHAPING_KEYS = (*PLACEMENT_KEYS, "priceOverrides", "domain", "spotPolicy")


def _same_plan(checked: CheckedConfig) -> bool:
    """Whether the valid part of the stack places as the whole stack would: no problem in a key that shapes the
    node groups (a service with a problem is left out; a wrong `rollout` changes no group)."""
    at_fault = {re.split(r"[.\[]", p.field, maxsplit=1)[0] for p in checked.problems}
    return not at_fault & set(PLAN_SHAPING_KEYS)


def load_config(raw: RawConfig) -> StackConfig:
    """The validated stack. Raises ConfigError with every problem of the file in one go: the config's
    own and, for whatever part of it is valid, the services and keys placement would refuse (a pin, a
    price override, a model too large), so a file with six mistakes takes one run, not five.
    """
    checked = check_config(raw)
    if not checked.problems:
        assert checked.partial is not None
        return checked.partial
    problems = list(checked.problems)
    if checked.partial is not None:
        placement = evaluate(checked.partial, checked.positions, _same_plan(checked)).problems
        # the budget is judged on the whole stack only: on part of it, the price would be another stack's
        problems += [p for p in placement if checked.complete or p.field != "budgetUsdPerHour"]
    raise ConfigError(problems)
