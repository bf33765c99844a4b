"""The terminal tables of `cost`, `catalog`, `models` and `plan`: narrow enough for 100 columns by
default, every column with `--wide`. Names and numbers are never cut: a terminal too narrow for a
table loses its optional columns first, then wraps text columns.

Renderers read the JSON documents the commands emit, by key, and ignore keys they do not know.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from infra.catalog import CLOUDS

CHOSEN_MARK = "*"
NO_FIT_MARK = "x"
ALTERNATIVES_PER_CLOUD = 3
UNLIMITED = 10_000


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[dict[str, Any]], str]
    numeric: bool = False
    text: bool = False  # may wrap; names and numbers never do
    wide: bool = False  # only with --wide
    optional: bool = False  # the first to go when the terminal is too narrow


def usd(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def gpu_text(record: dict[str, Any]) -> str:
    return f"{record['gpu_count']}x {record['gpu']}" if record.get("gpu") else "CPU"


def _build(columns: list[Column], rows: list[dict[str, Any]]) -> Table:
    """A header rule, no frame, two spaces between columns (a box takes three or four)."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    for column in columns:
        table.add_column(column.header, justify="right" if column.numeric else "left",
                         no_wrap=not column.text, overflow="fold" if column.text else "ellipsis")
    for row in rows:
        table.add_row(*(column.cell(row) for column in columns))
    return table


def _natural_width(console: Console, table: Table) -> int:
    return console.measure(table, options=console.options.update_width(UNLIMITED)).maximum


def print_table(console: Console, columns: list[Column], rows: list[dict[str, Any]], wide: bool) -> None:
    """`--wide`: every column at its natural width (the terminal may wrap the lines). Otherwise the
    default columns, dropping optional ones from the right while the table is wider than the console."""
    if wide:
        table = _build(columns, rows)
        width = console.width
        console.width = max(width, _natural_width(console, table))  # print() itself never exceeds the console
        try:
            console.print(table)
        finally:
            console.width = width
        return
    shown = [c for c in columns if not c.wide]
    table = _build(shown, rows)
    while _natural_width(console, table) > console.width and any(c.optional for c in shown):
        dropped = next(c for c in reversed(shown) if c.optional)
        shown = [c for c in shown if c is not dropped]
        table = _build(shown, rows)
    console.print(table)


def say(console: Console, text: str) -> None:
    """A line of prose, wrapped at the console's width."""
    console.print(text, markup=False, highlight=False, soft_wrap=False)


# --- cost --------------------------------------------------------------------------------------

def _is_chosen(service: dict[str, Any], option: dict[str, Any]) -> bool:
    chosen = service.get("chosen")
    return bool(chosen) and all(option[k] == chosen[k] for k in ("cloud", "instance_type", "region"))


def _capacity_gb(service: dict[str, Any], option: dict[str, Any]) -> float:
    """The memory the service would sit in: the instance's RAM on CPU, its GPUs' memory otherwise."""
    if service["accelerator"] == "cpu":
        return option["memory_gb"]
    return option["gpu_count"] * option["gpu_memory_gb"] if option.get("gpu") else 0


def _shown_options(service: dict[str, Any]) -> list[dict[str, Any]]:
    """Per cloud its cheapest feasible offers (and the chosen one, which shares a node with other
    services and may not be among them), or the offer that comes closest (the most memory) to say
    why nothing there fits."""
    shown = []
    for cloud in CLOUDS:
        ranked = [o for o in service["options"] if o["cloud"] == cloud]
        feasible = [o for o in ranked if o["feasible"]]
        cheapest = feasible[:ALTERNATIVES_PER_CLOUD]
        closest = [max(ranked, key=lambda o: (_capacity_gb(service, o), -o["hourly_usd"]))] if ranked else []
        shown += [o for o in feasible if o in cheapest or _is_chosen(service, o)] or closest
    return shown


def _fit_text(service: dict[str, Any], option: dict[str, Any]) -> str:
    """Why an offer does not fit, or how much of its memory the service takes."""
    if not option["feasible"]:
        return option["reason"]
    memory = "RAM" if service["accelerator"] == "cpu" else "GPU memory"
    return f"uses {service['required_gpu_memory_gb']:g} of {_capacity_gb(service, option):g} GB {memory}"


