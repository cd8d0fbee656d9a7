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
from abonnement.operations.progress import Progress

if TYPE_CHECKING:
    from abonnement.engine.billing_run import RunSummary
    from abonnement.engine.records import InvoiceRecord

__all__ = [
    "Claims",
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


class Claims:
    """The engine's "claimed N more subscriptions on DAY" turned into ``progress(done,
    total)``. ``done`` counts the subscriptions billed (from ``base``: the work of an earlier
    step). A subscription may be due again later in the span, so ``total`` is an estimate:
    the share of the span done — the days behind, and the part of the day in hand billed
    (what it claimed against what is still due on it) — scaled up to a count; before the
    first batch, what is due now. ``extra`` adds work still to come after this step."""

    def __init__(self, ctx: Context, until: date, progress: Progress, *, base: int = 0,
                 extra: int = 0) -> None:  # fmt: skip
        self.ctx, self.until, self.progress, self.extra = ctx, until, progress, extra
        self.base = self.done = base
        self.first: date | None = None
        self.day: date | None = None
        self.today = 0  # claimed on ``day``
        self.tell()

    def __call__(self, claimed: int, day: date | None = None) -> None:
        if day is not None and day != self.day:
            self.first = self.first or day
            self.day, self.today = day, 0
        self.done += claimed
        self.today += claimed
        self.tell()

    def finish(self) -> None:
        """The step is over: what was done was all of it."""
        self.progress(self.done, self.done + self.extra)

    def tell(self) -> None:
        """Say where the work stands now."""
        ours = self.done - self.base
        if self.day is None or self.first is None:
            total = ours + self.ctx.storage.count_due(self.until)
        else:
            left = self.ctx.storage.count_due(self.day)  # still due on the day in hand
            span = (self.until - self.first).days + 1
            share = ((self.day - self.first).days + self.today / (self.today + left or 1)) / span
            total = max(ours + left, round(ours / share) if share > 0 else 0)
        self.progress(self.done, self.base + total + self.extra)


def _claims(ctx: Context, until: date, progress: Progress | None) -> Claims | None:
    return Claims(ctx, until, progress) if progress is not None else None


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
    progress: Progress | None = None,
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
    Raises ``InvalidInput`` for a dry run with workers or workers on SQLite.

    ``progress`` (``operations.progress``) is told ``(subscriptions billed, expected)``
    after each batch (with workers, a few times a second)."""
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
        claims = _claims(ctx, until, progress)
        applied, summary = apply_and_bill(ctx, apply_on, until, batch_size=batch_size,
                                          workers=workers, progress=claims)  # fmt: skip
        if claims is not None:
            claims.finish()
        ctx.storage.advance_timeline(until)
        sent = _deliver_shared(ctx, until, workers) if workers > 1 else deliver_due(ctx, until)
        result = RunResult(summary, applied, notifications=sent)
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
    progress: Callable[[int, date], None] | None = None,
    charge: bool = True,
    keep_invoices: bool = False,
) -> RunSummary:
    """The billing loop alone — no apply, no delivery — over this project's storage, rules
    and processor (``charge=False``: no processor). ``run`` wraps it; benchmarks time it.
    ``progress`` is the engine's: told how many subscriptions each batch claimed and their
    day (``Claims`` makes ``(done, total)`` of it)."""
    if workers > 1:
        return _run_workers(ctx, until, workers, batch_size, progress)
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
    progress: Progress | None,
) -> RunResult:
    store = ctx.storage
    # A dry run rolls the database back, but a processor cannot be rolled back: no charges.
    claims = _claims(ctx, until, progress)
    with store.dry_run():
        applied, summary = apply_and_bill(
            ctx, apply_on, until, batch_size=batch_size, progress=claims, charge=False,
            keep_invoices=True,
        )  # fmt: skip
        if claims is not None:
            claims.finish()
        invoices = [store.invoice(number) for number, _ in summary.invoices]
    return RunResult(summary, applied, [i for i in invoices if i is not None])


def forecast(
    ctx: Context, as_of: date, months: int, *, progress: Progress | None = None
) -> list[dict[str, Any]]:
    """The invoices the next ``months`` months will issue, by month and currency
    (``{"month": "YYYY-MM", "currency", "invoices": int, "total": "12.50"}``): the billing run
    itself (declared subscriptions applied), rolled back, charging nobody. ``progress`` is
    told ``(subscriptions billed, expected)`` as the run goes."""
    from abonnement.engine.schedule import add_months

    until = add_months(as_of, months) - timedelta(days=1)
    with ctx.storage.dry_run():
        claims = _claims(ctx, until, progress)
        _, summary = apply_and_bill(ctx, as_of, until, charge=False, keep_invoices=True,
                                    progress=claims)  # fmt: skip
        if claims is not None:
            claims.finish()
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for _, draft in summary.invoices:
        key = (draft.issue_date.strftime("%Y-%m"), draft.currency)
        row = rows.setdefault(key, {"month": key[0], "currency": key[1], "invoices": 0,
                                    "total": draft.total * 0})  # fmt: skip
        row["invoices"] += 1
        row["total"] = row["total"] + draft.total
    return [{**row, "total": row["total"].format_amount()} for _, row in sorted(rows.items())]


def _run_workers(
    ctx: Context,
    until: date,
    workers: int,
    batch_size: int,
    progress: Callable[[int, date], None] | None = None,
) -> RunSummary:
    """The billing run in ``workers`` processes sharing the work through row locks. The
    workers add what they claim to one shared counter; this process reads it a few times a
    second for ``progress``. A worker that dies (killed, out of memory) is noticed: the
    others are stopped, whatever they had claimed goes back with their connections (an
    attempt committed pending is asked about by its key, as after any crash), and this
    process bills what is left on its own."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    if not ctx.storage.concurrent_billing:
        raise InvalidInput("SQLite takes one worker at a time; use PostgreSQL for --workers")
    context = multiprocessing.get_context("spawn")
    args = (str(ctx.config_dir), ctx.database_url, until, batch_size)
    claimed = context.Value("q", 0)
    told = 0
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_share,
                                 initargs=(claimed,)) as pool:  # fmt: skip
            futures = [pool.submit(_worker, *args) for _ in range(workers)]
            finished = False
            while not finished:
                # a dead worker fails every future (BrokenProcessPool): never a wait forever
                finished = len(wait(futures, timeout=0.25).done) == workers
                now = claimed.value  # read once: the workers go on adding to it
                if progress is not None and now > told:
                    # the day the workers are on: the earliest one with work left
                    day = ctx.storage.earliest_event(until, collections=False)
                    progress(now - told, day or until)
                    told = now
            summaries = [f.result() for f in futures]
    except BrokenProcessPool:
        # every due subscription is still billed once; the totals the workers kept died with
        # the pool, so the summary counts what is billed from here on
        log.warning(
            "a worker of the billing run died; the run goes on in one process (its "
            "summary counts only what is billed from now on: `invoices list` has all)"
        )
        return bill(ctx, until, batch_size=batch_size)
    total = summaries[0]
    for other in summaries[1:]:
        days = total.days  # the workers shared the same days
        total = _merged(total, other)
        total.days = days
    return total


