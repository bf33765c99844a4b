"""Every third-party module the package imports is a declared dependency (or in the extra of the
command that imports it), and constraints/lowest.txt pins every declared dependency at its lower
bound (CI installs those and runs the tests on them)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from tests.helpers import ROOT

FIRST_PARTY = {"infra", "components", "bootstrap"}
# shipped to the nodes and run there by their own python3, not imported by the package
NODE_FILES = ROOT / "bootstrap" / "files"
SOURCES = sorted(p for top in FIRST_PARTY for p in (ROOT / top).rglob("*.py") if NODE_FILES not in p.parents) + [ROOT / "__main__.py"]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)$")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(specs: list[str]) -> dict[str, str]:
    """name → version specifier, e.g. {"pulumi": ">=3.231,<4"}."""
    parsed = {}
    for spec in specs:
        match = REQUIREMENT.match(spec)
        assert match, spec
        parsed[normalized(match.group(1))] = match.group(2).replace(" ", "")
    return parsed


RUNTIME = requirements(PROJECT["dependencies"])
EXTRAS = {name: requirements(specs) for name, specs in PROJECT["optional-dependencies"].items()}
DEV = EXTRAS.pop("dev")  # the tests' tools; the package never imports them
OPTIONAL = {name: spec for extra in EXTRAS.values() for name, spec in extra.items()}


def top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_every_third_party_import_is_a_declared_dependency():
    distributions = packages_distributions()
    imported = {name for path in SOURCES for name in top_level_imports(path)}
    third_party = sorted(imported - FIRST_PARTY - set(sys.stdlib_module_names))
    assert {"pulumi", "pulumi_aws", "typer", "yaml", "pydantic", "rich"} <= set(third_party)  # the scan sees them
    undeclared = {}
    for module in third_party:
        providers = {normalized(d) for d in distributions.get(module, [])}
        if not providers & (set(RUNTIME) | set(OPTIONAL)):
            undeclared[module] = sorted(providers) or "not installed"
    assert undeclared == {}, f"imported but not in [project] dependencies or an extra: {undeclared}"


def test_every_declared_dependency_has_a_lower_bound_and_is_imported():
    distributions = packages_distributions()
    imported = {name for path in SOURCES for name in top_level_imports(path)}
    provided = {normalized(d) for module in imported for d in distributions.get(module, [])}
    for name, specifier in {**RUNTIME, **OPTIONAL}.items():
        assert re.search(r">=\d", specifier), f"{name}: no lower bound in {specifier!r}"
        assert name in provided, f"{name} is declared but nothing imports it"


def test_lowest_constraints_pin_every_dependency_at_its_lower_bound():
    lines = [line.split("#")[0].strip() for line in (ROOT / "constraints" / "lowest.txt").read_text().splitlines()]
    pins = dict(line.split("==") for line in lines if line)
    pins = {normalized(name): version for name, version in pins.items()}
    declared = {**RUNTIME, **OPTIONAL, **DEV}
    assert set(pins) == set(declared)
    for name, specifier in declared.items():
        lower = re.search(r">=([\d.]+)", specifier).group(1)
        assert release(pins[name]) == release(lower), f"{name}: lowest.txt pins {pins[name]}, pyproject.toml says >={lower}"


def release(version: str) -> tuple[int, ...]:
    """"7", "7.0" and "7.0.0" are one release."""
    parts = [int(p) for p in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def test_every_package_is_shipped():
    """A package missing from [tool.setuptools] packages works in the editable install and is absent from a
    built wheel (infra.cli.preflight and infra.cli.images once were)."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for top in FIRST_PARTY for p in (ROOT / top).rglob("__init__.py")}
    assert found == listed
