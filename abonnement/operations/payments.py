"""Payments outside the billing run: invoices paid by hand or online, retries, refunds,
and payment-method update links (F17)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

from abonnement.engine.status import InvoiceStatus, PaymentStatus
from abonnement.errors import CollectionError, InvalidInput, InvalidState, NotFound, PaymentDeclined
from abonnement.operations.context import Context
from abonnement.operations.delivery import deliver_due

__all__ = [
    "PAY_LINK_DAYS",
    "accepts_online",
    "invoice_of_link",
    "pay_by_link",
    "pay_invoice",
    "pay_online",
    "pay_url",
    "refund",
    "retry",
    "update_link",
    "update_link_target",
    "update_payment_method",
]

# an invoice's pay link is valid this long after the invoice was issued, while it is open
PAY_LINK_DAYS = 365


def update_link(ctx: Context, subscription_id: str, on: date) -> dict[str, str]:
    """A signed link, valid ``settings.update_link_days`` from ``on``, for the buyer to save a
    new payment method (F17): ``{"token", "url", "expires_at"}``."""
    if ctx.storage.subscription(subscription_id) is None:
        raise NotFound("subscription", subscription_id)
    return ctx.buyer_link("update", subscription_id, on, ctx.catalog.settings.update_link_days)


def update_link_target(ctx: Context, token: str, on: date) -> dict[str, Any]:
    """What an update link opens, without changing anything: ``{"subscription": the
    Subscription, "open": [stored invoice rows it owes, oldest first]}``. ``InvalidInput``
    for a forged link, ``InvalidState`` for an expired one, ``NotFound`` when the
    subscription is gone."""
    from abonnement.engine.update_links import verify

    sub_id = verify(token, ctx.link_secret(), on)
    sub = ctx.storage.subscription(sub_id)
    if sub is None:
        raise NotFound("subscription", sub_id)
    owed = [ctx.storage.invoice(a.invoice_number) for a in ctx.storage.open_invoices(sub_id, on)]
    return {"subscription": sub, "open": [row for row in owed if row is not None]}


def pay_url(ctx: Context, row: dict[str, Any]) -> str | None:
    """Where the buyer pays the stored invoice ``row`` online: the account's own page
    (``settings.invoices.pay_url``), else the server's invoice page behind a signed link valid
    ``PAY_LINK_DAYS`` from the issue date; None without a link secret or when the invoice's
    subscription does not accept online payment."""
    settings = ctx.catalog.settings
    if not accepts_online(ctx, row):
        return None
    if settings.invoices.pay_url:
        return settings.invoices.pay_url.format(number=row["number"])
    if ctx.link_secret(required=False) is None:
        return None
    return ctx.buyer_link("pay", row["number"], row["issue_date"], PAY_LINK_DAYS)["url"]


def accepts_online(ctx: Context, row: dict[str, Any]) -> bool:
    """Whether the invoice may be paid online (a declared subscription may say no)."""
    declared = ctx.catalog.subscriptions.get(row.get("subscription_id") or "")
    return declared is None or declared.collection.accept_online


def invoice_of_link(ctx: Context, token: str, on: date) -> dict[str, Any]:
    """The stored invoice a pay link names, while it is open. ``InvalidInput`` for a forged
    link, ``InvalidState`` for an expired link or an invoice paid or void since (the link is
    spent), ``NotFound`` when the invoice is gone."""
    from abonnement.engine.update_links import verify

    number = verify(token, ctx.link_secret(), on, "pay")
    row = ctx.storage.invoice(number)
    if row is None:
        raise NotFound("invoice", number)
    if row["status"] != InvoiceStatus.OPEN or not accepts_online(ctx, row):
        raise InvalidState(f"invoice {number} is {row['status']}; this pay link is spent")
    return row


def pay_by_link(ctx: Context, token: str, card: str, on: date) -> dict[str, Any]:
    """Pay the invoice of a pay link with ``card`` now (``pay_online``), after checking the
    link as ``invoice_of_link`` does. ``PaymentDeclined`` with the processor's reason."""
    row = invoice_of_link(ctx, token, on)
    return pay_online(ctx, row["number"], card, on)


def update_payment_method(ctx: Context, token: str, card: str, on: date) -> dict[str, Any]:
    """Through an update link: save the new card and collect every open invoice of the
    subscription at once, then deliver. ``{"subscription", "collected": [numbers], "status"}``."""
    from abonnement.engine.billing_run import collect
    from abonnement.engine.update_links import verify

    sub_id = verify(token, ctx.link_secret(), on)
    ctx.storage.set_payment_method(sub_id, card, "card")
    attempts = ctx.storage.open_invoices(sub_id, on)
    finished = collect(ctx.storage, ctx.processor, attempts, ctx.catalog.settings, on)
    ctx.storage.refresh_dues(sub_id, on)  # paid invoices may have been what was overdue
    deliver_due(ctx, on)
    return {"subscription": sub_id,
            "collected": [a.invoice_number for a, r, o in finished if o and o.invoice_paid],
            "status": ctx.storage.subscription(sub_id).status}  # fmt: skip


