"""Static checks of rule blocks: statements, fields, functions and types — all before billing.

``check`` returns every problem of every file, and the type of each expression node (the
compiler needs it, e.g. to compare money null-safely).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from abonnement.engine.money import Money, Percent
from abonnement.errors import Problem
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
from abonnement.rules.parser import source_context
from abonnement.rules.types import (
    BLOCK_ROOTS,
    BUILTIN_FUNCTIONS,
    FIELDS,
    TRIGGER_EVENTS,
    RuleEnv,
    Signature,
    is_list,
    list_of,
)

__all__ = ["ALLOWED", "Checked", "check"]

# keyword → required?  ("do" may repeat; every other keyword appears at most once)
ALLOWED: dict[str, dict[str, bool]] = {
    "tax": {"label": False, "rate": True, "applies_to": False, "when": False},
    "discount": {
        "label": False,
        "amount": True,
        "applies_to": False,
        "once": False,
        "for": False,
        "when": False,
    },
    "fee": {"label": False, "amount": True, "applies_to": False, "taxable": False, "when": False},
    "trigger": {"label": False, "on": True, "when": False, "do": True},
    "segment": {"label": False, "of": True, "where": True},
}

_ARITH: dict[str, dict[tuple[str, str], str]] = {
    "+": {
        ("number", "number"): "number",
        ("money", "money"): "money",
        ("percent", "percent"): "percent",
        ("date", "duration"): "date",
        ("duration", "date"): "date",
        ("percent", "money"): "fee_amount",
        ("money", "percent"): "fee_amount",
    },
    "-": {
        ("number", "number"): "number",
        ("money", "money"): "money",
        ("percent", "percent"): "percent",
        ("date", "duration"): "date",
    },
    "*": {
        ("number", "number"): "number",
        ("money", "number"): "money",
        ("number", "money"): "money",
        ("percent", "number"): "percent",
        ("number", "percent"): "percent",
    },
    "/": {("number", "number"): "number", ("money", "number"): "money"},
}
_ORDERABLE = {"number", "money", "date", "percent", "string", "duration"}
_PROPERTY_TYPES = {"string": "string", "number": "number", "boolean": "bool", "date": "date",
                   "enum": "string"}  # fmt: skip


@dataclass
class Checked:
    """The outcome: problems, and ``types[id(node)]`` for every expression node checked."""

    problems: list[Problem] = field(default_factory=list)
    types: dict[int, str] = field(default_factory=dict)


def _skip(stmt: Stmt) -> None:
    """Statements with nothing to type-check (label, once, applies_to, of)."""


def _compatible(a: str, b: str) -> bool:
    return a == b or "any" in (a, b) or "none" in (a, b)


def _did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def _constant_parts(node: Expr) -> list[Any]:
    """The constant Money and Percent values ``node`` adds up to (``2.9% + 0.30 USD`` → both;
    ``-5.00 USD`` → one, negative); nothing for an amount not known before billing."""
    match node:
        case Literal(type="money" | "percent", value=value):
            return [value]
        case Unary(op="neg", operand=operand) if operand is not None:
            parts = _constant_parts(operand)
            return [-p if isinstance(p, Money) else Percent(-p.value) for p in parts]
        case Binary(op="+", left=left, right=right) if left is not None and right is not None:
            return _constant_parts(left) + _constant_parts(right)
    return []


class _Checker:
    def __init__(self, env: RuleEnv, texts: Mapping[str, str], out: Checked):
        self.env = env
        self.texts = texts
        self.out = out
        self.functions = {**BUILTIN_FUNCTIONS, **env.functions}
        self.block: Block | None = None
        self.roots: tuple[str, ...] = ()

    def error(self, at: object, message: str, hint: str | None = None) -> str:
        assert self.block is not None
        line, column = getattr(at, "line", 0), getattr(at, "column", 0)
        if not line:
            line, column = self.block.line, self.block.column
        text = self.texts.get(self.block.file, "")
        self.out.problems.append(
            Problem(
                self.block.file, line, column, message, hint, source_context(text, line, column)
            )
        )
        return "any"  # an erroneous expression checks as anything, so one mistake = one error

    # -- expressions --------------------------------------------------------------------------
    def infer(self, node: Expr) -> str:
        kind = self._infer(node)
        self.out.types[id(node)] = kind
        return kind

    def _infer(self, node: Expr) -> str:
        match node:
            case Literal(type="money", value=money):
                if self.env.currencies and money.currency not in self.env.currencies:
                    return self.error(
                        node,
                        f"currency {money.currency} is not listed in settings.currencies",
                        _did_you_mean(money.currency, self.env.currencies),
                    )
                return "money"
            case Literal():
                return node.type
            case ListExpr(items=items):
                kinds = {self.infer(item) for item in items} - {"none", "any"}
                if len(kinds) > 1:
                    return self.error(node, f"a list mixes {' and '.join(sorted(kinds))}")
                return list_of(kinds.pop() if kinds else "any")
            case Field():
                return self.field(node)
            case Call():
                return self.call(node)
            case Unary(op="not", operand=operand):
                kind = self.infer(operand)
                if kind not in ("bool", "any"):
                    return self.error(node, f"`not` needs a condition, got {kind}")
                return "bool"
            case Unary(operand=operand):
                kind = self.infer(operand)
                if kind not in ("number", "money", "percent", "any"):
                    return self.error(node, f"cannot negate {kind}")
                return kind
            case BoolOp(op=op, operands=operands):
                for operand in operands:
                    kind = self.infer(operand)
                    if kind not in ("bool", "any"):
                        self.error(operand, f"`{op}` needs conditions on both sides, got {kind}")
                return "bool"
            case IsSet(operand=operand):
                self.infer(operand)
                return "bool"
            case Binary():
                return self.binary(node)
        return self.error(node, "unsupported expression")  # pragma: no cover

    def binary(self, node: Binary) -> str:
        op, left, right = node.op, self.infer(node.left), self.infer(node.right)
        shown = f"({left} {op} {right})"
        if op in ("==", "!="):
            if not _compatible(left, right):
                return self.error(node, f"cannot compare {left} with {right}",
                                  f"both sides of `{op}` must have one type")  # fmt: skip
            return "bool"
        if op in ("<", "<=", ">", ">="):
            if "none" in (left, right):
                return self.error(node, f"cannot order with none {shown}", "use `is set`")
            if not _compatible(left, right) or (left not in _ORDERABLE | {"any"}):
                return self.error(node, f"cannot compare {left} with {right} using `{op}`")
            return "bool"
        if op in ("in", "not in"):
            if right == "string" and left in ("string", "any"):
                return "bool"
            if not (is_list(right) or right == "any"):
                return self.error(node.right, f"`{op}` needs a list on its right, got {right}",
                                  'e.g. ["DK", "SE"]')  # fmt: skip
            item = right[5:-1] if is_list(right) else "any"
            if not _compatible(left, item):
                return self.error(node, f"cannot look for {left} in a list of {item}")
            return "bool"
        if op in ("startswith", "endswith", "matches"):
            if left not in ("string", "any") or right not in ("string", "any"):
                return self.error(node, f"`{op}` works on strings, got {left} and {right}")
            if op == "matches":
                self.regex(node.right)
            return "bool"
        if op == "contains":
            if left in ("string", "any") and right in ("string", "any"):
                return "bool"
            if is_list(left) and _compatible(left[5:-1], right):
                return "bool"
            return self.error(node, f"`contains` needs a string or list on its left, got {left}")
        if "any" in (left, right):
            return "any"
        result = _ARITH[op].get((left, right))
        if result is None:
            verb = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide"}[op]
            return self.error(node, f"cannot {verb} {left} and {right}")
        if result == "money":
            self.same_currency(node)
        return result

    def same_currency(self, node: Binary) -> None:
        a, b = node.left, node.right
        both_money = (
            isinstance(a, Literal) and isinstance(b, Literal) and a.type == b.type == "money"
        )
        if both_money and a.value.currency != b.value.currency:
            self.error(node, f"cannot combine {a.value.currency} with {b.value.currency}")

    def regex(self, node: Expr) -> None:
        if not isinstance(node, Literal) or node.type != "string":
            self.error(node, "`matches` takes a quoted regular expression")
            return
        try:
            re.compile(node.value)
        except re.error as exc:
            self.error(node, f"invalid regular expression: {exc}")

    def field(self, node: Field) -> str:
        root, *rest = node.path
        if root not in FIELDS:
            roots = [f"{r}.{f}" for r in self.roots for f in FIELDS[r]]
            guess = ".".join(node.path[:2])
            return self.error(
                node,
                f"unknown field `{node.dotted}`",
                _did_you_mean(guess, roots) or _did_you_mean(root, self.roots),
            )
        if root not in self.roots:
            where = self.block.kind if self.block else "here"
            return self.error(node, f"`{root}` is not available in a {where} block here",
                              f"available: {', '.join(self.roots)}")  # fmt: skip
        if not rest:
            return self.error(node, f"`{root}` is a record; name a field such as "
                              f"`{root}.{next(iter(FIELDS[root]))}`")  # fmt: skip
        model, kind = FIELDS[root], "record"
        for i, part in enumerate(rest):
            if kind in ("properties", "subscription_properties"):
                if i != len(rest) - 1:
                    return self.error(node, f"`{node.dotted}`: properties have no fields")
                if kind == "properties":
                    return "any"
                prop = self.env.subscription_properties.get(part)
                if prop is None:
                    return self.error(
                        node,
                        f"unknown custom property `{part}`",
                        _did_you_mean(part, self.env.subscription_properties)
                        or "declare it in settings.subscriptions.custom_properties",
                    )
                return _PROPERTY_TYPES.get(prop, "any")
            if kind != "record":
                return self.error(node, f"`{'.'.join(node.path[: i + 1])}` has no fields")
            if part not in model:
                parent = ".".join(node.path[: i + 1])
                close = difflib.get_close_matches(part, list(model), n=1, cutoff=0.6)
                hint = (f"did you mean `{parent}.{close[0]}`?" if close
                        else f"fields of {parent}: {', '.join(model)}")  # fmt: skip
                return self.error(node, f"unknown field `{node.dotted}`", hint)
            kind = model[part]
            if kind == "product":
                model, kind = FIELDS["product"], "record"
        if kind == "record":
            return self.error(node, f"`{node.dotted}` is a record; name one of its fields")
        return kind

    def call(self, node: Call) -> str:
        signature: Signature | None = self.functions.get(node.name)
        if signature is None:
            return self.error(node, f"unknown function `{node.name}`",
                              _did_you_mean(node.name, self.functions))  # fmt: skip
        if node.kwargs:
            return self.error(node, f"`{node.name}` takes no named arguments")
        kinds = tuple(self.infer(arg) for arg in node.args)
        if node.name == "tax_rate":
            self.tax_rate(node)
        for params, result in signature.overloads:
            if len(params) == len(kinds) and all(map(_compatible, params, kinds)):
                return result
        wanted = " or ".join(f"{node.name}({', '.join(p)})" for p, _ in signature.overloads)
        return self.error(node, f"wrong arguments: {node.name}({', '.join(kinds)})",
                          f"expected {wanted}")  # fmt: skip

    def tax_rate(self, node: Call) -> None:
        if len(node.args) != 1:
            return
        arg = node.args[0]
        if not isinstance(arg, Literal) or arg.type != "string":
            self.error(arg, "tax_rate() takes the quoted id of a tax rate")
        elif arg.value not in self.env.tax_rates:
            self.error(
                arg,
                f"unknown tax rate `{arg.value}`",
                _did_you_mean(arg.value, self.env.tax_rates) or "declare it in tax_rates",
            )
        elif not self.env.tax_rates[arg.value]:
            self.error(arg, f"tax rate `{arg.value}` is not active")

    # -- statements ---------------------------------------------------------------------------
    def check_block(self, block: Block) -> None:
        self.block = block
        allowed = ALLOWED[block.kind]
        seen: dict[str, Stmt] = {}
        for stmt in block.statements:
            if stmt.keyword not in allowed:
                self.error(stmt, f"`{stmt.keyword}` is not allowed in a {block.kind} block",
                           f"a {block.kind} takes: {', '.join(allowed)}")  # fmt: skip
                continue
            if stmt.keyword in seen and stmt.keyword != "do":
                first = seen[stmt.keyword]
                self.error(stmt, f"`{stmt.keyword}` given twice in {block.kind} `{block.name}`",
                           f"first at line {first.line}")  # fmt: skip
                continue
            seen[stmt.keyword] = stmt
        for keyword, required in allowed.items():
            if required and keyword not in seen:
                self.error(block, f"{block.kind} `{block.name}` needs `{keyword}`")
        if "once" in seen and "for" in seen:
            self.error(seen["for"], "a discount is either `once` or `for N payments`, not both")
        scope = seen["applies_to"].value if "applies_to" in seen else "line"
        if scope not in ("line", "invoice"):
            self.error(seen["applies_to"], f"`applies_to` is line or invoice, not `{scope}`",
                       _did_you_mean(scope, ("line", "invoice")))  # fmt: skip
            scope = "line"
        of = seen["of"].value if "of" in seen else "subscriptions"
        if of not in ("subscriptions", "contacts"):
            self.error(seen["of"], f"`of` is subscriptions or contacts, not `{of}`",
                       _did_you_mean(of, ("subscriptions", "contacts")))  # fmt: skip
            of = "subscriptions"
        self.roots = BLOCK_ROOTS[
            "trigger" if block.kind == "trigger" else of if block.kind == "segment" else scope
        ]
        for stmt in block.statements:
            if stmt.keyword == "do" or seen.get(stmt.keyword) is stmt:
                getattr(self, f"stmt_{stmt.keyword}", _skip)(stmt)

    def expect(self, stmt: Stmt, wanted: tuple[str, ...], words: str) -> None:
        kind = self.infer(stmt.value)
        if kind not in (*wanted, "any"):
            self.error(stmt.value, f"`{stmt.keyword}` needs {words}, got {kind}")

    def stmt_when(self, stmt: Stmt) -> None:
        self.expect(stmt, ("bool",), "a condition (true or false)")

    stmt_where = stmt_when

    def stmt_taxable(self, stmt: Stmt) -> None:
        self.expect(stmt, ("bool",), "true or false")

    def stmt_rate(self, stmt: Stmt) -> None:
        self.expect(stmt, ("percent",), 'a percentage such as 25% or tax_rate("id")')

    def stmt_amount(self, stmt: Stmt) -> None:
        if self.block and self.block.kind == "fee":
            self.expect(stmt, ("percent", "money", "fee_amount"),
                        "a percentage, money, or both: 2.9% + 0.30 USD")  # fmt: skip
        else:
            self.expect(stmt, ("percent", "money"), "a percentage (10%) or money (5.00 USD)")
        self.amount_range(stmt)

    def amount_range(self, stmt: Stmt) -> None:
        """A written amount outside what the block can mean, as `subscriptions edit` refuses
        it: a discount between 0% and 100% and never a negative sum, a fee never negative.
        Only constants are known before billing (an amount read from a field is not)."""
        kind = self.block.kind if self.block else ""
        for part in _constant_parts(stmt.value):
            if isinstance(part, Percent):
                if part.value < 0 or (kind == "discount" and part.value > 100):
                    what = "a discount" if kind == "discount" else "a fee"
                    bounds = "between 0% and 100%" if kind == "discount" else "at least 0%"
                    self.error(stmt.value, f"{what} is {bounds}, not {part}")
            elif isinstance(part, Money) and part.amount < 0:
                hint = "a discount takes money off: write it positive" if (
                    kind == "discount") else "for a credit, use a discount"  # fmt: skip
                self.error(stmt.value, f"a {kind} amount is never negative, not {part}", hint)

    def stmt_for(self, stmt: Stmt) -> None:
        if stmt.value < 1:
            self.error(stmt, "`for` needs at least 1 payment")

    def stmt_on(self, stmt: Stmt) -> None:
        name = stmt.value.dotted
        if name not in TRIGGER_EVENTS:
            self.error(stmt.value, f"unknown event `{name}`",
                       _did_you_mean(name, TRIGGER_EVENTS) or
                       f"events: {', '.join(TRIGGER_EVENTS)}")  # fmt: skip

    def stmt_do(self, stmt: Stmt) -> None:
        call: Call = stmt.value
        if call.name == "notify":
            self.notify(call)
        elif call.name == "set":
            self.set_action(call)
        else:
            self.error(
                call,
                f"unknown action `{call.name}`",
                _did_you_mean(call.name, ("notify", "set")) or "actions: notify, set",
            )

    def notify(self, call: Call) -> None:
        if call.args:
            self.error(call.args[0], 'notify takes named arguments: notify(to: "contact", '
                       'template: "welcome")')  # fmt: skip
            return
        given = dict(call.kwargs)
        for name, value in call.kwargs:
            if name not in ("to", "template"):
                self.error(value, f"notify has no argument `{name}`",
                           _did_you_mean(name, ("to", "template")))  # fmt: skip
        for name in ("to", "template"):
            if name not in given:
                self.error(call, f"notify needs `{name}:`")
                continue
            value = given[name]
            if not isinstance(value, Literal) or value.type != "string":
                self.error(value, f"`{name}:` takes a quoted string")
                continue
            if name == "template" and value.value not in self.env.templates:
                self.error(value, f"unknown template `{value.value}`",
                           _did_you_mean(value.value, self.env.templates)
                           or "add it under templates/ in the config")  # fmt: skip
            if name == "to":
                self.recipient(value)

    def recipient(self, value: Literal) -> None:
        to: str = value.value
        if to in ("contact", "admins") or re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", to):
            return
        if to.startswith("team:"):
            team = to[5:]
            if team not in self.env.teams:
                self.error(value, f"unknown team `{team}`",
                           _did_you_mean(team, self.env.teams)
                           or "declare it in settings.notifications.teams")  # fmt: skip
            return
        self.error(
            value,
            f"unknown recipient `{to}`",
            'use "contact", "admins", "team:NAME" or an e-mail address',
        )

    def set_action(self, call: Call) -> None:
        if len(call.args) != 2 or call.kwargs:
            self.error(call, 'set takes a field and a value: set(subscription.owner, "ana")')
            return
        target, value = call.args
        settable = isinstance(target, Field) and (
            target.path == ("subscription", "owner")
            or (len(target.path) == 3 and target.path[:2] == ("subscription", "properties"))
        )
        if not settable:
            self.error(target, "set can change subscription.owner or "
                       "subscription.properties.NAME")  # fmt: skip
            return
        wanted, got = self.infer(target), self.infer(value)
        if not _compatible(wanted, got):
            self.error(value, f"`{target.dotted}` is {wanted}, not {got}")


def check(blocks: Iterable[Block], env: RuleEnv, texts: Mapping[str, str]) -> Checked:
    """Check every block; duplicate block names across all files are errors too."""
    out = Checked()
    checker = _Checker(env, texts, out)
    seen: dict[str, Block] = {}
    for block in blocks:
        checker.block = block
        if block.name in seen:
            first = seen[block.name]
            checker.error(block, f"duplicate block name `{block.name}`",
                          f"first declared at {first.file}:{first.line}")  # fmt: skip
        seen.setdefault(block.name, block)
        try:
            checker.check_block(block)
        except RecursionError:  # bounded by the parser's depth cap; kept as a last guard
            checker.error(block, "rule too deeply nested")
    return out
