"""Payments outside the billing run: invoices paid by hand or online, retries, refunds,
and payment-method update links (F17)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from abonnement.engine.money import Money, positive_amount
from abonnement.engine.records import InvoiceRecord
from abonnement.engine.status import InvoiceStatus, PaymentStatus, SubscriptionStatus
from abonnement.errors import (
    AlreadyCollecting,
    CollectionError,
    InvalidInput,
    InvalidState,
    NotFound,
    PaymentDeclined,
)
from abonnement.operations.context import Context
from abonnement.operations.delivery import deliver_due

__all__ = [
    "PAY_LINK_DAYS",
    "accepts_online",
    "attached",
    "invoice_of_link",
    "pay_invoice",
    "pay_link",
    "pay_online",
    "pay_through_link",
    "pay_url",
    "refund",
    "retry",
    "update_link",
    "update_link_target",
    "update_payment_method",
]

# the pay link printed on an invoice is valid this long after the invoice was issued (and only
# while it is open); its nonce is fixed, so the document reads the same at every rendering
PAY_LINK_DAYS = 365
_DOCUMENT_NONCE = "invoice"

# a subscription that has ended takes no new payment method
_ENDED = (SubscriptionStatus.CANCELED, SubscriptionStatus.EXPIRED)


def update_link(ctx: Context, subscription_id: str, on: date) -> dict[str, str]:
    """A signed, single-use link, valid ``settings.update_link_days`` from ``on``, for the
    buyer to save a new payment method (F17): ``{"token", "url", "expires_at"}``.
    ``NotFound``; ``InvalidState`` for a subscription that has ended."""
    sub = ctx.storage.subscription(subscription_id)
    if sub is None:
        raise NotFound("subscription", subscription_id)
    if sub.status in _ENDED:
        raise InvalidState(f"subscription {subscription_id} is {sub.status}")
    days = ctx.catalog.settings.update_link_days
    return ctx.buyer_link("update", subscription_id, on, days, _nonce())


def update_payment_method(ctx: Context, token: str, card: str, on: date) -> dict[str, Any]:
    """Through an update link: save the new card and collect every open invoice of the
    subscription at once, then deliver. ``{"subscription", "collected": [numbers], "status"}``.

    The link works once: ``InvalidInput`` if forged or malformed, ``InvalidState`` if expired,
    used already, or its subscription has ended since. The use is recorded before the card
    is saved, so two uses racing each other save one card. An invoice another caller is
    collecting at this moment is left to that caller (charged once)."""
    from abonnement.engine.billing_run import charge
    from abonnement.engine.update_links import verify

    link = verify(token, ctx.link_secret(), on, "update")
    sub_id = link.subject
    sub = ctx.storage.subscription(sub_id)
    if sub is None or sub.status in _ENDED:
        raise InvalidState("this update link is no longer valid: the subscription has ended")
    if ctx.storage.link_used(link.digest):
        raise InvalidState("this update link was already used; ask for a new one")
    # before the link is spent: a card the processor cannot save leaves it usable
    card = attached(ctx, sub.billing_contact_id or sub.contact_id, card, on)
    if not ctx.storage.use_link(link.digest, "update", sub_id, on):
        raise InvalidState("this update link was already used; ask for a new one")
    ctx.storage.set_payment_method(sub_id, card, "card")
    owed = [a.invoice_number for a in ctx.storage.open_invoices(sub_id, on)]
    # claimed, and priced at what is unpaid, only now: the card saved is the one charged
    attempts = ctx.storage.claim_invoices(owed, on, skip_busy=True)
    finished = charge(
        ctx.storage,
        ctx.processor,
        attempts,
        ctx.catalog.settings,
        on,
        accepted=ctx.catalog.accepted_for,
    )
    ctx.storage.refresh_dues(sub_id, on)  # paid invoices may have been what was overdue
    deliver_due(ctx, on, [sub_id])
    return {"subscription": sub_id,
            "collected": [a.invoice_number for a, r, o in finished if o and o.invoice_paid],
            "status": ctx.storage.subscription(sub_id).status}  # fmt: skip


def pay_link(ctx: Context, number: str, on: date) -> dict[str, str]:
    """A signed, single-use link to pay open invoice ``number`` online, valid
    ``settings.update_link_days`` from ``on`` and no longer once the invoice is settled:
    ``{"token", "url", "expires_at"}``. ``NotFound``; ``InvalidState`` if not open."""
    invoice = ctx.storage.invoice(number)
    if invoice is None:
        raise NotFound("invoice", number)
    if invoice.status != InvoiceStatus.OPEN:
        raise InvalidState(f"invoice {number} is not open")
    days = ctx.catalog.settings.update_link_days
    return ctx.buyer_link("pay", number, on, days, _nonce())


def pay_through_link(ctx: Context, token: str, card: str, on: date) -> dict[str, Any]:
    """The buyer pays through a pay link with ``card``: as ``pay_online``. The link works
    once (a declined card leaves it usable for another card); ``InvalidInput`` if forged,
    ``InvalidState`` if expired, used, or its invoice is settled."""
    from abonnement.engine.update_links import verify

    link = verify(token, ctx.link_secret(), on, "pay")
    invoice = ctx.storage.invoice(link.subject)
    if invoice is None or invoice.status != InvoiceStatus.OPEN:
        raise InvalidState("this pay link is no longer valid: the invoice is settled")
    if not ctx.storage.use_link(link.digest, "pay", link.subject, on):
        raise InvalidState("this pay link was already used")
    try:
        return pay_online(ctx, link.subject, card, on)
    except (PaymentDeclined, AlreadyCollecting, InvalidInput):
        # nothing was paid through it (a card declined or refused by the processor, or a
        # collection under way): the buyer may try another card, or again after its outcome
        ctx.storage.release_link(link.digest)
        raise


def update_link_target(ctx: Context, token: str, on: date) -> dict[str, Any]:
    """What an update link opens, without using it: ``{"subscription": the Subscription,
    "open": [stored invoice rows it owes, oldest first]}``. ``InvalidInput`` for a forged
    link; ``InvalidState`` for an expired or used one, or a subscription that has ended;
    ``NotFound`` when the subscription is gone."""
    from abonnement.engine.update_links import verify

    link = verify(token, ctx.link_secret(), on, "update")
    sub = ctx.storage.subscription(link.subject)
    if sub is None:
        raise NotFound("subscription", link.subject)
    if sub.status in _ENDED or ctx.storage.link_used(link.digest):
        raise InvalidState("this update link is no longer valid")
    owed = [ctx.storage.invoice(a.invoice_number) for a in ctx.storage.open_invoices(sub.id, on)]
    return {"subscription": sub, "open": [row for row in owed if row is not None]}


def pay_url(ctx: Context, row: InvoiceRecord) -> str | None:
    """Where the buyer pays the stored invoice ``row`` online: the account's own page
    (``settings.invoices.pay_url``), else the server's invoice page behind a pay link valid
    ``PAY_LINK_DAYS`` from the issue date; None without a link secret or when the invoice's
    subscription does not accept online payment."""
    settings = ctx.catalog.settings
    if not accepts_online(ctx, row):
        return None
    if settings.invoices.pay_url:
        return settings.invoices.pay_url.format(number=row.number)
    if ctx.link_secret(required=False) is None:
        return None
    link = ctx.buyer_link("pay", row.number, row.issue_date, PAY_LINK_DAYS, _DOCUMENT_NONCE)
    return link["url"]


def accepts_online(ctx: Context, row: InvoiceRecord) -> bool:
    """Whether the invoice may be paid online (a declared subscription may say no)."""
    declared = ctx.catalog.subscriptions.get(row.subscription_id or "")
    return declared is None or declared.collection.accept_online


def invoice_of_link(ctx: Context, token: str, on: date) -> InvoiceRecord:
    """The stored invoice a pay link opens, while it is open and the link unused.
    ``InvalidInput`` for a forged link; ``InvalidState`` for an expired or used link or an
    invoice paid or void since; ``NotFound`` when the invoice is gone."""
    from abonnement.engine.update_links import verify

    link = verify(token, ctx.link_secret(), on, "pay")
    row = ctx.storage.invoice(link.subject)
    if row is None:
        raise NotFound("invoice", link.subject)
    if row.status != InvoiceStatus.OPEN or not accepts_online(ctx, row):
        raise InvalidState(f"invoice {link.subject} is {row.status}; this pay link is spent")
    if ctx.storage.link_used(link.digest):
        raise InvalidState("this pay link was already used")
    return row


def _nonce() -> str:
    """What makes each link a use of its own (12 random characters, 72 bits)."""
    import secrets

    return secrets.token_urlsafe(9)


def pay_online(ctx: Context, number: str, token: str, on: date) -> dict[str, Any]:
    """The buyer pays an open invoice with a card now; a subscription waiting for its
    first paid invoice (``first_invoice``) keeps the card and is charged automatically
    from then on. Returns ``{"number", "status", "amount_paid"}``: status ``paid``, or
    ``processing`` for a bank debit on its way (the run records its settlement).
    ``PaymentDeclined`` when the processor refused it."""
    from abonnement.engine.billing_run import charge

    invoice = ctx.storage.invoice(number)
    if invoice is None:
        raise NotFound("invoice", number)
    if invoice.status != InvoiceStatus.OPEN:
        raise InvalidState(f"invoice {number} is not open")
    token = attached(ctx, invoice.contact_id, token, on)  # the processor's saved card
    attempt = _claim(ctx, number, on, method=(token, "card"))  # the buyer's card, this once
    finished = charge(
        ctx.storage,
        ctx.processor,
        [attempt],
        ctx.catalog.settings,
        on,
        accepted=ctx.catalog.accepted_for,
    )
    _, result, outcome = finished[0] if finished else (None, None, None)
    if outcome is not None and outcome.payment_status == PaymentStatus.PROCESSING:
        # a bank debit on its way: not declined, not paid yet; the run records its settlement
        deliver_due(ctx, on, _about(ctx, number))
        return {"number": number, "status": PaymentStatus.PROCESSING,
                "amount_paid": Money(Decimal(0), invoice.total.currency)}  # fmt: skip
    if not (outcome and outcome.invoice_paid):
        code = result.failure_code if result else "timeout"
        deliver_due(ctx, on, _about(ctx, number))
        raise PaymentDeclined(f"the payment was declined ({code})", code)
    # (recording the payment read each owner's due dates again: ``finish_attempts``)
    for sub_id in ctx.storage.invoice_owners(number):  # a purchase's invoice has several
        sub = ctx.storage.subscription(sub_id)
        if sub is not None and sub.collection_mode == "first_invoice":
            ctx.storage.set_payment_method(sub_id, token, "card")
    deliver_due(ctx, on, _about(ctx, number))
    return {"number": number, "status": InvoiceStatus.PAID, "amount_paid": invoice.total}


def _about(ctx: Context, number: str) -> list[str]:
    """What the events of paying invoice ``number`` are about: its subscriptions (and the
    invoice itself, for one that has none). A buyer's payment delivers these, not the
    outbox's backlog."""
    return [*ctx.storage.invoice_owners(number), number]


