"""Purchase commands: quote, checkout, convert."""

from __future__ import annotations

from typing import Any

import click

from abonnement.app import App
from abonnement.cli.common import (
    DATE,
    as_of_option,
    day,
    day_or_today,
    echo_json,
    json_option,
    product_specs,
)
from abonnement.operations import purchases


@click.command()
@click.option("--contact", "contact_id", required=True, help="The buyer (a contact id).")
@click.option("--item", "items", multiple=True, required=True, metavar="PRODUCT[:QTY]")
@click.option("--start", type=DATE, help="Billing starts on this date.")
@click.option("--payments", type=click.IntRange(1, 1200), help="A fixed number of payments.")
@as_of_option
@json_option
@click.pass_obj
def quote(app: App, contact_id: str, items: tuple[str, ...], start: Any, payments: int | None,
          as_of: Any, as_json: bool) -> None:  # fmt: skip
    """The summary of a prospective purchase: due now, future payments, total."""
    from abonnement.views import quote_json

    parsed = [(spec.product, spec.quantity) for spec in product_specs(items, "--item")]
    # Buying "on the start date" unless told otherwise: a purchase charges its first payment.
    purchase = day(as_of) or day(start) or app.context.today()
    summary = purchases.quote(app.context, contact_id, parsed, purchase, start=day(start),
                              payments=payments)  # fmt: skip
    payload = quote_json(summary)
    if as_json:
        echo_json(payload)
        return
    click.echo(f"due now: {payload['due_now']['total']} {payload['currency']}")
    for future in payload["future_payments"]:
        count = "until cancelled" if future["count"] is None else f"× {future['count']}"
        click.echo(f"then {future['frequency']}: {future['amount']} {count}")
    click.echo(f"total: {payload['total'] or 'n/a (renews until cancelled)'}")


@click.command()
@click.argument("link_id")
@click.option("--contact", "contact_id", required=True)
@click.option("--payment-method", "payment_method_id", help="A method the contact saved.")
@click.option("--card", help="A card token to charge (and save).")
@as_of_option
@json_option
@click.pass_obj
def checkout(app: App, link_id: str, contact_id: str, payment_method_id: str | None,
             card: str | None, as_of: Any, as_json: bool) -> None:  # fmt: skip
    """Buy a payment link: charge what is due now, create the grouped subscriptions."""
    result = purchases.checkout(app.context, link_id, contact_id, day_or_today(app, as_of),
                                card=card, payment_method_id=payment_method_id)  # fmt: skip
    if as_json:
        echo_json(result)
        return
    click.echo(f"{result['invoice']}: {result['total']} {result['currency']} {result['payment']};"
               f" subscriptions: {', '.join(result['subscriptions']) or 'none'}")  # fmt: skip


@click.command()
@click.argument("kind", type=click.Choice(["quote", "deal"]))
@click.argument("record_id")
@click.option("--payment-method", "payment_method_id", help="A method the contact saved.")
@click.option("--card", help="Charge this card token now.")
@as_of_option
@json_option
@click.pass_obj
def convert(app: App, kind: str, record_id: str, payment_method_id: str | None, card: str | None,
            as_of: Any, as_json: bool) -> None:  # fmt: skip
    """Create the subscriptions of a published quote or a deal; charge what is due now when a
    method is given, else invoice it with the account's payment terms."""
    result = purchases.convert(app.context, kind, record_id, day_or_today(app, as_of), card=card,
                               payment_method_id=payment_method_id)  # fmt: skip
    if as_json:
        echo_json(result)
        return
    click.echo(f"{kind} {record_id}: invoice {result['invoice']} ({result['total']} "
               f"{result['currency']}, {result['payment'] or 'open'}); subscriptions "
               f"{', '.join(result['subscriptions']) or '-'}")  # fmt: skip


COMMANDS = (quote, checkout, convert)
