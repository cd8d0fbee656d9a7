"""Subscription analytics (F28): MRR, ARR, active subscriptions, customer churn and the MRR
movements (new, expansion, contraction, churned) — at any date and by month.

Computed from stored history: each subscription's status changes and the revisions of its
recurring definition (frequency and amount per period, recorded when it was created and each
time it changed), so a past date gives the figures as they were then. Pure and one pass: a
subscription is turned into a few points (day, status, MRR) and the figures are swept from
those points, so a 24-month series costs about what one date does.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from abonnement.engine.catalog import Settings
from abonnement.engine.money import Money
from abonnement.engine.schedule import Frequency, add_months
from abonnement.engine.status import SubscriptionStatus
from abonnement.engine.subscriptions import monthly

__all__ = [
    "LIVE",
    "METRICS",
    "Figures",
    "History",
    "Revision",
    "figures",
    "month_starts",
    "report",
]

_S = SubscriptionStatus
LIVE = frozenset({_S.ACTIVE, _S.PAST_DUE, _S.UNPAID})  # counted as customers and in MRR
LOST = frozenset({_S.CANCELED, _S.EXPIRED})
METRICS = ("mrr", "arr", "active", "churn", "movements")
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Revision:
    """A subscription's recurring definition from ``on``: what a period bills, before (``amount``)
    and after (``net``) unit discounts."""

    on: date
    frequency: Frequency
    amount: Decimal
    net: Decimal


@dataclass(frozen=True, slots=True)
class History:
    """One subscription as analytics sees it: created on a day, then its status changes and
    its revisions (the first one is its definition at creation), each in date order."""

    id: str
    currency: str
    created_on: date
    statuses: tuple[tuple[date, str], ...]
    revisions: tuple[Revision, ...]


@dataclass
class Figures:
    """Everything for one window of days ``[start, end]`` (a month, or a month up to a date)."""

    start: date
    end: date
    mrr: Decimal = _ZERO  # on ``end``
    active: int = 0  # on ``end``
    live_at_start: int = 0
    lost: int = 0  # of those live at ``start``, canceled or expired in the window
    movements: dict[str, Decimal] = field(
        default_factory=lambda: dict.fromkeys(("new", "expansion", "contraction", "churned"), _ZERO)
    )

    @property
    def churn(self) -> Decimal:
        """Customers lost ÷ customers live at the start, in percent (0 when there were none)."""
        if not self.live_at_start:
            return Decimal("0.00")
        return (Decimal(self.lost) / self.live_at_start * 100).quantize(Decimal("0.01"))


def month_starts(first: date, last: date) -> list[date]:
    """The first day of every month from ``first``'s month to ``last``'s."""
    months, day = [], first.replace(day=1)
    while day <= last:
        months.append(day)
        day = add_months(day, 1)
    return months


class _Points:
    """A subscription's days of change with its status and MRR after each (end of day)."""

    __slots__ = ("days", "live", "statuses", "values")

    def __init__(self, history: History, value_of: dict[tuple, Decimal], settings: Settings):
        changes = sorted(
            [(d, 0, s) for d, s in history.statuses] + [(r.on, 1, r) for r in history.revisions],
            key=lambda c: c[0],
        )
        status, value = _S.SCHEDULED, _ZERO
        days: list[date] = [history.created_on]
        statuses, values = [status], [value]
        for day, kind, change in changes:
            if kind == 0:
                status = change
            else:
                key = (change.frequency, change.net if settings.discounts_reduce_mrr
                       else change.amount)  # fmt: skip
                value = value_of.get(key)
                if value is None:
                    value = monthly(key[1], key[0], settings.weekly_mrr_factor,
                                    history.currency).amount  # fmt: skip
                    value_of[key] = value
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
    histories: Iterable[History], settings: Settings, currency: str, windows: Sequence[tuple]
) -> list[Figures]:
    """The figures of every window ``(start, end)`` in ``currency``, in one pass."""
    out = [Figures(start, end) for start, end in windows]
    # Point-in-time sums (MRR and active on each end, live on each start) are swept from the
    # changes of all subscriptions; window figures touch only subscriptions that changed in it.
    deltas: list[tuple[date, Decimal, int]] = []
    order = sorted(range(len(out)), key=lambda i: out[i].start)
    start_days = [out[i].start for i in order]
    reach, furthest = [], date.min  # the latest end among windows starting at or before
    for i in order:
        furthest = max(furthest, out[i].end)
        reach.append(furthest)
    value_of: dict[tuple, Decimal] = {}
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
    deltas.sort(key=lambda d: d[0])
    # one sweep over the sorted changes answers every (day, window, field) question
    questions = sorted([(fig.end, i, "end") for i, fig in enumerate(out)]
                       + [(fig.start, i, "start") for i, fig in enumerate(out)])  # fmt: skip
    total, count, d = _ZERO, 0, 0
    for day, i, which in questions:
        while d < len(deltas) and deltas[d][0] <= day:
            total += deltas[d][1]
            count += deltas[d][2]
            d += 1
        if which == "end":
            out[i].mrr, out[i].active = total, count
        else:
            out[i].live_at_start = count
    return out


def _window(fig: Figures, points: _Points) -> None:
    """Churn and movements of one subscription that changed inside ``fig``'s window."""
    status_start, _ = points.at(fig.start)
    _, before = points.at(fig.start - timedelta(days=1))
    status_end, after = points.at(fig.end)
    if status_start in LIVE:  # the sweep counts who was live at the start; this, who was lost
        lost_days = [
            d for d, s in zip(points.days, points.statuses, strict=True)
            if fig.start <= d <= fig.end and s in LOST
        ]  # fmt: skip
        fig.lost += bool(lost_days)
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
    the month. The value for ``as_of`` covers its month up to that day.
    """
    windows = [(m, add_months(m, 1) - timedelta(days=1)) for m in months]
    windows.append((as_of.replace(day=1), as_of))
    *series, now = figures(histories, settings, currency, windows)

    def value(fig: Figures) -> object:
        if metric == "mrr":
            return Money(fig.mrr, currency).rounded()
        if metric == "arr":
            return Money(fig.mrr * 12, currency).rounded()
        if metric == "active":
            return fig.active
        if metric == "churn":
            return fig.churn
        moves = {k: Money(v, currency).rounded() for k, v in fig.movements.items()}
        net = moves["new"] + moves["expansion"] - moves["contraction"] - moves["churned"]
        return {**moves, "net": net}

    return value(now), [(fig.start, value(fig)) for fig in series]
