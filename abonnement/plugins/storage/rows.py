"""The billing run's rows as plain tuples, encoded and decoded here instead of by SQLAlchemy.

A billing run reads every due subscription and writes its invoices, lines, adjustments,
events and new state. SQLAlchemy's per-value type processing cost more than the database
did, so it only writes the SQL (once per statement and dialect) and values travel to and
from the driver the way they are stored: on SQLite, dates and JSON as text and booleans as
integers; psycopg takes and gives Python dates and parsed JSON (the compiled statements cast
JSON text). Money is integer millionths either way (``tables.Micros``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, bindparam, column, insert, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError

from abonnement.engine.catalog import PricingModel, Tier
from abonnement.engine.events import Event
from abonnement.engine.invoicing import InvoiceDraft
from abonnement.engine.items import Item
from abonnement.engine.money import Money, Percent
from abonnement.engine.pricing import PricedInvoice
from abonnement.engine.schedule import Frequency
from abonnement.engine.status import SubscriptionStatus
from abonnement.engine.subscriptions import Subscription
from abonnement.plugins.storage import tables as t
from abonnement.plugins.storage.tables import from_micros, to_micros

__all__ = [
    "ITEM_COLUMNS",
    "SUBSCRIPTION_COLUMNS",
    "Codec",
    "fetch",
    "insert_events",
    "raw_select",
    "to_json",
]

_LIMIT = 20_000  # entries per cache: memory stays bounded on any run

SUBSCRIPTION_COLUMNS = tuple(
    c.name for c in t.subscriptions.columns if c.name not in ("source", "declared_hash")
)
ITEM_COLUMNS = tuple(c.name for c in t.subscription_items.columns)
_INVOICE_COLUMNS = tuple(c.name for c in t.invoices.columns)
_LINE_COLUMNS = tuple(c.name for c in t.invoice_lines.columns)
_ADJUSTMENT_COLUMNS = tuple(c.name for c in t.invoice_adjustments.columns)
_EVENT_COLUMNS = ("type", "subject_id", "seq", "on_date", "payload", "delivered")
_SUBSCRIPTION_STATUS = {s.value: s for s in SubscriptionStatus}  # a row's text → its member


def raw_select(table: Table, names: Sequence[str]) -> Any:
    """``SELECT names FROM table`` whose rows come back as the driver gives them: untyped
    columns have no result processing."""
    return select(*(column(name) for name in names)).select_from(table)


def fetch(conn: Connection, query: Any, params: Mapping[str, Any] | None = None) -> list[Any]:
    """Every row as the driver gives it: no Row objects (a billing run loads thousands)."""
    result = conn.execute(query, params)
    try:
        return result.cursor.fetchall()  # type: ignore[union-attr]
    finally:
        result.close()


class Codec:
    """How one database takes and gives the hot path's values, and its compiled statements."""

    def __init__(self, dialect: Any, sqlite: bool):
        self.sqlite = sqlite
        # positional parameters on both, so rows stay tuples all the way to the driver
        self._dialect = dialect if sqlite else postgresql.psycopg.dialect(paramstyle="format")
        self._sql: dict[int, str] = {}
        self._days: dict[str, date] = {}
        self.day_out: Callable[[date | None], Any] = _iso if sqlite else _same
        self.json_in: Callable[[Any], Any] = _loads if sqlite else _same
        self.day_in: Callable[[Any], date | None] = self._parse_day if sqlite else _same
        self._priced: dict[int, tuple] = {}
        self._texts: dict[int, tuple[Any, str]] = {}
        self._payloads: dict[tuple, str] = {}
        self._items: dict[tuple, Item] = {}

    # -- statements --------------------------------------------------------------------------
    def executemany(
        self, conn: Connection, statement: Any, order: Sequence[str], rows: list[tuple]
    ) -> None:
        """Run ``statement`` once per row; ``order`` names the row's values."""
        if not rows:
            return
        sql = self.sql(statement, order)
        if self.sqlite or not sql.startswith("INSERT"):
            conn.exec_driver_sql(sql, rows)
            return
        # PostgreSQL: COPY is several times faster than even pipelined INSERTs
        copy = f"COPY {statement.table.name} ({', '.join(order)}) FROM STDIN"
        driver = conn.connection.driver_connection
        try:
            with driver.cursor() as cursor, cursor.copy(copy) as writer:  # type: ignore[union-attr]
                for row in rows:
                    writer.write_row(row)
        except conn.dialect.loaded_dbapi.Error as exc:  # as SQLAlchemy would have raised it
            raise DBAPIError.instance(copy, None, exc, conn.dialect.loaded_dbapi.Error) from None

    def sql(self, statement: Any, order: Sequence[str]) -> str:
        """The statement compiled for this database, its parameters checked against
        ``order`` (once: a mismatch is a bug here, never a user's)."""
        key = id(statement)
        if key not in self._sql:
            compiled = statement.compile(dialect=self._dialect)
            if tuple(compiled.positiontup) != tuple(order):
                raise AssertionError(f"parameters {compiled.positiontup} are not {order}")
            self._sql[key] = compiled.string
        return self._sql[key]

    def positions(self, statement: Any) -> tuple[str, ...]:
        return tuple(statement.compile(dialect=self._dialect).positiontup)

    # -- values ------------------------------------------------------------------------------
    def _parse_day(self, text: str | None) -> date | None:
        if text is None:
            return None
        try:
            return self._days[text]
        except KeyError:
            if len(self._days) > _LIMIT:
                self._days.clear()
            day = self._days[text] = date.fromisoformat(text)
            return day

    def text(self, value: Any) -> str:
        """A shared JSON value (an invoice's document settings) encoded once."""
        entry = self._texts.get(id(value))
        if entry is None or entry[0] is not value:  # the id of an object since freed
            if len(self._texts) > _LIMIT:
                self._texts.clear()
            entry = self._texts[id(value)] = (value, to_json(value))
        return entry[1]

    def payload(self, payload: Mapping[str, Any]) -> str:
        """An event payload as JSON; the common small ones are encoded once."""
        try:
            key = tuple(payload.items())
            return self._payloads[key]
        except TypeError:  # a list or dict inside: not a key
            return to_json(payload)
        except KeyError:
            if len(self._payloads) > _LIMIT:
                self._payloads.clear()
            text = self._payloads[key] = to_json(payload)
            return text

    # -- rows out ----------------------------------------------------------------------------
    def invoice_rows(
        self, first_seq: int, numbers: Sequence[str], drafts: Sequence[InvoiceDraft]
    ) -> tuple[list[tuple], list[tuple], list[tuple]]:
        """Invoices, lines and adjustments of numbered drafts, in the tables' column order."""
        day = self.day_out
        invoices, lines, adjustments = [], [], []
        seqs = range(first_seq, first_seq + len(drafts))
        for seq, number, d in zip(seqs, numbers, drafts, strict=True):
            totals, priced_lines, priced_adjustments = self._priced_rows(d.priced)
            invoices.append((
                number, seq, d.subscription_id, d.contact_id, d.status, d.currency,
                day(d.issue_date), day(d.due_date), day(d.period_start), day(d.period_end),
                *totals, _paid_at_issue(d), self.text(d.document), day(d.collect_on), 0, None,
            ))  # fmt: skip
            owners = d.line_subscriptions
            for i, line in enumerate(priced_lines):
                lines.append((number, i, owners[i] if owners else None, *line))
            for adjustment in priced_adjustments:
                adjustments.append((number, *adjustment))
        return invoices, lines, adjustments

    def _priced_rows(self, priced: PricedInvoice) -> tuple:
        """What a priced invoice contributes to its rows: the same for every invoice priced
        alike (the billing run's pricing memo hands out one object per price)."""
        entry = self._priced.get(id(priced))
        if entry is not None and entry[0] is priced:
            return entry[1]
        totals = tuple(to_micros(m.amount) for m in (
            priced.subtotal, priced.discount_total, priced.fee_total, priced.tax_total,
            priced.total))  # fmt: skip
        lines, adjustments = [], []
        position = 0
        for i, line in enumerate(priced.lines):
            source = line.line
            lines.append((
                source.description, source.sku, source.quantity,
                to_micros(source.unit_price.amount), to_micros(line.amount.amount),
            ))  # fmt: skip
            for adj in (*line.discounts, *line.fees, *line.taxes):
                adjustments.append(_adjustment(position, i, adj))
                position += 1
        for adj in priced.adjustments:
            adjustments.append(_adjustment(position, None, adj))
            position += 1
        rows = (totals, tuple(lines), tuple(adjustments))
        if len(self._priced) > _LIMIT:
            self._priced.clear()
        self._priced[id(priced)] = (priced, rows)
        return rows

    def event_rows(self, events: Sequence[Event]) -> list[tuple]:
        day, payload = self.day_out, self.payload
        return [(e.type, e.subject_id, e.seq, day(e.on), payload(e.payload), False)
                for e in events]  # fmt: skip

    # -- rows in -----------------------------------------------------------------------------
    def subscription(self, row: Sequence[Any], item_rows: Sequence[Sequence[Any]]) -> Subscription:
        """A subscription from a row of ``SUBSCRIPTION_COLUMNS`` and its item rows."""
        (id_, contact_id, company_id, billing_contact_id, currency, frequency, anchor,
         payments, next_index, status, collection_mode, payment_method_id, payment_token,
         payment_type, payment_terms, owner, invoice_creation, properties, invoice_settings,
         deals, quote_id, created_on, open_due_on, canceled_on, _next_event_on, event_seq,
         skipped, cancel_on, reminded, pending_lines, rebase_on, rebase_index,
         reminder_days) = row  # fmt: skip
        day, data = self.day_in, self.json_in
        every = _frequency(frequency)
        # The billing run loads every due subscription: filling the fields directly is ~3x
        # faster than the frozen dataclass's __init__ (one object.__setattr__ per field);
        # tests/plugins/test_storage.py checks that every field is set.
        sub = object.__new__(Subscription)
        sub.__dict__.update(
            id=id_, contact_id=contact_id, currency=currency, frequency=every, anchor=day(anchor),
            items=tuple([self.item(r, currency, every, frequency) for r in item_rows]),
            status=_SUBSCRIPTION_STATUS[status], payments=payments, next_index=next_index,
            company_id=company_id, billing_contact_id=billing_contact_id,
            collection_mode=collection_mode,
            payment_method_id=payment_method_id, payment_token=payment_token,
            payment_type=payment_type, payment_terms=payment_terms, owner=owner,
            invoice_creation=bool(invoice_creation),
            properties=data(properties) if properties is not None else {},
            invoice_settings=data(invoice_settings) if invoice_settings is not None else {},
            deals=tuple(data(deals)) if deals is not None else (), quote_id=quote_id,
            created_on=day(created_on), open_due_on=day(open_due_on),
            canceled_on=day(canceled_on), event_seq=event_seq, skipped=skipped,
            cancel_on=day(cancel_on), reminded=reminded, reminder_days=reminder_days,
            pending=tuple(pending_item(p, currency) for p in data(pending_lines))
            if pending_lines is not None else (),
            rebase_on=day(rebase_on), rebase_index=rebase_index,
        )  # fmt: skip
        return sub

    def item(self, row: Sequence[Any], currency: str, frequency: Frequency, every: str) -> Item:
        """An item from a row of ``ITEM_COLUMNS`` (billed ``every`` as stored); equal rows
        give one shared (immutable) Item, so a run builds each distinct line once."""
        key: tuple | None = (currency, every, *row[2:])  # all but subscription and position
        try:
            return self._items[key]  # type: ignore[index]
        except TypeError:  # tiers from psycopg are a list: not a key
            key = None
        except KeyError:
            pass
        (_, _, product_id, sku, name, description, quantity, unit_price, unit_discount,
         tax_rate_id, taxable, tax_inclusive, category, pricing, tiers) = row  # fmt: skip

        def money(text: str | None) -> Money | None:
            return Money(Decimal(text), currency) if text is not None else None

        item = Item(
            name=name, quantity=quantity, unit_price=Money(from_micros(unit_price), currency),
            sku=sku, product_id=product_id, description=description,
            unit_discount=Percent(from_micros(unit_discount))
            if unit_discount is not None else None,
            frequency=frequency, tax_rate=tax_rate_id, taxable=bool(taxable),
            tax_inclusive=bool(tax_inclusive), category=category,
            pricing=PricingModel(pricing),
            tiers=tuple(Tier(x["up_to"], money(x["unit_price"]), money(x["price"]))
                        for x in (self.json_in(tiers) if tiers is not None else ())),
        )  # fmt: skip
        if key is not None:
            if len(self._items) > _LIMIT:
                self._items.clear()
            self._items[key] = item
        return item


