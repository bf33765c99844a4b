"""Stack config: the `llm-deploy:` keys of a stack, validated once, the same way for every reader.

Two sources feed one parser: a `stacks/Pulumi.<stack>.yaml` file (the CLI) and the Pulumi runtime's
config (the program under `pulumi up` or the mock engine). Both become a `RawConfig`, and
`parse_config` turns that into a `StackConfig` or a `ConfigError` with every problem (`infra.errors.Problem`).
"""

from __future__ import annotations

import base64
import difflib
import ipaddress
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from infra import clouds
from infra.errors import CONTROL_CHARACTERS, ConfigError, Problem
from infra.plan import DEFAULT_SPOT_POLICY, SPOT_POLICIES
from infra.schedule import Schedule, ScheduleError, parse_schedule, zone_of

CONFIG_NAMESPACE = "llm-deploy"
SECRET_KEYS = ("apiKey", "hfToken", "sshPrivateKey", "tlsCertificate", "tlsPrivateKey")
# Stands in for a `secure:` value that only the Pulumi CLI could decrypt.
SECRET_PLACEHOLDER = "offline-secret-placeholder"
SpotPolicy = Literal[SPOT_POLICIES]  # type: ignore[valid-type]
DNS_LABEL = re.compile(r"[a-z]([a-z0-9-]{0,30}[a-z0-9])?")  # used with fullmatch: `$` would let a final newline through

# Limits on what a stack file may hold (README, "Limits"): checked before anything else reads the values.
MAX_STACK_FILE_BYTES = 256 * 1024
MAX_YAML_DEPTH = 16  # nesting of mappings and lists; a stack needs about 5
MAX_YAML_NODES = 20_000  # values in the document once every alias is expanded (1,000 SSH keys need ~1,000)
MAX_TEXT_LENGTH = 16 * 1024  # characters in any one string (an RSA 16384 public key is ~2,800)
MAX_ITEMS = 1_000  # entries in any one list or mapping
MAX_INTEGER = 2**53  # the largest integer every JSON reader keeps exactly
MAX_REPLICAS = 100
MAX_CONCURRENCY = 1024  # vLLM's max_num_seqs rarely goes past this
MAX_REQUESTS_PER_SECOND = 1e6
MAX_HOURLY_USD = 100_000.0  # per instance, for prices and the budget
PRICE_OVERRIDE_KEY = re.compile(rf"({'|'.join(clouds.NAMES)})/[A-Za-z0-9._-]{{1,128}}(/[a-z0-9-]{{1,64}})?")
FIELDS_ONLY = "fields_only"  # validation context: skip the checks across fields (check_config runs them on valid fields)
# Names reserved for documentation and testing: nobody can prove control of them, so no certificate
# authority (ACM, Let's Encrypt) issues one. RFC 2606 sections 2 and 3, RFC 6761 section 6.
RESERVED_DOMAINS = ("example.com", "example.net", "example.org")
RESERVED_TLDS = ("test", "example", "invalid", "localhost")


def problem(source: str, path: str, message: str, hint: str | None = None) -> Problem:
    return Problem(source, path, message, hint)


class Invalid(ValueError):
    """A validator's error carrying its field (relative to the model it checks), a hint, and the keys a
    check across fields reads (`uses`): check_config takes them from here, never from the message's text."""

    def __init__(self, message: str, field: str | None = None, hint: str | None = None, uses: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message, self.field, self.hint, self.uses = message, field, hint, uses


def _raised(error: Any) -> Invalid | None:
    """The Invalid a validator raised for this pydantic error, if it was one (pydantic keeps it in the context)."""
    raised = (error.get("ctx") or {}).get("error")
    return raised if isinstance(raised, Invalid) else None


def reserved_domain(domain: str) -> str | None:
    """The reserved name `domain` falls under (`example.com`, `.test`, ...), or None."""
    tld = domain.rsplit(".", 1)[-1]
    if tld in RESERVED_TLDS:
        return f".{tld}"
    return next((name for name in RESERVED_DOMAINS if domain == name or domain.endswith(f".{name}")), None)


class _Model(BaseModel):
    # protected_namespaces=(): the stack key modelSource is the field model_source, which pydantic before 2.10
    # warns about on every run (its "model_" namespace) though nothing of pydantic's is shadowed.
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=False, frozen=True, protected_namespaces=())


class LoadConfig(_Model):
    """The traffic a service must carry: an LLM's requests with their prompt and output lengths, an
    encoder's requests with the tokens each embeds or scores."""

    requests_per_second: float = Field(gt=0, le=MAX_REQUESTS_PER_SECOND, allow_inf_nan=False)
    prompt_tokens: int | None = Field(None, ge=1, le=10_000_000)
    output_tokens: int | None = Field(None, ge=1, le=10_000_000)
    tokens_per_request: int | None = Field(None, ge=1, le=10_000_000)


class LatencyConfig(_Model):
    """What each LLM user should see: it caps the batch one replica may run."""

    time_to_first_token_ms: float | None = Field(None, gt=0, le=600_000, allow_inf_nan=False)
    time_per_output_token_ms: float | None = Field(None, gt=0, le=60_000, allow_inf_nan=False)


