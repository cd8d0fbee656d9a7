"""The billing run: the one imperative loop. Everything due up to a date, in date order.

Subscriptions are claimed day by day (the earliest pending event date first) in batches of
``batch_size`` by id (keyset pagination), stepped by the pure state machine, invoiced, and
stored one transaction per batch. Invoices get their numbers in (date, subscription) order,
so a run is deterministic for a given config, database and date; a rerun finds nothing due
that was already done. Memory stays bounded by the batch size.

Nothing one subscription does stops the others. A batch that cannot be stepped, priced or
stored (an amount beyond what storage holds, a rule that fails at run time, a plugin that
raises) is rolled back and done again one subscription at a time; the one that fails is set
aside for the rest of the run with a ``subscription.billing_failed`` event, and the next run
tries it again. A processor that does not answer (a timeout, a refused connection, a server
error, any exception of its plugin) leaves its attempts pending for the next run to ask about
by key, and the run goes on billing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Protocol

from abonnement.engine.catalog import Catalog, Settings
from abonnement.engine.collection import (
    Attempt,
    ChargeResult,
    Outcome,
    ProcessorPort,
    judge,
    refused_method,
)
from abonnement.engine.context import buyer_records
from abonnement.engine.events import Event, numbered
from abonnement.engine.invoicing import InvoiceDraft, PricingMemo, draft_invoice
from abonnement.engine.money import Money
from abonnement.engine.outcomes import settlement
from abonnement.engine.ports import BillingStore, CollectionStore
from abonnement.engine.status import InvoiceStatus, PaymentStatus
from abonnement.engine.subscriptions import Subscription, scheduled, step, upcoming_period
from abonnement.engine.taxes import AutomaticTax
from abonnement.errors import AbonnementError, ProcessorTimeout

__all__ = [
    "BatchFailed",
    "BillingStore",
    "Outage",
    "RunStore",
    "RunSummary",
    "billing_failed",
    "charge_once",
    "collect",
    "reconcile",
    "run_billing",
]


class BatchFailed(Exception):
    """A claimed batch could not be stepped, priced or stored, and was rolled back.

    Raised by ``BillingStore.process_due``; ``ids`` are the subscriptions it claimed,
    ``error`` what went wrong (the database's own failures — a lost connection, a lock —
    are not this: they stop the run)."""

    def __init__(self, ids: Sequence[str], error: BaseException):
        super().__init__(f"{len(ids)} subscriptions: {error}")
        self.ids = list(ids)
        self.error = error


class RunStore(BillingStore, CollectionStore, Protocol):
    """What a billing run needs of storage: its claim loop and, to charge, the collections."""


def billing_failed(sub_id: str, on: date, error: str, last_seq: int) -> Event:
    """The ``subscription.billing_failed`` event: billing ``sub_id`` on ``on`` failed with
    ``error`` (the subscription is left as it was; the next run tries it again)."""
    return numbered(sub_id, on, last_seq, ("subscription.billing_failed", {"error": error}))[0]


def describe(error: BaseException) -> str:
    """An error as one line a reader can act on: our own errors by their message, any other
    by its type too (``ZeroDivisionError: division by zero``)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, (AbonnementError, ValueError)) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# Calls in a row a processor leaves unanswered before a run stops asking it (each may wait
# for a timeout); what is left stays pending, for the next run to ask about by key.
GIVE_UP_AFTER = 3


@dataclass
class Outage:
    """What a processor that did not answer left behind: ``awaiting`` attempts left pending
    (the next run asks about them by key), and the last ``error`` it gave, naming the
    processor. After ``GIVE_UP_AFTER`` unanswered calls in a row it is not asked again."""

    processor: str = "processor"
    awaiting: int = 0
    error: str | None = None
    in_a_row: int = 0

    @property
    def down(self) -> bool:
        return self.in_a_row >= GIVE_UP_AFTER

    def failed(self, error: BaseException | None) -> None:
        """A call with no answer: ``error`` raised, or (None) a timeout twice."""
        self.in_a_row += 1
        reason = describe(error) if error is not None else "no answer in time"
        self.error = f"the `{self.processor}` processor did not answer: {reason}"

    def answered(self) -> None:
        self.in_a_row = 0


