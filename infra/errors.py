"""What goes wrong, typed: a `Problem` names the file and field at fault, and every error llm-deploy
raises on purpose derives from `LlmDeployError`, which carries the exit status the CLI ends with
(2 bad input, 1 anything else). The CLI catches that one class; tests compare a problem's fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """Control characters (a newline in a key, a NUL in a path) escaped, so one problem stays one line."""
    return CONTROL_CHARACTERS.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the user's input: `<source>: <field>: <message>[; <hint>]` on one line.

    `source` is the file (a stack file, a catalog) or "" for a command-line option; `field` the key path
    in it (`services[0].replicas`, `file`, `line 3: gpu`), "" when the whole source is at fault; `hint`
    what to do about it or the values that would be valid, when there is something to say.
    """

    source: str
    field: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        text = ": ".join(part for part in (self.source, self.field, self.message) if part)
        return one_line(text + (f"; {self.hint}" if self.hint else ""))


class LlmDeployError(Exception):
    """Every error llm-deploy raises on purpose; `exit_code` is the CLI's exit status for it."""

    exit_code: ClassVar[int] = EXIT_FAILURE

    def lines(self) -> list[str]:
        """What the CLI prints for it: one line each, no traceback."""
        return [one_line(f"error: {self}")]


class BadInput(LlmDeployError):
    """The user's input (a file, a value, an option) is wrong: exit 2, with the input's own words."""

    exit_code: ClassVar[int] = EXIT_BAD_INPUT

    def lines(self) -> list[str]:
        return [one_line(str(self))]


class ConfigError(BadInput):
    """A stack that cannot be deployed: every problem found, one line each, `<file>: <field>: <what>`."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]