def known_gpu(gpu: str | None) -> str | None:
    """The catalog's spelling of a GPU name (any case), or Invalid naming the known ones."""
    from infra.catalog import gpu_specs

    if gpu is None:
        return None
    known = {name.upper(): name for name in gpu_specs()}
    if gpu.upper() not in known:
        raise Invalid(f"unknown GPU {gpu!r}", hint=f"known: {', '.join(sorted(known.values()))}")
    return known[gpu.upper()]


class ServiceConfig(_Model):
    name: str
    kind: Literal["llm", "embedding", "rerank"]
    model: str = Field(min_length=1, max_length=256)
    replicas: int = Field(1, ge=1, le=MAX_REPLICAS)
    dtype: Literal["bf16", "fp16", "fp8", "int8", "int4"] = "bf16"
    gpu: str | None = Field(None, max_length=64)
    gpu_count: int | None = Field(None, ge=1, le=16)
    accelerator: Literal["gpu", "cpu"] = "gpu"
    engine: Literal["vllm", "ollama"] = "vllm"  # llm: vLLM, or Ollama with an Ollama model tag (CPU-only and small hosts)
    max_model_len: int | None = Field(None, ge=128, le=10_000_000)
    params_b: float | None = Field(None, gt=0, le=10_000, allow_inf_nan=False)
    min_concurrency: int = Field(1, ge=1, le=MAX_CONCURRENCY)
    load: LoadConfig | None = None
    latency: LatencyConfig | None = None
    spot_policy: SpotPolicy | None = None  # None: the stack's spotPolicy
    max_replicas: int | None = Field(None, ge=1, le=MAX_REPLICAS)  # autoscaling ceiling; `replicas` is the floor
    target_queue_per_replica: float | None = Field(None, gt=0, le=MAX_CONCURRENCY, allow_inf_nan=False)

    @property
    def autoscaled(self) -> bool:
        return self.max_replicas is not None and self.max_replicas > self.replicas

    @field_validator("name")
    @classmethod
    def _dns_label(cls, name: str) -> str:
        if not DNS_LABEL.fullmatch(name):
            raise ValueError("must be lowercase letters, digits and '-', starting with a letter, at most 32 characters")
        return name

    @field_validator("gpu")
    @classmethod
    def _known_gpu(cls, gpu: str | None) -> str | None:
        return known_gpu(gpu)

    @model_validator(mode="after")
    def _consistent(self) -> ServiceConfig:
        from infra.models import dtype_problem, find_model

        vllm = self.kind == "llm" and self.engine == "vllm"
        if self.engine == "ollama":
            self._ollama()
        if vllm and self.accelerator == "cpu":
            raise Invalid("'cpu' is not supported for kind 'llm' with vLLM (it needs a CUDA GPU)", "accelerator",
                          "set engine: ollama with an Ollama model tag to serve the LLM on CPU")
        if self.kind != "llm" and self.max_model_len is not None:
            raise Invalid("only for kind 'llm'", "maxModelLen")
        if self.kind != "llm" and "min_concurrency" in self.model_fields_set:
            raise Invalid("only for kind 'llm'", "minConcurrency")
        if self.kind != "llm" and self.latency is not None:
            raise Invalid("only for kind 'llm'", "latency")
        if self.load is not None:
            given = {key for key in ("prompt_tokens", "output_tokens", "tokens_per_request") if getattr(self.load, key)}
            wanted = {"prompt_tokens", "output_tokens"} if self.kind == "llm" else {"tokens_per_request"}
            if given != wanted:
                names = " and ".join(sorted(to_camel(key) for key in wanted))
                raise Invalid(f"a {self.kind} service's load is requestsPerSecond with {names}", "load")
            if self.kind == "llm" and self.max_model_len and self.load.prompt_tokens + self.load.output_tokens > self.max_model_len:
                raise Invalid("promptTokens + outputTokens exceed maxModelLen", "load")
        known = find_model(self.model)
        if vllm and known is not None and (wrong := dtype_problem(known, self.dtype)):
            raise Invalid(wrong, "dtype")
        if self.accelerator == "cpu" and (self.gpu or self.gpu_count):
            raise Invalid("not with accelerator 'cpu'", "gpu" if self.gpu else "gpuCount")
        if self.engine == "vllm" and self.params_b is None and known is None:
            raise Invalid(f"model {self.model!r} is not in the built-in registry", "paramsB", "set paramsB (size in billions)")
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            raise Invalid(f"must be >= replicas ({self.replicas}): replicas is the floor, maxReplicas the ceiling", "maxReplicas")
        if self.target_queue_per_replica is not None and not self.autoscaled:
            raise Invalid("only with maxReplicas above replicas (it is the autoscaling target)", "targetQueuePerReplica")
        return self

    def _ollama(self) -> None:
        """`engine: ollama`: an LLM named by an Ollama tag; the keys only vLLM reads are refused, naming the key."""
        from infra.ollama import tag_problem, tags

        if self.kind != "llm":
            raise Invalid("only for kind 'llm' (TEI serves the encoders)", "engine")
        vllm_only = {"dtype": "the tag's quantisation sets the weights' format (e.g. llama3.1:8b-instruct-q8_0)",
                     "latency": "the Ollama estimate covers decode throughput only, not time to first token",
                     "max_replicas": "Ollama publishes no queue metric to autoscale on",
                     "target_queue_per_replica": "Ollama publishes no queue metric to autoscale on"}
        for key, why in vllm_only.items():
            if key in self.model_fields_set:
                raise Invalid(f"not with engine 'ollama': {why}", to_camel(key))
        if found := tag_problem(self.model, self.params_b):
            raise Invalid(found[1], found[0], found[2])
        known = tags().get(self.model)
        if self.max_model_len and known and known.context_length and self.max_model_len > known.context_length:
            raise Invalid(f"{self.model} has a context of {known.context_length} tokens", "maxModelLen")


