"""Build `data/catalog.csv` from the sourced instance data (`../shared/data/`): one row per cloud,
instance type and region, each with its source and date.

Inputs: the sourced files (`aws.csv`: SkyPilot's catalog per type and region; `digitalocean.csv`:
`/v2/sizes` snapshots; `alicloud.csv`: Spare Cores' lowest pay-as-you-go price), and two files of
this repository: `specified_prices.csv` (the project's specified cost table, whose prices the catalog
keeps, with the sourced list price beside them) and `regions.csv` (regions from provider docs where
the sourced file has none). `llm-deploy catalog build` writes the result; a test rebuilds it.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from infra import clouds
from infra.catalog import CATALOG_COLUMNS, DATA_DIR, gpu_specs
from infra.errors import BadInput

# The sourced files' GPU names, where they differ from `gpus.csv`'s.
GPU_NAMES = {"RTX PRO Server 6000": "RTXPRO6000", "RTX 6000 Ada": "RTX6000ADA", "RTX 4000 Ada": "RTX4000ADA"}
ISO_DATE = re.compile(r"\b(20\d\d-\d\d-\d\d)\b")
UNVERIFIED = "UNVERIFIED"


class BuildError(BadInput):
    """Sourced data the build cannot turn into a catalog row; names the file and row."""


@dataclass(frozen=True)
class Specified:
    hourly_usd: float
    source: str
    as_of: str


def _read(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as handle:
            return list(csv.DictReader(handle))
    except OSError as exc:
        raise BuildError(f"{path}: cannot be read ({exc.strerror})") from None


def _collected_on(data_dir: Path) -> str:
    """The date the sourced data was collected, from its README's title line."""
    readme = data_dir / "README.md"
    if not readme.is_file():
        raise BuildError(f"{readme}: not found (is {data_dir} the sourced data directory?)")
    found = ISO_DATE.search((readme.read_text().splitlines() or [""])[0])
    if not found:
        raise BuildError(f"{readme}: the first line names no collection date (YYYY-MM-DD)")
    return found.group(1)


def _gpu(name: str, memory: str) -> str | None:
    """The `gpus.csv` name of a sourced GPU (A100 with 80 GB is A100-80GB)."""
    if not name:
        return None
    name = GPU_NAMES.get(name, name)
    if name == "A100" and float(memory or 0) >= 80:
        name = "A100-80GB"
    if name not in gpu_specs():
        raise BuildError(f"GPU {name!r} is not in {DATA_DIR / 'gpus.csv'}")
    return name


def number_text(value: str | float | None) -> str:
    """A price or size as the catalog writes it: the sourced digits, without trailing zeros."""
    if value is None or value == "":
        return ""
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def catalog_row(cloud: str, instance_type: str, region: str, gpu: str | None, gpu_count: str, vcpus: str, memory: str,
                hourly: str, source: str, as_of: str, spot: str = "", basis: str = "list",
                specified: dict[tuple[str, str], Specified] | None = None) -> dict[str, str]:
    """One catalog row; a type of the specified cost table keeps that price, the list price beside it."""
    row = {
        "cloud": cloud, "instance_type": instance_type, "region": region, "gpu": gpu or "", "gpu_count": gpu_count,
        "gpu_memory_gb": f"{gpu_specs()[gpu].memory_gb:g}" if gpu else "0", "vcpus": vcpus, "memory_gb": number_text(memory),
        "hourly_usd": number_text(hourly), "spot_hourly_usd": number_text(spot), "list_hourly_usd": "", "price_basis": basis,
        "source": source, "as_of": as_of,
    }
    fixed = (specified or {}).get((cloud, instance_type))
    if fixed:
        listed = "list price" if basis == "list" else f"list price ({basis})"
        row.update(hourly_usd=f"{fixed.hourly_usd:g}", list_hourly_usd=row["hourly_usd"], price_basis="specified",
                   source=f"{fixed.source}; {listed}: {source}", as_of=fixed.as_of)
    return row


