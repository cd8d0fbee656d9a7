"""The transactional outbox's consumer side in SQL: events not yet handed to notifications,
and the deliveries (one per message and channel) with their retries.

Events are written by whoever causes them (``rows.insert_events``, in the same transaction as
the change); ``Outbox`` reads them back as ``EventRecord`` values and keeps the deliveries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import bindparam, insert, literal_column, null, select, update

from abonnement.engine.events import Event
from abonnement.engine.records import DeliveryRecord, EventRecord, InvoiceRecord, NewDelivery
from abonnement.engine.status import DeliveryStatus
from abonnement.engine.subscriptions import Subscription
from abonnement.plugins.storage import tables as t
from abonnement.plugins.storage.database import Database
from abonnement.plugins.storage.invoices import invoice_record
from abonnement.plugins.storage.rows import insert_events
from abonnement.plugins.storage.subscriptions import Subscriptions, event_record

__all__ = ["Outbox"]

_E, _D, _S, _I = t.events.c, t.deliveries.c, t.subscriptions.c, t.invoices.c
_STATUS = {s.value: s for s in DeliveryStatus}
# a delivery with its event's columns, named apart from the delivery's own
_WITH_EVENT = select(
    t.deliveries,
    _E.id.label("e_id"), _E.type.label("e_type"), _E.subject_id.label("e_subject_id"),
    _E.seq.label("e_seq"), _E.on_date.label("e_on_date"), _E.payload.label("e_payload"),
    _E.delivered.label("e_delivered"),
).join(t.events, _E.id == _D.event_id)  # fmt: skip


# The outbox's bulk writes: executemany of tuples (``Rows.executemany``: the driver's own, COPY
# for inserts on PostgreSQL), values in the order named after each statement; a run writes
# and records a delivery for every message
_DELIVERY_COLUMNS = ("key", "event_id", "channel", "template", "recipient", "source", "status",
                     "attempts", "next_try_on", "claimed_by", "claimed_until")  # fmt: skip
_INSERT_DELIVERY = (
    insert(t.deliveries).inline().values({n: bindparam(n) for n in _DELIVERY_COLUMNS}),
    _DELIVERY_COLUMNS,
)
_ONE_TRY = {"attempts": _D.attempts + literal_column("1"), "claimed_by": null(),
            "claimed_until": null()}  # fmt: skip


def _recording(values: dict[str, Any], order: tuple[str, ...]) -> dict[bool, tuple[Any, tuple]]:
    """A try's write, by key (``k``): for anyone, and (``True``) only while the claimant
    ``c`` holds it."""
    mine = _D.key == bindparam("k")
    return {
        False: (update(t.deliveries).where(mine).values(**values), (*order, "k")),
        True: (update(t.deliveries).where(mine & (_D.claimed_by == bindparam("c")))
               .values(**values), (*order, "k", "c")),
    }  # fmt: skip


_SENT = _recording({"status": literal_column(f"'{DeliveryStatus.SENT}'"),
                    "sent_on": bindparam("on"), "error": null(), "next_try_on": null(),
                    **_ONE_TRY}, ("on",))  # fmt: skip
_SKIPPED = _recording({"status": literal_column(f"'{DeliveryStatus.SKIPPED}'"), "error": null(),
                       "next_try_on": null(), "claimed_by": null(), "claimed_until": null()},
                      ())  # fmt: skip
_TRIED = _recording({"status": bindparam("s"), "error": bindparam("e"),
                     "next_try_on": bindparam("r"), **_ONE_TRY}, ("s", "r", "e"))  # fmt: skip


class Outbox:
    """Events and deliveries of one ``Database``; workflow changes go through
    ``subscriptions``."""

    def __init__(self, db: Database, subscriptions: Subscriptions):
        self.db = db
        self.subscriptions = subscriptions

    def undelivered_events(
        self, limit: int = 500, subjects: Sequence[str] | None = None
    ) -> list[EventRecord]:
        """The oldest events not handed over yet, in the order they were written; with
        ``subjects``, only those about these subscriptions (or invoices)."""
        query = select(t.events).where(_E.delivered.is_(False))
        if subjects is not None:
            query = query.where(_E.subject_id.in_(list(subjects)))
        query = query.order_by(_E.id).limit(limit)
        with self.db.tx() as conn:
            return [event_record(r) for r in conn.execute(query)]

    def hand_over(
        self,
        event_ids: Sequence[int],
        deliveries: Sequence[NewDelivery],
        changed: Sequence[Subscription] = (),
        events: Sequence[Event] = (),
        based_on: Mapping[str, int] | None = None,
        *,
        claimant: str | None = None,
        claimed_until: int | None = None,
    ) -> bool:
        """In one transaction: the deliveries the events ask for, what their workflows changed
        (subscriptions and the events recording it), and the events marked handed over.

        ``based_on`` gives each changed subscription's event count when it was read: if another
        change came in since, nothing is written and the answer is False (read again, retry).
        So too when another process handed over one of the events first: the events are
        locked (in id order) and must all still be waiting, so each is handed over once.
        With ``claimant``, the new deliveries are written claimed by it until
        ``claimed_until``: the process handing them over sends them (not those held until a
        later day, ``next_try_on``: they wait for it)."""
        with self.db.tx() as conn:
            if event_ids:
                waiting = (select(_E.id).where(_E.id.in_(list(event_ids)), _E.delivered.is_(False))
                           .order_by(_E.id))  # fmt: skip
                if not self.db.sqlite:  # SQLite: the transaction holds the write lock already
                    waiting = waiting.with_for_update()
                if len(conn.execute(waiting).all()) != len(set(event_ids)):
                    return False
            if based_on:
                query = select(_S.id, _S.event_seq).where(_S.id.in_(sorted(based_on)))
                query = query.order_by(_S.id)
                if not self.db.sqlite:
                    query = query.with_for_update()
                now = dict(conn.execute(query).all())
                if any(now.get(sub_id) != seq for sub_id, seq in based_on.items()):
                    return False
            keys = [d.key for d in deliveries]
            known = set()
            if keys:
                known = set(conn.execute(select(_D.key).where(_D.key.in_(keys))).scalars())
            # one held until a later day (``next_try_on``) is not claimed: it waits
            day = self.db.codec.day_out
            self.db.codec.executemany(conn, *_INSERT_DELIVERY, [
                (d.key, d.event_id, d.channel, d.template, d.recipient, d.source,
                 DeliveryStatus.PENDING.value, 0, day(d.next_try_on),
                 claimant if d.next_try_on is None else None,
                 claimed_until if claimant and d.next_try_on is None else None)
                for d in deliveries if d.key not in known
            ])  # fmt: skip
            self.subscriptions.update(conn, changed)
            insert_events(self.db.codec, conn, events)
            if event_ids:
                conn.execute(update(t.events).where(_E.id.in_(event_ids)).values(delivered=True))
        return True

    def due_deliveries(self, on: date, limit: int = 500, after: str = "") -> list[DeliveryRecord]:
        """Pending deliveries to try on ``on``, by key, from after ``after``."""
        query = (
            _WITH_EVENT.where(
                _D.status == DeliveryStatus.PENDING,
                (_D.next_try_on.is_(None)) | (_D.next_try_on <= on),
                _D.key > after,
            )
            .order_by(_D.key)
            .limit(limit)
        )
        with self.db.tx() as conn:
            return [_delivery(r) for r in conn.execute(query)]

    def delivery_result(
        self, key: str, on: date, *, error: str | None = None, retry_on: date | None = None
    ) -> None:
        """Record one try: sent (no ``error``), to try again on ``retry_on``, or given up."""
        self.delivery_results([(key, error, retry_on)], on)

    def claim_deliveries(
        self,
        on: date,
        claimant: str,
        now: int,
        until: int,
        *,
        limit: int = 500,
        after: str = "",
        subjects: Sequence[str] | None = None,
    ) -> list[DeliveryRecord]:
        """Claim up to ``limit`` pending deliveries due on ``on`` (by key, after ``after``) for
        ``claimant`` until ``until`` (epoch seconds) and return them with their events; with
        ``subjects``, only those of events about these subscriptions.

        A delivery another process holds is skipped until its claim lapses (``now`` past its
        ``claimed_until``). The claim is one UPDATE in its own short transaction: on
        PostgreSQL its rows are picked ``FOR UPDATE SKIP LOCKED`` (concurrent claimants take
        different rows, none waits), on SQLite the statement holds the database's write lock
        from its first read to its commit, as ``BEGIN IMMEDIATE`` would."""
        due = (
            select(_D.key)
            .where(
                _D.status == DeliveryStatus.PENDING,
                (_D.next_try_on.is_(None)) | (_D.next_try_on <= on),
                (_D.claimed_until.is_(None)) | (_D.claimed_until < now),
                _D.key > after,
            )
            .order_by(_D.key)
            .limit(limit)
        )
        if subjects is not None:
            about = select(_E.id).where(_E.subject_id.in_(list(subjects)))
            due = due.where(_D.event_id.in_(about.scalar_subquery()))
        if not self.db.sqlite:
            due = due.with_for_update(skip_locked=True)
        claim = (
            update(t.deliveries)
            .where(_D.key.in_(due.scalar_subquery()))
            .values(claimed_by=claimant, claimed_until=until)
        )
        mine = _WITH_EVENT.where(
            _D.claimed_by == claimant, _D.status == DeliveryStatus.PENDING, _D.key > after
        ).order_by(_D.key)
        with self.db.tx() as conn:
            if not conn.execute(claim).rowcount:
                return []
        with self.db.tx() as conn:
            return [_delivery(r) for r in conn.execute(mine)]

    def renew_claims(self, claimant: str, until: int) -> None:
        """Keep what ``claimant`` holds claimed until ``until`` (what it recorded, it holds
        no more: recording a try releases its claim)."""
        with self.db.tx() as conn:
            conn.execute(update(t.deliveries).where(_D.claimed_by == claimant)
                         .values(claimed_until=until))  # fmt: skip

    def release_claims(self, claimant: str) -> None:
        """Give back what ``claimant`` claimed and did not record: another process (or the
        next run) may send it."""
        with self.db.tx() as conn:
            conn.execute(update(t.deliveries).where(_D.claimed_by == claimant)
                         .values(claimed_by=None, claimed_until=None))  # fmt: skip

    def delivery_results(
        self,
        results: Sequence[tuple[str, str | None, date | None]],
        on: date,
        claimant: str | None = None,
        skipped: Sequence[str] = (),
    ) -> None:
        """Record many tries in one transaction, each ``(key, error, retry_on)``: sent (no
        error), to try again on ``retry_on``, or given up; the claim is released. With
        ``claimant``, only rows it still holds are written (one whose claim lapsed and was
        taken over is the new holder's to record)."""
        held = claimant is not None
        mine = (claimant,) if held else ()
        day = self.db.codec.day_out
        sent = [(day(on), key, *mine) for key, error, _ in results if error is None]
        tried = [
            (DeliveryStatus.PENDING.value if retry_on else DeliveryStatus.FAILED.value,
             day(retry_on), error[:1000], key, *mine)
            for key, error, retry_on in results if error is not None
        ]  # fmt: skip
        many = self.db.codec.executemany
        with self.db.tx() as conn:
            many(conn, *_SENT[held], sent)
            many(conn, *_SKIPPED[held], [(key, *mine) for key in skipped])
            many(conn, *_TRIED[held], tried)

    def invoice_headers(self, numbers: Sequence[str]) -> list[InvoiceRecord]:
        """The invoices numbered ``numbers`` without their lines (any number of them)."""
        out: list[InvoiceRecord] = []
        wanted = sorted(set(numbers))
        with self.db.tx() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                out += [invoice_record(r) for r in conn.execute(
                    select(t.invoices).where(_I.number.in_(chunk)))]  # fmt: skip
        return out

    def deliveries(self, status: str | None = None) -> list[DeliveryRecord]:
        """Every delivery (of one ``status``), by event and key."""
        query = _WITH_EVENT.order_by(_D.event_id, _D.key)
        if status:
            query = query.where(_D.status == status)
        with self.db.tx() as conn:
            return [_delivery(r) for r in conn.execute(query)]


def _delivery(row: Any) -> DeliveryRecord:
    event = EventRecord(row.e_id, row.e_type, row.e_subject_id, row.e_seq, row.e_on_date,
                        row.e_payload or {}, bool(row.e_delivered))  # fmt: skip
    return DeliveryRecord(row.key, row.channel, row.template, row.recipient, row.source,
                          _STATUS[row.status], event, row.attempts, row.next_try_on,
                          row.sent_on, row.error)  # fmt: skip
