"""The storage contract: what the operations, the billing run and the outbox ask of storage.

A storage plugin (``abonnement_open_storage``) returns an object with these methods; the
built-in one is ``plugins/storage/sql.py``. Grouped by concern, each a ``Protocol``:
``SubscriptionStore``, ``BillingStore`` (the run's claim loop), ``CollectionStore`` (payment
attempts), ``InvoiceStore`` (invoices, payments outside the run), ``OutboxStore`` (events and
deliveries), ``DeclaredStore`` (config as code), ``LinkStore`` (buyer links used once) and
``SchemaStore`` (the database, transactions, schema);
``Storage`` is all of them. A storage that ``abonnement serve`` works with implements
``ServerStore`` too (stored buyers, API keys, idempotent answers, webhook events),
``EventLogStore`` (the event log, manual delivery retries, disputes), and one a
processor plugin keeps state in implements ``ProcessorStore`` (customers, requests sent).

Values in, values out: subscriptions, invoice drafts, events and attempts are the engine's
frozen dataclasses; what is read back comes as the records of ``engine/records.py``. Storage
persists what the engine decided and decides nothing: each write that needs a decision (a
step, a payment outcome, a purchase) runs the engine's function inside the transaction and
stores its result. Unless a method says otherwise, it runs in one transaction of its own (or
as a savepoint inside ``dry_run``/``holding``), and raises what ``errors.py`` names —
``NotFound`` for a missing record, ``StorageError`` for a database it cannot use; a
constraint the engine relies on (one invoice per subscription and period start, one event per
subject and sequence number, one payment per idempotency key) is enforced by storage and its
violation rolls the whole transaction back and raises.

Every subscription is stored with the date of its next event, ``Subscription.next_event_on``
as the engine computes it from the subscription (including its ``reminder_days``, the lead
it was scheduled with): the billing run claims by that date. Storage never holds settings.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import date
from typing import Any, Protocol, runtime_checkable

from abonnement.engine.analytics import History
from abonnement.engine.catalog import Contact
from abonnement.engine.collection import Attempt, ChargeResult, Outcome
from abonnement.engine.events import Event
from abonnement.engine.invoicing import InvoiceDraft
from abonnement.engine.money import Money
from abonnement.engine.records import (
    AppliedConfig,
    CreditNoteRecord,
    DeliveryRecord,
    DisputeRecord,
    EventRecord,
    InvoiceRecord,
    NewDelivery,
    PaymentRecord,
)
from abonnement.engine.subscriptions import Step, Subscription

__all__ = [
    "BillingStore",
    "CollectionStore",
    "DeclaredStore",
    "EventLogStore",
    "Finished",
    "InvoiceStore",
    "LinkStore",
    "OutboxStore",
    "ProcessorStore",
    "SchemaStore",
    "ServerStore",
    "StepWork",
    "Storage",
    "SubscriptionStore",
]

Finished = tuple[Attempt, ChargeResult | None, Outcome | None]
"""An attempt, what the processor said (None: it never saw the key) and the engine's judgement."""

StepWork = Callable[
    [Sequence[Subscription]], tuple[Sequence[Subscription], Sequence[InvoiceDraft], Sequence[Event]]
]
"""The engine's work on a claimed batch: (stepped subscriptions, invoice drafts, events)."""


@runtime_checkable
class SubscriptionStore(Protocol):
    """Subscriptions, their definitions and their history."""

    def insert_subscriptions(
        self, subs: Sequence[Subscription], source: str, events: Sequence[Event] = ()
    ) -> None:
        """Store new subscriptions (``source``: declared, created, checkout, quote) with the
        events recording their creation. An existing id raises (nothing is written)."""

    def replace_items(self, subs: Sequence[Subscription], events: Sequence[Event] = ()) -> None:
        """New definitions of existing subscriptions (items, parties, collection and invoice
        settings, terms) with their billing state as given, and the events recording them."""

    def subscription(self, sub_id: str) -> Subscription | None:
        """One subscription with its items, or None."""

    def subscriptions(self, status: str | None = None) -> list[Subscription]:
        """Every subscription (of one ``status``), in id order."""

    def change(self, sub_id: str, change: Callable[[Subscription], Step]) -> Subscription:
        """Read the subscription under a lock (a billing worker cannot interleave), apply the
        engine's ``change`` and store the stepped subscription and its events in the same
        transaction; returns it. ``NotFound`` if there is none; whatever ``change`` raises
        (``InvalidState``) rolls back."""

    def delete_subscription(self, sub_id: str) -> None:
        """Remove a subscription and its items; its invoices, payments and events stay."""

    def set_payment_method(self, subscription_id: str, token: str, method_type: str) -> None:
        """Charge the subscription's invoices to ``token`` from now on (automatic collection)."""

    def events(self, subject_id: str | None = None) -> list[EventRecord]:
        """Stored events (of one subject), in the order they were written."""

    def histories(self, currency: str | None = None) -> Iterator[History]:
        """Every subscription (in ``currency``) as analytics sees it, streamed."""


