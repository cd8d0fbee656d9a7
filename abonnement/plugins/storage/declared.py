"""The configs ``apply`` made true, in SQL (for ``plan``: the database billed as the last
applied config would). Which subscriptions a config declared is theirs: ``Subscriptions``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from sqlalchemy import select

from abonnement.engine.records import AppliedConfig
from abonnement.plugins.storage import tables as t
from abonnement.plugins.storage.database import Database

__all__ = ["Configs"]

_C = t.applied_configs.c


class Configs:
    """The applied configs of one ``Database``."""

    def __init__(self, db: Database):
        self.db = db

    def record_config(self, version: str, applied_on: date, files: Mapping[str, str]) -> bool:
        """Keep the config an apply made true, unless it is the one kept last; returns
        whether a row was written."""
        with self.db.tx() as conn:
            last = conn.execute(
                select(_C.version).order_by(_C.id.desc()).limit(1)
            ).scalar_one_or_none()
            if last == version:
                return False
            conn.execute(t.applied_configs.insert().values(
                version=version, applied_on=applied_on, files=dict(files)))  # fmt: skip
            return True

    def applied_config(self) -> AppliedConfig | None:
        """The config applied last, or None."""
        query = select(_C.version, _C.applied_on, _C.files).order_by(_C.id.desc()).limit(1)
        with self.db.tx() as conn:
            row = conn.execute(query).first()
        return AppliedConfig(row.version, row.applied_on, dict(row.files)) if row else None