def _deliver_shared(ctx: Context, until: date, workers: int) -> dict[str, int]:
    """What the run set off, delivered by ``workers`` processes sharing the outbox: each hands
    events over a batch at a time and sends what it handed over (an event is handed over by
    one of them: its rows are locked), then claims what else is due (``SKIP LOCKED``); the
    counts of all of them. A worker that dies leaves its claims to lapse, and what the others
    did not reach is delivered here."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")
    args = (str(ctx.config_dir), ctx.database_url, until)
    total: dict[str, int] = {}
    try:
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            parts = [f.result() for f in [pool.submit(_delivery_worker, *args)
                                          for _ in range(workers)]]  # fmt: skip
    except BrokenProcessPool:
        log.warning("a delivery worker of the run died; the rest is delivered in one process")
        parts = []
    for counts in [*parts, deliver_due(ctx, until)]:  # anything left: retries, given back
        for key, n in counts.items():
            total[key] = total.get(key, 0) + n
    return total


def _delivery_worker(config_dir: str, database_url: str, until: date) -> dict[str, int]:
    """One worker process of ``run --workers`` delivering: its share of the outbox."""
    from pathlib import Path

    from abonnement.app import App

    return deliver_due(App(Path(config_dir), database_url).context, until)


_claimed: Any = None  # in a worker process: the counter the parent reads for its progress


def _share(counter: Any) -> None:
    global _claimed
    _claimed = counter


def _count(claimed: int, _day: date) -> None:
    with _claimed.get_lock():
        _claimed.value += claimed


def _worker(config_dir: str, database_url: str, until: date, batch_size: int) -> RunSummary:
    """One worker process of ``run --workers``: bills only (the parent applied and delivers)."""
    from pathlib import Path

    from abonnement.app import App

    return bill(App(Path(config_dir), database_url).context, until, batch_size=batch_size,
                progress=_count if _claimed is not None else None)  # fmt: skip
