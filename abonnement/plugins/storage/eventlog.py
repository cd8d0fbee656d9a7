"""What ``abonnement events list``, ``deliveries list|retry`` and processor disputes ask of SQL.

Kept beside the outbox (``outbox.py``) rather than in it: the outbox is the hot path of every
run; these are the operator's look at it, a manual retry, and disputes a webhook reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from abonnement.engine.events import numbered
from abonnement.engine.money import Money
from abonnement.engine.records import DisputeRecord, EventRecord
from abonnement.engine.status import DeliveryStatus
from abonnement.plugins.storage import tables as t
from abonnement.plugins.storage.database import Database
from abonnement.plugins.storage.rows import insert_events
from abonnement.plugins.storage.subscriptions import Subscriptions, event_record

__all__ = ["EventLog"]

_E, _D, _P, _X = t.events.c, t.deliveries.c, t.payments.c, t.disputes.c
_S = t.subscriptions.c


class EventLog:
    """The event log, manual delivery retries and disputes of one ``Database``."""

    def __init__(self, db: Database, subscriptions: Subscriptions):
        self.db = db
        self.subscriptions = subscriptions

    def event_log(self, event_type: str | None = None, since: date | None = None,
                  subject_id: str | None = None) -> list[EventRecord]:  # fmt: skip
        """Stored events, in the order they were written: of one type (a trailing ``*``
        matches a prefix: ``invoice.*``), on or after ``since``, of one subject."""
        query = select(t.events).order_by(_E.id)
        if event_type and event_type.endswith("*"):
            query = query.where(_E.type.startswith(event_type[:-1], autoescape=True))
        elif event_type:
            query = query.where(_E.type == event_type)
        if since is not None:
            query = query.where(_E.on_date >= since)
        if subject_id:
            query = query.where(_E.subject_id == subject_id)
        with self.db.tx() as conn:
            return [event_record(r) for r in conn.execute(query)]

    def retry_deliveries(self, keys: Sequence[str] | None) -> list[str]:
        """Make deliveries due again on the next outbox pass: those of ``keys`` that are
        failed or pending, or every failed one when ``keys`` is None. Their tries so far
        stay counted (one more failure gives up again). The keys made due, in key order."""
        live = (DeliveryStatus.FAILED, DeliveryStatus.PENDING)
        where = _D.status.in_(live) if keys is not None else _D.status == DeliveryStatus.FAILED
        if keys is not None:
            where = where & _D.key.in_(list(keys))
        with self.db.tx() as conn:
            found = sorted(conn.execute(select(_D.key).where(where)).scalars())
            if found:
                conn.execute(update(t.deliveries).where(_D.key.in_(found)).values(
                    status=DeliveryStatus.PENDING, next_try_on=None))  # fmt: skip
        return found

    def delivery_status(self, key: str) -> str | None:
        """The status of the delivery ``key``, or None when there is none."""
        with self.db.tx() as conn:
            return conn.execute(select(_D.status).where(_D.key == key)).scalar()

    # -- disputes ---------------------------------------------------------------------------
    def payment_by_key(self, key: str) -> tuple[int, str] | None:
        """(payment id, invoice number) of the charge made with idempotency ``key``."""
        with self.db.tx() as conn:
            row = conn.execute(
                select(_P.id, _P.invoice_number).where(_P.idempotency_key == key)
            ).first()
        return (row.id, row.invoice_number) if row else None

    def record_dispute(self, dispute: DisputeRecord, subscription_id: str | None) -> bool:
        """Store ``dispute`` and, in the same transaction, a ``payment.disputed`` event of
        ``subscription_id`` (when the invoice has one); False (nothing written) when this
        processor's dispute id is stored already."""
        payload = {"invoice": dispute.invoice_number, "payment": dispute.payment_id,
                   "dispute": dispute.dispute_id, "amount": str(dispute.amount.amount),
                   "currency": dispute.amount.currency, "reason": dispute.reason}  # fmt: skip
        try:
            with self.db.tx() as conn:
                conn.execute(insert(t.disputes).values(
                    processor=dispute.processor, dispute_id=dispute.dispute_id,
                    payment_id=dispute.payment_id, invoice_number=dispute.invoice_number,
                    amount=dispute.amount.amount, currency=dispute.amount.currency,
                    reason=dispute.reason, opened_on=dispute.opened_on,
                ))  # fmt: skip
                found = []
                if subscription_id:  # its event count, locked: the event is numbered on it
                    found = self.subscriptions.load(_S.id == subscription_id, conn=conn,
                                                    lock=True, items=False)  # fmt: skip
                if found:
                    sub = found[0]
                    said = numbered(sub.id, dispute.opened_on, sub.event_seq,
                                    ("payment.disputed", payload))  # fmt: skip
                    self.subscriptions.update(conn, [replace(sub, event_seq=said[-1].seq)],
                                              ("event_seq",))  # fmt: skip
                    insert_events(self.db.codec, conn, said)
        except IntegrityError:
            return False  # recorded before (or by a concurrent delivery of the same news)
        return True

    def disputes(self, invoice_number: str) -> list[DisputeRecord]:
        """The disputes of one invoice, oldest first."""
        query = select(t.disputes).where(_X.invoice_number == invoice_number)
        with self.db.tx() as conn:
            rows = conn.execute(query.order_by(_X.opened_on, _X.dispute_id)).all()
        return [_dispute(r) for r in rows]


def _dispute(row: Any) -> DisputeRecord:
    return DisputeRecord(row.processor, row.dispute_id, row.payment_id, row.invoice_number,
                         Money(row.amount, row.currency), row.reason, row.opened_on)  # fmt: skip
