"""The outbox consumer: turns stored events into workflow actions and delivered messages.

Two steps, each safe to interrupt and rerun:

1. **Hand over.** For each event not handed over yet (in the order written), tell the event
   observers (``abonnement_on_event``), run the workflow
   triggers of the rule files on it (``notify`` adds a message, ``set`` changes the
   subscription and records a ``subscription.changed`` event), plan the standard messages the
   settings ask for, and write one delivery row per message and notifier, and one per
   webhook endpoint that wants the event (``outgoing.py``) — all in the
   transaction that marks the event handed over. Events a trigger caused fire no triggers, so
   workflows cannot loop.
2. **Deliver.** Render each pending delivery in the subscription's language and locale and send
   it through its notifier. A success is recorded; a failure is tried again on a later run with
   backoff, then given up and reported. Each delivery carries its key (``Message.key``) so a
   receiver can drop the duplicate a crash between sending and recording could cause.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import jinja2

from abonnement.documents.i18n import Formatter
from abonnement.documents.templating import cpu_limit, environment
from abonnement.engine.context import subscription_record, trigger_context
from abonnement.engine.events import Event, numbered
from abonnement.engine.invoicing import document_settings
from abonnement.engine.money import Money
from abonnement.engine.notifications import (
    INVOICE_TEMPLATES,
    Planned,
    next_try_in,
    planned,
    recipients,
    settled_with_nothing_owed,
)
from abonnement.engine.ports import Storage
from abonnement.engine.records import DeliveryRecord, EventRecord, InvoiceRecord, NewDelivery
from abonnement.engine.status import DeliveryStatus, SubscriptionStatus
from abonnement.engine.subscriptions import Subscription, period_amounts
from abonnement.engine.update_links import link
from abonnement.errors import AbonnementError
from abonnement.operations import invoice_mail, outgoing
from abonnement.plugins.interfaces import Message

if TYPE_CHECKING:
    from abonnement.operations.context import Context as App

__all__ = ["deliver", "deliver_due", "hand_over", "process_outbox"]

# The audit trail: every event handed over (invoices issued, charges and their outcomes, status
# changes) and every delivery. Only these payload fields are logged: never a token or a link.
log = logging.getLogger(__name__)
_LOGGED = ("invoice", "attempt", "status", "previous_status", "failure_code", "period", "trigger")


class _Records:
    """Subscriptions and invoices looked up while working the outbox, each once per batch."""

    def __init__(self, store: Storage):
        self.store = store
        self.subs: dict[str, Subscription | None] = {}
        self.invoices: dict[str, InvoiceRecord | None] = {}
        self.headers: dict[str, InvoiceRecord | None] = {}
        self.billed: dict[str, list[InvoiceRecord]] = {}

    def preload(self, events: Iterable[EventRecord]) -> None:
        """Read the subscriptions and invoices (without lines) ``events`` are about, a few
        queries for the whole batch instead of one per event."""
        events = list(events)
        sub_ids = {ev.subject_id for ev in events} - self.subs.keys()
        numbers = {ev.payload.get("invoice") for ev in events} - self.headers.keys() - {None, ""}
        if sub_ids:
            found = {s.id: s for s in self.store.subscriptions_named(sorted(sub_ids))}
            self.subs.update({sub_id: found.get(sub_id) for sub_id in sub_ids})
        if numbers:
            got = {i.number: i for i in self.store.invoice_headers(sorted(numbers))}  # type: ignore[arg-type]
            self.headers.update({number: got.get(number) for number in numbers})  # type: ignore[misc]

    def header(self, number: str | None) -> InvoiceRecord | None:
        """An invoice's totals and dates (no lines): enough for a message or a plan."""
        if not number:
            return None
        if number not in self.headers:
            self.headers[number] = self.invoice(number)
        return self.headers[number]

    def subscription(self, sub_id: str) -> Subscription | None:
        if sub_id not in self.subs:
            self.subs[sub_id] = self.store.subscription(sub_id)
        return self.subs[sub_id]

    def invoice(self, number: str | None) -> InvoiceRecord | None:
        if not number:
            return None
        if number not in self.invoices:
            self.invoices[number] = self.store.invoice(number)
        return self.invoices[number]

    def invoice_of(
        self, sub: Subscription, payload: Mapping[str, Any]
    ) -> tuple[InvoiceRecord | None, int | None]:
        """The stored invoice an event of ``sub`` is about (by number, or by the period an
        ``invoice.created`` names) and its sequence within the subscription, or (None, None).
        A subscription a checkout started had its first invoice there, not among its own."""
        if "invoice" not in payload and "period" not in payload:
            return None, None
        if sub.id not in self.billed:
            self.billed[sub.id] = list(self.store.invoices(sub.id))  # in issue (seq) order
        own = self.billed[sub.id]
        before = 1 if own and own[0].period_start not in (None, sub.anchor) else 0
        period = sub.date_of(payload["period"]) if "period" in payload else None
        for position, row in enumerate(own, start=1):
            if row.number == payload.get("invoice") or (
                period is not None and row.period_start == period
            ):
                return row, before + position
        row = self.invoice(payload.get("invoice"))
        return row, (1 if row is not None else None)  # a checkout's: the first


