"""`llm-deploy` (and `python -m infra`): catalog, models, validate, cost, plan, preflight, images, schedule, env, status.

Exit status: 0 ok, 2 bad input (config, budget, usage), 1 anything else; each is one line on
stderr, never a traceback unless `--debug`. `cost` stops after placement and never imports a
cloud SDK; `plan` runs the stack program under Pulumi's mock engine.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from infra.catalog import CLOUDS, DATA_DIR, load_offers, offer_record, parse_catalog
from infra.cli import tables
from infra.config import load_raw
from infra.cost import cost_preview
from infra.cost_report import cost_markdown, cost_table
from infra.errors import EXIT_BAD_INPUT, ConfigError, LlmDeployError, Problem
from infra.models import model_record, registry
from infra.placement import evaluate, load_config, stack_offers
from infra.plan_summary import plan_report

app = typer.Typer(add_completion=False, help="Cost previews and offline plans for llm-deploy stacks.")
# Piped output (CI logs, files) gets room for the whole table instead of the 80-column fallback.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160)
err = Console(stderr=True, soft_wrap=True)


class Format(str, Enum):
    table = "table"
    json = "json"


class CostFormat(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"


StackOption = Annotated[str | None, typer.Option("--stack", "-s", help="Stack name: reads stacks/Pulumi.NAME.yaml.")]
ConfigOption = Annotated[str | None, typer.Option("--config", "-c", help="A file of the Pulumi.<stack>.yaml form.")]
StacksDirOption = Annotated[Path, typer.Option("--stacks-dir", help="Where the stack files live.")]
WideOption = Annotated[bool, typer.Option("--wide", help="Every column (the default fits 100 columns).")]


class Session:
    """What the root options set for the run: `--debug` shows tracebacks of unexpected errors."""

    debug = False


def print_problems(problems: Iterable[Problem | str]) -> None:
    for line in problems:
        err.print(str(line), markup=False, highlight=False)


def fail(problems: Iterable[Problem | str], code: int = EXIT_BAD_INPUT) -> NoReturn:
    print_problems(problems)
    raise typer.Exit(code)


def emit_json(document: Any) -> None:
    """Strict JSON: a NaN or Infinity here is a bug (inputs are finite), so it fails rather than print what is not JSON."""
    sys.stdout.write(json.dumps(document, indent=2, allow_nan=False) + "\n")


def require_command(ctx: typer.Context) -> None:
    """A group run without a command: one line naming the commands, exit 2 (not a page of help)."""
    if ctx.invoked_subcommand is None:
        commands = ", ".join(ctx.command.list_commands(ctx))
        fail([f"{ctx.command_path}: missing a command: {commands} (see '{ctx.command_path} --help')"])


@app.callback(invoke_without_command=True)
def root(ctx: typer.Context, debug: Annotated[bool, typer.Option(
        "--debug", envvar="LLM_DEPLOY_DEBUG", help="Show the traceback of an unexpected error.")] = False) -> None:
    Session.debug = debug
    require_command(ctx)


def _evaluation(stack: str | None, config: str | None, stacks_dir: Path):
    return evaluate(load_config(load_raw(stack, config, stacks_dir)))


catalog_app = typer.Typer(no_args_is_help=False, help="The offers placement chooses from; `build` and `refresh` write catalog files.")
app.add_typer(catalog_app, name="catalog")


@catalog_app.callback(invoke_without_command=True)
def catalog(
    ctx: typer.Context,
    cloud: Annotated[str | None, typer.Option(help=f"Only this cloud: {', '.join(CLOUDS)}.")] = None,
    gpu: Annotated[str | None, typer.Option(help="Only this GPU model, e.g. H100.")] = None,
    catalog_file: Annotated[str | None, typer.Option("--catalog-file", help="A catalog of your own, same columns.")] = None,
    stack: StackOption = None,
    config: ConfigOption = None,
    stacks_dir: StacksDirOption = Path("stacks"),
    format: Annotated[Format, typer.Option("--format")] = Format.table,
    wide: WideOption = False,
) -> None:
    """List the GPU (and CPU) offers placement chooses from; with a stack, its catalogFile and priceOverrides."""
    if ctx.invoked_subcommand:
        return
    if cloud is not None and cloud not in CLOUDS:
        fail([f"--cloud: must be one of {', '.join(CLOUDS)}"])
    if stack or config:
        listed = stack_offers(load_config(load_raw(stack, config, stacks_dir)), catalog_file)
    else:
        listed = load_offers(catalog_file)
    offers = [o for o in listed if (cloud is None or o.cloud == cloud)
              and (gpu is None or (o.gpu or "").upper() == gpu.upper())]
    records = [offer_record(o) for o in sorted(offers, key=lambda o: (o.cloud, o.hourly_usd, o.instance_type, o.region))]
    if format is Format.json:
        emit_json(records)
        return
    tables.print_catalog(out, records, wide)


@catalog_app.command("build")
def catalog_build(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="The sourced instance data (aws.csv, digitalocean.csv, alicloud.csv).")]
    = Path("../shared/data"),
    output: Annotated[Path, typer.Option("--output", help="The catalog file to write.")] = DATA_DIR / "catalog.csv",
) -> None:
    """Build the catalog (one row per cloud, instance type and region) from the sourced data."""
    from infra.catalog_build import build_rows, catalog_text

    rows = build_rows(data_dir)
    output.write_text(catalog_text(rows))
    counts = ", ".join(f"{c} {sum(r['cloud'] == c for r in rows)}" for c in CLOUDS)
    err.print(f"wrote {output}: {len(rows)} rows ({counts})", markup=False)


@catalog_app.command("refresh")
def catalog_refresh(
    cloud: Annotated[list[str] | None, typer.Option("--cloud", help=f"Only this cloud (repeatable): {', '.join(CLOUDS)}.")] = None,
    output: Annotated[Path, typer.Option("--output", help="The catalog file to write.")] = DATA_DIR / "catalog.csv",
    catalog_file: Annotated[str | None, typer.Option("--catalog-file", help="The current catalog (default: the built-in one).")]
    = None,
) -> None:
    """Fetch current prices and offerings from the providers' APIs; write a catalog file; print what changed."""
    from infra.catalog_build import catalog_text
    from infra.cli.refresh import MissingCredentials, RefreshError, changes, fetchers, offer_row, types_of

    unknown = sorted(set(cloud or ()) - set(CLOUDS))
    if unknown:
        fail([f"--cloud: {', '.join(unknown)}: must be one of {', '.join(CLOUDS)}"])
    current = load_offers(catalog_file)
    rows, refreshed, failed = [], [], []
    for name, fetch in fetchers().items():
        keep = [offer_row(o) for o in current if o.cloud == name]  # written back when the cloud is not refreshed
        if cloud and name not in cloud:
            rows += keep
            continue
        mine = [o for o in current if o.cloud == name]
        err.print(f"{name}: refreshing {len(types_of(mine))} instance types", markup=False)
        try:
            rows += fetch(mine, lambda line: err.print(line, markup=False, highlight=False))
            refreshed.append(name)
        except (MissingCredentials, RefreshError) as error:
            err.print(f"{name}: not refreshed, its {len(keep)} current rows kept: {error}", markup=False, highlight=False)
            failed += [name] if isinstance(error, RefreshError) else []
            rows += keep
    if not refreshed:
        fail(["catalog refresh: no cloud could be refreshed; nothing written"], code=1)
    output.write_text(catalog_text(rows))
    found = changes(current, parse_catalog(output), refreshed)
    for line in found.lines():
        out.print(line, markup=False, highlight=False)
    out.print(f"wrote {output}: {len(rows)} rows; {', '.join(refreshed)} refreshed: {found.summary()}", markup=False)
    if failed:
        raise typer.Exit(1)


