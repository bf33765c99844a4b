"""The llm-deploy policies as plain functions: `(resource_type, props) -> [violation, ...]`.

Importable without starting the pack (and without pulumi-policy), so the tests run each policy
against resources recorded by the offline plan. `props` are the inputs as the engine hands them to
a policy pack: camelCase keys, numbers as floats, nested lists and maps. `__main__.py` wraps these
functions into a pulumi-policy PolicyPack (`pulumi_policies()`).
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra import clouds
from infra.catalog import load_offers
from infra.config import SECRET_KEYS, ConfigError, RawConfig, parse_config
from infra.plan import SERVICE_PORTS

PACK_NAME = "llm-deploy"
PROJECT_DIR = Path(__file__).resolve().parents[1]
# Never reachable from the whole internet: the services sit behind the node gateway and the load balancer.
PROTECTED_PORTS = {22: "SSH", **{port: f"{kind} service" for kind, port in SERVICE_PORTS.items()}}
ALL_PROTOCOLS = {"-1", "all"}
TCP = {"tcp", "6"}

Props = Mapping[str, Any]
Check = Callable[[str, Props], list[str]]


# --- helpers -------------------------------------------------------------------------------------


def _world(cidrs: Iterable[Any] | None) -> list[str]:
    """The CIDRs among these that cover every address (0.0.0.0/0, ::/0)."""
    found = []
    for cidr in cidrs or ():
        try:
            if ipaddress.ip_network(str(cidr), strict=False).prefixlen == 0:
                found.append(str(cidr))
        except ValueError:
            continue
    return found


def _ports(low: Any, high: Any) -> range:
    return range(int(float(low)), int(float(high)) + 1)


def _exposed(protocol: Any, ports: range | None, cidrs: list[str], where: str) -> list[str]:
    """Violations for one ingress rule: protected ports in `ports` open to the world CIDRs."""
    proto = str(protocol or "").lower()
    if not cidrs or (proto not in TCP and proto not in ALL_PROTOCOLS):
        return []
    hit = sorted(PROTECTED_PORTS) if proto in ALL_PROTOCOLS or ports is None else [p for p in sorted(PROTECTED_PORTS) if p in ports]
    return [f"{where}: port {port} ({PROTECTED_PORTS[port]}) is open to {', '.join(cidrs)}" for port in hit]


def _truthy(value: Any) -> bool:
    """Provider booleans arrive as bools or as the strings "true"/"false" (aws launch template ebs)."""
    return value is True or str(value).lower() == "true"


# --- resource policies ---------------------------------------------------------------------------


def no_public_service_ports(resource_type: str, props: Props) -> list[str]:
    """SSH and the service ports (vLLM, TEI) must never be open to 0.0.0.0/0 or ::/0."""
    if resource_type == "aws:ec2/securityGroup:SecurityGroup":
        out = []
        for i, rule in enumerate(props.get("ingress") or []):
            cidrs = _world(rule.get("cidrBlocks")) + _world(rule.get("ipv6CidrBlocks"))
            out += _exposed(rule.get("protocol"), _ports(rule.get("fromPort", 0), rule.get("toPort", 0)), cidrs, f"ingress[{i}]")
        return out
    if resource_type == "aws:ec2/securityGroupRule:SecurityGroupRule":
        if props.get("type") != "ingress":
            return []
        cidrs = _world(props.get("cidrBlocks")) + _world(props.get("ipv6CidrBlocks"))
        return _exposed(props.get("protocol"), _ports(props.get("fromPort", 0), props.get("toPort", 0)), cidrs, "rule")
    if resource_type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        cidrs = _world([props.get("cidrIpv4")]) + _world([props.get("cidrIpv6")])
        ports = _ports(props["fromPort"], props["toPort"]) if "fromPort" in props and "toPort" in props else None
        return _exposed(props.get("ipProtocol"), ports, cidrs, "rule")
    if resource_type == "digitalocean:index/firewall:Firewall":
        out = []
        for i, rule in enumerate(props.get("inboundRules") or []):
            text = str(rule.get("portRange") or "all").lower()
            low, _, high = text.partition("-")
            ports = None if text in ("all", "0") else _ports(low, high or low)
            out += _exposed(rule.get("protocol"), ports, _world(rule.get("sourceAddresses")), f"inboundRules[{i}]")
        return out
    if resource_type == "alicloud:ecs/securityGroupRule:SecurityGroupRule":
        if props.get("type") != "ingress" or str(props.get("policy") or "accept").lower() != "accept":
            return []
        low, _, high = str(props.get("portRange") or "-1/-1").partition("/")
        ports = None if low == "-1" else _ports(low, high or low)
        cidrs = _world([props.get("cidrIp")]) + _world([props.get("ipv6CidrIp")])
        return _exposed(props.get("ipProtocol"), ports, cidrs, "rule")
    return []


def imdsv2_required(resource_type: str, props: Props) -> list[str]:
    """AWS nodes must require IMDSv2 session tokens, so a request forgery cannot read the node role's credentials."""
    if resource_type not in ("aws:ec2/launchTemplate:LaunchTemplate", "aws:ec2/instance:Instance"):
        return []
    options = props.get("metadataOptions") or {}
    if str(options.get("httpEndpoint", "enabled")).lower() == "disabled":
        return []
    if options.get("httpTokens") != "required":
        return [f"metadataOptions.httpTokens is {options.get('httpTokens')!r}, must be 'required' (IMDSv2)"]
    return []


