"""What storage keeps for config as code: which subscriptions the config declared, which ids
left a history behind, and the configs ``apply`` made true (for ``plan``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import select, union, update

from abonnement.plugins.storage import tables as t

__all__ = ["DeclaredMixin"]

_S, _C = t.subscriptions.c, t.applied_configs.c


class DeclaredMixin:
    """Mixed into ``SqlStorage``; uses its ``_tx``."""

    def declared_ids(self) -> set[str]:
        """The ids of the stored subscriptions that a config declared (``source`` declared)."""
        with self._tx() as conn:  # type: ignore[attr-defined]
            return set(conn.execute(select(_S.id).where(_S.source == "declared")).scalars())

    def subscriptions_named(self, ids: Sequence[str]) -> list[Any]:
        """The stored subscriptions among ``ids``, by id (the others do not exist)."""
        out = []
        for chunk in _chunks(sorted(set(ids))):
            out += self._load(_S.id.in_(chunk), order=_S.id)  # type: ignore[attr-defined]
        return out

    def mark_declared(self, ids: Sequence[str]) -> None:
        """Record that the config now declares these (made elsewhere before, same id)."""
        for chunk in _chunks(sorted(set(ids))):
            with self._tx() as conn:  # type: ignore[attr-defined]
                conn.execute(update(t.subscriptions).where(_S.id.in_(chunk))
                             .values(source="declared"))  # fmt: skip

    def with_history(self, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` that events or invoices name (a subscription deleted after it
        lived: its id is taken)."""
        found: set[str] = set()
        for chunk in _chunks(sorted(set(ids))):
            query = union(
                select(t.events.c.subject_id).where(t.events.c.subject_id.in_(chunk)),
                select(t.invoices.c.subscription_id).where(
                    t.invoices.c.subscription_id.in_(chunk)),
            )  # fmt: skip
            with self._tx() as conn:  # type: ignore[attr-defined]
                found.update(conn.execute(query).scalars())
        return found

    def record_config(self, version: str, applied_on: date, files: Mapping[str, str]) -> bool:
        """Keep the config an apply made true, unless it is the one kept last; returns
        whether a row was written."""
        with self._tx() as conn:  # type: ignore[attr-defined]
            last = conn.execute(
                select(_C.version).order_by(_C.id.desc()).limit(1)
            ).scalar_one_or_none()
            if last == version:
                return False
            conn.execute(t.applied_configs.insert().values(
                version=version, applied_on=applied_on, files=dict(files)))  # fmt: skip
            return True

    def applied_config(self) -> dict[str, Any] | None:
        """The config applied last: ``{"version", "applied_on", "files"}``, or None."""
        query = select(_C.version, _C.applied_on, _C.files).order_by(_C.id.desc()).limit(1)
        with self._tx() as conn:  # type: ignore[attr-defined]
            row = conn.execute(query).first()
        return dict(row._mapping) if row else None


def _chunks(ids: list[str], size: int = 1000) -> list[list[str]]:
    """``ids`` in lists short enough for one statement's parameters (SQLite's limit)."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]
