"""The deployment plan: the one value that placement produces and bootstrap and components consume.

Plain frozen dataclasses, no Pulumi and no pydantic: the plan is data that every later stage reads
and none mutates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from infra.schedule import Schedule

HOURS_PER_MONTH = 730

# Local ports of the services on a node; the gateway listens on GATEWAY_PORT and routes to these.
GATEWAY_PORT = 80
SERVICE_PORTS = {"llm": 8000, "embedding": 8080, "rerank": 8081}

# Request paths the gateway (and path-routing load balancers) send to each service kind.
SERVICE_PATHS = {
    "llm": ("/v1/chat/completions", "/v1/completions", "/v1/models"),
    "embedding": ("/v1/embeddings", "/embed"),
    "rerank": ("/rerank",),
}
HEALTH_PATH = "/healthz"

# How a node group rents its nodes, safest first: `on-demand`; `auto`, spot with on-demand fallback; `spot` only.
# A node group whose services ask for different policies takes the safest of them (`safest_policy`).
SPOT_POLICIES = ("on-demand", "auto", "spot")
DEFAULT_SPOT_POLICY = "on-demand"


def safest_policy(policies: tuple[str, ...] | list[str]) -> str:
    """The policy a node group runs when its services ask for these: on-demand beats auto beats spot."""
    return min(policies, key=SPOT_POLICIES.index, default=DEFAULT_SPOT_POLICY)


@dataclass(frozen=True)
class Offer:
    """One rentable instance type in one region, with the facts placement and bootstrap need."""

    cloud: str
    instance_type: str
    region: str
    gpu: str | None  # GPU model ("H100"); None for a CPU-only instance
    gpu_count: int
    gpu_memory_gb: float  # per GPU
    vcpus: int
    memory_gb: float
    hourly_usd: float
    source: str
    as_of: str
    spot_hourly_usd: float | None = None  # the region's spot price, where sourced
    list_hourly_usd: float | None = None  # the provider's list price when hourly_usd is another (price_basis)
    price_basis: str = "list"  # "list" | "specified" (the project's cost table) | "lowest-across-regions"
    gpu_arch: str | None = None  # TEI image flavour: "86", "89", "hopper", "ampere80", "turing"
    compute_capability: float | None = None
    memory_bandwidth_gbps: float | None = None  # per GPU, GB/s
    bf16_tflops: float | None = None  # per GPU, dense
    cuda: bool = False  # NVIDIA CUDA GPU (vLLM and TEI images need it)

    @property
    def total_gpu_memory_gb(self) -> float:
        return self.gpu_count * self.gpu_memory_gb

    @property
    def monthly_usd(self) -> float:
        return round(self.hourly_usd * HOURS_PER_MONTH, 2)


@dataclass(frozen=True)
class PlacedService:
    """A service as it will run on a node: model, runtime flags and local port."""

    name: str
    kind: str  # "llm" | "embedding" | "rerank"
    model: str  # HuggingFace id
    dtype: str
    accelerator: str  # "gpu" | "cpu"
    port: int
    required_gpu_memory_gb: float  # per replica, all its GPUs together (RAM on CPU)
    tensor_parallel_size: int = 1  # GPUs the service spans on its node (0 on CPU)
    max_model_len: int | None = None  # llm only
    gpu_memory_utilization: float | None = None  # llm only: vLLM's share of each GPU
    replicas_per_node: int = 1  # llm: vLLM servers on each node, each on its own tensor_parallel_size GPUs
    engine: str = "vllm"  # llm: "vllm" | "ollama" (encoders: TEI)
    parallel_slots: int = 1  # ollama: requests it decodes at once (OLLAMA_NUM_PARALLEL), each with max_model_len of KV cache

    @property
    def publishes_metrics(self) -> bool:
        """vLLM and TEI serve Prometheus `/metrics`; Ollama has no such route."""
        return self.engine != "ollama"

    @property
    def paths(self) -> tuple[str, ...]:
        return SERVICE_PATHS[self.kind]

    @property
    def instances(self) -> tuple[tuple[str, int], ...]:
        """(name, local port) of each server of this service on a node: its own name and port first, then
        `<name>-replica-2` on the next port, ... (the gateway balances a kind over them)."""
        return tuple((self.name if i == 0 else f"{self.name}-replica-{i + 1}", self.port + i) for i in range(self.replicas_per_node))


@dataclass(frozen=True)
class BootStep:
    name: str  # "start", "driver", "images", "download weights", "load weights", "warm-up"
    minutes: float


@dataclass(frozen=True)
class BootEstimate:
    """Minutes from launch to a healthy gateway on a real VM, step by step (infra/boot_time.py), and the
    health timing derived from it: the grace before a load balancer may judge a new node, and per service
    how long a restart may take before its health check counts it as failed."""

    steps: tuple[BootStep, ...]
    grace_seconds: int
    restart_seconds: tuple[tuple[str, int], ...]  # (service name, seconds)

    @property
    def minutes(self) -> float:
        return round(sum(s.minutes for s in self.steps), 1)

    @property
    def minutes_unrounded(self) -> float:
        return sum(s.minutes for s in self.steps)

    def restart_of(self, service: str) -> int:
        return dict(self.restart_seconds)[service]


@dataclass(frozen=True)
class Storage:
    """How a node's disks perform: the root disk (images) and the disk holding the model cache."""

    root_mbps: float  # MB/s the root disk reads and writes at
    cache_mbps: float  # MB/s of the cache's disk (the root disk, a volume or local NVMe)
    throughput_mibps: int | None = None  # AWS gp3: provisioned throughput (None: the cloud has no such knob)
    iops: int | None = None  # AWS gp3: provisioned IOPS
    instance_store_gb: int = 0  # AWS: local NVMe SSD that could hold the model cache (0: none, or too small)
    local_cache_mount: str | None = None  # where that NVMe is mounted; the node binds the model cache onto it