def process_outbox(
    app: App,
    on: date,
    *,
    link_secret: str | None = None,
    subjects: Sequence[str] | None = None,
) -> dict[str, int]:
    """Hand over every new event and send what it asks for right away, a batch at a time,
    then whatever else is due on ``on`` (retries, deliveries a dead process left); counts by
    outcome: ``events``, ``sent``, ``retrying``, ``failed``. With ``subjects`` the work is
    bounded (see ``deliver_due``)."""
    with _Sender(app, on, link_secret) as sender:
        handed = hand_over(app, on, sender=sender, subjects=subjects)
        sender.due(subjects)
    return {"events": handed, **sender.counts}


def deliver_due(ctx: App, on: date, subjects: Sequence[str] | None = None) -> dict[str, int]:
    """Work the outbox on ``on``: workflow triggers on the new events, then every message due
    through the notifiers. Every operation that changes state calls it last; never inside a dry
    run (a sent e-mail stays sent). Returns counts: ``events``, ``sent``, ``retrying``,
    ``failed``.

    ``subjects``: the subscriptions an operation changed. Its work is then bounded by what it
    set off, not by the outbox: one batch of new events handed over and one batch of the
    deliveries of these subscriptions' events sent. A buyer's checkout sends its receipt, not
    the backlog an earlier run left; that is the next ``run``'s (or ``deliveries retry``'s).
    The deliveries are claimed as always, so nothing is sent twice."""
    return process_outbox(ctx, on, link_secret=ctx.link_secret(required=False),
                          subjects=subjects)  # fmt: skip