def encrypted_volumes(resource_type: str, props: Props) -> list[str]:
    """AWS disks (root and model cache) must be encrypted at rest."""
    if resource_type == "aws:ec2/launchTemplate:LaunchTemplate":
        mappings = props.get("blockDeviceMappings") or []
        if not mappings:
            return ["blockDeviceMappings: none; the root volume's encryption would be left to the AMI and account default"]
        return [
            f"blockDeviceMappings[{i}] ({m.get('deviceName')}): ebs.encrypted is {((m.get('ebs') or {}).get('encrypted'))!r}, must be true"
            for i, m in enumerate(mappings)
            if not m.get("noDevice") and not m.get("virtualName") and not _truthy((m.get("ebs") or {}).get("encrypted"))
        ]
    if resource_type == "aws:ec2/instance:Instance":
        disks = [("rootBlockDevice", props.get("rootBlockDevice") or {})]
        disks += [(f"ebsBlockDevices[{i}]", d) for i, d in enumerate(props.get("ebsBlockDevices") or [])]
        return [f"{where}.encrypted is {disk.get('encrypted')!r}, must be true" for where, disk in disks if not _truthy(disk.get("encrypted"))]
    if resource_type == "aws:ebs/volume:Volume" and not _truthy(props.get("encrypted")):
        return [f"encrypted is {props.get('encrypted')!r}, must be true"]
    return []


def _http_health(check: Props | None, protocol_key: str, path_key: str, where: str) -> list[str]:
    if not check:
        return [f"{where}: missing; the load balancer would send traffic to nodes that are not serving"]
    protocol = str(check.get(protocol_key) or "http").lower()
    if protocol in ("http", "https") and not check.get(path_key):
        return [f"{where}.{path_key}: missing for an {protocol.upper()} check"]
    return []


def load_balancer_health_check(resource_type: str, props: Props) -> list[str]:
    """Every load-balancer backend pool has an enabled health check (the gateway's /healthz)."""
    if resource_type in ("aws:lb/targetGroup:TargetGroup", "aws:alb/targetGroup:TargetGroup"):
        check = props.get("healthCheck")
        if check and check.get("enabled") is False:
            return ["healthCheck.enabled is false"]
        return _http_health(check, "protocol", "path", "healthCheck")
    if resource_type == "digitalocean:index/loadBalancer:LoadBalancer":
        return _http_health(props.get("healthcheck"), "protocol", "path", "healthcheck")
    if resource_type == "alicloud:alb/serverGroup:ServerGroup":
        check = props.get("healthCheckConfig")
        if check and not _truthy(check.get("healthCheckEnabled")):
            return ["healthCheckConfig.healthCheckEnabled is not true"]
        return _http_health(check, "healthCheckProtocol", "healthCheckPath", "healthCheckConfig")
    return []


