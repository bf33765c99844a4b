"""One error base class: every error llm-deploy raises on purpose is an LlmDeployError carrying its
exit status, and `main()` turns each into its lines and that status, with no traceback."""

from __future__ import annotations

import ast
import sys

import pytest

from bootstrap import UnreadableSecret, UserDataTooLarge
from infra.catalog import CatalogError
from infra.catalog_build import BuildError
from infra.cli.cost_sources import DiffSourceError
from infra.cli.environments import EnvCommandError
from infra.cli.refresh import MissingCredentials, RefreshError
from infra.errors import EXIT_BAD_INPUT, EXIT_FAILURE, BadInput, ConfigError, LlmDeployError, Problem
from infra.schedule import ScheduleError
from tests.helpers import ROOT

BAD_INPUT = (ConfigError, CatalogError, BuildError, DiffSourceError, UserDataTooLarge, UnreadableSecret, ScheduleError)
FAILURES = (EnvCommandError, RefreshError, MissingCredentials)


@pytest.mark.parametrize("error", BAD_INPUT + FAILURES, ids=lambda e: e.__name__)
def test_each_error_is_an_llm_deploy_error_with_its_exit_status(error):
    assert issubclass(error, LlmDeployError)
    assert error.exit_code == (EXIT_BAD_INPUT if error in BAD_INPUT else EXIT_FAILURE)
    assert issubclass(error, BadInput) == (error in BAD_INPUT)


def test_every_exception_class_of_the_project_is_rooted_in_the_base():
    """A new error class that is not an LlmDeployError would exit 1 as 'error: <Type>' instead of naming the field."""
    outside = []
    for path in sorted(p for top in ("infra", "bootstrap", "components") for p in (ROOT / top).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith(("Error", "TooLarge", "Secret", "Credentials")):
                module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
                cls = getattr(sys.modules.get(module) or __import__(module, fromlist=[node.name]), node.name)
                if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, LlmDeployError):
                    outside.append(f"{module}.{node.name}")
    # the offline engine's duplicate URN is a bug in the program, not something a user did: exit 1 as any other
    assert outside == ["infra.cli.offline.DuplicateUrnError"]


@pytest.mark.parametrize(("error", "lines"), [
    (ConfigError([Problem("a.yaml", "cloud", "must be one of 'aws'"), Problem("a.yaml", "region", "unknown")]),
     ["a.yaml: cloud: must be one of 'aws'", "a.yaml: region: unknown"]),
    (CatalogError(Problem("c.csv", "line 2: gpu", "unknown GPU 'X'")), ["c.csv: line 2: gpu: unknown GPU 'X'"]),
    (DiffSourceError("--diff-against: 'nope' is neither a file nor a git ref"), ["--diff-against: 'nope' is neither a file nor a git ref"]),
    (EnvCommandError("pulumi up failed: boom\nat line 3"), ["error: pulumi up failed: boom\\nat line 3"]),
], ids=["config", "catalog", "diff source", "env"])
def test_an_error_is_its_lines_bad_input_in_its_own_words_a_failure_as_error(error, lines):
    """What main() prints for it (the CLI tests drive each through real input: a stack file, a catalog, a ref, the Pulumi CLI)."""
    assert error.lines() == lines


def test_main_catches_the_base_class_once():
    tree = ast.parse((ROOT / "infra" / "cli" / "main.py").read_text())
    main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
    caught = [ast.unparse(h.type) for n in ast.walk(main) if isinstance(n, ast.Try) for h in n.handlers if h.type is not None]
    assert caught[0] == "LlmDeployError" and not {"ConfigError", "CatalogError"} & set(caught), caught
