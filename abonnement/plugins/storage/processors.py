"""What a payment processor plugin keeps in the database: its customer for each contact and
every charge request as it was sent (``engine.ports.ProcessorStore``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from abonnement.plugins.storage import tables as t
from abonnement.plugins.storage.database import Database

__all__ = ["ProcessorStore"]

_P, _R = t.processor_customers.c, t.processor_requests.c


class ProcessorStore:
    """The processor tables of one ``Database``."""

    def __init__(self, db: Database):
        self.db = db

    @contextmanager
    def _own(self) -> Iterator[Connection]:
        """A transaction committed on leaving, even inside ``holding``: on PostgreSQL the
        billing run holds one transaction around its processor calls, and what is written
        here must be durable before the request goes out (a crash must find it). SQLite
        holds no transaction there (a lock file), so its own ``tx`` commits at once."""
        if self.db.sqlite or self.db.held is None:
            with self.db.tx() as conn:
                yield conn
            return
        with self.db.engine.begin() as conn:
            yield conn

    def processor_customer(self, processor: str, contact_id: str) -> str | None:
        """The processor's customer id for the contact, or None."""
        query = select(_P.customer_id).where(_P.processor == processor,
                                             _P.contact_id == contact_id)  # fmt: skip
        with self._own() as conn:
            return conn.execute(query).scalar()

    def save_processor_customer(
        self, processor: str, contact_id: str, customer_id: str, on: date
    ) -> str:
        """Keep ``customer_id`` for the contact unless one is kept already; returns the one
        kept (of two racing, the first written)."""
        try:
            with self._own() as conn:
                conn.execute(insert(t.processor_customers).values(
                    processor=processor, contact_id=contact_id, customer_id=customer_id,
                    created_on=on))  # fmt: skip
            return customer_id
        except IntegrityError:
            kept = self.processor_customer(processor, contact_id)
            assert kept is not None  # the row that won the race
            return kept

    def processor_request(self, processor: str, key: str) -> dict[str, Any] | None:
        """``{"request", "reference", "sent_at"}`` of the request sent with ``key``, or None."""
        query = select(_R.request, _R.reference, _R.sent_at).where(
            _R.processor == processor, _R.key == key
        )
        with self._own() as conn:
            row = conn.execute(query).first()
        return dict(row._mapping) if row else None

    def save_processor_request(self, processor: str, key: str, request: str, sent_at: int) -> bool:
        """Keep the request about to be sent with ``key`` (committed before it is sent);
        False when one is kept for the key already (a repeat: the first stays)."""
        try:
            with self._own() as conn:
                conn.execute(insert(t.processor_requests).values(
                    processor=processor, key=key, request=request, sent_at=sent_at))  # fmt: skip
        except IntegrityError:
            return False
        return True

    def set_processor_reference(self, processor: str, key: str, reference: str) -> None:
        """Note the processor's id for what the request with ``key`` made."""
        with self._own() as conn:
            conn.execute(update(t.processor_requests)
                         .where(_R.processor == processor, _R.key == key)
                         .values(reference=reference))  # fmt: skip
