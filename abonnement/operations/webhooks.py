"""Processor webhooks: a verified event about one of our charges, recorded exactly once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from abonnement.engine.money import Money
from abonnement.errors import NotFound, WebhookRefused
from abonnement.operations.context import Context
from abonnement.operations.delivery import deliver_due
from abonnement.plugins.interfaces import Dispute

__all__ = ["SECRET_ENV", "disputes", "invoice_detail", "receive", "webhook_secret"]

SECRET_ENV = "ABONNEMENT_WEBHOOK_SECRET"


def webhook_secret(ctx: Context, processor: str) -> str | None:
    """The secret ``processor`` signs its webhooks with: ``ABONNEMENT_WEBHOOK_SECRET``, else
    ``webhook_secret`` in its settings block, else None."""
    block = ctx.catalog.settings.plugin_settings.get(f"payments.{processor}", {})
    return os.environ.get(SECRET_ENV) or block.get("webhook_secret")


def receive(
    ctx: Context, processor: str, headers: Mapping[str, str], body: bytes, on: date
) -> dict[str, Any]:
    """Verify a webhook of ``processor`` (through ``abonnement_parse_webhook``) and record
    what it says about one of our charges as of ``on``: a bank debit settled or failed, a charge
    that succeeded after a timeout, a dispute (``payment.disputed``). Recorded once: an attempt
    already recorded is left as it is, a dispute id stored is not stored again, and an event id
    seen before is refused. Then what that set off is delivered.

    Returns ``{"event", "type", "recorded"}`` (``recorded``: the charge's outcome was written
    now). ``NotFound`` for a processor the account does not use; ``WebhookRefused`` for an
    unsigned, forged, malformed or replayed event — nothing changes then."""
    from abonnement.engine.billing_run import settle

    if processor != ctx.catalog.settings.processor:
        raise NotFound("processor", processor, "webhooks go to the account's processor")
    lowered = {k.lower(): v for k, v in headers.items()}
    event = ctx.plugins.parse_webhook(processor, lowered, body, webhook_secret(ctx, processor))
    if event is None:
        raise WebhookRefused("the webhook is not signed with the webhook secret, or malformed")
    if ctx.storage.webhook_received(processor, event.id):
        raise WebhookRefused(f"event {event.id} was received already")
    recorded = False
    number: str | None = None  # the invoice the event is about
    if event.idempotency_key and event.dispute is not None:
        recorded = _dispute(ctx, processor, event.idempotency_key, event.dispute, on)
        found = ctx.storage.payment_by_key(event.idempotency_key)
        number = found[1] if found else None
    elif event.idempotency_key and event.result is not None:
        attempt = ctx.storage.open_attempt(event.idempotency_key)
        if attempt is not None:
            done = settle(ctx.storage, [(attempt, event.result)], ctx.catalog.settings, on)
            recorded = any(outcome is not None for _, _, outcome in done)
            number = attempt.invoice_number
    if not ctx.storage.record_webhook(processor, event.id, event.type, on):
        # a concurrent delivery of the same event: the outcome is written once either way
        raise WebhookRefused(f"event {event.id} was received already")
    if recorded and number:  # what this event set off; the processor waits for the answer
        deliver_due(ctx, on, [*ctx.storage.invoice_owners(number), number])
    return {"event": event.id, "type": event.type, "recorded": recorded}


def _dispute(ctx: Context, processor: str, key: str, dispute: Dispute, on: date) -> bool:
    """Record a dispute about the charge made with ``key`` (once per dispute id) with its
    ``payment.disputed`` event; whether it was recorded now. A key we never charged with is
    news about someone else's charge: refused, nothing changes."""
    from abonnement.engine.records import DisputeRecord

    found = ctx.storage.payment_by_key(key)
    if found is None:
        raise WebhookRefused(f"the disputed charge `{key}` is not one of ours")
    payment_id, number = found
    (payment,) = [p for p in ctx.storage.payments(invoice_number=number) if p.id == payment_id]
    amount = payment.amount
    if dispute.amount is not None:
        try:
            amount = Money(Decimal(dispute.amount), amount.currency)
        except (InvalidOperation, ValueError):
            raise WebhookRefused(f"the disputed amount {dispute.amount!r} is no number") from None
    owners = ctx.storage.invoice_owners(number)
    record = DisputeRecord(processor, dispute.id, payment_id, number, amount, dispute.reason, on)
    return ctx.storage.record_dispute(record, owners[0] if owners else None)


def disputes(ctx: Context, invoice_number: str) -> list[dict[str, Any]]:
    """The disputes of one invoice, oldest first: ``{"id", "processor", "payment_id",
    "amount", "currency", "reason", "opened_on"}`` (``invoices show`` adds them)."""
    return [_dispute_json(d) for d in ctx.storage.disputes(invoice_number)]


def _dispute_json(d: Any) -> dict[str, Any]:
    return {"id": d.dispute_id, "processor": d.processor, "payment_id": d.payment_id,
            "amount": d.amount.format_amount(), "currency": d.amount.currency,
            "reason": d.reason, "opened_on": d.opened_on.isoformat()}  # fmt: skip


def invoice_detail(ctx: Context, number: str) -> dict[str, Any]:
    """``invoices show``: the invoice as ``invoice_json`` shapes it, plus ``disputes`` and
    ``credit_notes`` (``credit_note_json``) with ``refunded`` (their sum) when it has any
    (only then: an invoice's JSON is the same everywhere else)."""
    from abonnement.operations import queries
    from abonnement.views import credit_note_json, invoice_json

    payload = invoice_json(queries.invoice(ctx, number))
    contested = disputes(ctx, payload["number"])
    if contested:
        payload["disputes"] = contested
    notes = ctx.storage.credit_notes(payload["number"])
    if notes:
        payload["credit_notes"] = [credit_note_json(n) for n in notes]
        total = sum((n.amount for n in notes[1:]), notes[0].amount)
        payload["refunded"] = total.format_amount()
    return payload
