"""The built-in storage plugin: SQLAlchemy (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from abonnement.plugins import hookimpl

if TYPE_CHECKING:
    from abonnement.engine.ports import Storage

SCHEMES = ("sqlite", "postgresql")


@hookimpl(trylast=True)
def abonnement_open_storage(url: str, migrate: bool = True) -> Storage | None:
    """``SqlStorage`` for ``sqlite:`` and ``postgresql:`` URLs (any driver)."""
    if url.split(":", 1)[0].split("+", 1)[0] not in SCHEMES:
        return None
    from abonnement.plugins.storage.sql import SqlStorage  # SQLAlchemy loads only when used

    return SqlStorage(url, migrate=migrate)
