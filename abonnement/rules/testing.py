"""Rule test cases (``*.test.yaml``): a context given, the outcome expected.

Pure: cases come in as plain data (already parsed from YAML), results go out as values. A
case's ``given`` names roots of the rule context (customer, subscription, payment, event…),
``currency``, ``lines``, ``today`` and ``payments_made``; ``expect`` names ``discounts``,
``fees``, ``taxes`` (each ``{rule: amount}``, compared exactly), ``subtotal``, ``total`` and
``triggers`` (the names that fire, in file order).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from abonnement.engine.catalog import TaxRate
from abonnement.engine.money import Money, MoneyError, parse_money, parse_percent
from abonnement.engine.pricing import LineInput, price_invoice
from abonnement.errors import CaseError
from abonnement.rules.ruleset import RuleSet
from abonnement.rules.types import FIELDS

__all__ = ["CaseError", "CaseResult", "coverage", "run_case"]

_GIVEN_KEYS = ("currency", "lines", "today", "payments_made", *FIELDS)
_EXPECT_KEYS = ("discounts", "fees", "taxes", "subtotal", "total", "triggers")
_LINE_KEYS = (*FIELDS["line"], "tax_rate")


@dataclass(frozen=True)
class CaseResult:
    name: str
    passed: bool
    differences: tuple[str, ...] = ()
    exercised: frozenset[str] = field(default_factory=frozenset)


def _convert(kind: str, value: Any, path: tuple) -> Any:
    if value is None:
        return None
    try:
        if kind == "money":
            return parse_money(value)
        if kind == "percent":
            return parse_percent(value)
        if kind == "date":
            return date.fromisoformat(value) if isinstance(value, str) else value
    except (MoneyError, ValueError, TypeError) as exc:
        raise CaseError(path, f"expected {kind}: {exc}") from None
    return value


def _record(root: str, raw: Any, path: tuple) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise CaseError(path, f"`{root}` takes a mapping of fields")
    model = FIELDS[root]
    out = {}
    for key, value in raw.items():
        if key not in model and not (root == "line" and key == "tax_rate"):
            close = difflib.get_close_matches(key, list(model), n=1, cutoff=0.6)
            raise CaseError((*path, key), f"unknown field `{root}.{key}`",
                            f"did you mean `{close[0]}`?" if close else None, key=True)  # fmt: skip
        kind = model.get(key, "string")
        if kind == "product":
            value = _record("product", value, (*path, key))
        out[key] = _convert(kind, value, (*path, key))
    return out


def _check_keys(raw: Mapping, allowed: Sequence[str], path: tuple, what: str) -> None:
    for key in raw:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1, cutoff=0.6)
            raise CaseError((*path, key), f"unknown key `{key}` in {what}",
                            f"did you mean `{close[0]}`?" if close else
                            f"expected: {', '.join(allowed)}", key=True)  # fmt: skip


def _money_map(raw: Any, path: tuple) -> dict[str, Money]:
    if not isinstance(raw, dict):
        raise CaseError(path, "expected a mapping of rule names to amounts")
    return {name: _convert("money", v, (*path, name)) for name, v in raw.items()}


def run_case(
    case: Mapping[str, Any],
    index: int,
    rules: RuleSet,
    tax_rates: Mapping[str, TaxRate],
    default_currency: str,
) -> CaseResult:
    """Run one case. Raises ``CaseError`` for a malformed case."""
    base = (index,)
    _check_keys(case, ("name", "given", "expect"), base, "a test case")
    name = str(case.get("name") or f"case {index + 1}")
    given = case.get("given") or {}
    expect = case.get("expect") or {}
    _check_keys(given, _GIVEN_KEYS, (*base, "given"), "given")
    _check_keys(expect, _EXPECT_KEYS, (*base, "expect"), "expect")
    ctx: dict[str, Any] = {
        root: _record(root, given[root], (*base, "given", root))
        for root in FIELDS
        if root != "line" and root in given
    }
    ctx["today"] = _convert("date", given.get("today"), (*base, "given", "today"))
    currency = given.get("currency", default_currency)
    exercised: set[str] = set()
    differences: list[str] = []

    lines = []
    for i, raw in enumerate(given.get("lines") or ()):
        path = (*base, "given", "lines", i)
        record = _record("line", raw, path)
        _check_keys(raw, _LINE_KEYS, path, "a line")
        unit_price = record.get("unit_price") or Money.zero(currency)
        rate_id = record.pop("tax_rate", None)
        if rate_id is not None and rate_id not in tax_rates:
            raise CaseError((*path, "tax_rate"), f"unknown tax rate `{rate_id}`")
        quantity = record.get("quantity", 1)
        lines.append(LineInput(
            description=record.get("name") or record.get("sku") or f"line {i + 1}",
            quantity=quantity, unit_price=unit_price, amount=unit_price * quantity,
            sku=record.get("sku"), unit_discount=record.get("unit_discount"),
            tax_rate=tax_rates.get(rate_id) if rate_id else None, fields=record,
        ))  # fmt: skip
    if lines or any(k in expect for k in ("discounts", "fees", "taxes", "subtotal", "total")):
        priced = price_invoice(lines, ctx, rules.pricing, currency=currency,
                               payments_made=int(given.get("payments_made", 0)))  # fmt: skip
        for kind in ("discount", "fee", "tax"):
            actual = {k: v for k, v in priced.by_rule(kind).items() if v}
            exercised.update(actual)
            key = kind + "s" if kind != "tax" else "taxes"
            if key in expect:
                wanted = _money_map(expect[key], (*base, "expect", key))
                if wanted != actual:
                    differences.append(f"{key}: expected {_show(wanted)}, got {_show(actual)}")
        for key in ("subtotal", "total"):
            if key in expect:
                wanted_total = _convert("money", expect[key], (*base, "expect", key))
                got = getattr(priced, key)
                if wanted_total != got:
                    differences.append(f"{key}: expected {wanted_total}, got {got}")
    if "event" in ctx or "triggers" in expect:
        fired = [t.name for t in rules.fired(ctx)]
        exercised.update(fired)
        if "triggers" in expect and list(expect["triggers"] or ()) != fired:
            differences.append(f"triggers: expected {list(expect['triggers'] or [])}, got {fired}")
    return CaseResult(name, not differences, tuple(differences), frozenset(exercised))


def _show(amounts: Mapping[str, Money]) -> str:
    if not amounts:
        return "none"
    return ", ".join(f"{k} {v}" for k, v in sorted(amounts.items()))


def coverage(rules: RuleSet, results: Sequence[CaseResult]) -> list[str]:
    """Names of pricing rules and triggers that no case exercised (segments are not priced)."""
    exercised = set().union(*(r.exercised for r in results)) if results else set()
    names = [r.name for r in rules.pricing] + [t.name for t in rules.triggers]
    return [n for n in names if n not in exercised]
