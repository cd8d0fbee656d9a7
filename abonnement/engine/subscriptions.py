"""Subscriptions and their state machine.

A subscription keeps its billing anchor and the index of its next period; every date is
derived from those two (``anchor + n × period``). ``step`` does what is due on the
subscription's next event date and says what happened; the billing run stores it.

    scheduled ──start──▶ active ──fixed term fully billed, end date──▶ expired
                           │  ▲
         manual invoice    ▼  │ paid
         past its due ──▶ past_due          (paused, canceled: lifecycle commands)

Every change of status is checked against the table in ``engine/status.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from abonnement.engine.events import Event, numbered
from abonnement.engine.items import Item
from abonnement.engine.money import Money
from abonnement.engine.schedule import Frequency, Unit, billing_date
from abonnement.engine.status import SubscriptionStatus, allows, check_transition
from abonnement.errors import InvalidState

__all__ = [
    "BILLABLE",
    "Period",
    "Step",
    "Subscription",
    "cancel",
    "due_date",
    "monthly",
    "mrr",
    "mrr_basis",
    "pause",
    "period_amounts",
    "resume",
    "scheduled",
    "sent_for_payment",
    "step",
    "upcoming_period",
]

_S = SubscriptionStatus
BILLABLE = (_S.ACTIVE, _S.PAST_DUE)
_ENDS_AT_PERIOD_END = (*BILLABLE, _S.UNPAID)  # what a cancel at the period's end ends
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
    status: SubscriptionStatus = _S.SCHEDULED
    payments: int | None = None  # a fixed number of payments; None renews until cancelled
    next_index: int = 0  # periods invoiced so far
    company_id: str | None = None
    billing_contact_id: str | None = None
    collection_mode: str = "manual"  # manual | automatic | first_invoice (until it is paid)
    payment_method_id: str | None = None
    payment_token: str | None = None  # what the processor charges (automatic collection)
    payment_type: str | None = None  # card | ach | sepa | bacs | pads
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
    skipped: int = 0  # periods passed while paused: never billed, a fixed term's end moves out
    cancel_on: date | None = None  # canceled at the end of the period: on this date
    reminded: int = 0  # payments reminded so far: the reminder for payment n sets n + 1
    # The reminder lead (days before a payment; 0 or None: no reminders) its next event is
    # computed with: the engine stamps the settings' lead (``scheduled``), storage keeps it.
    reminder_days: int | None = None
    pending: tuple[Item, ...] = ()  # one-time lines for the next invoice (proration)
    rebase_on: date | None = None  # a moved next payment date: payment ``rebase_index`` is
    rebase_index: int = 0  # on ``rebase_on``, and the later ones follow from it

    def date_of(self, index: int) -> date:
        """The date of payment ``index`` (from 0): from the anchor, or from the date a user
        moved the schedule to (``edit --next-payment-date``)."""
        if self.rebase_on is not None and index >= self.rebase_index:
            return billing_date(self.rebase_on, self.frequency, index - self.rebase_index)
        return billing_date(self.anchor, self.frequency, index)

    @property
    def payments_made(self) -> int:
        return self.next_index - self.skipped

    @property
    def end_date(self) -> date | None:
        """The day it ends: a fixed term's end, or the date it is canceled on at the end of
        a period (``cancel --at-period-end``), whichever comes first; None while it renews."""
        term = self.date_of(self.payments + self.skipped) if self.payments else None
        if self.cancel_on is not None and (term is None or self.cancel_on < term):
            return self.cancel_on
        return term

    @property
    def fully_billed(self) -> bool:
        return self.payments is not None and self.payments_made >= self.payments

    @property
    def next_payment_date(self) -> date | None:
        if self.status in (_S.CANCELED, _S.EXPIRED, _S.PAUSED) or self.fully_billed:
            return None
        return self.date_of(self.next_index)

    @property
    def next_event_on(self) -> date | None:
        """The next date on which ``step`` has something to do, or None."""
        status = self.status
        if status == _S.SCHEDULED:
            return self.anchor
        if status not in BILLABLE:
            # not billed, but an unpaid one asked to end with its period still ends then
            return self.cancel_on if status == _S.UNPAID else None
        # runs for every subscription a billing run writes: each date is derived once
        reminder = due = None
        if self.fully_billed:
            due = self.date_of(self.payments + self.skipped)  # type: ignore[operator]
        elif self.invoice_creation:
            due = self.date_of(self.next_index)
            reminder = self._reminder_before(due)
        overdue = None
        if status == _S.ACTIVE and self.open_due_on is not None:
            overdue = self.open_due_on + timedelta(days=1)
        return min((c for c in (self.cancel_on, reminder, due, overdue) if c is not None),
                   default=None)  # fmt: skip

    @property
    def reminder_on(self) -> date | None:
        """When the next payment's reminder is due: ``reminder_days`` before it, if not sent
        yet and the period before it is longer than the lead time (F25, S10)."""
        if self.status not in BILLABLE or not self.invoice_creation or self.fully_billed:
            return None
        return self._reminder_before(self.date_of(self.next_index))

    def _reminder_before(self, payment: date) -> date | None:
        """The reminder date of the next payment, due on ``payment`` (a billable, unfinished
        subscription that creates invoices)."""
        lead, index = self.reminder_days, self.next_index
        if not lead or index == 0 or self.reminded > index:
            return None
        if self.cancel_on is not None and payment >= self.cancel_on:
            return None  # canceled at the period's end: that payment will not happen
        if (payment - self.date_of(index - 1)).days <= lead:
            return None
        return payment - timedelta(days=lead)


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


def sent_for_payment(collection_mode: str) -> bool:
    """Whether a subscription's invoices wait for the buyer to pay them by their terms (and
    are e-mailed): manual collection, or a card collected on the first invoice."""
    return collection_mode in ("manual", "first_invoice")


def upcoming_period(sub: Subscription, index: int) -> Period:
    """The period of payment ``index`` as ``step`` will invoice it (its dates and due date)."""
    day = sub.date_of(index)
    sent = sent_for_payment(sub.collection_mode)
    return Period(index, day, sub.date_of(index + 1), day,
                  due_date(day, sub.payment_terms if sent else "due_on_receipt"))  # fmt: skip


def scheduled(sub: Subscription, reminder_days: int) -> Subscription:
    """``sub`` with its next event computed with the reminder lead of the settings
    (``Settings.reminder_lead``: 0 when reminders are off); itself if it already is."""
    if sub.reminder_days == reminder_days:
        return sub
    return _evolve(sub, reminder_days=reminder_days)


def step(sub: Subscription, on: date | None = None) -> Step:
    """Everything due on ``sub.next_event_on``: activation, overdue, one period, expiry.

    ``on``: the day the billing run is at. Nothing dated later is done: a subscription whose
    next event falls after ``on`` (its stored date was computed with other settings) comes
    back unchanged, to be stored with its true next event date."""
    day = sub.next_event_on
    if day is None or (on is not None and day > on):
        return Step(sub)
    # Local state, one ``replace`` at the end: this runs once per subscription per event.
    status, index, open_due, reminded = sub.status, sub.next_index, sub.open_due_on, sub.reminded
    events: list[tuple[str, Mapping[str, Any]]] = []
    periods: tuple[Period, ...] = ()

    def become(new: SubscriptionStatus) -> None:
        nonlocal status
        check_transition(status, new)
        events.append(("subscription.status_changed", {"previous_status": status, "status": new}))
        status = new

    if sub.cancel_on is not None and day >= sub.cancel_on and status in _ENDS_AT_PERIOD_END:
        become(_S.CANCELED)  # at the end of the period it was asked for: nothing more to bill
        events.append(("subscription.canceled", _EMPTY))
    if status == _S.SCHEDULED and sub.anchor <= day:
        become(_S.ACTIVE)
    if status == _S.ACTIVE and open_due is not None and day > open_due:
        # storage names the invoice (the oldest open one due then) as it writes the event
        events.append(("invoice.overdue", {"due_date": open_due.isoformat()}))
        become(_S.PAST_DUE)
    billing = sub.date_of(index)
    if status in BILLABLE and sub.reminder_on == day:
        events.append(("reminder.due", {"payment": index, "payment_date": billing.isoformat()}))
        reminded = index + 1
    if sub.invoice_creation and status in BILLABLE and not sub.fully_billed and billing == day:
        # Invoices wait for a payment by their terms until there is a method to charge.
        sent = sent_for_payment(sub.collection_mode)
        terms = sub.payment_terms if sent else "due_on_receipt"
        due = due_date(day, terms)
        periods = (Period(index, day, sub.date_of(index + 1), day,
                          due),)  # fmt: skip
        if sent:
            open_due = min(open_due, due) if open_due else due
        events.append(("invoice.created", {"period": index}))
        index += 1
    finished = (
        sub.payments is not None and index - sub.skipped >= sub.payments and status in BILLABLE
    )
    if finished and day >= sub.date_of(sub.payments + sub.skipped):  # type: ignore[operator]
        become(_S.EXPIRED)
        events.append(("subscription.expired", _EMPTY))
    seq = sub.event_seq
    happened = numbered(sub.id, day, seq, *events)
    changed = _evolve(sub, status=status, next_index=index, open_due_on=open_due,
                      event_seq=seq + len(events), reminded=reminded,
                      pending=() if periods else sub.pending,
                      canceled_on=day if status == _S.CANCELED else sub.canceled_on)  # fmt: skip
    return Step(changed, periods, happened)


def _evolve(sub: Subscription, **changes: Any) -> Subscription:
    """``replace`` for the billing run's hottest line: the fields copied, no ``__init__``."""
    new = object.__new__(Subscription)
    new.__dict__.update(sub.__dict__)
    new.__dict__.update(changes)
    return new