@runtime_checkable
class BillingStore(Protocol):
    """The billing run's claim loop (``engine.billing_run.run_billing``). ``skip``: the
    subscriptions set aside in this run (their billing failed), left where they are."""

    def reschedule(
        self,
        reminder_days: int,
        limit: int,
        work: Callable[[Sequence[Subscription]], Sequence[Subscription]],
    ) -> int:
        """In one transaction: claim up to ``limit`` live subscriptions stored with another
        reminder lead than ``reminder_days`` (or none recorded), let ``work`` reschedule them
        and store their lead and next event date. Returns how many were claimed (0: none
        left). Rows another worker holds are skipped (it stores the lead itself)."""

    def earliest_event(
        self, until: date, *, collections: bool = True, skip: Collection[str] = ()
    ) -> date | None:
        """The earliest day on or before ``until`` with work: a subscription's next event
        (but for those in ``skip``), or (with ``collections``) a charge to make or a bank
        debit to ask about."""

    def process_due(
        self, day: date, limit: int, work: StepWork, number_format: str, *, collect: bool = False,
        skip: Collection[str] = (),
    ) -> tuple[int, list[str], list[InvoiceDraft], list[Attempt]]:  # fmt: skip
        """In one transaction: claim up to ``limit`` subscriptions whose next event is on
        ``day`` (in id order; on a database with row locks, skipping any another worker
        holds), let ``work`` step them, store the stepped subscriptions, their events and
        the invoice drafts with gap-free numbers from ``number_format`` (``{seq}``). An
        invoice is unique per (subscription, period start): a second one raises and the
        batch rolls back. With ``collect``, drafts to charge on ``day`` get their first
        attempt written ``pending`` in the same transaction (``engine.outcomes``). Returns
        how many were claimed, the numbers, the drafts and those attempts — to charge only
        once this has committed. When ``work`` raises or its result cannot be stored, all
        of it is rolled back and ``engine.billing_run.BatchFailed`` names the claimed ids;
        the database's own failures (a lost connection, a lock) are raised as they are."""

    def busy_on(self, day: date, skip: Collection[str] = ()) -> bool:
        """Whether subscriptions with an event on ``day`` remain (held by another worker)."""

    def record_failure(self, sub_id: str, event_of: Callable[[int], Event]) -> None:
        """Store ``event_of(last_seq)`` (a ``subscription.billing_failed`` event) as the next
        event of ``sub_id``, in a transaction of its own; nothing else of it changes."""

    def count_due(self, until: date) -> int:
        """How many subscriptions have an event on or before ``until``."""


