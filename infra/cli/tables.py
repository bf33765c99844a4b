"""Printing reports on the terminal: narrow enough for 100 columns by default, every column with
`--wide`. Names and numbers are never cut: a terminal too narrow for a table loses its optional
columns first, then wraps text columns.

`cost` and `plan` results render themselves into `infra.report` blocks (`infra.cost_report`,
`infra.plan_summary`); the catalog and model tables read their JSON records by key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table as RichTable

from infra.report import Block, Column, Prose, Table

UNLIMITED = 10_000


def gpu_text(record: dict[str, Any]) -> str:
    return f"{record['gpu_count']}x {record['gpu']}" if record.get("gpu") else "CPU"


def _build(columns: Sequence[Column], rows: Sequence[Any]) -> RichTable:
    """A header rule, no frame, two spaces between columns (a box takes three or four)."""
    table = RichTable(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    for column in columns:
        table.add_column(column.header, justify="right" if column.numeric else "left",
                         no_wrap=not column.text, overflow="fold" if column.text else "ellipsis")
    for row in rows:
        table.add_row(*(column.cell(row) for column in columns))
    return table


def _natural_width(console: Console, table: RichTable) -> int:
    return console.measure(table, options=console.options.update_width(UNLIMITED)).maximum


def print_table(console: Console, columns: Sequence[Column], rows: Sequence[Any], wide: bool) -> None:
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


def print_blocks(console: Console, blocks: Iterable[Block], wide: bool = False) -> None:
    """A report a result rendered (`infra.report` blocks): prose wrapped, tables fitted, lines as they are."""
    for block in blocks:
        if isinstance(block, Table):
            print_table(console, block.columns, block.rows, wide)
        elif isinstance(block, Prose):
            say(console, block.text)
        else:
            console.print(block.text, markup=False, highlight=False)


# --- catalog, models ---------------------------------------------------------------------

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


KV_COLUMN = Column("KV KB/token", lambda r: f"{r['kv_bytes_per_token'] / 1e3:,.0f}" if r["kv_bytes_per_token"] else "-",
                   numeric=True, wide=True)
SOURCE_COLUMNS = (Column("source", lambda r: r["source"], text=True, wide=True), Column("as of", lambda r: r["as_of"], wide=True))

MODEL_COLUMNS = [
    Column("model", lambda r: r["model"]),
    Column("kind", lambda r: r["kind"], text=True),
    Column("params B", lambda r: f"{r['params_b']:g}", numeric=True),
    Column("active B", lambda r: f"{r['active_params_b']:g}", numeric=True, wide=True),
    Column("context", lambda r: f"{r['max_context']:,}" if r["max_context"] else "-", numeric=True),
    KV_COLUMN,
    Column("16-bit GB", lambda r: f"{r['weights_gb'].get('bf16', r['weights_gb'].get('fp16')):,.1f}", numeric=True),
    Column("fp8 GB", lambda r: f"{r['weights_gb']['fp8']:,.1f}" if "fp8" in r["weights_gb"] else "-", numeric=True, optional=True),
    Column("int4 GB", lambda r: f"{r['weights_gb']['int4']:,.1f}" if "int4" in r["weights_gb"] else "-", numeric=True,
           optional=True),
    *SOURCE_COLUMNS,
]


def print_models(console: Console, records: list[dict[str, Any]], wide: bool = False) -> None:
    say(console, f"Model registry ({len(records)} models)")
    print_table(console, MODEL_COLUMNS, records, wide)
    say(console, "GB: the weights alone; placement adds the KV cache for maxModelLen and the runtime's overhead. "
                 "--wide adds active parameters, KV cache per token and the source. "
                 "--engine ollama lists the Ollama tags.")


OLLAMA_TAG_COLUMNS = [
    Column("tag", lambda r: r["tag"]),
    Column("params B", lambda r: f"{r['params_b']:g}", numeric=True),
    Column("quantisation", lambda r: r["quantization"]),
    Column("GB", lambda r: f"{r['size_gb']:,.1f}", numeric=True),
    Column("context", lambda r: f"{r['context_length']:,}" if r["context_length"] else "-", numeric=True),
    KV_COLUMN,
    *SOURCE_COLUMNS,
]


def print_ollama_tags(console: Console, records: list[dict[str, Any]], wide: bool = False) -> None:
    say(console, f"Ollama tags ({len(records)} built in; engine: ollama)")
    print_table(console, OLLAMA_TAG_COLUMNS, records, wide)
    say(console, "GB: the GGUF file; placement adds the 16-bit KV cache for every slot and 1 GB for the runner. "
                 "Another tag needs paramsB and a quantisation suffix. --wide adds KV cache per token and the source.")