def hand_over(
    app: App,
    on: date,
    batch: int = 500,
    *,
    sender: _Sender | None = None,
    subjects: Sequence[str] | None = None,
) -> int:
    """Step 1 for every event not handed over yet, a batch per transaction; how many. With a
    ``sender``, each batch's deliveries are written claimed by it and sent at once, from the
    events and records already in memory (step 2 without reading them back). With
    ``subjects``, one batch of the events about these subscriptions only: what a request set
    off (an event's order matters within its subscription, which this keeps; the others wait
    for the next run)."""
    store, catalog, rules = app.storage, app.catalog, app.rules
    settings = catalog.settings
    channels = settings.notifiers
    observed = app.plugins.observes_events
    count = conflicts = batches = 0
    most = None if subjects is None else 1
    while (most is None or batches < most) and (
        events := store.undelivered_events(batch, subjects)
    ):
        batches += 1
        records = _Records(store)
        deliveries: list[NewDelivery] = []
        changed: dict[str, Subscription] = {}
        based_on: dict[str, int] = {}  # event counts as read: a set must not overwrite news
        recorded: list[Event] = []
        if channels or rules.triggers:
            # the subscriptions a trigger reads, or only those a payment's messages need
            records.preload(events if rules.triggers else [
                e for e in events if _pays(e) or invoice_mail.asks(e, settings)])  # fmt: skip
        for ev in events:
            sub_id, payload = ev.subject_id, ev.payload
            if log.isEnabledFor(logging.INFO):
                fields = {k: payload[k] for k in _LOGGED if k in payload}
                log.info("%s %s", ev.type, sub_id, extra={"on": str(ev.on_date), **fields})
            if observed:  # observers see each event once it committed; a raise retries the batch
                app.plugins.emit(ev.event())
            deliveries.extend(outgoing.event_deliveries(settings, ev))  # one POST per event
            if not channels and not rules.triggers:
                continue  # nothing to tell, nobody to tell it to
            sub = changed.get(sub_id) or (
                records.subscription(sub_id) if rules.triggers or _pays(ev) else None
            )
            wanted = planned(ev.type, payload, settings,
                             first_payment=_first_payment(records, ev, sub))  # fmt: skip
            if channels and invoice_mail.asks(ev, settings):  # an invoice sent for payment
                wanted += invoice_mail.planned(app, records, ev,
                                               sub or records.subscription(sub_id))  # fmt: skip
            if sub is not None and not payload.get("trigger") and rules.triggers:
                ctx = _context(app, sub, ev, records)
                for trigger in rules.fired(ctx):
                    sets: dict[str, Any] = {}
                    for action in trigger.actions:
                        if action.kind == "notify":
                            wanted.append(Planned(action.template or "", action.to or "contact",
                                                  f"trigger:{trigger.name}"))  # fmt: skip
                        elif action.kind == "set" and action.value is not None:
                            sets[".".join(action.target[1:])] = action.value(ctx)
                    if sets:
                        what = {"trigger": trigger.name, "set": sets}
                        said = numbered(sub_id, ev.on_date, sub.event_seq,
                                        ("subscription.changed", what))  # fmt: skip
                        based_on.setdefault(sub_id, sub.event_seq)
                        sub = replace(_set(sub, sets), event_seq=said[-1].seq)
                        changed[sub_id] = sub
                        recorded.extend(said)
            for plan in wanted:
                for channel in channels:
                    deliveries.append(NewDelivery(
                        f"{ev.id}/{plan.template}/{plan.to}/{channel}", ev.id, channel,
                        plan.template, plan.to, plan.source, plan.after,
                    ))  # fmt: skip
        # a trigger may ask for a message the settings already send (the same template to the
        # same recipient): one delivery, the first asked for
        unique: dict[str, NewDelivery] = {}
        for wanted_delivery in deliveries:
            unique.setdefault(wanted_delivery.key, wanted_delivery)
        deliveries = list(unique.values())
        ids = [ev.id for ev in events]
        claim: dict[str, Any] = {}
        if sender is not None and deliveries:
            claim = {"claimant": sender.claimant, "claimed_until": sender.claimed_until()}
        if not store.hand_over(ids, deliveries, list(changed.values()), recorded, based_on,
                               **claim):  # fmt: skip
            oldest = store.undelivered_events(1, subjects)
            if not oldest or oldest[0].id != events[0].id:
                continue  # another process handed these over: read on from what is left
            conflicts += 1  # a subscription changed meanwhile: read the batch again
            if conflicts > 10:
                raise AbonnementError("the outbox keeps meeting concurrent changes; run again")
            batches -= 1  # the same batch again: it was not handed over
            continue
        count += len(events)
        if claim:
            records.subs.update(changed)  # a message tells of what its triggers set
            by_id = {ev.id: ev for ev in events}
            rows = [DeliveryRecord(d.key, d.channel, d.template, d.recipient, d.source,
                                   DeliveryStatus.PENDING, by_id[d.event_id])
                    for d in deliveries if d.next_try_on is None]  # fmt: skip
            records.preload(row.event for row in rows)
            sender.send(rows, records)  # type: ignore[union-attr]
    return count


