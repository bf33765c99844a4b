"""`cloud: onprem`: the stack's own hosts as offers, placed with the clouds' rules, each host used once.

The hosts become offers of cloud onprem (region `onprem`): hosts with the same GPUs and price are one
instance type, as many times available as there are such hosts. Placement then runs the clouds' own
fit (memory rule, no idle GPUs) on them; what differs is that a node group takes hosts, so every way
of grouping the services is checked against how many hosts of each type there are. A host's GPUs come
from the stack (`gpu`, `gpuCount`) or, when left out, from `nvidia-smi` over SSH (infra.ssh).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import itertools
from collections import Counter
from collections.abc import Callable, Sequence

from infra import clouds
from infra.catalog import gpu_specs
from infra.config import KNOWN_HOSTS_LINE, HostConfig, StackConfig, problem
from infra.errors import Problem
from infra.placement import CloudResult, Fit, RegionPlan, ServiceNeed, _compatible, fit, partitions
from infra.plan import DeploymentPlan, Host, Offer, OnPremSite

REGION = "onprem"
OWNED = "owned"  # price_basis of a host without hourlyUsd: 0 $/h
# What `nvidia-smi` prints per GPU: its name and memory in MiB (one line each).
GPU_QUERY = "nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits"

Detector = Callable[[HostConfig], tuple[str | None, int]]  # (gpu, gpu count) of a host, or raises OSError/ValueError


def _host_names(field: str) -> list[str]:
    return field.split(",")


def _hashed_match(entry: str, label: str) -> bool:
    """OpenSSH's hashed host names: |1|base64(salt)|base64(HMAC-SHA1(salt, name))."""
    try:
        _, magic, salt, digest = entry.split("|")
        if magic != "1":
            return False
        mac = hmac.new(base64.b64decode(salt), label.encode(), hashlib.sha1).digest()
    except ValueError:
        return False
    return hmac.compare_digest(base64.b64encode(mac).decode(), digest)


def pinned_keys(address: str, port: int, known_hosts: Sequence[str]) -> list[tuple[str, str]]:
    """The (key type, base64 key) pairs that known_hosts pins for this host (`address`, or `[address]:port` off 22)."""
    label = address if port == 22 else f"[{address}]:{port}"
    keys = []
    for line in known_hosts:
        match = KNOWN_HOSTS_LINE.fullmatch(line.strip())
        if match is None:
            continue
        names = _host_names(match["hosts"])
        if any(name == label or _hashed_match(name, label) for name in names):
            keys.append((match["type"], match["key"]))
    return keys


def known_host_problem(address: str, port: int, known_hosts: Sequence[str]) -> str | None:
    """Why sshKnownHosts does not pin this host's key, or None."""
    if pinned_keys(address, port, known_hosts):
        return None
    label = address if port == 22 else f"[{address}]:{port}"
    return f"no known_hosts line for {label}: its host key would be unchecked"


def gpu_from_smi(output: str) -> tuple[str | None, int]:
    """The catalog GPU that `GPU_QUERY` output names (the spec whose name appears in it, closest in memory) and
    how many; (None, 0) for none. Raises ValueError for a GPU the catalog does not know or mixed GPUs."""
    rows = [[part.strip() for part in line.split(",")] for line in output.strip().splitlines() if line.strip()]
    if not rows:
        return None, 0
    specs = gpu_specs().values()
    found = set()
    for row in rows:
        if len(row) != 2:
            raise ValueError(f"nvidia-smi printed {','.join(row)!r}, not name,memory")
        name, memory_mib = row[0].upper().replace(" ", ""), float(row[1].split()[0])  # "46068" (nounits) or "46068 MiB"
        matching = [s for s in specs if s.name.split("-")[0].upper() in name]
        if not matching:
            raise ValueError(f"{row[0]} is not a GPU of the catalog (infra/data/gpus.csv)")
        found.add(min(matching, key=lambda s: (abs(s.memory_gb * 1024 - memory_mib), -len(s.name))).name)
    if len(found) > 1:
        raise ValueError(f"mixed GPUs ({', '.join(sorted(found))}): set gpu and gpuCount for the ones to use")
    return found.pop(), len(rows)