def _name(processor: Any) -> str:
    return getattr(processor, "name", None) or type(processor).__name__


_NOTHING = Decimal(0)


@dataclass
class RunSummary:
    until: date
    days: int = 0
    subscriptions: int = 0
    invoices: list[tuple[str, InvoiceDraft]] = field(default_factory=list)
    invoice_count: int = 0
    totals: dict[str, Money] = field(default_factory=dict)
    status_changes: dict[str, int] = field(default_factory=dict)
    keep_invoices: bool = False
    payments: dict[str, int] = field(default_factory=dict)  # outcome → count; awaiting
    applied: dict[str, list[str]] = field(default_factory=dict)  # a dry run's own apply
    failed: list[tuple[str, str]] = field(default_factory=list)  # (subscription, error)
    processor_error: str | None = None  # the last error of a processor that did not answer

    def count(
        self, finished: Sequence[tuple[Attempt, ChargeResult | None, Outcome | None]]
    ) -> None:
        for _, _, outcome in finished:
            status = outcome.payment_status if outcome else "not_sent"
            self.payments[status] = self.payments.get(status, 0) + 1

    def add(self, numbers: Sequence[str], drafts: Sequence[InvoiceDraft]) -> None:
        self.invoice_count += len(drafts)
        sums: dict[str, Decimal] = {}  # exact either way; one Money per currency per batch
        for draft in drafts:
            sums[draft.currency] = sums.get(draft.currency, _NOTHING) + draft.total.amount
        for currency, amount in sums.items():
            self.totals[currency] = self.totals.get(currency, Money.zero(currency)) + Money(
                amount, currency
            )
        if self.keep_invoices:
            self.invoices.extend(zip(numbers, drafts, strict=True))


def charge_once(
    processor: ProcessorPort, attempt: Attempt, outage: Outage | None = None
) -> ChargeResult | None:
    """The processor's answer for one attempt, or None when none came: a timeout twice (the
    same key is asked once more: the processor tells what it did), or any exception of the
    processor or its plugin (a refused connection, a server error). None leaves the attempt
    pending, for the next run to ask about by key; ``outage`` notes why, and once it is
    ``down`` the processor is not asked at all."""
    if not attempt.amount:
        return ChargeResult(PaymentStatus.SUCCEEDED)  # nothing to take: a 100% discount, say
    outage = outage if outage is not None else Outage(_name(processor))
    if outage.down:
        return None
    for _ in range(2):
        try:
            result = processor.charge(amount=attempt.amount, token=attempt.token,
                                      idempotency_key=attempt.key, on=attempt.on)  # fmt: skip
        except ProcessorTimeout:
            continue
        except Exception as exc:  # the outcome is unknown: asked again by key, never lost
            outage.failed(exc)
            return None
        outage.answered()
        return result
    outage.failed(None)
    return None


def lookup_once(
    processor: ProcessorPort, attempt: Attempt, on: date, outage: Outage
) -> tuple[bool, ChargeResult | None]:
    """(whether the processor answered, its answer) about an earlier attempt: the answer
    may be None (it never saw the key). No answer — an exception, or an ``outage`` that is
    down — leaves the attempt as it is."""
    if outage.down:
        return False, None
    try:
        result = processor.lookup(idempotency_key=attempt.key, on=on)
    except Exception as exc:  # ProcessorTimeout included: asked again on the next run
        outage.failed(exc if not isinstance(exc, ProcessorTimeout) else None)
        return False, None
    outage.answered()
    return True, result