def deliver(
    app: App,
    on: date,
    *,
    link_secret: str | None = None,
    subjects: Sequence[str] | None = None,
) -> dict[str, int]:
    """Send every pending delivery due on ``on``; counts of sent, retrying and given up. With
    ``subjects``, one batch of the deliveries of these subscriptions' events, no more.

    Deliveries are claimed a batch at a time before they are sent (``claim_deliveries``), so
    concurrent runs, workers and commands working the same outbox never send one twice; the
    batch's subscriptions and invoices are read in a few queries, its messages rendered with
    templates compiled once, sent a channel at a time (``Notifier.send_many``) and recorded in
    one transaction. An exception stops the work after recording what was sent and releasing
    the rest; a process killed mid-batch leaves its claims to lapse (``CLAIM_SECONDS``), then
    whatever it sent and did not record is sent again — the only way a message goes out twice
    (its ``Message.key`` lets a receiver drop it)."""
    with _Sender(app, on, link_secret) as sender:
        sender.due(subjects)
    return sender.counts


class _Sender:
    """One pass of sending under one claimant: notifiers opened and templates compiled once,
    outcomes counted; what it still holds when the pass ends is released."""

    def __init__(self, app: App, on: date, link_secret: str | None):
        self.app = app
        self.on = on
        self.store = app.storage
        self.notifiers = app.notifiers()
        self.renderer = _Renderer(app, link_secret, on)
        self.claimant = secrets.token_hex(16)
        self.failed: set[str] = set()  # tried in this pass and failed: the next pass retries
        # by outcome: sent, given up (failed) and still pending a retry (retrying)
        self.counts: dict[str, int] = {
            DeliveryStatus.SENT: 0, "retrying": 0, DeliveryStatus.FAILED: 0,
            DeliveryStatus.SKIPPED: 0}  # fmt: skip

    def __enter__(self) -> _Sender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.store.release_claims(self.claimant)

    @staticmethod
    def claimed_until() -> int:
        """When a claim made now lapses (epoch seconds)."""
        return int(time.time()) + CLAIM_SECONDS

    def send(self, rows: list[DeliveryRecord], records: _Records) -> None:
        """Render, send and record ``rows`` (claimed by this sender), ``BATCH`` at a time:
        what was sent is recorded even when a batch stopped half-way, and a crash sends again
        at most one batch's unrecorded messages."""
        for start in range(0, len(rows), BATCH):
            done: list[tuple[str, str | None, date | None]] = []
            skipped: list[str] = []
            try:
                _send_batch(self.app, self.notifiers, self.renderer, records,
                            rows[start : start + BATCH], self.on, done, self.counts,
                            self.claimant, skipped)  # fmt: skip
            finally:
                self.store.delivery_results(done, self.on, self.claimant, skipped)
                self.failed.update(key for key, error, _ in done if error is not None)

    def due(self, subjects: Sequence[str] | None = None) -> None:
        """Claim and send every pending delivery due on ``on``, a batch at a time; with
        ``subjects``, one batch of those of these subscriptions' events (a request's share)."""
        after = ""
        # one pass reads each subscription and invoice once (delivering changes neither), up
        # to a bound that keeps a pass over a big outbox in little memory
        records = _Records(self.store)
        while rows := _claim(self.store, self.on, self.claimant, after, subjects):
            after = rows[-1].key
            if len(records.subs) + len(records.headers) > 20_000:
                records = _Records(self.store)
            # one that failed in this pass waits for the next (a retry is not due sooner)
            rows = [row for row in rows if row.key not in self.failed]
            records.preload(row.event for row in rows)
            self.send(rows, records)
            if subjects is not None:
                break  # a request's share: the rest is the next run's