@dataclasses.dataclass(frozen=True)
class HostOffers:
    """The hosts as offers: one per hardware type, with the hosts (their indices in `hosts`) of each."""

    offers: tuple[Offer, ...]
    hosts: dict[str, tuple[int, ...]]  # instance type → indices in config.hosts
    problems: tuple[Problem, ...]


def _hardware(config: StackConfig, detect: Detector | None) -> tuple[list[tuple[str | None, int] | None], list[Problem]]:
    found: list[tuple[str | None, int] | None] = []
    problems = []
    for index, host in enumerate(config.hosts):
        if host.gpu_count == 0 or (host.gpu is not None and host.gpu_count is not None):
            found.append((host.gpu if host.gpu_count else None, host.gpu_count))
            continue
        field = f"hosts[{index}].{'gpu' if host.gpu is None else 'gpuCount'}"
        if detect is None:
            problems.append(problem(config.source, field, f"not given for {host.label}, and its GPUs cannot be read here",
                                    "set gpu and gpuCount, or run where the host is reachable over SSH"))
            found.append(None)
            continue
        try:
            gpu, count = detect(host)
        except (OSError, ValueError) as error:
            problems.append(problem(config.source, field, f"not given, and reading it over SSH failed: {error}",
                                    "set gpu and gpuCount"))
            found.append(None)
            continue
        if host.gpu is not None and gpu != host.gpu:
            problems.append(problem(config.source, f"hosts[{index}].gpu", f"{host.label} has {count}x {gpu}, not {host.gpu}"))
            found.append(None)
            continue
        found.append((gpu, host.gpu_count if host.gpu_count is not None else count))
    return found, problems


def host_offers(config: StackConfig, detect: Detector | None) -> HostOffers:
    """One offer per kind of host (same GPUs, same price); hosts whose GPUs are unknown are left out with a problem."""
    hardware, problems = _hardware(config, detect)
    specs = gpu_specs()
    kinds: dict[tuple[str | None, int, float], list[int]] = {}
    for index, (host, found) in enumerate(zip(config.hosts, hardware, strict=True)):
        if found is not None:
            kinds.setdefault((*found, host.hourly_usd or 0.0), []).append(index)
    priced = Counter((gpu, count) for gpu, count, _ in kinds)
    offers, members = [], {}
    for (gpu, count, hourly), indices in kinds.items():
        name = f"{count}x{gpu}" if gpu else "cpu"
        if priced[gpu, count] > 1:  # the same GPUs at other prices: each price a kind of its own
            name += "-owned" if hourly == 0 else f"-{hourly:g}usd"
        spec = specs.get(gpu) if gpu else None
        owned = all(config.hosts[i].hourly_usd is None for i in indices)
        labels = ", ".join(config.hosts[i].label for i in indices)
        offers.append(Offer(
            cloud=clouds.ONPREM.name, instance_type=name, region=REGION, gpu=gpu, gpu_count=count,
            gpu_memory_gb=spec.memory_gb if spec else 0.0, vcpus=min(config.hosts[i].vcpus or 0 for i in indices),
            memory_gb=min(config.hosts[i].memory_gb or 0.0 for i in indices), hourly_usd=hourly,
            source=f"{config.source}: hosts {labels} ({'owned, 0 $/h' if owned else 'hourlyUsd, amortised'})",
            as_of="", price_basis=OWNED if owned else "hourlyUsd", gpu_arch=spec.tei_arch if spec else None,
            compute_capability=spec.compute_capability if spec else None,
            memory_bandwidth_gbps=spec.memory_bandwidth_gbps if spec else None, bf16_tflops=spec.bf16_tflops if spec else None,
            cuda=bool(spec and spec.cuda),
        ))  # fmt: skip
        members[name] = tuple(indices)
    return HostOffers(tuple(offers), members, tuple(problems))