def pay_online(ctx: Context, number: str, token: str, on: date) -> dict[str, Any]:
    """The buyer pays an open invoice with a card now; a subscription waiting for its
    first paid invoice (``first_invoice``) keeps the card and is charged automatically
    from then on."""
    from abonnement.engine.billing_run import collect

    attempt = ctx.storage.invoice_attempt(number, on)
    invoice = ctx.storage.invoice(number)
    if invoice is None:
        raise NotFound("invoice", number)
    if attempt is None or invoice["status"] != InvoiceStatus.OPEN:
        raise InvalidState(f"invoice {number} is not open")
    attempt = replace(attempt, token=token, method_type="card")
    finished = collect(ctx.storage, ctx.processor, [attempt], ctx.catalog.settings, on)
    _, result, outcome = finished[0] if finished else (None, None, None)
    if not (outcome and outcome.invoice_paid):
        code = result.failure_code if result else "timeout"
        deliver_due(ctx, on)
        raise PaymentDeclined(f"the payment was declined ({code})", code)
    for sub_id in ctx.storage.invoice_owners(number):  # a purchase's invoice has several
        sub = ctx.storage.subscription(sub_id)
        if sub is not None and sub.collection_mode == "first_invoice":
            ctx.storage.set_payment_method(sub_id, token, "card")
        ctx.storage.refresh_dues(sub_id, on)
    deliver_due(ctx, on)
    return {"number": number, "status": InvoiceStatus.PAID, "amount_paid": invoice["total"]}


def refund(ctx: Context, payment_id: int, amount: Any, on: date) -> dict[str, Any]:
    """Give back ``amount`` (text, default: everything not refunded yet) of a succeeded
    payment; the subscription is left as it is. ``{"invoice", "attempt", "amount",
    "currency"}``."""
    from decimal import Decimal

    from abonnement.engine.money import Money

    rows = ctx.storage.payments()
    row = next((p for p in rows if p["id"] == payment_id), None)
    if row is None:
        raise NotFound("payment", payment_id)
    if row["status"] != PaymentStatus.SUCCEEDED or row["amount"] <= 0:
        raise InvalidState(f"payment {payment_id} is not a succeeded charge")
    refunded = -sum((p["amount"] for p in rows if p["invoice_number"] == row["invoice_number"]
                     and p["status"] == "refunded"), Decimal(0))  # fmt: skip
    left = row["amount"] - refunded
    try:
        value = Decimal(amount) if amount is not None else left
    except ArithmeticError:
        raise InvalidInput(f"{amount!r} is not an amount") from None
    if not 0 < value <= left:
        most = Money(left, row["currency"]).format_amount()
        raise InvalidInput(f"at most {most} can be refunded for payment {payment_id}")
    money = Money(value, row["currency"]).rounded()
    key = f"{row['invoice_number']}/refund-{payment_id}-{money.amount}"
    result = ctx.processor.refund(charge_key=row["idempotency_key"],
                                   reference=row["reference"], amount=money,
                                   idempotency_key=key, on=on)  # fmt: skip
    if result.status != PaymentStatus.SUCCEEDED:
        raise CollectionError(f"the refund failed ({result.failure_code or result.status})")
    attempt = ctx.storage.record_refund(row["invoice_number"], money, row["method"], key,
                                         result.reference, on)  # fmt: skip
    deliver_due(ctx, on)
    return {"invoice": row["invoice_number"], "attempt": attempt,
            "amount": money.format_amount(), "currency": money.currency}  # fmt: skip


def retry(ctx: Context, payment_id: int, on: date) -> dict[str, Any]:
    """A manual retry of the invoice behind payment ``payment_id`` (at most
    ``settings.manual_retry_limit``), then delivery. ``{"invoice", "attempt", "status",
    "failure_code"}``."""
    from abonnement.engine.billing_run import collect

    rows = [p for p in ctx.storage.payments() if p["id"] == payment_id]
    if not rows:
        raise NotFound("payment", payment_id)
    number = rows[0]["invoice_number"]
    limit = ctx.catalog.settings.manual_retry_limit
    if ctx.storage.manual_tries(number) >= limit:
        raise InvalidState(f"invoice {number} has had its {limit} manual retries")
    attempt = ctx.storage.invoice_attempt(number, on)
    invoice = ctx.storage.invoice(number)
    if attempt is None or invoice is None or invoice["status"] != InvoiceStatus.OPEN:
        raise InvalidState(f"invoice {number} is not open")
    finished = collect(ctx.storage, ctx.processor, [attempt], ctx.catalog.settings, on)
    _, result, outcome = finished[0] if finished else (None, None, None)
    deliver_due(ctx, on)
    return {"invoice": number, "attempt": attempt.attempt,
            "status": outcome.payment_status if outcome else PaymentStatus.PENDING,
            "failure_code": result.failure_code if result else None}  # fmt: skip


def pay_invoice(
    ctx: Context, number: str, on: date, *, amount: Decimal | None = None, method: str = "manual"
) -> dict[str, Any]:
    """Record a payment made outside the processor (default: the amount due), then deliver.
    ``{"number", "status", "amount_paid"}``. ``NotFound`` or ``InvalidState`` (settled)."""
    invoice = ctx.storage.invoice(number)
    if invoice is None:
        raise NotFound("invoice", number)
    value = amount if amount is not None else invoice["total"] - invoice["amount_paid"]
    result = ctx.storage.pay_invoice(number, value, on, method)
    deliver_due(ctx, on)
    return result
