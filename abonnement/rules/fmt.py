"""Canonical formatting of rule files (``abonnement fmt``), keeping every comment.

One block after another with a blank line between them, two-space indentation, one statement
per line, expressions on one line with only the parentheses precedence needs. Formatting a
formatted file changes nothing.
"""

from __future__ import annotations

import bisect

from abonnement.rules.ast import (
    Binary,
    Block,
    BoolOp,
    Call,
    Expr,
    Field,
    IsSet,
    ListExpr,
    Literal,
    Stmt,
    Unary,
)
from abonnement.rules.parser import parse_rules

__all__ = ["format_rules", "unparse"]

_PREC = {"or": 1, "and": 2, "not": 3, "compare": 4, "+": 5, "-": 5, "*": 6, "/": 6, "neg": 7}
_ATOM = 8


def _prec(node: Expr) -> int:
    match node:
        case BoolOp(op=op):
            return _PREC[op]
        case Unary(op="not"):
            return _PREC["not"]
        case Unary():
            return _PREC["neg"]
        case IsSet():
            return _PREC["compare"]
        case Binary(op=op) if op in _PREC:
            return _PREC[op]
        case Binary():
            return _PREC["compare"]
    return _ATOM


def _wrap(node: Expr, minimum: int) -> str:
    text = unparse(node)
    return f"({text})" if _prec(node) < minimum else text


def _literal(node: Literal) -> str:
    if node.type in ("money", "percent", "duration"):
        return str(node.value)
    if node.type == "date":
        return node.value.isoformat()
    return node.text or str(node.value).lower()


def unparse(node: Expr) -> str:
    """The canonical text of an expression."""
    match node:
        case Literal():
            return _literal(node)
        case ListExpr(items=items):
            return "[" + ", ".join(unparse(i) for i in items) + "]"
        case Field():
            return node.dotted
        case Call(name=name, args=args, kwargs=kwargs):
            parts = [unparse(a) for a in args] + [f"{k}: {unparse(v)}" for k, v in kwargs]
            return f"{name}({', '.join(parts)})"
        case Unary(op="not", operand=operand):
            return f"not {_wrap(operand, _PREC['not'])}"
        case Unary(operand=operand):
            return f"-{_wrap(operand, _PREC['neg'])}"
        case BoolOp(op=op, operands=operands):
            return f" {op} ".join(_wrap(o, _PREC[op] + 1) for o in operands)
        case IsSet(operand=operand, negated=negated):
            return f"{_wrap(operand, _PREC['+'])} is {'not ' if negated else ''}set"
        case Binary(op=op, left=left, right=right) if op in ("+", "-", "*", "/"):
            return f"{_wrap(left, _PREC[op])} {op} {_wrap(right, _PREC[op] + 1)}"
        case Binary(op=op, left=left, right=right):
            return f"{_wrap(left, _PREC['+'])} {op} {_wrap(right, _PREC['+'])}"
    raise TypeError(f"cannot format {node!r}")  # pragma: no cover


def _statement(stmt: Stmt) -> str:
    match stmt.keyword:
        case "once":
            return "once"
        case "for":
            return f"for {stmt.value} payments"
        case "applies_to" | "of":
            return f"{stmt.keyword} {stmt.value}"
        case "on":
            return f"on {stmt.value.dotted}"
    return f"{stmt.keyword} {unparse(stmt.value)}"


def _comments(text: str) -> dict[int, tuple[str, bool]]:
    """Line → (comment text, whether it is the whole line), skipping '#' inside strings."""
    found: dict[int, tuple[str, bool]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        in_string, escaped = False, False
        for i, ch in enumerate(line):
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = in_string
            elif ch == '"':
                in_string = not in_string
            elif ch == "#" and not in_string:
                found[number] = (line[i:].rstrip(), not line[:i].strip())
                break
    return found


def format_rules(text: str, file: str = "<rules>") -> str | None:
    """The canonical form of ``text``, or None if it does not parse."""
    parsed = parse_rules(text, file)
    if parsed.problems:
        return None
    comments = _comments(text)
    lines_with_comments = sorted(comments)
    used: set[int] = set()

    def take(first: int, last: int, *, whole: bool) -> list[str]:
        lo = bisect.bisect_left(lines_with_comments, first)
        hi = bisect.bisect_right(lines_with_comments, last)
        out = []
        for n in lines_with_comments[lo:hi]:
            comment, is_whole = comments[n]
            if n not in used and is_whole == whole:
                used.add(n)
                out.append(comment)
        return out

    out: list[str] = []
    previous_end = 0
    for block in parsed.blocks:
        leading = take(previous_end + 1, block.line - 1, whole=True)
        if out:
            out.append("")
        out.extend(leading)
        shares_line = bool(block.statements) and block.statements[0].line == block.line
        header_tail = [] if shares_line else take(block.line, block.line, whole=False)
        out.append(f"{block.kind} {block.name} {{" + (f"  {header_tail[0]}" if header_tail else ""))
        out.extend(_body(block, take))
        out.append("}" + "".join(f"  {c}" for c in take(block.end_line, block.end_line,
                                                          whole=False)))  # fmt: skip
        previous_end = block.end_line
    trailing = take(previous_end + 1, len(text.splitlines()), whole=True)
    if trailing:
        if out:
            out.append("")
        out.extend(trailing)
    return "\n".join(out) + "\n" if out else ""


def _body(block: Block, take) -> list[str]:  # type: ignore[no-untyped-def]
    out = []
    statements = block.statements
    for i, stmt in enumerate(statements):
        end = statements[i + 1].line - 1 if i + 1 < len(statements) else block.end_line - 1
        end = max(end, stmt.line)
        out.extend(f"  {c}" for c in take(block.line + 1, stmt.line - 1, whole=True))
        tail = take(stmt.line, end, whole=False)
        out.append(f"  {_statement(stmt)}" + "".join(f"  {c}" for c in tail))
    out.extend(f"  {c}" for c in take(block.line + 1, block.end_line, whole=True))
    return out
