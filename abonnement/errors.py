"""One error hierarchy. The CLI turns every ``AbonnementError`` into a clean message."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class AbonnementError(Exception):
    """Base of every error a user can cause and act on. Exit code 1 at the CLI."""

    exit_code = 1


class MoneyError(AbonnementError, ValueError):
    """Bad money arithmetic or text: mixed currencies, floats, unknown codes."""


class ScheduleError(AbonnementError, ValueError):
    """An unknown frequency or an impossible billing date."""


class CollectionError(AbonnementError):
    """A payment cannot be taken as asked (no usable method, refused checkout, …)."""


class PluginError(AbonnementError):
    """A plugin failed to load, registered a duplicate name, or raised."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the user's input, with where it is."""

    file: str
    line: int
    column: int
    message: str
    hint: str | None = None
    context: str | None = None  # the source line with a caret under the column

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.column}: error: {self.message}"
        text = f"{text}; {self.hint}" if self.hint else text
        return f"{text}\n{self.context}" if self.context else text

    def as_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "hint": self.hint,
        }


class ConfigError(AbonnementError):
    """The config (YAML or rules) is invalid. Carries every problem found, not just the first."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))
