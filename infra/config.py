"""Stack config: the `llm-deploy:` keys of a stack, validated once, the same way for every reader.

Two sources feed one parser: a `stacks/Pulumi.<stack>.yaml` file (the CLI) and the Pulumi runtime's
config (the program under `pulumi up` or the mock engine). Both become a `RawConfig`, and
`parse_config` turns that into a `StackConfig` or a `ConfigError` with one line per problem.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from infra import clouds

CONFIG_NAMESPACE = "llm-deploy"
SECRET_KEYS = ("apiKey", "hfToken")
# Stands in for a `secure:` value that only the Pulumi CLI could decrypt.
SECRET_PLACEHOLDER = "offline-secret-placeholder"
DNS_LABEL = re.compile(r"[a-z]([a-z0-9-]{0,30}[a-z0-9])?")  # used with fullmatch: `$` would let a final newline through

# Limits on what a stack file may hold (README, "Limits"): checked before anything else reads the values.
MAX_STACK_FILE_BYTES = 256 * 1024
MAX_YAML_DEPTH = 16  # nesting of mappings and lists; a stack needs about 5
MAX_YAML_NODES = 20_000  # values in the document once every alias is expanded (1,000 SSH keys need ~1,000)
MAX_TEXT_LENGTH = 16 * 1024  # characters in any one string (an RSA 16384 public key is ~2,800)
MAX_ITEMS = 1_000  # entries in any one list or mapping
MAX_INTEGER = 2**53  # the largest integer every JSON reader keeps exactly
MAX_REPLICAS = 100
MAX_HOURLY_USD = 100_000.0  # per instance, for prices and the budget
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
PRICE_OVERRIDE_KEY = re.compile(rf"({'|'.join(clouds.NAMES)})/[A-Za-z0-9._-]{{1,128}}(/[a-z0-9-]{{1,64}})?")


class ConfigError(Exception):
    """Bad input: one line per problem, `<file>: <field>: <what is wrong>`."""

    def __init__(self, problems: list[str]) -> None:
        problems = [one_line(p) for p in problems]
        super().__init__("\n".join(problems))
        self.problems = problems


def one_line(text: str) -> str:
    """Control characters (a newline in a key, a NUL in a path) escaped, so one problem stays one line."""
    return CONTROL_CHARACTERS.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


def problem(source: str, path: str, message: str) -> str:
    return f"{source}: {path}: {message}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=False, frozen=True)


class ServiceConfig(_Model):
    name: str
    kind: Literal["llm", "embedding", "rerank"]
    model: str = Field(min_length=1, max_length=256)
    replicas: int = Field(1, ge=1, le=MAX_REPLICAS)
    dtype: Literal["bf16", "fp16", "fp8", "int8", "int4"] = "bf16"
    gpu: str | None = Field(None, max_length=64)
    gpu_count: int | None = Field(None, ge=1, le=16)
    accelerator: Literal["gpu", "cpu"] = "gpu"
    max_model_len: int | None = Field(None, ge=128, le=10_000_000)
    params_b: float | None = Field(None, gt=0, le=10_000, allow_inf_nan=False)

    @field_validator("name")
    @classmethod
    def _dns_label(cls, name: str) -> str:
        if not DNS_LABEL.fullmatch(name):
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
    r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)"
    r" [A-Za-z0-9+/]+={0,3}( [^\x00-\x1f\x7f]*)?"
)


def _ssh_public_key(value: str) -> str:
    if not SSH_PUBLIC_KEY.fullmatch(value.strip()):
        raise ValueError("must be an OpenSSH public key line ('ssh-ed25519 AAAA... comment'), not a private key or a file name")
    return value.strip()


SshPublicKey = Annotated[str, AfterValidator(_ssh_public_key)]


class StackConfig(_Model):
    """A validated stack; `stack` and `source` are set by the loader, the rest are the user's keys."""

    stack: str
    source: str
    cloud: Literal[(*clouds.NAMES, "auto")] = "auto"  # type: ignore[valid-type]
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
    api_key: SecretStr | None = None
    hf_token: SecretStr | None = None

    @field_validator("allowed_cidrs", "ssh_cidrs")
    @classmethod
    def _distinct_networks(cls, cidrs: list[str]) -> list[str]:
        """Each network once, as written first: CIDRs are compared after normalizing ("10.0.0.0/8" = "10.0.0.0/255.0.0.0")."""
        return list(dict.fromkeys(cidrs))

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
    def _ssh_needs_a_key(self) -> StackConfig:
        if self.ssh_cidrs and not self.ssh_public_keys:
            raise ValueError("sshCidrs: opens SSH, but nodes take keys only: set sshPublicKeys too")
        return self

    @model_validator(mode="after")
    def _ssh_from_anywhere(self) -> StackConfig:
        world = [i for i, cidr in enumerate(self.ssh_cidrs) if ipaddress.ip_network(cidr).prefixlen == 0]
        if world and not self.allow_public_ssh:
            index = world[0]
            raise ValueError(f"sshCidrs[{index}]: {self.ssh_cidrs[index]} opens SSH to the whole internet; "
                             "list your own networks, or set allowPublicSsh: true if you mean it")
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
    """Read `Pulumi.<stack>.yaml` (or any file of that form)."""
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


