"""Buyer links used once, in SQL: one row per used update or pay link, by the SHA-256 of its
signed payload (never the token, so the table opens no link)."""

from __future__ import annotations

from datetime import date

from sqlalchemy.exc import IntegrityError

from abonnement.plugins.storage import tables as t
from abonnement.plugins.storage.database import Database

__all__ = ["Links"]


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