def _gpus(plan: RegionPlan) -> int:
    return sum(f.offer.gpu_count * replicas for f, replicas in plan.groups)


def plan_hosts(needs: Sequence[ServiceNeed], offers: Sequence[Offer], capacity: dict[str, int]) -> RegionPlan | None:
    """The cheapest grouping of the services onto the hosts (then the fewest GPUs, the fewest groups), no host used twice."""
    best: RegionPlan | None = None
    for part in partitions(needs):
        if not all(_compatible(block) for block in part):
            continue
        choices: list[list[Fit]] = []
        for block in part:
            fits = [f for o in offers if (f := fit(block, o)).feasible and f.count <= capacity[o.instance_type]]
            if not fits:
                break
            choices.append(fits)
        else:
            for combination in itertools.product(*choices):
                used = Counter()
                for chosen in combination:
                    used[chosen.offer.instance_type] += chosen.count
                if any(used[kind] > capacity[kind] for kind in used):
                    continue
                candidate = RegionPlan(clouds.ONPREM.name, REGION, tuple((f, f.count) for f in combination))
                key = (candidate.hourly_usd, _gpus(candidate), len(candidate.groups))
                if best is None or key < (best.hourly_usd, _gpus(best), len(best.groups)):
                    best = candidate
    return best


def evaluate_hosts(config: StackConfig, needs: Sequence[ServiceNeed], detect: Detector | None) -> tuple[CloudResult, HostOffers]:
    """Placement on the hosts, for `evaluate`'s by_cloud."""
    if detect is None:
        from infra.ssh import gpu_detector

        detect = gpu_detector(config)
    found = host_offers(config, detect)
    capacity = {kind: len(indices) for kind, indices in found.hosts.items()}
    plan = plan_hosts(needs, found.offers, capacity) if needs else None
    return CloudResult(clouds.ONPREM.name, REGION, plan, found.offers), found


def _host(config: HostConfig) -> Host:
    return Host(config.address, config.user, config.port)


def with_hosts(config: StackConfig, plan: DeploymentPlan, found: HostOffers) -> DeploymentPlan:
    """The plan with its hosts: each node group takes, in the stack's order, as many hosts of its type as it has
    nodes; the front gateway goes on endpointHost (default: the first host of the plan)."""
    free = {kind: list(indices) for kind, indices in found.hosts.items()}
    groups = []
    for group in plan.node_groups:
        taken = [free[group.offer.instance_type].pop(0) for _ in range(group.count)]
        groups.append(dataclasses.replace(group, hosts=tuple(_host(config.hosts[i]) for i in taken)))
    used = [h for g in groups for h in g.hosts]
    endpoint = next((_host(h) for h in config.hosts if h.address == config.endpoint_host), used[0])
    site = OnPremSite(
        endpoint_host=endpoint,
        known_hosts=tuple(config.ssh_known_hosts),
        model_source=config.model_source.path if config.model_source else None,
        image_registry=config.image_registry,
        own_load_balancer=config.own_load_balancer,
        tls=config.tls_certificate is not None,
    )
    return dataclasses.replace(plan, node_groups=tuple(groups), onprem=site)


def capacity_problems(config: StackConfig, needs: Sequence[ServiceNeed], found: HostOffers) -> list[Problem]:
    """When the services would fit on more hosts of the kinds the stack has: how many of each they need. Empty
    when they fit on no number of these hosts (then placement's diagnosis names the service and why)."""
    unlimited = plan_hosts(needs, found.offers, dict.fromkeys(found.hosts, len(needs) * 1000))
    if unlimited is None:
        return []
    used = Counter()
    for chosen, count in unlimited.groups:
        used[chosen.offer.instance_type] += count
    short = [f"{used[kind]} hosts of {kind} (the stack has {len(found.hosts[kind])})" for kind in used
             if used[kind] > len(found.hosts[kind])]
    return [problem(config.source, "hosts", f"the services need {', '.join(short)}: each host serves one node",
                    "add hosts, or lower replicas")]
