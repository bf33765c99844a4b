"""GPU catalog: instance offers per cloud and region, read from data files with a source per row.

`data/catalog.csv` lists instance types (one row each, with the regions they are offered in);
`data/gpus.csv` holds per-GPU facts (architecture, bandwidth, FLOPS) joined onto each offer.
A stack may replace the catalog (`catalogFile`) and override prices (`priceOverrides`).
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass, replace
from pathlib import Path

from infra.plan import Offer

DATA_DIR = Path(__file__).parent / "data"
CATALOG_COLUMNS = (
    "cloud",
    "instance_type",
    "gpu",
    "gpu_count",
    "gpu_memory_gb",
    "vcpus",
    "memory_gb",
    "hourly_usd",
    "regions",
    "source",
    "as_of",
)
CLOUDS = ("aws", "digitalocean", "alicloud")


class CatalogError(ValueError):
    """A catalog file that cannot be used; the message names the file, row and column."""


@dataclass(frozen=True)
class GpuSpec:
    name: str
    cuda: bool
    compute_capability: float | None
    tei_arch: str | None
    memory_bandwidth_gbps: float
    bf16_tflops: float


@functools.cache
def gpu_specs() -> dict[str, GpuSpec]:
    with open(DATA_DIR / "gpus.csv", newline="") as handle:
        return {
            row["gpu"]: GpuSpec(
                name=row["gpu"],
                cuda=row["cuda"] == "true",
                compute_capability=float(row["compute_capability"]) if row["compute_capability"] else None,
                tei_arch=row["tei_arch"] or None,
                memory_bandwidth_gbps=float(row["memory_bandwidth_gbps"]),
                bf16_tflops=float(row["bf16_tflops"]),
            )
            for row in csv.DictReader(handle)
        }


def _offers_from_row(path: Path, line: int, row: dict[str, str]) -> list[Offer]:
    def number(column: str, kind: type = float) -> float:
        try:
            return kind(row[column])
        except (TypeError, ValueError):
            raise CatalogError(f"{path}: line {line}: {column}: {row[column]!r} is not a number") from None

    if row["cloud"] not in CLOUDS:
        raise CatalogError(f"{path}: line {line}: cloud: {row['cloud']!r} must be one of {', '.join(CLOUDS)}")
    gpu_name = row["gpu"] or None
    gpu_count = int(number("gpu_count", int))
    spec = gpu_specs().get(gpu_name) if gpu_name else None
    if gpu_name and spec is None:
        raise CatalogError(f"{path}: line {line}: gpu: unknown GPU {gpu_name!r} (known: {', '.join(gpu_specs())})")
    regions = row["regions"].split()
    if not regions:
        raise CatalogError(f"{path}: line {line}: regions: empty")
    return [
        Offer(
            cloud=row["cloud"],
            instance_type=row["instance_type"],
            region=region,
            gpu=gpu_name,
            gpu_count=gpu_count,
            gpu_memory_gb=number("gpu_memory_gb"),
            vcpus=int(number("vcpus", int)),
            memory_gb=number("memory_gb"),
            hourly_usd=number("hourly_usd"),
            source=row["source"],
            as_of=row["as_of"],
            gpu_arch=spec.tei_arch if spec else None,
            compute_capability=spec.compute_capability if spec else None,
            memory_bandwidth_gbps=spec.memory_bandwidth_gbps if spec else None,
            bf16_tflops=spec.bf16_tflops if spec else None,
            cuda=bool(spec and spec.cuda),
        )
        for region in regions
    ]


@functools.cache
def read_catalog(path: Path = DATA_DIR / "catalog.csv") -> tuple[Offer, ...]:
    """Every (instance type, region) offer in a catalog file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise CatalogError(f"{path}: cannot be read ({exc.strerror})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in CATALOG_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise CatalogError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(CATALOG_COLUMNS)}")
    return tuple(offer for line, row in enumerate(reader, start=2) for offer in _offers_from_row(path, line, row))


def load_offers(catalog_file: str | None = None, price_overrides: dict[str, float] | None = None) -> tuple[Offer, ...]:
    """The offers a stack places on: its catalog, with its negotiated prices applied."""
    offers = read_catalog(Path(catalog_file)) if catalog_file else read_catalog()
    overrides = price_overrides or {}
    known = {f"{o.cloud}/{o.instance_type}" for o in offers}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise CatalogError(f"priceOverrides: {', '.join(unknown)} not in the catalog")
    return tuple(
        replace(o, hourly_usd=overrides[key], source=f"priceOverrides (catalog: {o.hourly_usd}; {o.source})")
        if (key := f"{o.cloud}/{o.instance_type}") in overrides
        else o
        for o in offers
    )


def offer_record(offer: Offer) -> dict[str, object]:
    """An offer as the CLI contract spells it."""
    return {
        "cloud": offer.cloud,
        "instance_type": offer.instance_type,
        "region": offer.region,
        "gpu": offer.gpu,
        "gpu_count": offer.gpu_count,
        "gpu_memory_gb": offer.gpu_memory_gb,
        "vcpus": offer.vcpus,
        "memory_gb": offer.memory_gb,
        "hourly_usd": offer.hourly_usd,
        "source": offer.source,
        "as_of": offer.as_of,
    }