# How long a claim on deliveries holds: a process that dies holding some leaves them to the
# others (or the next run) after this; one alive renews its claims while it works. Wall-clock
# seconds, not a billing date: it only orders processes sharing the outbox.
CLAIM_SECONDS = 300
BATCH = 500  # deliveries claimed, rendered, sent and recorded together


def _claim(
    store: Storage, on: date, claimant: str, after: str, subjects: Sequence[str] | None
) -> list[DeliveryRecord]:
    now = int(time.time())
    return store.claim_deliveries(on, claimant, now, now + CLAIM_SECONDS, limit=BATCH,
                                  after=after, subjects=subjects)  # fmt: skip


def _send_batch(
    app: App,
    notifiers: Mapping[str, Any],
    renderer: _Renderer,
    records: _Records,
    rows: list[DeliveryRecord],
    on: date,
    done: list[tuple[str, str | None, date | None]],
    counts: dict[str, int],
    claimant: str,
    skipped: list[str],
) -> None:
    """Render and send one claimed batch, appending each outcome to ``done`` (and the keys of
    messages with nothing to send to ``skipped``)."""

    def failed(row: DeliveryRecord, exc: BaseException) -> None:
        wait = next_try_in(row.attempts + 1)
        retry_on = on + timedelta(days=wait) if wait is not None else None
        error = f"{type(exc).__name__}: {exc}"
        done.append((row.key, error, retry_on))
        counts["retrying" if retry_on else DeliveryStatus.FAILED] += 1
        log.log(logging.WARNING if retry_on else logging.ERROR,
                "delivery %s failed: %s; %s", row.key, error,
                f"tried again on {retry_on}" if retry_on else "given up")  # fmt: skip

    def sent(row: DeliveryRecord) -> None:
        done.append((row.key, None, None))
        counts[DeliveryStatus.SENT] += 1
        log.info("delivered %s", row.template,
                 extra={"key": row.key, "channel": row.channel})  # fmt: skip

    def skip(row: DeliveryRecord) -> None:
        skipped.append(row.key)
        counts[DeliveryStatus.SKIPPED] += 1

    renew_at = time.monotonic() + CLAIM_SECONDS / 3

    def keep_claims() -> None:
        """A slow render or channel: keep the rest claimed (else another process may take and
        send them too)."""
        nonlocal renew_at
        if time.monotonic() > renew_at:
            app.storage.renew_claims(claimant, int(time.time()) + CLAIM_SECONDS)
            renew_at = time.monotonic() + CLAIM_SECONDS / 3

    by_channel: dict[str, list[tuple[DeliveryRecord, Message]]] = {}
    for row in rows:
        keep_claims()
        try:
            if row.channel == outgoing.CHANNEL:  # the event itself, not a message
                outgoing.send(app, row)
                sent(row)
                continue
            message = renderer.render(row, records)
        except AbonnementError:
            raise  # a broken template is the user's to fix, not a delivery to retry
        except Exception as exc:  # whatever rendering or a POST raises: retry later
            failed(row, exc)
            continue
        if message.to:
            by_channel.setdefault(row.channel, []).append((row, message))
        else:
            skip(row)  # nobody to tell, or nothing left to say: done, nothing sent
    for channel, batch in by_channel.items():
        notifier = notifiers[channel]
        # a few at a time, so that a slow channel renews its claims in between
        for start in range(0, len(batch), 100):
            part = batch[start : start + 100]
            keep_claims()
            outcomes = _send_many(notifier, [message for _, message in part])
            for (row, _), outcome in zip(part, outcomes, strict=True):
                if outcome is None:
                    sent(row)
                else:
                    failed(row, outcome)