STRUCTURED_KEYS = ("services", "allowedCidrs", "sshCidrs", "sshPublicKeys", "priceOverrides")


def _decode_runtime_value(text: Any) -> Any:
    """Pulumi hands lists and maps over as JSON text."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, an integer of thousands of digits, too deep: parse_config names the key
        return text


def _value_problem(path: str, value: Any, depth: int = 0) -> str | None:
    """The first thing in a value that JSON, and so Pulumi's config, cannot hold, or that is past the limits."""
    if depth > MAX_YAML_DEPTH:
        return f"{path}: nested deeper than {MAX_YAML_DEPTH} levels"
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if abs(value) <= MAX_INTEGER else f"{path}: integer out of range (at most {MAX_INTEGER})"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path}: {value} is not a finite number"
    if isinstance(value, str):
        return None if len(value) <= MAX_TEXT_LENGTH else f"{path}: longer than {MAX_TEXT_LENGTH} characters"
    if isinstance(value, (list, dict)) and len(value) > MAX_ITEMS:
        return f"{path}: more than {MAX_ITEMS} entries"
    if isinstance(value, list):
        return next((p for i, item in enumerate(value) if (p := _value_problem(f"{path}[{i}]", item, depth + 1))), None)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}: key {key!r} is not a string"
            if found := _value_problem(f"{path}.{_path_part(key)}", item, depth + 1):
                return found
        return None
    return f"{path}: {type(value).__name__} is not a JSON value; quote it to make it a string"


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


def _unknown_key_problem(raw: RawConfig, key: str) -> str:
    hint = difflib.get_close_matches(key, USER_KEYS, n=1)
    suggestion = f" (did you mean {CONFIG_NAMESPACE}:{hint[0]}?)" if hint else ""
    return problem(raw.source, _path_part(key), f"unknown key{suggestion}; known: {', '.join(USER_KEYS)}")


def parse_config(raw: RawConfig) -> StackConfig:
    """Validate a RawConfig; every problem is reported, not just the first."""
    problems = [_unknown_key_problem(raw, k) for k in raw.values if k not in USER_KEYS]
    problems += [f"{raw.source}: {found}" for k, v in raw.values.items() if k in USER_KEYS and (found := _value_problem(k, v))]
    for key in SECRET_KEYS:
        if key in raw.values and key not in raw.secret_keys:
            problems.append(
                problem(raw.source, key, f"must be a secret: pulumi config set --secret {CONFIG_NAMESPACE}:{key} <value>")
            )
    for key in sorted(raw.secret_keys & set(USER_KEYS) - set(SECRET_KEYS)):
        problems.append(problem(raw.source, key, f"is not a secret ({', '.join(SECRET_KEYS)} are): give it as a plain value"))
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