def _aws(data_dir: Path, as_of: str, specified: dict) -> Iterable[dict[str, str]]:
    path = data_dir / "aws.csv"
    for line, r in enumerate(_read(path), start=2):
        if not r["ondemand_usd_per_hour"]:
            continue  # p5e.48xlarge: the source has a spot price only
        yield catalog_row("aws", r["instance_type"], r["region"], _gpu(r["gpu"], r["gpu_memory_gib"]), r["gpu_count"], r["vcpus"],
                          r["memory_gib"], r["ondemand_usd_per_hour"], f"{r['source']} (via ../shared/data/aws.csv line {line})",
                          as_of, spot=r["spot_usd_per_hour"], specified=specified)


def _regions(cloud: str, instance_type: str, sourced: str, extra: list[dict[str, str]], path: Path, line: int) -> tuple[list[str], str]:
    """Regions from the sourced cell (when it names any) and from `regions.csv`, with where they come from."""
    regions, notes = [], []
    if sourced and not sourced.startswith(UNVERIFIED):
        regions += [r.strip() for r in sourced.split(" (")[0].split(";")]
        notes.append(f"regions {sourced.replace(';', ' ')}")
    for entry in extra:
        if entry["cloud"] == cloud and fnmatch.fnmatchcase(instance_type, entry["instance_type"]):
            regions += entry["regions"].split()
            notes.append(f"regions {entry['regions']}: {entry['source']} (infra/data/regions.csv)")
    if not regions:
        raise BuildError(f"{path}: line {line}: {instance_type}: no region sourced; add it to {DATA_DIR / 'regions.csv'}")
    return list(dict.fromkeys(regions)), "; ".join(notes)


def _per_type(cloud: str, name_column: str, skip: Callable[[dict[str, str]], bool], basis: str, data_dir: Path,
              specified: dict, extra: list[dict[str, str]]) -> Iterable[dict[str, str]]:
    """Rows of a sourced file with one row per type (DigitalOcean, Alibaba Cloud): one catalog row per region."""
    path = data_dir / f"{cloud}.csv"
    for line, r in enumerate(_read(path), start=2):
        if skip(r):
            continue
        regions, where = _regions(cloud, r[name_column], r["regions"], extra, path, line)
        dated = ISO_DATE.search(r["source"])
        if not dated:
            raise BuildError(f"{path}: line {line}: source: no date (YYYY-MM-DD)")
        for region in regions:
            yield catalog_row(cloud, r[name_column], region, _gpu(r["gpu"], r["gpu_memory_gb"]), r["gpu_count"], r["vcpus"],
                              r["memory_gib"], r["usd_per_hour"], f"{r['source']}; {where} (via ../shared/data/{cloud}.csv line {line})",
                              dated.group(1), basis=basis, specified=specified)


def specified_prices(path: Path = DATA_DIR / "specified_prices.csv") -> dict[tuple[str, str], Specified]:
    """The project's specified cost table: (cloud, instance type) → its price, source and date."""
    return {(r["cloud"], r["instance_type"]): Specified(float(r["hourly_usd"]), r["source"], r["as_of"]) for r in _read(path)}


def build_rows(data_dir: Path) -> list[dict[str, str]]:
    """Every catalog row the sourced data supports, in a stable order (cloud as infra/clouds.py lists them, type, region).
    Raises BuildError."""
    specified = specified_prices()
    extra = _read(DATA_DIR / "regions.csv")
    rows = [
        *_aws(data_dir, _collected_on(data_dir), specified),
        # DigitalOcean's -spot sizes have a spot price only: nothing to place on-demand
        *_per_type("digitalocean", "slug", lambda r: r["slug"].endswith("-spot"), "list", data_dir, specified, extra),
        # Alibaba Cloud types without a sourced price
        *_per_type("alicloud", "instance_type", lambda r: r["usd_per_hour"].startswith(UNVERIFIED), "lowest-across-regions",
                   data_dir, specified, extra),
    ]
    missing = set(specified) - {(r["cloud"], r["instance_type"]) for r in rows}
    if missing:
        raise BuildError(f"specified_prices.csv: {', '.join(sorted('/'.join(m) for m in missing))} not in the sourced data")
    return sorted(rows, key=lambda r: (clouds.NAMES.index(r["cloud"]), r["instance_type"], r["region"]))


def catalog_text(rows: Iterable[dict[str, str]]) -> str:
    """Rows as a catalog file: the columns `catalogFile` accepts."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CATALOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