@runtime_checkable
class CollectionStore(Protocol):
    """Payment attempts: a pending row is committed before the processor is called, and its
    outcome recorded in a second transaction; a crash between leaves it pending for
    ``pending_attempts`` (the processor is asked by the same key: nobody is charged twice)."""

    def begin_collections(self, day: date, limit: int) -> list[Attempt]:
        """Claim up to ``limit`` open invoices to charge on ``day`` (none with a pending
        attempt; concurrent workers skip claimed ones) and commit their attempts
        ``pending``, in one transaction. An invoice due whose subscription has no saved
        method to charge any more (switched to manual collection since) is not charged:
        its automatic collection ends (no next date) and it waits to be paid like a manual
        invoice, through its pay link or ``invoices pay``."""

    def begin_attempts(self, attempts: Sequence[Attempt]) -> None:
        """Commit ``attempts`` as ``pending`` rows, before the processor hears of them. A key
        already stored raises."""

    def claim_invoices(
        self, numbers: Sequence[str], on: date, *, skip_busy: bool = False,
        method: tuple[str, str] | None = None,
    ) -> list[Attempt]:  # fmt: skip
        """Claim open invoices for a manual try on ``on`` (a retry, a payment online, the
        arrears an update link collects) and commit their attempts ``pending``, for what is
        still unpaid, holding the invoices while reading (row locks, or the database's write
        lock): of callers racing, one claims each invoice. Invoices no longer open are left
        out; one with an attempt pending or processing raises ``AlreadyCollecting``
        (``skip_busy``: left out). ``method``: (token, type) to charge instead of the
        subscription's (a buyer paying online)."""

    def holding(self) -> AbstractContextManager[None]:
        """Around asking the processor and recording its answers: attempts read inside
        (``still_pending``, ``pending_attempts``) stay held from another process's
        reconciliation until the block ends, so a live attempt is never taken for one a
        crash left."""

    def still_pending(self, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` are still pending (held inside ``holding``): one recorded
        meanwhile must not be charged."""

    def pending_attempts(self) -> list[Attempt]:
        """Attempts left pending (a crash), save those a live worker holds."""

    def processing_due(self, day: date) -> list[Attempt]:
        """Bank debits to ask about on ``day``; claiming them moves their next check to the
        day after, so one process asks."""

    def finish_attempts(self, finished: Sequence[Finished], day: date) -> None:
        """Record outcomes in one transaction with what ``engine.outcomes.recorded`` makes of
        each (the invoice, the subscription's standing, events). Only attempts still open
        move: recording one twice changes nothing the second time. A None result leaves the
        invoice to be tried again."""


@runtime_checkable
class InvoiceStore(Protocol):
    """Invoices and payments outside the billing run."""

    def invoice(self, number: str) -> InvoiceRecord | None:
        """One invoice, whole (lines and adjustments), or None."""

    def invoices(
        self, subscription_id: str | None = None, status: str | None = None
    ) -> list[InvoiceRecord]:
        """Invoices (of one subscription, its own and its purchase's; of one status), in
        number order, without lines and adjustments."""

    def invoice_owners(self, number: str) -> list[str]:
        """The subscriptions invoice ``number`` belongs to: its own, or those of the purchase
        that issued it (the first one's standing moves with its payments)."""

    def invoice_attempt(self, number: str, on: date) -> Attempt | None:
        """A manual try at one invoice on ``on`` (None: no such invoice)."""

    def open_invoices(self, subscription_id: str, on: date) -> list[Attempt]:
        """Every open invoice of a subscription, as a new manual try on ``on``."""

    def pay_invoice(self, number: str, amount: Money, on: date, method: str) -> InvoiceRecord:
        """Record a payment made outside the processor, with what ``engine.outcomes`` makes
        of it (the invoice's status, its subscriptions' standing, events), in one
        transaction; returns the invoice as it is now (without lines). ``NotFound``; an
        invoice that takes no payment raises ``InvalidState``."""

    def refresh_dues(self, sub_id: str, on: date) -> None:
        """Read a subscription's oldest open due date again (and leave past_due if cleared)."""

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
        """A purchase in one transaction: its subscriptions, its invoice (numbered here) and
        its payment, with what ``engine.outcomes.purchased`` decides; returns the number.
        ``bases``: each subscription's recurring definition for its history; ``total``: the
        invoice's (one of zero is paid at issue). ``key``: the purchase's own key (checkout:
        link, contact and day; conversion: the quote or deal): None, with nothing written,
        when a purchase with that key is recorded already (``purchase_invoice`` names it)."""

    def purchase_invoice(self, key: str) -> str | None:
        """The invoice of the purchase recorded with ``key`` (``record_checkout``), or None."""

    def record_refund(
        self, number: str, amount: Money, method: str, key: str, reference: str | None,
        on: date, credit_note_format: str = "CN-{seq:04d}",
    ) -> tuple[int, str]:  # fmt: skip
        """A refund as a payment row of its own (negative ``amount``) and its credit note,
        numbered by ``credit_note_format`` from a gap-free counter of its own, in one
        transaction; returns the refund's attempt number and the credit note's number. The
        invoice and the subscription stay as they are."""

    def credit_notes(self, invoice_number: str | None = None) -> list[CreditNoteRecord]:
        """Credit notes in the order they were issued (only those of ``invoice_number``)."""

    def credit_note(self, number: str) -> CreditNoteRecord | None:
        """One credit note, or None."""

    def payments(
        self, subscription_id: str | None = None, invoice_number: str | None = None
    ) -> list[PaymentRecord]:
        """Payment attempts (of one subscription's invoices, of one invoice), oldest first."""

    def manual_tries(self, invoice_number: str) -> int:
        """How many manual attempts the invoice has had."""


@runtime_checkable
class OutboxStore(Protocol):
    """The transactional outbox: events are written with the change that caused them; the
    consumer hands them over to deliveries, then sends those."""

    def undelivered_events(
        self, limit: int = 500, subjects: Sequence[str] | None = None
    ) -> list[EventRecord]:
        """The oldest events not handed over yet, in the order they were written; with
        ``subjects``, only those about these subscriptions (or invoices)."""

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
        """In one transaction: the deliveries (a key already stored is skipped), what
        workflows changed (``changed`` subscriptions and ``events`` recording it), and
        ``event_ids`` marked handed over. ``based_on``: each changed subscription's event
        count when it was read; if another change came in since, or another process handed
        over one of ``event_ids`` first, nothing is written and the answer is False (read
        again and retry). With ``claimant``, the deliveries are written claimed by it until
        ``claimed_until`` (epoch seconds), as ``claim_deliveries`` would claim them: the
        process that hands them over sends them."""

    def due_deliveries(self, on: date, limit: int = 500, after: str = "") -> list[DeliveryRecord]:
        """Pending deliveries to try on ``on``, by key, from after ``after`` (keyset pages)."""

    def delivery_result(
        self, key: str, on: date, *, error: str | None = None, retry_on: date | None = None
    ) -> None:
        """Record one try: sent (no ``error``), to try again on ``retry_on``, or given up."""

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
        """Claim up to ``limit`` pending deliveries due on ``on`` (by key, after ``after``)
        that nobody holds (or whose claim lapsed before ``now``, epoch seconds) for
        ``claimant`` until ``until``; returns them with their events. With ``subjects``, only
        the deliveries of events about these subscriptions (what one request set off).
        Concurrent claimants never get the same delivery while its claim holds."""

    def renew_claims(self, claimant: str, until: int) -> None:
        """Keep the pending deliveries ``claimant`` holds claimed until ``until``."""

    def release_claims(self, claimant: str) -> None:
        """Give back what ``claimant`` holds and did not record."""

    def delivery_results(
        self,
        results: Sequence[tuple[str, str | None, date | None]],
        on: date,
        claimant: str | None = None,
        skipped: Sequence[str] = (),
    ) -> None:
        """Record many tries at once, each ``(key, error, retry_on)`` as ``delivery_result``
        does, and the ``skipped`` keys as done with nothing sent, releasing their claims;
        with ``claimant``, only rows it still holds."""

    def invoice_headers(self, numbers: Sequence[str]) -> list[InvoiceRecord]:
        """The invoices numbered ``numbers`` (any number of them), without lines."""


@runtime_checkable
class DeclaredStore(Protocol):
    """What config as code keeps: which subscriptions a config declared, and the configs
    ``apply`` made true."""

    def declared_ids(self) -> set[str]:
        """The ids of the stored subscriptions a config declared."""

    def subscriptions_named(self, ids: Sequence[str]) -> list[Subscription]:
        """The stored subscriptions among ``ids`` (any number of them), in id order."""

    def mark_declared(self, ids: Sequence[str]) -> None:
        """Record that the config now declares these (made elsewhere before, same id)."""

    def declared_hashes(self) -> dict[str, str]:
        """Declared id → the digest of the declaration its row was last made true to (rows
        whose definition was written since by anything but ``apply`` have none)."""

    def set_declared_hashes(self, hashes: Mapping[str, str]) -> None:
        """Record the digests of the declarations these rows were just made true to."""

    def with_history(self, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` that events or invoices name (a deleted subscription's id)."""

    def record_config(self, version: str, applied_on: date, files: Mapping[str, str]) -> bool:
        """Keep the config an apply made true, unless it is the one kept last; whether a
        record was written."""

    def applied_config(self) -> AppliedConfig | None:
        """The config applied last, or None."""


@runtime_checkable
class LinkStore(Protocol):
    """Buyer links (update and pay) that work once."""

    def use_link(self, digest: str, kind: str, subject: str, on: date) -> bool:
        """Record the use of the link whose signed payload has SHA-256 ``digest`` (``kind``:
        update | pay; ``subject``: its subscription or invoice): True the first time, False
        if it was used already — of two uses racing, exactly one gets True."""

    def release_link(self, digest: str) -> None:
        """Forget a use ``use_link`` recorded (the payment it was for was declined)."""


@runtime_checkable
class ServerStore(Protocol):
    """What ``abonnement serve`` keeps: buyers its payment-link pages stored (contacts beside
    the config's), HTTP API keys (hashed), the first answer to each idempotent API write, the
    processor webhook events recorded. Not part of ``Storage``: only the server needs it."""

    def stored_contact(self, contact_id: str) -> Contact | None:
        """A stored buyer, or None."""

    def stored_contacts(self) -> list[Contact]:
        """Every stored buyer, in id order."""

    def contact_by_email(self, email: str) -> Contact | None:
        """The stored buyer with this e-mail address (compared without case), or None."""

    def insert_contact(self, contact: Contact, on: date) -> bool:
        """Store a new buyer; False when its id or e-mail is taken already."""

    def add_api_key(self, name: str, digest: str, prefix: str, on: date) -> None:
        """Store an API key by the SHA-256 hex ``digest`` of the key; ``AlreadyExists`` for
        a live key of that name (a revoked one's name is taken over)."""

    def api_keys(self) -> list[dict[str, Any]]:
        """Every key: ``{"name", "prefix", "created_on", "revoked_on"}``, by name."""

    def revoke_api_key(self, name: str, on: date) -> bool:
        """Revoke the live key ``name``; False when there is none."""

    def api_key_named(self, digest: str) -> str | None:
        """The name of the live key with this digest, or None."""

    def claim_idempotency_key(
        self, api_key: str, key: str, request: str, on: date
    ) -> dict[str, Any] | None:
        """Claim ``key`` of ``api_key`` for the request with digest ``request``: None when
        new (of two racing, one gets None), else ``{"request", "status", "response"}`` as
        stored (``status`` None while the first request runs)."""

    def answer_idempotency_key(self, api_key: str, key: str, status: int, response: str) -> None:
        """Keep the answer to the request that claimed ``key``."""

    def release_idempotency_key(self, api_key: str, key: str) -> None:
        """Forget a claim whose request crashed."""

    def webhook_received(self, processor: str, event_id: str) -> bool:
        """Whether the processor's event was recorded already."""

    def record_webhook(self, processor: str, event_id: str, kind: str, on: date) -> bool:
        """Note the event as recorded; False when it was already (the key decides a race)."""

    def link_used(self, digest: str) -> bool:
        """Whether ``use_link`` recorded the buyer link with this payload digest."""

    def open_attempt(self, key: str) -> Attempt | None:
        """The attempt with idempotency ``key`` while it is pending or processing (what a
        webhook may settle), else None."""


@runtime_checkable
class EventLogStore(Protocol):
    """The operator's look at the outbox (``events list``, ``deliveries list|retry``) and
    the disputes a processor's webhook reports. Not part of ``Storage``: billing never asks."""

    def event_log(self, event_type: str | None = None, since: date | None = None,
                  subject_id: str | None = None) -> list[EventRecord]:  # fmt: skip
        """Stored events in the order written: of one type (``invoice.*``: a prefix), on or
        after ``since``, of one subject."""

    def deliveries(self, status: str | None = None) -> list[DeliveryRecord]:
        """Every delivery (of one ``status``), by event and key."""

    def retry_deliveries(self, keys: Sequence[str] | None) -> list[str]:
        """Make the failed or pending deliveries of ``keys`` (every failed one: None) due on
        the next outbox pass; the keys made due."""

    def delivery_status(self, key: str) -> str | None:
        """The status of delivery ``key``, or None when there is none."""

    def payment_by_key(self, key: str) -> tuple[int, str] | None:
        """(payment id, invoice number) of the charge made with idempotency ``key``."""

    def record_dispute(self, dispute: DisputeRecord, subscription_id: str | None) -> bool:
        """Store the dispute and its ``payment.disputed`` event (of ``subscription_id``) in
        one transaction; False when the processor's dispute id is stored already."""

    def disputes(self, invoice_number: str) -> list[DisputeRecord]:
        """The disputes of one invoice, oldest first."""


class ProcessorStore(Protocol):
    """What a payment processor plugin keeps in the database (the ``stripe`` processor: its
    customer per contact, and each charge request as sent, to replay it after a crash).
    Processors get the storage as ``settings["storage"]`` and use it when it has these
    methods. Each write commits on its own, even inside ``holding``: it must be durable
    before the request it describes goes out. Not part of ``Storage``."""

    def processor_customer(self, processor: str, contact_id: str) -> str | None:
        """The processor's customer id for the contact, or None."""

    def save_processor_customer(
        self, processor: str, contact_id: str, customer_id: str, on: date
    ) -> str:
        """Keep ``customer_id`` unless the contact has one already; returns the one kept
        (of two racing, the first)."""

    def processor_request(self, processor: str, key: str) -> dict[str, Any] | None:
        """``{"request", "reference", "sent_at"}`` of the request kept for ``key``, or None."""

    def save_processor_request(self, processor: str, key: str, request: str, sent_at: int) -> bool:
        """Keep the request about to be sent with ``key`` (JSON text; ``sent_at`` in UNIX
        seconds); False when one is kept already (the first stays)."""

    def set_processor_reference(self, processor: str, key: str, reference: str) -> None:
        """Note the processor's id for what the request with ``key`` made."""


@runtime_checkable
class SchemaStore(Protocol):
    """The database itself: where it is, its transactions, its schema."""

    @property
    def url(self) -> str:
        """The database URL it was opened with."""

    @property
    def concurrent_billing(self) -> bool:
        """Whether several processes may bill at once (``run --workers``): claims skip the
        rows another worker holds."""

    @property
    def directory(self) -> str | None:
        """A folder where a processor may keep files of this database's, or None (then the
        config folder is used)."""

    @property
    def database_file(self) -> str | None:
        """The absolute path of the local file the database lives in, or None (a server,
        memory): buyer links' generated secret is kept beside it (``Context.link_secret``)."""

    def dry_run(self) -> AbstractContextManager[None]:
        """Everything inside runs for real in one transaction that is rolled back."""

    def exclusive(self, name: str, wait: float | None = None) -> AbstractContextManager[None]:
        """Held by one process at a time per database and ``name`` (``applying``: declared
        subscriptions made true; ``run``: a billing run where billing cannot be shared); the
        next waits up to ``wait`` seconds (None: ``ABONNEMENT_LOCK_TIMEOUT``, default 60),
        then raises ``Busy``. Goes with its holder, even a killed one."""

    def instance_id(self) -> str:
        """The random id the database was made with: every payment idempotency key starts
        with it, so two databases never send a processor the same key."""

    def timeline(self) -> date | None:
        """The date the last billing run reached (None before the first)."""

    def advance_timeline(self, day: date) -> date:
        """Record that a billing run reached ``day`` (it never moves back, even with two
        runs ending at once); returns where it stands."""

    def upgrade(self) -> str:
        """Apply every pending schema migration; returns the revision now current."""

    def close(self) -> None:
        """Release connections; the object is not used again."""


@runtime_checkable
class Storage(
    SubscriptionStore,
    BillingStore,
    CollectionStore,
    InvoiceStore,
    OutboxStore,
    DeclaredStore,
    LinkStore,
    SchemaStore,
    Protocol,
):
    """Everything above: what ``abonnement_open_storage`` returns."""
