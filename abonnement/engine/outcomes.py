"""What storage records after a payment or a purchase: the payment row's status, the
invoice's change, the subscription's new standing and the events that say so.

Pure. Storage reads the facts a decision needs — a subscription's standing, its other
invoices whose automatic try failed, its oldest open due date, the invoice number it has just
given out — and writes what these functions return; it decides nothing itself. The billing
run, checkouts and conversions, payments by hand, online, by retry or through an update link
all go through here, so the same act records the same events whichever path it took.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any

from abonnement.engine.collection import (
    Attempt,
    ChargeResult,
    Outcome,
    first_attempt,
    judge,
    subscription_after,
)
from abonnement.engine.events import Event, numbered
from abonnement.engine.invoicing import InvoiceDraft, carried_item, payment_received
from abonnement.engine.money import Money
from abonnement.engine.status import InvoiceStatus, PaymentStatus, SubscriptionStatus
from abonnement.engine.subscriptions import Subscription, mrr_basis

__all__ = [
    "CARRIED",
    "NOTHING_OWED",
    "PAYMENT_EVENTS",
    "InvoiceChange",
    "Purchase",
    "Recorded",
    "Standing",
    "after_dues",
    "after_payment",
    "charged_now",
    "first_attempts",
    "paid_by_hand",
    "purchase_owners",
    "purchased",
    "reads_failing",
    "recorded",
    "settled_at_issue",
    "settlement",
]

PAYMENT_EVENTS: Mapping[str, str] = {
    PaymentStatus.SUCCEEDED: "payment.succeeded",
    PaymentStatus.FAILED: "payment.failed",
}
_S = SubscriptionStatus
_STARTED = "subscription.status_changed"
NOTHING_OWED, CARRIED = "nothing_owed", "carried"


def settlement(total: Money, *, automatic: bool, minimum: Money | None) -> str | None:
    """How an invoice of ``total`` is settled when it is issued, or None when it is owed
    (charged, or sent with its payment terms). ``nothing_owed``: a total of zero is paid at
    issue and charges nothing. ``carried``: a credit (a total below zero) — and, for an
    automatic charge, a total below the processor's ``minimum`` — is settled by carrying it
    to the subscription's next invoice, as processors' own billing does."""
    amount = total.rounded().amount
    if not amount:
        return NOTHING_OWED
    if amount < 0 or (automatic and minimum is not None and total < minimum):
        return CARRIED
    return None


def settled_at_issue(
    numbers: Sequence[str],
    drafts: Sequence[InvoiceDraft],
    subscriptions: Mapping[str, Subscription],
) -> tuple[list[Subscription], list[Event]]:
    """What the invoices ``drafts`` (numbered ``numbers``) settled at issue (``settlement``)
    record on their subscriptions, dated their issue: ``invoice.paid`` (``{"invoice",
    "amount", "settled"}``) for each; before it, for a carried one, ``invoice.carried``
    (``{"invoice", "amount"}``) and a pending line ``Carried from NUMBER`` for the next
    invoice. Returns the subscriptions changed and the events; nothing for owed invoices."""
    changed: dict[str, Subscription] = {}
    events: list[Event] = []
    for number, draft in zip(numbers, drafts, strict=True):
        if draft.settled is None or draft.subscription_id not in subscriptions:
            continue
        sub = changed.get(draft.subscription_id) or subscriptions[draft.subscription_id]
        amount = draft.total.rounded()
        paid = {"invoice": number, "amount": amount.format_amount(), "settled": draft.settled}
        happened: list[tuple[str, Mapping[str, Any]]] = [("invoice.paid", paid)]
        if draft.settled == CARRIED:
            happened.insert(0, ("invoice.carried", {"invoice": number,
                                                    "amount": amount.format_amount()}))  # fmt: skip
            sub = replace(sub, pending=(*sub.pending, carried_item(number, amount)))
        said = numbered(sub.id, draft.issue_date, sub.event_seq, *happened)
        events.extend(said)
        changed[sub.id] = replace(sub, event_seq=said[-1].seq)
    return list(changed.values()), events


@dataclass(frozen=True, slots=True)
class Standing:
    """What a payment outcome reads and moves of a subscription. ``failing`` holds its open
    invoices whose automatic try failed; storage reads them only when ``reads_failing`` says
    the decision depends on them (a paid renewal of an active subscription does not)."""

    id: str
    status: str
    event_seq: int
    canceled_on: date | None
    failing: frozenset[str] = frozenset()


def reads_failing(status: str) -> bool:
    """Whether a payment outcome for a subscription in ``status`` depends on its other
    failing invoices: only an unpaid one, which a payment makes active only when nothing
    else of it still fails."""
    return status == _S.UNPAID


def after_payment(
    standing: Standing, attempt: Attempt, outcome: Outcome, on: date
) -> tuple[Standing, tuple[Event, ...]]:
    """``standing`` after ``outcome`` of ``attempt`` on ``on``, and the events that say so:
    ``payment.succeeded`` or ``payment.failed`` (none while a bank debit is processing),
    ``invoice.paid`` when it paid the invoice, and ``subscription.status_changed``."""
    number, failing = attempt.invoice_number, standing.failing
    # ``failing`` is usually empty: no set is built for a paid renewal
    others = bool(failing) and (len(failing) > 1 or number not in failing)
    status = subscription_after(_S(standing.status), outcome, still_failing=others)
    if outcome.invoice_paid and number in failing:
        failing = failing - {number}
    elif outcome.payment_status == PaymentStatus.FAILED and not attempt.manual:
        failing = failing | {number}  # storage sets its first failure date
    # the method this payment used: what a trigger's ``payment.method`` reads
    said = {"invoice": number, "attempt": attempt.attempt, "method": attempt.method_type}
    kind = PAYMENT_EVENTS.get(outcome.payment_status)
    # what this payment took (a payment by hand may pay part of the invoice: its receipt says
    # so), and whether it paid the invoice (the first payment's admin notice waits for that)
    paid = {**said, "amount": attempt.amount.format_amount(), "pays_invoice": outcome.invoice_paid}
    if attempt.manual:
        paid["manual"] = True  # made by hand: its maker saw the outcome
    happened: list[tuple[str, Mapping[str, Any]]] = [(kind, paid)] if kind else []
    if outcome.invoice_paid:
        happened.append(("invoice.paid", said))
    if status != standing.status:
        happened.append(
            ("subscription.status_changed", {"previous_status": standing.status, "status": status})
        )
    events = numbered(standing.id, on, standing.event_seq, *happened)
    moved_to_canceled = status == _S.CANCELED and standing.status != _S.CANCELED
    canceled_on = on if moved_to_canceled else standing.canceled_on
    seq = events[-1].seq if events else standing.event_seq
    return Standing(standing.id, status, seq, canceled_on, failing), events


@dataclass(frozen=True, slots=True)
class InvoiceChange:
    """What an attempt's outcome does to its invoice, by ``kind``: ``paid``; ``parked`` (a
    bank debit on its way: no charge planned); ``retry`` — tried again automatically on
    ``collect_on`` (None after the final try), failing since ``first_failure_on``; ``kept``
    (a manual try failed: the invoice stays as it was); ``unsent`` (the processor never saw
    the key: charged again on ``collect_on``, if still open)."""

    kind: str
    collect_on: date | None = None
    first_failure_on: date | None = None


@dataclass(frozen=True, slots=True)
class Recorded:
    """Everything one finished attempt writes: its payment row, its invoice, its
    subscription's standing (None for an invoice of no subscription) and events."""

    payment_status: str
    failure_code: str | None
    reference: str | None
    check_on: date | None
    invoice: InvoiceChange
    standing: Standing | None
    events: tuple[Event, ...] = ()


