"""``abonnement events list`` and ``abonnement deliveries list|retry``: the outbox."""

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
from abonnement.cli.tables import Column, csv_option, echo_rows
from abonnement.operations import events as operations

EVENT_COLUMNS = (
    Column("date"),
    Column("type"),
    Column("subject_id", title="SUBJECT"),
    Column("seq", number=True),
    Column("id"),
)
DELIVERY_COLUMNS = (
    Column("status"),
    Column("attempts", number=True),
    Column("when", lambda r: r["sent_on"] or r["next_try_on"] or ""),
    Column("event_type", title="EVENT"),
    Column("channel"),
    Column("recipient"),
    Column("id"),
    Column("error", lambda r: r["error"] if r["status"] != "sent" else ""),
)


@click.group()
def events() -> None:
    """Domain events the engine recorded (what webhooks and messages tell of)."""


@events.command("list")
@click.option("--type", "event_type", help="A type (`invoice.created`) or prefix (`invoice.*`).")
@click.option("--since", type=DATE, help="Events on or after this date.")
@click.option("--subscription", "subscription_id")
@csv_option
@json_option
@click.pass_obj
def events_list(app: App, event_type: str | None, since: Any, subscription_id: str | None,
                as_csv: bool, as_json: bool) -> None:  # fmt: skip
    """Every event, oldest first: a table (or CSV, or JSON)."""
    rows = operations.list_events(app.context, event_type=event_type, since=day(since),
                                  subscription_id=subscription_id)  # fmt: skip
    if as_json:
        echo_json(rows)
        return
    echo_rows(EVENT_COLUMNS, rows, as_csv=as_csv)


@click.group()
def deliveries() -> None:
    """Messages and webhook POSTs the outbox sent, is retrying, or gave up."""


@deliveries.command("list")
@click.option("--status", type=click.Choice(operations.STATUSES))
@csv_option
@json_option
@click.pass_obj
def deliveries_list(app: App, status: str | None, as_csv: bool, as_json: bool) -> None:
    """Every delivery (of one status), by event: a table (or CSV, or JSON)."""
    rows = operations.list_deliveries(app.context, status)
    if as_json:
        echo_json(rows)
        return
    echo_rows(DELIVERY_COLUMNS, rows, as_csv=as_csv)


@deliveries.command("retry")
@click.argument("delivery_id", required=False)
@click.option("--all-failed", is_flag=True, help="Every delivery given up.")
@as_of_option
@json_option
@click.pass_obj
def deliveries_retry(app: App, delivery_id: str | None, all_failed: bool, as_of: Any,
                     as_json: bool) -> None:  # fmt: skip
    """Try a delivery again now (its ID from `deliveries list`), or every failed one.
    Exits 4 when one is still not sent."""
    if bool(delivery_id) == all_failed:
        raise click.UsageError("give a delivery ID or --all-failed")
    result = operations.retry(app.context, day_or_today(app, as_of), delivery_id)
    rows = result["retried"]
    if as_json:
        echo_json(result)
    elif not rows:
        click.echo("no failed deliveries")
    else:
        echo_rows(DELIVERY_COLUMNS, rows)
    if any(r["status"] != "sent" for r in rows):
        click.get_current_context().exit(Exit.PARTIAL)


COMMANDS = (events, deliveries)