def _changed(sub: Subscription, on: date, new: SubscriptionStatus, kind: str | None,
             **fields: Any) -> Step:  # fmt: skip
    """``sub`` moved to ``new`` on ``on``: the ``kind`` event (if any), then the status change."""
    check_transition(sub.status, new)
    said = ((kind, _EMPTY),) if kind else ()
    events = numbered(sub.id, on, sub.event_seq, *said,
                      ("subscription.status_changed", {"previous_status": sub.status,
                                                       "status": new}))  # fmt: skip
    return Step(replace(sub, status=new, event_seq=events[-1].seq, **fields), (), events)


def pause(sub: Subscription, on: date) -> Step:
    """Stop billing from ``on``; nothing is billed for the time paused (F21)."""
    if not allows(sub.status, _S.PAUSED):  # active, past_due or unpaid
        raise InvalidState(f"subscription `{sub.id}` is {sub.status}; only a live one pauses")
    return _changed(sub, on, _S.PAUSED, "subscription.paused")


def resume(sub: Subscription, on: date) -> Step:
    """Bill again from the first anchor date on or after ``on``; the periods in between are
    skipped, not back-billed, and a fixed term's end moves out by as many."""
    if sub.status != _S.PAUSED:
        raise InvalidState(f"subscription `{sub.id}` is {sub.status}, not paused")
    index = sub.next_index
    while sub.date_of(index) < on:
        index += 1
    return _changed(sub, on, _S.ACTIVE, "subscription.resumed", next_index=index,
                    skipped=sub.skipped + index - sub.next_index)  # fmt: skip