def _paid_at_issue(draft: InvoiceDraft) -> int:
    """Micros paid when an invoice is issued: a carried amount is settled by carrying it."""
    if draft.settled == "carried" and draft.total.amount > 0:
        return to_micros(draft.total.amount)
    return 0


def pending_row(item: Item) -> dict[str, Any]:
    """A one-time (prorated) line waiting for the next invoice, as stored in JSON."""
    return {"name": item.name, "sku": item.sku, "quantity": item.quantity,
            "unit_price": str(item.unit_price.amount), "tax_rate": item.tax_rate,
            "taxable": item.taxable, "tax_inclusive": item.tax_inclusive,
            "category": item.category}  # fmt: skip


def pending_item(row: Mapping[str, Any], currency: str) -> Item:
    return Item(row["name"], row["quantity"], Money(Decimal(row["unit_price"]), currency),
                sku=row["sku"], tax_rate=row["tax_rate"], taxable=row["taxable"],
                tax_inclusive=row.get("tax_inclusive", False),  # absent in older rows
                category=row["category"])  # fmt: skip


def _adjustment(position: int, line: int | None, adj: Any) -> tuple:
    base = getattr(adj, "base", None)
    return (position, line, adj.kind, adj.rule, adj.label,
            to_micros(adj.rate.value) if adj.rate else None, adj.inclusive,
            to_micros(adj.amount.amount), to_micros(base.amount) if base else None)  # fmt: skip


