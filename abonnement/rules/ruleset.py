"""A checked, compiled rule set: what pricing, workflows and segments run.

``build_ruleset`` parses and checks every rule file and compiles all of it in one go; problems
of all files come back together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from abonnement.engine.money import Percent
from abonnement.errors import Problem
from abonnement.rules.ast import Block, Call, Expr, Field, Literal
from abonnement.rules.checker import check
from abonnement.rules.compiler import Compiler, Evaluator, compile_closure, compile_source
from abonnement.rules.parser import parse_rules
from abonnement.rules.types import RuleEnv

__all__ = ["Action", "PricingRule", "RuleSet", "Segment", "Trigger", "build_ruleset", "walk"]


def _always(ctx: Mapping[str, Any]) -> bool:
    return True


@dataclass(frozen=True)
class PricingRule:
    """A tax, discount or fee block, ready to apply."""

    kind: str
    name: str
    label: str
    scope: str  # line | invoice
    when: Evaluator
    value: Evaluator  # the rate (tax) or amount (discount, fee)
    once: bool = False
    for_payments: int | None = None
    taxable: bool = True
    block: Block | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Action:
    kind: str  # notify | set
    to: str | None = None
    template: str | None = None
    target: tuple[str, ...] = ()
    value: Evaluator | None = None


@dataclass(frozen=True)
class Trigger:
    name: str
    event: str
    when: Evaluator
    actions: tuple[Action, ...]
    block: Block | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Segment:
    name: str
    of: str
    where: Evaluator
    block: Block | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class RuleSet:
    pricing: tuple[PricingRule, ...] = ()
    triggers: tuple[Trigger, ...] = ()
    segments: Mapping[str, Segment] = field(default_factory=dict)
    version: str = ""
    compiler: Compiler | None = field(default=None, compare=False, repr=False)
    fields: frozenset[tuple[str, ...]] = frozenset()  # every field path the rules read

    def reads(self, *path: str) -> bool:
        return path in self.fields

    @property
    def memoizable(self) -> bool:
        """Whether pricing depends only on fields (no plugin function that could read more)."""
        return not any(path[0] == "?" for path in self.fields)

    @property
    def counts_payments(self) -> bool:
        return any(r.once or r.for_payments is not None for r in self.pricing)

    def of_kind(self, kind: str) -> tuple[PricingRule, ...]:
        return tuple(r for r in self.pricing if r.kind == kind)

    def fired(self, ctx: Mapping[str, Any]) -> list[Trigger]:
        """Triggers whose event is ``ctx["event"]["type"]`` and whose condition holds."""
        event = (ctx.get("event") or {}).get("type")
        return [t for t in self.triggers if t.event == event and t.when(ctx)]

    def explain(self, expr: Expr, ctx: Mapping[str, Any]) -> list[tuple[Expr, Any]]:
        """Every sub-expression of ``expr`` with its value in ``ctx`` (closure back end)."""
        seen: list[tuple[Expr, Any]] = []
        assert self.compiler is not None
        compile_closure(expr, self.compiler, lambda n, v: seen.append((n, v)))(ctx)
        return seen


def build_ruleset(
    sources: Sequence[tuple[str, str]],
    env: RuleEnv,
    tax_rates: Mapping[str, Percent],
    functions: Mapping[str, Callable[..., Any]] | None = None,
) -> tuple[RuleSet, list[Problem]]:
    """Parse, check and compile ``(file, text)`` pairs. On problems the rule set is empty."""
    blocks: list[Block] = []
    problems: list[Problem] = []
    for file, text in sources:
        parsed = parse_rules(text, file)
        blocks.extend(parsed.blocks)
        problems.extend(parsed.problems)
    checked = check(blocks, env, dict(sources))
    problems.extend(checked.problems)
    digest = hashlib.sha256("\0".join(f"{f}\0{t}" for f, t in sources).encode()).hexdigest()
    if problems:
        return RuleSet(version=digest[:16]), problems
    compiler = Compiler(checked.types, tax_rates, functions or {})
    exprs: list[Expr] = []

    def slot(expr: Expr | None) -> int:
        if expr is None:
            return -1
        exprs.append(expr)
        return len(exprs) - 1

    plans = []
    for block in blocks:
        get = block.get
        when = get("when") or get("where")
        value = get("rate") or get("amount")
        actions = []
        for stmt in block.all("do"):
            call: Call = stmt.value
            if call.name == "notify":
                kw = {name: v.value for name, v in call.kwargs if isinstance(v, Literal)}
                actions.append(("notify", kw.get("to"), kw.get("template"), (), -1))
            else:
                target, new = call.args
                assert isinstance(target, Field)
                actions.append(("set", None, None, target.path, slot(new)))
        plans.append(
            (
                block,
                slot(when.value if when else None),
                slot(value.value if value else None),
                actions,
            )
        )
    compiled = compile_source(exprs, compiler)

    def fn(index: int) -> Evaluator:
        return compiled[index] if index >= 0 else _always

    pricing, triggers, segments = [], [], {}
    for block, when_i, value_i, actions in plans:
        label = block.get("label")
        label_text = label.value.value if label else block.name
        if block.kind in ("tax", "discount", "fee"):
            scope = block.get("applies_to")
            taxable = block.get("taxable")
            for_n = block.get("for")
            pricing.append(PricingRule(
                kind=block.kind, name=block.name, label=label_text,
                scope=scope.value if scope else "line", when=fn(when_i), value=fn(value_i),
                once=block.get("once") is not None,
                for_payments=for_n.value if for_n else None,
                taxable=bool(taxable.value.value) if taxable else True, block=block,
            ))  # fmt: skip
        elif block.kind == "trigger":
            on = block.get("on")
            assert on is not None
            triggers.append(Trigger(
                block.name, on.value.dotted, fn(when_i),
                tuple(Action(k, to, tpl, target, fn(v) if v >= 0 else None)
                      for k, to, tpl, target, v in actions), block,
            ))  # fmt: skip
        else:
            of = block.get("of")
            segments[block.name] = Segment(block.name, of.value if of else "subscriptions",
                                           fn(when_i), block)  # fmt: skip
    nodes = [n for e in exprs for n in walk(e)]
    fields = frozenset(n.path for n in nodes if isinstance(n, Field))
    # today() reads the date, a plugin function may read anything: both count as fields
    fields |= {("today",) for n in nodes if isinstance(n, Call) and n.name == "today"}
    fields |= {("?", n.name) for n in nodes if isinstance(n, Call) and n.name in (functions or {})}
    ruleset = RuleSet(tuple(pricing), tuple(triggers), segments, digest[:16], compiler, fields)
    return ruleset, []


def walk(node: Any) -> Any:
    """Every node of an expression tree."""
    yield node
    for name in ("left", "right", "operand"):
        child = getattr(node, name, None)
        if child is not None:
            yield from walk(child)
    for child in (
        *getattr(node, "items", ()),
        *getattr(node, "operands", ()),
        *getattr(node, "args", ()),
        *(v for _, v in getattr(node, "kwargs", ())),
    ):
        yield from walk(child)
