"""Checked expressions → Python functions. Two back ends with one meaning (``runtime``):

- ``compile_source``: Python source from fixed templates, compiled once per rule set, run
  with no builtins. Every user value — string, number, field name, pattern — is bound as a
  constant (``c12``); user text never reaches the source. Common cases are inlined (a field
  compared with a literal), everything else calls a ``runtime`` helper. This is the fast path.
- ``compile_closure``: nested closures, no ``exec``; the oracle the tests compare against,
  and the back end ``--explain`` uses, since it can report every sub-expression's value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from abonnement.engine.money import Percent
from abonnement.rules import runtime as rt
from abonnement.rules.ast import (
    Binary,
    BoolOp,
    Call,
    Expr,
    Field,
    IsSet,
    ListExpr,
    Literal,
    Unary,
)

__all__ = ["Compiler", "Evaluator", "compile_closure", "compile_source"]

Evaluator = Callable[[Mapping[str, Any]], Any]
_FAST_ORDER = {"number", "date", "string"}
_FAST_ARITH = {"+": "+", "-": "-", "*": "*"}


@dataclass
class Compiler:
    """What compiled code may refer to besides the expression: rates and plugin functions."""

    types: Mapping[int, str]
    tax_rates: Mapping[str, Percent] = field(default_factory=dict)
    functions: Mapping[str, Callable[..., Any]] = field(default_factory=dict)

    def function(self, name: str) -> Callable[..., Any]:
        return self.functions.get(name) or rt.FUNCTIONS[name]

    def type_of(self, node: Expr) -> str:
        return self.types.get(id(node), "any")


def _literal_value(node: Expr) -> tuple[bool, Any]:
    if isinstance(node, Literal):
        return True, node.value
    if isinstance(node, ListExpr) and all(isinstance(i, Literal) for i in node.items):
        return True, tuple(i.value for i in node.items)  # type: ignore[union-attr]
    return False, None


# -- closure back end --------------------------------------------------------------------------


def compile_closure(
    node: Expr, c: Compiler, trace: Callable[[Expr, Any], None] | None = None
) -> Evaluator:
    """A closure computing ``node``; ``trace(node, value)`` is told every sub-result."""
    inner = _closure(node, c, trace)
    if trace is None:
        return inner

    def traced(ctx: Mapping[str, Any]) -> Any:
        value = inner(ctx)
        trace(node, value)
        return value

    return traced


def _closure(node: Expr, c: Compiler, trace: Callable[[Expr, Any], None] | None) -> Evaluator:
    def sub(n: Expr) -> Evaluator:
        return compile_closure(n, c, trace)

    match node:
        case Literal(value=value):
            return lambda ctx: value
        case ListExpr(items=items):
            parts = [sub(i) for i in items]
            return lambda ctx: tuple(p(ctx) for p in parts)
        case Field(path=(root, *keys)):
            if c.type_of(node) == "bool":
                return lambda ctx: rt.get_path(ctx.get(root), *keys) is True
            return lambda ctx: rt.get_path(ctx.get(root), *keys)
        case Call(name="today"):
            return lambda ctx: ctx.get("today")
        case Call(name="tax_rate", args=(Literal(value=rate_id),)):
            rate = c.tax_rates.get(rate_id)
            return lambda ctx: rate
        case Call(name=name, args=args):
            fn, parts = c.function(name), [sub(a) for a in args]
            return lambda ctx: rt.call(fn, *(p(ctx) for p in parts))
        case Unary(op="not", operand=operand):
            inner = sub(operand)
            return lambda ctx: not inner(ctx)
        case Unary(operand=operand):
            inner = sub(operand)
            return lambda ctx: rt.neg(inner(ctx))
        case BoolOp(op="and", operands=operands):
            parts = [sub(o) for o in operands]
            return lambda ctx: all(p(ctx) for p in parts)
        case BoolOp(operands=operands):
            parts = [sub(o) for o in operands]
            return lambda ctx: any(p(ctx) for p in parts)
        case IsSet(operand=operand, negated=negated):
            inner = sub(operand)
            return lambda ctx: (inner(ctx) is None) if negated else (inner(ctx) is not None)
        case Binary(op=op, left=left, right=right):
            return _closure_binary(op, sub(left), sub(right), left, right)
    raise TypeError(f"cannot compile {node!r}")  # pragma: no cover


def _closure_binary(op: str, a: Evaluator, b: Evaluator, left: Expr, right: Expr) -> Evaluator:
    none_left = isinstance(left, Literal) and left.type == "none"
    none_right = isinstance(right, Literal) and right.type == "none"
    if op in ("==", "!=") and (none_left or none_right):
        other = b if none_left else a
        if op == "==":
            return lambda ctx: other(ctx) is None
        return lambda ctx: other(ctx) is not None
    if op == "matches":
        pattern = re.compile(right.value)  # type: ignore[union-attr]
        return lambda ctx: rt.matches(a(ctx), pattern)
    if op in rt.ORDER:
        cmp = rt.ORDER[op]
        return lambda ctx: rt.order(cmp, a(ctx), b(ctx))
    helper = {
        "==": rt.eq,
        "!=": rt.ne,
        "in": rt.member,
        "not in": rt.not_member,
        "startswith": rt.startswith,
        "endswith": rt.endswith,
        "contains": rt.contains,
        "+": rt.add,
        "-": rt.sub,
        "*": rt.mul,
        "/": rt.div,
    }[op]
    return lambda ctx: helper(a(ctx), b(ctx))


# -- source back end ---------------------------------------------------------------------------


class _Source:
    """Generates one function per expression into a single module."""

    def __init__(self, c: Compiler):
        self.c = c
        self.constants: list[Any] = []
        self.index: dict[tuple[type, Hashable], str] = {}
        self.roots: dict[str, str] = {}
        self.temps = 0
        self.fast = False

    def const(self, value: Any) -> str:
        key = None
        try:
            key = (type(value), value)
            hash(key)
        except TypeError:
            key = None
        if key is not None and key in self.index:
            return self.index[key]
        name = f"c{len(self.constants)}"
        self.constants.append(value)
        if key is not None:
            self.index[key] = name
        return name

    def temp(self) -> str:
        self.temps += 1
        return f"t{self.temps}"

    def root(self, name: str) -> str:
        if name not in self.roots:
            self.roots[name] = f"r{len(self.roots)}"
        return self.roots[name]

    def function(self, index: int, node: Expr) -> str:
        """Fast variant first (plain subscripts; a missing field raises and falls through to
        the null-safe variant, which gives the spec's answer)."""
        self.fast, self.temps = True, 0
        fast = self.gen(node)
        self.fast, self.roots = False, {}
        safe = self.gen(node)
        lines = [f"def f{index}(ctx):", "    try:", f"        return {fast}",
                 "    except MISSING:", "        pass"]  # fmt: skip
        for name, var in self.roots.items():
            lines.append(f"    {var} = ctx.get({self.const(name)}) or EMPTY")
        lines.append(f"    return {safe}")
        return "\n".join(lines)

    def gen(self, node: Expr) -> str:
        match node:
            case Literal(type="none"):
                return "None"
            case Literal(value=value):
                return self.const(value)
            case ListExpr(items=items):
                is_const, value = _literal_value(node)
                if is_const:
                    return self.const(value)
                return "(" + "".join(f"{self.gen(i)}, " for i in items) + ")"
            case Field(path=(root, *keys)) if self.fast:
                code = f"ctx[{self.const(root)}]" + "".join(f"[{self.const(k)}]" for k in keys)
                return f"({code} is True)" if self.c.type_of(node) == "bool" else code
            case Field(path=(root, first, *rest)):
                code = f"{self.root(root)}.get({self.const(first)})"
                if rest:
                    keys = ", ".join(self.const(k) for k in rest)
                    code = f"get_path({code}, {keys})"
                return f"({code} is True)" if self.c.type_of(node) == "bool" else code
            case Call(name="today"):
                return f"ctx{'[{}]' if self.fast else '.get({})'}".format(self.const("today"))
            case Call(name="tax_rate", args=(Literal(value=rate_id),)):
                return self.const(self.c.tax_rates.get(rate_id))
            case Call(name=name, args=args):
                fn = self.const(self.c.function(name))
                return f"call({fn}{''.join(', ' + self.gen(a) for a in args)})"
            case Unary(op="not", operand=operand):
                return f"(not {self.gen(operand)})"
            case Unary(operand=operand):
                return f"neg({self.gen(operand)})"
            case BoolOp(op=op, operands=operands):
                return "(" + f" {op} ".join(self.gen(o) for o in operands) + ")"
            case IsSet(operand=operand, negated=negated):
                return f"({self.gen(operand)} is {'' if negated else 'not '}None)"
            case Binary():
                return self.binary(node)
        raise TypeError(f"cannot compile {node!r}")  # pragma: no cover

    def guarded(self, subject: str, test: str) -> str:
        """``test`` on ``subject`` evaluated once, false when it is none."""
        t = self.temp()
        return f"(({t} := {subject}) is not None and {test.format(t)})"

    def binary(self, node: Binary) -> str:
        op, left, right = node.op, node.left, node.right
        lit_left, lit_right = isinstance(left, Literal), isinstance(right, Literal)
        if op in ("==", "!=") and (
            (lit_left and left.type == "none") or (lit_right and right.type == "none")
        ):
            other = right if lit_left and left.type == "none" else left
            return f"({self.gen(other)} is {'' if op == '==' else 'not '}None)"
        kind = self.c.type_of(left)
        if op == "==" and (lit_left or lit_right):
            return f"({self.gen(left)} == {self.gen(right)})"  # a literal is never none
        if op == "!=" and lit_right:
            return self.guarded(self.gen(left), "{} != " + self.gen(right))
        if op in rt.ORDER and kind in _FAST_ORDER and lit_right:
            if self.fast:  # none raises TypeError here, and the safe variant answers
                return f"({self.gen(left)} {op} {self.gen(right)})"
            return self.guarded(self.gen(left), "{} " + op + " " + self.gen(right))
        if op in rt.ORDER:
            return f"order({self.const(rt.ORDER[op])}, {self.gen(left)}, {self.gen(right)})"
        if op == "in" and _literal_value(right)[0]:
            _, values = _literal_value(right)
            try:
                members: Any = frozenset(v for v in values if v is not None)
            except TypeError:
                members = tuple(values)
            return f"({self.gen(left)} in {self.const(members)})"
        if op in ("startswith", "endswith") and lit_right:
            if self.fast:  # none raises AttributeError here
                return f"{self.gen(left)}.{op}({self.gen(right)})"
            return self.guarded(self.gen(left), "{}." + op + "(" + self.gen(right) + ")")
        if op == "matches":
            pattern = self.const(re.compile(right.value))  # type: ignore[union-attr]
            return f"matches({self.gen(left)}, {pattern})"
        if op in _FAST_ARITH and kind == "number" and self.c.type_of(right) == "number":
            a, b = self.temp(), self.temp()
            return (
                f"(None if ({a} := {self.gen(left)}) is None or ({b} := {self.gen(right)}) is None"
                f" else {a} {_FAST_ARITH[op]} {b})"
            )
        helper = {
            "==": "eq",
            "!=": "ne",
            "in": "member",
            "not in": "not_member",
            "startswith": "startswith",
            "endswith": "endswith",
            "contains": "contains",
            "+": "add",
            "-": "sub",
            "*": "mul",
            "/": "div",
        }[op]
        return f"{helper}({self.gen(left)}, {self.gen(right)})"


def compile_source(nodes: Sequence[Expr], c: Compiler) -> list[Evaluator]:
    """One function per node, from one generated module, compiled once.

    The module's globals are the runtime helpers and the constants, nothing else: no builtins.
    """
    if not nodes:
        return []
    source = _Source(c)
    text = "\n".join(source.function(i, node) for i, node in enumerate(nodes)) + "\n"
    namespace: dict[str, Any] = {"__builtins__": {}, **rt.HELPERS}
    namespace.update((f"c{i}", value) for i, value in enumerate(source.constants))
    # exec of our own template text only: user values are the constants bound above
    exec(compile(text, "<abonnement rules>", "exec"), namespace)
    return [namespace[f"f{i}"] for i in range(len(nodes))]
