"""Billing calendars: frequencies, the n-th billing date from an anchor, delayed starts.

Every date is ``anchor + n × period``, never the previous date plus one period: repeated
addition drifts at month ends (Jan 31 → Feb 28 → Mar 28), the anchor keeps Mar 31.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from enum import Enum

from abonnement.errors import ScheduleError

__all__ = [
    "FREQUENCY_NAMES",
    "AtPurchase",
    "DelayDays",
    "DelayMonths",
    "Frequency",
    "OnDate",
    "Start",
    "Unit",
    "add_months",
    "billing_date",
    "billing_dates",
    "end_date",
    "resolve_start",
]


class Unit(Enum):
    WEEK = "W"
    MONTH = "M"
    YEAR = "Y"


@dataclass(frozen=True, slots=True)
class Frequency:
    """``count`` × ``unit``: monthly is ``Frequency(1, Unit.MONTH)``."""

    count: int
    unit: Unit

    def __post_init__(self) -> None:
        if not isinstance(self.count, int) or self.count < 1:
            raise ScheduleError(f"a frequency needs a positive whole count, not {self.count!r}")

    @classmethod
    def parse(cls, text: str) -> Frequency:
        """A name of F4 (``monthly``, ``per_two_years``…) or an ISO 8601 duration (``P3M``)."""
        if text in _BY_NAME:
            return _BY_NAME[text]
        match = _ISO_RE.match(text) if isinstance(text, str) else None
        if not match:
            raise ScheduleError(
                f"unknown frequency {text!r}; expected one of {', '.join(_BY_NAME)} "
                "or an ISO 8601 duration like P1M"
            )
        count, unit = int(match["count"]), match["unit"]
        if unit == "D":
            if count % 7:
                raise ScheduleError(f"{text!r}: day frequencies must be whole weeks")
            return cls(count // 7, Unit.WEEK)
        return cls(count, Unit(unit))

    @property
    def iso(self) -> str:
        return f"P{self.count}{self.unit.value}"

    @property
    def name(self) -> str:
        """The F4 name when there is one (``biweekly``), else the ISO duration."""
        return _NAME_OF.get(self, self.iso)

    @property
    def months(self) -> int | None:
        """Length in months for month/year frequencies, None for weeks."""
        if self.unit is Unit.MONTH:
            return self.count
        if self.unit is Unit.YEAR:
            return 12 * self.count
        return None

    def __str__(self) -> str:
        return self.name


_ISO_RE = re.compile(r"^P(?P<count>[1-9]\d{0,2})(?P<unit>[DWMY])$", re.ASCII)

_BY_NAME: dict[str, Frequency] = {
    "weekly": Frequency(1, Unit.WEEK),
    "biweekly": Frequency(2, Unit.WEEK),
    "monthly": Frequency(1, Unit.MONTH),
    "quarterly": Frequency(3, Unit.MONTH),
    "per_six_months": Frequency(6, Unit.MONTH),
    "annually": Frequency(1, Unit.YEAR),
    "per_two_years": Frequency(2, Unit.YEAR),
    "per_three_years": Frequency(3, Unit.YEAR),
    "per_four_years": Frequency(4, Unit.YEAR),
    "per_five_years": Frequency(5, Unit.YEAR),
}
_NAME_OF = {freq: name for name, freq in _BY_NAME.items()}
FREQUENCY_NAMES: tuple[str, ...] = tuple(_BY_NAME)


_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def add_months(day: date, months: int) -> date:
    """``day`` moved by whole months, clamped at month end (Jan 31 + 1 → Feb 28)."""
    years, month0 = divmod(day.month - 1 + months, 12)
    year = day.year + years
    last = _DAYS_IN_MONTH[month0]
    if month0 == 1 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        last = 29
    return date(year, month0 + 1, min(day.day, last))


@functools.lru_cache(maxsize=1 << 16)  # a billing run asks for the same few dates again and again
def billing_date(anchor: date, frequency: Frequency, n: int) -> date:
    """The ``n``-th billing date (``n = 0`` is the anchor), clamped at month end."""
    if n < 0:
        raise ScheduleError(f"billing date index must not be negative, got {n}")
    if frequency.unit is Unit.WEEK:
        return anchor + timedelta(weeks=frequency.count * n)
    return add_months(anchor, frequency.count * n * (12 if frequency.unit is Unit.YEAR else 1))


def billing_dates(anchor: date, frequency: Frequency, start_index: int = 0) -> Iterator[date]:
    """Billing dates from the ``start_index``-th on, without end."""
    n = start_index
    while True:
        yield billing_date(anchor, frequency, n)
        n += 1


def end_date(start: date, frequency: Frequency, payments: int) -> date:
    """End of a fixed term of ``payments`` payments: start + N periods (payments fall before)."""
    if payments < 1:
        raise ScheduleError(f"a fixed term needs at least one payment, got {payments}")
    return billing_date(start, frequency, payments)


@dataclass(frozen=True, slots=True)
class AtPurchase:
    """Billing starts the day the subscription is bought or created."""


@dataclass(frozen=True, slots=True)
class OnDate:
    on: date


@dataclass(frozen=True, slots=True)
class DelayDays:
    days: int


@dataclass(frozen=True, slots=True)
class DelayMonths:
    months: int


Start = AtPurchase | OnDate | DelayDays | DelayMonths


def resolve_start(purchase: date, start: Start) -> date:
    """The first billing date for a purchase made on ``purchase``."""
    match start:
        case AtPurchase():
            return purchase
        case OnDate(on=on):
            return on
        case DelayDays(days=days):
            return purchase + timedelta(days=days)
        case DelayMonths(months=months):
            return add_months(purchase, months)
    raise ScheduleError(f"unknown billing start {start!r}")
