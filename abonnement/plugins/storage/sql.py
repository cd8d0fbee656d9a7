"""The built-in storage: SQLAlchemy Core on SQLite (default) or PostgreSQL.

``SqlStorage`` is the storage contract (``engine.ports.Storage``) and nothing more: each of
its methods hands the call to one small repository, composed here over one ``Database``
(the engine, the hot path's codec, the transaction a dry run or a charge holds):

- ``Subscriptions`` (``subscriptions.py``): subscription rows in and out, their history,
  which ones a config declared; the only writer of those tables, used by the others;
- ``Invoices`` (``invoices.py``): numbered drafts written, invoices read as records;
- ``Payments`` (``payments.py``): attempts, outcomes, purchases, payments by hand, refunds;
- ``BillingRun`` (``billing.py``): the billing run's claims and batch writes;
- ``Outbox`` (``outbox.py``): events handed over, deliveries and their tries;
- ``Configs`` (``declared.py``): the configs ``apply`` made true;
- ``Links`` (``links.py``): buyer links used once;
- ``ServerStore`` (``server.py``): what ``abonnement serve`` keeps — stored buyers, API keys,
  idempotent API answers, processor webhook events;
- ``EventLog`` (``eventlog.py``): the event log, manual delivery retries, disputes;
- ``meta.py``: what the database knows of itself (its instance id, its billing timeline),
  as functions over a connection.

A repository shares no state with another but the ``Database``; one that writes another's
tables calls that one's writer inside its own transaction. The billing hot path uses
batched Core statements (executemany inserts and updates, one transaction per batch);
lookups are plain selects. A new SQLite file is migrated on first use; any other database
must be at the current migration (``abonnement db upgrade``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import date
from typing import Any

from sqlalchemy.exc import IntegrityError

from abonnement.engine.analytics import History
from abonnement.engine.catalog import Contact
from abonnement.engine.collection import Attempt, ChargeResult
from abonnement.engine.events import Event
from abonnement.engine.invoicing import InvoiceDraft
from abonnement.engine.money import Money
from abonnement.engine.ports import Finished, StepWork
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
from abonnement.errors import AlreadyExists, StorageError
from abonnement.plugins.storage import meta
from abonnement.plugins.storage.billing import BillingRun
from abonnement.plugins.storage.database import Database, alembic_config
from abonnement.plugins.storage.declared import Configs
from abonnement.plugins.storage.eventlog import EventLog
from abonnement.plugins.storage.invoices import Invoices
from abonnement.plugins.storage.links import Links
from abonnement.plugins.storage.outbox import Outbox
from abonnement.plugins.storage.payments import Payments
from abonnement.plugins.storage.processors import ProcessorStore
from abonnement.plugins.storage.server import ServerStore
from abonnement.plugins.storage.subscriptions import Subscriptions

__all__ = ["SqlStorage", "StorageError", "alembic_config"]


class SqlStorage:
    """Subscriptions, invoices, payments and events in one SQL database, by URL."""

    def __init__(self, url: str, *, migrate: bool = True):
        self.db = db = Database(url, migrate=migrate)
        self._subscriptions = subs = Subscriptions(db)
        self._invoices = invoices = Invoices(db)
        self._payments = payments = Payments(db, subs, invoices)
        self._billing = BillingRun(db, subs, invoices, payments)
        self._outbox = Outbox(db, subs)
        self._configs = Configs(db)
        self._links = Links(db)
        self._server = ServerStore(db)
        self._eventlog = EventLog(db, subs)
        self._processors = ProcessorStore(db)

    @property
    def url(self) -> str:
        return self.db.url

    @property
    def directory(self) -> str | None:
        """Where a processor may keep files of this database's: the SQLite file's folder
        (None in memory and on PostgreSQL)."""
        return str(self.db.directory) if self.db.directory is not None else None

    @property
    def database_file(self) -> str | None:
        """The SQLite file (None in memory and on PostgreSQL)."""
        return str(self.db.database_file) if self.db.database_file is not None else None

    @property
    def concurrent_billing(self) -> bool:
        """PostgreSQL's row locks let workers share a run; SQLite has one writer."""
        return not self.db.sqlite

    @property
    def engine(self) -> Any:
        """The SQLAlchemy engine (for tests and tools that look at the tables)."""
        return self.db.engine

    # -- schema and transactions -----------------------------------------------------------
    def upgrade(self) -> str:
        return self.db.upgrade()

    def close(self) -> None:
        self.db.close()

    def instance_id(self) -> str:
        return self.db.instance_id()

    def exclusive(self, name: str, wait: float | None = None) -> AbstractContextManager[None]:
        return self.db.exclusive(name, wait)

    def timeline(self) -> date | None:
        with self.db.tx() as conn:
            return meta.timeline(conn)

    def advance_timeline(self, day: date) -> date:
        with self.db.tx() as conn:
            return meta.advance_timeline(conn, day)

    def dry_run(self) -> AbstractContextManager[None]:
        return self.db.dry_run()

    def holding(self) -> AbstractContextManager[None]:
        return self.db.holding()

    # -- subscriptions ---------------------------------------------------------------------
    def insert_subscriptions(
        self, subs: Sequence[Subscription], source: str, events: Sequence[Event] = ()
    ) -> None:
        try:
            self._subscriptions.insert(subs, source, events)
        except IntegrityError:  # another process stored one of these ids a moment ago
            raise AlreadyExists(
                f"subscription `{subs[0].id}`{' (or another of these)' if len(subs) > 1 else ''} "
                "exists already"
            ) from None

    def replace_items(self, subs: Sequence[Subscription], events: Sequence[Event] = ()) -> None:
        self._subscriptions.replace_items(subs, events)

    def subscription(self, sub_id: str) -> Subscription | None:
        return self._subscriptions.subscription(sub_id)

    def subscriptions(self, status: str | None = None) -> list[Subscription]:
        return self._subscriptions.subscriptions(status)

    def change(self, sub_id: str, change: Callable[[Subscription], Step]) -> Subscription:
        return self._subscriptions.change(sub_id, change)

    def delete_subscription(self, sub_id: str) -> None:
        self._subscriptions.delete(sub_id)

    def set_payment_method(self, subscription_id: str, token: str, method_type: str) -> None:
        self._subscriptions.set_payment_method(subscription_id, token, method_type)

    def events(self, subject_id: str | None = None) -> list[EventRecord]:
        return self._subscriptions.events(subject_id)

    def histories(self, currency: str | None = None) -> Iterator[History]:
        return self._subscriptions.histories(currency)

    # -- the billing run -------------------------------------------------------------------
    def reschedule(
        self,
        reminder_days: int,
        limit: int,
        work: Callable[[Sequence[Subscription]], Sequence[Subscription]],
    ) -> int:
        return self._subscriptions.reschedule(reminder_days, limit, work)

    def earliest_event(
        self, until: date, *, collections: bool = True, skip: Collection[str] = ()
    ) -> date | None:
        return self._billing.earliest_event(until, collections=collections, skip=skip)

    def process_due(
        self, day: date, limit: int, work: StepWork, number_format: str, *, collect: bool = False,
        skip: Collection[str] = (),
    ) -> tuple[int, list[str], list[InvoiceDraft], list[Attempt]]:  # fmt: skip
        return self._billing.process_due(day, limit, work, number_format, collect=collect,
                                         skip=skip)  # fmt: skip

    def busy_on(self, day: date, skip: Collection[str] = ()) -> bool:
        return self._billing.busy_on(day, skip)

    def record_failure(self, sub_id: str, event_of: Callable[[int], Event]) -> None:
        self._billing.record_failure(sub_id, event_of)

    def count_due(self, until: date) -> int:
        return self._billing.count_due(until)

    def commit(
        self, subscriptions: Sequence[Subscription], invoices: Sequence[InvoiceDraft],
        events: Sequence[Event], number_format: str,
    ) -> list[str]:  # fmt: skip
        """Stepped subscriptions, their invoices and events in one transaction (not part of
        the contract: tests and tools write states the run would reach)."""
        return self._billing.commit(subscriptions, invoices, events, number_format)

    # -- collection ------------------------------------------------------------------------
    def begin_collections(self, day: date, limit: int) -> list[Attempt]:
        return self._payments.begin_collections(day, limit)

    def begin_attempts(self, attempts: Sequence[Attempt]) -> None:
        self._payments.begin_attempts(attempts)

    def still_pending(self, keys: Sequence[str]) -> set[str]:
        return self._payments.still_pending(keys)

    def pending_attempts(self) -> list[Attempt]:
        return self._payments.pending_attempts()

    def processing_due(self, day: date) -> list[Attempt]:
        return self._payments.processing_due(day)

    def finish_attempts(self, finished: Sequence[Finished], day: date) -> None:
        self._payments.finish_attempts(finished, day)

    # -- invoices and payments -------------------------------------------------------------
    def invoice(self, number: str) -> InvoiceRecord | None:
        return self._invoices.invoice(number)

    def invoices(
        self, subscription_id: str | None = None, status: str | None = None
    ) -> list[InvoiceRecord]:
        return self._invoices.invoices(subscription_id, status)

    def invoice_owners(self, number: str) -> list[str]:
        return self._invoices.owners(number)

    def invoice_attempt(self, number: str, on: date) -> Attempt | None:
        return self._payments.invoice_attempt(number, on)

    def open_invoices(self, subscription_id: str, on: date) -> list[Attempt]:
        return self._payments.open_invoices(subscription_id, on)

    def claim_invoices(
        self, numbers: Sequence[str], on: date, *, skip_busy: bool = False,
        method: tuple[str, str] | None = None,
    ) -> list[Attempt]:  # fmt: skip
        return self._payments.claim_invoices(numbers, on, skip_busy=skip_busy, method=method)

    def pay_invoice(self, number: str, amount: Money, on: date, method: str) -> InvoiceRecord:
        return self._payments.pay_invoice(number, amount, on, method)

    def refresh_dues(self, sub_id: str, on: date) -> None:
        self._payments.refresh_dues(sub_id, on)

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
        return self._payments.record_checkout(subs, draft, attempt, result, day, number_format,
                                              source, bases, total, key)  # fmt: skip

    def purchase_invoice(self, key: str) -> str | None:
        return self._links.purchase_invoice(key)

    def record_refund(
        self, number: str, amount: Money, method: str, key: str, reference: str | None,
        on: date, credit_note_format: str = "CN-{seq:04d}",
    ) -> tuple[int, str]:  # fmt: skip
        return self._payments.record_refund(number, amount, method, key, reference, on,
                                            credit_note_format)  # fmt: skip

    def credit_notes(self, invoice_number: str | None = None) -> list[CreditNoteRecord]:
        return self._payments.credit_notes(invoice_number)

    def credit_note(self, number: str) -> CreditNoteRecord | None:
        return self._payments.credit_note(number)

    def payments(
        self, subscription_id: str | None = None, invoice_number: str | None = None
    ) -> list[PaymentRecord]:
        return self._payments.payments(subscription_id, invoice_number)

    def manual_tries(self, invoice_number: str) -> int:
        return self._payments.manual_tries(invoice_number)

    def open_attempt(self, key: str) -> Attempt | None:
        return self._payments.open_attempt(key)

    # -- the outbox ------------------------------------------------------------------------
    def undelivered_events(
        self, limit: int = 500, subjects: Sequence[str] | None = None
    ) -> list[EventRecord]:
        return self._outbox.undelivered_events(limit, subjects)

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
        return self._outbox.hand_over(event_ids, deliveries, changed, events, based_on,
                                      claimant=claimant, claimed_until=claimed_until)  # fmt: skip

    def due_deliveries(self, on: date, limit: int = 500, after: str = "") -> list[DeliveryRecord]:
        return self._outbox.due_deliveries(on, limit, after)

    def delivery_result(
        self, key: str, on: date, *, error: str | None = None, retry_on: date | None = None
    ) -> None:
        self._outbox.delivery_result(key, on, error=error, retry_on=retry_on)

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
        return self._outbox.claim_deliveries(on, claimant, now, until, limit=limit, after=after,
                                             subjects=subjects)  # fmt: skip

    def renew_claims(self, claimant: str, until: int) -> None:
        self._outbox.renew_claims(claimant, until)

    def release_claims(self, claimant: str) -> None:
        self._outbox.release_claims(claimant)

    def delivery_results(
        self,
        results: Sequence[tuple[str, str | None, date | None]],
        on: date,
        claimant: str | None = None,
    ) -> None:
        self._outbox.delivery_results(results, on, claimant)

    def invoice_headers(self, numbers: Sequence[str]) -> list[InvoiceRecord]:
        return self._outbox.invoice_headers(numbers)

    def deliveries(self, status: str | None = None) -> list[DeliveryRecord]:
        return self._outbox.deliveries(status)

    # -- the event log, manual retries, disputes ------------------------------------------
    def event_log(self, event_type: str | None = None, since: date | None = None,
                  subject_id: str | None = None) -> list[EventRecord]:  # fmt: skip
        return self._eventlog.event_log(event_type, since, subject_id)

    def retry_deliveries(self, keys: Sequence[str] | None) -> list[str]:
        return self._eventlog.retry_deliveries(keys)

    def delivery_status(self, key: str) -> str | None:
        return self._eventlog.delivery_status(key)

    def payment_by_key(self, key: str) -> tuple[int, str] | None:
        return self._eventlog.payment_by_key(key)

    def record_dispute(self, dispute: DisputeRecord, subscription_id: str | None) -> bool:
        return self._eventlog.record_dispute(dispute, subscription_id)

    def disputes(self, invoice_number: str) -> list[DisputeRecord]:
        return self._eventlog.disputes(invoice_number)

    # -- config as code --------------------------------------------------------------------
    def declared_ids(self) -> set[str]:
        return self._subscriptions.declared_ids()

    def subscriptions_named(self, ids: Sequence[str]) -> list[Subscription]:
        return self._subscriptions.named(ids)

    def mark_declared(self, ids: Sequence[str]) -> None:
        self._subscriptions.mark_declared(ids)

    def declared_hashes(self) -> dict[str, str]:
        return self._subscriptions.declared_hashes()

    def set_declared_hashes(self, hashes: Mapping[str, str]) -> None:
        self._subscriptions.set_declared_hashes(hashes)

    def with_history(self, ids: Sequence[str]) -> set[str]:
        return self._subscriptions.with_history(ids)

    def record_config(self, version: str, applied_on: date, files: Mapping[str, str]) -> bool:
        return self._configs.record_config(version, applied_on, files)

    def applied_config(self) -> AppliedConfig | None:
        return self._configs.applied_config()

    # -- buyer links -----------------------------------------------------------------------
    def use_link(self, digest: str, kind: str, subject: str, on: date) -> bool:
        return self._links.use_link(digest, kind, subject, on)

    def release_link(self, digest: str) -> None:
        self._links.release_link(digest)

    def link_used(self, digest: str) -> bool:
        return self._server.link_used(digest)

    # -- the server ------------------------------------------------------------------------
    def stored_contact(self, contact_id: str) -> Contact | None:
        return self._server.stored_contact(contact_id)

    def stored_contacts(self) -> list[Contact]:
        return self._server.stored_contacts()

    def contact_by_email(self, email: str) -> Contact | None:
        return self._server.contact_by_email(email)

    def insert_contact(self, contact: Contact, on: date) -> bool:
        return self._server.insert_contact(contact, on)

    def add_api_key(self, name: str, digest: str, prefix: str, on: date) -> None:
        self._server.add_api_key(name, digest, prefix, on)

    def api_keys(self) -> list[dict[str, Any]]:
        return self._server.api_keys()

    def revoke_api_key(self, name: str, on: date) -> bool:
        return self._server.revoke_api_key(name, on)

    def api_key_named(self, digest: str) -> str | None:
        return self._server.api_key_named(digest)

    def claim_idempotency_key(
        self, api_key: str, key: str, request: str, on: date
    ) -> dict[str, Any] | None:
        return self._server.claim_idempotency_key(api_key, key, request, on)

    def answer_idempotency_key(self, api_key: str, key: str, status: int, response: str) -> None:
        self._server.answer_idempotency_key(api_key, key, status, response)

    def release_idempotency_key(self, api_key: str, key: str) -> None:
        self._server.release_idempotency_key(api_key, key)

    def webhook_received(self, processor: str, event_id: str) -> bool:
        return self._server.webhook_received(processor, event_id)

    def record_webhook(self, processor: str, event_id: str, kind: str, on: date) -> bool:
        return self._server.record_webhook(processor, event_id, kind, on)

    # -- what processor plugins keep ----------------------------------------------------------
    def processor_customer(self, processor: str, contact_id: str) -> str | None:
        return self._processors.processor_customer(processor, contact_id)

    def save_processor_customer(
        self, processor: str, contact_id: str, customer_id: str, on: date
    ) -> str:
        return self._processors.save_processor_customer(processor, contact_id, customer_id, on)

    def processor_request(self, processor: str, key: str) -> dict[str, Any] | None:
        return self._processors.processor_request(processor, key)

    def save_processor_request(self, processor: str, key: str, request: str, sent_at: int) -> bool:
        return self._processors.save_processor_request(processor, key, request, sent_at)

    def set_processor_reference(self, processor: str, key: str, reference: str) -> None:
        self._processors.set_processor_reference(processor, key, reference)
