"""What a database knows of itself (the ``meta`` table, migration 0007): its instance id and
where its billing timeline stands."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select, update

from abonnement.plugins.storage import tables as t

__all__ = ["advance_timeline", "instance_id", "timeline"]

_M = t.meta.c


def instance_id(conn: Any) -> str:
    """The random id the database was given when it was made (or upgraded to 0007)."""
    return conn.execute(select(_M.value).where(_M.name == "instance")).scalar_one()


def timeline(conn: Any) -> date | None:
    """The date the last billing run reached, or None before the first run."""
    value = conn.execute(select(_M.value).where(_M.name == "timeline")).scalar()
    return date.fromisoformat(value) if value else None


def advance_timeline(conn: Any, day: date) -> date:
    """Move the timeline to ``day`` unless it stands later already; returns where it stands.
    Two runs ending at once keep the later date: on PostgreSQL they take turns on the
    instance row (which always exists: the first run's timeline row does not, yet), and read
    the timeline after (SQLite: the transaction holds the write lock)."""
    if conn.dialect.name != "sqlite":
        conn.execute(select(_M.value).where(_M.name == "instance").with_for_update())
    value = conn.execute(select(_M.value).where(_M.name == "timeline")).scalar()
    if value is None:
        conn.execute(t.meta.insert().values(name="timeline", value=day.isoformat()))
        return day
    if date.fromisoformat(value) >= day:
        return date.fromisoformat(value)
    conn.execute(update(t.meta).where(_M.name == "timeline").values(value=day.isoformat()))
    return day