class Engine(str, Enum):
    vllm = "vllm"
    ollama = "ollama"


@app.command()
def models(
    format: Annotated[Format, typer.Option("--format")] = Format.table,
    wide: WideOption = False,
    engine: Annotated[Engine, typer.Option("--engine", help="vllm: the model registry; ollama: the built-in Ollama tags.")] = Engine.vllm,
) -> None:
    """List the model registry (infra/data/models.csv): size, context, KV cache per token, weights per dtype;
    with --engine ollama the built-in Ollama tags (infra/data/ollama_models.csv)."""
    if engine is Engine.ollama:
        from infra.ollama import tag_record, tags

        records = [tag_record(tag) for tag in tags().values()]
    else:
        records = [model_record(info) for info in registry().values()]
    if format is Format.json:
        emit_json(records)
    elif engine is Engine.ollama:
        tables.print_ollama_tags(out, records, wide)
    else:
        tables.print_models(out, records, wide)


@app.command()
def validate(
    stack: StackOption = None,
    config: ConfigOption = None,
    stacks_dir: StacksDirOption = Path("stacks"),
    format: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Check a stack config: keys, values, that placement can serve it within its budget, and what the
    program checks before it creates anything (each node group's user-data within the cloud's limit)."""
    try:
        evaluation = _evaluation(stack, config, stacks_dir)
        problems = list(evaluation.problems)
        if evaluation.plan is not None and not problems:
            from components.stack import user_data_problems  # loads the chosen cloud's SDK

            problems = user_data_problems(evaluation.config, evaluation.plan)
    except ConfigError as error:
        evaluation, problems = None, error.problems
    plan = evaluation.plan if evaluation else None
    if format is Format.json:
        emit_json({
            "stack": evaluation.config.stack if evaluation else stack,
            "valid": not problems,
            "problems": [str(p) for p in problems],
            "cloud": plan.cloud if plan else None,
            "region": plan.region if plan else None,
            "total_hourly_usd": plan.hourly_usd if plan else None,
        })
        if problems:
            raise typer.Exit(EXIT_BAD_INPUT)
        return
    if problems:
        fail(problems)
    assert plan is not None and evaluation is not None
    groups = ", ".join(f"{g.count}x {g.offer.instance_type} ({'+'.join(s.name for s in g.services)})" for g in plan.node_groups)
    out.print(f"{evaluation.config.source}: ok: {plan.cloud} {plan.region}: {groups}: {plan.hourly_usd:.2f} $/h", markup=False)


def _cost_diff(against: str, stack: str | None, config: str | None, stacks_dir: Path, format: CostFormat) -> None:
    """`cost --diff-against`: what every stack's placement costs now against a git ref or a saved preview."""
    from infra import cost_diff
    from infra.cli.cost_sources import file_previews, ref_previews, tree_previews

    if config:
        fail(["--diff-against: compares stack files by name; use --stack (or no option for every stack), not --config"])
    only = [stack] if stack else None
    if Path(against).is_file():
        before = file_previews(Path(against))
        only = only or list(before)
    else:
        before = ref_previews(against, stacks_dir, only)
    result = cost_diff.diff(before, tree_previews(stacks_dir, only), against, "working tree")
    if format is CostFormat.json:
        emit_json(result.as_json())
    elif format is CostFormat.markdown:
        sys.stdout.write(cost_diff.markdown(result))
    else:
        out.print(cost_diff.total_line(result), markup=False)
        if not cost_diff.rows(result):
            out.print("No node group changes its cost.", markup=False)
            return
        table = Table(title=f"Cost change: {against} -> working tree", title_justify="left")
        for column in cost_diff.COLUMNS:
            table.add_column(column, justify="right" if column in cost_diff.NUMERIC else "left")
        for row in cost_diff.rows(result):
            table.add_row(*row)
        out.print(table)


@app.command()
def cost(
    stack: StackOption = None,
    config: ConfigOption = None,
    stacks_dir: StacksDirOption = Path("stacks"),
    format: Annotated[CostFormat, typer.Option("--format")] = CostFormat.table,
    max_hourly_usd: Annotated[float | None, typer.Option("--max-hourly-usd", help="Exit 2 when the stack costs more per hour.")] = None,
    diff_against: Annotated[str | None, typer.Option(
        "--diff-against", metavar="REF|FILE",
        help="Compare every stack (or --stack) with a git ref's stacks and catalog, or a saved `cost --format json`.")] = None,
    wide: WideOption = False,
) -> None:
    """Cost comparison preview: the cheapest feasible placement, alternatives per cloud, totals."""
    if diff_against is not None:
        _cost_diff(diff_against, stack, config, stacks_dir, format)
        return
    preview = cost_preview(_evaluation(stack, config, stacks_dir))
    total = preview.total_hourly_usd
    if max_hourly_usd is not None and total is not None and total > max_hourly_usd:
        preview = preview.with_problem(
            Problem("", "--max-hourly-usd", f"the stack costs {total:.2f} $/h, over the limit of {max_hourly_usd:.2f} $/h"))
    if format is CostFormat.json:
        emit_json(preview.as_json())
    elif format is CostFormat.markdown:
        sys.stdout.write(cost_markdown(preview))
    else:
        tables.print_blocks(out, cost_table(preview, wide), wide)
    if preview.problems:
        fail(preview.problems)


@app.command()
def plan(
    stack: StackOption = None,
    config: ConfigOption = None,
    stacks_dir: StacksDirOption = Path("stacks"),
    format: Annotated[Format, typer.Option("--format")] = Format.json,
    render_dir: Annotated[Path | None, typer.Option("--render-dir", help="Write each node group's user-data here.")] = None,
) -> None:
    """Run the stack's Pulumi program offline (mock engine): every resource, its inputs, the outputs."""
    from infra.cli.offline import run_offline

    result = run_offline(load_raw(stack, config, stacks_dir))
    written = result.render(render_dir) if render_dir else []
    if format is Format.json:
        emit_json(result.summary.as_json())
    else:
        tables.print_blocks(out, plan_report(result.summary))
    for path in written:
        err.print(f"wrote {path}", markup=False)


@app.command()
def preflight(
    stack: StackOption = None,
    config: ConfigOption = None,
    stacks_dir: StacksDirOption = Path("stacks"),
    format: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Ask the stack's cloud whether this account can build it: per node group the zones offering its type and
    the quota needed against the quota left. Without credentials: what could not be checked (exit 0)."""
    from infra.cli import preflight as checks

    evaluation = _evaluation(stack, config, stacks_dir)
    if evaluation.problems or evaluation.plan is None:
        fail(list(evaluation.problems))
    result = checks.run(evaluation.plan)
    if format is Format.json:
        emit_json(result.as_json())
    else:
        out.print(checks.table(result))
        out.print(checks.lines(result)[-1], markup=False, highlight=False)
    if result.failed:
        fail(result.problems(), code=result.exit_code)


@app.command()
def images(
    stack: StackOption = None,
    config: ConfigOption = None,
    stacks_dir: StacksDirOption = Path("stacks"),
    update: Annotated[bool, typer.Option("--update", help="Ask the cloud for the newest image ids and pin them in the stack file.")]
    = False,
    format: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Each node group's machine image: the id pinned in `nodeImages`, or unpinned (resolved at the first
    `pulumi up`, then kept). `--update` writes the cloud's newest ids into the stack file (needs credentials)."""
    from infra.cli import images as pins

    raw = load_raw(stack, config, stacks_dir)
    evaluation = evaluate(load_config(raw))
    if evaluation.problems or evaluation.plan is None:
        fail(list(evaluation.problems))
    plan = evaluation.plan
    before = pins.group_images(plan)
    if update:
        newest = pins.newest(plan)
        pins.write_pins(Path(raw.source), newest)
        plan = evaluate(load_config(load_raw(stack, config, stacks_dir))).plan
        assert plan is not None, "the stack placed before its pins changed"
    shown = pins.group_images(plan)
    if format is Format.json:
        emit_json({"stack": plan.stack, "cloud": plan.cloud, "region": plan.region, "updated": update,
                   "node_groups": [g.as_json() for g in shown]})
        return
    for old, new in zip(before, shown, strict=True):
        change = f" (was {old.image or pins.UNPINNED})" if update and old.image != new.image else ""
        out.print(f"{new.name} ({plan.cloud} {new.instance_type}): {new.image or pins.UNPINNED}{change}", markup=False, highlight=False)
    if update:
        out.print(f"wrote {raw.source}: nodeImages", markup=False)
    elif any(g.image is None for g in shown):
        out.print(f"{pins.UNPINNED}: resolved at the first `pulumi up`, then kept; `--update` pins the newest", markup=False)


def _instant(text: str, option: str = "--at") -> datetime:
    """`now`, or an ISO 8601 time with its offset (a time without one names no instant)."""
    if text == "now":
        return datetime.now(UTC)
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        fail([f"{option}: {text!r} is not an ISO 8601 time (e.g. 2026-12-01T08:00:00+01:00, or now)"])
    if instant.tzinfo is None:
        fail([f"{option}: {text!r} has no UTC offset; add one (Z, +01:00)"])
    return instant


@app.command()
def schedule(
    stack: StackOption = None,
    config: ConfigOption = None,
    stacks_dir: StacksDirOption = Path("stacks"),
    at: Annotated[str, typer.Option("--at", help="An ISO 8601 time with offset, or now.")] = "now",
    since: Annotated[str | None, typer.Option("--since", help="The last look: JSON `changed` says whether a wake or sleep "
                                               "fell between it and --at.")] = None,
    format: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """What the stack's schedule says at an instant: awake or asleep, the nodes and replicas due, the next wake and
    sleep. The scheduled workflow (.github/workflows/schedule.yml) deploys what this prints on DigitalOcean."""
    from infra.scaling import ScheduleState

    evaluation = _evaluation(stack, config, stacks_dir)
    if evaluation.problems or evaluation.plan is None:
        fail(list(evaluation.problems))
    state = ScheduleState(evaluation.plan, _instant(at), _instant(since, "--since") if since else None).as_json()
    if format is Format.json:
        emit_json(state)
        return
    if state["timezone"] is None:
        out.print(f"{state['stack']}: no schedule: always awake; nodes {state['node_groups']}", markup=False)
        return
    out.print(f"{state['stack']}: {'awake' if state['active'] else 'asleep'} at {state['local_time']} ({state['timezone']}, "
              f"{state['active_hours']}); nodes due {state['node_groups']}; next wake {state['next_wake']}, next sleep "
              f"{state['next_sleep']}; {state['active_hours_this_month']:g} active hours this month", markup=False)


# --- env: stacks through the Pulumi Automation API (needs the Pulumi CLI) -----------------------
# infra.cli.environments is imported inside each command: the other commands never load Pulumi.

env_app = typer.Typer(help="Create, update, preview, destroy and reap stacks through the Pulumi CLI.")
app.add_typer(env_app, name="env")
env_app.callback(invoke_without_command=True)(require_command)

EnvStackOption = Annotated[str, typer.Option("--stack", "-s", help="The Pulumi stack, e.g. dev or pr-42.")]
EnvConfigOption = Annotated[str | None, typer.Option(
    "--config", "-c", help="Take the config from this stack file (e.g. stacks/Pulumi.dev.yaml for pr-42); default: the stack's own.")]
ProjectDirOption = Annotated[Path, typer.Option("--project-dir", help="The project directory (Pulumi.yaml, stacks/).")]
PolicyPackOption = Annotated[list[str] | None, typer.Option("--policy-pack", help="Also run this policy pack (repeatable), e.g. policy.")]


def _env(operation: str, *args: Any, **kwargs: Any) -> Any:
    """Run an infra.cli.environments operation (its EnvCommandError is one line and exit 1)."""
    from infra.cli import environments

    return getattr(environments, operation)(*args, **kwargs)


def _err_line(line: str) -> None:
    err.print(line, markup=False, highlight=False)


@env_app.command("up")
def env_up(stack: EnvStackOption, config: EnvConfigOption = None, project_dir: ProjectDirOption = Path("."),
           policy_pack: PolicyPackOption = None) -> None:
    """Create or select the stack, set its config, `pulumi up` (progress streamed), print the endpoint.

    Secrets for a stack whose config is copied from another file: LLM_DEPLOY_API_KEY, HF_TOKEN.
    """
    _env("up", stack, config, project_dir, policy_pack or (), err=_err_line)


@env_app.command("preview")
def env_preview(stack: EnvStackOption, config: EnvConfigOption = None, project_dir: ProjectDirOption = Path("."),
                policy_pack: PolicyPackOption = None) -> None:
    """Create or select the stack, set its config, `pulumi preview` with the policy packs."""
    _env("preview", stack, config, project_dir, policy_pack or (), err=_err_line)


@env_app.command("destroy")
def env_destroy(stack: EnvStackOption, project_dir: ProjectDirOption = Path("."),
                remove: Annotated[bool, typer.Option("--remove", help="Also delete the stack and its config file.")] = False) -> None:
    """`pulumi destroy` an existing stack (and with --remove, `pulumi stack rm`)."""
    _env("destroy", stack, project_dir, remove)


@env_app.command("reap")
def env_reap(
    prefix: Annotated[str, typer.Option("--prefix", help="Only stacks whose name starts with this.")] = "pr-",
    max_age_hours: Annotated[float, typer.Option("--max-age-hours", envvar="LLM_DEPLOY_REAP_MAX_AGE_HOURS", min=0,
                                                 help="Destroy stacks last updated longer ago than this.")] = 24.0,
    project_dir: ProjectDirOption = Path("."),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be destroyed.")] = False,
) -> None:
    """Destroy and remove ephemeral stacks (pr-*) whose last update is older than --max-age-hours."""
    _env("reap", prefix, max_age_hours, project_dir, dry_run)


@env_app.command("matrix")
def env_matrix(stacks_dir: StacksDirOption = Path("stacks"), format: Annotated[Format, typer.Option("--format")] = Format.json) -> None:
    """The committed stacks with the cloud each lands on and the credential variables it needs (a CI matrix)."""
    entries = _env("ci_matrix", stacks_dir)
    if format is Format.json:
        sys.stdout.write(json.dumps({"include": entries}) + "\n")
        return
    for entry in entries:
        out.print(f"{entry['stack']}: {entry['cloud']} (needs {entry['credentials']})", markup=False)


@app.command()
def status(
    stack: EnvStackOption,
    project_dir: ProjectDirOption = Path("."),
    format: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """A deployed stack now: endpoint, each service's health, healthy/desired nodes per node group, the schedule's
    state and the cost per hour of what runs. Needs the Pulumi CLI and the cloud's credentials; exit 1 when not healthy."""
    from infra.cli import status as report

    result = report.run(stack, project_dir, err=_err_line)
    if format is Format.json:
        emit_json(result.as_json())
    else:
        for line in report.lines(result):
            out.print(line, markup=False, highlight=False)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


@functools.cache
def _command() -> typer.core.TyperGroup:
    """The click command tree, built from `app` once per process (typer builds it again on every `app()`)."""
    return typer.main.get_command(app)


def main() -> None:
    """Console entry point: bad input and usage errors exit 2, anything else 1; one line each."""
    Session.debug = False
    try:
        sys.exit(_command()(standalone_mode=False) or 0)
    except LlmDeployError as error:  # each carries its exit status
        print_problems(error.lines())
        sys.exit(error.exit_code)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(1)
    except typer.TyperException as error:  # usage errors (exit code 2): a bad option, value or command
        ctx = getattr(error, "ctx", None)
        where = f"{ctx.command_path}: " if ctx else ""
        see = f" (see '{ctx.command_path} --help')" if ctx else ""
        print_problems([f"{where}{' '.join(error.format_message().split())}{see}"])
        sys.exit(error.exit_code)
    except Exception as error:  # noqa: BLE001 (the contract: one line and exit 1 for anything that is not bad input)
        if Session.debug:
            traceback.print_exc()
        message = " ".join(f"{type(error).__name__}: {error}".split())
        print_problems([f"error: {message}" + ("" if Session.debug else " (--debug shows the traceback)")])
        sys.exit(1)
