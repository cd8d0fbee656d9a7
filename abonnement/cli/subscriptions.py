"""``abonnement subscriptions …``: list, show, create, edit, pause, resume, cancel, delete."""

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
    pairs,
    product_specs,
)
from abonnement.cli.common import properties as parse_properties
from abonnement.operations import lifecycle, queries


@click.group()
def subscriptions() -> None:
    """Subscriptions: list, show, create, edit, pause, resume, cancel, delete."""


@subscriptions.command("list")
@click.option("--status", help="Only subscriptions with this status.")
@click.option("--segment", help="Only the members of this segment (a rule block).")
@as_of_option
@json_option
@click.pass_obj
def subscriptions_list(app: App, status: str | None, segment: str | None, as_of: Any,
                       as_json: bool) -> None:  # fmt: skip
    from abonnement.views import subscription_json

    on = day_or_today(app, as_of) if segment else None
    subs = queries.subscriptions(app.context, status=status, segment_name=segment, on=on)
    rows = [subscription_json(s, app.catalog.settings, app.context.recurring) for s in subs]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        click.echo(f"{row['id']:<24} {row['status']:<10} {row['frequency']:<10} "
                   f"next {row['next_payment_date'] or '-':<10}  mrr {row['mrr']} "
                   f"{row['currency']}")  # fmt: skip


@subscriptions.command("show")
@click.argument("subscription_id")
@json_option
@click.pass_obj
def subscriptions_show(app: App, subscription_id: str, as_json: bool) -> None:
    from abonnement.views import subscription_detail_json

    detail = queries.subscription(app.context, subscription_id)
    payload = subscription_detail_json(detail, app.catalog.settings, app.context.recurring)
    if as_json:
        echo_json(payload)
        return
    for key, value in payload.items():
        click.echo(f"{key}: {value}")


@subscriptions.command("create")
@click.option("--id", "sub_id", required=True, help="The new subscription's id.")
@click.option("--contact", "contact_id", required=True)
@click.option("--company", "company_id")
@click.option("--billing-contact", "billing_contact_id")
@click.option("--billing-address", type=click.Choice(["same_as_company"]),
              help="Bill to the company's address (default: the contact's).")  # fmt: skip
@click.option("--item", "items", multiple=True, required=True, metavar="PRODUCT[:QTY]")
@click.option("--currency", help="Default: the account's default currency.")
@click.option("--start", type=DATE, help="First payment date (default: --as-of).")
@click.option("--payments", type=click.IntRange(1, 1200), help="A fixed number of payments.")
@click.option("--collection", type=click.Choice(["manual", "automatic"]), default="manual",
              show_default=True)  # fmt: skip
@click.option("--payment-method", "payment_method_id", help="A method the contact saved.")
@click.option("--payment-terms", help="due_on_receipt or net_DAYS (manual collection).")
@click.option("--property", "properties", multiple=True, metavar="NAME=VALUE")
@click.option("--no-invoices", is_flag=True, help="A record only: invoice creation off (F18).")
@as_of_option
@json_option
@click.pass_obj
def subscriptions_create(app: App, sub_id: str, contact_id: str, company_id: str | None,
                         billing_contact_id: str | None, billing_address: str | None,
                         items: tuple[str, ...],
                         currency: str | None, start: Any, payments: int | None,
                         collection: str, payment_method_id: str | None,
                         payment_terms: str | None, properties: tuple[str, ...],
                         no_invoices: bool, as_of: Any, as_json: bool) -> None:  # fmt: skip
    """Create a subscription from scratch."""
    from abonnement.engine.catalog import AUTO_RENEW, Collection, DeclaredSubscription, Terms
    from abonnement.engine.schedule import AtPurchase, OnDate
    from abonnement.views import subscription_json

    decl = DeclaredSubscription(
        id=sub_id, contact=contact_id, currency=currency or app.catalog.settings.default_currency,
        items=tuple(product_specs(items, "--item")), company=company_id,
        billing_contact=billing_contact_id, billing_address=billing_address,
        start=OnDate(day(start)) if start else AtPurchase(),
        terms=Terms(payments=payments) if payments else AUTO_RENEW,
        invoice_creation=not no_invoices,
        collection=Collection(mode=collection, payment_method=payment_method_id,
                              payment_terms=payment_terms),
        properties=parse_properties(properties),
    )  # fmt: skip
    sub = lifecycle.create(app.context, decl, day_or_today(app, as_of))
    payload = subscription_json(sub, app.catalog.settings, app.context.recurring)
    if as_json:
        echo_json(payload)
        return
    click.echo(f"{sub.id}: {payload['status']}; first payment {payload['next_payment_date']}")


