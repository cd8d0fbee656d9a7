"""``abonnement payments …`` (list, retry, refund) and ``payment-methods …`` (update links)."""

from __future__ import annotations

from typing import Any

import click

from abonnement.app import App
from abonnement.cli.common import as_of_option, day_or_today, echo_json, json_option
from abonnement.cli.subscriptions import PAYMENT_COLUMNS
from abonnement.cli.tables import csv_option, echo_rows
from abonnement.operations import payments as operations
from abonnement.operations import queries


@click.group()
def payments() -> None:
    """Payment attempts: list, retry, refund."""


@payments.command("list")
@click.option("--subscription", "subscription_id")
@click.option("--invoice", "invoice_number")
@csv_option
@json_option
@click.pass_obj
def payments_list(app: App, subscription_id: str | None, invoice_number: str | None,
                  as_csv: bool, as_json: bool) -> None:  # fmt: skip
    """Payment attempts, oldest first: a table (or CSV, or JSON)."""
    from abonnement.views import payment_json

    found = queries.payments(app.context, subscription_id=subscription_id,
                             invoice_number=invoice_number)  # fmt: skip
    rows = [payment_json(r) for r in found]
    if as_json:
        echo_json(rows)
        return
    echo_rows(PAYMENT_COLUMNS, rows, as_csv=as_csv)


@payments.command("retry")
@click.argument("payment_id", type=int)
@as_of_option
@json_option
@click.pass_obj
def payments_retry(app: App, payment_id: int, as_of: Any, as_json: bool) -> None:
    """Retry the invoice of a payment now with the subscription's saved payment method (a
    limited number of manual retries). An invoice with none to charge is refused: its buyer
    pays it through its pay link."""
    result = operations.retry(app.context, payment_id, day_or_today(app, as_of))
    if as_json:
        echo_json(result)
        return
    click.echo(f"{result['invoice']} attempt {result['attempt']}: {result['status']}")


@payments.command("refund")
@click.argument("payment_id", type=int)
@click.option("--amount", help="Default: everything not refunded yet.")
@as_of_option
@json_option
@click.pass_obj
def payments_refund(app: App, payment_id: int, amount: str | None, as_of: Any,
                    as_json: bool) -> None:  # fmt: skip
    """Refund a payment; the subscription is left as it is."""
    result = operations.refund(app.context, payment_id, amount, day_or_today(app, as_of))
    if as_json:
        echo_json(result)
        return
    click.echo(f"refunded {result['amount']} {result['currency']} of {result['invoice']} "
               f"(credit note {result['credit_note']})")  # fmt: skip


@click.group("payment-methods")
def payment_methods() -> None:
    """Payment-method update links."""


@payment_methods.command("update-link")
@click.argument("subscription_id")
@as_of_option
@json_option
@click.pass_obj
def update_link(app: App, subscription_id: str, as_of: Any, as_json: bool) -> None:
    """A signed, expiring link for the buyer to save a new payment method."""
    result = operations.update_link(app.context, subscription_id, day_or_today(app, as_of))
    if as_json:
        echo_json(result)
        return
    click.echo(f"{result['url']} (valid through {result['expires_at']})")


@payment_methods.command("update")
@click.argument("token")
@click.option("--card", required=True, help="The new card token.")
@as_of_option
@json_option
@click.pass_obj
def update_method(app: App, token: str, card: str, as_of: Any, as_json: bool) -> None:
    """Save a new method through an update link and collect what is past due."""
    result = operations.update_payment_method(app.context, token, card, day_or_today(app, as_of))
    if as_json:
        echo_json(result)
        return
    click.echo(f"{result['subscription']}: {result['status']}; collected "
               f"{', '.join(result['collected']) or 'nothing'}")  # fmt: skip


COMMANDS = (payments, payment_methods)