class ScheduleConfig(_Model):
    """`schedule: {timezone, activeHours}`: the stack serves in those hours and runs zero replicas outside."""

    timezone: str = Field(min_length=1, max_length=64)
    active_hours: str = Field(min_length=1, max_length=512)

    @model_validator(mode="after")
    def _parses(self) -> ScheduleConfig:
        try:
            zone_of(self.timezone)
        except ScheduleError as error:
            raise Invalid(str(error), "timezone") from None
        try:
            parse_schedule(self.timezone, self.active_hours)
        except ScheduleError as error:
            raise Invalid(str(error), "activeHours", "grammar: README \"Schedules\"") from None
        return self

    @property
    def parsed(self) -> Schedule:
        return parse_schedule(self.timezone, self.active_hours)


def default_services() -> list[ServiceConfig]:
    return [
        ServiceConfig.model_validate(s)
        for s in (
            {"name": "llm", "kind": "llm", "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "maxModelLen": 8192},
            {"name": "embedding", "kind": "embedding", "model": "intfloat/multilingual-e5-large-instruct"},
            {"name": "rerank", "kind": "rerank", "model": "BAAI/bge-reranker-large"},
        )
    ]


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid CIDR ({exc})") from None


Cidr = Annotated[str, AfterValidator(_cidr)]
SSH_PUBLIC_KEY = re.compile(
    r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)"
    r" [A-Za-z0-9+/]+={0,3}( [^\x00-\x1f\x7f]*)?"
)


def _ssh_public_key(value: str) -> str:
    if not SSH_PUBLIC_KEY.fullmatch(value.strip()):
        raise ValueError("must be an OpenSSH public key line ('ssh-ed25519 AAAA... comment'), not a private key or a file name")
    return value.strip()


SshPublicKey = Annotated[str, AfterValidator(_ssh_public_key)]
# One address, as alarm channels take it (SNS email, CloudMonitor contacts): no display name, no list.
EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")


def _email(value: str) -> str:
    if not EMAIL.fullmatch(value):
        raise ValueError(f"{value!r} is not one email address ('ops@your-company.com', no name, no list)")
    return value


Email = Annotated[str, Field(max_length=254), AfterValidator(_email)]


HOST_ADDRESS = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$|^[0-9a-fA-F:]+$"
# One OpenSSH known_hosts line: host names (plain, [host]:port or hashed |1|salt|hash), key type, key; no markers
# (@cert-authority, @revoked): every host key is pinned on its own.
KNOWN_HOSTS_LINE = re.compile(
    r"(?P<hosts>[^\s@#][^\s]*)\s+(?P<type>ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521))\s+(?P<key>[A-Za-z0-9+/]+={0,3})(\s.*)?"
)


def _known_hosts_line(value: str) -> str:
    match = KNOWN_HOSTS_LINE.fullmatch(value.strip())
    if not match:
        raise ValueError("must be a known_hosts line ('host ssh-ed25519 AAAA...', as `ssh-keyscan -t ed25519 host` prints it)")
    blob = base64.b64decode(match["key"] + "=" * (-len(match["key"]) % 4))
    name = blob[4 : 4 + int.from_bytes(blob[:4], "big")] if len(blob) > 4 else b""
    if name.decode(errors="replace") != match["type"]:
        raise ValueError(f"the key is not a {match['type']} key (it names {name.decode(errors='replace')!r}): copy the whole line")
    return value.strip()


KnownHostsLine = Annotated[str, AfterValidator(_known_hosts_line)]


