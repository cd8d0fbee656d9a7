"""The built-in storage plugin: SQLAlchemy (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

from typing import Any

from abonnement.plugins import hookimpl

SCHEMES = ("sqlite", "postgresql")


@hookimpl(trylast=True)
def abonnement_open_storage(url: str, migrate: bool = True) -> Any:
    if url.split(":", 1)[0].split("+", 1)[0] not in SCHEMES:
        return None
    from abonnement.plugins.storage.sql import SqlStorage  # SQLAlchemy loads only when used

    return SqlStorage(url, migrate=migrate)
