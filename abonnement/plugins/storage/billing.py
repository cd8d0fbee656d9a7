"""The billing run's claim loop in SQL: due subscriptions claimed in batches, what the engine
made of them written back in the same transaction.

The claim is one compiled statement per batch: rows of ``SUBSCRIPTION_COLUMNS`` by
``next_event_on`` and id, and on PostgreSQL ``FOR UPDATE SKIP LOCKED`` so concurrent workers
share a day. Writes are batched executemany statements (``rows.Codec``): stepped subscriptions
(only the columns a step changes), events, then invoices — numbered last, because the counter
row stays locked until commit.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from datetime import date
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.exc import InterfaceError, InternalError, OperationalError

from abonnement.engine.billing_run import BatchFailed
from abonnement.engine.collection import Attempt
from abonnement.engine.events import Event
from abonnement.engine.invoicing import InvoiceDraft
from abonnement.engine.outcomes import charged_now, first_attempts, settled_at_issue
from abonnement.engine.ports import StepWork
from abonnement.engine.subscriptions import Subscription
from abonnement.plugins.storage import tables as t
from abonnement.plugins.storage.database import Database
from abonnement.plugins.storage.invoices import Invoices
from abonnement.plugins.storage.payments import Payments
from abonnement.plugins.storage.rows import SUBSCRIPTION_COLUMNS, fetch, insert_events, raw_select
from abonnement.plugins.storage.subscriptions import STEPPED, Subscriptions

__all__ = ["BillingRun"]

_S = t.subscriptions.c
# the billing run's claim, built once (it claims thousands of batches)
_DUE = (raw_select(t.subscriptions, SUBSCRIPTION_COLUMNS)
        .where(_S.next_event_on == bindparam("day"))
        .order_by(_S.id).limit(bindparam("n")))  # fmt: skip
_DUE_UNCLAIMED = _DUE.with_for_update(skip_locked=True)  # what no other worker holds
# the same, but for the subscriptions set aside in this run
_DUE_SKIPPING = _DUE.where(_S.id.not_in(bindparam("skip", expanding=True)))
_DUE_SKIPPING_UNCLAIMED = _DUE_SKIPPING.with_for_update(skip_locked=True)


class BillingRun:
    """What ``engine.billing_run`` asks of one ``Database``, written through the other
    repositories' writers."""

    def __init__(
        self, db: Database, subscriptions: Subscriptions, invoices: Invoices, payments: Payments
    ):
        self.db = db
        self.subscriptions = subscriptions
        self.invoices = invoices
        self.payments = payments

    def earliest_event(
        self, until: date, *, collections: bool = True, skip: Collection[str] = ()
    ) -> date | None:
        """The earliest day on or before ``until`` with billing (or collection) work, but
        for the subscriptions in ``skip``."""
        query = select(func.min(_S.next_event_on)).where(_S.next_event_on <= until)
        if skip:
            query = query.where(_S.id.not_in(sorted(skip)))
        with self.db.tx() as conn:
            first = conn.execute(query).scalar()
        days = (first, self.payments.earliest_collection(until) if collections else None)
        return min((d for d in days if d is not None), default=None)

    def count_due(self, until: date) -> int:
        with self.db.tx() as conn:
            return conn.execute(select(func.count()).where(_S.next_event_on <= until)).scalar_one()

    def busy_on(self, day: date, skip: Collection[str] = ()) -> bool:
        query = select(func.count()).where(_S.next_event_on == day)
        if skip:
            query = query.where(_S.id.not_in(sorted(skip)))
        with self.db.tx() as conn:
            return conn.execute(query).scalar_one() > 0

    def process_due(
        self, day: date, limit: int, work: StepWork, number_format: str, *, collect: bool = False,
        skip: Collection[str] = (),
    ) -> tuple[int, list[str], list[InvoiceDraft], list[Attempt]]:  # fmt: skip
        """See ``engine.ports.BillingStore.process_due``; raises ``BatchFailed`` when the
        batch (claimed, then rolled back) cannot be decoded, stepped or stored."""
        if collect:
            self.db.instance_id()  # read once, outside the batch's transaction
        # On PostgreSQL, concurrent workers skip the rows another one has claimed; SQLite
        # has one writer at a time (and one worker).
        claim = _DUE if self.db.sqlite else _DUE_UNCLAIMED
        params: dict[str, Any] = {"day": day, "n": limit}
        if skip:  # rare (a failure this run): the hot path keeps its plain statement
            claim = _DUE_SKIPPING if self.db.sqlite else _DUE_SKIPPING_UNCLAIMED
            params["skip"] = sorted(skip)
        ids: list[str] = []
        try:
            with self.db.tx() as conn:
                rows = fetch(conn, claim, params)
                ids = [row[0] for row in rows]
                if not rows:
                    return 0, [], [], []
                updated, drafts, events = work(self.subscriptions.decode(conn, rows))
                numbers, attempts = self._write(conn, updated, drafts, events, number_format,
                                                charge_on=day if collect else None)  # fmt: skip
        except (OperationalError, InterfaceError, InternalError):
            raise  # the database itself (a lock, a lost connection): no one subscription's
        except Exception as exc:
            if not ids:
                raise
            raise BatchFailed(ids, getattr(exc, "orig", None) or exc) from exc
        return len(ids), numbers, list(drafts), attempts

    def record_failure(self, sub_id: str, event_of: Callable[[int], Event]) -> None:
        """Store ``event_of(last_seq)`` as the next event of ``sub_id`` (its count of events
        moves on, nothing else of it changes); a deleted subscription is left alone."""
        with self.db.tx() as conn:
            last = conn.execute(
                update(t.subscriptions).where(_S.id == sub_id)
                .values(event_seq=_S.event_seq + 1).returning(_S.event_seq)
            ).scalar()  # fmt: skip
            if last is not None:
                insert_events(self.db.codec, conn, [event_of(last - 1)])

    def commit(
        self, subscriptions: Sequence[Subscription], invoices: Sequence[InvoiceDraft],
        events: Sequence[Event], number_format: str,
    ) -> list[str]:  # fmt: skip
        """Store stepped subscriptions, their invoices and events in one transaction."""
        with self.db.tx() as conn:
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
        self.subscriptions.update(conn, subscriptions, STEPPED)
        # Numbers last: the counter row stays locked until commit (gap-free numbering
        # serializes workers), so everything that needs no number is written first — all
        # but the events, which name the invoices they created (in their own order).
        charged = charged_now(drafts, charge_on)
        if not any(charged):
            numbers = self.invoices.insert(conn, drafts, number_format)
            events = _overdue_named(conn, _named(events, drafts, numbers, subscriptions))
            insert_events(self.db.codec, conn, events)
            self._settle_at_issue(conn, numbers, drafts, subscriptions)
            return numbers, []
        # no one else may claim them before they are charged
        drafts = [replace(d, collect_on=None) if c else d
                  for d, c in zip(drafts, charged, strict=True)]  # fmt: skip
        numbers = self.invoices.insert(conn, drafts, number_format)
        events = _overdue_named(conn, _named(events, drafts, numbers, subscriptions))
        insert_events(self.db.codec, conn, events)
        self._settle_at_issue(conn, numbers, drafts, subscriptions)
        attempts = first_attempts(numbers, drafts, charged, {s.id: s for s in subscriptions},
                                  charge_on, self.db.instance_id())  # type: ignore[arg-type]  # fmt: skip
        self.payments.insert_attempts(conn, attempts)
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
        self.subscriptions.update(conn, changed, ("event_seq", "pending_lines"))
        insert_events(self.db.codec, conn, events)