@subscriptions.command("edit")
@click.argument("subscription_id")
@click.option("--add", multiple=True, metavar="PRODUCT[:QTY]", help="Add a line.")
@click.option("--quantity", multiple=True, metavar="LINE=QTY")
@click.option("--price", multiple=True, metavar="LINE=AMOUNT", help='e.g. 2="20.00 USD"')
@click.option("--discount", multiple=True, metavar="LINE=PERCENT", help="e.g. 1=10%")
@click.option("--clone", multiple=True, type=int, metavar="LINE")
@click.option("--delete", multiple=True, type=int, metavar="LINE")
@click.option("--move", multiple=True, metavar="LINE=NEW_LINE")
@click.option("--payment-method", "payment_method_id", help="Charge this saved method from now.")
@click.option("--contact", "contact_id")
@click.option("--property", "properties", multiple=True, metavar="NAME=VALUE")
@click.option("--next-payment-date", type=DATE, help="Move the next payment (and the later).")
@click.option(
    "--prorate",
    is_flag=True,
    help="Settle the rest of the current period on the next invoice (if settings allow).",
)
@as_of_option
@json_option
@click.pass_obj
def subscriptions_edit(app: App, subscription_id: str, add: tuple[str, ...],
                       quantity: tuple[str, ...], price: tuple[str, ...],
                       discount: tuple[str, ...], clone: tuple[int, ...], delete: tuple[int, ...],
                       move: tuple[str, ...], payment_method_id: str | None,
                       contact_id: str | None, properties: tuple[str, ...],
                       next_payment_date: Any, prorate: bool, as_of: Any,
                       as_json: bool) -> None:  # fmt: skip
    """Change lines, payment method, contact or properties, from the next cycle (F20).

    Line changes apply in this order: add, clone, quantity, price, discount, delete, move;
    lines are counted from 1 as `subscriptions show` lists them."""
    from abonnement.engine.edits import ItemOp
    from abonnement.views import subscription_json

    ops = [ItemOp("clone", p) for p in clone]
    ops += [ItemOp("quantity", p, v) for p, v in pairs(quantity, "--quantity", int)]
    ops += [ItemOp("price", p, v) for p, v in pairs(price, "--price")]
    ops += [ItemOp("discount", p, v) for p, v in pairs(discount, "--discount")]
    ops += [ItemOp("delete", p) for p in delete]
    ops += [ItemOp("move", p, v) for p, v in pairs(move, "--move", int)]
    sub = lifecycle.edit(
        app.context, subscription_id, day_or_today(app, as_of),
        add=product_specs(add, "--add"), ops=ops, payment_method_id=payment_method_id,
        contact_id=contact_id, prorate=prorate, next_payment_date=day(next_payment_date),
        properties=parse_properties(properties),
    )  # fmt: skip
    payload = subscription_json(sub, app.catalog.settings, app.context.recurring)
    if as_json:
        echo_json(payload)
        return
    click.echo(f"{sub.id}: {len(sub.items)} lines, mrr {payload['mrr']} {sub.currency}")


@subscriptions.command("delete")
@click.argument("subscription_id")
@json_option
@click.pass_obj
def subscriptions_delete(app: App, subscription_id: str, as_json: bool) -> None:
    """Delete an expired or canceled subscription; its invoices and history stay."""
    lifecycle.delete(app.context, subscription_id)
    if as_json:
        echo_json({"deleted": subscription_id})
    else:
        click.echo(f"deleted {subscription_id}")


def _lifecycle_result(app: App, sub: Any, as_json: bool) -> None:
    from abonnement.views import subscription_json

    payload = subscription_json(sub, app.catalog.settings, app.context.recurring)
    if as_json:
        echo_json(payload)
        return
    click.echo(f"{sub.id}: {sub.status}; next payment {payload['next_payment_date'] or '-'}")


@subscriptions.command("pause")
@click.argument("subscription_id")
@as_of_option
@json_option
@click.pass_obj
def subscriptions_pause(app: App, subscription_id: str, as_of: Any, as_json: bool) -> None:
    """Stop billing; nothing is billed while paused."""
    sub = lifecycle.pause(app.context, subscription_id, day_or_today(app, as_of))
    _lifecycle_result(app, sub, as_json)


@subscriptions.command("resume")
@click.argument("subscription_id")
@as_of_option
@json_option
@click.pass_obj
def subscriptions_resume(app: App, subscription_id: str, as_of: Any, as_json: bool) -> None:
    """Bill again from the first payment date on or after today."""
    sub = lifecycle.resume(app.context, subscription_id, day_or_today(app, as_of))
    _lifecycle_result(app, sub, as_json)


@subscriptions.command("cancel")
@click.argument("subscription_id")
@click.option("--at-period-end", is_flag=True, help="Bill the current period, then stop.")
@as_of_option
@json_option
@click.pass_obj
def subscriptions_cancel(app: App, subscription_id: str, at_period_end: bool, as_of: Any,
                         as_json: bool) -> None:  # fmt: skip
    """Cancel now (or at the end of the period)."""
    sub = lifecycle.cancel(app.context, subscription_id, day_or_today(app, as_of),
                           at_period_end=at_period_end)  # fmt: skip
    _lifecycle_result(app, sub, as_json)


COMMANDS = (subscriptions,)