def recorded(
    attempt: Attempt,
    result: ChargeResult | None,
    outcome: Outcome | None,
    standing: Standing | None,
    on: date,
) -> Recorded:
    """What to write for ``attempt`` finished on ``on``; a None result or outcome means the
    processor never saw the key (the attempt failed ``not_sent``, the invoice is charged
    again)."""
    if result is None or outcome is None:
        unsent = InvoiceChange("unsent", attempt.on)
        return Recorded(PaymentStatus.FAILED, "not_sent", None, None, unsent, standing)
    if outcome.invoice_paid:
        invoice = _PAID
    elif outcome.payment_status == PaymentStatus.PROCESSING:
        invoice = _PARKED
    elif attempt.manual:
        invoice = _KEPT
    else:
        invoice = InvoiceChange("retry", outcome.next_retry_on,
                                attempt.first_failure_on or attempt.on)  # fmt: skip
    events: tuple[Event, ...] = ()
    if standing is not None:
        standing, events = after_payment(standing, attempt, outcome, on)
    return Recorded(outcome.payment_status, result.failure_code, result.reference,
                    outcome.check_on, invoice, standing, events)  # fmt: skip


_PAID, _PARKED, _KEPT = InvoiceChange("paid"), InvoiceChange("parked"), InvoiceChange("kept")


