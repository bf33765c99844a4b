"""DigitalOcean prices and regions from the API's `GET /v2/sizes` (paginated), with DIGITALOCEAN_TOKEN.

A size lists the regions it can be created in; GPU sizes list only the regions where the token's
account has GPU quota, so a refresh from an account without it shows no region for them.
DIGITALOCEAN_API_URL points elsewhere (the tests' stub server).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence

from infra.cli.refresh import MissingCredentials, Progress, RefreshError, fresh_row, offer_row, types_of
from infra.plan import Offer

API = "https://api.digitalocean.com"
SOURCE = "DigitalOcean API GET /v2/sizes"
TIMEOUT = 30


def api_base() -> str:
    return os.environ.get("DIGITALOCEAN_API_URL", API).rstrip("/")


def api_token() -> str:
    """DIGITALOCEAN_TOKEN, or MissingCredentials."""
    token = os.environ.get("DIGITALOCEAN_TOKEN")
    if not token:
        raise MissingCredentials("no DigitalOcean token (set DIGITALOCEAN_TOKEN)")
    return token


def get(url: str, token: str) -> dict:
    found = get_if_exists(url, token, absent_ok=False)
    assert found is not None  # a 404 raised
    return found


def get_if_exists(url: str, token: str, absent_ok: bool = True) -> dict | None:
    """One GET of the API; a 404 is None (e.g. a domain DigitalOcean DNS does not host), other failures RefreshError."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    path = urllib.parse.urlsplit(url).path
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        if absent_ok and error.code == 404:
            return None
        body = error.read().decode(errors="replace")
        message = json.loads(body).get("message", body) if body.startswith("{") else body
        raise RefreshError(f"digitalocean: GET {path}: {error.code} {message}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise RefreshError(f"digitalocean: GET {path}: {error}") from None


def listing(path: str, key: str, token: str) -> list[dict]:
    """Every item under `key` of a paginated list (`/v2/sizes`, `/v2/droplets`), following `links.pages.next`."""
    base = api_base()
    url: str | None = f"{base}{path}?per_page=200"
    found = []
    while url:
        page = get(url, token)
        found += page[key]
        url = page.get("links", {}).get("pages", {}).get("next")
        if url and not url.startswith(base):
            url = base + url[url.index("/v2/"):]  # the API names its own host; keep talking to the one configured
    return found


def sizes(token: str) -> list[dict]:
    return listing("/v2/sizes", "sizes", token)


def fetch(current: Sequence[Offer], progress: Progress) -> list[dict[str, str]]:
    listed = {s["slug"]: s for s in sizes(api_token())}
    specs = types_of(current)
    rows = []
    for slug, spec in sorted(specs.items()):
        size = listed.get(slug)
        if size is None or not size.get("available", True):
            continue
        if not size.get("regions"):  # a GPU size this account has no quota for: the API hides its regions
            kept = [offer_row(o) for o in current if o.instance_type == slug]
            progress(f"digitalocean: {slug} lists no region for this account (no GPU quota?): its {len(kept)} current rows kept")
            rows += kept
            continue
        rows += [fresh_row(spec, region, float(size["price_hourly"]), SOURCE) for region in sorted(size["regions"])]
    regions = sorted({r["region"] for r in rows})
    progress(f"digitalocean: {len(listed)} sizes listed, {len({r['instance_type'] for r in rows})} of {len(specs)} types "
             f"in {len(regions)} regions ({' '.join(regions)})")
    return rows
