"""Subscriptions in SQL: rows in and out, written back column by column, and their history.

``Subscriptions`` is the one place that reads and writes the ``subscriptions`` and
``subscription_items`` tables; the other repositories (billing, payments, outbox) call its
``load`` and ``update`` inside their own transactions. A row keeps the engine's
``next_event_on`` (what the billing run claims by) next to the reminder lead it was computed
with: both come from the ``Subscription`` value as given, never from settings held here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date
from decimal import Decimal
from itertools import groupby
from operator import attrgetter
from typing import Any

from sqlalchemy import JSON, Connection, Date, bindparam, null, select, union, update

from abonnement.engine.analytics import History, Revision
from abonnement.engine.events import Event
from abonnement.engine.records import EventRecord
from abonnement.engine.schedule import Frequency
from abonnement.engine.subscriptions import BILLABLE, Step, Subscription, mrr_basis
from abonnement.errors import NotFound
from abonnement.plugins.storage import tables as t
from abonnement.plugins.storage.database import Database, same
from abonnement.plugins.storage.rows import (
    ITEM_COLUMNS,
    SUBSCRIPTION_COLUMNS,
    fetch,
    insert_events,
    pending_row,
    raw_select,
    to_json,
)

__all__ = ["STEPPED", "Subscriptions", "item_rows", "subscription_row"]

_SLICE = 2000  # subscriptions (or events) whose rows are built and written at once

_S, _ITEM = t.subscriptions.c, t.subscription_items.c
_ITEMS_OF = (raw_select(t.subscription_items, ITEM_COLUMNS)
             .where(_ITEM.subscription_id.in_(bindparam("ids", expanding=True)))
             .order_by(_ITEM.subscription_id, _ITEM.position))  # fmt: skip
_LIVE = tuple(str(s) for s in BILLABLE)  # the statuses whose next event reads the lead

_UPDATED = (
    "status", "next_index", "open_due_on", "next_event_on", "event_seq", "canceled_on", "owner",
    "properties", "payment_method_id", "payment_token", "payment_type", "skipped", "cancel_on",
    "reminded", "pending_lines", "rebase_on", "rebase_index", "anchor", "reminder_days",
)  # fmt: skip
STEPPED = (
    "status",
    "next_index",
    "open_due_on",
    "next_event_on",
    "event_seq",
    "canceled_on",
    "reminded",
    "pending_lines",
    "reminder_days",
)  # what ``step`` changes
SCHEDULED = ("reminder_days", "next_event_on")  # what a reschedule changes
# what a declaration defines, beside the changeable columns (``replace_items``)
_DEFINED = (
    *_UPDATED, "contact_id", "company_id", "billing_contact_id", "currency", "frequency",
    "payments", "collection_mode", "payment_terms", "invoice_creation", "invoice_settings",
    "deals",
)  # fmt: skip

_COLUMN: dict[str, Any] = {  # how updates read a column's value
    **{name: attrgetter(name) for name in (*_DEFINED, "id")},
    "properties": lambda s: dict(s.properties) or None,
    "pending_lines": lambda s: [pending_row(i) for i in s.pending] or None,
    "frequency": lambda s: s.frequency.iso,
    "invoice_settings": lambda s: _json(dict(s.invoice_settings)) or None,
    "deals": lambda s: list(s.deals) or None,
}

_HISTORY_EVENTS = (
    "subscription.created",
    "subscription.changed",
    "subscription.status_changed",
    "subscription.cancel_scheduled",
)


class Subscriptions:
    """The subscriptions of one ``Database``."""

    def __init__(self, db: Database):
        self.db = db
        self._updates: dict[tuple[str, ...], tuple[Any, tuple, list]] = {}  # per column set

    # -- reads -----------------------------------------------------------------------------
    def load(
        self, where: Any = None, order: Any = None, limit: int | None = None,
        conn: Connection | None = None, lock: bool = False, items: bool = True,
    ) -> list[Subscription]:  # fmt: skip
        """Subscriptions matching ``where``; ``lock`` waits for, then holds, their rows
        (PostgreSQL); ``items=False`` leaves their items out (a write of standing only)."""
        query = raw_select(t.subscriptions, SUBSCRIPTION_COLUMNS)
        if where is not None:
            query = query.where(where)
        if order is not None:
            query = query.order_by(order)
        if limit:
            query = query.limit(limit)
        if lock and not self.db.sqlite:
            query = query.with_for_update()
        with self.db.tx() if conn is None else same(conn) as c:
            return self.decode(c, fetch(c, query), items=items)

    def decode(
        self, conn: Connection, rows: list[Any], *, items: bool = True
    ) -> list[Subscription]:
        """Subscriptions from rows of ``SUBSCRIPTION_COLUMNS``, with their items."""
        codec = self.db.codec
        found: dict[str, list[Any]] = {}
        if rows and items:
            for item in fetch(conn, _ITEMS_OF, {"ids": [r[0] for r in rows]}):
                found.setdefault(item[0], []).append(item)
        return [codec.subscription(row, found.get(row[0], ())) for row in rows]

    def subscription(self, sub_id: str) -> Subscription | None:
        found = self.load(_S.id == sub_id)
        return found[0] if found else None

    def subscriptions(self, status: str | None = None) -> list[Subscription]:
        return self.load(_S.status == status if status else None, order=_S.id)

    # -- writes ----------------------------------------------------------------------------
    def insert(
        self, subs: Sequence[Subscription], source: str, events: Sequence[Event] = (),
        conn: Connection | None = None,
    ) -> None:  # fmt: skip
        if not subs:
            return
        with self.db.tx() if conn is None else same(conn) as c:
            # in slices, one transaction: the rows of 100,000 declared subscriptions at once
            # were a quarter of an apply's peak memory
            for at in range(0, len(subs), _SLICE):
                part = subs[at : at + _SLICE]
                c.execute(t.subscriptions.insert(), [subscription_row(s, source) for s in part])
                c.execute(t.subscription_items.insert(),
                          [row for s in part for row in item_rows(s)])  # fmt: skip
            for at in range(0, len(events), _SLICE):
                insert_events(self.db.codec, c, events[at : at + _SLICE])

    def replace_items(self, subs: Sequence[Subscription], events: Sequence[Event] = ()) -> None:
        """New definitions (items, parties, collection and invoice settings, terms) for
        existing subscriptions, as ``apply`` makes them; billing state is written back as
        given."""
        if not subs:
            return
        with self.db.tx() as conn:
            ids = [s.id for s in subs]
            conn.execute(t.subscription_items.delete().where(_ITEM.subscription_id.in_(ids)))
            conn.execute(t.subscription_items.insert(),
                         [row for s in subs for row in item_rows(s)])  # fmt: skip
            self.update(conn, subs, _DEFINED)
            insert_events(self.db.codec, conn, events)

    def change(self, sub_id: str, change: Callable[[Subscription], Step]) -> Subscription:
        """Apply ``change(subscription) -> Step`` under a lock, with its events."""
        with self.db.tx() as conn:
            found = self.load(_S.id == sub_id, conn=conn, lock=True)
            if not found:
                raise NotFound("subscription", sub_id)
            result = change(found[0])
            sub = result.subscription
            self.update(conn, [sub])
            if sub.items != found[0].items:
                conn.execute(t.subscription_items.delete().where(_ITEM.subscription_id == sub_id))
                conn.execute(t.subscription_items.insert(), item_rows(sub))
            if sub.contact_id != found[0].contact_id:
                conn.execute(update(t.subscriptions).where(_S.id == sub_id)
                             .values(contact_id=sub.contact_id))  # fmt: skip
            insert_events(self.db.codec, conn, result.events)
        return sub

    def delete(self, sub_id: str) -> None:
        """Remove a subscription and its items; its invoices, payments and history stay."""
        with self.db.tx() as conn:
            conn.execute(t.subscription_items.delete().where(_ITEM.subscription_id == sub_id))
            conn.execute(t.subscriptions.delete().where(_S.id == sub_id))

    def set_payment_method(self, subscription_id: str, token: str, method_type: str) -> None:
        with self.db.tx() as conn:
            conn.execute(
                update(t.subscriptions)
                .where(_S.id == subscription_id)
                .values(
                    payment_token=token,
                    payment_type=method_type,
                    collection_mode="automatic",
                    declared_hash=null(),  # a definition written outside apply
                )
            )

    def reschedule(
        self, reminder_days: int, limit: int,
        work: Callable[[Sequence[Subscription]], Sequence[Subscription]],
    ) -> int:  # fmt: skip
        """Claim live subscriptions stored with another lead, store what ``work`` makes of
        their schedule (``BillingStore.reschedule``)."""
        lead = _S.reminder_days
        query = (
            raw_select(t.subscriptions, SUBSCRIPTION_COLUMNS)
            .where(_S.status.in_(_LIVE), lead.is_(None) | (lead != reminder_days))
            .order_by(_S.id)
            .limit(limit)
        )
        if not self.db.sqlite:
            query = query.with_for_update(skip_locked=True)  # a worker holding it stamps it
        with self.db.tx() as conn:
            subs = self.decode(conn, fetch(conn, query), items=False)
            self.update(conn, work(subs), SCHEDULED)
        return len(subs)

    def update(
        self, conn: Connection, subs: Sequence[Subscription], columns: tuple[str, ...] = ()
    ) -> None:
        """Write ``subs`` back: every changeable column, or only ``columns`` (the billing run
        knows what a step or a payment outcome can change)."""
        if not subs:
            return
        columns = columns or _UPDATED
        if columns not in self._updates:
            statement = (
                update(t.subscriptions)
                .where(_S.id == bindparam("b_id"))
                .values({name: bindparam(f"b_{name}") for name in columns})
            )
            if columns not in (STEPPED, SCHEDULED):  # billing state only: still as declared
                statement = statement.values(declared_hash=null())  # compared in full next
            order = self.db.codec.positions(statement)
            out = [(_COLUMN[p.removeprefix("b_")], self._encoder(p.removeprefix("b_")))
                   for p in order]  # fmt: skip
            self._updates[columns] = statement, order, out
        statement, order, out = self._updates[columns]
        self.db.codec.executemany(conn, statement, order, [
            tuple([encode(get(s)) for get, encode in out]) for s in subs
        ])  # fmt: skip

    def _encoder(self, name: str) -> Any:
        kind = t.subscriptions.c[name].type
        if isinstance(kind, Date):
            return self.db.codec.day_out
        if isinstance(kind, JSON):
            return lambda value: None if value is None else to_json(value)
        return _keep

    # -- config as code --------------------------------------------------------------------
    def declared_ids(self) -> set[str]:
        """The ids of the stored subscriptions that a config declared (``source`` declared)."""
        with self.db.tx() as conn:
            return set(conn.execute(select(_S.id).where(_S.source == "declared")).scalars())

    def named(self, ids: Sequence[str]) -> list[Subscription]:
        """The stored subscriptions among ``ids``, by id (the others do not exist)."""
        out = []
        for chunk in _chunks(sorted(set(ids))):
            out += self.load(_S.id.in_(chunk), order=_S.id)
        return out

    def declared_hashes(self) -> dict[str, str]:
        """Declared subscription id → the digest of the declaration its row was last made
        true to, for the rows that have one."""
        query = select(_S.id, _S.declared_hash).where(
            _S.source == "declared", _S.declared_hash.is_not(None)
        )
        with self.db.tx() as conn:
            return {row[0]: row[1] for row in conn.execute(query)}

    def set_declared_hashes(self, hashes: Mapping[str, str]) -> None:
        """Record the digests of the declarations these rows were just made true to."""
        if not hashes:
            return
        statement = (
            update(t.subscriptions)
            .where(_S.id == bindparam("b_id"))
            .values(declared_hash=bindparam("b_hash"))
        )
        with self.db.tx() as conn:
            conn.execute(statement, [{"b_id": k, "b_hash": v} for k, v in hashes.items()])

    def mark_declared(self, ids: Sequence[str]) -> None:
        """Record that the config now declares these (made elsewhere before, same id)."""
        for chunk in _chunks(sorted(set(ids))):
            with self.db.tx() as conn:
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
            with self.db.tx() as conn:
                found.update(conn.execute(query).scalars())
        return found

    # -- history ---------------------------------------------------------------------------
    def events(self, subject_id: str | None = None) -> list[EventRecord]:
        query = select(t.events).order_by(t.events.c.id)
        if subject_id:
            query = query.where(t.events.c.subject_id == subject_id)
        with self.db.tx() as conn:
            return [event_record(r) for r in conn.execute(query)]

    def histories(self, currency: str | None = None) -> Iterator[History]:
        """Every subscription (in ``currency``) as analytics sees it, streamed from one query
        over the history events."""
        e = t.events
        query = (
            select(e.c.subject_id, e.c.type, e.c.on_date, e.c.payload)
            .add_columns(_S.currency, _S.created_on, _S.anchor, _S.contact_id)
            .join(t.subscriptions, _S.id == e.c.subject_id)
            .where(e.c.type.in_(_HISTORY_EVENTS))
            .order_by(e.c.subject_id, e.c.seq)
        )
        if currency:
            query = query.where(_S.currency == currency)
        with self.db.tx() as conn:
            # Not a server-side cursor: PostgreSQL plans cursors for their first rows and, on
            # tables not analyzed since a bulk load, picked a nested loop (minutes at 100k).
            rows = conn.execute(query)
            for sub_id, group in groupby(rows, key=lambda r: r.subject_id):
                statuses, revisions, first, ends_on = [], [], None, None
                for row in group:
                    first = first or row
                    payload = row.payload or {}
                    if row.type == "subscription.status_changed":
                        statuses.append((row.on_date, payload["status"]))
                    elif row.type == "subscription.cancel_scheduled":
                        ends_on = date.fromisoformat(payload["cancel_on"])
                    elif "frequency" in payload:
                        revisions.append(_revision(row.on_date, payload))
                created = first.created_on or first.anchor
                if not revisions:  # recorded before histories carried definitions
                    sub = self.load(_S.id == sub_id, conn=conn)[0]
                    revisions.append(_revision(created, mrr_basis(sub)))
                yield History(sub_id, first.currency, created, tuple(statuses), tuple(revisions),
                              first.contact_id, ends_on)  # fmt: skip


def event_record(row: Any) -> EventRecord:
    """An ``EventRecord`` from a row of ``events`` (by column name)."""
    return EventRecord(row.id, row.type, row.subject_id, row.seq, row.on_date,
                       row.payload or {}, bool(row.delivered))  # fmt: skip


def subscription_row(s: Subscription, source: str) -> dict[str, Any]:
    """A new subscription's row, every column."""
    return {
        "id": s.id, "contact_id": s.contact_id, "company_id": s.company_id,
        "billing_contact_id": s.billing_contact_id, "currency": s.currency,
        "frequency": s.frequency.iso, "anchor": s.anchor, "payments": s.payments,
        "next_index": s.next_index, "status": s.status, "collection_mode": s.collection_mode,
        "payment_method_id": s.payment_method_id, "payment_terms": s.payment_terms,
        "payment_token": s.payment_token, "payment_type": s.payment_type,
        "owner": s.owner, "invoice_creation": s.invoice_creation,
        "properties": _json(dict(s.properties)) or None,
        "invoice_settings": _json(dict(s.invoice_settings)) or None,
        "deals": list(s.deals) or None, "quote_id": s.quote_id, "created_on": s.created_on,
        "open_due_on": s.open_due_on, "canceled_on": s.canceled_on,
        "next_event_on": s.next_event_on, "event_seq": s.event_seq, "source": source,
        "skipped": s.skipped, "cancel_on": s.cancel_on, "reminded": s.reminded,
        "pending_lines": [pending_row(i) for i in s.pending] or None,
        "rebase_on": s.rebase_on, "rebase_index": s.rebase_index,
        "reminder_days": s.reminder_days,
    }  # fmt: skip