# Where each compute resource names its instance type: (cloud, [prop names]), from the clouds' records.
INSTANCE_TYPE_PROPS: dict[str, tuple[str, tuple[str, ...]]] = {
    token: (cloud.name, props) for cloud in clouds.CLOUDS for token, props in cloud.instance_type_inputs
}


def catalog_instance_types(extra: Iterable[str] = ()) -> dict[str, set[str]]:
    """Instance types per cloud in the built-in catalog, plus `extra` entries spelled `cloud/type`."""
    allowed: dict[str, set[str]] = {}
    for offer in load_offers():
        allowed.setdefault(offer.cloud, set()).add(offer.instance_type)
    for entry in extra:
        cloud, _, instance_type = str(entry).partition("/")
        allowed.setdefault(cloud, set()).add(instance_type)
    return allowed


def catalog_instance_types_only(resource_type: str, props: Props, allowed: Mapping[str, set[str]] | None = None) -> list[str]:
    """Compute comes only from the priced catalog, so every node's cost is known before it exists."""
    if resource_type not in INSTANCE_TYPE_PROPS:
        return []
    cloud, keys = INSTANCE_TYPE_PROPS[resource_type]
    allowed = allowed if allowed is not None else catalog_instance_types()
    named: list[tuple[str, Any]] = []
    for key in keys:
        value = props.get(key)
        if isinstance(value, Sequence) and not isinstance(value, str):  # a list (the running pack: a read-only proxy)
            named += [(f"{key}[{i}]", v) for i, v in enumerate(value)]
        elif value is not None:
            named.append((key, value))
    if not named:
        return [f"{' / '.join(keys)}: missing"]
    return [f"{key} {value!r} is not a {cloud} instance type in the llm-deploy catalog"
            for key, value in named if value not in allowed.get(cloud, set())]


@dataclass(frozen=True)
class ResourcePolicy:
    name: str
    description: str
    check: Check
    types: tuple[str, ...]  # the resource types it inspects (every other type passes)


RESOURCE_POLICIES = (
    ResourcePolicy(
        "no-public-service-ports", "SSH (22) and the service ports (8000, 8080, 8081) are never open to 0.0.0.0/0 or ::/0.",
        no_public_service_ports,
        ("aws:ec2/securityGroup:SecurityGroup", "aws:ec2/securityGroupRule:SecurityGroupRule",
         "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "digitalocean:index/firewall:Firewall",
         "alicloud:ecs/securityGroupRule:SecurityGroupRule"),
    ),
    ResourcePolicy("aws-imdsv2-required", "AWS nodes require IMDSv2 (metadataOptions.httpTokens = required).", imdsv2_required,
                   ("aws:ec2/launchTemplate:LaunchTemplate", "aws:ec2/instance:Instance")),
    ResourcePolicy("encrypted-volumes", "AWS volumes are encrypted at rest.", encrypted_volumes,
                   ("aws:ec2/launchTemplate:LaunchTemplate", "aws:ec2/instance:Instance", "aws:ebs/volume:Volume")),
    ResourcePolicy("load-balancer-health-check", "Every load-balancer backend pool has a health check.", load_balancer_health_check,
                   ("aws:lb/targetGroup:TargetGroup", "aws:alb/targetGroup:TargetGroup", "digitalocean:index/loadBalancer:LoadBalancer",
                    "alicloud:alb/serverGroup:ServerGroup")),
    ResourcePolicy("catalog-instance-types", "Instance types come only from the llm-deploy GPU catalog.", catalog_instance_types_only,
                   tuple(INSTANCE_TYPE_PROPS)),
)


