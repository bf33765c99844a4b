"""GPU catalog: instance offers per cloud and region, read from data files with a source per row.

`data/catalog.csv` has one row per cloud, instance type and region, with that region's on-demand
price (and spot price where sourced); `catalog_build.py` writes it from the sourced data. A row may
instead list several regions in a `regions` column (one price for all of them): the older form,
still read. `data/gpus.csv` holds per-GPU facts (architecture, bandwidth, FLOPS) joined onto each
offer. A stack may replace the catalog (`catalogFile`) and override prices (`priceOverrides`).
"""

from __future__ import annotations

import csv
import functools
import io
import math
from dataclasses import dataclass, replace
from pathlib import Path

from infra import clouds
from infra.data_files import DATA_DIR
from infra.errors import BadInput, Problem
from infra.plan import Offer

# The columns the built-in catalog (and `catalog refresh`) write, in order.
CATALOG_COLUMNS = (
    "cloud",
    "instance_type",
    "region",
    "gpu",
    "gpu_count",
    "gpu_memory_gb",
    "vcpus",
    "memory_gb",
    "hourly_usd",
    "spot_hourly_usd",
    "list_hourly_usd",
    "price_basis",
    "source",
    "as_of",
)
REGION_COLUMNS = ("region", "regions")  # one of them: a row's region, or (older form) its regions
OPTIONAL_COLUMNS = ("spot_hourly_usd", "list_hourly_usd", "price_basis")
REQUIRED_COLUMNS = tuple(c for c in CATALOG_COLUMNS if c not in REGION_COLUMNS + OPTIONAL_COLUMNS)
# What a row's hourly_usd is: the provider's list price in that region, the project's specified cost
# table (list_hourly_usd then holds the list price), or the lowest list price across the cloud's regions.
PRICE_BASES = ("list", "specified", "lowest-across-regions")  # a stack's priceOverrides make a fourth: "override"
CLOUDS = clouds.NAMES  # the clouds a row may name


class CatalogError(BadInput):
    """A catalog file that cannot be used, or a price override not in it: `problem` names the file, line and column
    (a priceOverrides problem has no source: the stack's file is not known here)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass(frozen=True)
class GpuSpec:
    name: str
    cuda: bool
    compute_capability: float | None
    tei_arch: str | None
    memory_gb: float
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
                memory_gb=float(row["memory_gb"]),
                memory_bandwidth_gbps=float(row["memory_bandwidth_gbps"]),
                bf16_tflops=float(row["bf16_tflops"]),
            )
            for row in csv.DictReader(handle)
        }


MAX_CATALOG_BYTES = 4 * 1024 * 1024
MAX_FIELD_LENGTH = 1024  # characters in one catalog cell (the longest source note is ~300)


@dataclass(frozen=True)
class Number:
    """A numeric catalog column: its type and the finite range it must lie in."""

    kind: type
    low: float
    high: float
    low_inclusive: bool = True

    def parse(self, text: str) -> float:
        try:
            value = self.kind(text)
        except ValueError:
            raise ValueError(f"{text!r} is not {'a whole number' if self.kind is int else 'a number'}") from None
        if self.kind is float and not math.isfinite(value):
            raise ValueError(f"{text!r} is not a finite number")
        if value < self.low or (value == self.low and not self.low_inclusive) or value > self.high:
            low = f"{'>=' if self.low_inclusive else '>'} {self.low:g}"
            raise ValueError(f"{text!r} is out of range (must be {low} and <= {self.high:g})")
        return value


PRICE = Number(float, 0, 100_000, low_inclusive=False)
# The numeric columns and their ranges; a column not listed here is text (at most MAX_FIELD_LENGTH characters).
# A GPU row must also have gpu_count >= 1 and gpu_memory_gb > 0 (checked per row).
NUMBER_COLUMNS = {
    "gpu_count": Number(int, 0, 64),
    "gpu_memory_gb": Number(float, 0, 10_000),
    "vcpus": Number(int, 1, 10_000),
    "memory_gb": Number(float, 0, 100_000, low_inclusive=False),
    "hourly_usd": PRICE,
    "spot_hourly_usd": PRICE,
    "list_hourly_usd": PRICE,
}


def _cells(path: Path, line: int, row: dict[str | None, str | None]) -> dict[str, str]:
    """A row's cells, checked column by column: as many as the header, each short, numbers in range."""
    if None in row:
        raise CatalogError(Problem(str(path), f"line {line}", f"{len(row) - 1 + len(row[None] or [])} fields, the header has {len(row) - 1}"))
    short = [column for column, text in row.items() if text is None]
    if short:
        raise CatalogError(Problem(str(path), f"line {line}: {short[0]}", "missing (the row has fewer fields than the header)"))
    for column, text in row.items():
        if len(text) > MAX_FIELD_LENGTH:
            raise CatalogError(Problem(str(path), f"line {line}: {column}", f"longer than {MAX_FIELD_LENGTH} characters"))
        if column in NUMBER_COLUMNS and (text or column not in OPTIONAL_COLUMNS):
            try:
                NUMBER_COLUMNS[column].parse(text)
            except ValueError as exc:
                raise CatalogError(Problem(str(path), f"line {line}: {column}", str(exc))) from None
    return row  # type: ignore[return-value]


