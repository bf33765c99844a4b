"""Stack config: the `llm-deploy:` keys of a stack, validated once, the same way for every reader.

Two sources feed one parser: a `stacks/Pulumi.<stack>.yaml` file (the CLI) and the Pulumi runtime's
config (the program under `pulumi up` or the mock engine). Both become a `RawConfig`, and
`parse_config` turns that into a `StackConfig` or a `ConfigError` with one line per problem.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

CONFIG_NAMESPACE = "llm-deploy"
SECRET_KEYS = ("apiKey", "hfToken")
# Stands in for a `secure:` value that only the Pulumi CLI could decrypt.
SECRET_PLACEHOLDER = "offline-secret-placeholder"
DNS_LABEL = re.compile(r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$")


class ConfigError(Exception):
    """Bad input: one line per problem, `<file>: <field>: <what is wrong>`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def problem(source: str, path: str, message: str) -> str:
    return f"{source}: {path}: {message}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=False, frozen=True)


class ServiceConfig(_Model):
    name: str
    kind: Literal["llm", "embedding", "rerank"]
    model: str = Field(min_length=1)
    replicas: int = Field(1, ge=1)
    dtype: Literal["bf16", "fp16", "fp8", "int8", "int4"] = "bf16"
    gpu: str | None = None
    gpu_count: int | None = Field(None, ge=1)
    accelerator: Literal["gpu", "cpu"] = "gpu"
    max_model_len: int | None = Field(None, ge=128)
    params_b: float | None = Field(None, gt=0)

    @field_validator("name")
    @classmethod
    def _dns_label(cls, name: str) -> str:
        if not DNS_LABEL.match(name):
            raise ValueError("must be lowercase letters, digits and '-', starting with a letter, at most 32 characters")
        return name

    @field_validator("gpu")
    @classmethod
    def _known_gpu(cls, gpu: str | None) -> str | None:
        from infra.catalog import gpu_specs

        if gpu is None:
            return None
        known = {name.upper(): name for name in gpu_specs()}
        if gpu.upper() not in known:
            raise ValueError(f"unknown GPU {gpu!r}; known: {', '.join(sorted(known.values()))}")
        return known[gpu.upper()]

    @model_validator(mode="after")
    def _consistent(self) -> ServiceConfig:
        from infra.models import find_model

        if self.kind == "llm" and self.accelerator == "cpu":
            raise ValueError("accelerator: 'cpu' is not supported for kind 'llm' (vLLM needs a CUDA GPU)")
        if self.kind != "llm" and self.max_model_len is not None:
            raise ValueError("maxModelLen: only for kind 'llm'")
        if self.accelerator == "cpu" and (self.gpu or self.gpu_count):
            raise ValueError("gpu/gpuCount: not with accelerator 'cpu'")
        if self.params_b is None and find_model(self.model) is None:
            raise ValueError(f"paramsB: model {self.model!r} is not in the built-in registry; set paramsB (size in billions)")
        return self


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
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)"
    r" [A-Za-z0-9+/]+={0,3}( [^\n]*)?$"
)


def _ssh_public_key(value: str) -> str:
    if not SSH_PUBLIC_KEY.match(value.strip()):
        raise ValueError("must be an OpenSSH public key line ('ssh-ed25519 AAAA... comment'), not a private key or a file name")
    return value.strip()


SshPublicKey = Annotated[str, AfterValidator(_ssh_public_key)]


class StackConfig(_Model):
    """A validated stack; `stack` and `source` are set by the loader, the rest are the user's keys."""

    stack: str
    source: str
    cloud: Literal["aws", "digitalocean", "alicloud", "auto"] = "auto"
    region: str | None = None
    services: list[ServiceConfig] = Field(default_factory=default_services, min_length=1)
    allowed_cidrs: list[Cidr] = Field(default_factory=lambda: ["0.0.0.0/0"], min_length=1)
    ssh_cidrs: list[Cidr] = Field(default_factory=list)
    ssh_public_keys: list[SshPublicKey] = Field(default_factory=list)
    domain: str | None = Field(None, max_length=253, pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
    budget_usd_per_hour: float | None = Field(None, gt=0)
    price_overrides: dict[str, float] = Field(default_factory=dict)
    catalog_file: str | None = None
    api_key: SecretStr | None = None
    hf_token: SecretStr | None = None

    @field_validator("price_overrides")
    @classmethod
    def _overrides(cls, prices: dict[str, float]) -> dict[str, float]:
        for key, price in prices.items():
            if not re.match(r"^(aws|digitalocean|alicloud)/\S+$", key):
                raise ValueError(f"key {key!r} must be '<cloud>/<instance_type>' with cloud aws, digitalocean or alicloud")
            if price <= 0:
                raise ValueError(f"{key}: price must be > 0")
        return prices

    @model_validator(mode="after")
    def _ssh_needs_a_key(self) -> StackConfig:
        if self.ssh_cidrs and not self.ssh_public_keys:
            raise ValueError("sshCidrs: opens SSH, but nodes take keys only: set sshPublicKeys too")
        return self

    @model_validator(mode="after")
    def _unique_services(self) -> StackConfig:
        names = [s.name for s in self.services]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"services: duplicate service name(s) {', '.join(duplicates)}")
        kinds = [s.kind for s in self.services]
        repeated = sorted({k for k in kinds if kinds.count(k) > 1})
        if repeated:
            raise ValueError(f"services: at most one service of each kind (the gateway routes by path); repeated: {', '.join(repeated)}")
        return self


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


