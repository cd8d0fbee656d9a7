"""What storage gives back: stored invoices, payments, events and deliveries as frozen values.

These cross the storage contract (``engine/ports.py``) into the operations and the faces, so
nothing above storage reads a database row or a dict of columns. Money is ``Money`` in the
record's currency, exactly as stored (``total.format_amount()`` is ``"25.00"``); dates are
``date``; statuses are the StrEnums of ``engine/status.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from abonnement.engine.events import Event
from abonnement.engine.money import Money
from abonnement.engine.status import DeliveryStatus, InvoiceStatus, PaymentStatus

__all__ = [
    "AdjustmentRecord",
    "AppliedConfig",
    "CreditNoteRecord",
    "DeliveryRecord",
    "DisputeRecord",
    "EventRecord",
    "InvoiceRecord",
    "LineRecord",
    "NewDelivery",
    "PaymentRecord",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class LineRecord:
    """One line of a stored invoice, at ``position`` (from 0). ``subscription_id``: the
    subscription the line bills (a purchase's invoice has lines of several; None for a
    one-time line)."""

    position: int
    description: str
    sku: str | None
    quantity: int
    unit_price: Money
    amount: Money  # quantity × unit price after the line's unit discount, before adjustments
    subscription_id: str | None = None


@dataclass(frozen=True, slots=True)
class AdjustmentRecord:
    """A discount, fee or tax on a stored invoice, named by the rule that made it.
    ``line_position`` is the line it applies to, None for the invoice as a whole."""

    position: int
    line_position: int | None
    kind: str  # discount | fee | tax
    rule: str
    amount: Money
    label: str | None = None
    rate: Decimal | None = None  # percent (25 for 25%), for rate-based ones
    inclusive: bool = False  # a tax included in the line's price
    # a tax's taxable amount: what its rate was applied to (net of an inclusive tax); None on
    # invoices issued before it was recorded (0014)
    base: Money | None = None


@dataclass(frozen=True, slots=True)
class InvoiceRecord:
    """A stored invoice. ``lines`` and ``adjustments`` are filled by ``Storage.invoice`` (one
    invoice, whole); listings (``Storage.invoices``) leave them empty."""

    number: str
    seq: int  # the gap-free counter value the number was made from
    subscription_id: str | None  # None: a purchase's invoice (its owners: ``invoice_owners``)
    contact_id: str
    status: InvoiceStatus
    currency: str
    issue_date: date
    due_date: date
    period_start: date | None
    period_end: date | None  # the first day of the next period (exclusive)
    subtotal: Money
    discount_total: Money
    fee_total: Money
    tax_total: Money
    total: Money
    amount_paid: Money
    document: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)  # language, locale…
    collect_on: date | None = None  # the next automatic charge attempt
    auto_retries: int = 0
    first_failure_on: date | None = None
    lines: tuple[LineRecord, ...] = ()
    adjustments: tuple[AdjustmentRecord, ...] = ()

    @property
    def amount_due(self) -> Money:
        """What is left to pay, never below zero."""
        return max(self.total - self.amount_paid, Money.zero(self.currency))

    def adjustments_of(self, line_position: int | None) -> tuple[AdjustmentRecord, ...]:
        """The adjustments of one line (by position), or of the invoice (None)."""
        return tuple(a for a in self.adjustments if a.line_position == line_position)


@dataclass(frozen=True, slots=True)
class CreditNoteRecord:
    """A credit note: the document of a refund, numbered in its own gap-free series and
    issued in the same transaction as the refund it documents (``payment_id``: the refund's
    payment row). ``amount`` is positive: what the buyer gets back of ``invoice_number``."""

    number: str
    seq: int
    invoice_number: str
    payment_id: int
    amount: Money
    issue_date: date

    @property
    def currency(self) -> str:
        return self.amount.currency


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """A stored payment attempt: a charge, a manual payment, or a refund (negative amount).
    ``subscription_id`` is the subscription its invoice's payments move."""

    id: int
    invoice_number: str
    subscription_id: str | None
    attempt: int
    amount: Money
    method: str  # card | ach | sepa | bacs | pads | manual | a user's label
    status: PaymentStatus
    idempotency_key: str
    on_date: date
    failure_code: str | None = None
    reference: str | None = None  # the processor's id of the charge
    check_on: date | None = None  # a processing bank debit: asked about again then
    manual: bool = False

    @property
    def currency(self) -> str:
        return self.amount.currency


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A stored domain event: ``id`` orders the outbox, ``seq`` orders one subject's events."""

    id: int
    type: str
    subject_id: str
    seq: int
    on_date: date
    payload: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    delivered: bool = False  # handed over to the workflows and notifications

    def event(self) -> Event:
        """The domain event as the engine made it (what event observers get)."""
        return Event(self.type, self.subject_id, self.on_date, self.payload, self.seq)


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A message to deliver once through one notifier; ``key`` (event id, template,
    recipient, channel) makes asking twice harmless."""

    key: str
    event_id: int
    channel: str
    template: str
    recipient: str  # contact | admins | team:NAME | an address
    source: str  # settings | trigger:NAME
    next_try_on: date | None = None  # not sent before this day (None: at once)


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """A stored delivery with the event it tells of, and how its tries went."""

    key: str
    channel: str
    template: str
    recipient: str
    source: str
    status: DeliveryStatus
    event: EventRecord
    attempts: int = 0
    next_try_on: date | None = None
    sent_on: date | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DisputeRecord:
    """A charge the buyer's bank contests, as the processor's webhook reported it."""

    processor: str
    dispute_id: str  # the processor's id of the dispute: recorded once
    payment_id: int
    invoice_number: str
    amount: Money  # what is contested
    reason: str | None
    opened_on: date


@dataclass(frozen=True, slots=True)
class AppliedConfig:
    """The config ``apply`` made true last: its version, the day, and its files' text by
    path relative to the config directory."""

    version: str
    applied_on: date
    files: Mapping[str, str]