@dataclass(frozen=True)
class ScalingTarget:
    """What one service of an autoscaled node group scales on: its queue depth per replica (vLLM's requests
    waiting, TEI's queue) held near the target, or requests per target where the cloud takes no custom metric."""

    service: str
    kind: str
    target_queue_per_replica: float
    basis: str  # how the target was set: "targetQueuePerReplica", or the load model's derivation in words
    # What one replica serves (the load model), for a cloud that scales on requests per node; None: an LLM without `load`.
    requests_per_second: float | None = None


@dataclass(frozen=True)
class Autoscaling:
    """A node group that grows with its services' queues from `count` (replicas, the floor) to `max_count` nodes."""

    max_count: int  # nodes the services' maxReplicas need
    targets: tuple[ScalingTarget, ...]  # one per autoscaled service of the group


@dataclass(frozen=True)
class Host:
    """One of the team's servers (`cloud: onprem`), reached over SSH."""

    address: str
    user: str = "root"
    port: int = 22

    @property
    def label(self) -> str:
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"


@dataclass(frozen=True)
class NodeGroup:
    """Identical nodes (same instance type, same services) behind the load balancer."""

    name: str  # DNS-safe, unique in the plan: "llm", "embed-rerank", ...
    offer: Offer
    count: int  # replicas
    services: tuple[PlacedService, ...]
    disk_gb: int  # root/data disk for OS, images and the model cache
    storage: Storage | None = None  # set by placement
    boot: BootEstimate | None = None  # set by placement
    hosts: tuple[Host, ...] = ()  # cloud onprem: the servers that are its nodes, one per node
    spot_policy: str = DEFAULT_SPOT_POLICY  # one of SPOT_POLICIES: the safest its services ask for
    # Offers of the same cloud and region its user-data serves as it is (same GPU model and count, the same
    # placed services, no less vCPU or RAM), cheapest first, the group's own offer not among them: what a
    # component may launch when the offer has no capacity (infra/placement.py, `fallback_offers`).
    fallback_offers: tuple[Offer, ...] = ()
    image: str | None = None  # the stack's `nodeImages` pin for this group; None: resolved at the first `pulumi up`, then kept
    scaling: Autoscaling | None = None  # set by placement (infra/scaling.py) when a service has maxReplicas

    @property
    def max_count(self) -> int:
        """Nodes at most: the autoscaling ceiling, else `count`."""
        return self.scaling.max_count if self.scaling else self.count

    @property
    def max_hourly_usd(self) -> float:
        return round(self.offer.hourly_usd * self.max_count, 6)

    @property
    def cloud(self) -> str:
        return self.offer.cloud

    @property
    def region(self) -> str:
        return self.offer.region

    @property
    def accelerator(self) -> str:
        return "gpu" if self.offer.gpu_count > 0 else "cpu"

    @property
    def hourly_usd(self) -> float:
        return round(self.offer.hourly_usd * self.count, 6)

    @property
    def spot_hourly_usd(self) -> float | None:
        """Its nodes at the offer's spot price; None where the catalog has none."""
        spot = self.offer.spot_hourly_usd
        return None if spot is None else round(spot * self.count, 6)

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(p for s in self.services for p in s.paths)


