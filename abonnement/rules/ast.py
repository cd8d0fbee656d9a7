"""The rule language's syntax tree: frozen dataclasses that keep their line and column."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Binary",
    "Block",
    "BoolOp",
    "Call",
    "Duration",
    "Expr",
    "Field",
    "IsSet",
    "ListExpr",
    "Literal",
    "Stmt",
    "Unary",
]


@dataclass(frozen=True, slots=True)
class Duration:
    """``30 days``, ``2 weeks``, ``1 month``: a calendar amount added to dates."""

    count: int
    unit: str  # days | weeks | months | years

    def __str__(self) -> str:
        return f"{self.count} {self.unit if self.count != 1 else self.unit[:-1]}"


@dataclass(frozen=True, slots=True)
class Node:
    line: int
    column: int
    depth: int = field(default=1, compare=False)


@dataclass(frozen=True, slots=True)
class Literal(Node):
    value: Any = None
    type: str = "none"  # number | string | bool | none | money | percent | date | duration
    text: str = ""  # as written, for the formatter and messages


@dataclass(frozen=True, slots=True)
class ListExpr(Node):
    items: tuple[Expr, ...] = ()


@dataclass(frozen=True, slots=True)
class Field(Node):
    path: tuple[str, ...] = ()

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True, slots=True)
class Call(Node):
    name: str = ""
    args: tuple[Expr, ...] = ()
    kwargs: tuple[tuple[str, Expr], ...] = ()


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str = "not"  # not | neg
    operand: Expr | None = None


@dataclass(frozen=True, slots=True)
class Binary(Node):
    # == != < <= > >= in "not in" startswith endswith contains matches + - * /
    op: str = ""
    left: Expr | None = None
    right: Expr | None = None


@dataclass(frozen=True, slots=True)
class BoolOp(Node):
    """``a and b and c`` (or ``or``) as one node, so long chains stay shallow."""

    op: str = "and"
    operands: tuple[Expr, ...] = ()


@dataclass(frozen=True, slots=True)
class IsSet(Node):
    operand: Expr | None = None
    negated: bool = False


Expr = Literal | ListExpr | Field | Call | Unary | Binary | BoolOp | IsSet


@dataclass(frozen=True, slots=True)
class Stmt:
    """One statement of a block: ``keyword`` and its value (an expression, name or number)."""

    keyword: str
    value: Any
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Block:
    kind: str  # tax | discount | fee | trigger | segment
    name: str
    statements: tuple[Stmt, ...]
    file: str
    line: int
    column: int
    end_line: int = 0
    comments: tuple[tuple[int, str], ...] = ()  # (line, text) inside the block, for fmt

    def get(self, keyword: str) -> Stmt | None:
        return next((s for s in self.statements if s.keyword == keyword), None)

    def all(self, keyword: str) -> list[Stmt]:
        return [s for s in self.statements if s.keyword == keyword]