def cancel(sub: Subscription, on: date, *, at_period_end: bool = False) -> Step:
    """Cancel now (the default) or at the end of the current period."""
    if not allows(sub.status, _S.CANCELED):  # canceled or expired already
        raise InvalidState(f"subscription `{sub.id}` is already {sub.status}")
    if at_period_end and sub.next_payment_date is not None:
        ends = sub.next_payment_date
        said = ("subscription.cancel_scheduled", {"cancel_on": ends.isoformat()})
        events = numbered(sub.id, on, sub.event_seq, said)
        return Step(replace(sub, cancel_on=ends, event_seq=events[-1].seq), (), events)
    return _changed(sub, on, _S.CANCELED, "subscription.canceled", canceled_on=on)


_PER_MONTH = {Unit.MONTH: 1, Unit.YEAR: 12}


def period_amounts(sub: Subscription) -> tuple[Decimal, Decimal]:
    """What one period of ``sub`` bills before and after unit discounts (no rules, taxes or
    fees): the base of its MRR. Each line is rounded first, as on the invoice."""
    gross = net = Decimal(0)
    for item in sub.items:
        line = item.amount().rounded()
        gross += line.amount
        net += line.amount
        if item.unit_discount:
            net -= item.unit_discount.of(line).rounded().amount
    return gross, net


def monthly(amount: Decimal, frequency: Frequency, weekly_factor: Decimal, currency: str) -> Money:
    """``amount`` per period as a monthly amount: weekly × factor (52/12), biweekly × factor ÷ 2,
    monthly × 1, quarterly ÷ 3, yearly ÷ 12 … exact, not rounded: a figure that sums many of
    them (a report's MRR) rounds once, at the end."""
    if frequency.unit is Unit.WEEK:
        return Money(amount * weekly_factor / frequency.count, currency)
    return Money(amount / (_PER_MONTH[frequency.unit] * frequency.count), currency)


def mrr(
    sub: Subscription, weekly_factor: Any, *, with_discounts: bool = False, recurring: Any = None
) -> Money:
    """Monthly recurring revenue of ``sub`` (F28), rounded once. Discounts reduce it only when
    asked: unit discounts, and the recurring discount rules of ``recurring`` (a
    ``RecurringPricing``) when given — what its current period bills."""
    if with_discounts and recurring is not None:
        from abonnement.engine.recurring import current_index

        amount = recurring.period_amount(sub, current_index(sub))
    else:
        gross, net = period_amounts(sub)
        amount = net if with_discounts else gross
    return monthly(amount, sub.frequency, weekly_factor, sub.currency).rounded()


def mrr_basis(sub: Subscription, recurring: Any = None, on: date | None = None) -> dict[str, Any]:
    """The payload that records ``sub``'s recurring definition in its history (created and
    changed events), so analytics can tell its MRR on any past day: the frequency, what a
    period bills before discounts (``amount``) and after the discounts that recur (``net``),
    and — with ``recurring`` (a ``RecurringPricing``) — the dates from which the latter
    changes (``steps``: a discount for N payments ends, a dated one runs out)."""
    gross, net = period_amounts(sub)
    basis: dict[str, Any] = {"frequency": sub.frequency.iso, "amount": str(gross), "net": str(net)}
    if recurring is not None and recurring.rules:
        first, steps = recurring.schedule(sub, on or sub.created_on or sub.anchor)
        basis["net"] = str(first)
        if steps:
            basis["steps"] = [[day.isoformat(), str(amount)] for day, amount in steps]
    return basis
