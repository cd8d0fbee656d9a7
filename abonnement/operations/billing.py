"""Billing runs and forecasts: the declared subscriptions applied, everything due billed in
date order, what it set off delivered."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from abonnement.errors import InvalidInput
from abonnement.operations.context import Context
from abonnement.operations.declared import Applied, apply_declared
from abonnement.operations.delivery import deliver_due

if TYPE_CHECKING:
    from abonnement.engine.billing_run import RunSummary
    from abonnement.engine.records import InvoiceRecord

__all__ = [
    "RunResult",
    "apply_and_bill",
    "bill",
    "due_count",
    "forecast",
    "run",
    "timeline_start",
]

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a billing run did: the engine's summary, what ``apply`` changed first, the
    invoices a dry run would issue (as stored, empty for a real run) and the deliveries."""

    summary: RunSummary
    applied: Applied = field(default_factory=Applied)
    invoices: list[InvoiceRecord] = field(default_factory=list)
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


def timeline_start(ctx: Context, until: date) -> date:
    """Where the database's timeline stands, for a run up to ``until`` that was given no
    other date: the date the last run reached; on a database no run has reached yet, the
    earliest declared start (never after ``until``), or ``until`` when nothing is declared.
    Read from the database and the config only — never from the clock."""
    reached = ctx.storage.timeline()
    if reached is not None:
        return reached
    from abonnement.engine.schedule import OnDate

    starts = [d.start.on for d in ctx.catalog.subscriptions.values() if isinstance(d.start, OnDate)]
    return min([*starts, until])