def resource_violations(resource_type: str, props: Props) -> dict[str, list[str]]:
    """Every resource policy's violations for one resource (policies with none are left out)."""
    found = {p.name: p.check(resource_type, props) for p in RESOURCE_POLICIES}
    return {name: lines for name, lines in found.items() if lines}


# --- stack policy --------------------------------------------------------------------------------


def budget_violations(raw: RawConfig, max_hourly_usd: float | None = None) -> list[str]:
    """The stack's estimated cost (the placement `llm-deploy cost` shows) within its budgetUsdPerHour.

    `max_hourly_usd` is the pack's own cap (policy config), which a stack file cannot raise.
    """
    from infra.placement import evaluate

    # Relative catalogFile paths are relative to the project, wherever the pack process runs.
    with contextlib.chdir(PROJECT_DIR) if (PROJECT_DIR / "Pulumi.yaml").is_file() else contextlib.nullcontext():
        try:
            evaluation = evaluate(parse_config(raw))
        except ConfigError as error:
            return error.lines()
    # Without a plan the problems say why; with one, the only problem evaluate reports is the budget.
    out = [str(p) for p in evaluation.problems]
    plan = evaluation.plan
    if plan is not None and max_hourly_usd is not None and plan.hourly_usd > max_hourly_usd:
        out.append(f"stack {raw.stack}: the placement costs {plan.hourly_usd:.2f} $/h, over the policy's maxHourlyUsd of "
                   f"{max_hourly_usd:.2f} $/h")
    return out


def runtime_stack_config() -> RawConfig:
    """The stack's config inside the policy pack process (the engine passes it in PULUMI_CONFIG).

    The analyzer is not told which keys are secret; the secret keys are marked here so the parser
    does not reject their (decrypted) values as plain text.
    """
    from infra.config import read_pulumi_config

    raw = read_pulumi_config()
    raw.secret_keys |= {key for key in SECRET_KEYS if key in raw.values}
    return raw


# --- the pack ------------------------------------------------------------------------------------


def pulumi_policies() -> list:
    """The pulumi-policy objects (imported here so the functions above need no pulumi-policy)."""
    from pulumi_policy import EnforcementLevel, PolicyConfigSchema, ResourceValidationPolicy, StackValidationPolicy

    def resource_validator(policy: ResourcePolicy):
        def validate(args, report_violation) -> None:
            if policy.check is catalog_instance_types_only:
                allowed = catalog_instance_types(args.get_config().get("extraInstanceTypes") or ())
                lines = catalog_instance_types_only(args.resource_type, args.props, allowed)
            else:
                lines = policy.check(args.resource_type, args.props)
            for line in lines:
                report_violation(f"{args.name}: {line}", None)

        return validate

    def validate_budget(args, report_violation) -> None:
        cap = args.get_config().get("maxHourlyUsd")
        for line in budget_violations(runtime_stack_config(), float(cap) if cap is not None else None):
            report_violation(line, None)

    extra_types = PolicyConfigSchema(properties={"extraInstanceTypes": {
        "type": "array", "items": {"type": "string"},
        "description": "More allowed instance types, as cloud/type (for a stack with a catalogFile of its own)"}})
    policies: list = [
        ResourceValidationPolicy(
            name=p.name, description=p.description, validate=resource_validator(p), enforcement_level=EnforcementLevel.MANDATORY,
            config_schema=extra_types if p.check is catalog_instance_types_only else None,
        )
        for p in RESOURCE_POLICIES
    ]
    policies.append(StackValidationPolicy(
        name="stack-budget",
        description="The stack's estimated cost is within budgetUsdPerHour (and the pack's maxHourlyUsd, when set).",
        validate=validate_budget,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PolicyConfigSchema(properties={"maxHourlyUsd": {
            "type": "number", "description": "A cap on every stack's estimated $/h, over its own budgetUsdPerHour"}}),
    ))
    return policies