def item_rows(s: Subscription) -> list[dict[str, Any]]:
    """The rows of a subscription's items, by position."""
    rows = []
    for position, item in enumerate(s.items):
        tiers = [
            {"up_to": tier.up_to,
             "unit_price": str(tier.unit_price.amount) if tier.unit_price else None,
             "price": str(tier.price.amount) if tier.price else None}
            for tier in item.tiers
        ]  # fmt: skip
        rows.append({
            "subscription_id": s.id, "position": position, "product_id": item.product_id,
            "sku": item.sku, "name": item.name, "description": item.description,
            "quantity": item.quantity, "unit_price": item.unit_price.amount,
            "unit_discount": item.unit_discount.value if item.unit_discount else None,
            "tax_rate_id": item.tax_rate, "taxable": item.taxable,
            "tax_inclusive": item.tax_inclusive, "category": item.category,
            "pricing": item.pricing.value, "tiers": tiers or None,
        })  # fmt: skip
    return rows


def _revision(on: date, basis: dict[str, Any]) -> Revision:
    steps = tuple((date.fromisoformat(d), Decimal(a)) for d, a in basis.get("steps", ()))
    return Revision(on, Frequency.parse(basis["frequency"]), Decimal(basis["amount"]),
                    Decimal(basis["net"]), steps)  # fmt: skip


def _chunks(ids: list[str], size: int = 1000) -> list[list[str]]:
    """``ids`` in lists short enough for one statement's parameters (SQLite's limit)."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def _json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, (Decimal, date)):
        return str(value)
    return value


def _keep(value: Any) -> Any:
    return value
