"""``abonnement invoices …``: list, show, render, pay."""

from __future__ import annotations

from typing import Any

import click

from abonnement.app import App
from abonnement.cli.common import as_of_option, day_or_today, echo_document, echo_json, json_option
from abonnement.cli.tables import Column, csv_option, echo_fields, echo_rows, table_text
from abonnement.operations import payments, queries


@click.group()
def invoices() -> None:
    """Invoices: list, show, render, pay."""


LIST_COLUMNS = (
    Column("number"),
    Column("issue_date", title="ISSUED"),
    Column("due_date", title="DUE"),
    Column("status"),
    Column("total", number=True),
    Column("amount_due", number=True, title="AMOUNT DUE"),
    Column("currency"),
    Column("subscription_id", title="SUBSCRIPTION"),
)
_LINE_COLUMNS = (
    Column("line", number=True),
    Column("description"),
    Column("quantity", number=True),
    Column("unit_price", number=True, title="UNIT PRICE"),
    Column("amount", number=True),
)
_ADJUSTMENT_COLUMNS = (
    Column("line", title="ON"),
    Column("kind"),
    Column("label"),
    Column("rate", number=True),
    Column("amount", number=True),
)
_CREDIT_NOTE_COLUMNS = (
    Column("number"),
    Column("issue_date", title="ISSUED"),
    Column("amount", number=True),
)
_DISPUTE_COLUMNS = (
    Column("opened_on", title="OPENED"),
    Column("amount", number=True),
    Column("currency"),
    Column("reason"),
    Column("processor"),
    Column("id"),
)
_TOTALS = (("subtotal", "subtotal"), ("discount_total", "discounts"), ("fee_total", "fees"),
           ("tax_total", "tax"), ("total", "total"), ("amount_paid", "paid"),
           ("amount_due", "amount due"))  # fmt: skip


@invoices.command("list")
@click.option("--subscription", "subscription_id")
@click.option("--status")
@csv_option
@json_option
@click.pass_obj
def invoices_list(app: App, subscription_id: str | None, status: str | None, as_csv: bool,
                  as_json: bool) -> None:  # fmt: skip
    """Invoices by number: a table (or CSV, or JSON)."""
    from abonnement.views import invoice_summary_json

    found = queries.invoices(app.context, subscription_id=subscription_id, status=status)
    rows = [invoice_summary_json(r) for r in found]
    if as_json:
        echo_json(rows)
        return
    echo_rows(LIST_COLUMNS, rows, as_csv=as_csv)


@invoices.command("show")
@click.argument("number")
@click.option("--explain", is_flag=True, help="Name the rule or setting behind every amount.")
@json_option
@click.pass_obj
def invoices_show(app: App, number: str, explain: bool, as_json: bool) -> None:
    """One invoice: its fields, lines, discounts, fees and taxes, totals, disputes."""
    from abonnement.operations.webhooks import invoice_detail

    payload = invoice_detail(app.context, number)
    if as_json:
        echo_json(payload)
        return
    cur = payload["currency"]
    period = (f"{payload['period_start']} to {payload['period_end']}"
              if payload["period_start"] else None)  # fmt: skip
    echo_fields([
        ("invoice", payload["number"]), ("status", payload["status"]),
        ("subscription", payload["subscription_id"]), ("issued", payload["issue_date"]),
        ("due", payload["due_date"]), ("period", period), ("currency", cur),
        ("language", payload["language"]), ("tax ids", payload["tax_ids"]),
        ("comments", payload["comments"]),
    ])  # fmt: skip
    lines = [{"line": n, **line} for n, line in enumerate(payload["lines"], 1)]
    click.echo("\nlines:")
    click.echo(table_text(_LINE_COLUMNS, lines))
    adjustments = [{"line": line["line"], "kind": kind.removesuffix("s").replace("taxe", "tax"),
                    **adj} for line in lines for kind in ("discounts", "fees", "taxes")
                   for adj in line[kind]]  # fmt: skip
    adjustments += [{"line": "invoice", **adj} for adj in payload["adjustments"]]
    if adjustments:
        columns = _ADJUSTMENT_COLUMNS
        if explain:
            columns = (*columns[:3], Column("rule"), *columns[3:])
        click.echo("\ndiscounts, fees and taxes:")
        click.echo(table_text(columns, adjustments))
    click.echo("\ntotals:")
    totals = [{"what": label, "amount": payload[key]} for key, label in _TOTALS]
    click.echo(table_text((Column("what", title=""), Column("amount", number=True, title=cur)),
                          totals))  # fmt: skip
    notes = payload.get("credit_notes", ())
    if notes:
        click.echo(f"\nrefunded {payload['refunded']} {cur} by credit notes:")
        click.echo(table_text(_CREDIT_NOTE_COLUMNS, notes))
    disputes = payload.get("disputes", ())
    if disputes:
        click.echo("\ndisputes:")
        click.echo(table_text(_DISPUTE_COLUMNS, [{**d, "reason": d["reason"] or "no reason given"}
                                                 for d in disputes]))  # fmt: skip