def _send_many(notifier: Any, messages: list[Message]) -> Iterator[Exception | None]:
    """Each message's outcome through ``notifier`` as it is known: None when sent, else what
    was raised."""
    many = getattr(notifier, "send_many", None)
    if many is not None:
        yield from many(messages)
        return
    for message in messages:
        try:
            notifier.send(message)
        except Exception as exc:  # whatever a channel raises: retry later, never crash
            yield exc
        else:
            yield None


class _Remembering(Formatter):
    """A ``Formatter`` that formats each amount and date once: thousands of messages name
    the same few prices and days."""

    def __init__(self, locale: str):
        super().__init__(locale)
        self._money: dict[tuple[str, str], str] = {}
        self._dates: dict[date | None, str] = {}

    def money(self, amount: Decimal, currency: str) -> str:
        key = (str(amount), currency)
        found = self._money.get(key)
        if found is None:
            found = self._money[key] = super().money(amount, currency)
        return found

    def date(self, day: date | None) -> str:
        found = self._dates.get(day)
        if found is None:
            found = self._dates[day] = super().date(day)
        return found


def render_message(
    app: App, row: DeliveryRecord, records: _Records, *, link_secret: str | None, on: date
) -> Message:
    """The message of one delivery, in the language of whoever receives it."""
    return _Renderer(app, link_secret, on).render(row, records)


class _Renderer:
    """Renders the messages of one delivery pass: each template compiled once per language,
    one number and date formatter per locale, whatever the number of messages."""

    def __init__(self, app: App, link_secret: str | None, on: date):
        self.app = app
        self.link_secret = link_secret
        self.on = on
        self.templates: dict[tuple[str, str], jinja2.Template] = {}
        self.formatters: dict[str, _Remembering] = {}
        self.invoice_mail = invoice_mail.InvoiceMail(app)

    def template(self, language: str, name: str) -> jinja2.Template:
        key = (language, name)
        found = self.templates.get(key)
        if found is None:
            env = environment(self.app.config_dir / "templates", language, "templates/messages")
            found = self.templates[key] = env.get_template(name)
        return found

    def formatter(self, locale: str) -> _Remembering:
        found = self.formatters.get(locale)
        if found is None:
            found = self.formatters[locale] = _Remembering(locale)
        return found

    def render(self, row: DeliveryRecord, records: _Records) -> Message:
        """The message of ``row``, in the language of whoever receives it."""
        app, on, link_secret = self.app, self.on, self.link_secret
        catalog = app.catalog
        settings = catalog.settings
        ev = row.event
        sub = records.subscription(ev.subject_id)
        payload = ev.payload
        contact = catalog.contacts.get((sub.billing_contact_id or sub.contact_id) if sub else "")
        to_buyer = row.recipient == "contact"
        document = document_settings(settings, sub if to_buyer else None,
                                     contact if to_buyer else None)  # fmt: skip
        fmt = self.formatter(document["locale"])
        invoice = records.header(payload.get("invoice"))
        about_invoice = row.template in INVOICE_TEMPLATES  # carries its pay link (and PDF)
        pay_url, attachments = None, ()
        if about_invoice:
            said = self.invoice_mail.prepare(row, records, sub, invoice,
                                             contact.email if contact else None, on)  # fmt: skip
            if said is None:  # planned at issue, and paid (or due, or turned off) since
                return Message((), "", "", kind=row.template, key=row.key.rsplit("/", 1)[0])
            invoice, pay_url, attachments = said
        currency = sub.currency if sub else settings.default_currency
        if about_invoice and invoice is not None:  # what is left to pay
            amount = invoice.amount_due
        elif "amount" in payload:  # what the payment took, or will charge (priced when planned)
            amount = Money(Decimal(payload["amount"]), currency)
        elif invoice is not None:
            amount = invoice.total
        else:
            amount = Money(period_amounts(sub)[0] if sub else 0, currency)
        update_url = None
        ended = sub is None or sub.status in (
            SubscriptionStatus.CANCELED, SubscriptionStatus.EXPIRED)  # fmt: skip
        if ev.type == "payment.failed" and link_secret and sub is not None and not ended:
            _, path, _ = link("update", sub.id, on, settings.update_link_days, link_secret,
                              secrets.token_urlsafe(9))  # fmt: skip
            update_url = settings.buyer_url(path)
        ctx = {
            "account": settings.account,
            "name": contact.name if contact else (sub.contact_id if sub else ""),
            "subscription": (
                subscription_record(sub) if sub else {"id": ev.subject_id, "status": ""}
            ),
            "event": {"type": ev.type, **payload},
            "on": ev.on_date,
            "number": invoice.number if invoice else "",
            "amount": fmt.money(amount.amount, amount.currency),
            # what a template decides by: a credit charges nothing, a manual one is invoiced
            "amount_value": amount.amount,
            "collection_mode": sub.collection_mode if sub else None,
            "due_date": invoice.due_date if invoice else None,
            "payment_date": date.fromisoformat(payload["payment_date"])
            if payload.get("payment_date")
            else None,
            "attempt": payload.get("attempt", 1),
            "update_url": update_url,
            "pay_url": pay_url,
            "attached": bool(attachments),
            "day": fmt.date,
            "money": fmt.money,
            "lang": fmt.locale.language,
        }
        language = document["language"]
        try:
            with cpu_limit():  # a template never hangs the run
                source = self.template(language, f"{row.template}.txt").render(ctx)
                subject, _, body = source.strip().partition("\n")
                body = body.strip() + "\n"
                paragraphs = [p.strip() for p in body.split("\n\n") if p.strip()]
                page = self.template(language, "_layout.html").render(
                    {**ctx, "subject": subject, "paragraphs": paragraphs}
                )
        except jinja2.TemplateError as exc:
            raise AbonnementError(f"message template {row.template}: {exc}") from None
        contact_email = contact.email if contact else None
        event = {"id": ev.id, "type": ev.type, "seq": ev.seq, "payload": dict(payload),
                 "subject_id": ev.subject_id, "on": ev.on_date.isoformat()}  # fmt: skip
        return Message(
            to=recipients(row.recipient, contact_email, settings),
            subject=subject.strip(),
            text=body,
            html=page,
            kind=row.template,
            key=row.key.rsplit("/", 1)[0],  # the same message on every channel
            data={"event": event, "pay_url": pay_url} if about_invoice else {"event": event},
            attachments=attachments,
        )


