"""Subscription analytics (F28): MRR, ARR, active subscriptions, customer and subscription
churn and the MRR movements (new, expansion, contraction, churned) — at any date and by month.

Computed from stored history: each subscription's status changes and the revisions of its
recurring definition (frequency and amount per period before and after the discounts that
recur, and the dates from which the latter changes; recorded when it was created and each time
it changed), so a past date gives the figures as they were then. Pure and one pass: a
subscription is turned into a few points (day, status, MRR) and the figures are swept from
those points, so a 24-month series costs about what one date does.

Money is summed exactly and each figure rounded once, at the end; the movements of a window
are rounded so that they add up to the change of the rounded MRR, to the cent.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from abonnement.engine.catalog import Settings
from abonnement.engine.money import Money, minor_unit
from abonnement.engine.schedule import Frequency, add_months
from abonnement.engine.status import SubscriptionStatus
from abonnement.engine.subscriptions import monthly

__all__ = [
    "LIVE",
    "METRICS",
    "MOVEMENTS",
    "Figures",
    "History",
    "Revision",
    "figures",
    "month_starts",
    "report",
    "rounded_movements",
]

_S = SubscriptionStatus
LIVE = frozenset({_S.ACTIVE, _S.PAST_DUE, _S.UNPAID})  # counted as customers and in MRR
LOST = frozenset({_S.CANCELED, _S.EXPIRED})
METRICS = ("mrr", "arr", "active", "churn", "subscription_churn", "movements")
MOVEMENTS = ("new", "expansion", "contraction", "churned")
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Revision:
    """A subscription's recurring definition from ``on``: what a period bills before
    (``amount``) and after (``net``) the discounts that recur, and the later dates from which
    the latter changes (``steps``: a discount for N payments ended, a dated one ran out)."""

    on: date
    frequency: Frequency
    amount: Decimal
    net: Decimal
    steps: tuple[tuple[date, Decimal], ...] = ()


@dataclass(frozen=True, slots=True)
class History:
    """One subscription as analytics sees it: created on a day, then its status changes and
    its revisions (the first one is its definition at creation), each in date order."""

    id: str
    currency: str
    created_on: date
    statuses: tuple[tuple[date, str], ...]
    revisions: tuple[Revision, ...]
    customer: str | None = None  # the contact; None: the subscription is its own customer
    ends_on: date | None = None  # canceled at a period's end on this day (as asked, ahead)


@dataclass
class Figures:
    """Everything for one window of days ``[start, end]`` (a month, or a month up to a date).

    "Live at the start" means live at some point of the first day: at the end of the day
    before, or at the end of the first day (so a subscription canceled on the 1st, or started
    on it, counts)."""

    start: date
    end: date
    mrr: Decimal = _ZERO  # on ``end``, exact
    mrr_before: Decimal = _ZERO  # on the day before ``start``, exact
    active: int = 0  # on ``end``
    live_at_start: int = 0  # subscriptions
    lost: int = 0  # of those live at the start, canceled or expired by ``end``
    customers_at_start: int = 0  # customers with a live subscription at the start
    customers_lost: int = 0  # of those, the ones with nothing left at ``end`` but ended ones
    movements: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(MOVEMENTS, _ZERO))

    @property
    def churn(self) -> Decimal:
        """Customer churn: customers lost ÷ customers live at the start, in percent (half-up
        to 0.01; 0 when there were none)."""
        return _percent(self.customers_lost, self.customers_at_start)

    @property
    def subscription_churn(self) -> Decimal:
        """Subscriptions lost ÷ subscriptions live at the start, in percent."""
        return _percent(self.lost, self.live_at_start)


def _percent(part: int, whole: int) -> Decimal:
    if not whole:
        return Decimal("0.00")
    return (Decimal(part) * 100 / whole).quantize(Decimal("0.01"), ROUND_HALF_UP)


def month_starts(first: date, last: date) -> list[date]:
    """The first day of every month from ``first``'s month to ``last``'s."""
    months, day = [], first.replace(day=1)
    while day <= last:
        months.append(day)
        day = add_months(day, 1)
    return months


class _Points:
    """A subscription's days of change with its status and exact MRR after each (end of day)."""

    __slots__ = ("days", "live", "statuses", "values")

    def __init__(self, history: History, value_of: dict[tuple, Decimal], settings: Settings):
        net = settings.discounts_reduce_mrr
        changes: list[tuple[date, int, Any]] = [(d, -1, s) for d, s in history.statuses]
        if history.ends_on is not None:  # not counted from the day it ends, billed or not yet
            changes.append((history.ends_on, -1, _S.CANCELED))
        for n, r in enumerate(history.revisions):
            changes.append((r.on, n, (r.frequency, r.net if net else r.amount)))
            if net:
                changes.extend((d, n, (r.frequency, a)) for d, a in r.steps)
        changes.sort(key=lambda c: c[0])
        status, value, current = _S.SCHEDULED, _ZERO, -1
        days: list[date] = [history.created_on]
        statuses, values = [status], [value]
        for day, n, change in changes:
            if n < 0:
                status = change
            elif n < current:  # a step of a definition a later revision replaced
                continue
            else:
                current = n
                value = value_of.get(change)
                if value is None:
                    value = monthly(change[1], change[0], settings.weekly_mrr_factor,
                                    history.currency).amount  # fmt: skip
                    value_of[change] = value
            if day <= days[-1]:  # the same day (or before creation): the day's last state wins
                statuses[-1], values[-1] = status, value
            else:
                days.append(day)
                statuses.append(status)
                values.append(value)
        self.days, self.statuses, self.values = days, statuses, values
        self.live = [s in LIVE for s in statuses]

    def at(self, day: date) -> tuple[str | None, Decimal]:
        """(status, MRR counted) at the end of ``day``; (None, 0) before the subscription."""
        i = bisect_right(self.days, day) - 1
        if i < 0:
            return None, _ZERO
        return self.statuses[i], self.values[i] if self.live[i] else _ZERO

    def was_live_before(self, day: date) -> bool:
        return any(self.live[: bisect_left(self.days, day)])


