"""Single-use keys, in SQL: one row per used update or pay link, by the SHA-256 of its signed
payload (never the token, so the table opens no link), and one per recorded purchase, by the
SHA-256 of its purchase key (kind ``purchase``, subject its invoice)."""

from __future__ import annotations

import hashlib
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from abonnement.plugins.storage import tables as t
from abonnement.plugins.storage.database import Database

__all__ = ["Links", "key_digest"]


def key_digest(key: str) -> str:
    """The SHA-256 (hex) a purchase key is kept under."""
    return hashlib.sha256(key.encode()).hexdigest()


class Links:
    """The used links of one ``Database``."""

    def __init__(self, db: Database):
        self.db = db

    def use_link(self, digest: str, kind: str, subject: str, on: date) -> bool:
        """Record the use of the link whose payload has SHA-256 ``digest``: True the first
        time, False if it was used already (the primary key decides a race between two)."""
        try:
            with self.db.tx() as conn:
                conn.execute(t.used_links.insert().values(digest=digest, kind=kind,
                                                          subject=subject, used_on=on))  # fmt: skip
        except IntegrityError:
            return False
        return True

    def release_link(self, digest: str) -> None:
        """Forget a use ``use_link`` recorded (the payment it was for was declined)."""
        with self.db.tx() as conn:
            conn.execute(t.used_links.delete().where(t.used_links.c.digest == digest))

    def purchase_invoice(self, key: str) -> str | None:
        """The invoice of the purchase recorded under ``key``, or None."""
        query = select(t.used_links.c.subject).where(
            t.used_links.c.digest == key_digest(key), t.used_links.c.kind == "purchase"
        )
        with self.db.tx() as conn:
            return conn.execute(query).scalar_one_or_none()
