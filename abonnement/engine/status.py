"""The statuses of subscriptions, invoices, payment attempts and message deliveries, and which
status may follow which.

Each kind is a ``StrEnum``: a member equals its text (``SubscriptionStatus.ACTIVE ==
"active"``), so stored values, event payloads and JSON output are the plain strings they always
were. ``TRANSITIONS`` is the one table of legal moves; ``check_transition`` is what the engine
calls before it changes a status, so a move the table does not list is a bug caught where it is
made, not a row found later.

    subscription:  scheduled ─▶ active ◀─▶ past_due          active, past_due ─▶ expired
                                  ▲ │         │               (a fixed term fully billed)
                                  │ ▼         ▼
                                 unpaid ◀─────┘              any live one ─▶ paused ─▶ active
                   everything but canceled and expired ─▶ canceled
    invoice:       draft ─▶ open ─▶ paid | void | uncollectible;  uncollectible ─▶ void
    payment:       pending ─▶ processing ─▶ succeeded | failed;  pending ─▶ succeeded | failed
                   (a refund is a row of its own, born ``refunded``)
    delivery:      pending ─▶ sent | failed | skipped
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from abonnement.errors import InvalidState

__all__ = [
    "TRANSITIONS",
    "DeliveryStatus",
    "InvoiceStatus",
    "PaymentStatus",
    "Status",
    "SubscriptionStatus",
    "allows",
    "check_transition",
]


class SubscriptionStatus(StrEnum):
    SCHEDULED = "scheduled"  # starts on its anchor date
    ACTIVE = "active"
    PAST_DUE = "past_due"  # a manual invoice is past its due date
    UNPAID = "unpaid"  # an automatic charge failed (retrying, or given up)
    PAUSED = "paused"
    CANCELED = "canceled"
    EXPIRED = "expired"  # a fixed term, fully billed and over


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class PaymentStatus(StrEnum):
    """A payment attempt's status; also what a processor's ``ChargeResult`` says."""

    PENDING = "pending"  # written before the processor is called
    PROCESSING = "processing"  # a bank debit on its way
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUNDED = "refunded"  # a refund row (negative amount), never an attempt's later status


class DeliveryStatus(StrEnum):
    """A message delivery (one per message and channel) in the outbox."""

    PENDING = "pending"  # to try (again) on its next try date
    SENT = "sent"
    FAILED = "failed"  # given up after the last retry
    # nothing to send by then: nobody to tell, or a message planned ahead whose invoice was
    # paid (or whose setting was turned off) before its day
    SKIPPED = "skipped"


Status = SubscriptionStatus | InvoiceStatus | PaymentStatus | DeliveryStatus

_S, _I, _P, _D = SubscriptionStatus, InvoiceStatus, PaymentStatus, DeliveryStatus


def _table(moves: dict[StrEnum, tuple[StrEnum, ...]]) -> Mapping[StrEnum, frozenset[StrEnum]]:
    return MappingProxyType({old: frozenset(new) for old, new in moves.items()})


TRANSITIONS: Mapping[type[StrEnum], Mapping[StrEnum, frozenset[StrEnum]]] = MappingProxyType({
    SubscriptionStatus: _table({
        _S.SCHEDULED: (_S.ACTIVE, _S.CANCELED),
        # past_due: manual invoices overdue; unpaid: an automatic charge failed (F15, F16)
        _S.ACTIVE: (_S.PAST_DUE, _S.UNPAID, _S.PAUSED, _S.CANCELED, _S.EXPIRED),
        _S.PAST_DUE: (_S.ACTIVE, _S.UNPAID, _S.PAUSED, _S.CANCELED, _S.EXPIRED),
        # unpaid is not billed, so it never expires; a charge that succeeds makes it active
        _S.UNPAID: (_S.ACTIVE, _S.PAUSED, _S.CANCELED),
        _S.PAUSED: (_S.ACTIVE, _S.CANCELED),
        _S.CANCELED: (),
        _S.EXPIRED: (),
    }),
    InvoiceStatus: _table({
        _I.DRAFT: (_I.OPEN, _I.VOID),
        _I.OPEN: (_I.PAID, _I.VOID, _I.UNCOLLECTIBLE),
        # a written-off invoice takes no payment (``invoices pay`` refuses it) but may be voided
        _I.UNCOLLECTIBLE: (_I.VOID,),
        _I.PAID: (),
        _I.VOID: (),
    }),
    PaymentStatus: _table({
        _P.PENDING: (_P.PROCESSING, _P.SUCCEEDED, _P.FAILED),
        _P.PROCESSING: (_P.SUCCEEDED, _P.FAILED),
        # an outcome is final: a refund is a new row, a retry a new attempt
        _P.SUCCEEDED: (),
        _P.FAILED: (),
        _P.REFUNDED: (),
    }),
    DeliveryStatus: _table({
        # a failed try that will be retried stays pending (with its next try date)
        _D.PENDING: (_D.SENT, _D.FAILED, _D.SKIPPED),
        _D.SENT: (),
        _D.FAILED: (),
        _D.SKIPPED: (),
    }),
})  # fmt: skip


def _kind(old: str, new: str) -> type[StrEnum]:
    for value in (old, new):
        if isinstance(value, StrEnum) and type(value) in TRANSITIONS:
            return type(value)
    raise TypeError(f"cannot tell which kind of status {old!r} → {new!r} is: pass an enum member")


def allows(old: str, new: str) -> bool:
    """Whether ``old`` may move to ``new``; the kind comes from whichever is an enum member (the
    other may be its text). Staying in one status is not a move and is not allowed."""
    kind = _kind(old, new)
    try:
        return kind(new) in TRANSITIONS[kind][kind(old)]
    except ValueError:  # not a status of this kind at all
        return False


def check_transition(old: str, new: str) -> None:
    """Raise ``InvalidState`` unless ``TRANSITIONS`` lets ``old`` move to ``new``.

    Pure, and called by the engine wherever a status changes. The kind (subscription,
    invoice, payment, delivery) comes from whichever argument is an enum member."""
    if not allows(old, new):
        kind = _kind(old, new)
        name = kind.__name__.removesuffix("Status").lower()
        article = "an" if name[0] in "aeiou" else "a"
        legal = TRANSITIONS[kind].get(old)  # type: ignore[call-overload]
        if legal is None:
            then = f"`{old}` is not {article} {name} status"
        else:
            then = f"it may become {', '.join(sorted(legal))}" if legal else f"`{old}` is final"
        raise InvalidState(f"{article} {name} cannot go from `{old}` to `{new}`; {then}")