def _offers_from_row(path: Path, line: int, raw_row: dict[str | None, str | None]) -> list[Offer]:
    row = _cells(path, line, raw_row)

    def number(column: str) -> float:
        return NUMBER_COLUMNS[column].parse(row[column])

    def optional_number(column: str) -> float | None:
        return number(column) if row.get(column) else None

    if row["cloud"] not in CLOUDS:
        raise CatalogError(Problem(str(path), f"line {line}: cloud", f"{row['cloud']!r} must be one of {', '.join(CLOUDS)}"))
    gpu_name = row["gpu"] or None
    gpu_count = int(number("gpu_count"))
    spec = gpu_specs().get(gpu_name) if gpu_name else None
    if gpu_name and spec is None:
        raise CatalogError(Problem(str(path), f"line {line}: gpu", f"unknown GPU {gpu_name!r} (known: {', '.join(gpu_specs())})"))
    if gpu_name and (gpu_count < 1 or number("gpu_memory_gb") <= 0):
        column = "gpu_count" if gpu_count < 1 else "gpu_memory_gb"
        raise CatalogError(Problem(str(path), f"line {line}: {column}", f"must be > 0 on a GPU instance (gpu {gpu_name})"))
    unbootable = clouds.get(row["cloud"]).gpu_count_problem(gpu_count) if spec and spec.cuda else None
    if unbootable:
        raise CatalogError(Problem(str(path), f"line {line}: gpu_count", unbootable))
    if not gpu_name and (gpu_count or number("gpu_memory_gb")):
        column = "gpu_count" if gpu_count else "gpu_memory_gb"
        raise CatalogError(Problem(str(path), f"line {line}: {column}", "must be 0 without a gpu"))
    region_column = "region" if "region" in row else "regions"
    regions = (row[region_column] or "").split()
    if not regions:
        raise CatalogError(Problem(str(path), f"line {line}: {region_column}", "empty"))
    basis = row.get("price_basis") or "list"
    if basis not in PRICE_BASES:
        raise CatalogError(Problem(str(path), f"line {line}: price_basis", f"{basis!r} must be one of {', '.join(PRICE_BASES)}"))
    return [
        Offer(
            cloud=row["cloud"],
            instance_type=row["instance_type"],
            region=region,
            gpu=gpu_name,
            gpu_count=gpu_count,
            gpu_memory_gb=number("gpu_memory_gb"),
            vcpus=int(number("vcpus")),
            memory_gb=number("memory_gb"),
            hourly_usd=number("hourly_usd"),
            spot_hourly_usd=optional_number("spot_hourly_usd"),
            list_hourly_usd=optional_number("list_hourly_usd"),
            price_basis=basis,
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
    """Every (instance type, region) offer in a catalog file, read once per process. Raises CatalogError."""
    return parse_catalog(path)


def parse_catalog(path: Path) -> tuple[Offer, ...]:
    """Every (instance type, region) offer in a catalog file as it is now (`catalog refresh` rereads what it wrote).

    Raises CatalogError naming the file, line and column of the first row it cannot use.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CATALOG_BYTES + 1)
    except OSError as exc:
        raise CatalogError(Problem(str(path), "", f"cannot be read ({exc.strerror})")) from None
    except ValueError as exc:  # a NUL byte in the name
        raise CatalogError(Problem(str(path), "", f"cannot be read ({exc})")) from None
    if len(data) > MAX_CATALOG_BYTES:
        raise CatalogError(Problem(str(path), "", f"larger than {MAX_CATALOG_BYTES} bytes"))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CatalogError(Problem(str(path), "", f"not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x})")) from None
    if "\0" in text:
        raise CatalogError(Problem(str(path), f"line {text.count(chr(10), 0, text.index(chr(0))) + 1}", "a NUL byte"))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        columns = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if not set(REGION_COLUMNS) & set(columns):
            missing.append(" or ".join(REGION_COLUMNS))
        if missing:
            raise CatalogError(Problem(str(path), "", f"missing column(s) {', '.join(missing)}", f"expected {', '.join(CATALOG_COLUMNS)}"))
        return tuple(offer for row in reader for offer in _offers_from_row(path, reader.line_num, row))
    except csv.Error as exc:  # e.g. a field over the csv module's 128 KiB limit, an unclosed quote
        raise CatalogError(Problem(str(path), f"line {reader.line_num + 1}", f"not valid CSV ({exc})")) from None


def load_offers(catalog_file: str | None = None, price_overrides: dict[str, float] | None = None) -> tuple[Offer, ...]:
    """The offers a stack places on: its catalog, with its negotiated prices applied.

    An override keyed `cloud/instance_type/region` prices that region only and wins over one keyed
    `cloud/instance_type`, which prices every region of the type.

    Raises CatalogError: the catalog's (see parse_catalog), or field `priceOverrides` for keys not in it.
    """
    offers = read_catalog(Path(catalog_file)) if catalog_file else read_catalog()
    overrides = price_overrides or {}
    unknown = unknown_overrides(offers, overrides)
    if unknown:
        raise CatalogError(Problem("", "priceOverrides", f"{', '.join(unknown)} not in the catalog"))

    def override(o: Offer) -> Offer:
        key = next((k for k in (f"{o.cloud}/{o.instance_type}/{o.region}", f"{o.cloud}/{o.instance_type}") if k in overrides), None)
        if key is None:
            return o
        return replace(o, hourly_usd=overrides[key], price_basis="override", list_hourly_usd=o.list_hourly_usd or o.hourly_usd,
                       source=f"priceOverrides (catalog: {o.hourly_usd}; {o.source})")

    return tuple(override(o) for o in offers)


def unknown_overrides(offers: tuple[Offer, ...], price_overrides: dict[str, float]) -> list[str]:
    """The price override keys (`cloud/instance_type[/region]`) that name no offer, sorted."""
    known = {k for o in offers for k in (f"{o.cloud}/{o.instance_type}", f"{o.cloud}/{o.instance_type}/{o.region}")}
    return sorted(set(price_overrides) - known)


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
        "spot_hourly_usd": offer.spot_hourly_usd,
        "list_hourly_usd": offer.list_hourly_usd,
        "price_basis": offer.price_basis,
        "source": offer.source,
        "as_of": offer.as_of,
    }