def _claim(ctx: Context, number: str, on: date, method: tuple[str, str] | None = None) -> Any:
    """The attempt at open invoice ``number`` this caller makes, committed pending (for
    what is still unpaid) under the invoice's lock: ``InvalidState`` if it is not open,
    ``AlreadyCollecting`` if another caller is collecting it this moment."""
    claimed = ctx.storage.claim_invoices([number], on, method=method)
    if not claimed:
        raise InvalidState(f"invoice {number} is not open")
    return claimed[0]


def attached(ctx: Context, contact_id: str | None, token: str, on: date) -> str:
    """The token to store and charge for a card ``contact_id`` gave (``Processor.attach``:
    the ``stripe`` processor saves it on the contact's customer); ``token`` as it is when
    the contact is unknown or the processor does not save methods."""
    contact = ctx.catalog.contacts.get(contact_id) if contact_id else None
    attach = getattr(ctx.processor, "attach", None)
    if contact is None or attach is None:
        return token
    return attach(contact=contact, token=token, on=on)


def refund(ctx: Context, payment_id: int, amount: Any, on: date) -> dict[str, Any]:
    """Give back ``amount`` (text or Decimal, default: everything not refunded yet) of a
    succeeded payment; the subscription is left as it is. ``InvalidInput`` unless the amount
    is positive, within the currency's minor unit and at most what is left. The refund's
    credit note is numbered and stored in the refund's own transaction. ``{"invoice",
    "attempt", "credit_note", "amount", "currency"}``."""
    rows = ctx.storage.payments()
    row = next((p for p in rows if p.id == payment_id), None)
    if row is None:
        raise NotFound("payment", payment_id)
    if row.status != PaymentStatus.SUCCEEDED or row.amount.amount <= 0:
        raise InvalidState(f"payment {payment_id} is not a succeeded charge")
    refunds = [p for p in rows if p.invoice_number == row.invoice_number
               and p.status == PaymentStatus.REFUNDED]  # fmt: skip
    refunded = -sum((p.amount.amount for p in refunds), Decimal(0))
    left = row.amount.amount - refunded
    asked = None if amount is None else positive_amount(amount, row.currency, "--amount")
    if left <= 0:
        raise InvalidState(f"payment {payment_id} is refunded in full; nothing is left to refund")
    value = left if asked is None else asked
    if not value <= left:
        most = Money(left, row.currency).format_amount()
        raise InvalidInput(f"at most {most} can be refunded for payment {payment_id}")
    if on < row.on_date:
        raise InvalidInput(f"a refund cannot be dated before its payment ({row.on_date})")
    notes = ctx.storage.credit_notes()
    if notes and on < notes[-1].issue_date:  # the series is numbered in date order
        raise InvalidInput(f"the last credit note, {notes[-1].number}, is dated "
                           f"{notes[-1].issue_date}: a refund is dated then or later")  # fmt: skip
    money = Money(value, row.currency).rounded()
    # the refund's number among the invoice's refunds: a rerun after a crash sends the same
    # key (the processor answers the first result), a second refund of the same amount its own
    key = (f"{ctx.storage.instance_id()}/{row.invoice_number}/refund-{payment_id}-"
           f"{len(refunds) + 1}-{money.amount}")  # fmt: skip
    result = ctx.processor.refund(charge_key=row.idempotency_key, reference=row.reference,
                                   amount=money, idempotency_key=key, on=on)  # fmt: skip
    if result.status != PaymentStatus.SUCCEEDED:
        raise CollectionError(f"the refund failed ({result.failure_code or result.status})")
    attempt, credit_note = ctx.storage.record_refund(
        row.invoice_number, money, row.method, key, result.reference, on,
        ctx.catalog.settings.invoices.credit_note_format,
    )  # fmt: skip
    deliver_due(ctx, on, _about(ctx, row.invoice_number))
    return {"invoice": row.invoice_number, "attempt": attempt, "credit_note": credit_note,
            "amount": money.format_amount(), "currency": money.currency}  # fmt: skip