def _cost_columns(service: dict[str, Any]) -> list[Column]:
    def mark(o: dict[str, Any]) -> str:
        return CHOSEN_MARK if _is_chosen(service, o) else ("" if o["feasible"] else NO_FIT_MARK)

    columns = [
        Column("", mark),
        Column("cloud", lambda o: o["cloud"]),
        Column("instance", lambda o: o["instance_type"]),
        Column("region", lambda o: o["region"], wide=True),
        Column("GPU", gpu_text, text=True),
        Column("GPU GB", lambda o: f"{o['gpu_count'] * o['gpu_memory_gb']:g}", numeric=True, wide=True),
        Column("vCPU", lambda o: str(o["vcpus"]), numeric=True, wide=True),
        Column("RAM GB", lambda o: f"{o['memory_gb']:g}", numeric=True, wide=True),
        Column("$/h", lambda o: usd(o["hourly_usd"]), numeric=True),
        Column("$/month", lambda o: usd(o["monthly_usd"]), numeric=True, optional=True),
    ]
    if service["kind"] == "llm":
        columns += [
            Column("tok/s", lambda o: f"{o['tokens_per_second']:,.0f}" if "tokens_per_second" in o else "-", numeric=True),
            Column("$/1M tok", lambda o: f"{o['usd_per_million_tokens']:.3f}" if "usd_per_million_tokens" in o else "-",
                   numeric=True),
        ]
    return columns + _load_columns(service) + [Column("fit", lambda o: _fit_text(service, o), text=True, wide=True)]


def _number(key: str, spec: str) -> Callable[[dict[str, Any]], str]:
    return lambda o: "-" if o.get(key) is None else format(o[key], spec)


def _load_columns(service: dict[str, Any]) -> list[Column]:
    """At the service's load (or the reference point without one): replicas, per-replica tokens/s, latency, $/1M tokens."""
    columns = [Column("repl", _number("replicas_needed", "d"), numeric=True, optional=True),
               Column("tok/s/repl", _number("tokens_per_second_per_replica", ",.0f"), numeric=True, wide=True)]
    if service["kind"] == "llm":
        return columns + [Column("ms/tok", _number("time_per_output_token_ms", ".1f"), numeric=True, optional=True),
                          Column("$/1M out", _number("usd_per_million_output_tokens", ".3f"), numeric=True, wide=True)]
    return columns + [Column("$/1M emb", _number("usd_per_million_embedded_tokens", ".4f"), numeric=True, optional=True)]


def print_cost(console: Console, preview: dict[str, Any], wide: bool = False) -> None:
    """Per service a table of its offers, then the legend and the totals."""
    for service in preview["services"]:
        memory = "RAM" if service["accelerator"] == "cpu" else "GPU memory"
        say(console, f"{service['name']} ({service['kind']}: {service['model']}, {service['dtype']}, x{service['replicas']}) "
                     f"needs {service['required_gpu_memory_gb']} GB {memory}")
        shown = _shown_options(service)
        print_table(console, _cost_columns(service), shown, wide)
        if not wide:
            for option in shown:
                if not option["feasible"]:
                    say(console, f"  {NO_FIT_MARK} {option['cloud']} {option['instance_type']}: {option['reason']}")
    say(console, f"{CHOSEN_MARK} placement's choice   {NO_FIT_MARK} nothing on that cloud fits   $: this service's replicas alone")
    if not wide:
        say(console, "--wide adds region, GPU memory, vCPU, RAM and how each offer fits; the regions are in 'By cloud'")
    where = f"{preview['cloud']} {preview['region']}" if preview["cloud"] else "no feasible placement"
    groups = "; ".join(f"{g['count']}x {g['instance_type']} ({'+'.join(g['services'])})" for g in preview["node_groups"])
    say(console, f"Stack {preview['stack']}: {where}: {groups}")
    say(console, f"Total: {usd(preview['total_hourly_usd'])} $/h, {usd(preview['total_monthly_usd'])} $/month "
                 "(each node billed once, whatever it serves)")
    for group in preview["node_groups"]:
        if group.get("price_note"):
            say(console, f"Price of {group['instance_type']} ({group['name']}): {group['price_note']}")
    comparison = ", ".join(
        " ".join(filter(None, (c["cloud"], c.get("region"), usd(c["total_hourly_usd"]), "$/h"))) if c["feasible"]
        else f"{c['cloud']} not feasible"
        for c in preview["by_cloud"]
    )
    say(console, f"By cloud (cheapest placement on each): {comparison}")
    for change in preview.get("cheaper", []):
        say(console, f"Cheaper: {change['change']}: {usd(change['hourly_usd'])} $/h (-{usd(change['saving_hourly_usd'])}) on "
                     f"{change['placement']}")
    if preview.get("spot_note"):
        say(console, preview["spot_note"])
    say(console, f"tok/s and $/1M tok are estimates: {preview['throughput_note']}")
    say(console, "repl, ms/tok and $/1M out/emb: replicas, time per output token and $ per 1M tokens at each service's "
                 "load (estimates; without a load: the reference point)")