def _pays(ev: EventRecord) -> bool:
    """Whether ``ev`` pays an invoice in full (a part payment does not)."""
    payload = ev.payload
    paid = ev.type == "payment.succeeded" or settled_with_nothing_owed(ev.type, payload)
    return paid and payload.get("pays_invoice") is not False


def _first_payment(records: _Records, ev: EventRecord, sub: Subscription | None) -> bool:
    payload = ev.payload
    if sub is None or not _pays(ev):
        return False
    invoice = records.header(payload["invoice"])
    return invoice is not None and invoice.period_start in (None, sub.anchor)


def _context(app: App, sub: Subscription, ev: EventRecord, records: _Records) -> dict[str, Any]:
    payload = ev.payload
    invoice = sequence = None
    if any(path[0] == "invoice" for path in app.rules.fields):  # a lookup only when read
        invoice, sequence = records.invoice_of(sub, payload)
    return trigger_context(app.catalog, sub, ev.type, payload, ev.on_date,
                           invoice=invoice, sequence=sequence,
                           recurring=app.recurring)  # fmt: skip


def _set(sub: Subscription, sets: dict[str, Any]) -> Subscription:
    properties = dict(sub.properties)
    owner = sub.owner
    for target, value in sets.items():
        if target == "owner":
            owner = value
        else:  # properties.NAME
            properties[target.split(".", 1)[1]] = value
    return replace(sub, owner=owner, properties=properties)
