"""DigitalOcean preflight: the size in the region (or the fallback size or region `pulumi up` would take), the
droplet limit, and the domain in DigitalOcean DNS."""

from __future__ import annotations

import re

from infra.cli.preflight import FAILED, NOT_CHECKED, OK, Check, _asked
from infra.cli.refresh import RefreshError
from infra.plan import DeploymentPlan, NodeGroup

UNCHECKED = "sizes in the region and the fallback sizes or region `pulumi up` would take (/v2/sizes), the droplet limit (/v2/account), the domain in DigitalOcean DNS (/v2/domains)"


def checks(plan: DeploymentPlan) -> list[Check]:
    from infra.cli.refresh import digitalocean as do

    token = do.api_token()
    base = do.api_base()
    checks: list[Check] = []
    try:
        listed = {s["slug"]: s for s in do.sizes(token)}
    except RefreshError as error:
        checks += [Check(g.name, "offering", NOT_CHECKED, str(error)) for g in plan.node_groups]
    else:
        checks += _offering_checks(plan, listed)
    checks.append(_asked("account", "droplet limit", lambda: _droplet_limit(plan, do, base, token)))
    if plan.access.domain:
        domain = plan.access.domain
        checks.append(_asked("domain", "DNS", lambda: _do_domain(domain, do, base, token)))
    return checks


def _offering_checks(plan: DeploymentPlan, listed: dict[str, dict]) -> list[Check]:
    """Per node group its size in the region; where it has none, what the deployment's look-up step takes from
    the same /v2/sizes answer (components/digitalocean/layout.py `with_capacity`): the next fallback size its
    spot policy allows, or the first region with a size for every group (ok, saying which), or nothing (failed,
    naming `region`)."""
    from components.digitalocean.layout import NoCapacity, SizeListing, with_capacity

    own = [_size_check(g, listed.get(g.offer.instance_type), plan.region) for g in plan.node_groups]
    if all(c.status == OK for c in own):
        return own
    sizes = {slug: SizeListing(bool(s.get("available", True)), tuple(s.get("regions") or ()), int(s.get("disk") or 0))
             for slug, s in listed.items()}
    try:
        built, taken = with_capacity(plan, sizes)
    except NoCapacity as none:
        return [*own, Check("region", "capacity", FAILED, f"region: {none}; pick another region or gpu")]
    checks = []
    for check, group in zip(own, built.node_groups, strict=True):
        why = taken.get(group.name) or taken.get("region")
        if check.status == OK or why is None:
            checks.append(check)  # its own size serves (or /v2/sizes does not list it: kept, and failed as before)
        else:
            checks.append(Check(group.name, "offering", OK, f"{check.detail}; `pulumi up` takes {group.offer.instance_type} "
                                f"in {built.region} instead ({why})", zones=(built.region,)))
    if "region" in taken:
        checks.append(Check("region", "capacity", OK, f"`pulumi up` builds the stack in {built.region}, not {plan.region}: {taken['region']}"))
    return checks


def _size_check(group: NodeGroup, size: dict | None, region: str) -> Check:
    slug = group.offer.instance_type
    if size is None or not size.get("available", True):
        return Check(group.name, "offering", FAILED, f"{slug} is not available to this account (/v2/sizes)")
    regions = sorted(size.get("regions") or ())
    if region not in regions:
        where = ", ".join(regions) or "no region (an account without GPU quota sees none)"
        return Check(group.name, "offering", FAILED, f"{slug} is not available in {region} for this account (/v2/sizes: {where})")
    return Check(group.name, "offering", OK, f"{slug} available in {region}", zones=(region,))


def _droplet_limit(plan: DeploymentPlan, do, base: str, token: str) -> Check:
    from components.digitalocean.layout import dns_name

    limit = int(do.get(f"{base}/v2/account", token)["account"]["droplet_limit"])
    own_tag = re.compile(rf"{re.escape(dns_name(plan.stack))}-nodes-[a-z0-9]+")  # the stack tag, auto-named by Pulumi
    droplets = do.listing("/v2/droplets", "droplets", token)
    others = sum(not any(own_tag.fullmatch(t) for t in d.get("tags", [])) for d in droplets)
    needed = sum(g.count for g in plan.node_groups)
    available = limit - others
    detail = f"{needed} droplet(s) needed; droplet limit {limit}, {others} held by other droplets, {available} available"
    if needed > available:
        return Check("account", "droplet limit", FAILED, f"{detail}: ask DigitalOcean support to raise the limit",
                     needed=needed, available=available)
    return Check("account", "droplet limit", OK, detail, needed=needed, available=available)


def _do_domain(domain: str, do, base: str, token: str) -> Check:
    """The domain, or a parent of it, must be a DigitalOcean DNS zone for its Let's Encrypt certificate."""
    labels = domain.split(".")
    candidates = [".".join(labels[i:]) for i in range(len(labels) - 1)]
    for name in candidates:
        if do.get_if_exists(f"{base}/v2/domains/{name}", token) is not None:
            return Check("domain", "DNS", OK, f"{domain} is in the DigitalOcean DNS zone {name}")
    return Check("domain", "DNS", FAILED, f"neither {domain} nor a parent domain is in DigitalOcean DNS (/v2/domains: 404); "
                 "a Let's Encrypt certificate on DigitalOcean needs it: add the domain under Networking > Domains and "
                 "point its NS records at DigitalOcean")
