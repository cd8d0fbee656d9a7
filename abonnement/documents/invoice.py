"""An invoice as the customer sees it: the stored invoice, the parties from the catalog, and
the subscription's language and locale, rendered to HTML (Jinja2) and PDF (WeasyPrint)."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2

from abonnement.documents.i18n import Formatter, address_lines
from abonnement.documents.templating import environment
from abonnement.engine.catalog import Address, Catalog
from abonnement.engine.money import Money
from abonnement.engine.records import InvoiceRecord, LineRecord
from abonnement.engine.status import InvoiceStatus
from abonnement.engine.subscriptions import Subscription
from abonnement.errors import AbonnementError

__all__ = ["bill_to", "render_html", "render_pdf"]

TEMPLATE = "invoice.html"


def bill_to(
    catalog: Catalog,
    contact_id: str,
    subscription: Subscription | None = None,
    billing_address: Any = None,
) -> dict[str, Any]:
    """Who the invoice is addressed to: the subscription's billing contact (else its contact),
    its company, and the billing address — as the invoice recorded it when issued
    (``same_as_company``: the company's; or an address), else the contact's, else the
    company's."""
    sub = subscription
    contact = catalog.contacts.get(
        (sub.billing_contact_id or sub.contact_id) if sub else contact_id
    )
    company_id = (sub.company_id if sub else None) or (contact.company if contact else None)
    company = catalog.companies.get(company_id) if company_id else None
    own = billing_address
    if own is None and sub is not None and sub.id in catalog.subscriptions:
        own = catalog.subscriptions[sub.id].billing_address  # issued before it was recorded
    if isinstance(own, dict):
        own = Address(**own)
    address: Address | None
    if own == "same_as_company":
        address = company.address if company else None
    elif isinstance(own, Address):
        address = own
    else:
        address = (contact.address if contact else None) or (company.address if company else None)
    return {
        "name": contact.name if contact else contact_id,
        "email": contact.email if contact else None,
        "company": company.name if company else None,
        "tax_id": company.tax_id if company else None,
        "address": address,
    }


def adjustment_label(kind: str, rule: str, label: str | None, catalog: Catalog) -> str | None:
    """What a document calls an adjustment of ``kind`` made by ``rule`` with ``label``: the
    rule's own ``label`` as written; a tax rate's label; a tax rule without one by its name
    (``ny_sales`` → "Ny sales"). None for a discount or fee with no label of its own (and the
    line's unit discount): the template says "Discount" or "Fee" in the document's
    language."""
    if rule == "unit_discount":
        return None
    rate = catalog.tax_rates.get(rule) if kind == "tax" else None
    if rate is not None and (not label or label == rule):
        return rate.label
    if label and label != rule:  # a rule without a label carries its name
        return label
    return rule.replace("_", " ").capitalize() if kind == "tax" else None


def _context(
    invoice: InvoiceRecord,
    catalog: Catalog,
    fmt: Formatter,
    sub: Subscription | None,
    pay_url: str | None,
) -> dict[str, Any]:
    currency = invoice.currency
    settings = catalog.settings

    def money(amount: Money | Decimal) -> str:
        """An amount of the invoice in its locale (``Money``, or a plain Decimal in its
        currency, as a template written before amounts were ``Money`` may pass)."""
        if isinstance(amount, Money):
            return fmt.money(amount.amount, amount.currency)
        return fmt.money(amount, currency)

    def tax_label(rule: str, label: str | None = None) -> str:
        return adjustment_label("tax", rule, label, catalog) or ""

    # each line as the template sees it: its fields and its own adjustments
    lines = [{**_fields(line), "adjustments": invoice.adjustments_of(line.position)}
             for line in invoice.lines]  # fmt: skip
    due = invoice.amount_due
    document = invoice.document
    buyer = bill_to(catalog, invoice.contact_id, sub, document.get("billing_address"))
    terms = (invoice.due_date - invoice.issue_date).days
    return {
        "invoice": invoice,
        "lines": lines,
        "invoice_adjustments": invoice.adjustments_of(None),
        "seller": {"name": settings.account, "tax_ids": document.get("tax_ids", [])},
        "buyer": {**buyer, "address_lines": address_lines(buyer["address"], fmt)},
        "comments": document.get("comments"),
        "period_last_day": invoice.period_end - timedelta(days=1) if invoice.period_end else None,
        "terms_days": terms,
        "amount_due": due,
        # prices that include their tax: the totals then show the amount excluding tax, so
        # that it and the tax add up to the total
        "tax_included": any(a.kind == "tax" and a.inclusive for a in invoice.adjustments),
        "pay_url": pay_url if invoice.status == InvoiceStatus.OPEN and due else None,
        "money": money,
        "day": fmt.date,
        "number": fmt.number,
        "percent": fmt.percent,
        "tax_label": tax_label,
        "label_of": lambda adj: adjustment_label(adj.kind, adj.rule, adj.label, catalog),
        "lang": fmt.locale.language,
    }


def render_html(
    invoice: InvoiceRecord,
    catalog: Catalog,
    *,
    subscription: Subscription | None = None,
    template_dir: Path | None = None,
    pay_url: str | None = None,
) -> str:
    """The invoice document as HTML, in the invoice's language and locale. A ``invoice.html``
    in ``template_dir`` (the config's ``templates/``) replaces the built-in template.
    ``pay_url``: where the buyer pays online, printed while the invoice is open and due."""
    document = invoice.document
    language = document.get("language") or catalog.settings.invoices.language
    locale = document.get("locale") or catalog.settings.invoices.locale
    env = environment(template_dir, language, "templates")
    try:
        template = env.get_template(TEMPLATE)
        fmt = Formatter(locale)
        return template.render(_context(invoice, catalog, fmt, subscription, pay_url))
    except jinja2.TemplateError as exc:
        where = f"{exc.filename}:{exc.lineno}: " if getattr(exc, "lineno", None) else ""
        raise AbonnementError(f"invoice template: {where}{exc.message}") from None


def _fields(line: LineRecord) -> dict[str, Any]:
    return {f.name: getattr(line, f.name) for f in fields(line)}


def render_pdf(html: str) -> bytes:
    """``html`` laid out as a PDF by WeasyPrint (the ``pdf`` extra)."""
    try:
        import weasyprint
    except ImportError:
        hint = "pip install 'abonnement[pdf]'"
        raise AbonnementError(f"PDF output needs WeasyPrint: {hint}") from None
    except OSError as exc:  # WeasyPrint is there, the Pango libraries it loads are not
        raise AbonnementError(
            f"WeasyPrint cannot load its system libraries ({exc}); install Pango, "
            "e.g. apt-get install libpango-1.0-0 libpangoft2-1.0-0"
        ) from None
    return weasyprint.HTML(string=html).write_pdf()