def after_dues(
    standing: Standing, oldest_open_due: date | None, on: date
) -> tuple[Standing, tuple[Event, ...]]:
    """A past-due subscription is active again on ``on`` once no open invoice of it is
    overdue (``oldest_open_due`` is the earliest due date of its open invoices, or None)."""
    if standing.status != _S.PAST_DUE or (oldest_open_due is not None and oldest_open_due < on):
        return standing, ()
    events = numbered(standing.id, on, standing.event_seq, ("subscription.status_changed",
                      {"previous_status": _S.PAST_DUE, "status": _S.ACTIVE}))  # fmt: skip
    return replace(standing, status=_S.ACTIVE, event_seq=events[-1].seq), events


def paid_by_hand(
    number: str, status: str, amount_paid: Decimal, total: Decimal, amount: Decimal
) -> tuple[str, Outcome]:
    """A payment of ``amount`` made outside the processor on an invoice in ``status`` with
    ``amount_paid`` of ``total`` paid so far: the invoice's new status, and the outcome
    (``after_payment``) — a success that pays the invoice once the amount reaches its total.
    ``InvalidState`` for a settled invoice."""
    new = payment_received(number, status, total, amount_paid + amount)
    paid = new == InvoiceStatus.PAID
    return new, Outcome(PaymentStatus.SUCCEEDED, paid, _S.ACTIVE if paid else None, None, None)


def charged_now(drafts: Sequence[InvoiceDraft], on: date | None) -> list[bool]:
    """Which of a billing batch's new invoices are charged right away (``on`` is the day
    the run charges, None when it does not): those to collect that day."""
    return [on is not None and d.collect_on == on for d in drafts]


def first_attempts(
    numbers: Sequence[str],
    drafts: Sequence[InvoiceDraft],
    charged: Sequence[bool],
    subscriptions: Mapping[str, Subscription],
    on: date,
    instance: str = "",
) -> list[Attempt]:
    """The first automatic attempt of each charged invoice (``numbers`` given to
    ``drafts``), with its subscription's saved method; ``instance``: the database's id."""
    attempts = []
    for number, draft, now in zip(numbers, drafts, charged, strict=True):
        if now:
            sub = subscriptions[draft.subscription_id]  # type: ignore[index]
            attempts.append(first_attempt(number, sub.id, draft.total, sub.payment_token,  # type: ignore[arg-type]
                                          sub.payment_type, on, instance))  # fmt: skip
    return attempts


@dataclass(frozen=True)
class Purchase:
    """What a purchase records: its subscriptions (with their event counts), its invoice's
    status and amount paid, its payment row's status and next check (None without a
    payment), the subscriptions its invoice belongs to (the first one carries the payment's
    events and standing) and the events of it all."""

    subscriptions: tuple[Subscription, ...]
    invoice_status: str
    amount_paid: Decimal
    payment_status: str | None
    check_on: date | None
    owners: tuple[str, ...]
    events: tuple[Event, ...]


