"""The outbox as an operator sees it: the events the engine recorded, the deliveries they
made (messages through notifiers, POSTs to webhook endpoints) and a manual retry of those
given up. The faces: ``abonnement events list``, ``abonnement deliveries list|retry`` and
``/api/v1/events``, ``/api/v1/deliveries``."""

from __future__ import annotations

from datetime import date
from typing import Any

from abonnement.engine.records import DeliveryRecord
from abonnement.engine.status import DeliveryStatus
from abonnement.errors import InvalidInput, InvalidState, NotFound
from abonnement.operations.context import Context
from abonnement.operations.delivery import deliver_due
from abonnement.operations.outgoing import event_id, event_json

__all__ = ["STATUSES", "delivery_json", "list_deliveries", "list_events", "retry"]

STATUSES = tuple(s.value for s in DeliveryStatus)


def list_events(ctx: Context, *, event_type: str | None = None, since: date | None = None,
                subscription_id: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Every event recorded (of ``event_type``, a trailing ``*`` matching a prefix; on or
    after ``since``; of one subscription), oldest first, as ``event_json`` shapes them."""
    instance = ctx.storage.instance_id()
    rows = ctx.storage.event_log(event_type, since, subscription_id)
    return [event_json(row, instance) for row in rows]


def delivery_json(row: DeliveryRecord, instance_id: str) -> dict[str, Any]:
    """One delivery: ``{"id", "event_id", "event_type", "channel", "template",
    "recipient", "status", "attempts", "next_try_on", "sent_on", "error"}`` — ``id`` is
    what ``deliveries retry`` takes; ``next_try_on`` is set while a failed try waits."""
    return {
        "id": row.key,
        "event_id": event_id(instance_id, row.event),
        "event_type": row.event.type,
        "channel": row.channel,
        "template": row.template,
        "recipient": row.recipient,
        "status": str(row.status),
        "attempts": row.attempts,
        "next_try_on": row.next_try_on.isoformat() if row.next_try_on else None,
        "sent_on": row.sent_on.isoformat() if row.sent_on else None,
        "error": row.error,
    }


def list_deliveries(ctx: Context, status: str | None = None) -> list[dict[str, Any]]:
    """Every delivery (of one status: pending, sent, failed or skipped), by event, as
    ``delivery_json`` shapes it."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"no delivery status `{status}`; one of {', '.join(STATUSES)}",
                           field="status")  # fmt: skip
    instance = ctx.storage.instance_id()
    return [delivery_json(row, instance) for row in ctx.storage.deliveries(status)]


def retry(ctx: Context, on: date, delivery_id: str | None = None) -> dict[str, Any]:
    """Try again now the delivery ``delivery_id`` (failed, or pending a later try), or every
    failed one when it is None; then work the outbox as of ``on``. ``NotFound`` for an
    unknown id, ``InvalidState`` for one sent already.

    Returns ``{"retried": [delivery_json …]}`` as they stand after the try: ``sent``, or
    ``pending``/``failed`` with the error."""
    store = ctx.storage
    ctx.notifiers()  # a notifier that cannot start refuses before anything changes
    if delivery_id is not None:
        status = store.delivery_status(delivery_id)
        if status is None:
            raise NotFound("delivery", delivery_id, "see `abonnement deliveries list`")
        if status == DeliveryStatus.SENT:
            raise InvalidState(f"delivery `{delivery_id}` was sent already")
        if status == DeliveryStatus.SKIPPED:
            raise InvalidState(f"delivery `{delivery_id}` had nothing to send when its day "
                               "came (nobody to tell, or its invoice was paid)")  # fmt: skip
    keys = store.retry_deliveries([delivery_id] if delivery_id is not None else None)
    deliver_due(ctx, on)
    instance = store.instance_id()
    wanted = set(keys)
    rows = [row for row in store.deliveries() if row.key in wanted]
    return {"retried": [delivery_json(row, instance) for row in sorted(rows, key=_key)]}


def _key(row: DeliveryRecord) -> str:
    return row.key
