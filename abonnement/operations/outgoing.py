"""Outgoing webhooks: one signed POST per domain event to each endpoint of ``settings.webhooks``.

They ride the outbox like any message: when an event is handed over, one delivery per endpoint
that wants its type is written (channel ``webhooks``, template ``event``, recipient the URL) in
the same transaction, so it is recorded, tried again with backoff and listed by
``abonnement deliveries list``. Sending is POSTing the event as ``event_json`` shapes it (the
shape of ``abonnement events list --json``), signed with Standard Webhooks (``signing.py``);
``webhook-id`` is the event's stable id, the same on every try and for every endpoint.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from abonnement import signing
from abonnement.engine.records import DeliveryRecord, EventRecord, NewDelivery

if TYPE_CHECKING:
    from abonnement.engine.catalog import Settings
    from abonnement.operations.context import Context

__all__ = ["CHANNEL", "TEMPLATE", "event_deliveries", "event_id", "event_json", "send"]

CHANNEL = "webhooks"  # the deliveries' channel: not a notifier, sent by ``send``
TEMPLATE = "event"  # the whole event, not a rendered message


def event_id(instance_id: str, event: EventRecord) -> str:
    """The event's stable id (``webhook-id``, and ``id`` in JSON): unique across databases,
    the same every time it is sent."""
    return f"evt_{instance_id}_{event.id}"


def event_json(event: EventRecord, instance_id: str) -> dict[str, Any]:
    """An event as ``abonnement events list --json`` and the webhooks show it:
    ``{"id", "type", "subject_id", "seq", "date", "data"}`` — ``data`` is what the engine
    recorded (amounts are decimal strings, dates ISO)."""
    return {
        "id": event_id(instance_id, event),
        "type": event.type,
        "subject_id": event.subject_id,
        "seq": event.seq,
        "date": event.on_date.isoformat(),
        "data": dict(event.payload),
    }


def event_deliveries(settings: Settings, event: EventRecord) -> list[NewDelivery]:
    """The deliveries that send ``event`` to each endpoint that wants its type; each key
    names the event and the endpoint, so asking twice writes one."""
    wanted = [endpoint.url for endpoint in settings.webhooks if endpoint.wants(event.type)]
    key = f"{event.id}/{TEMPLATE}/{{}}/{CHANNEL}"
    return [NewDelivery(key.format(_digest(url)), event.id, CHANNEL, TEMPLATE, url, "settings")
            for url in wanted]  # fmt: skip


def send(ctx: Context, row: DeliveryRecord) -> None:
    """POST the event of one ``webhooks`` delivery to its URL, signed; raises what the
    request raised (the outbox records it and tries again later)."""
    settings = ctx.catalog.settings
    instance = ctx.storage.instance_id()
    body = json.dumps(event_json(row.event, instance), sort_keys=True,
                      ensure_ascii=False, default=str).encode()  # fmt: skip
    signing.post(row.recipient, body, event_id(instance, row.event), signing.signing_secret(),
                 timeout=settings.webhook_timeout, retries=settings.webhook_retries)  # fmt: skip


def _digest(url: str) -> str:
    # keys stay short whatever the URL's length; the URL itself is the delivery's recipient
    return hashlib.sha256(url.encode()).hexdigest()[:16]