_LIVE = (PaymentStatus.PENDING, PaymentStatus.PROCESSING)  # an attempt whose outcome is awaited


def retry(ctx: Context, payment_id: int, on: date) -> dict[str, Any]:
    """A manual retry of the invoice behind payment ``payment_id`` with the subscription's
    saved payment method (at most ``settings.manual_retry_limit``), then delivery.
    ``{"invoice", "attempt", "status", "failure_code"}``. ``InvalidState`` when the invoice
    is not open, has had its retries, or has no saved method to charge (an invoice sent for
    payment, which a buyer paid on its pay page with a card that failed: that card was not
    kept, nothing is charged)."""
    from abonnement.engine.billing_run import charge

    payments = ctx.storage.payments()
    row = next((p for p in payments if p.id == payment_id), None)
    if row is None:
        raise NotFound("payment", payment_id)
    number = row.invoice_number
    # an invoice not open, or being collected (a bank debit on its way), is the claim's to
    # refuse: its answers say why; only an open one nobody collects can lack a method
    collecting = any(p.invoice_number == number and p.status in _LIVE for p in payments)
    invoice = ctx.storage.invoice(number)
    if invoice is not None and invoice.status == InvoiceStatus.OPEN and not collecting:
        preview = ctx.storage.invoice_attempt(number, on)
        if preview is not None and not preview.token:
            raise InvalidState(
                f"invoice {number} has no saved payment method to charge; the buyer pays it "
                f"through its pay link, or record a payment made by other means "
                f"(`invoices pay {number}`)"
            )
    limit = ctx.catalog.settings.manual_retry_limit
    if ctx.storage.manual_tries(number) >= limit:
        raise InvalidState(f"invoice {number} has had its {limit} manual retries")
    attempt = _claim(ctx, number, on)
    finished = charge(
        ctx.storage,
        ctx.processor,
        [attempt],
        ctx.catalog.settings,
        on,
        accepted=ctx.catalog.accepted_for,
    )
    _, result, outcome = finished[0] if finished else (None, None, None)
    deliver_due(ctx, on, _about(ctx, number))
    return {"invoice": number, "attempt": attempt.attempt,
            "status": outcome.payment_status if outcome else PaymentStatus.PENDING,
            "failure_code": result.failure_code if result else None}  # fmt: skip


