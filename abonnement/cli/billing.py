"""Billing commands: apply, run, forecast."""

from __future__ import annotations

from typing import Any

import click

from abonnement.app import App
from abonnement.cli.common import (
    DATE,
    Exit,
    as_of_option,
    day,
    day_or_today,
    echo_json,
    json_option,
)
from abonnement.cli.progress import progress_bar
from abonnement.cli.tables import Column, csv_option, echo_rows
from abonnement.operations import billing, declared


@click.command()
@click.option(
    "--prorate",
    is_flag=True,
    help="Changes of lines settle the current period (as `edit --prorate`).",
)
@click.option(
    "--prune", is_flag=True, help="Cancel, at period end, the subscriptions no longer declared."
)
@as_of_option
@json_option
@click.pass_obj
def apply(app: App, prorate: bool, prune: bool, as_of: Any, as_json: bool) -> None:
    """Create or change the declared subscriptions (by id; idempotent).

    A change applies from the next cycle; inside the freeze window before a payment it waits
    for the cycle after that payment (`run` applies it then). `abonnement plan` shows what
    this would do first."""
    with progress_bar("applying") as progress:
        result = declared.apply(app.context, day_or_today(app, as_of), prorate=prorate,
                                prune=prune, progress=progress)  # fmt: skip
    if as_json:
        echo_json(result.as_json())
        if result.refused:
            raise SystemExit(1)
        return
    counts = result.as_json()
    click.echo(", ".join(f"{len(counts[k])} {k}" for k in ("created", "updated", "unchanged")))
    freeze = app.catalog.settings.edit_freeze_days
    for sub_id, payment in sorted(result.deferred.items()):
        click.echo(f"{sub_id}: the change waits — its payment on {payment} is inside the "
                   f"{freeze}-day freeze window; it applies to the payment after that")  # fmt: skip
    for sub_id in result.no_longer_declared:
        done = " (canceled at period end)" if sub_id in result.pruned else ""
        click.echo(f"no longer declared: {sub_id}{done}")
    if result.no_longer_declared and not prune:
        click.echo("  left as they are; `abonnement apply --prune` cancels them at period end")
    for sub_id in result.deleted:
        click.echo(f"{sub_id}: declared, but deleted from the database (its invoices and "
                   "history remain); left alone: declare it under a new id to bill "
                   "again")  # fmt: skip
    for sub_id, why in sorted(result.refused.items()):
        click.echo(f"error: {sub_id}: not applied: {why}", err=True)
    if result.refused:
        raise SystemExit(1)  # the others were applied


