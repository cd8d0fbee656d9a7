"""``abonnement invoices …``: list, show, render, pay."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from abonnement.app import App
from abonnement.cli.common import as_of_option, day_or_today, echo_json, json_option
from abonnement.errors import AbonnementError, InvalidInput
from abonnement.operations import payments, queries


@click.group()
def invoices() -> None:
    """Invoices: list, show, render, pay."""


@invoices.command("list")
@click.option("--subscription", "subscription_id")
@click.option("--status")
@json_option
@click.pass_obj
def invoices_list(app: App, subscription_id: str | None, status: str | None,
                  as_json: bool) -> None:  # fmt: skip
    from abonnement.views import invoice_summary_json

    found = queries.invoices(app.context, subscription_id=subscription_id, status=status)
    rows = [invoice_summary_json(r) for r in found]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        owner = row["subscription_id"] or ""
        click.echo(f"{row['number']:<14} {row['issue_date']} {row['status']:<8} "
                   f"{row['total']:>12} {row['currency']}  {owner}")  # fmt: skip


@invoices.command("show")
@click.argument("number")
@click.option("--explain", is_flag=True, help="Name the rule or setting behind every amount.")
@json_option
@click.pass_obj
def invoices_show(app: App, number: str, explain: bool, as_json: bool) -> None:
    from abonnement.operations.webhooks import invoice_detail

    payload = invoice_detail(app.context, number)
    if as_json:
        echo_json(payload)
        return
    cur = payload["currency"]
    click.echo(f"{payload['number']}  {payload['status']}  issued {payload['issue_date']}, "
               f"due {payload['due_date']}")  # fmt: skip
    for line in payload["lines"]:
        click.echo(f"  {line['description']:<40} {line['quantity']:>6} × {line['unit_price']:>10}"
                   f" = {line['amount']:>10} {cur}")  # fmt: skip
        for kind in ("discounts", "fees", "taxes"):
            for adj in line[kind]:
                rate = f" {adj['rate']}" if adj.get("rate") else ""
                why = f" [{adj['rule']}]" if explain else ""
                click.echo(f"      {kind[:-1] if kind != 'taxes' else 'tax'} "
                           f"{adj['label']}{rate}{why}: {adj['amount']} {cur}")  # fmt: skip
    for adj in payload["adjustments"]:
        rate = f" {adj['rate']}" if adj.get("rate") else ""
        why = f" [{adj['rule']}]" if explain else ""
        click.echo(f"  {adj['kind']} {adj['label']}{rate}{why} (invoice): {adj['amount']} {cur}")
    for key in ("subtotal", "discount_total", "fee_total", "tax_total", "total", "amount_due"):
        click.echo(f"  {key:<15} {payload[key]:>12} {cur}")
    for d in payload.get("disputes", ()):
        click.echo(f"  disputed {d['opened_on']}: {d['amount']} {d['currency']} "
                   f"({d['reason'] or 'no reason given'}; {d['processor']} {d['id']})")  # fmt: skip


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
    if output:
        try:
            Path(output).write_bytes(document)
        except OSError as exc:
            raise AbonnementError(f"cannot write {output}: {exc.strerror}") from None
        if as_json:
            echo_json({"number": number, "format": fmt, "output": output})
        else:
            click.echo(f"wrote {output}", err=True)
    elif as_json:
        import base64

        body = ({"content": document.decode("utf-8")} if fmt == "html" else
                {"content_base64": base64.b64encode(document).decode("ascii")})  # fmt: skip
        echo_json({"number": number, "format": fmt, **body})
    elif fmt == "pdf" and sys.stdout.isatty():
        raise InvalidInput("a PDF is binary: write it with -o FILE (or pipe it)")
    else:
        sys.stdout.buffer.write(document)


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
        echo_json(payload) if as_json else click.echo(f"{number}: paid")
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