def figures(
    histories: Iterable[History],
    settings: Settings,
    currency: str,
    windows: Sequence[tuple],
    *,
    customers: bool = False,
) -> list[Figures]:
    """The figures of every window ``(start, end)`` in ``currency``, in one pass.
    ``customers=True`` also counts customers (for customer churn), which costs a look at
    every window for every subscription."""
    out = [Figures(start, end) for start, end in windows]
    # Point-in-time sums (MRR and active on each end, live the day before each start) are
    # swept from the changes of all subscriptions; window figures touch only subscriptions
    # that changed in it.
    deltas: list[tuple[date, Decimal, int]] = []
    order = sorted(range(len(out)), key=lambda i: out[i].start)
    start_days = [out[i].start for i in order]
    reach, furthest = [], date.min  # the latest end among windows starting at or before
    for i in order:
        furthest = max(furthest, out[i].end)
        reach.append(furthest)
    value_of: dict[tuple, Decimal] = {}
    at_start: list[set] = [set() for _ in out]
    kept: list[set] = [set() for _ in out]
    for history in histories:
        if history.currency != currency:
            continue
        points = _Points(history, value_of, settings)
        before_value, before_live = _ZERO, False
        touched: set[int] = set()
        for day, live, value in zip(points.days, points.live, points.values, strict=True):
            counted = value if live else _ZERO
            if counted != before_value or live != before_live:
                deltas.append((day, counted - before_value, int(live) - int(before_live)))
            before_value, before_live = counted, live
            k = bisect_right(start_days, day) - 1
            while k >= 0 and reach[k] >= day:
                if out[order[k]].end >= day:
                    touched.add(order[k])
                k -= 1
        for i in touched:
            _window(out[i], points)
        if customers:
            who = history.customer or ("subscription", history.id)
            for i, fig in enumerate(out):
                if _live_at_start(points, fig.start):
                    at_start[i].add(who)
                status = points.at(fig.end)[0]
                if status is not None and status not in LOST:
                    kept[i].add(who)
    deltas.sort(key=lambda d: d[0])
    # one sweep over the sorted changes answers every (day, window, field) question
    questions = sorted([(fig.end, i, "end") for i, fig in enumerate(out)]
                       + [(fig.start - timedelta(days=1), i, "start")
                          for i, fig in enumerate(out)])  # fmt: skip
    total, count, d = _ZERO, 0, 0
    for day, i, which in questions:
        while d < len(deltas) and deltas[d][0] <= day:
            total += deltas[d][1]
            count += deltas[d][2]
            d += 1
        if which == "end":
            out[i].mrr, out[i].active = total, count
        else:
            out[i].mrr_before = total
            out[i].live_at_start += count  # live the day before; _window adds the first day's
    for i, fig in enumerate(out):
        fig.customers_at_start = len(at_start[i])
        fig.customers_lost = len(at_start[i] - kept[i])
    return out