@invoices.command("render")
@click.argument("number")
@click.option("--format", "fmt", type=click.Choice(["html", "pdf"]), default="html",
              show_default=True)  # fmt: skip
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write here instead of standard output.")  # fmt: skip
@json_option
@click.pass_obj
def invoices_render(app: App, number: str, fmt: str, output: str | None, as_json: bool) -> None:
    """The customer-facing invoice document, in its language and locale.

    With --json: `{"number", "format", "output"}` once written (-o), else the document in
    `"content"` (HTML) or `"content_base64"` (PDF)."""
    document = queries.render_invoice(app.context, number, fmt)
    echo_document(number, fmt, document, output, as_json)


@invoices.command("pay")
@click.argument("number")
@click.option("--amount", help="Default: the amount due.")
@click.option("--method", default="manual", show_default=True)
@click.option("--card", help="Pay online now with this card token (through the processor).")
@as_of_option
@json_option
@click.pass_obj
def invoices_pay(app: App, number: str, amount: str | None, method: str, card: str | None,
                 as_of: Any, as_json: bool) -> None:  # fmt: skip
    """Record a payment made outside the processor, or pay online with --card."""
    on = day_or_today(app, as_of)
    if card:
        result = payments.pay_online(app.context, number, card, on)
        payload = {**result, "amount_paid": result["amount_paid"].format_amount()}
        echo_json(payload) if as_json else click.echo(f"{number}: {payload['status']}")
        return
    result = payments.pay_invoice(app.context, number, on, amount=amount, method=method)
    payload = {**result, "amount_paid": result["amount_paid"].format_amount()}
    if as_json:
        echo_json(payload)
        return
    click.echo(f"{number}: {payload['status']} (paid {payload['amount_paid']})")


@invoices.command("pay-link")
@click.argument("number")
@as_of_option
@json_option
@click.pass_obj
def invoices_pay_link(app: App, number: str, as_of: Any, as_json: bool) -> None:
    """A signed, single-use link for the buyer to pay an open invoice online."""
    result = payments.pay_link(app.context, number, day_or_today(app, as_of))
    if as_json:
        echo_json(result)
        return
    click.echo(f"{result['url']} (valid through {result['expires_at']})")


@invoices.command("pay-through-link")
@click.argument("token")
@click.option("--card", required=True, help="The card token to pay with.")
@as_of_option
@json_option
@click.pass_obj
def invoices_pay_through_link(app: App, token: str, card: str, as_of: Any, as_json: bool) -> None:
    """Pay an invoice through its pay link (what the buyer's pay page does)."""
    result = payments.pay_through_link(app.context, token, card, day_or_today(app, as_of))
    payload = {**result, "amount_paid": result["amount_paid"].format_amount()}
    echo_json(payload) if as_json else click.echo(f"{result['number']}: paid")


COMMANDS = (invoices,)
