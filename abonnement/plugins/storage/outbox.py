"""The transactional outbox's consumer side: events not yet handed to notifications, and the
deliveries (one per message and channel) with their retries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import select, update

from abonnement.engine.events import Event
from abonnement.engine.status import DeliveryStatus
from abonnement.plugins.storage import tables as t

__all__ = ["OutboxMixin"]

_E, _D, _S = t.events.c, t.deliveries.c, t.subscriptions.c


class OutboxMixin:
    """Mixed into ``SqlStorage``; uses its ``_tx``, ``_insert_events`` and
    ``_update_subscriptions``."""

    def undelivered_events(self, limit: int = 500) -> list[dict[str, Any]]:
        """The oldest events not handed over yet, in the order they were written."""
        query = select(t.events).where(_E.delivered.is_(False)).order_by(_E.id).limit(limit)
        with self._tx() as conn:  # type: ignore[attr-defined]
            return [dict(r._mapping) for r in conn.execute(query)]

    def hand_over(
        self,
        event_ids: Sequence[int],
        deliveries: Sequence[dict[str, Any]],
        changed: Sequence[Any] = (),
        events: Sequence[Event] = (),
        based_on: Mapping[str, int] | None = None,
    ) -> bool:
        """In one transaction: the deliveries the events ask for, what their workflows changed
        (subscriptions and the events recording it), and the events marked handed over.

        ``based_on`` gives each changed subscription's event count when it was read: if another
        change came in since, nothing is written and the answer is False (read again, retry)."""
        with self._tx() as conn:  # type: ignore[attr-defined]
            if based_on:
                query = select(_S.id, _S.event_seq).where(_S.id.in_(list(based_on)))
                if not self.sqlite:  # type: ignore[attr-defined]
                    query = query.with_for_update()
                now = dict(conn.execute(query).all())
                if any(now.get(sub_id) != seq for sub_id, seq in based_on.items()):
                    return False
            keys = [d["key"] for d in deliveries]
            known = set()
            if keys:
                known = set(conn.execute(select(_D.key).where(_D.key.in_(keys))).scalars())
            fresh = [d for d in deliveries if d["key"] not in known]
            if fresh:
                conn.execute(t.deliveries.insert(), [
                    {"status": DeliveryStatus.PENDING, "attempts": 0, **d} for d in fresh
                ])  # fmt: skip
            self._update_subscriptions(conn, changed)  # type: ignore[attr-defined]
            self._insert_events(conn, events)  # type: ignore[attr-defined]
            if event_ids:
                conn.execute(update(t.events).where(_E.id.in_(event_ids)).values(delivered=True))
        return True

    def due_deliveries(self, on: date, limit: int = 500, after: str = "") -> list[dict[str, Any]]:
        """Pending deliveries to try on ``on``, by key, from after ``after``."""
        query = (
            select(
                t.deliveries,
                t.events.c.type,
                t.events.c.subject_id,
                t.events.c.on_date,
                t.events.c.payload,
                t.events.c.seq,
            )
            .join(t.events, t.events.c.id == _D.event_id)
            .where(
                _D.status == DeliveryStatus.PENDING,
                (_D.next_try_on.is_(None)) | (_D.next_try_on <= on),
                _D.key > after,
            )
            .order_by(_D.key)
            .limit(limit)
        )
        with self._tx() as conn:  # type: ignore[attr-defined]
            return [dict(r._mapping) for r in conn.execute(query)]

    def delivery_result(
        self, key: str, on: date, *, error: str | None = None, retry_on: date | None = None
    ) -> None:
        """Record one try: sent (no ``error``), to try again on ``retry_on``, or given up."""
        row = t.deliveries.c
        values: dict[str, Any] = {"attempts": row.attempts + 1}
        if error is None:
            values |= {
                "status": DeliveryStatus.SENT,
                "sent_on": on,
                "error": None,
                "next_try_on": None,
            }
        else:
            status = DeliveryStatus.PENDING if retry_on else DeliveryStatus.FAILED
            values |= {"status": status, "error": error[:1000], "next_try_on": retry_on}
        with self._tx() as conn:  # type: ignore[attr-defined]
            conn.execute(update(t.deliveries).where(row.key == key).values(values))

    def deliveries(self, status: str | None = None) -> list[dict[str, Any]]:
        query = select(t.deliveries).order_by(_D.event_id, _D.key)
        if status:
            query = query.where(_D.status == status)
        with self._tx() as conn:  # type: ignore[attr-defined]
            return [dict(r._mapping) for r in conn.execute(query)]
