"""Payment attempts in SQL: what is due to be charged, pending rows, and recording outcomes.

An attempt row is written ``pending`` and committed before the processor is called; its
outcome is written in a second transaction with the invoice and subscription changes it
causes, as ``engine.outcomes`` decides them. ``Payments`` also records what happens to an
invoice outside the billing run: a purchase, a payment by hand, a refund.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

from sqlalchemy import (
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal_column,
    null,
    select,
    type_coerce,
    update,
)
from sqlalchemy.exc import IntegrityError

from abonnement.engine.collection import Attempt, ChargeResult, Outcome
from abonnement.engine.events import Event
from abonnement.engine.invoicing import InvoiceDraft
from abonnement.engine.money import Money
from abonnement.engine.outcomes import (
    Standing,
    after_dues,
    after_payment,
    paid_by_hand,
    purchased,
    reads_failing,
    recorded,
)
from abonnement.engine.records import CreditNoteRecord, InvoiceRecord, PaymentRecord
from abonnement.engine.status import InvoiceStatus, PaymentStatus
from abonnement.engine.subscriptions import Subscription
from abonnement.errors import AlreadyCollecting, AlreadyExists, InvalidInput, NotFound
from abonnement.plugins.storage import tables as t
from abonnement.plugins.storage.database import Database
from abonnement.plugins.storage.invoices import Invoices, of_subscription
from abonnement.plugins.storage.links import Links, key_digest
from abonnement.plugins.storage.rows import fetch, insert_events, raw_select
from abonnement.plugins.storage.subscriptions import Subscriptions
from abonnement.plugins.storage.tables import to_micros

__all__ = ["Payments"]

_PAYMENT_STATUS = {s.value: s for s in PaymentStatus}  # a row's text → its member

_OUTCOME_COLUMNS = ("status", "event_seq", "canceled_on", "next_event_on")
_PAYMENT_COLUMNS = ("invoice_number", "attempt", "amount", "currency", "method", "status",
                    "idempotency_key", "on_date", "manual")  # fmt: skip
_INSERT_PAYMENT = (
    insert(t.payments).inline().values({n: bindparam(n) for n in _PAYMENT_COLUMNS}),
    _PAYMENT_COLUMNS,
)
_P = t.payments.c
_I = t.invoices.c
_C = t.credit_notes.c
_S = t.subscriptions.c
_L = t.invoice_subscriptions.c
# A subscription the billing run may charge: automatic collection with a saved method. One
# switched to manual since an invoice was due (its method dropped) has nothing to charge.
_CHARGEABLE = and_(
    _S.collection_mode == "automatic", _S.payment_token.is_not(None), _S.payment_token != ""
)
# The subscription an invoice's payments move: its own, or a purchase's first owner
_OWNER = func.coalesce(
    _I.subscription_id,
    select(_L.subscription_id)
    .where(_L.invoice_number == _I.number, _L.position == 0)
    .scalar_subquery(),
)
# What charging reads per batch, built once: the keys still pending (to charge), still open
# (to record), and the subscriptions' standing
_PENDING_OF = select(_P.idempotency_key).where(
    _P.idempotency_key.in_(bindparam("keys", expanding=True)),
    _P.status == PaymentStatus.PENDING)  # fmt: skip
_OPEN_OF = select(_P.idempotency_key).where(
    _P.idempotency_key.in_(bindparam("keys", expanding=True)),
    _P.status.in_((PaymentStatus.PENDING, PaymentStatus.PROCESSING)))  # fmt: skip
_STANDING_OF = (raw_select(t.subscriptions, ("id", "status", "event_seq", "canceled_on"))
                .where(_S.id.in_(bindparam("ids", expanding=True))).order_by(_S.id))  # fmt: skip
# their open invoices whose automatic try failed (``Standing.failing``)
_FAILING_OF = select(_I.subscription_id, _I.number).where(
    _I.subscription_id.in_(bindparam("ids", expanding=True)), _I.status == InvoiceStatus.OPEN,
    _I.first_failure_on.is_not(None))  # fmt: skip
# An outcome's writes: executemany of tuples, values in the order named after each statement
_SET_PAYMENT = (
    update(t.payments)
    .where(_P.idempotency_key == bindparam("k"))
    .values(status=bindparam("s"), failure_code=bindparam("c"), reference=bindparam("r"),
            check_on=bindparam("d"))
), ("s", "c", "r", "d", "k")  # fmt: skip
_PAID = (
    update(t.invoices)
    .where(_I.number == bindparam("n"))
    .values(status=literal_column(f"'{InvoiceStatus.PAID}'"), amount_paid=_I.total,
            collect_on=null())
), ("n",)  # fmt: skip
_PARKED = update(t.invoices).where(_I.number == bindparam("n")).values(collect_on=null()), ("n",)
_RETRIED = (
    update(t.invoices)
    .where(_I.number == bindparam("n"))
    .values(collect_on=bindparam("on"), auto_retries=_I.auto_retries + literal_column("1"),
            first_failure_on=bindparam("first"))
), ("on", "first", "n")  # fmt: skip
_UNSENT = (
    update(t.invoices)
    .where(_I.number == bindparam("n"), _I.status == literal_column(f"'{InvoiceStatus.OPEN}'"))
    .values(collect_on=bindparam("on"))
), ("on", "n")  # fmt: skip
# ``engine.outcomes.InvoiceChange.kind`` → its statement, and the statement's values from
# (change, invoice number, date encoder); ``kept`` writes nothing
_INVOICE_WRITES: dict[str, tuple[tuple[Any, tuple[str, ...]], Any]] = {
    "paid": (_PAID, lambda c, n, day: (n,)),
    "parked": (_PARKED, lambda c, n, day: (n,)),
    "retry": (_RETRIED, lambda c, n, day: (day(c.collect_on), day(c.first_failure_on), n)),
    "unsent": (_UNSENT, lambda c, n, day: (day(c.collect_on), n)),
}


def _attempt(row: Any, on: date, instance: str, *, manual: bool = False) -> Attempt:
    return Attempt(
        invoice_number=row.number,
        subscription_id=row.subscription_id,
        attempt=row.tries + 1,
        amount=Money(row.due, row.currency).rounded(),
        token=row.payment_token or "",
        method_type=row.payment_type or "card",
        on=on,
        retry_index=row.auto_retries,
        first_failure_on=row.first_failure_on,
        manual=manual,
        instance=instance,
    )


class Payments:
    """Payment attempts of one ``Database``; the invoices and subscriptions they move go
    through ``invoices`` and ``subscriptions``."""

    def __init__(self, db: Database, subscriptions: Subscriptions, invoices: Invoices):
        self.db = db
        self.subscriptions = subscriptions
        self.invoices = invoices

    def _invoice_query(self, *, purchases: bool = True) -> Any:
        """Invoices as attempts to make; ``purchases=False`` leaves out those of a purchase
        (the billing run's claim: they are never collected automatically, and its join stays
        on the plain column)."""
        tries = select(func.count()).where(_P.invoice_number == _I.number).scalar_subquery()
        owner = _OWNER if purchases else _I.subscription_id
        return (
            select(
                _I.number,
                _I.seq,
                owner.label("subscription_id"),
                _I.currency,
                _I.auto_retries,
                _I.first_failure_on,
                type_coerce(_I.total - _I.amount_paid, t.Micros).label("due"),
                _S.payment_token,
                _S.payment_type,
                tries.label("tries"),
            )
            .select_from(t.invoices)
            .join(t.subscriptions, _S.id == owner)
        )

    def begin_collections(self, day: date, limit: int) -> list[Attempt]:
        """Claim up to ``limit`` invoices to charge on ``day`` and write their attempts
        ``pending``, in one transaction; concurrent workers skip claimed invoices. Those
        due whose subscription has nothing to charge any more end their automatic
        collection in the same transaction (see ``Storage.begin_collections``)."""
        pending = exists().where(
            and_(_P.invoice_number == _I.number, _P.status == PaymentStatus.PENDING)
        )
        due = (_I.collect_on == day, _I.status == InvoiceStatus.OPEN, ~pending)
        query = (
            self._invoice_query(purchases=False)
            .where(*due, _CHARGEABLE)
            .order_by(_I.seq)
            .limit(limit)
        )
        if not self.db.sqlite:
            query = query.with_for_update(skip_locked=True, of=t.invoices)
        instance = self.db.instance_id()
        # on SQLite the transaction holds the write lock from the start: nothing claims
        # between this read and its writes
        with self.db.tx() as conn:
            conn.execute(
                update(t.invoices)
                .where(*due, _I.subscription_id.in_(select(_S.id).where(~_CHARGEABLE)))
                .values(collect_on=None)
            )
            rows = conn.execute(query).all()
            if rows and not self.db.sqlite:
                # Read again, now that they are held: a manual collection that committed its
                # attempt while this statement waited is seen by a new statement only (read
                # committed), and then counts (its invoice is dropped, the tries are fresh).
                rows = conn.execute(
                    self._invoice_query(purchases=False)
                    .where(_I.number.in_([r.number for r in rows]),
                           _I.status == InvoiceStatus.OPEN, ~pending, _CHARGEABLE)
                    .order_by(_I.seq)
                ).all()  # fmt: skip
            attempts = [_attempt(row, day, instance) for row in rows]
            self.insert_attempts(conn, attempts)
            if attempts:
                # Changing the claimed rows makes a worker whose query started before this
                # commit re-check them (and drop them); the outcome sets the next date.
                numbers = [a.invoice_number for a in attempts]
                conn.execute(
                    update(t.invoices).where(_I.number.in_(numbers)).values(collect_on=None)
                )
        return attempts

    def claim_invoices(
        self, numbers: Sequence[str], on: date, *, skip_busy: bool = False,
        method: tuple[str, str] | None = None,
    ) -> list[Attempt]:  # fmt: skip
        """Claim the invoices ``numbers`` for a manual try on ``on`` and commit their attempts
        ``pending`` (for what is still unpaid), in one transaction that holds them while it
        reads (``FOR UPDATE`` on PostgreSQL, the write lock on SQLite). Those no longer open
        are left out. One with an attempt pending or processing is being collected by
        another caller: ``AlreadyCollecting`` (``skip_busy``: left out too), so two callers
        racing charge it once. ``method``: (token, type) charged instead of the
        subscription's."""
        if not numbers:
            return []
        instance = self.db.instance_id()
        live = (PaymentStatus.PENDING, PaymentStatus.PROCESSING)
        with self.db.tx() as conn:
            held = select(_I.number).where(_I.number.in_(list(numbers))).order_by(_I.number)
            if not self.db.sqlite:  # in one order, so two claims of several never deadlock
                held = held.with_for_update(of=t.invoices)
            conn.execute(held).all()
            # read once they are held: what a caller before committed is seen now
            busy = {row.invoice_number: row.attempt for row in conn.execute(
                select(_P.invoice_number, _P.attempt).where(
                    _P.invoice_number.in_(list(numbers)), _P.status.in_(live)))}  # fmt: skip
            if busy and not skip_busy:
                number, attempt = min(busy.items())
                raise AlreadyCollecting(
                    f"invoice {number} is already being collected (attempt {attempt} is "
                    "pending); its outcome is the one, nothing more is charged"
                )
            query = self._invoice_query().where(
                _I.number.in_([n for n in numbers if n not in busy]),
                _I.status == InvoiceStatus.OPEN,
            )
            attempts = [_attempt(row, on, instance, manual=True)
                        for row in conn.execute(query.order_by(_I.seq))]  # fmt: skip
            if method is not None:
                attempts = [replace(a, token=method[0], method_type=method[1]) for a in attempts]
            self.insert_attempts(conn, attempts)
        return attempts

    def open_invoices(self, subscription_id: str, on: date) -> list[Attempt]:
        """Every open invoice of a subscription, as a new (manual) try on ``on``."""
        query = (
            self._invoice_query()
            .where(of_subscription(subscription_id), _I.status == InvoiceStatus.OPEN)
            .order_by(_I.seq)
        )
        instance = self.db.instance_id()
        with self.db.tx() as conn:
            return [_attempt(row, on, instance, manual=True) for row in conn.execute(query)]

    def invoice_attempt(self, number: str, on: date) -> Attempt | None:
        """A manual try at one open invoice."""
        query = self._invoice_query().where(_I.number == number)
        instance = self.db.instance_id()
        with self.db.tx() as conn:
            row = conn.execute(query).first()
        return _attempt(row, on, instance, manual=True) if row else None

    def begin_attempts(self, attempts: Sequence[Attempt]) -> None:
        """Write the attempts ``pending`` and commit, before the processor hears of them."""
        with self.db.tx() as conn:
            self.insert_attempts(conn, attempts)

    def insert_attempts(self, conn: Any, attempts: Sequence[Attempt]) -> None:
        if attempts:
            day = self.db.codec.day_out
            self.db.codec.executemany(conn, *_INSERT_PAYMENT, [
                (a.invoice_number, a.attempt, to_micros(a.amount.amount), a.amount.currency,
                 a.method_type, PaymentStatus.PENDING, a.key, day(a.on), a.manual)
                for a in attempts
            ])  # fmt: skip

    def pending_attempts(self) -> list[Attempt]:
        """Attempts left pending, save those a live worker holds (see ``holding``)."""
        return self._attempts_where(_P.status == PaymentStatus.PENDING, skip_held=True)

    def still_pending(self, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` are still pending, held (inside ``holding``) until recorded. An
        attempt committed pending stays unheld until this: one a reconciliation recorded
        meanwhile is not pending any more, and must not be charged."""
        query = _PENDING_OF if self.db.sqlite else _PENDING_OF.with_for_update()
        with self.db.tx() as conn:
            return {row[0] for row in fetch(conn, query, {"keys": list(keys)})}

    def processing_due(self, day: date) -> list[Attempt]:
        """Bank debits to ask about on ``day``. Claiming moves their check to the next day,
        so another worker does not ask too, and a crash only delays the question."""
        due = self._attempts_where((_P.status == PaymentStatus.PROCESSING) & (_P.check_on <= day))
        if due:
            with self.db.tx() as conn:
                claimed = (
                    conn.execute(
                        update(t.payments)
                        .where(
                            _P.idempotency_key.in_([a.key for a in due]),
                            _P.check_on <= day,
                            _P.status == PaymentStatus.PROCESSING,
                        )
                        .values(check_on=day + timedelta(days=1))
                        .returning(_P.idempotency_key)
                    )
                    .scalars()
                    .all()
                )
            due = [a for a in due if a.key in set(claimed)]
        return due

    def open_attempt(self, key: str) -> Attempt | None:
        """The attempt with idempotency ``key`` while it is pending or processing (what a
        processor's webhook may settle), else None."""
        live = (PaymentStatus.PENDING, PaymentStatus.PROCESSING)
        found = self._attempts_where((_P.idempotency_key == key) & _P.status.in_(live))
        return found[0] if found else None

    def _attempts_where(self, condition: Any, *, skip_held: bool = False) -> list[Attempt]:
        query = (
            select(
                _P.invoice_number,
                _P.attempt,
                _P.amount,
                _P.currency,
                _P.method,
                _P.on_date,
                _P.manual,
                _P.status,
                _P.idempotency_key,
                _OWNER.label("subscription_id"),
                _I.auto_retries,
                _I.first_failure_on,
                _S.payment_token,
                _P.idempotency_key,
            )
            .join(t.invoices, _I.number == _P.invoice_number)
            .outerjoin(t.subscriptions, _S.id == _OWNER)
            .where(condition)
            .order_by(_P.id)
        )
        if skip_held and not self.db.sqlite:
            query = query.with_for_update(skip_locked=True, of=t.payments)
        with self.db.tx() as conn:
            return [
                Attempt(
                    row.invoice_number,
                    row.subscription_id,
                    row.attempt,
                    Money(row.amount, row.currency).rounded(),
                    row.payment_token or "",
                    row.method,
                    row.on_date,
                    row.auto_retries,
                    row.first_failure_on,
                    row.manual,
                    _PAYMENT_STATUS[row.status],
                    stored_key=row.idempotency_key,  # as it was sent, whatever its format
                )
                for row in conn.execute(query)
            ]

    def finish_attempts(
        self, finished: Sequence[tuple[Attempt, ChargeResult | None, Outcome | None]], day: date
    ) -> None:
        """Record outcomes in one transaction; a None result means the processor never saw
        the key (the invoice is tried again). Batched: one statement per kind of change."""
        if not finished:
            return
        with self.db.tx() as conn:
            # Only attempts still open move: recording one twice (two workers, or a rerun
            # reconciling a live one) changes nothing the second time.
            keys = [a.key for a, _, _ in finished]
            still_open = _OPEN_OF if self.db.sqlite else _OPEN_OF.with_for_update()
            open_keys = {row[0] for row in fetch(conn, still_open, {"keys": keys})}
            todo = [(a, r, o) for a, r, o in finished if a.key in open_keys]
            sub_ids = {a.subscription_id for a, r, o in todo if a.subscription_id and o}
            # Wait for, then hold, the subscriptions: a worker stepping them must not interleave.
            # An outcome reads and moves only their standing (status, event count) and, where
            # the rule asks (``reads_failing``), their other failing invoices.
            subs: dict[str, Standing] = {}
            if sub_ids:
                query = _STANDING_OF if self.db.sqlite else _STANDING_OF.with_for_update()
                day_in = self.db.codec.day_in
                subs = {r[0]: Standing(r[0], r[1], r[2], day_in(r[3]))
                        for r in fetch(conn, query, {"ids": list(sub_ids)})}  # fmt: skip
                subs.update(self._failing(conn, subs.values()))
            before = {sub_id: standing.status for sub_id, standing in subs.items()}
            payments: list[tuple] = []
            invoices: dict[str, list[tuple]] = {kind: [] for kind in _INVOICE_WRITES}
            day_out = self.db.codec.day_out
            events: list[Event] = []
            for attempt, result, outcome in todo:
                sub = subs.get(attempt.subscription_id or "")
                done = recorded(attempt, result, outcome, sub, day)
                payments.append((done.payment_status, done.failure_code, done.reference,
                                 day_out(done.check_on), attempt.key))  # fmt: skip
                change = done.invoice
                if change.kind in invoices:  # ``kept``: nothing to write
                    values = _INVOICE_WRITES[change.kind][1]
                    invoices[change.kind].append(values(change, attempt.invoice_number, day_out))
                if done.standing is not None:
                    subs[done.standing.id] = done.standing
                    events.extend(done.events)
            many = self.db.codec.executemany
            many(conn, *_SET_PAYMENT, payments)
            for kind, (statement, _) in _INVOICE_WRITES.items():
                many(conn, *statement, invoices[kind])
            # A new status moves the next event date too, which needs the whole subscription;
            # most outcomes (a paid renewal) only count events.
            moved = {s.id: s for s in subs.values() if s.status != before[s.id]}
            counted = [s for s in subs.values() if s.id not in moved]
            self.subscriptions.update(conn, counted, ("event_seq",))
            if moved:
                full = self.subscriptions.load(_S.id.in_(list(moved)), order=_S.id, conn=conn,
                                               items=False)  # fmt: skip
                self.subscriptions.update(conn, [
                    replace(sub, status=moved[sub.id].status, event_seq=moved[sub.id].event_seq,
                            canceled_on=moved[sub.id].canceled_on)
                    for sub in full
                ], _OUTCOME_COLUMNS)  # fmt: skip
            insert_events(self.db.codec, conn, events)
            # an invoice paid by hand, at once or when its bank debit settles: each of its
            # subscriptions (a purchase's has several) has its oldest open due date read again
            paid = sorted(
                {a.invoice_number for a, _, o in todo if a.manual and o and o.invoice_paid}
            )
            settled = sorted({sub_id for n in paid for sub_id in self.invoices.owners(n, conn)})
            if settled:
                self._settle(conn, settled, day)

    def _failing(self, conn: Any, standings: Any) -> dict[str, Standing]:
        """``standings`` the outcome rule asks about with their failing invoices."""
        asked = {s.id: s for s in standings if reads_failing(s.status)}
        if not asked:  # the usual batch: paid renewals of active subscriptions
            return {}
        failing: dict[str, set[str]] = {sub_id: set() for sub_id in asked}
        for sub_id, number in fetch(conn, _FAILING_OF, {"ids": list(asked)}):
            failing[sub_id].add(number)
        return {sub_id: replace(s, failing=frozenset(failing[sub_id]))
                for sub_id, s in asked.items()}  # fmt: skip

    def record_checkout(
        self,
        subs: Sequence[Subscription],
        draft: InvoiceDraft,
        attempt: Attempt | None,
        result: ChargeResult | None,
        day: date,
        number_format: str,
        source: str = "checkout",
        bases: Sequence[Mapping[str, Any]] | None = None,
        total: Money | None = None,
        key: str | None = None,
    ) -> str | None:
        """A purchase, all at once: its subscriptions, its invoice and its payment (none when
        the invoice is left open for manual payment), with what ``engine.outcomes.purchased``
        decides. That is called here because the events name the invoice's number, given out
        in this transaction under the counter's lock. ``bases``: each subscription's recurring
        definition for its history (``mrr_basis``), when the caller priced it; ``total``: the
        invoice's (one of zero is paid at issue). ``key``: the purchase's own key, kept among
        the single-use keys; None, the whole transaction undone, when it was used already
        (a repeated or concurrent purchase: its primary key decides)."""
        try:
            return self._record_checkout(subs, draft, attempt, result, day, number_format,
                                         source, bases, total, key)  # fmt: skip
        except IntegrityError:
            if key is not None and Links(self.db).purchase_invoice(key) is not None:
                return None
            raise

    def _record_checkout(
        self,
        subs: Sequence[Subscription],
        draft: InvoiceDraft,
        attempt: Attempt | None,
        result: ChargeResult | None,
        day: date,
        number_format: str,
        source: str,
        bases: Sequence[Mapping[str, Any]] | None,
        total: Money | None,
        key: str | None,
    ) -> str:
        with self.db.tx() as conn:
            (number,) = self.invoices.insert(conn, [draft], number_format)
            if key is not None:  # first: a repeated purchase stops before anything else
                used = {"digest": key_digest(key), "subject": number, "used_on": day}
                conn.execute(t.used_links.insert().values(kind="purchase", **used))
            done = purchased(subs, number, attempt, result, day, bases, total)
            self.subscriptions.insert(done.subscriptions, source, conn=conn)
            if done.owners:
                conn.execute(t.invoice_subscriptions.insert(), [
                    {"subscription_id": sub_id, "invoice_number": number, "position": i}
                    for i, sub_id in enumerate(done.owners)
                ])  # fmt: skip
            conn.execute(update(t.invoices).where(_I.number == number).values(
                status=done.invoice_status, amount_paid=done.amount_paid))  # fmt: skip
            if attempt is not None and result is not None:
                conn.execute(t.payments.insert().values(
                    invoice_number=number, attempt=attempt.attempt, amount=attempt.amount.amount,
                    currency=attempt.amount.currency, method=attempt.method_type,
                    status=done.payment_status, reference=result.reference,
                    idempotency_key=attempt.key, on_date=day, manual=False,
                    check_on=done.check_on))  # fmt: skip
            insert_events(self.db.codec, conn, done.events)
        return number

    def record_refund(
        self, number: str, amount: Money, method: str, key: str, reference: str | None,
        on: date, credit_note_format: str = "CN-{seq:04d}",
    ) -> tuple[int, str]:  # fmt: skip
        """A refund is a payment row of its own (a negative amount) and a credit note
        numbered from the ``credit_note`` counter, in one transaction; the invoice and the
        subscription stay as they are. Returns the attempt and the credit note's number."""
        try:
            return self._record_refund(number, amount, method, key, reference, on,
                                       credit_note_format)  # fmt: skip
        except IntegrityError:  # the same key: a concurrent or repeated call recorded it
            raise AlreadyExists(f"this refund of invoice {number} is recorded already") from None

    def _record_refund(
        self, number: str, amount: Money, method: str, key: str, reference: str | None,
        on: date, credit_note_format: str,
    ) -> tuple[int, str]:  # fmt: skip
        with self.db.tx() as conn:
            if not self.db.sqlite:  # its attempt number is the count: one writer at a time
                conn.execute(select(_I.number).where(_I.number == number).with_for_update())
            # the counter first: its row stays locked until commit, so concurrent refunds
            # take turns (and a rolled-back one gives its number back: the series has no gap)
            seq = conn.execute(
                update(t.sequences).where(t.sequences.c.name == "credit_note")
                .values(value=t.sequences.c.value + 1).returning(t.sequences.c.value)
            ).scalar_one()  # fmt: skip
            attempt = conn.execute(select(func.count()).where(_P.invoice_number == number)
                                   ).scalar_one() + 1  # fmt: skip
            payment_id = conn.execute(t.payments.insert().values(
                invoice_number=number, attempt=attempt, amount=-amount.amount,
                currency=amount.currency, method=method, status=PaymentStatus.REFUNDED,
                idempotency_key=key, reference=reference, on_date=on, manual=True,
            ).returning(_P.id)).scalar_one()  # fmt: skip
            credit_note = credit_note_format.format(seq=seq)
            conn.execute(t.credit_notes.insert().values(
                number=credit_note, seq=seq, invoice_number=number, payment_id=payment_id,
                amount=amount.amount, currency=amount.currency, issue_date=on))  # fmt: skip
        return attempt, credit_note

    def credit_notes(self, invoice_number: str | None = None) -> list[CreditNoteRecord]:
        """Credit notes in the order they were issued (of one invoice)."""
        query = select(t.credit_notes).order_by(_C.seq)
        if invoice_number:
            query = query.where(_C.invoice_number == invoice_number)
        with self.db.tx() as conn:
            return [_credit_note(r) for r in conn.execute(query)]

    def credit_note(self, number: str) -> CreditNoteRecord | None:
        with self.db.tx() as conn:
            row = conn.execute(select(t.credit_notes).where(_C.number == number)).first()
        return _credit_note(row) if row is not None else None

    def payments(
        self, subscription_id: str | None = None, invoice_number: str | None = None
    ) -> list[PaymentRecord]:
        query = (
            select(t.payments, _OWNER.label("subscription_id"))
            .join(t.invoices, _I.number == _P.invoice_number)
            .order_by(_P.id)
        )
        if subscription_id:
            query = query.where(of_subscription(subscription_id))
        if invoice_number:
            query = query.where(_P.invoice_number == invoice_number)
        with self.db.tx() as conn:
            return [
                PaymentRecord(
                    id=r.id,
                    invoice_number=r.invoice_number,
                    subscription_id=r.subscription_id,
                    attempt=r.attempt,
                    amount=Money(r.amount, r.currency),
                    method=r.method,
                    status=_PAYMENT_STATUS[r.status],
                    idempotency_key=r.idempotency_key,
                    on_date=r.on_date,
                    failure_code=r.failure_code,
                    reference=r.reference,
                    check_on=r.check_on,
                    manual=bool(r.manual),
                )
                for r in conn.execute(query)
            ]

    def manual_tries(self, invoice_number: str) -> int:
        with self.db.tx() as conn:
            return conn.execute(
                select(func.count()).where(_P.invoice_number == invoice_number, _P.manual.is_(True))
            ).scalar_one()

    def earliest_collection(self, until: date) -> date | None:
        with self.db.tx() as conn:
            first = conn.execute(
                select(func.min(_I.collect_on)).where(
                    _I.collect_on <= until, _I.status == InvoiceStatus.OPEN
                )
            ).scalar()
            check = conn.execute(
                select(func.min(_P.check_on)).where(
                    _P.check_on <= until, _P.status == PaymentStatus.PROCESSING
                )
            ).scalar()
        return min((d for d in (first, check) if d is not None), default=None)

    def pay_invoice(self, number: str, amount: Money, on: date, method: str) -> InvoiceRecord:
        """Record a payment made outside the processor, with what ``engine.outcomes`` makes
        of it: the invoice's status, its subscriptions' standing and the events a charge
        records (``paid_by_hand``, ``after_payment``, ``after_dues``)."""
        held = select(t.invoices).where(_I.number == number)
        if not self.db.sqlite:  # two payments by hand at once: each adds to the other's
            held = held.with_for_update()
        with self.db.tx() as conn:
            row = conn.execute(held).first()
            if row is None:
                raise NotFound("invoice", number)
            pending = (_P.invoice_number == number) & (_P.status == PaymentStatus.PENDING)
            charging = conn.execute(select(_P.attempt).where(pending)).first()
            if charging is not None:  # its outcome first: recorded now, both might count
                raise AlreadyCollecting(f"invoice {number} is already being collected (attempt "
                                        f"{charging.attempt} is pending); try again when it "
                                        "has an outcome")  # fmt: skip
            due = row.total - row.amount_paid
            if row.status == InvoiceStatus.OPEN and amount.amount > due:
                # checked again here, holding the invoice: two payments racing may not overpay
                most = Money(due, amount.currency).format_amount()
                raise InvalidInput(f"--amount: at most {most} {amount.currency} is due on "
                                   f"invoice {number}")  # fmt: skip
            status, outcome = paid_by_hand(number, row.status, row.amount_paid, row.total,
                                           amount.amount)  # fmt: skip
            paid = row.amount_paid + amount.amount
            conn.execute(update(t.invoices).where(_I.number == number)
                         .values(amount_paid=paid, status=status))  # fmt: skip
            attempt = conn.execute(select(func.count()).where(
                _P.invoice_number == number)).scalar_one() + 1  # fmt: skip
            conn.execute(t.payments.insert().values(
                invoice_number=number, attempt=attempt, amount=amount.amount,
                currency=amount.currency, method=method, status=outcome.payment_status,
                idempotency_key=f"{number}/manual-{attempt}", on_date=on))  # fmt: skip
            owners = self.invoices.owners(number, conn)
            payment = Attempt(number, owners[0] if owners else None, attempt, amount, "",
                              method, on, manual=True)  # fmt: skip
            self._settle(conn, owners, on, (payment, outcome))
            return self.invoices.header(conn, number)  # type: ignore[return-value]

    def refresh_dues(self, sub_id: str, on: date) -> None:
        """Re-derive a subscription's oldest open due date (and leave past_due if cleared)."""
        with self.db.tx() as conn:
            self._settle(conn, [sub_id], on)

    def _settle(
        self, conn: Any, sub_ids: Sequence[str], on: date, paid: tuple | None = None
    ) -> None:
        """Each of ``sub_ids`` after ``paid`` (an attempt and its outcome, moving the first
        of them) and with its oldest open due date read again."""
        for position, sub_id in enumerate(sub_ids):
            found = self.subscriptions.load(_S.id == sub_id, conn=conn, lock=True)
            if not found:  # deleted since: its invoices stay
                continue
            sub = found[0]
            standing = Standing(sub.id, sub.status, sub.event_seq, sub.canceled_on)
            events: tuple[Event, ...] = ()
            if paid is not None and position == 0:
                if reads_failing(standing.status):
                    standing = self._failing(conn, [standing]).get(sub.id, standing)
                standing, events = after_payment(standing, *paid, on)
            oldest = conn.execute(select(func.min(_I.due_date)).where(
                of_subscription(sub_id), _I.status == InvoiceStatus.OPEN)).scalar()  # fmt: skip
            standing, cleared = after_dues(standing, oldest, on)
            self.subscriptions.update(conn, [replace(
                sub, open_due_on=oldest, status=standing.status, event_seq=standing.event_seq,
                canceled_on=standing.canceled_on)])  # fmt: skip
            insert_events(self.db.codec, conn, (*events, *cleared))


def _credit_note(row: Any) -> CreditNoteRecord:
    return CreditNoteRecord(number=row.number, seq=row.seq, invoice_number=row.invoice_number,
                            payment_id=row.payment_id, amount=Money(row.amount, row.currency),
                            issue_date=row.issue_date)  # fmt: skip
