"""The semantics of rule expressions, in one place: both back ends call these helpers.

Null safety as the spec says: a missing field is none; any comparison with none is false
(except ``is set``/``is not set``/``== none``); arithmetic or a function call with none gives
none; money in two currencies never combines (none) and never compares (false).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType
from typing import Any

from abonnement.engine.money import Money, MoneyError, Percent
from abonnement.engine.schedule import add_months
from abonnement.rules.ast import Duration

__all__ = ["EMPTY", "HELPERS", "ORDER", "FeeAmount"]

EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class FeeAmount:
    """``2.9% + 0.30 USD``: a percentage of the amount plus a fixed part."""

    percent: Percent
    fixed: Money


def get_path(value: Any, *keys: str) -> Any:
    for key in keys:
        if value is None:
            return None
        getter = getattr(value, "get", None)
        value = getter(key) if getter else None
    return value


def eq(a: Any, b: Any) -> bool:
    return a is not None and b is not None and a == b


def ne(a: Any, b: Any) -> bool:
    return a is not None and b is not None and a != b


def _key(value: Any) -> Any:
    return value.value if isinstance(value, Percent) else value


def order(op: Callable[[Any, Any], bool], a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if isinstance(a, Money) and isinstance(b, Money) and a.currency != b.currency:
        return False
    return op(_key(a), _key(b))


def contains(container: Any, item: Any) -> bool:
    return container is not None and item is not None and item in container


def member(item: Any, container: Any) -> bool:
    return item is not None and container is not None and item in container


def not_member(item: Any, container: Any) -> bool:
    return item is not None and container is not None and item not in container


def startswith(a: Any, b: Any) -> bool:
    return a is not None and b is not None and a.startswith(b)


def endswith(a: Any, b: Any) -> bool:
    return a is not None and b is not None and a.endswith(b)


def matches(a: Any, pattern: Any) -> bool:
    return a is not None and pattern.search(a) is not None


def _shift(d: date, duration: Duration, sign: int) -> date:
    n = sign * duration.count
    if duration.unit == "days":
        return d + timedelta(days=n)
    if duration.unit == "weeks":
        return d + timedelta(weeks=n)
    months = n if duration.unit == "months" else 12 * n
    return add_months(d, months)


def add(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if isinstance(a, Duration):
        a, b = b, a
    if isinstance(b, Duration):
        return _shift(a, b, 1)
    if isinstance(a, Percent) and isinstance(b, Percent):
        return Percent(a.value + b.value)
    if isinstance(a, Percent):
        return FeeAmount(a, b)
    if isinstance(b, Percent):
        return FeeAmount(b, a)
    try:
        return a + b
    except MoneyError:
        return None


def sub(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if isinstance(b, Duration):
        return _shift(a, b, -1)
    if isinstance(a, Percent):
        return Percent(a.value - b.value)
    try:
        return a - b
    except MoneyError:
        return None


def mul(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if isinstance(a, Percent):
        return Percent(a.value * b)
    if isinstance(b, Percent):
        return Percent(b.value * a)
    if isinstance(b, Money):
        return b * a
    return a * b


def div(a: Any, b: Any) -> Any:
    if a is None or b is None or b == 0:
        return None
    if isinstance(a, Money):
        return Money(a.amount / b, a.currency)
    result = Decimal(a) / Decimal(b)
    return int(result) if result == result.to_integral_value() else result


def neg(a: Any) -> Any:
    if a is None:
        return None
    return Percent(-a.value) if isinstance(a, Percent) else -a


def call(fn: Callable[..., Any], *args: Any) -> Any:
    """A function of the language (or a plugin's): none in, none out."""
    if any(a is None for a in args):
        return None
    return fn(*args)


def _days_between(a: date, b: date) -> int:
    return (b - a).days


def _lower(a: str) -> str:
    return a.lower()


def _upper(a: str) -> str:
    return a.upper()


def _min(a: Any, b: Any) -> Any:
    return a if order(operator.le, a, b) else b


def _max(a: Any, b: Any) -> Any:
    return a if order(operator.ge, a, b) else b


def _round(a: Any, digits: int = 0) -> Any:
    if isinstance(a, Money):
        return a.rounded()
    return Decimal(a).quantize(Decimal(1).scaleb(-int(digits)), rounding=ROUND_HALF_UP)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "days_between": _days_between,
    "lower": _lower,
    "upper": _upper,
    "min": _min,
    "max": _max,
    "round": _round,
}

ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

# The only names generated code can reach (besides its own constants).
HELPERS: dict[str, Any] = {
    "EMPTY": EMPTY,
    "MISSING": (KeyError, TypeError, AttributeError),
    "get_path": get_path,
    "eq": eq,
    "ne": ne,
    "order": order,
    "contains": contains,
    "member": member,
    "not_member": not_member,
    "startswith": startswith,
    "endswith": endswith,
    "matches": matches,
    "add": add,
    "sub": sub,
    "mul": mul,
    "div": div,
    "neg": neg,
    "call": call,
}