class HostConfig(_Model):
    """One of the team's servers (`cloud: onprem`): how to reach it over SSH, and its GPUs (read with
    nvidia-smi over SSH when not given) and what an hour of it costs (none: owned, 0 $/h)."""

    address: str = Field(max_length=253, pattern=HOST_ADDRESS)
    user: str = Field("root", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    port: int = Field(22, ge=1, le=65535)
    gpu: str | None = Field(None, max_length=64)
    gpu_count: int | None = Field(None, ge=0, le=16)
    hourly_usd: float | None = Field(None, ge=0, le=MAX_HOURLY_USD, allow_inf_nan=False)
    # A host's CPUs and RAM, for services on CPU (TEI, an `engine: ollama` LLM): placement sizes RAM and decode speed by them.
    vcpus: int | None = Field(None, ge=1, le=4096)
    memory_gb: float | None = Field(None, gt=0, le=100_000, allow_inf_nan=False)

    @field_validator("gpu")
    @classmethod
    def _known_gpu(cls, gpu: str | None) -> str | None:
        return known_gpu(gpu)

    @property
    def label(self) -> str:
        """How known_hosts and messages name it: `address`, or `[address]:port` off port 22."""
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"


class ModelSourceConfig(_Model):
    """Pre-staged weights on every host (air-gapped): `<path>/<model id>` holds each model's Hugging Face files."""

    path: str = Field(max_length=1024, pattern=r"^/[A-Za-z0-9._/-]*$")


class RolloutConfig(_Model):
    """How a change replaces a running node group's nodes: `batchSize` at a time, each batch healthy before the next."""

    batch_size: int = Field(1, ge=1, le=MAX_REPLICAS)  # above a group's count: the whole group at once


class StackConfig(_Model):
    """A validated stack; `stack` and `source` are set by the loader, the rest are the user's keys."""

    stack: str
    source: str
    cloud: Literal[(*clouds.TARGETS, "auto")] = "auto"  # type: ignore[valid-type]
    region: str | None = Field(None, pattern=r"^[a-z][a-z0-9-]{1,63}$")
    services: list[ServiceConfig] = Field(default_factory=default_services, min_length=1)
    allowed_cidrs: list[Cidr] = Field(default_factory=lambda: ["0.0.0.0/0"], min_length=1, max_length=50)
    ssh_cidrs: list[Cidr] = Field(default_factory=list, max_length=50)
    allow_public_ssh: bool = False
    ssh_public_keys: list[SshPublicKey] = Field(default_factory=list)
    domain: str | None = Field(None, max_length=253, pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
    budget_usd_per_hour: float | None = Field(None, gt=0, le=MAX_HOURLY_USD, allow_inf_nan=False)
    price_overrides: dict[str, Annotated[float, Field(gt=0, le=MAX_HOURLY_USD, allow_inf_nan=False)]] = Field(default_factory=dict)
    catalog_file: str | None = Field(None, min_length=1, max_length=4096)
    alert_email: Email | None = None  # where the stack's alarms go, on clouds with an alarm channel (clouds.Cloud.alarms)
    api_key: SecretStr | None = None
    hf_token: SecretStr | None = None
    schedule: ScheduleConfig | None = None
    hosts: list[HostConfig] = Field(default_factory=list, max_length=100)
    ssh_private_key: SecretStr | None = None
    ssh_known_hosts: list[KnownHostsLine] = Field(default_factory=list)
    endpoint_host: str | None = Field(None, max_length=253)
    own_load_balancer: bool = False
    tls_certificate: SecretStr | None = None
    tls_private_key: SecretStr | None = None
    model_source: ModelSourceConfig | None = None
    image_registry: str | None = Field(None, max_length=255, pattern=r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[a-z0-9._-]+)*$")
    spot_policy: SpotPolicy = DEFAULT_SPOT_POLICY
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    # node group name → machine image id: each checked against the plan's groups and its cloud's id format
    # (infra/placement.py, image_problems), so every wrong entry is named in one run
    node_images: dict[str, Annotated[str, Field(min_length=1, max_length=128)]] = Field(default_factory=dict)

    def spot_policy_of(self, service: ServiceConfig) -> str:
        """The policy a service asks for: its own spotPolicy, else the stack's."""
        return service.spot_policy or self.spot_policy

    @field_validator("allowed_cidrs", "ssh_cidrs")
    @classmethod
    def _distinct_networks(cls, cidrs: list[str]) -> list[str]:
        """Each network once, as written first: CIDRs are compared after normalizing ("10.0.0.0/8" = "10.0.0.0/255.0.0.0")."""
        return list(dict.fromkeys(cidrs))

    @field_validator("domain")
    @classmethod
    def _not_reserved(cls, domain: str | None) -> str | None:
        reserved = reserved_domain(domain) if domain else None
        if reserved:
            raise Invalid(f"{domain} is under {reserved}, a name reserved by RFC 2606/6761: no certificate can be issued for it",
                          hint="set a domain you control, or remove domain to serve plain HTTP on the load balancer's address")
        return domain

    @field_validator("price_overrides")
    @classmethod
    def _overrides(cls, prices: dict[str, float]) -> dict[str, float]:
        for key in prices:
            if not PRICE_OVERRIDE_KEY.fullmatch(key):
                raise ValueError(f"key {key!r} must be '<cloud>/<instance_type>' or '<cloud>/<instance_type>/<region>' "
                                 f"with cloud {', '.join(clouds.NAMES[:-1])} or {clouds.NAMES[-1]}")
        return prices

    @field_validator("catalog_file")
    @classmethod
    def _path(cls, path: str | None) -> str | None:
        if path is not None and CONTROL_CHARACTERS.search(path):
            raise ValueError(f"{path!r}: a file name without control characters (NUL, newline)")
        return path

    @model_validator(mode="after")
    def _across_fields(self, info: ValidationInfo) -> StackConfig:
        """The checks that read several keys; skipped while check_config validates the fields alone."""
        if not (info.context or {}).get(FIELDS_ONLY):
            self._ssh_needs_a_key()
            self._ssh_from_anywhere()
            self._unique_services()
            self._autoscaling_where_the_cloud_scales()
            self._onprem()
            self._cpu_hosts_sized()
        return self

    def _cpu_hosts_sized(self) -> None:
        """Services on CPU need the hosts' RAM and CPUs, which llm-deploy does not read over SSH: a host without
        GPUs must give them."""
        if self.cloud != "onprem" or not any(s.accelerator == "cpu" for s in self.services):
            return
        for index, host in enumerate(self.hosts):
            for key in ("memory_gb", "vcpus"):
                if host.gpu_count == 0 and getattr(host, key) is None:
                    raise Invalid(f"{host.label} has no GPU: services on CPU need its {to_camel(key)}", f"hosts[{index}].{to_camel(key)}",
                                  "e.g. {address: ..., gpuCount: 0, vcpus: 16, memoryGb: 64}", uses=("cloud", "hosts", "services"))

    def _autoscaling_where_the_cloud_scales(self) -> None:
        """maxReplicas needs a cloud whose record says it autoscales; `cloud: auto` places on those only (placement)."""
        if self.cloud == "auto" or clouds.get(self.cloud).autoscaling:
            return
        index = next((i for i, s in enumerate(self.services) if s.autoscaled), None)
        if index is not None:
            raise Invalid(f"{self.cloud} has no managed GPU autoscaling: its node groups are plain instances, a fixed count",
                          f"services[{index}].maxReplicas",
                          "remove maxReplicas; to pay for fewer hours, set schedule: {timezone, activeHours} (README \"Schedules\")",
                          uses=("cloud", "services"))

    def _onprem(self) -> None:
        """`cloud: onprem` needs hosts whose keys are all pinned; its keys mean nothing elsewhere."""
        from infra.onprem import known_host_problem

        uses = ("cloud", "hosts", "sshKnownHosts", "endpointHost", "tlsCertificate", "tlsPrivateKey")
        hosted = clouds.get(self.cloud).offers == "hosts" if self.cloud != "auto" else False
        if not hosted:
            for key in ("hosts", "ssh_private_key", "ssh_known_hosts", "endpoint_host", "tls_certificate", "tls_private_key",
                        "model_source", "image_registry", "own_load_balancer"):
                if key in self.model_fields_set:
                    raise Invalid("only with cloud: onprem (the stack's own servers)", to_camel(key), uses=uses)
            return
        if not self.hosts:
            raise Invalid("cloud onprem needs at least one host", "hosts", "hosts: [{address: 10.0.0.11, user: ubuntu}]", uses=uses)
        labels = [h.label for h in self.hosts]
        for index, label in enumerate(labels):
            if labels.index(label) != index:
                raise Invalid(f"{label} is listed twice", f"hosts[{index}].address", uses=uses)
        if not self.ssh_known_hosts:
            raise Invalid("required with cloud onprem: host keys are pinned, never accepted on first use", "sshKnownHosts",
                          "ssh-keyscan -t ed25519 HOST prints the line (check its fingerprint on the host itself)", uses=uses)
        for index, host in enumerate(self.hosts):
            if found := known_host_problem(host.address, host.port, self.ssh_known_hosts):
                raise Invalid(f"hosts[{index}] ({host.label}): {found}", "sshKnownHosts",
                              f"ssh-keyscan -t ed25519 -p {host.port} {host.address} prints the line", uses=uses)
        addresses = [h.address for h in self.hosts]
        if self.endpoint_host is not None and self.endpoint_host not in addresses:
            raise Invalid(f"{self.endpoint_host!r} is not the address of one of the hosts", "endpointHost",
                          f"one of: {', '.join(addresses)}", uses=uses)
        if (self.tls_certificate is None) != (self.tls_private_key is None):
            missing_key = "tlsPrivateKey" if self.tls_private_key is None else "tlsCertificate"
            raise Invalid("TLS needs both tlsCertificate and tlsPrivateKey (PEM)", missing_key, uses=uses)
        if self.domain and self.tls_certificate is None:
            raise Invalid("on onprem, TLS for domain comes from your certificate: set tlsCertificate and tlsPrivateKey", "domain", uses=uses)

    def _ssh_needs_a_key(self) -> None:
        if self.ssh_cidrs and not self.ssh_public_keys:
            raise Invalid("opens SSH, but nodes take keys only: set sshPublicKeys too", "sshCidrs", uses=("sshCidrs", "sshPublicKeys"))

    def _ssh_from_anywhere(self) -> None:
        world = [i for i, cidr in enumerate(self.ssh_cidrs) if ipaddress.ip_network(cidr).prefixlen == 0]
        if world and not self.allow_public_ssh:
            index = world[0]
            raise Invalid(f"{self.ssh_cidrs[index]} opens SSH to the whole internet", f"sshCidrs[{index}]",
                          "list your own networks, or set allowPublicSsh: true if you mean it", uses=("sshCidrs", "allowPublicSsh"))

    def _unique_services(self) -> None:
        names = [s.name for s in self.services]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise Invalid(f"duplicate service name(s) {', '.join(duplicates)}", "services", uses=("services",))
        kinds = [s.kind for s in self.services]
        repeated = sorted({k for k in kinds if kinds.count(k) > 1})
        if repeated:
            raise Invalid("at most one service of each kind (the gateway routes by path)", "services", f"repeated: {', '.join(repeated)}",
                          uses=("services",))


USER_KEYS = tuple(to_camel(name) for name in StackConfig.model_fields if name not in ("stack", "source"))


@dataclass
class RawConfig:
    """A stack's `llm-deploy:` keys before validation, from a file or from the Pulumi runtime."""

    stack: str
    source: str
    values: dict[str, Any]  # key without namespace → value (secrets: their plaintext, or None when encrypted)
    secret_keys: set[str] = field(default_factory=set)

    def pulumi_values(self) -> dict[str, str]:
        """The values as Pulumi's runtime holds them: strings, JSON for structures, placeholders for secrets."""
        out = {}
        for key, value in self.values.items():
            if key in self.secret_keys and value is None:
                value = SECRET_PLACEHOLDER
            out[key] = value if isinstance(value, str) else json.dumps(value)
        return out


class _StackLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses, while composing, nesting deeper than MAX_YAML_DEPTH."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self.depth += 1
        if self.depth > MAX_YAML_DEPTH:
            raise StackFileProblem("file", f"nested deeper than {MAX_YAML_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class StackFileProblem(Exception):
    """A stack file refused before its values are built: the field (or "file") and what is wrong."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path, self.message = path, message


NON_JSON_TAGS = {
    "tag:yaml.org,2002:timestamp": "a date or time",
    "tag:yaml.org,2002:binary": "binary data",
    "tag:yaml.org,2002:set": "a set",
    "tag:yaml.org,2002:omap": "an ordered map",
    "tag:yaml.org,2002:pairs": "a list of pairs",
}


def _key_path(parent: str, key: yaml.Node) -> str:
    """Field path of a mapping key: `llm-deploy:x` under `config` is field `x`, as in every other problem."""
    name = key.value if isinstance(key, yaml.ScalarNode) else "?"
    if parent == "config":
        namespace, _, rest = name.partition(":")
        return _path_part(rest if namespace == CONFIG_NAMESPACE else name)
    return f"{parent}.{_path_part(name)}" if parent else _path_part(name)


def _check_nodes(root: yaml.Node) -> None:
    """Refuse, before anything is built: aliases that expand past MAX_YAML_NODES (an alias bomb) or
    that contain themselves, duplicate keys, and under `llm-deploy:` values JSON cannot hold (dates,
    binary, sets; other namespaces belong to their providers)."""
    sizes: dict[tuple[int, bool], int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node, path: str, ours: bool) -> int:
        if (id(node), ours) in sizes:
            return sizes[id(node), ours]
        if id(node) in open_nodes:
            raise StackFileProblem(path or "file", "an alias that contains itself (a recursive structure)")
        if ours and node.tag in NON_JSON_TAGS:
            raise StackFileProblem(path, f"{NON_JSON_TAGS[node.tag]} is not a JSON value; quote it to make it a string")
        if node.tag == "tag:yaml.org,2002:int" and len(node.value) > 64:  # before PyYAML converts thousands of digits
            raise StackFileProblem(path or "file", f"integer out of range (at most {MAX_INTEGER})")
        open_nodes.add(id(node))
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(item, f"{path}[{index}]", ours) for index, item in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                child = _key_path(path, key)
                named = key.value if isinstance(key, yaml.ScalarNode) else None
                if named is not None and named != "<<":
                    if named in seen:
                        raise StackFileProblem(child, "duplicate key (YAML would keep only the last value)")
                    seen.add(named)
                ours_below = ours or (path == "config" and str(named).partition(":")[0] == CONFIG_NAMESPACE)
                total += size(key, child, ours_below) + size(value, child, ours_below)
        open_nodes.discard(id(node))
        sizes[id(node), ours] = total
        if total > MAX_YAML_NODES:
            raise StackFileProblem(path or "file", f"more than {MAX_YAML_NODES} values once its aliases are expanded")
        return total

    size(root, "", False)


def load_yaml_document(text: str) -> Any:
    """A YAML document within this module's limits, or StackFileProblem / yaml.YAMLError."""
    loader = _StackLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        _check_nodes(root)
        return loader.construct_document(root)
    finally:
        loader.dispose()


def read_stack_file(path: Path, stack: str | None = None) -> RawConfig:
    """Read `Pulumi.<stack>.yaml` (or any file of that form). Raises ConfigError (field `file`, `config`, or
    the key at fault) for a file that is missing, too large, not UTF-8, not YAML or past the limits."""
    source = str(path)
    if not path.is_file():
        raise ConfigError([problem(source, "file", "not found")])
    data = path.read_bytes()
    if len(data) > MAX_STACK_FILE_BYTES:
        raise ConfigError([problem(source, "file", f"{len(data)} bytes; a stack file may have at most {MAX_STACK_FILE_BYTES}")])
    try:
        document = load_yaml_document(data.decode("utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError([problem(source, "file", f"not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x})")]) from None
    except StackFileProblem as exc:
        raise ConfigError([problem(source, exc.path, exc.message)]) from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: a scalar PyYAML cannot convert (e.g. an int of 5,000 digits)
        raise ConfigError([problem(source, "file", f"not valid YAML: {exc}".replace("\n", " "))]) from None
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise ConfigError([problem(source, "config", "missing: the file needs a top-level 'config:' mapping")])
    if stack is None:
        match = re.fullmatch(r"Pulumi\.(.+)\.ya?ml", path.name)
        stack = match.group(1) if match else path.stem
    values: dict[str, Any] = {}
    secret_keys: set[str] = set()
    for full_key, value in config.items():
        namespace, _, key = str(full_key).partition(":")
        if namespace != CONFIG_NAMESPACE:
            continue  # provider settings such as aws:region belong to their providers
        if isinstance(value, dict) and set(value) == {"secure"}:
            secret_keys.add(key)
            value = None
        values[key] = value
    return RawConfig(stack=stack, source=source, values=values, secret_keys=secret_keys)


def read_pulumi_config() -> RawConfig:
    """The running program's config, as `pulumi up` (or the mock engine) handed it over."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    merged = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret = set(runtime_config.get_config_secret_keys_env()) | set(runtime_config._SECRET_KEYS.get())
    prefix = f"{CONFIG_NAMESPACE}:"
    values: dict[str, Any] = {}
    for full_key, text in merged.items():
        if not full_key.startswith(prefix):
            continue
        key = full_key[len(prefix) :]
        values[key] = _decode_runtime_value(text) if key in STRUCTURED_KEYS else text
    secret_keys = {k[len(prefix) :] for k in secret if k.startswith(prefix)}
    stack = pulumi.get_stack()
    return RawConfig(stack=stack, source=f"stacks/Pulumi.{stack}.yaml", values=values, secret_keys=secret_keys)


STRUCTURED_KEYS = ("services", "allowedCidrs", "sshCidrs", "sshPublicKeys", "priceOverrides", "rollout", "nodeImages", "hosts",
                   "sshKnownHosts", "modelSource", "schedule")


def _decode_runtime_value(text: Any) -> Any:
    """Pulumi hands lists and maps over as JSON text."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, an integer of thousands of digits, too deep: parse_config names the key
        return text


def _value_problem(source: str, path: str, value: Any, depth: int = 0) -> Problem | None:
    """The first thing in a value that JSON, and so Pulumi's config, cannot hold, or that is past the limits."""
    if depth > MAX_YAML_DEPTH:
        return Problem(source, path, f"nested deeper than {MAX_YAML_DEPTH} levels")
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if abs(value) <= MAX_INTEGER else Problem(source, path, f"integer out of range (at most {MAX_INTEGER})")
    if isinstance(value, float):
        return None if math.isfinite(value) else Problem(source, path, f"{value} is not a finite number")
    if isinstance(value, str):
        return None if len(value) <= MAX_TEXT_LENGTH else Problem(source, path, f"longer than {MAX_TEXT_LENGTH} characters")
    if isinstance(value, (list, dict)) and len(value) > MAX_ITEMS:
        return Problem(source, path, f"more than {MAX_ITEMS} entries")
    if isinstance(value, list):
        return next((p for i, item in enumerate(value) if (p := _value_problem(source, f"{path}[{i}]", item, depth + 1))), None)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return Problem(source, path, f"key {key!r} is not a string")
            if found := _value_problem(source, f"{path}.{_path_part(key)}", item, depth + 1):
                return found
        return None
    return Problem(source, path, f"{type(value).__name__} is not a JSON value", "quote it to make it a string")


FIELD_NAME = re.compile(r"[A-Za-z0-9_./-]+")


def _path_part(key: Any) -> str:
    """A key as it appears in a field path: quoted when it holds anything but name characters (spaces, newlines, ':')."""
    text = str(key)
    return text if FIELD_NAME.fullmatch(text) else repr(text)


def _field_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in ("function-after",):
            path += ("." if path else "") + _path_part(part)
    return path or "config"


def _message(error: dict[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "greater_than_equal":
        return f"must be >= {ctx['ge']}"
    if kind == "greater_than":
        return f"must be > {ctx['gt']}"
    if kind == "less_than_equal":
        return f"must be <= {ctx['le']}"
    if kind in ("too_long", "string_too_long"):
        return f"must have at most {ctx.get('max_length')} {'characters' if kind == 'string_too_long' else 'entries'}"
    if kind == "finite_number":
        return "must be a finite number"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "too_short":
        return "must not be empty"
    return str(error["msg"]).removeprefix("Value error, ")


def _unknown_key_problem(raw: RawConfig, key: str) -> Problem:
    hint = difflib.get_close_matches(key, USER_KEYS, n=1)
    suggestion = f" (did you mean {CONFIG_NAMESPACE}:{hint[0]}?)" if hint else ""
    return Problem(raw.source, _path_part(key), f"unknown key{suggestion}", f"known: {', '.join(USER_KEYS)}")


def _problem(source: str, error: Any) -> Problem:
    """One pydantic error as a problem: its field from where it happened, or from the validator that raised it."""
    path = _field_path(error["loc"])
    if raised := _raised(error):
        field = raised.field if not error["loc"] else f"{path}.{raised.field}" if raised.field else path
        return Problem(source, field or path, raised.message, raised.hint)
    if error["type"] == "extra_forbidden" and error["loc"][0] == "services":
        hint = difflib.get_close_matches(str(error["loc"][-1]), [to_camel(f) for f in ServiceConfig.model_fields], n=1)
        return Problem(source, path, "unknown key" + (f" (did you mean {hint[0]}?)" if hint else ""))
    return Problem(source, path, _message(error))


# Keys placement reads as a whole: with one of them invalid, placing the rest would judge another stack.
PLACEMENT_KEYS = ("cloud", "region", "catalogFile", "services")


@dataclass(frozen=True)
class CheckedConfig:
    """Every problem of a stack's config, and the part of it that is valid, for placement to judge too.

    `partial` is the stack with its invalid keys at their defaults and its invalid services left out
    (`positions`: each kept service's index in the file), or None when what is left cannot be placed
    as the user meant it (no valid service, or an invalid services list, cloud, region or catalogFile).
    """

    problems: tuple[Problem, ...]
    partial: StackConfig | None
    positions: tuple[int, ...]
    complete: bool  # nothing was left out: `partial` is the stack as written


def check_config(raw: RawConfig) -> CheckedConfig:
    """Validate a RawConfig and report every problem at once: unknown keys, values past the limits,
    secrets given in plain text, every invalid field, and the checks across fields (SSH, service
    names) on whatever fields are valid."""
    problems = [_unknown_key_problem(raw, k) for k in raw.values if k not in USER_KEYS]
    too_big = {k: found for k, v in raw.values.items() if k in USER_KEYS and (found := _value_problem(raw.source, k, v))}
    problems += too_big.values()
    for key in SECRET_KEYS:
        if key in raw.values and key not in raw.secret_keys:
            problems.append(
                problem(raw.source, key, f"must be a secret: pulumi config set --secret {CONFIG_NAMESPACE}:{key} <value>")
            )
    for key in sorted(raw.secret_keys & set(USER_KEYS) - set(SECRET_KEYS)):
        problems.append(problem(raw.source, key, f"is not a secret ({', '.join(SECRET_KEYS)} are): give it as a plain value"))
    dropped = set(too_big)
    values = {k: v for k, v in raw.values.items() if k in USER_KEYS and k not in dropped}
    for key in SECRET_KEYS:
        if key in values and values[key] is None:
            values[key] = SECRET_PLACEHOLDER
    identity = {"stack": raw.stack, "source": raw.source}
    written = values.get("services")
    positions = tuple(range(len(written))) if isinstance(written, list) else ()
    try:
        partial = StackConfig.model_validate({**values, **identity})
    except ValidationError as exc:
        errors = exc.errors()
        problems += [_problem(raw.source, e) for e in errors]
        dropped |= {str(e["loc"][0]) for e in errors if e["loc"] and not (e["loc"][0] == "services" and len(e["loc"]) > 1)}
        bad_services = {e["loc"][1] for e in errors if e["loc"][:1] == ("services",) and len(e["loc"]) > 1}
        positions = tuple(i for i in positions if i not in bad_services)
        values = {k: v for k, v in values.items() if k not in dropped}
        if "services" in values:
            values["services"] = [written[i] for i in positions]
            if not positions:
                return CheckedConfig(tuple(problems), None, (), False)
        if any(e["loc"] for e in errors):  # a field was invalid, so the checks across fields have not run: run them on the rest
            problems += _across_fields(raw.source, {**values, **identity}, dropped)
        partial = StackConfig.model_validate({**values, **identity}, context={FIELDS_ONLY: True})
    complete = not dropped and (not isinstance(written, list) or len(positions) == len(written))
    if dropped & set(PLACEMENT_KEYS):
        return CheckedConfig(tuple(problems), None, (), complete)
    return CheckedConfig(tuple(problems), partial, positions if isinstance(written, list) else tuple(range(len(partial.services))),
                         complete)


def _across_fields(source: str, values: dict[str, Any], dropped: set[str]) -> list[Problem]:
    """The checks across fields on valid fields; one that reads a key left out would judge what is not there."""
    try:
        StackConfig.model_validate(values)
    except ValidationError as exc:
        return [_problem(source, e) for e in exc.errors() if not set(getattr(_raised(e), "uses", ())) & dropped]
    return []


def parse_config(raw: RawConfig) -> StackConfig:
    """Validate a RawConfig. Raises ConfigError with every problem of the config (see check_config)."""
    checked = check_config(raw)
    if checked.problems:
        raise ConfigError(checked.problems)
    assert checked.partial is not None and checked.complete
    return checked.partial


def load_stack(stack: str | None = None, config_file: str | None = None, stacks_dir: Path = Path("stacks")) -> StackConfig:
    """The CLI's reader: `--stack NAME` or `--config FILE`. Raises ConfigError (see parse_config)."""
    return parse_config(load_raw(stack, config_file, stacks_dir))


def load_raw(stack: str | None = None, config_file: str | None = None, stacks_dir: Path = Path("stacks")) -> RawConfig:
    """The file `--stack NAME` or `--config FILE` names, read. Raises ConfigError (see read_stack_file)."""
    if config_file:
        return read_stack_file(Path(config_file))
    return read_stack_file(stacks_dir / f"Pulumi.{stack or 'dev'}.yaml", stack or "dev")