def _judge(attempt: Attempt, result: ChargeResult, settings: Settings, day: date) -> Outcome:
    outcome = judge(
        result, on=day, method_type=attempt.method_type, retries_done=attempt.retry_index,
        first_failure_on=attempt.first_failure_on, retry_days=settings.retry_days,
        after_final_failure=settings.after_final_failure, automatic=not attempt.manual,
        current=attempt.status,
    )  # fmt: skip
    if outcome.check_on is not None and outcome.check_on <= day:  # never ask twice a day
        outcome = replace(outcome, check_on=day + timedelta(days=1))
    return outcome


Accepted = Callable[[str | None], Sequence[str]]  # a subscription id → its method types


def collect(
    store: Any, processor: ProcessorPort, attempts: Sequence[Attempt], settings: Settings,
    day: date, *, accepted: Accepted | None = None, outage: Outage | None = None,
) -> list[tuple[Attempt, ChargeResult | None, Outcome | None]]:  # fmt: skip
    """Charge: pending rows committed first, then the processor, then the outcomes."""
    store.begin_attempts(attempts)
    return charge(store, processor, attempts, settings, day, accepted=accepted, outage=outage)


def charge(
    store: Any, processor: ProcessorPort, attempts: Sequence[Attempt], settings: Settings,
    day: date, *, accepted: Accepted | None = None, outage: Outage | None = None,
) -> list[tuple[Attempt, ChargeResult | None, Outcome | None]]:  # fmt: skip
    """Call the processor for attempts already written pending, then record the outcomes.
    ``accepted`` gives the method types a subscription's charges may use (default: the
    account's): an attempt with another is not sent, and fails ``method_not_accepted``.
    Those the processor gave no answer for stay pending (counted in ``outage.awaiting``)."""
    finished = []
    outage = outage if outage is not None else Outage(_name(processor))
    with store.holding():
        live = store.still_pending([a.key for a in attempts])
        for attempt in attempts:
            if attempt.key not in live:  # a reconciliation recorded it meanwhile
                continue
            methods = accepted(attempt.subscription_id) if accepted else settings.accepted_methods
            result = refused_method(attempt.method_type, methods) or charge_once(
                processor, attempt, outage
            )
            if result is None:
                outage.awaiting += 1
            else:
                finished.append((attempt, result, _judge(attempt, result, settings, day)))
        store.finish_attempts(finished, day)
    return finished


def settle(
    store: Any, answers: Sequence[tuple[Attempt, ChargeResult]], settings: Settings, day: date
) -> list[tuple[Attempt, ChargeResult | None, Outcome | None]]:
    """Record what the processor told us unasked (a webhook) about attempts still open, as a
    lookup's answer would be; an attempt recorded meanwhile is left as it is."""
    finished: list[tuple[Attempt, ChargeResult | None, Outcome | None]] = [
        (attempt, result, _judge(attempt, result, settings, day)) for attempt, result in answers
    ]
    with store.holding():
        store.finish_attempts(finished, day)
    return finished


def reconcile(
    store: Any, processor: ProcessorPort, settings: Settings, outage: Outage | None = None
) -> list:
    """Attempts left pending by a crash or an outage: ask the processor by key what
    happened. Those it does not answer about stay pending (``outage.awaiting``)."""
    finished: list[tuple[Attempt, ChargeResult | None, Outcome | None]] = []
    outage = outage if outage is not None else Outage(_name(processor))
    with store.holding():  # skips, and then holds, what no live worker holds
        for attempt in store.pending_attempts():
            answered, result = lookup_once(processor, attempt, attempt.on, outage)
            if not answered:
                outage.awaiting += 1
                continue
            outcome = _judge(attempt, result, settings, attempt.on) if result else None
            finished.append((attempt, result, outcome))
        store.finish_attempts(finished, max((a.on for a, _, _ in finished), default=date.min))
    return finished


