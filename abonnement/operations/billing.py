"""Billing runs and forecasts: the declared subscriptions applied, everything due billed in
date order, what it set off delivered."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from abonnement.errors import InvalidInput
from abonnement.operations.context import Context
from abonnement.operations.declared import apply_declared
from abonnement.operations.delivery import deliver_due

if TYPE_CHECKING:
    from abonnement.engine.billing_run import RunSummary

__all__ = ["RunResult", "bill", "due_count", "forecast", "run"]


@dataclass
class RunResult:
    """What a billing run did: the engine's summary, what ``apply`` changed first, the
    invoices a dry run would issue (stored rows, empty for a real run) and the deliveries."""

    summary: RunSummary
    applied: dict[str, list[str]] = field(default_factory=dict)
    invoices: list[dict[str, Any]] = field(default_factory=list)
    notifications: dict[str, int] | None = None


@contextmanager
def _long_run() -> Iterator[None]:
    """A billing run makes millions of short-lived objects that reference counting frees,
    and the cyclic collector's passes over everything that lives long (config, rules, the
    run's caches) cost it 10-15%: those are frozen out of the passes, and the youngest
    generation is collected every 10,000 allocations instead of 700."""
    threshold = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def due_count(ctx: Context, until: date) -> int:
    """How many subscriptions have something due up to ``until`` (for a progress bar)."""
    return ctx.storage.count_due(until)


def run(
    ctx: Context,
    until: date,
    *,
    apply_on: date,
    dry_run: bool = False,
    batch_size: int = 500,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> RunResult:
    """``abonnement run``: apply the declared subscriptions on ``apply_on``, bill everything
    due up to ``until``, then deliver what the run set off.

    A dry run does the same inside one transaction that is rolled back, charges nobody and
    delivers nothing; its result lists every invoice it would have issued. ``workers`` > 1
    bills in that many processes sharing the work through row locks (PostgreSQL only).
    Raises ``InvalidInput`` for a dry run with workers or workers on SQLite."""
    if workers > 1 and dry_run:
        raise InvalidInput("a dry run uses one worker")
    if dry_run:
        return _dry_run(ctx, until, apply_on, batch_size, progress)
    applied = apply_declared(ctx, apply_on)
    summary = bill(ctx, until, batch_size=batch_size, workers=workers, progress=progress)
    return RunResult(summary, applied, notifications=deliver_due(ctx, until))


def bill(
    ctx: Context,
    until: date,
    *,
    batch_size: int = 500,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    charge: bool = True,
    keep_invoices: bool = False,
) -> RunSummary:
    """The billing loop alone — no apply, no delivery — over this project's storage, rules
    and processor (``charge=False``: no processor). ``run`` wraps it; benchmarks time it."""
    if workers > 1:
        return _run_workers(ctx, until, workers, batch_size)
    from abonnement.engine.billing_run import run_billing
    from abonnement.engine.invoicing import PricingMemo

    rules = ctx.rules
    memo = PricingMemo(rules.fields, rules.counts_payments) if rules.memoizable else None
    with _long_run():
        return run_billing(
            ctx.storage, ctx.catalog, rules.pricing, until, batch_size=batch_size,
            progress=progress, with_mrr=rules.reads("subscription", "mrr"),
            with_subtotal=rules.reads("invoice", "subtotal"),
            processor=ctx.processor if charge else None, memo=memo,
            keep_invoices=keep_invoices, taxes=ctx.automatic_tax(), recurring=ctx.recurring,
        )  # fmt: skip


def _dry_run(
    ctx: Context,
    until: date,
    apply_on: date,
    batch_size: int,
    progress: Callable[[int], None] | None,
) -> RunResult:
    store = ctx.storage
    # A dry run rolls the database back, but a processor cannot be rolled back: no charges.
    with store.dry_run():
        applied = apply_declared(ctx, apply_on)
        summary = bill(ctx, until, batch_size=batch_size, progress=progress, charge=False,
                        keep_invoices=True)  # fmt: skip
        invoices = [store.invoice(number) for number, _ in summary.invoices]
    return RunResult(summary, applied, invoices)


def forecast(ctx: Context, as_of: date, months: int) -> list[dict[str, Any]]:
    """The invoices the next ``months`` months will issue, by month and currency
    (``{"month": "YYYY-MM", "currency", "invoices": int, "total": "12.50"}``): the billing run
    itself (declared subscriptions applied), rolled back, charging nobody."""
    from abonnement.engine.schedule import add_months

    until = add_months(as_of, months) - timedelta(days=1)
    with ctx.storage.dry_run():
        apply_declared(ctx, as_of)
        summary = bill(ctx, until, charge=False, keep_invoices=True)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for _, draft in summary.invoices:
        key = (draft.issue_date.strftime("%Y-%m"), draft.currency)
        row = rows.setdefault(key, {"month": key[0], "currency": key[1], "invoices": 0,
                                    "total": draft.total * 0})  # fmt: skip
        row["invoices"] += 1
        row["total"] = row["total"] + draft.total
    return [{**row, "total": row["total"].format_amount()} for _, row in sorted(rows.items())]


def _run_workers(ctx: Context, until: date, workers: int, batch_size: int) -> RunSummary:
    """The billing run in ``workers`` processes sharing the work through row locks."""
    import multiprocessing

    if getattr(ctx.storage, "sqlite", False):
        raise InvalidInput("SQLite takes one worker at a time; use PostgreSQL for --workers")
    context = multiprocessing.get_context("spawn")
    args = [(str(ctx.config_dir), ctx.database_url, until, batch_size)] * workers
    with context.Pool(workers) as pool:
        summaries = pool.starmap(_worker, args)
    total = summaries[0]
    for other in summaries[1:]:
        total.invoice_count += other.invoice_count
        total.subscriptions += other.subscriptions
        for currency, money in other.totals.items():
            total.totals[currency] = (
                total.totals[currency] + money if (currency in total.totals) else money
            )
        for key, count in other.status_changes.items():
            total.status_changes[key] = total.status_changes.get(key, 0) + count
        for key, count in other.payments.items():
            total.payments[key] = total.payments.get(key, 0) + count
    return total


def _worker(config_dir: str, database_url: str, until: date, batch_size: int) -> RunSummary:
    """One worker process of ``run --workers``: bills only (the parent applied and delivers)."""
    from pathlib import Path

    from abonnement.app import App

    return bill(App(Path(config_dir), database_url).context, until, batch_size=batch_size)
