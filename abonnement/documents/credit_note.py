"""A credit note as the customer sees it: the refund of (part of) an invoice, in the invoice's
language and locale, with the share of each tax it gives back, rendered like the invoice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from abonnement.documents.i18n import Formatter, address_lines
from abonnement.documents.invoice import (
    TaxRow,
    adjustment_label,
    base_total,
    bill_to,
    seller,
    tax_summary,
    taxed_once,
)
from abonnement.documents.templating import cpu_limit, environment
from abonnement.engine.catalog import Catalog
from abonnement.engine.money import Money, allocate
from abonnement.engine.records import CreditNoteRecord, InvoiceRecord
from abonnement.engine.subscriptions import Subscription
from abonnement.errors import AbonnementError

__all__ = ["TEMPLATE", "credited_taxes", "render_html"]

TEMPLATE = "credit_note.html"


def credited_taxes(note: CreditNoteRecord, invoice: InvoiceRecord,
                   rows: list[TaxRow]) -> tuple[Money, list[TaxRow]]:  # fmt: skip
    """The tax ``note`` gives back and its summary per rate. A full refund gives back the
    invoice's rows as they are; a partial one its share of the tax (rounded), split over the
    rates by their taxes and the rest over the taxable amounts, each by largest remainder —
    so the rows sum to the credit note's tax and amount exactly."""
    zero = Money.zero(invoice.currency)
    if note.amount == invoice.total or not rows:
        return (invoice.tax_total if rows else zero), rows
    share = note.amount.amount / invoice.total.amount if invoice.total else 0
    tax = Money(invoice.tax_total.amount * share, invoice.currency).rounded()
    taxes = allocate(tax, [max(r.tax.amount, 0) for r in rows])
    if any(r.base is None for r in rows):
        return tax, [TaxRow(r.label, r.rate, None, t) for r, t in zip(rows, taxes, strict=True)]
    bases = allocate(note.amount - tax, [max(r.base.amount, 0) for r in rows])  # type: ignore[union-attr]
    return tax, [TaxRow(r.label, r.rate, b, t)
                 for r, b, t in zip(rows, bases, taxes, strict=True)]  # fmt: skip


def _context(note: CreditNoteRecord, invoice: InvoiceRecord, catalog: Catalog, fmt: Formatter,
             sub: Subscription | None) -> dict[str, Any]:  # fmt: skip
    document = invoice.document
    buyer = bill_to(catalog, invoice.contact_id, sub, document.get("billing_address"))
    rows = tax_summary(invoice, lambda adj: adjustment_label("tax", adj.rule, adj.label, catalog)
                       or adj.rule)  # fmt: skip
    tax, rows = credited_taxes(note, invoice, rows)
    return {
        "note": note,
        "invoice": invoice,
        "seller": seller(catalog, document, fmt),
        "buyer": {**buyer, "address_lines": address_lines(buyer["address"], fmt)},
        "net": note.amount - tax,
        "tax": tax,
        "tax_summary": rows,
        "tax_base_total": base_total(rows) if taxed_once(invoice) else None,
        "money": lambda m: fmt.money(m.amount, m.currency),
        "day": fmt.date,
        "percent": fmt.percent,
        "lang": fmt.locale.language,
    }


def render_html(
    note: CreditNoteRecord,
    invoice: InvoiceRecord,
    catalog: Catalog,
    *,
    subscription: Subscription | None = None,
    template_dir: Path | None = None,
) -> str:
    """The credit note as HTML, in its invoice's language and locale. A ``credit_note.html``
    in ``template_dir`` (the config's ``templates/``) replaces the built-in template."""
    document = invoice.document
    language = document.get("language") or catalog.settings.invoices.language
    locale = document.get("locale") or catalog.settings.invoices.locale
    env = environment(template_dir, language, "templates")
    try:
        template = env.get_template(TEMPLATE)
        with cpu_limit():
            return template.render(_context(note, invoice, catalog, Formatter(locale),
                                            subscription))  # fmt: skip
    except jinja2.TemplateError as exc:
        where = f"{exc.filename}:{exc.lineno}: " if getattr(exc, "lineno", None) else ""
        raise AbonnementError(f"credit note template: {where}{exc.message}") from None
