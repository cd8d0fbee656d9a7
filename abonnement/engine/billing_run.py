"""The billing run: the one imperative loop. Everything due up to a date, in date order.

Subscriptions are claimed day by day (the earliest pending event date first) in batches of
``batch_size`` by id (keyset pagination), stepped by the pure state machine, invoiced, and
stored one transaction per batch. Invoices get their numbers in (date, subscription) order,
so a run is deterministic for a given config, database and date; a rerun finds nothing due
that was already done. Memory stays bounded by the batch size.
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
from abonnement.engine.events import Event
from abonnement.engine.invoicing import InvoiceDraft, PricingMemo, draft_invoice
from abonnement.engine.money import Money
from abonnement.engine.outcomes import settlement
from abonnement.engine.status import InvoiceStatus, PaymentStatus
from abonnement.engine.subscriptions import Subscription, step, upcoming_period
from abonnement.engine.taxes import AutomaticTax
from abonnement.errors import ProcessorTimeout

__all__ = [
    "BillingStore",
    "RunSummary",
    "charge_once",
    "collect",
    "reconcile",
    "run_billing",
]


class BillingStore(Protocol):
    """What the billing run needs from storage (the SQLAlchemy plugin provides it)."""

    def earliest_event(self, until: date, *, collections: bool = True) -> date | None:
        """The earliest day on or before ``until`` with work: a subscription event, or (with
        ``collections``) a charge to make or a debit to check."""

    def process_due(
        self, day: date, limit: int, work: Callable[[Sequence[Subscription]], tuple],
        number_format: str, *, collect: bool = False,
    ) -> tuple[int, list[str], list[InvoiceDraft], list[Attempt]]:  # fmt: skip
        """In one transaction: claim up to ``limit`` subscriptions with an event on ``day``
        (skipping any another worker holds), let ``work`` step them into (subscriptions,
        invoice drafts, events), store those with gap-free invoice numbers. With ``collect``,
        invoices to charge on ``day`` get their first attempt written ``pending`` in the same
        transaction. Returns how many were claimed, the new numbers, their drafts and those
        attempts (to charge once this has committed)."""

    def busy_on(self, day: date) -> bool:
        """Whether subscriptions with an event on ``day`` remain (held by another worker)."""


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
    payments: dict[str, int] = field(default_factory=dict)  # outcome → count
    applied: dict[str, list[str]] = field(default_factory=dict)  # a dry run's own apply

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


def charge_once(processor: ProcessorPort, attempt: Attempt) -> ChargeResult | None:
    """The processor's answer for one attempt (asked again once after a timeout), or None."""
    if not attempt.amount:
        return ChargeResult(PaymentStatus.SUCCEEDED)  # nothing to take: a 100% discount, say
    for _ in range(2):  # after a timeout, the same key again: the processor tells what it did
        try:
            return processor.charge(amount=attempt.amount, token=attempt.token,
                                    idempotency_key=attempt.key, on=attempt.on)  # fmt: skip
        except ProcessorTimeout:
            continue
    return None  # still unknown: the attempt stays pending and the next run asks


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
    day: date, *, accepted: Accepted | None = None,
) -> list[tuple[Attempt, ChargeResult | None, Outcome | None]]:  # fmt: skip
    """Charge: pending rows committed first, then the processor, then the outcomes."""
    store.begin_attempts(attempts)
    return charge(store, processor, attempts, settings, day, accepted=accepted)


def charge(
    store: Any, processor: ProcessorPort, attempts: Sequence[Attempt], settings: Settings,
    day: date, *, accepted: Accepted | None = None,
) -> list[tuple[Attempt, ChargeResult | None, Outcome | None]]:  # fmt: skip
    """Call the processor for attempts already written pending, then record the outcomes.
    ``accepted`` gives the method types a subscription's charges may use (default: the
    account's): an attempt with another is not sent, and fails ``method_not_accepted``."""
    finished = []
    with store.holding():
        live = store.still_pending([a.key for a in attempts])
        for attempt in attempts:
            if attempt.key not in live:  # a reconciliation recorded it meanwhile
                continue
            methods = accepted(attempt.subscription_id) if accepted else settings.accepted_methods
            result = refused_method(attempt.method_type, methods) or charge_once(processor, attempt)
            if result is not None:
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


def reconcile(store: Any, processor: ProcessorPort, settings: Settings) -> list:
    """Attempts left pending by a crash: ask the processor by key what happened."""
    finished: list[tuple[Attempt, ChargeResult | None, Outcome | None]] = []
    with store.holding():  # skips, and then holds, what no live worker holds
        for attempt in store.pending_attempts():
            result = processor.lookup(idempotency_key=attempt.key, on=attempt.on)
            outcome = _judge(attempt, result, settings, attempt.on) if result else None
            finished.append((attempt, result, outcome))
        store.finish_attempts(finished, max((a.on for a, _, _ in finished), default=date.min))
    return finished


def _collect_day(store: Any, processor: ProcessorPort, day: date, settings: Settings,
                 batch_size: int, summary: RunSummary, accepted: Accepted) -> None:  # fmt: skip
    settled = []
    for attempt in store.processing_due(day):
        result = processor.lookup(idempotency_key=attempt.key, on=day)
        if result is not None:
            settled.append((attempt, result, _judge(attempt, result, settings, day)))
    store.finish_attempts(settled, day)
    summary.count(settled)
    while attempts := store.begin_collections(day, batch_size):
        summary.count(charge(store, processor, attempts, settings, day, accepted=accepted))


def run_billing(
    store: BillingStore,
    catalog: Catalog,
    rules: Sequence[Any],
    until: date,
    *,
    batch_size: int = 500,
    keep_invoices: bool = False,
    progress: Callable[[int], None] | None = None,
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
    and remembered for the run (None: no provider)."""
    summary = RunSummary(until, keep_invoices=keep_invoices)
    settings = catalog.settings
    records_cache: dict[str, Mapping[str, Any]] = {}
    if processor is not None:
        summary.count(reconcile(store, processor, settings))

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

    def work(batch: Sequence[Subscription]) -> tuple[list, list, list]:
        updated: list[Subscription] = []
        drafts: list[InvoiceDraft] = []
        events: list[Event] = []
        for sub in batch:
            result = step(sub)
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
                    summary.status_changes[new] = summary.status_changes.get(new, 0) + 1
        return updated, drafts, events

    while (day := store.earliest_event(until, collections=processor is not None)) is not None:
        summary.days += 1
        # Claim, step and store one batch per transaction; other workers skip what is claimed.
        while True:
            claimed, numbers, drafts, attempts = store.process_due(
                day, batch_size, work, settings.invoices.number_format,
                collect=processor is not None,
            )  # fmt: skip
            if not claimed:
                if store.busy_on(day):  # another worker holds the rest of the day: wait for it
                    time.sleep(0.05)
                    continue
                break
            summary.add(numbers, drafts)
            summary.subscriptions += claimed
            if attempts:  # committed pending with their invoices: charge them now
                summary.count(charge(store, processor, attempts, settings, day,  # type: ignore[arg-type]
                                     accepted=catalog.accepted_for))  # fmt: skip
            if progress:
                progress(claimed)
        if processor is not None:
            _collect_day(store, processor, day, settings, batch_size, summary,
                         catalog.accepted_for)  # fmt: skip
    return summary