# --- catalog, models, plan ---------------------------------------------------------------------

CATALOG_COLUMNS = [
    Column("cloud", lambda r: r["cloud"]),
    Column("instance", lambda r: r["instance_type"]),
    Column("region", lambda r: r["region"]),
    Column("GPU", gpu_text, text=True),
    Column("GB/GPU", lambda r: f"{r['gpu_memory_gb']:g}" if r.get("gpu") else "-", numeric=True, optional=True),
    Column("$/h", lambda r: f"{r['hourly_usd']:.4g}", numeric=True),
    Column("vCPU", lambda r: str(r["vcpus"]), numeric=True, wide=True),
    Column("RAM GB", lambda r: f"{r['memory_gb']:g}", numeric=True, wide=True),
    Column("as of", lambda r: str(r.get("as_of", "")), wide=True),
    Column("source", lambda r: str(r.get("source", "")), text=True, wide=True),
]


def print_catalog(console: Console, records: list[dict[str, Any]], wide: bool = False) -> None:
    say(console, f"GPU catalog ({len(records)} offers)")
    print_table(console, CATALOG_COLUMNS, records, wide)
    if not wide:
        say(console, "$/h on demand. --wide adds vCPU, RAM and each row's source; --format json has every field.")


MODEL_COLUMNS = [
    Column("model", lambda r: r["model"]),
    Column("kind", lambda r: r["kind"], text=True),
    Column("params B", lambda r: f"{r['params_b']:g}", numeric=True),
    Column("active B", lambda r: f"{r['active_params_b']:g}", numeric=True, wide=True),
    Column("context", lambda r: f"{r['max_context']:,}" if r["max_context"] else "-", numeric=True),
    Column("KV KB/token", lambda r: f"{r['kv_bytes_per_token'] / 1e3:,.0f}" if r["kv_bytes_per_token"] else "-",
           numeric=True, wide=True),
    Column("16-bit GB", lambda r: f"{r['weights_gb'].get('bf16', r['weights_gb'].get('fp16')):,.1f}", numeric=True),
    Column("fp8 GB", lambda r: f"{r['weights_gb']['fp8']:,.1f}" if "fp8" in r["weights_gb"] else "-", numeric=True, optional=True),
    Column("int4 GB", lambda r: f"{r['weights_gb']['int4']:,.1f}" if "int4" in r["weights_gb"] else "-", numeric=True,
           optional=True),
    Column("source", lambda r: r["source"], text=True, wide=True),
    Column("as of", lambda r: r["as_of"], wide=True),
]


def print_models(console: Console, records: list[dict[str, Any]], wide: bool = False) -> None:
    say(console, f"Model registry ({len(records)} models)")
    print_table(console, MODEL_COLUMNS, records, wide)
    say(console, "GB: the weights alone; placement adds the KV cache for maxModelLen and the runtime's overhead. "
                 "--wide adds active parameters, KV cache per token and the source.")


def structured(value: Any) -> str:
    """An output as a user reads it: text as is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def print_plan(console: Console, document: dict[str, Any]) -> None:
    say(console, f"Offline plan of stack {document['stack']}: {len(document['resources'])} resources")
    columns = [Column("type", lambda r: r["type"], text=True), Column("name", lambda r: r["name"], text=True)]
    print_table(console, columns, document["resources"], wide=False)
    for key, value in document["outputs"].items():
        console.print(f"{key}: {structured(value)}", markup=False, highlight=False)
