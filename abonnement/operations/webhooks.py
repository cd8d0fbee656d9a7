"""Processor webhooks: a verified event about one of our charges, recorded exactly once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date
from typing import Any

from abonnement.errors import NotFound, WebhookRefused
from abonnement.operations.context import Context
from abonnement.operations.delivery import deliver_due

__all__ = ["SECRET_ENV", "receive", "webhook_secret"]

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
    that succeeded after a timeout. Recorded once: an attempt already recorded is left as it
    is, and an event id seen before is refused. Then what that set off is delivered.

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
    if event.idempotency_key and event.result is not None:
        attempt = ctx.storage.open_attempt(event.idempotency_key)
        if attempt is not None:
            done = settle(ctx.storage, [(attempt, event.result)], ctx.catalog.settings, on)
            recorded = any(outcome is not None for _, _, outcome in done)
    if not ctx.storage.record_webhook(processor, event.id, event.type, on):
        # a concurrent delivery of the same event: the outcome is written once either way
        raise WebhookRefused(f"event {event.id} was received already")
    if recorded:
        deliver_due(ctx, on)
    return {"event": event.id, "type": event.type, "recorded": recorded}
