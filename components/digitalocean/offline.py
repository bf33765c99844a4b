"""Plausible DigitalOcean answers for the offline plan (no SDK import, no network).

Computed outputs are derived from the resource name, so a plan is the same on every run. Names
that DigitalOcean resources would get from Pulumi's auto-naming are faked the same way
(`<resource name>-<7 hex>`), as the mock engine does not auto-name.
"""

from __future__ import annotations

import hashlib
import uuid


def _hex(name: str, length: int = 7) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:length]


def _uuid(name: str) -> str:
    return str(uuid.UUID(hashlib.md5(name.encode()).hexdigest()))


def _octet(name: str) -> int:
    return 2 + int(_hex(name, 4), 16) % 250


def _auto_name(name: str, inputs: dict) -> str:
    return inputs.get("name") or f"{name}-{_hex(name)}"


def _vpc(name: str, inputs: dict) -> dict:
    vpc_id = _uuid(name)
    return {"id": vpc_id, "name": _auto_name(name, inputs), "ip_range": "10.110.0.0/20", "vpc_urn": f"do:vpc:{vpc_id}"}


def _tag(name: str, inputs: dict) -> dict:
    tag = _auto_name(name, inputs)
    return {"id": tag, "name": tag}


def _droplet(name: str, inputs: dict) -> dict:
    droplet_id = str(400_000_000 + int(_hex(name, 6), 16) % 99_999_999)
    return {
        "id": droplet_id,
        "name": _auto_name(name, inputs),
        "droplet_urn": f"do:droplet:{droplet_id}",
        "ipv4_address": f"198.51.100.{_octet(name)}",
        "ipv4_address_private": f"10.110.0.{_octet(name + '/private')}",
        "status": "active",
    }


def _load_balancer(name: str, inputs: dict) -> dict:
    lb_id = _uuid(name)
    internal = inputs.get("network") == "INTERNAL"
    ip = f"10.110.1.{_octet(name)}" if internal else f"203.0.113.{_octet(name)}"
    return {
        "id": lb_id,
        "name": _auto_name(name, inputs),
        "ip": ip,
        "load_balancer_urn": f"do:loadbalancer:{lb_id}",
        "status": "active",
    }


def _volume(name: str, inputs: dict) -> dict:
    volume_id = _uuid(name)
    return {"id": volume_id, "name": _auto_name(name, inputs), "volume_urn": f"do:volume:{volume_id}"}


def _certificate(name: str, inputs: dict) -> dict:
    return {"id": _uuid(name), "uuid": _uuid(name), "name": _auto_name(name, inputs), "state": "verified"}


def _firewall(name: str, inputs: dict) -> dict:
    return {"id": _uuid(name), "name": _auto_name(name, inputs), "status": "succeeded"}


# `disk` (GB) per size for the getSizes fake; the real deployment asks DigitalOcean. Source: DO API
# /v2/sizes as printed by `doctl compute size list` (boxcutter/oci doctl/README.md, the same dump the
# catalog cites).
SIZE_DISK_GB = {
    "gpu-h100x1-80gb": 720,
    "gpu-h100x8-640gb": 2046,
    "gpu-h200x1-141gb": 720,
    "gpu-h200x8-1128gb": 2046,
    "gpu-l40sx1-48gb": 500,
    "gpu-6000adax1-48gb": 500,
    "gpu-4000adax1-20gb": 500,
    "gpu-mi300x1-192gb": 720,
    "s-4vcpu-8gb": 160,
    "s-8vcpu-16gb": 320,
}


def size_regions() -> dict[str, tuple[str, ...]]:
    """Per DigitalOcean size, the regions the built-in catalog offers it in: where the getSizes fake lists it."""
    from infra.catalog import read_catalog
    from infra.clouds import DIGITALOCEAN

    regions: dict[str, set[str]] = {}
    for offer in read_catalog():
        if offer.cloud == DIGITALOCEAN.name:
            regions.setdefault(offer.instance_type, set()).add(offer.region)
    return {size: tuple(sorted(found)) for size, found in regions.items()}


def _sizes(args: dict) -> dict:
    """getSizes filtered by slug, in the shape DigitalOcean answers (sizes it does not list: none): each
    available in the regions the catalog has it in."""
    wanted = {v for f in args.get("filters") or [] if f.get("key") == "slug" for v in f.get("values", [])}
    regions = size_regions()
    sizes = [
        {
            "slug": slug,
            "disk": disk,
            "available": True,
            "gpu_infos": [],
            "memory": 0,
            "price_hourly": 0.0,
            "price_monthly": 0.0,
            "regions": list(regions.get(slug, ())),
            "transfer": 0.0,
            "vcpus": 0,
        }
        for slug, disk in SIZE_DISK_GB.items()
        if not wanted or slug in wanted
    ]
    return {"id": "sizes", "filters": args.get("filters"), "sizes": sizes, "sorts": args.get("sorts")}


def image_id(slug: str) -> int:
    """The id the getImage fake gives the image a slug names (DigitalOcean's ids are 8 or 9 digits)."""
    return 100_000_000 + int(_hex(slug, 6), 16) % 99_999_999


def _image(args: dict) -> dict:
    """getImage by slug, in the shape DigitalOcean answers: a public base image, available in every region."""
    slug = args["slug"]
    return {"id": image_id(slug), "image": str(image_id(slug)), "slug": slug, "name": slug, "distribution": "Ubuntu",
            "private": False, "type": "base", "min_disk_size": 50, "size_gigabytes": 20.0, "status": "available",
            "error_message": "", "description": "", "tags": [], "created": "2026-10-14T16:02:11Z",
            "regions": sorted({r for regions in size_regions().values() for r in regions})}


INVOKES = {"digitalocean:index/getSizes:getSizes": _sizes, "digitalocean:index/getImage:getImage": _image}

OUTPUTS = {
    "digitalocean:index/vpc:Vpc": _vpc,
    "digitalocean:index/tag:Tag": _tag,
    "digitalocean:index/droplet:Droplet": _droplet,
    "digitalocean:index/loadBalancer:LoadBalancer": _load_balancer,
    "digitalocean:index/volume:Volume": _volume,
    "digitalocean:index/certificate:Certificate": _certificate,
    "digitalocean:index/firewall:Firewall": _firewall,
}
