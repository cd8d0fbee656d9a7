"""``abonnement credit-notes …``: list, show, render — the documents of refunds."""

from __future__ import annotations

import click

from abonnement.app import App
from abonnement.cli.common import echo_document, echo_json, json_option
from abonnement.cli.tables import Column, csv_option, echo_rows
from abonnement.operations import queries

CREDIT_NOTE_COLUMNS = (
    Column("number"),
    Column("issue_date", title="ISSUED"),
    Column("invoice"),
    Column("payment_id", title="PAYMENT", number=True),
    Column("amount", number=True),
    Column("currency"),
)


@click.group("credit-notes")
def credit_notes() -> None:
    """Credit notes (one per refund, numbered in their own series): list, show, render."""


@credit_notes.command("list")
@click.option("--invoice", "invoice_number", help="Only the credit notes of this invoice.")
@csv_option
@json_option
@click.pass_obj
def credit_notes_list(app: App, invoice_number: str | None, as_csv: bool, as_json: bool) -> None:
    """Credit notes in the order they were issued.

    With --json: a list of `{"number", "invoice", "payment_id", "issue_date", "amount",
    "currency"}`."""
    from abonnement.views import credit_note_json

    rows = [credit_note_json(n) for n in queries.credit_notes(app.context, invoice_number)]
    if as_json:
        echo_json(rows)
        return
    echo_rows(CREDIT_NOTE_COLUMNS, rows, as_csv=as_csv)


@credit_notes.command("show")
@click.argument("number")
@json_option
@click.pass_obj
def credit_notes_show(app: App, number: str, as_json: bool) -> None:
    """One credit note (--json: the shape of `credit-notes list`'s rows)."""
    from abonnement.views import credit_note_json

    row = credit_note_json(queries.credit_note(app.context, number))
    if as_json:
        echo_json(row)
        return
    click.echo(f"{row['number']}  issued {row['issue_date']}  for invoice {row['invoice']}")
    click.echo(f"  refunded {row['amount']} {row['currency']} (payment {row['payment_id']})")


@credit_notes.command("render")
@click.argument("number")
@click.option("--format", "fmt", type=click.Choice(["html", "pdf"]), default="html",
              show_default=True)  # fmt: skip
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write here instead of standard output.")  # fmt: skip
@json_option
@click.pass_obj
def credit_notes_render(app: App, number: str, fmt: str, output: str | None,
                        as_json: bool) -> None:  # fmt: skip
    """The customer-facing credit note, in its invoice's language and locale.

    With --json: `{"number", "format", "output"}` once written (-o), else the document in
    `"content"` (HTML) or `"content_base64"` (PDF)."""
    document = queries.render_credit_note(app.context, number, fmt)
    echo_document(number, fmt, document, output, as_json)


COMMANDS = (credit_notes,)
