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
from abonnement.operations import events as operations


@click.group()
def events() -> None:
    """Domain events the engine recorded (what webhooks and messages tell of)."""


@events.command("list")
@click.option("--type", "event_type", help="A type (`invoice.created`) or prefix (`invoice.*`).")
@click.option("--since", type=DATE, help="Events on or after this date.")
@click.option("--subscription", "subscription_id")
@json_option
@click.pass_obj
def events_list(app: App, event_type: str | None, since: Any, subscription_id: str | None,
                as_json: bool) -> None:  # fmt: skip
    """Every event, oldest first."""
    rows = operations.list_events(app.context, event_type=event_type, since=day(since),
                                  subscription_id=subscription_id)  # fmt: skip
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['date']}  {r['type']:<26} {r['subject_id']:<24} {r['id']}")


@click.group()
def deliveries() -> None:
    """Messages and webhook POSTs the outbox sent, is retrying, or gave up."""


@deliveries.command("list")
@click.option("--status", type=click.Choice(operations.STATUSES))
@json_option
@click.pass_obj
def deliveries_list(app: App, status: str | None, as_json: bool) -> None:
    """Every delivery (of one status), by event."""
    rows = operations.list_deliveries(app.context, status)
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        click.echo(_line(r))


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
    for r in rows if not as_json else ():
        click.echo(_line(r))
    if any(r["status"] != "sent" for r in rows):
        click.get_current_context().exit(Exit.PARTIAL)


def _line(r: dict[str, Any]) -> str:
    when = r["sent_on"] or r["next_try_on"] or ""
    text = (f"{r['status']:<8} {r['attempts']:>2}x {when:<10}  {r['event_type']:<26} "
            f"{r['channel']:<9} {r['recipient']}  {r['id']}")  # fmt: skip
    return text + (f"\n         {r['error']}" if r["error"] and r["status"] != "sent" else "")


COMMANDS = (events, deliveries)