@click.command("run")
@click.option(
    "--as-of",
    "as_of",
    type=DATE,
    help="Apply on this date, then bill everything due up to it (default today).",
)
@click.option(
    "--until",
    type=DATE,
    help="Bill everything due up to this date, from where the database's timeline "
    "stands (the date the last run reached; the apply is dated there).",
)
@click.option("--dry-run", is_flag=True, help="Write nothing; show what would be issued.")
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes (PostgreSQL); each due subscription, then each message, goes to one "
    "of them.",
)
@json_option
@click.pass_obj
def run_command(app: App, as_of: Any, until: Any, dry_run: bool, batch_size: int,
                workers: int, as_json: bool) -> None:  # fmt: skip
    """The billing run: every due event up to the date, in date order.

    Declared subscriptions are applied first (as `abonnement apply` does). With a date the
    run reads no clock: the same config, database and date give the same result any day.
    A subscription whose billing fails is set aside and named; the others are billed, and
    the next run tries it again. Charges the processor did not answer stay pending and are
    asked about on the next run. Exits 4 when the run finished but a subscription could not
    be billed or a message was given up (`failures` counts them, `failed` names the
    subscriptions)."""
    from abonnement.views import invoice_json

    if as_of and until:
        raise click.UsageError("give --as-of or --until, not both")
    if workers > 1 and dry_run:
        raise click.UsageError("a dry run uses one worker")
    ctx = app.context
    # --until: the apply is dated where the timeline stands (the operation reads it)
    apply_on = None if until else day_or_today(app, as_of)
    until_day = day(until) or apply_on
    options: dict[str, Any] = {"apply_on": apply_on, "dry_run": dry_run,
                               "batch_size": batch_size, "workers": workers}  # fmt: skip
    with progress_bar("billing") as progress:
        result = billing.run(ctx, until_day, progress=progress, **options)
    summary = result.summary
    totals = {c: m.format_amount() for c, m in sorted(summary.totals.items())}
    payload: dict[str, Any] = {
        "until": until_day.isoformat(), "dry_run": dry_run, "days": summary.days,
        "invoice_count": summary.invoice_count, "totals": totals,
        "status_changes": summary.status_changes, "applied": result.applied.as_json(),
        "payments": summary.payments,
        "failed": [{"id": sub_id, "message": error} for sub_id, error in summary.failed],
    }  # fmt: skip
    if summary.processor_error:
        payload["processor_error"] = summary.processor_error
    if dry_run:
        payload["invoices"] = [invoice_json(i) for i in result.invoices]
    else:
        payload["notifications"] = result.notifications
    failed = run_failures(result)
    payload["failures"] = failed
    if as_json:
        echo_json(payload)
    else:
        _say_run(summary, until_day, totals, dry_run)
        retrying = (result.notifications or {}).get("retrying", 0)
        if retrying:  # not given up yet: the next run tries them again
            click.echo(f"{retrying} {'delivery' if retrying == 1 else 'deliveries'} failed and "
                       "will be tried again on the next run: see `abonnement deliveries list "
                       "--status pending`", err=True)  # fmt: skip
        if failed["deliveries"]:
            n = failed["deliveries"]
            click.echo(f"{n} {'delivery' if n == 1 else 'deliveries'} given up (messages and "
                       "webhooks): see `abonnement deliveries list --status failed`, then "
                       "`abonnement deliveries retry --all-failed`", err=True)  # fmt: skip
    if any(failed.values()):  # after the summary: the rest was billed and delivered
        click.get_current_context().exit(Exit.PARTIAL)


def _say_run(summary: Any, until: Any, totals: dict[str, str], dry_run: bool) -> None:
    verb = "would issue" if dry_run else "issued"
    money = ", ".join(f"{v} {c}" for c, v in totals.items()) or "nothing"
    charges = ", ".join(f"{n} {status}" for status, n in sorted(summary.payments.items()))
    click.echo(f"up to {until}: {verb} {summary.invoice_count} invoices ({money})"
               + (f"; payments: {charges}" if charges else ""))  # fmt: skip
    awaiting = summary.payments.get("awaiting", 0)
    if awaiting:
        click.echo(f"{awaiting} {'charge awaits' if awaiting == 1 else 'charges await'} the "
                   f"processor's answer ({summary.processor_error}); left pending, asked "
                   "again on the next run")  # fmt: skip
    if summary.failed:
        noun = "subscription" if len(summary.failed) == 1 else "subscriptions"
        click.echo(f"{len(summary.failed)} {noun} not billed (set aside; the next run tries "
                   "again):", err=True)  # fmt: skip
        for sub_id, error in summary.failed:
            click.echo(f"  {sub_id}: {error}", err=True)


def run_failures(result: billing.RunResult) -> dict[str, int]:
    """How much a run could not do: ``subscriptions`` set aside unbilled (the summary's
    ``failed``) and ``deliveries`` given up (the notifications' ``failed``). Either > 0 makes
    the run exit 4 (``Exit.PARTIAL``)."""
    return {"subscriptions": len(result.summary.failed),
            "deliveries": (result.notifications or {}).get("failed", 0)}  # fmt: skip


FORECAST_COLUMNS = (
    Column("month"),
    Column("invoices", number=True),
    Column("total", number=True),
    Column("currency"),
)


@click.command()
@click.option("--months", type=click.IntRange(1, 120), default=12, show_default=True)
@as_of_option
@csv_option
@json_option
@click.pass_obj
def forecast(app: App, months: int, as_of: Any, as_csv: bool, as_json: bool) -> None:
    """The invoices the next N months will issue, by month and currency; writes nothing."""
    on = day_or_today(app, as_of)
    with progress_bar("forecasting") as progress:
        rows = billing.forecast(app.context, on, months, progress=progress)
    if as_json:
        echo_json({"as_of": on.isoformat(), "months": months, "forecast": rows})
        return
    echo_rows(FORECAST_COLUMNS, rows, as_csv=as_csv)


COMMANDS = (apply, run_command, forecast)