def purchase_owners(subs: Sequence[Subscription]) -> tuple[str, ...]:
    """The subscriptions a purchase's invoice belongs to: all it created, the first one
    that starts now first — its history tells of the payment, as a renewal's would."""
    started = [s.id for s in subs if s.status == _S.ACTIVE]
    return (*started, *(s.id for s in subs if s.id not in started))


def purchased(
    subs: Sequence[Subscription],
    number: str,
    attempt: Attempt | None,
    result: ChargeResult | None,
    on: date,
    bases: Sequence[Mapping[str, Any]] | None = None,
    total: Money | None = None,
) -> Purchase:
    """A purchase on ``on`` of ``subs`` (``active`` when they start now, else
    ``scheduled``) invoiced as ``number`` and charged by ``attempt`` with ``result`` (both
    None: the invoice waits for a payment by its terms). Each subscription records
    ``subscription.created``; one that starts now also ``subscription.status_changed`` and
    ``invoice.created`` (its first period is on this invoice); the invoice's first owner
    records the payment as the billing run records a charge. ``bases``: each subscription's
    recurring definition for its history (``mrr_basis`` when not given). An invoice whose
    ``total`` is zero is paid at issue (no attempt: nothing is charged) and records
    ``invoice.paid`` as the billing run does (``settled_at_issue``)."""
    owners = purchase_owners(subs)
    after: dict[str, Subscription] = {}
    events: list[Event] = []
    for sub, basis in zip(subs, bases or [mrr_basis(s) for s in subs], strict=True):
        happened: list[tuple[str, Mapping[str, Any]]] = [
            ("subscription.created", {"invoice": number, **basis})]  # fmt: skip
        if sub.status == _S.ACTIVE:
            happened += [(_STARTED, {"previous_status": _S.SCHEDULED, "status": _S.ACTIVE}),
                         ("invoice.created", {"invoice": number, "period": 0})]  # fmt: skip
        said = numbered(sub.id, on, 0, *happened)
        events.extend(said)
        after[sub.id] = replace(sub, event_seq=said[-1].seq)
    outcome = None
    if attempt is not None and result is not None:
        outcome = judge(result, on=on, method_type=attempt.method_type, retries_done=0,
                        first_failure_on=None, retry_days=(), after_final_failure=_S.UNPAID,
                        automatic=False)  # fmt: skip
        if owners:
            payer = after[owners[0]]
            standing = Standing(payer.id, payer.status, payer.event_seq, payer.canceled_on)
            charge = replace(attempt, invoice_number=number, subscription_id=payer.id)
            standing, said = after_payment(standing, charge, outcome, on)
            events.extend(said)
            after[payer.id] = replace(payer, status=standing.status, event_seq=standing.event_seq,
                                      canceled_on=standing.canceled_on)  # fmt: skip
    nothing_owed = (
        total is not None and settlement(total, automatic=False, minimum=None) == NOTHING_OWED
    )
    if nothing_owed and attempt is None and owners:
        payer = after[owners[0]]
        said = numbered(payer.id, on, payer.event_seq, ("invoice.paid", {
            "invoice": number, "amount": total.rounded().format_amount(),  # type: ignore[union-attr]
            "settled": NOTHING_OWED}))  # fmt: skip
        events.extend(said)
        after[payer.id] = replace(payer, event_seq=said[-1].seq)
    paid = (outcome is not None and outcome.invoice_paid) or nothing_owed
    return Purchase(
        tuple(after[s.id] for s in subs),
        InvoiceStatus.PAID if paid else InvoiceStatus.OPEN,
        attempt.amount.amount if paid and attempt else Decimal(0),
        outcome.payment_status if outcome else None,
        outcome.check_on if outcome else None,
        owners,
        tuple(events),
    )