def run(
    ctx: Context,
    until: date,
    *,
    apply_on: date | None = None,
    dry_run: bool = False,
    batch_size: int = 500,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> RunResult:
    """``abonnement run``: apply the declared subscriptions on ``apply_on`` (None: where
    the database's timeline stands, ``timeline_start``), bill everything due up to
    ``until``, then deliver what the run set off; the timeline then stands at ``until``
    (unless it stood later). Reads no clock.

    A subscription whose billing fails is set aside and named in ``summary.failed`` (the
    rest is billed); charges the processor gave no answer for stay pending
    (``summary.payments["awaiting"]``) — the next run retries both.

    A dry run does the same inside one transaction that is rolled back, charges nobody and
    delivers nothing; its result lists every invoice it would have issued. ``workers`` > 1
    bills in that many processes sharing the work through row locks (PostgreSQL only).
    Raises ``InvalidInput`` for a dry run with workers or workers on SQLite."""
    if workers > 1 and dry_run:
        raise InvalidInput("a dry run uses one worker")
    # Where billing cannot be shared (SQLite: one writer), a second run waits for the first,
    # then says "another run holds the database" (``Busy``) rather than fail half-way.
    with nullcontext() if ctx.storage.concurrent_billing else ctx.storage.exclusive("run"):
        return _run(ctx, until, apply_on, dry_run, batch_size, workers, progress)


def _run(
    ctx: Context,
    until: date,
    apply_on: date | None,
    dry_run: bool,
    batch_size: int,
    workers: int,
    progress: Callable[[int], None] | None,
) -> RunResult:
    if apply_on is None:
        apply_on = timeline_start(ctx, until)
    log.info("billing run up to %s%s", until, " (dry run)" if dry_run else "",
             extra={"apply_on": str(apply_on), "workers": workers})  # fmt: skip
    if dry_run:
        result = _dry_run(ctx, until, apply_on, batch_size, progress)
    else:
        ctx.notifiers()  # a notifier that refuses to start stops the run before anyone is charged
        applied, summary = apply_and_bill(ctx, apply_on, until, batch_size=batch_size,
                                          workers=workers, progress=progress)  # fmt: skip
        ctx.storage.advance_timeline(until)
        result = RunResult(summary, applied, notifications=deliver_due(ctx, until))
    _log_result(result, until)
    return result


def _log_result(result: RunResult, until: date) -> None:
    summary = result.summary
    money = ", ".join(f"{m.format_amount()} {c}" for c, m in sorted(summary.totals.items()))
    log.info(
        "billing run up to %s: %s invoices (%s)", until, summary.invoice_count, money or "none",
        extra={"applied": {k: len(v) for k, v in result.applied.as_json().items() if v},
               "payments": {str(k): n for k, n in summary.payments.items()},
               "deliveries": {str(k): n for k, n in (result.notifications or {}).items()},
               "not_billed": [sub_id for sub_id, _ in summary.failed]},
    )  # fmt: skip


def apply_and_bill(
    ctx: Context, apply_on: date, until: date, *, prorate: bool = False, **options: Any
) -> tuple[Applied, RunSummary]:
    """Apply the declared subscriptions on ``apply_on`` (``prorate``: as ``apply
    --prorate``), then bill up to ``until`` (``options`` go to ``bill``). A change that waits
    for a payment inside the freeze window is applied once that payment is billed, dated that
    day, and billing goes on: the run bills what the config says, whatever span it covers."""
    applied = apply_declared(ctx, apply_on, prorate=prorate)
    summary = None
    waiting = min(applied.deferred.values(), default=None)
    while waiting is not None and waiting <= until:
        summary = _merged(summary, bill(ctx, waiting, **options), later=True)
        # dated the day that payment was billed, or this run's apply date if that is later
        again = apply_declared(ctx, max(waiting, apply_on), prorate=prorate)
        applied.merge(again)
        later = min(again.deferred.values(), default=None)
        waiting = later if later is not None and later > waiting else None
    summary = _merged(summary, bill(ctx, until, **options), later=True)
    # a declaration no apply can make is left as it was and named, like a subscription whose
    # billing failed: the others are billed, the run exits 4 (partial)
    summary.failed += [(sub_id, why) for sub_id, why in sorted(applied.refused.items())
                       if sub_id not in {f[0] for f in summary.failed}]  # fmt: skip
    return applied, summary


def _merged(total: RunSummary | None, part: RunSummary, *, later: bool = False) -> RunSummary:
    """Two parts of one run (or two workers' shares) as one summary. A ``later`` part asked
    the processor again about what the earlier left pending: its count of charges awaiting
    an answer is the run's."""
    if total is None:
        return part
    if later:
        total.payments.pop("awaiting", None)
    total.until = part.until
    total.days += part.days
    total.invoice_count += part.invoice_count
    total.subscriptions += part.subscriptions
    total.invoices.extend(part.invoices)
    again = {sub_id for sub_id, _ in part.failed}  # a later part tried it again
    total.failed = [f for f in total.failed if f[0] not in again] + part.failed
    total.processor_error = part.processor_error or total.processor_error
    for currency, money in part.totals.items():
        total.totals[currency] = total.totals[currency] + money if (
            currency in total.totals) else money  # fmt: skip
    for counts, more in ((total.status_changes, part.status_changes),
                         (total.payments, part.payments)):  # fmt: skip
        for key, count in more.items():
            counts[key] = counts.get(key, 0) + count
    return total


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
        applied, summary = apply_and_bill(
            ctx, apply_on, until, batch_size=batch_size, progress=progress, charge=False,
            keep_invoices=True,
        )  # fmt: skip
        invoices = [store.invoice(number) for number, _ in summary.invoices]
    return RunResult(summary, applied, [i for i in invoices if i is not None])


def forecast(ctx: Context, as_of: date, months: int) -> list[dict[str, Any]]:
    """The invoices the next ``months`` months will issue, by month and currency
    (``{"month": "YYYY-MM", "currency", "invoices": int, "total": "12.50"}``): the billing run
    itself (declared subscriptions applied), rolled back, charging nobody."""
    from abonnement.engine.schedule import add_months

    until = add_months(as_of, months) - timedelta(days=1)
    with ctx.storage.dry_run():
        _, summary = apply_and_bill(ctx, as_of, until, charge=False, keep_invoices=True)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for _, draft in summary.invoices:
        key = (draft.issue_date.strftime("%Y-%m"), draft.currency)
        row = rows.setdefault(key, {"month": key[0], "currency": key[1], "invoices": 0,
                                    "total": draft.total * 0})  # fmt: skip
        row["invoices"] += 1
        row["total"] = row["total"] + draft.total
    return [{**row, "total": row["total"].format_amount()} for _, row in sorted(rows.items())]


def _run_workers(ctx: Context, until: date, workers: int, batch_size: int) -> RunSummary:
    """The billing run in ``workers`` processes sharing the work through row locks. A worker
    that dies (killed, out of memory) is noticed: the others are stopped, whatever they had
    claimed goes back with their connections (an attempt committed pending is asked about by
    its key, as after any crash), and this process bills what is left on its own."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    if not ctx.storage.concurrent_billing:
        raise InvalidInput("SQLite takes one worker at a time; use PostgreSQL for --workers")
    context = multiprocessing.get_context("spawn")
    args = (str(ctx.config_dir), ctx.database_url, until, batch_size)
    try:
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            summaries = [f.result() for f in [pool.submit(_worker, *args) for _ in range(workers)]]
    except BrokenProcessPool:
        log.warning("a worker of the billing run died; the run goes on in one process")
        return bill(ctx, until, batch_size=batch_size)
    total = summaries[0]
    for other in summaries[1:]:
        days = total.days  # the workers shared the same days
        total = _merged(total, other)
        total.days = days
    return total


def _worker(config_dir: str, database_url: str, until: date, batch_size: int) -> RunSummary:
    """One worker process of ``run --workers``: bills only (the parent applied and delivers)."""
    from pathlib import Path

    from abonnement.app import App

    return bill(App(Path(config_dir), database_url).context, until, batch_size=batch_size)