def insert_events(codec: Codec, conn: Connection, events: Sequence[Event]) -> None:
    """Write ``events`` to the outbox, in the caller's transaction."""
    codec.executemany(conn, *INSERT_EVENT, codec.event_rows(events))


def to_json(value: Any) -> str:
    """JSON text as stored (what SQLAlchemy's JSON type wrote)."""
    return json.dumps(value, default=_plain)


def _plain(value: Any) -> Any:
    # what SQLAlchemy's JSON type was given: mappings as objects, dates and Decimals as text
    return dict(value) if isinstance(value, Mapping) else str(value)


def _loads(text: str) -> Any:
    return json.loads(text)


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _same(value: Any) -> Any:
    return value


_frequency = functools.lru_cache(maxsize=64)(Frequency.parse)


def _insert(table: Table, names: Sequence[str]) -> tuple[Any, Sequence[str]]:
    return insert(table).inline().values({name: bindparam(name) for name in names}), names


INSERT_INVOICE = _insert(t.invoices, _INVOICE_COLUMNS)
INSERT_LINE = _insert(t.invoice_lines, _LINE_COLUMNS)
INSERT_ADJUSTMENT = _insert(t.invoice_adjustments, _ADJUSTMENT_COLUMNS)
INSERT_EVENT = _insert(t.events, _EVENT_COLUMNS)