def _collect_day(store: Any, processor: ProcessorPort, day: date, settings: Settings,
                 batch_size: int, summary: RunSummary, accepted: Accepted,
                 outage: Outage) -> None:  # fmt: skip
    settled = []
    for attempt in store.processing_due(day):  # unanswered: asked again the next day
        _, result = lookup_once(processor, attempt, day, outage)
        if result is not None:
            settled.append((attempt, result, _judge(attempt, result, settings, day)))
    store.finish_attempts(settled, day)
    summary.count(settled)
    while attempts := store.begin_collections(day, batch_size):
        summary.count(charge(store, processor, attempts, settings, day, accepted=accepted,
                             outage=outage))  # fmt: skip


def run_billing(
    store: RunStore,
    catalog: Catalog,
    rules: Sequence[Any],
    until: date,
    *,
    batch_size: int = 500,
    keep_invoices: bool = False,
    progress: Callable[[int, date], None] | None = None,
    with_mrr: bool = True,
    with_subtotal: bool = True,
    processor: ProcessorPort | None = None,
    memo: PricingMemo | None = None,
    taxes: AutomaticTax | None = None,
    recurring: Any = None,
) -> RunSummary:
    """Do everything due up to and including ``until``, day by day. ``with_mrr=False`` and
    ``with_subtotal=False`` when no rule reads ``subscription.mrr`` or ``invoice.subtotal``
    (neither is free to compute); ``recurring`` (a ``RecurringPricing``) counts the recurring
    discount rules in MRR. ``taxes``: the configured tax provider's rates, asked per invoice
    and remembered for the run (None: no provider).

    A subscription whose billing fails is set aside (``summary.failed``, and its
    ``subscription.billing_failed`` event); attempts the processor gave no answer for are
    left pending (``summary.payments["awaiting"]``, ``summary.processor_error``).
    ``progress`` is told, after each batch, how many subscriptions it claimed and their day."""
    summary = RunSummary(until, keep_invoices=keep_invoices)
    settings = catalog.settings
    records_cache: dict[str, Mapping[str, Any]] = {}
    outage = Outage(_name(processor))
    lead = settings.reminder_lead
    # Stored next event dates computed with another reminder lead (settings changed since)
    # are computed again first: a reminder now due must be claimed on its day.
    while store.reschedule(lead, batch_size, lambda subs: [scheduled(s, lead) for s in subs]):
        pass
    if processor is not None:
        summary.count(reconcile(store, processor, settings, outage))
    skip: set[str] = set()  # set aside for the rest of this run: their billing failed
    changes: dict[str, int] = {}  # the status changes of the batch in hand (kept once stored)

    def records_of(sub: Subscription) -> Mapping[str, Any]:
        """The records of one buyer rules read (``buyer_records``), once per run."""
        charged = sub.collection_mode == "automatic" and sub.payment_token
        key = (f"{sub.contact_id}/{sub.billing_contact_id}/{sub.company_id}/"
               f"{sub.payment_type if charged else None}")  # fmt: skip
        if key not in records_cache:
            records_cache[key] = buyer_records(catalog, sub)
        return records_cache[key]

    def priced_reminder(event: Event, sub: Subscription, records: Mapping[str, Any]) -> Event:
        """A reminder says what the payment will charge: the invoice this run would issue
        for it, priced as it will be (discounts, fees, taxes, what is carried)."""
        if event.type != "reminder.due":
            return event
        period = upcoming_period(sub, event.payload["payment"])
        draft = draft_invoice(sub, period, records, rules, catalog, with_mrr=with_mrr,
                              with_subtotal=with_subtotal, memo=memo, taxes=taxes,
                              recurring=recurring)  # fmt: skip
        amount = draft.total.rounded().format_amount()
        return replace(event, payload=MappingProxyType({**event.payload, "amount": amount}))

    def work(batch: Sequence[Subscription], day: date) -> tuple[list, list, list]:
        """Step a claimed batch on ``day``: (stepped subscriptions, invoice drafts, events)."""
        changes.clear()
        updated: list[Subscription] = []
        drafts: list[InvoiceDraft] = []
        events: list[Event] = []
        for sub in batch:
            # a claim goes by the stored date; the step by the settings (and never past it)
            result = step(scheduled(sub, lead), day)
            if result.periods:
                records = records_of(sub)
                for period in result.periods:
                    draft = draft_invoice(sub, period, records, rules, catalog, with_mrr=with_mrr,
                                          with_subtotal=with_subtotal, memo=memo, taxes=taxes,
                                          recurring=recurring)  # fmt: skip
                    minimum = settings.minimum_charge_for(draft.currency)
                    settled = settlement(draft.total, automatic=draft.collect_on is not None,
                                         minimum=minimum)  # fmt: skip
                    if settled is not None:  # nothing to charge or to wait for: not overdue
                        draft = replace(draft, status=InvoiceStatus.PAID, collect_on=None,
                                        settled=settled)  # fmt: skip
                        result = replace(result, subscription=replace(
                            result.subscription, open_due_on=sub.open_due_on))  # fmt: skip
                    drafts.append(draft)
            if any(e.type == "reminder.due" for e in result.events):
                result = replace(result, events=tuple(
                    priced_reminder(e, result.subscription, records_of(sub)) for e in result.events
                ))  # fmt: skip
            updated.append(result.subscription)
            events.extend(result.events)
            for event in result.events:
                if event.type == "subscription.status_changed":
                    new = event.payload["status"]
                    changes[new] = changes.get(new, 0) + 1
        return updated, drafts, events

    def bill_batch(day: date, limit: int) -> int:
        """Claim, step and store one batch in one transaction, then charge it; returns how
        many were claimed. Raises ``BatchFailed`` (all of it rolled back)."""
        claimed, numbers, drafts, attempts = store.process_due(
            day, limit, lambda batch: work(batch, day), settings.invoices.number_format,
            collect=processor is not None, skip=skip,
        )  # fmt: skip
        if not claimed:
            return 0
        summary.add(numbers, drafts)
        summary.subscriptions += claimed
        for status, count in changes.items():
            summary.status_changes[status] = summary.status_changes.get(status, 0) + count
        if attempts:  # committed pending with their invoices: charge them now
            summary.count(charge(store, processor, attempts, settings, day,  # type: ignore[arg-type]
                                 accepted=catalog.accepted_for, outage=outage))  # fmt: skip
        if progress:
            progress(claimed, day)
        return claimed

    def set_aside(day: date, failed: BatchFailed) -> None:
        """A batch failed: done again one subscription at a time, and the one that fails
        alone is set aside with its event (the others are billed as they would have been)."""
        if len(failed.ids) == 1:
            sub_id, error = failed.ids[0], describe(failed.error)
            store.record_failure(sub_id, lambda last: billing_failed(sub_id, day, error, last))
            summary.failed.append((sub_id, error))
            skip.add(sub_id)
            return
        for _ in failed.ids:  # the same subscriptions, first by id, as the batch claimed them
            try:
                if not bill_batch(day, 1):
                    break
            except BatchFailed as alone:
                set_aside(day, alone)

    while (day := store.earliest_event(until, collections=processor is not None,
                                       skip=skip)) is not None:  # fmt: skip
        summary.days += 1
        # Claim, step and store one batch per transaction; other workers skip what is claimed.
        while True:
            try:
                claimed = bill_batch(day, batch_size)
            except BatchFailed as failed:
                set_aside(day, failed)
                continue
            if not claimed:
                if store.busy_on(day, skip):  # another worker holds the rest of the day: wait
                    time.sleep(0.05)
                    continue
                break
        if processor is not None:
            _collect_day(store, processor, day, settings, batch_size, summary,
                         catalog.accepted_for, outage)  # fmt: skip
    if outage.awaiting:
        summary.payments["awaiting"] = outage.awaiting
        summary.processor_error = outage.error
    return summary