def _named(
    events: Sequence[Event], drafts: Sequence[InvoiceDraft], numbers: Sequence[str],
    subscriptions: Sequence[Subscription],
) -> list[Event]:  # fmt: skip
    """``events`` with each ``invoice.created`` naming the invoice it created (``invoice``:
    its number), found by subscription and period start: a webhook's receiver and the
    outbox read the invoice by number, not by searching the subscription's invoices."""
    issued = {(d.subscription_id, d.period_start): number
              for d, number in zip(drafts, numbers, strict=True)}  # fmt: skip
    by_id = {s.id: s for s in subscriptions}
    out = []
    for ev in events:
        sub = by_id.get(ev.subject_id)
        if ev.type == "invoice.created" and "invoice" not in ev.payload and sub is not None:
            number = issued.get((sub.id, sub.date_of(ev.payload["period"])))
            if number is not None:
                ev = replace(ev, payload={"invoice": number, **ev.payload})
        out.append(ev)
    return out


def _overdue_named(conn: Connection, events: list[Event]) -> list[Event]:
    """``events`` with each ``invoice.overdue`` naming the invoice that is (``invoice``: the
    subscription's oldest invoice still open and due on the event's ``due_date``), read in
    one query for the batch."""
    overdue = [ev for ev in events if ev.type == "invoice.overdue" and "invoice" not in ev.payload]
    if not overdue:
        return events
    _I = t.invoices.c
    query = (
        select(_I.number, _I.subscription_id, _I.due_date)
        .where(_I.subscription_id.in_(sorted({ev.subject_id for ev in overdue})),
               _I.status == "open",
               _I.due_date.in_(sorted({date.fromisoformat(ev.payload["due_date"])
                                       for ev in overdue})))
        .order_by(_I.seq.desc())
    )  # fmt: skip
    # the oldest wins: rows come newest first, each overwritten by an older one
    oldest = {(sub_id, due.isoformat()): number for number, sub_id, due in conn.execute(query)}
    out = []
    for ev in events:
        named = ev.type == "invoice.overdue" and "invoice" not in ev.payload
        number = oldest.get((ev.subject_id, ev.payload.get("due_date"))) if named else None
        out.append(replace(ev, payload={"invoice": number, **ev.payload}) if number else ev)
    return out