def _live_at_start(points: _Points, start: date) -> bool:
    """Live at some point of ``start``: at the end of the day before or of the day itself."""
    before, first = points.at(start - timedelta(days=1))[0], points.at(start)[0]
    return before in LIVE or first in LIVE


def _window(fig: Figures, points: _Points) -> None:
    """Churn and movements of one subscription that changed inside ``fig``'s window."""
    status_before, before = points.at(fig.start - timedelta(days=1))
    status_start, _ = points.at(fig.start)
    status_end, after = points.at(fig.end)
    if status_start in LIVE and status_before not in LIVE:
        fig.live_at_start += 1  # started on the first day: the sweep counted the day before
    if (status_before in LIVE or status_start in LIVE) and status_end in LOST:
        fig.lost += 1
    if after == before:
        return
    moves = fig.movements
    if before == _ZERO and not points.was_live_before(fig.start):
        moves["new"] += after
    elif after == _ZERO and status_end in LOST:
        moves["churned"] += before
    elif after > before:
        moves["expansion"] += after - before
    else:
        moves["contraction"] += before - after


def rounded_movements(fig: Figures, currency: str) -> dict[str, Money]:
    """The window's movements rounded so that new + expansion − contraction − churned is the
    change of the rounded MRR exactly (largest remainder on the signed amounts, ties to the
    earlier movement), plus that change as ``net``."""
    quantum = Decimal(1).scaleb(-minor_unit(currency))
    net = (Money(fig.mrr, currency).rounded().amount
           - Money(fig.mrr_before, currency).rounded().amount)  # fmt: skip
    signs = {"new": 1, "expansion": 1, "contraction": -1, "churned": -1}
    units = {k: signs[k] * fig.movements[k] / quantum for k in MOVEMENTS}
    floors = {k: int(u.to_integral_value(ROUND_FLOOR)) for k, u in units.items()}
    left = int(net / quantum) - sum(floors.values())
    by_remainder = sorted(MOVEMENTS, key=lambda k: (-(units[k] - floors[k]), MOVEMENTS.index(k)))
    if 0 <= left <= len(MOVEMENTS):
        for k in by_remainder[:left]:
            floors[k] += 1
    moves = {k: Money.from_minor(signs[k] * floors[k], currency) for k in MOVEMENTS}
    return {**moves, "net": Money(net, currency)}


def report(
    metric: str,
    histories: Iterable[History],
    settings: Settings,
    *,
    currency: str,
    as_of: date,
    months: Sequence[date] = (),
) -> tuple[object, list[tuple[date, object]]]:
    """(value at ``as_of``, [(month, value)…]) of ``metric`` (one of ``METRICS``).

    A month's MRR, ARR and active count are taken on its last day; churn and movements cover
    the month. The value for ``as_of`` covers its month up to that day. MRR and ARR are the
    exact sums rounded once (ARR is 12 × the exact MRR).
    """
    windows = [(m, add_months(m, 1) - timedelta(days=1)) for m in months]
    windows.append((as_of.replace(day=1), as_of))
    *series, now = figures(histories, settings, currency, windows, customers=metric == "churn")

    def value(fig: Figures) -> object:
        if metric == "mrr":
            return Money(fig.mrr, currency).rounded()
        if metric == "arr":
            return Money(fig.mrr * 12, currency).rounded()
        if metric == "active":
            return fig.active
        if metric == "churn":
            return fig.churn
        if metric == "subscription_churn":
            return fig.subscription_churn
        return rounded_movements(fig, currency)

    return value(now), [(fig.start, value(fig)) for fig in series]
