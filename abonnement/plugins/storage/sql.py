"""The built-in storage: SQLAlchemy Core on SQLite (default) or PostgreSQL.

The billing hot path uses batched Core statements (executemany inserts and updates, one
transaction per batch); lookups are plain selects. A new SQLite file is migrated on first
use; any other database must be at the current migration (``abonnement db upgrade``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from decimal import Decimal
from itertools import groupby
from operator import attrgetter
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Connection,
    Date,
    bindparam,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    InterfaceError,
    InternalError,
    OperationalError,
)

from abonnement.engine.analytics import History, Revision
from abonnement.engine.billing_run import BatchFailed
from abonnement.engine.collection import Attempt
from abonnement.engine.events import Event
from abonnement.engine.invoicing import InvoiceDraft
from abonnement.engine.money import Money
from abonnement.engine.outcomes import (
    Standing,
    after_dues,
    after_payment,
    charged_now,
    first_attempts,
    paid_by_hand,
    reads_failing,
    settled_at_issue,
)
from abonnement.engine.schedule import Frequency
from abonnement.engine.status import InvoiceStatus
from abonnement.engine.subscriptions import Subscription, mrr_basis
from abonnement.errors import NotFound, StorageError
from abonnement.plugins.storage import meta
from abonnement.plugins.storage import tables as t
from abonnement.plugins.storage.declared import DeclaredMixin
from abonnement.plugins.storage.outbox import OutboxMixin
from abonnement.plugins.storage.payments import PaymentsMixin, _of_subscription
from abonnement.plugins.storage.rows import (
    INSERT_ADJUSTMENT,
    INSERT_EVENT,
    INSERT_INVOICE,
    INSERT_LINE,
    ITEM_COLUMNS,
    SUBSCRIPTION_COLUMNS,
    Codec,
    fetch,
    pending_row,
    raw_select,
    to_json,
)
from abonnement.plugins.storage.server import ServerMixin
from abonnement.private_files import create_private

__all__ = ["SqlStorage", "StorageError"]

MIGRATIONS = Path(__file__).parent / "migrations"


def _alembic(connection: Connection) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINTs (dry runs use them): take it over
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # Takes effect on a new file only (before WAL mode, which fixes it): a billing run
    # rewrites rows all over subscriptions and three indexes; 16 KiB pages were ~10% faster
    # than the default 4 KiB
    cursor.execute("PRAGMA page_size=16384")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # pages (160 MB at 16 KiB): fewer, larger checkpoints (at 1,000 they were a third of
    # a run's commit time)
    cursor.execute("PRAGMA wal_autocheckpoint=10000")
    # a billing run reads subscriptions between its writes to five tables' indexes: with
    # the default 2 MB cache those pages were read back from the OS at every batch
    cursor.execute("PRAGMA cache_size=-65536")  # KiB: 64 MB, taken only as used
    cursor.close()


class SqlStorage(PaymentsMixin, OutboxMixin, DeclaredMixin, ServerMixin):
    """Subscriptions, invoices, payments and events in one SQL database."""

    def __init__(self, url: str, *, migrate: bool = True):
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise StorageError(f"bad database URL {url!r}: {exc}") from None
        self.url = url
        self.sqlite = parsed.get_backend_name() == "sqlite"
        fresh = self.sqlite and (
            parsed.database in (None, "", ":memory:") or not Path(parsed.database).exists()
        )
        # the database file itself, when there is one: buyer links' generated secret sits
        # beside it (``Context.link_secret``)
        self.database_file = (
            Path(parsed.database).resolve()
            if self.sqlite and parsed.database not in (None, "", ":memory:")
            else None
        )
        if fresh and self.database_file is not None:
            # customers' data: created readable by its owner only (SQLite gives its -wal and
            # -shm files the database's own mode)
            try:
                create_private(self.database_file)
            except OSError as exc:
                raise StorageError(f"cannot create {self.database_file}: {exc.strerror}") from None
        self.engine = create_engine(url)
        # held while charging or reconciling (``holding``): SQLite has no row locks to hold
        self.charge_lock = (
            Path(f"{parsed.database}-charging")
            if self.sqlite and parsed.database not in (None, "", ":memory:")
            else None
        )
        # where a processor may keep files of this database's (the test processor's ledger)
        self.directory = self.charge_lock.parent.absolute() if self.charge_lock else None
        self._instance: str | None = None
        if self.sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        self._conn: Connection | None = None  # set while a dry run holds one transaction
        # the account's reminder lead time: it decides when a subscription next needs a step
        self.reminder_days: int | None = None
        self.codec = Codec(self.engine.dialect, self.sqlite)
        self._updates: dict[tuple[str, ...], tuple[Any, tuple, list]] = {}  # narrow, per column set
        try:
            if fresh and migrate:
                self.upgrade()
            elif migrate:
                self.check_current()
        except OperationalError as exc:
            raise StorageError(f"cannot open the database {parsed!r}: {exc.orig}") from None

    # -- schema ----------------------------------------------------------------------------
    def upgrade(self) -> str:
        """Apply every pending migration; returns the revision now current."""
        with self.engine.begin() as conn:
            command.upgrade(_alembic(conn), "head")
            return MigrationContext.configure(conn).get_current_revision() or ""

    def check_current(self) -> None:
        with self.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            head = ScriptDirectory.from_config(_alembic(conn)).get_current_head()
        if current != head:
            raise StorageError(
                f"the database is at migration {current or 'none'}, abonnement needs {head}; "
                "run `abonnement db upgrade`"
            )

    def close(self) -> None:
        self.engine.dispose()

    # -- the database itself ---------------------------------------------------------------
    def instance_id(self) -> str:
        """The random id this database was made with: every payment idempotency key starts
        with it, so two databases never send the processor the same key."""
        if self._instance is None:
            with self._tx() as conn:
                self._instance = meta.instance_id(conn)
        return self._instance

    def timeline(self) -> date | None:
        """The date the last billing run reached (None before the first)."""
        with self._tx() as conn:
            return meta.timeline(conn)

    def advance_timeline(self, day: date) -> date:
        """Record that a billing run reached ``day`` (the timeline never moves back);
        returns where it stands."""
        with self._tx() as conn:
            return meta.advance_timeline(conn, day)

    # -- transactions ----------------------------------------------------------------------
    @contextmanager
    def dry_run(self) -> Iterator[None]:
        """Everything inside runs for real, in one transaction that is rolled back."""
        with self.engine.connect() as conn:
            outer = conn.begin()
            self._conn = conn
            try:
                yield
            finally:
                self._conn = None
                outer.rollback()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        if self._conn is not None:
            with self._conn.begin_nested():
                yield self._conn
            return
        with self.engine.begin() as conn:
            yield conn

    # -- subscriptions ---------------------------------------------------------------------
    def insert_subscriptions(
        self, subs: Sequence[Subscription], source: str, events: Sequence[Event] = ()
    ) -> None:
        if not subs:
            return
        with self._tx() as conn:
            conn.execute(
                t.subscriptions.insert(), [_sub_row(s, source, self.reminder_days) for s in subs]
            )
            conn.execute(t.subscription_items.insert(),
                         [row for s in subs for row in _item_rows(s)])  # fmt: skip
            self._insert_events(conn, events)

    def replace_items(self, subs: Sequence[Subscription], events: Sequence[Event] = ()) -> None:
        """New definitions (items, parties, collection and invoice settings, terms) for
        existing subscriptions, as ``apply`` makes them; billing state is written back as
        given."""
        if not subs:
            return
        with self._tx() as conn:
            ids = [s.id for s in subs]
            conn.execute(t.subscription_items.delete().where(
                t.subscription_items.c.subscription_id.in_(ids)))  # fmt: skip
            conn.execute(t.subscription_items.insert(),
                         [row for s in subs for row in _item_rows(s)])  # fmt: skip
            self._update_subscriptions(conn, subs, _DEFINED)
            self._insert_events(conn, events)

    def subscription(self, sub_id: str) -> Subscription | None:
        found = self._load(t.subscriptions.c.id == sub_id)
        return found[0] if found else None

    def subscriptions(self, status: str | None = None) -> list[Subscription]:
        where = t.subscriptions.c.status == status if status else None
        return self._load(where, order=t.subscriptions.c.id)

    def _load(
        self, where: Any = None, order: Any = None, limit: int | None = None,
        conn: Connection | None = None, lock: bool = False, items: bool = True,
    ) -> list[Subscription]:  # fmt: skip
        query = raw_select(t.subscriptions, SUBSCRIPTION_COLUMNS)
        if where is not None:
            query = query.where(where)
        if order is not None:
            query = query.order_by(order)
        if limit:
            query = query.limit(limit)
        if lock and not self.sqlite:  # wait for, then hold, the rows
            query = query.with_for_update()
        with self._tx() if conn is None else _same(conn) as c:
            return self._decode(c, fetch(c, query), items=items)

    def _decode(
        self, conn: Connection, rows: list[Any], *, items: bool = True
    ) -> list[Subscription]:
        """Subscriptions from rows of ``SUBSCRIPTION_COLUMNS``, with their items."""
        codec, days = self.codec, self.reminder_days
        found: dict[str, list[Any]] = {}
        if rows and items:
            for item in fetch(conn, _ITEMS_OF, {"ids": [r[0] for r in rows]}):
                found.setdefault(item[0], []).append(item)
        return [codec.subscription(row, found.get(row[0], ()), days) for row in rows]

    # -- the billing run's store -------------------------------------------------------------
    def earliest_event(
        self, until: date, *, collections: bool = True, skip: Collection[str] = ()
    ) -> date | None:
        """The earliest day on or before ``until`` with billing (or collection) work, but
        for the subscriptions in ``skip``."""
        query = select(func.min(_S.next_event_on)).where(_S.next_event_on <= until)
        if skip:
            query = query.where(_S.id.not_in(sorted(skip)))
        with self._tx() as conn:
            first = conn.execute(query).scalar()
        days = (first, self.earliest_collection(until) if collections else None)
        return min((d for d in days if d is not None), default=None)

    def count_due(self, until: date) -> int:
        with self._tx() as conn:
            return conn.execute(select(func.count()).where(
                t.subscriptions.c.next_event_on <= until)).scalar_one()  # fmt: skip

    def process_due(
        self, day: date, limit: int, work: Any, number_format: str, *, collect: bool = False,
        skip: Collection[str] = (),
    ) -> tuple[int, list[str], list[InvoiceDraft], list[Attempt]]:  # fmt: skip
        """See ``engine.billing_run.BillingStore.process_due``; raises ``BatchFailed`` when
        the batch (claimed, then rolled back) cannot be decoded, stepped or stored."""
        if collect:
            self.instance_id()  # read once, outside the batch's transaction
        # On PostgreSQL, concurrent workers skip the rows another one has claimed; SQLite
        # has one writer at a time (and one worker).
        claim = _DUE if self.sqlite else _DUE_UNCLAIMED
        params: dict[str, Any] = {"day": day, "n": limit}
        if skip:  # rare (a failure this run): the hot path keeps its plain statement
            claim = _DUE_SKIPPING if self.sqlite else _DUE_SKIPPING_UNCLAIMED
            params["skip"] = sorted(skip)
        ids: list[str] = []
        try:
            with self._tx() as conn:
                rows = fetch(conn, claim, params)
                ids = [row[0] for row in rows]
                if not rows:
                    return 0, [], [], []
                updated, drafts, events = work(self._decode(conn, rows))
                numbers, attempts = self._write(conn, updated, drafts, events, number_format,
                                                charge_on=day if collect else None)  # fmt: skip
        except (OperationalError, InterfaceError, InternalError):
            raise  # the database itself (a lock, a lost connection): no one subscription's
        except Exception as exc:
            if not ids:
                raise
            raise BatchFailed(ids, getattr(exc, "orig", None) or exc) from exc
        return len(ids), numbers, drafts, attempts

    def record_failure(self, sub_id: str, event_of: Any) -> None:
        """Store ``event_of(last_seq)`` as the next event of ``sub_id`` (its count of events
        moves on, nothing else of it changes); a deleted subscription is left alone."""
        with self._tx() as conn:
            last = conn.execute(
                update(t.subscriptions).where(_S.id == sub_id)
                .values(event_seq=_S.event_seq + 1).returning(_S.event_seq)
            ).scalar()  # fmt: skip
            if last is not None:
                self._insert_events(conn, [event_of(last - 1)])

    def change(self, sub_id: str, change: Any) -> Any:
        """Apply ``change(subscription) -> Step`` under a lock, with its events."""
        with self._tx() as conn:
            found = self._load(t.subscriptions.c.id == sub_id, conn=conn, lock=True)
            if not found:
                raise NotFound("subscription", sub_id)
            result = change(found[0])
            sub = result.subscription
            self._update_subscriptions(conn, [sub])
            if sub.items != found[0].items:
                conn.execute(t.subscription_items.delete().where(
                    t.subscription_items.c.subscription_id == sub_id))  # fmt: skip
                conn.execute(t.subscription_items.insert(), _item_rows(sub))
            if sub.contact_id != found[0].contact_id:
                conn.execute(update(t.subscriptions).where(t.subscriptions.c.id == sub_id)
                             .values(contact_id=sub.contact_id))  # fmt: skip
            self._insert_events(conn, result.events)
        return sub

    def delete_subscription(self, sub_id: str) -> None:
        """Remove a subscription and its items; its invoices, payments and history stay."""
        with self._tx() as conn:
            conn.execute(t.subscription_items.delete().where(
                t.subscription_items.c.subscription_id == sub_id))  # fmt: skip
            conn.execute(t.subscriptions.delete().where(t.subscriptions.c.id == sub_id))

    def busy_on(self, day: date, skip: Collection[str] = ()) -> bool:
        query = select(func.count()).where(_S.next_event_on == day)
        if skip:
            query = query.where(_S.id.not_in(sorted(skip)))
        with self._tx() as conn:
            return conn.execute(query).scalar_one() > 0

    def commit(
        self, subscriptions: Sequence[Subscription], invoices: Sequence[InvoiceDraft],
        events: Sequence[Event], number_format: str,
    ) -> list[str]:  # fmt: skip
        """Store stepped subscriptions, their invoices and events in one transaction."""
        with self._tx() as conn:
            return self._write(conn, subscriptions, invoices, events, number_format)[0]

    def _write(
        self, conn: Connection, subscriptions: Sequence[Subscription],
        drafts: Sequence[InvoiceDraft], events: Sequence[Event], number_format: str,
        charge_on: date | None = None,
    ) -> tuple[list[str], list[Attempt]]:  # fmt: skip
        """Stepped subscriptions, their events and invoices; with ``charge_on``, invoices to
        charge that day get their first attempt written ``pending`` too (returned, to charge
        once this commits)."""
        # a step moves only its own state: no need to re-encode properties and settings
        self._update_subscriptions(conn, subscriptions, STEPPED)
        self._insert_events(conn, events)
        # Numbers last: the counter row stays locked until commit (gap-free numbering
        # serializes workers), so everything that needs no number is written first.
        charged = charged_now(drafts, charge_on)
        if not any(charged):
            numbers = self._insert_invoices(conn, drafts, number_format)
            self._settle_at_issue(conn, numbers, drafts, subscriptions)
            return numbers, []
        # no one else may claim them before they are charged
        drafts = [replace(d, collect_on=None) if c else d
                  for d, c in zip(drafts, charged, strict=True)]  # fmt: skip
        numbers = self._insert_invoices(conn, drafts, number_format)
        self._settle_at_issue(conn, numbers, drafts, subscriptions)
        attempts = first_attempts(numbers, drafts, charged, {s.id: s for s in subscriptions},
                                  charge_on, self.instance_id())  # type: ignore[arg-type]  # fmt: skip
        self._insert_attempts(conn, attempts)
        return numbers, attempts

    def _settle_at_issue(
        self, conn: Connection, numbers: Sequence[str], drafts: Sequence[InvoiceDraft],
        subscriptions: Sequence[Subscription],
    ) -> None:  # fmt: skip
        """The events (and carried lines) of invoices settled when issued: they need the
        numbers just given out. Rare: most invoices are owed."""
        if not any(d.settled for d in drafts):
            return
        by_id = {s.id: s for s in subscriptions}
        changed, events = settled_at_issue(numbers, drafts, by_id)
        self._update_subscriptions(conn, changed, ("event_seq", "pending_lines"))
        self._insert_events(conn, events)

    def _update_subscriptions(
        self, conn: Connection, subs: Sequence[Subscription], columns: tuple[str, ...] = ()
    ) -> None:
        """Write ``subs`` back: every changeable column, or only ``columns`` (the billing run
        knows what a step or a payment outcome can change)."""
        if not subs:
            return
        if not columns:  # built outside storage too: its next step may be a reminder
            columns, days = _UPDATED, self.reminder_days
            subs = [s if s.reminder_days == days else replace(s, reminder_days=days) for s in subs]
        if columns not in self._updates:
            statement = (
                update(t.subscriptions)
                .where(t.subscriptions.c.id == bindparam("b_id"))
                .values({name: bindparam(f"b_{name}") for name in columns})
            )
            order = self.codec.positions(statement)
            out = [(_COLUMN[p.removeprefix("b_")], self._encoder(p.removeprefix("b_")))
                   for p in order]  # fmt: skip
            self._updates[columns] = statement, order, out
        statement, order, out = self._updates[columns]
        self.codec.executemany(conn, statement, order, [
            tuple([encode(get(s)) for get, encode in out]) for s in subs
        ])  # fmt: skip

    def _encoder(self, name: str) -> Any:
        kind = t.subscriptions.c[name].type
        if isinstance(kind, Date):
            return self.codec.day_out
        if isinstance(kind, JSON):
            return lambda value: None if value is None else to_json(value)
        return _keep

    def _insert_invoices(
        self, conn: Connection, drafts: Sequence[InvoiceDraft], number_format: str
    ) -> list[str]:
        if not drafts:
            return []
        # Gap-free: the counter moves in the same transaction as the invoices it numbers.
        last = conn.execute(
            update(t.sequences).where(t.sequences.c.name == "invoice")
            .values(value=t.sequences.c.value + len(drafts)).returning(t.sequences.c.value)
        ).scalar_one()  # fmt: skip
        first = last - len(drafts) + 1
        numbers = [number_format.format(seq=first + i) for i in range(len(drafts))]
        invoices, lines, adjustments = self.codec.invoice_rows(first, numbers, drafts)
        self.codec.executemany(conn, *INSERT_INVOICE, invoices)
        self.codec.executemany(conn, *INSERT_LINE, lines)
        self.codec.executemany(conn, *INSERT_ADJUSTMENT, adjustments)
        return numbers

    def _insert_events(self, conn: Connection, events: Sequence[Event]) -> None:
        self.codec.executemany(conn, *INSERT_EVENT, self.codec.event_rows(events))

    # -- invoices ------------------------------------------------------------------------------
    def invoices(self, subscription_id: str | None = None, status: str | None = None) -> list:
        query = select(t.invoices).order_by(t.invoices.c.seq)
        if subscription_id:
            query = query.where(_of_subscription(subscription_id))
        if status:
            query = query.where(t.invoices.c.status == status)
        with self._tx() as conn:
            return list(conn.execute(query).mappings())

    def invoice(self, number: str) -> dict[str, Any] | None:
        with self._tx() as conn:
            row = conn.execute(select(t.invoices).where(t.invoices.c.number == number)).first()
            if row is None:
                return None
            lines = conn.execute(
                select(t.invoice_lines)
                .where(t.invoice_lines.c.invoice_number == number)
                .order_by(t.invoice_lines.c.position)
            )
            adjustments = conn.execute(select(t.invoice_adjustments).where(
                t.invoice_adjustments.c.invoice_number == number,
            ).order_by(t.invoice_adjustments.c.position))  # fmt: skip
            return {**row._mapping, "lines": [dict(r._mapping) for r in lines],
                    "adjustments": [dict(r._mapping) for r in adjustments]}  # fmt: skip

    def histories(self, currency: str | None = None) -> Iterator[History]:
        """Every subscription (in ``currency``) as analytics sees it, streamed from one query
        over the history events."""
        e, s = t.events, t.subscriptions
        query = (
            select(e.c.subject_id, e.c.type, e.c.on_date, e.c.payload)
            .add_columns(s.c.currency, s.c.created_on, s.c.anchor, s.c.contact_id)
            .join(s, s.c.id == e.c.subject_id)
            .where(e.c.type.in_(_HISTORY_EVENTS))
            .order_by(e.c.subject_id, e.c.seq)
        )
        if currency:
            query = query.where(s.c.currency == currency)
        with self._tx() as conn:
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
                    sub = self._load(s.c.id == sub_id, conn=conn)[0]
                    revisions.append(_revision(created, mrr_basis(sub)))
                yield History(sub_id, first.currency, created, tuple(statuses), tuple(revisions),
                              first.contact_id, ends_on)  # fmt: skip

    def events(self, subject_id: str | None = None) -> list[dict[str, Any]]:
        query = select(t.events).order_by(t.events.c.id)
        if subject_id:
            query = query.where(t.events.c.subject_id == subject_id)
        with self._tx() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def invoice_owners(self, number: str) -> list[str]:
        """The subscriptions invoice ``number`` belongs to: its own, or those of the purchase
        that issued it (the first one carries its payments)."""
        with self._tx() as conn:
            return self._owners(conn, number)

    def _owners(self, conn: Connection, number: str) -> list[str]:
        own = conn.execute(select(t.invoices.c.subscription_id)
                           .where(t.invoices.c.number == number)).scalar()  # fmt: skip
        if own is not None:
            return [own]
        link = t.invoice_subscriptions.c
        return list(conn.execute(select(link.subscription_id).where(link.invoice_number == number)
                                 .order_by(link.position)).scalars())  # fmt: skip

    def pay_invoice(self, number: str, amount: Decimal, on: date, method: str) -> dict[str, Any]:
        """Record a payment made outside the processor, with what ``engine.outcomes`` makes
        of it: the invoice's status, its subscriptions' standing and the events a charge
        records (``paid_by_hand``, ``after_payment``, ``after_dues``)."""
        with self._tx() as conn:
            row = conn.execute(select(t.invoices).where(t.invoices.c.number == number)).first()
            if row is None:
                raise NotFound("invoice", number)
            status, outcome = paid_by_hand(number, row.status, row.amount_paid, row.total, amount)
            paid = row.amount_paid + amount
            conn.execute(update(t.invoices).where(t.invoices.c.number == number)
                         .values(amount_paid=paid, status=status))  # fmt: skip
            attempt = conn.execute(select(func.count()).where(
                t.payments.c.invoice_number == number)).scalar_one() + 1  # fmt: skip
            conn.execute(t.payments.insert().values(
                invoice_number=number, attempt=attempt, amount=amount, currency=row.currency,
                method=method, status=outcome.payment_status,
                idempotency_key=f"{number}/manual-{attempt}", on_date=on))  # fmt: skip
            owners = self._owners(conn, number)
            payment = Attempt(number, owners[0] if owners else None, attempt,
                              Money(amount, row.currency), "", method, on, manual=True)  # fmt: skip
            self._settle(conn, owners, on, (payment, outcome))
            return {"number": number, "status": status, "amount_paid": paid}

    def refresh_dues(self, sub_id: str, on: date) -> None:
        """Re-derive a subscription's oldest open due date (and leave past_due if cleared)."""
        with self._tx() as conn:
            self._settle(conn, [sub_id], on)

    # -- buyer links -------------------------------------------------------------------------
    def use_link(self, digest: str, kind: str, subject: str, on: date) -> bool:
        """Record the use of the link whose payload has SHA-256 ``digest``: True the first
        time, False if it was used already (the primary key decides a race between two)."""
        try:
            with self._tx() as conn:
                conn.execute(t.used_links.insert().values(digest=digest, kind=kind,
                                                          subject=subject, used_on=on))  # fmt: skip
        except IntegrityError:
            return False
        return True

    def release_link(self, digest: str) -> None:
        """Forget a use ``use_link`` recorded (the payment it was for was declined)."""
        with self._tx() as conn:
            conn.execute(t.used_links.delete().where(t.used_links.c.digest == digest))

    def _settle(
        self, conn: Connection, sub_ids: Sequence[str], on: date, paid: tuple | None = None
    ) -> None:
        """Each of ``sub_ids`` after ``paid`` (an attempt and its outcome, moving the first
        of them) and with its oldest open due date read again."""
        for position, sub_id in enumerate(sub_ids):
            found = self._load(t.subscriptions.c.id == sub_id, conn=conn, lock=True)
            if not found:  # deleted since: its invoices stay
                continue
            sub = found[0]
            standing = Standing(sub.id, sub.status, sub.event_seq, sub.canceled_on)
            events: tuple[Event, ...] = ()
            if paid is not None and position == 0:
                if reads_failing(standing.status):
                    standing = self._failing(conn, [standing]).get(sub.id, standing)
                standing, events = after_payment(standing, *paid, on)
            oldest = conn.execute(select(func.min(t.invoices.c.due_date)).where(
                _of_subscription(sub_id), t.invoices.c.status == OPEN)).scalar()  # fmt: skip
            standing, cleared = after_dues(standing, oldest, on)
            self._update_subscriptions(conn, [replace(
                sub, open_due_on=oldest, status=standing.status, event_seq=standing.event_seq,
                canceled_on=standing.canceled_on)])  # fmt: skip
            self._insert_events(conn, (*events, *cleared))


