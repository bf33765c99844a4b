"""The two sides of `cost --diff-against`: every stack's cost preview in the working tree, at a git ref
(its stacks/ and catalog read with `git archive` into a temporary directory), or in a saved
`cost --format json` file (one preview, or a JSON list of them)."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from infra.catalog import DATA_DIR
from infra.config import load_raw
from infra.cost import cost_preview
from infra.errors import BadInput, ConfigError
from infra.placement import evaluate, load_config

CATALOG = Path("infra") / "data" / "catalog.csv"


class DiffSourceError(BadInput):
    """--diff-against names neither a readable preview file nor a git ref with stacks."""


def stack_names(stacks_dir: Path) -> list[str]:
    return sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in stacks_dir.glob("Pulumi.*.yaml"))


def _preview(stack: str, stacks_dir: Path, root: Path | None) -> dict[str, Any]:
    """A stack's preview; under `root` (a ref's tree) its catalog and relative catalogFile come from there too."""
    try:
        config = load_config(load_raw(stack, None, stacks_dir))
        if root is not None:
            own = config.catalog_file
            catalog = root / CATALOG if own is None else (Path(own) if Path(own).is_absolute() else root / own)
            config = config.model_copy(update={"catalog_file": str(catalog)})
        return cost_preview(evaluate(config)).as_json()
    except ConfigError as error:
        return {"stack": stack, "node_groups": [], "problems": error.lines()}


def tree_previews(stacks_dir: Path, only: list[str] | None = None, root: Path | None = None) -> dict[str, dict[str, Any]]:
    names = only if only is not None else stack_names(stacks_dir)
    return {name: _preview(name, stacks_dir, root) for name in names if (stacks_dir / f"Pulumi.{name}.yaml").exists()}


def _git(args: list[str], cwd: Path) -> bytes:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    if done.returncode != 0:
        raise DiffSourceError(done.stderr.decode(errors="replace").strip().splitlines()[-1] if done.stderr else "git failed")
    return done.stdout


def ref_previews(ref: str, stacks_dir: Path, only: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Every stack's preview with the stacks and the built-in catalog of git ref `ref` (this code, their data).
    Raises DiffSourceError when `ref` is no git ref or the stacks are outside the repository."""
    here = stacks_dir.resolve().parent if stacks_dir.exists() else Path.cwd()
    try:
        top = Path(_git(["rev-parse", "--show-toplevel"], here).decode().strip())
        commit = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], top).decode().strip()
    except DiffSourceError:
        raise DiffSourceError(f"--diff-against: {ref!r} is neither a file nor a git ref of {here}") from None
    if not stacks_dir.resolve().is_relative_to(top):
        raise DiffSourceError(f"--diff-against: {stacks_dir} is not inside the git repository {top}")
    relative = stacks_dir.resolve().relative_to(top)
    with tempfile.TemporaryDirectory(prefix="llm-deploy-diff-") as tmp:
        root = Path(tmp)  # the whole tree at the ref: its stacks, its catalog and any catalogFile they name
        with tarfile.open(fileobj=io.BytesIO(_git(["archive", "--format=tar", commit], top))) as tar:
            tar.extractall(root, filter="data")
        if not (root / CATALOG).exists():  # a repository that is not this project: priced with today's catalog
            (root / CATALOG).parent.mkdir(parents=True, exist_ok=True)
            (root / CATALOG).write_text((DATA_DIR / "catalog.csv").read_text())
        (root / relative).mkdir(parents=True, exist_ok=True)
        return tree_previews(root / relative, only, root)


def file_previews(path: Path) -> dict[str, dict[str, Any]]:
    """Previews saved by `cost --format json`: one object, or a list of them. Raises DiffSourceError."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DiffSourceError(f"--diff-against: {path}: not a saved `cost --format json` ({error})") from None
    previews = document if isinstance(document, list) else [document]
    if not all(isinstance(p, dict) and isinstance(p.get("stack"), str) and isinstance(p.get("node_groups"), list) for p in previews):
        raise DiffSourceError(f"--diff-against: {path}: not a saved `cost --format json` (each needs 'stack' and 'node_groups')")
    return {p["stack"]: p for p in previews}