def pay_invoice(
    ctx: Context,
    number: str,
    on: date,
    *,
    amount: Decimal | str | None = None,
    method: str = "manual",
) -> dict[str, Any]:
    """Record a payment made outside the processor (default: the amount due), then deliver.
    ``{"number", "status", "amount_paid"}`` (``amount_paid`` as ``Money``). ``NotFound``,
    ``InvalidState`` (settled), or ``InvalidInput`` for an amount that is not positive, has
    more decimals than the invoice's currency or is more than is due."""
    invoice = ctx.storage.invoice(number)
    if invoice is None:
        raise NotFound("invoice", number)
    if amount is None:
        value = invoice.amount_due
    else:
        value = Money(positive_amount(amount, invoice.currency, "--amount"), invoice.currency)
        if invoice.status == InvoiceStatus.OPEN and value > invoice.amount_due:
            # nothing would hold the excess (storage checks again, holding the invoice)
            raise InvalidInput(f"--amount: at most {invoice.amount_due.format_amount()} "
                               f"{invoice.currency} is due on invoice {number}")  # fmt: skip
    paid = ctx.storage.pay_invoice(number, value, on, method)
    deliver_due(ctx, on, _about(ctx, number))
    return {"number": paid.number, "status": paid.status, "amount_paid": paid.amount_paid}