@dataclass(frozen=True)
class Access:
    """Who may reach what: the load balancer, SSH, and the optional TLS domain."""

    allowed_cidrs: tuple[str, ...] = ("0.0.0.0/0",)
    ssh_cidrs: tuple[str, ...] = ()
    domain: str | None = None
    ssh_public_keys: tuple[str, ...] = ()  # OpenSSH public keys for the image's default user


@dataclass(frozen=True)
class OnPremSite:
    """What a stack on its own servers needs besides its node groups: where the one endpoint runs, the pinned
    host keys, and the air-gapped sources (pre-staged weights, an image mirror)."""

    endpoint_host: Host  # runs the front gateway (nginx), unless the user's own load balancer does its job
    known_hosts: tuple[str, ...]  # known_hosts lines: every host key pinned
    model_source: str | None = None  # directory on every host with the models' files (<path>/<model id>): no download
    image_registry: str | None = None  # registry mirror the pinned images are pulled from
    own_load_balancer: bool = False  # the user's load balancer: no front gateway, the upstream list is printed
    tls: bool = False  # the front gateway serves HTTPS with the user's certificate and key


@dataclass(frozen=True)
class DeploymentPlan:
    """Everything that will be built for one stack. All node groups share one cloud and region."""

    stack: str
    cloud: str
    region: str
    node_groups: tuple[NodeGroup, ...]
    access: Access = field(default_factory=Access)
    has_hf_token: bool = False
    source: str = ""  # the stack file, for errors a cloud finds later (e.g. a region without the instance type)
    alert_email: str | None = None  # where alarms go (config alertEmail); only on clouds whose record has `alarms`
    onprem: OnPremSite | None = None  # cloud onprem only
    rollout_batch_size: int = 1  # `rollout.batchSize`: nodes a change replaces at once in each node group (see batch_size)
    schedule: Schedule | None = None  # the hours it serves; zero nodes outside them
    counted_at: datetime | None = None  # where due_at counted the nodes due: the one instant a run reads the clock

    @property
    def hourly_usd(self) -> float:
        return round(sum(g.hourly_usd for g in self.node_groups), 6)

    @property
    def max_hourly_usd(self) -> float:
        """$/h with every autoscaled node group at its ceiling."""
        return round(sum(g.max_hourly_usd for g in self.node_groups), 6)

    @property
    def monthly_usd(self) -> float:
        return round(self.hourly_usd * HOURS_PER_MONTH, 2)

    def batch_size(self, group: NodeGroup) -> int:
        """Nodes of `group` one rollout step replaces: `rollout.batchSize`, capped at the group's count."""
        return max(1, min(self.rollout_batch_size, group.count))

    def group_serving(self, kind: str) -> NodeGroup | None:
        """The node group that serves a service kind, or None when the stack has no such service."""
        return next((g for g in self.node_groups if any(s.kind == kind for s in g.services)), None)
