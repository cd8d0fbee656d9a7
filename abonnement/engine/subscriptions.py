"""Subscriptions and their state machine.

A subscription keeps its billing anchor and the index of its next period; every date is
derived from those two (``anchor + n × period``). ``step`` does what is due on the
subscription's next event date and says what happened; the billing run stores it.

    scheduled ──start──▶ active ──fixed term fully billed, end date──▶ expired
                           │  ▲
         manual invoice    ▼  │ paid
         past its due ──▶ past_due          (paused, canceled: lifecycle commands)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from types import MappingProxyType
from typing import Any

from abonnement.engine.events import Event
from abonnement.engine.items import Item
from abonnement.engine.money import Money
from abonnement.engine.schedule import Frequency, Unit, billing_date, end_date

__all__ = ["BILLABLE", "Period", "Step", "Subscription", "due_date", "mrr", "step"]

BILLABLE = ("active", "past_due")
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def due_date(issued: date, payment_terms: str) -> date:
    """``due_on_receipt`` → the issue date; ``net_30`` → 30 days later."""
    if payment_terms.startswith("net_"):
        return issued + timedelta(days=int(payment_terms[4:]))
    return issued


@dataclass(frozen=True)
class Subscription:
    id: str
    contact_id: str
    currency: str
    frequency: Frequency
    anchor: date
    items: tuple[Item, ...]
    status: str = "scheduled"
    payments: int | None = None  # a fixed number of payments; None renews until cancelled
    next_index: int = 0  # periods invoiced so far
    company_id: str | None = None
    billing_contact_id: str | None = None
    collection_mode: str = "manual"
    payment_method_id: str | None = None
    payment_terms: str = "due_on_receipt"
    owner: str | None = None
    invoice_creation: bool = True
    properties: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    invoice_settings: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    deals: tuple[str, ...] = ()
    quote_id: str | None = None
    created_on: date | None = None
    open_due_on: date | None = None  # due date of the oldest open manual invoice
    canceled_on: date | None = None
    event_seq: int = 0  # events of this subscription so far; orders and de-duplicates them

    @property
    def end_date(self) -> date | None:
        return end_date(self.anchor, self.frequency, self.payments) if self.payments else None

    @property
    def fully_billed(self) -> bool:
        return self.payments is not None and self.next_index >= self.payments

    @property
    def next_payment_date(self) -> date | None:
        if self.status in ("canceled", "expired", "paused") or self.fully_billed:
            return None
        return billing_date(self.anchor, self.frequency, self.next_index)

    @property
    def next_event_on(self) -> date | None:
        """The next date on which ``step`` has something to do, or None."""
        if self.status == "scheduled":
            return self.anchor
        if self.status not in BILLABLE:
            return None
        candidates = []
        if self.fully_billed:
            candidates.append(self.end_date)
        elif self.invoice_creation:
            candidates.append(self.next_payment_date)
        if self.status == "active" and self.open_due_on is not None:
            candidates.append(self.open_due_on + timedelta(days=1))
        return min((c for c in candidates if c is not None), default=None)

    def record(self) -> dict[str, Any]:
        """The ``subscription`` record rules see."""
        return {
            "id": self.id,
            "status": self.status,
            "currency": self.currency,
            "frequency": self.frequency.name,
            "start_date": self.anchor,
            "end_date": self.end_date,
            "next_payment_date": self.next_payment_date,
            "payments_made": self.next_index,
            "number_of_payments": self.payments,
            "owner": self.owner,
            "properties": dict(self.properties),
        }


@dataclass(frozen=True)
class Period:
    """One billing period to invoice: its index and dates."""

    index: int
    start: date
    end: date
    issue_date: date
    due_date: date


@dataclass(frozen=True)
class Step:
    subscription: Subscription
    periods: tuple[Period, ...] = ()
    events: tuple[Event, ...] = ()


def _status_event(sub: Subscription, new: str, on: date) -> Event:
    return Event("subscription.status_changed", sub.id, on,
                 MappingProxyType({"previous_status": sub.status, "status": new}))  # fmt: skip


def step(sub: Subscription) -> Step:
    """Everything due on ``sub.next_event_on``: activation, overdue, one period, expiry."""
    day = sub.next_event_on
    if day is None:
        return Step(sub)
    events: list[Event] = []
    periods: list[Period] = []

    def become(new: str) -> None:
        nonlocal sub
        events.append(_status_event(sub, new, day))
        sub = replace(sub, status=new)

    if sub.status == "scheduled" and sub.anchor <= day:
        become("active")
    if sub.status == "active" and sub.open_due_on is not None and day > sub.open_due_on:
        events.append(Event("invoice.overdue", sub.id, day))
        become("past_due")
    if sub.invoice_creation and sub.status in BILLABLE and sub.next_payment_date == day:
        index = sub.next_index
        terms = sub.payment_terms if sub.collection_mode == "manual" else "due_on_receipt"
        due = due_date(day, terms)
        periods.append(Period(index, day, billing_date(sub.anchor, sub.frequency, index + 1),
                              day, due))  # fmt: skip
        open_due = sub.open_due_on
        if sub.collection_mode == "manual":
            open_due = min(open_due, due) if open_due else due
        sub = replace(sub, next_index=index + 1, open_due_on=open_due)
        events.append(Event("invoice.created", sub.id, day, MappingProxyType({"period": index})))
    if sub.fully_billed and sub.status in BILLABLE and sub.end_date and day >= sub.end_date:
        become("expired")
        events.append(Event("subscription.expired", sub.id, day))
    numbered = tuple(replace(e, seq=sub.event_seq + i + 1) for i, e in enumerate(events))
    return Step(replace(sub, event_seq=sub.event_seq + len(events)), tuple(periods), numbered)


_PER_MONTH = {Unit.MONTH: 1, Unit.YEAR: 12}


def mrr(sub: Subscription, weekly_factor: Any, *, with_discounts: bool = False) -> Money:
    """Monthly recurring revenue of ``sub``: weekly × factor (52/12), biweekly × 2 × factor,
    monthly × 1, quarterly ÷ 3, yearly ÷ 12 … rounded to the currency's minor unit."""
    amount = Money.zero(sub.currency)
    for item in sub.items:
        line = item.amount().rounded()
        if with_discounts and item.unit_discount:
            line = line - item.unit_discount.of(line).rounded()
        amount = amount + line
    freq = sub.frequency
    if freq.unit is Unit.WEEK:
        return Money(amount.amount * weekly_factor / freq.count, sub.currency).rounded()
    months = _PER_MONTH[freq.unit] * freq.count
    return Money(amount.amount / months, sub.currency).rounded()
