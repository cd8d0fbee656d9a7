"""Subscription analytics (F28): MRR, ARR, active subscriptions and customer churn, at any date.

Computed from stored history — each subscription's status changes, with their dates — so a
past date gives the figures as they were then. Pure: the storage hands over the
subscriptions and their histories; one pass serves a whole monthly series.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from abonnement.engine.catalog import Settings
from abonnement.engine.money import Money
from abonnement.engine.schedule import add_months
from abonnement.engine.subscriptions import Subscription, mrr

__all__ = ["LIVE", "History", "month_starts", "report", "status_on"]

LIVE = ("active", "past_due", "unpaid")  # counted as customers and in MRR


@dataclass(frozen=True)
class History:
    """A subscription, when it was created, and its status changes in order."""

    subscription: Subscription
    created_on: date
    changes: tuple[tuple[date, str], ...]  # (day, new status)


def status_on(history: History, day: date) -> str | None:
    """The status on ``day`` (after that day's changes), or None before it existed."""
    if history.created_on > day:
        return None
    status = "scheduled"
    for changed_on, new in history.changes:
        if changed_on > day:
            break
        status = new
    return status


def month_starts(first: date, last: date) -> list[date]:
    """The first day of every month from ``first``'s month to ``last``'s."""
    months, day = [], first.replace(day=1)
    while day <= last:
        months.append(day)
        day = add_months(day, 1)
    return months


def _mrr(histories: Iterable[History], day: date, currency: str, settings: Settings) -> Money:
    total = Decimal(0)
    for h in histories:
        if h.subscription.currency == currency and status_on(h, day) in LIVE:
            total += mrr(h.subscription, settings.weekly_mrr_factor,
                         with_discounts=settings.discounts_reduce_mrr).amount  # fmt: skip
    return Money(total, currency)


def _active(histories: Iterable[History], day: date, currency: str) -> int:
    return sum(
        1 for h in histories if h.subscription.currency == currency and status_on(h, day) in LIVE
    )


def _churn(histories: Sequence[History], start: date, end: date, currency: str) -> Decimal:
    """Customers lost in [start, end) ÷ customers live at ``start`` (0 when there were none)."""
    ours = [h for h in histories if h.subscription.currency == currency]
    live = [h for h in ours if status_on(h, start) in LIVE]
    lost = sum(
        1 for h in live
        if any(start <= d < end and s in ("canceled", "expired") for d, s in h.changes)
    )  # fmt: skip
    return (Decimal(lost) / len(live) * 100).quantize(Decimal("0.01")) if live else Decimal(0)


def report(
    metric: str,
    histories: Sequence[History],
    settings: Settings,
    *,
    currency: str,
    as_of: date,
    months: Sequence[date] = (),
) -> tuple[object, list[tuple[date, object]]]:
    """(value at ``as_of``, [(month, value)…]) of ``metric``: mrr, arr, active or churn.

    A month's value is taken on its last day; churn is per month, the value for ``as_of`` is
    its month so far.
    """

    def value(day: date, month_start: date) -> object:
        if metric == "mrr":
            return _mrr(histories, day, currency, settings)
        if metric == "arr":
            return _mrr(histories, day, currency, settings) * 12
        if metric == "active":
            return _active(histories, day, currency)
        return _churn(histories, month_start, add_months(month_start, 1), currency)

    series = []
    for start in months:
        last_day = add_months(start, 1).toordinal() - 1
        series.append((start, value(date.fromordinal(last_day), start)))
    return value(as_of, as_of.replace(day=1)), series