# the billing run's claim, built once (it claims thousands of batches)
_S, _ITEM = t.subscriptions.c, t.subscription_items.c
OPEN = InvoiceStatus.OPEN
_DUE = (raw_select(t.subscriptions, SUBSCRIPTION_COLUMNS)
        .where(_S.next_event_on == bindparam("day"))
        .order_by(_S.id).limit(bindparam("n")))  # fmt: skip
_DUE_UNCLAIMED = _DUE.with_for_update(skip_locked=True)  # what no other worker holds
# the same, but for the subscriptions set aside in this run
_DUE_SKIPPING = _DUE.where(_S.id.not_in(bindparam("skip", expanding=True)))
_DUE_SKIPPING_UNCLAIMED = _DUE_SKIPPING.with_for_update(skip_locked=True)
_ITEMS_OF = (raw_select(t.subscription_items, ITEM_COLUMNS)
             .where(_ITEM.subscription_id.in_(bindparam("ids", expanding=True)))
             .order_by(_ITEM.subscription_id, _ITEM.position))  # fmt: skip

_UPDATED = (
    "status", "next_index", "open_due_on", "next_event_on", "event_seq", "canceled_on", "owner",
    "properties", "payment_method_id", "payment_token", "payment_type", "skipped", "cancel_on",
    "reminded", "pending_lines", "rebase_on", "rebase_index", "anchor",
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
)  # what ``step`` changes
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


def _revision(on: date, basis: dict[str, Any]) -> Revision:
    steps = tuple((date.fromisoformat(d), Decimal(a)) for d, a in basis.get("steps", ()))
    return Revision(on, Frequency.parse(basis["frequency"]), Decimal(basis["amount"]),
                    Decimal(basis["net"]), steps)  # fmt: skip


@contextmanager
def _same(conn: Connection) -> Iterator[Connection]:
    yield conn


def _json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, (Decimal, date)):
        return str(value)
    return value


def _sub_row(s: Subscription, source: str, reminder_days: int | None) -> dict[str, Any]:
    if s.reminder_days != reminder_days:  # built outside storage: its next step may be a reminder
        s = replace(s, reminder_days=reminder_days)
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
    }  # fmt: skip


def _item_rows(s: Subscription) -> list[dict[str, Any]]:
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


def _keep(value: Any) -> Any:
    return value