def read_stack_file(path: Path, stack: str | None = None) -> RawConfig:
    """Read `Pulumi.<stack>.yaml` (or any file of that form)."""
    source = str(path)
    if not path.is_file():
        raise ConfigError([problem(source, "file", "not found")])
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError([problem(source, "file", f"not valid YAML: {exc}".replace("\n", " "))]) from None
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise ConfigError([problem(source, "config", "missing: the file needs a top-level 'config:' mapping")])
    if stack is None:
        match = re.match(r"^Pulumi\.(.+)\.ya?ml$", path.name)
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


STRUCTURED_KEYS = ("services", "allowedCidrs", "sshCidrs", "sshPublicKeys", "priceOverrides")


def _decode_runtime_value(text: Any) -> Any:
    """Pulumi hands lists and maps over as JSON text."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _field_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in ("function-after",):
            path += ("." if path else "") + str(part)
    return path or "config"


def _message(error: dict[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "greater_than_equal":
        return f"must be >= {ctx['ge']}"
    if kind == "greater_than":
        return f"must be > {ctx['gt']}"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "too_short":
        return "must not be empty"
    return str(error["msg"]).removeprefix("Value error, ")


def _unknown_key_problem(raw: RawConfig, key: str) -> str:
    hint = difflib.get_close_matches(key, USER_KEYS, n=1)
    suggestion = f" (did you mean {CONFIG_NAMESPACE}:{hint[0]}?)" if hint else ""
    return problem(raw.source, key, f"unknown key{suggestion}; known: {', '.join(USER_KEYS)}")


def parse_config(raw: RawConfig) -> StackConfig:
    """Validate a RawConfig; every problem is reported, not just the first."""
    problems = [_unknown_key_problem(raw, k) for k in raw.values if k not in USER_KEYS]
    for key in SECRET_KEYS:
        if key in raw.values and key not in raw.secret_keys:
            problems.append(
                problem(raw.source, key, f"must be a secret: pulumi config set --secret {CONFIG_NAMESPACE}:{key} <value>")
            )
    values = {k: v for k, v in raw.values.items() if k in USER_KEYS}
    for key in SECRET_KEYS:
        if key in values and values[key] is None:
            values[key] = SECRET_PLACEHOLDER
    if problems:
        raise ConfigError(problems)
    try:
        return StackConfig.model_validate({**values, "stack": raw.stack, "source": raw.source})
    except ValidationError as exc:
        for error in exc.errors():
            path = _field_path(error["loc"])
            if error["type"] == "extra_forbidden" and "services" in path:
                hint = difflib.get_close_matches(str(error["loc"][-1]), [to_camel(f) for f in ServiceConfig.model_fields], n=1)
                problems.append(problem(raw.source, path, "unknown key" + (f" (did you mean {hint[0]}?)" if hint else "")))
            elif not error["loc"]:  # a whole-config check: its message starts with the field it is about
                problems.append(f"{raw.source}: {_message(error)}")
            else:
                problems.append(problem(raw.source, path, _message(error)))
        raise ConfigError(problems) from None


def load_stack(stack: str | None = None, config_file: str | None = None, stacks_dir: Path = Path("stacks")) -> StackConfig:
    """The CLI's reader: `--stack NAME` or `--config FILE`."""
    return parse_config(load_raw(stack, config_file, stacks_dir))


def load_raw(stack: str | None = None, config_file: str | None = None, stacks_dir: Path = Path("stacks")) -> RawConfig:
    if config_file:
        return read_stack_file(Path(config_file))
    return read_stack_file(stacks_dir / f"Pulumi.{stack or 'dev'}.yaml", stack or "dev")
