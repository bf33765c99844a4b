"""`llm-deploy env`: create, update, preview, destroy and reap stacks through Pulumi's Automation API.

For CI systems other than GitHub Actions (whose workflows call `pulumi/actions`), and for the
ephemeral `pr-<number>` stacks every CI creates from a committed stack file. The Pulumi CLI does
the work; this module picks the stack, sets its config, checks the config before anything exists,
streams the CLI's progress, and prints the endpoint. Imported only by the `env` commands, so `cost`
never loads Pulumi.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from infra import clouds
from infra.config import CONFIG_NAMESPACE, RawConfig, load_raw, read_stack_file
from infra.errors import ConfigError, LlmDeployError
from infra.plan import DeploymentPlan

# Environment variables a copied (e.g. ephemeral) stack takes its secrets from.
SECRET_ENV = {"apiKey": "LLM_DEPLOY_API_KEY", "hfToken": "HF_TOKEN"}
INSTALL_HINT = "install it from https://www.pulumi.com/docs/install/ and put `pulumi` on PATH"

Output = Callable[[str], Any]


class EnvCommandError(LlmDeployError):
    """An `env` command failed for a reason that is not bad input: exit 1, one line."""


@dataclass(frozen=True)
class Target:
    """The stack to operate on and the config it gets.

    `copied`: the config comes from a file other than the stack's own `stacks/Pulumi.<stack>.yaml`
    (e.g. `pr-42` from `Pulumi.dev.yaml`), so its keys are written into the stack's own file.
    """

    stack: str
    raw: RawConfig
    copied: bool


def stacks_dir(project_dir: Path) -> Path:
    """Where the stack files live (Pulumi.yaml's stackConfigDir)."""
    return project_dir / "stacks"


def resolve(stack: str, config_file: str | None, directory: Path) -> Target:
    own = directory / f"Pulumi.{stack}.yaml"
    if config_file is None or Path(config_file).resolve() == own.resolve():
        return Target(stack, load_raw(stack, None, directory), copied=False)
    source = read_stack_file(Path(config_file))
    return Target(stack, RawConfig(stack, source.source, source.values, source.secret_keys), copied=True)


def secret_values(target: Target, environ: Mapping[str, str]) -> dict[str, str]:
    """Secrets from the environment for keys the stack file does not already hold encrypted.

    A copied file's `secure:` values are encrypted for another stack and cannot be carried over;
    those keys come from the environment too (or, for apiKey, the program generates one).
    """
    held = set() if target.copied else target.raw.secret_keys
    return {key: environ[var] for key, var in SECRET_ENV.items() if key not in held and environ.get(var)}


def effective_raw(target: Target, secrets: Mapping[str, str]) -> RawConfig:
    """The config the stack will have: the file's keys, plus the secrets the environment supplies."""
    values = dict(target.raw.values)
    secret_keys = set(target.raw.secret_keys)
    if target.copied:
        for key in target.raw.secret_keys:
            values.pop(key, None)
        secret_keys.clear()
    for key in secrets:
        values[key] = None  # validated as a secret whose value is set, never read here
        secret_keys.add(key)
    return RawConfig(target.stack, target.raw.source, values, secret_keys)


def dropped_secrets(target: Target, secrets: Mapping[str, str]) -> list[str]:
    """Secret keys of a copied file that the new stack will not have."""
    if not target.copied:
        return []
    return sorted(key for key in target.raw.secret_keys if key not in secrets)


def validate(raw: RawConfig) -> DeploymentPlan:
    """The plan, or ConfigError (exit 2) before any stack or resource is touched: placement's problems, then
    the program's own checks (each node group's user-data within its cloud's limit), as `llm-deploy validate`."""
    from components.stack import user_data_problems
    from infra.placement import evaluate, load_config

    config = load_config(raw)
    evaluation = evaluate(config)
    if evaluation.problems or evaluation.plan is None:
        raise ConfigError(list(evaluation.problems))
    problems = user_data_problems(config, evaluation.plan)
    if problems:
        raise ConfigError(problems)
    return evaluation.plan


def write_plain_config(stack_file: Path, values: Mapping[str, Any]) -> None:
    """Put plain `llm-deploy:` keys into a stack file as YAML, lists and maps as a user writes them.

    The file's other keys stay (encryption salt, `secure:` values, other namespaces); plain
    `llm-deploy:` keys the new values lack are dropped, so an earlier copy leaves nothing behind.
    Pulumi.yaml declares some keys as arrays: JSON text set through `pulumi config set` would not be one.
    """
    document = (yaml.safe_load(stack_file.read_text()) if stack_file.is_file() else None) or {}
    config = document.get("config") or {}
    prefix = f"{CONFIG_NAMESPACE}:"
    kept = {k: v for k, v in config.items() if not k.startswith(prefix) or (isinstance(v, dict) and set(v) == {"secure"})}
    document["config"] = {**kept, **{f"{prefix}{key}": value for key, value in values.items()}}
    stack_file.write_text(yaml.safe_dump(document, sort_keys=False))


def plain_values(target: Target) -> dict[str, Any]:
    return {k: v for k, v in target.raw.values.items() if k not in target.raw.secret_keys}


# --- the Pulumi side -----------------------------------------------------------------------------


def require_pulumi() -> None:
    if shutil.which("pulumi") is None:
        raise EnvCommandError(f"the Pulumi CLI was not found: {INSTALL_HINT}")


def workspace(project_dir: Path):
    """A LocalWorkspace on the project (its Pulumi.yaml), or a one-line error when the CLI is missing."""
    require_pulumi()
    if not (project_dir / "Pulumi.yaml").is_file():
        raise EnvCommandError(f"{project_dir}: no Pulumi.yaml here; run from the llm-deploy project directory")
    from pulumi import automation as auto

    try:
        return auto.LocalWorkspace(work_dir=str(project_dir))
    except FileNotFoundError:
        raise EnvCommandError(f"the Pulumi CLI was not found: {INSTALL_HINT}") from None
    except auto.InvalidVersionError as error:
        raise EnvCommandError(f"the Pulumi CLI cannot be used: {error}") from None
    except (subprocess.CalledProcessError, PermissionError) as error:  # `pulumi version` itself failed
        raise EnvCommandError(f"the Pulumi CLI did not answer `pulumi version`: {error}") from None


def _command_failed(operation: str, error: Exception) -> EnvCommandError:
    """One line for a failed CLI command; its full output was streamed (or is in the message)."""
    # CommandError's text is the CLI result: "code: N / stdout: ... / stderr: ..."; its stderr says why.
    text = str(error)
    stderr = text.split("\n stderr: ", 1)[1] if "\n stderr: " in text else text
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return EnvCommandError(f"pulumi {operation} failed: {lines[-1] if lines else type(error).__name__}")


def open_stack(target: Target, project_dir: Path, secrets: Mapping[str, str], create: bool = True):
    """Select (or create) the stack and write the config it gets."""
    from pulumi import automation as auto

    ws = workspace(project_dir)
    try:
        stack = auto.Stack.create_or_select(target.stack, ws) if create else auto.Stack.select(target.stack, ws)
        if target.copied:
            write_plain_config(stacks_dir(project_dir) / f"Pulumi.{target.stack}.yaml", plain_values(target))
        if secrets:
            stack.set_all_config(
                {f"{CONFIG_NAMESPACE}:{key}": auto.ConfigValue(value=value, secret=True) for key, value in secrets.items()}
            )
    except auto.StackNotFoundError:
        raise EnvCommandError(f"stack {target.stack!r} does not exist") from None
    except auto.CommandError as error:
        raise _command_failed("stack/config", error) from None
    return stack


def prepare(stack: str, config_file: str | None, project_dir: Path, environ: Mapping[str, str], err: Output) -> tuple[Target, dict]:
    """Resolve and validate (bad input exits 2 here, before the CLI is even looked for)."""
    target = resolve(stack, config_file, stacks_dir(project_dir))
    secrets = secret_values(target, environ)
    validate(effective_raw(target, secrets))
    for key in dropped_secrets(target, secrets):
        err(f"warning: {CONFIG_NAMESPACE}:{key} is encrypted for another stack and not copied; set {SECRET_ENV.get(key, key)}")
    return target, secrets


def _update(operation: str, stack: str, config_file: str | None, project_dir: Path, policy_packs: Sequence[str],
            environ: Mapping[str, str], out: Output, err: Output) -> Any:
    """Validate, open the stack with its config, run `pulumi up` or `pulumi preview` with the policy packs."""
    target, secrets = prepare(stack, config_file, project_dir, environ, err)
    from pulumi import automation as auto

    handle = open_stack(target, project_dir, secrets)
    try:
        return getattr(handle, operation)(on_output=out, color="never", policy_packs=list(policy_packs) or None)
    except auto.CommandError as error:
        raise _command_failed(operation, error) from None


def up(stack: str, config_file: str | None = None, project_dir: Path = Path("."), policy_packs: Sequence[str] = (),
       environ: Mapping[str, str] = os.environ, out: Output = print, err: Output = print) -> dict[str, Any]:
    """`pulumi up` the stack; returns its outputs (secret ones masked) and prints the endpoint.

    Raises ConfigError before anything is touched, EnvCommandError when the Pulumi CLI fails.
    """
    result = _update("up", stack, config_file, project_dir, policy_packs, environ, out, err)
    outputs = {k: "[secret]" if v.secret else v.value for k, v in result.outputs.items()}
    if "endpoint" in outputs:
        out(f"endpoint: {outputs['endpoint']}")
    return outputs


def preview(stack: str, config_file: str | None = None, project_dir: Path = Path("."), policy_packs: Sequence[str] = (),
            environ: Mapping[str, str] = os.environ, out: Output = print, err: Output = print) -> dict[str, int]:
    """`pulumi preview` (with the policy packs); returns the change summary (operation → count).

    Raises ConfigError before anything is touched, EnvCommandError when the Pulumi CLI fails.
    """
    result = _update("preview", stack, config_file, project_dir, policy_packs, environ, out, err)
    summary = dict(result.change_summary)
    out("changes: " + (", ".join(f"{op} {n}" for op, n in sorted(summary.items())) or "none"))
    return summary


def destroy(stack: str, project_dir: Path = Path("."), remove: bool = False, out: Output = print) -> None:
    """`pulumi destroy` the stack (it must exist), and with `remove` also delete it and its config file.
    Raises EnvCommandError."""
    from pulumi import automation as auto

    ws = workspace(project_dir)
    try:
        handle = auto.Stack.select(stack, ws)
        handle.destroy(on_output=out, color="never", remove=remove)
    except auto.StackNotFoundError:
        raise EnvCommandError(f"stack {stack!r} does not exist") from None
    except auto.CommandError as error:
        raise _command_failed("destroy", error) from None


# --- reaping ephemeral stacks ---------------------------------------------------------------------


def short_name(name: str) -> str:
    """`org/project/pr-42` and `org/pr-42` → `pr-42`."""
    return name.rsplit("/", 1)[-1]


def stale_stacks(summaries: Iterable[Any], prefix: str, max_age: timedelta, now: datetime) -> tuple[list[str], list[str]]:
    """(stacks to destroy, notes on the ones left alone).

    A stack is stale when its short name starts with `prefix`, no update is running, and its last
    update ended more than `max_age` before `now` (naive UTC, as the Automation API reports it).
    Never-updated stacks are left alone: they hold nothing, and one may be a run that just started.
    """
    stale, notes = [], []
    for summary in summaries:
        if not short_name(summary.name).startswith(prefix):
            continue
        if summary.update_in_progress:
            notes.append(f"{summary.name}: an update is running; left alone")
        elif summary.last_update is None:
            notes.append(f"{summary.name}: no update recorded; left alone")
        elif now - summary.last_update > max_age:
            stale.append(summary.name)
        else:
            notes.append(f"{summary.name}: last updated {summary.last_update:%Y-%m-%d %H:%M} UTC; younger than {max_age}")
    return stale, notes


def reap(prefix: str, max_age_hours: float, project_dir: Path = Path("."), dry_run: bool = False,
         now: datetime | None = None, out: Output = print) -> list[str]:
    """Destroy and remove every `prefix*` stack whose last update is older than `max_age_hours`.

    Returns the stacks destroyed; raises after trying them all when any of them failed.
    """
    if not prefix:
        raise EnvCommandError("--prefix must not be empty (it would match every stack)")
    from pulumi import automation as auto

    ws = workspace(project_dir)
    try:
        summaries = ws.list_stacks()
    except auto.CommandError as error:
        raise _command_failed("stack ls", error) from None
    current = now or datetime.now(UTC).replace(tzinfo=None)
    stale, notes = stale_stacks(summaries, prefix, timedelta(hours=max_age_hours), current)
    for note in notes:
        out(note)
    failed, done = [], []
    for name in stale:
        out(f"{name}: older than {max_age_hours:g} h; {'would destroy' if dry_run else 'destroying'}")
        if dry_run:
            continue
        try:
            auto.Stack.select(name, ws).destroy(on_output=out, color="never", remove=True)
            done.append(name)
        except auto.CommandError as error:
            failed.append(f"{name}: {_command_failed('destroy', error)}")
    if failed:
        raise EnvCommandError("; ".join(failed))
    return stale if dry_run else done


# --- CI ------------------------------------------------------------------------------------------


def missing_credentials(cloud: str, environ: Mapping[str, str]) -> list[str]:
    """The variables still to set for `cloud` (the first alternative's), or [] when one alternative is complete."""
    options = clouds.get(cloud).credentials
    if any(all(environ.get(name) for name in option) for option in options):
        return []
    return [name for name in options[0] if not environ.get(name)]


def ci_matrix(directory: Path) -> list[dict[str, str]]:
    """One entry per committed stack: its cloud (placement decides for `auto`) and the credentials it needs.

    Raises ConfigError listing every invalid stack file, so CI fails on a broken stack.
    """
    entries, problems = [], []
    for path in sorted(directory.glob("Pulumi.*.yaml")):
        stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        try:
            plan = validate(read_stack_file(path, stack))
        except ConfigError as error:
            problems += error.problems
            continue
        entries.append({"stack": stack, "cloud": plan.cloud, "credentials": " ".join(clouds.get(plan.cloud).credentials[0])})
    if problems:
        raise ConfigError(problems)
    return entries
