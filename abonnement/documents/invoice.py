"""An invoice as the customer sees it: the stored invoice, the parties from the catalog, and
the subscription's language and locale, rendered to HTML (Jinja2) and PDF (WeasyPrint)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2

from abonnement.documents.i18n import Formatter, address_lines, translations
from abonnement.documents.templating import cpu_limit, environment
from abonnement.engine.catalog import Address, Catalog
from abonnement.engine.money import Money
from abonnement.engine.records import CreditNoteRecord, InvoiceRecord, LineRecord
from abonnement.engine.status import InvoiceStatus
from abonnement.engine.subscriptions import Subscription
from abonnement.errors import AbonnementError

__all__ = [
    "TaxRow",
    "adjustment_text",
    "bill_to",
    "frequency_text",
    "pdf_installed",
    "render_html",
    "render_pdf",
    "seller",
    "tax_summary",
]

TEMPLATE = "invoice.html"


@dataclass(frozen=True, slots=True)
class TaxRow:
    """One row of a document's tax summary: the taxable amount taxed at ``rate`` under
    ``label`` and the tax on it. ``rate`` None: the amount no tax applies to. ``base`` None:
    an invoice issued before taxable amounts were recorded."""

    label: str | None
    rate: Decimal | None
    base: Money | None
    tax: Money


def tax_summary(invoice: InvoiceRecord, name: Any = None) -> list[TaxRow]:
    """The invoice's taxes per label and rate, as EU invoices state them (the taxable amount,
    the rate, the tax), then the amount no tax applies to. Each row adds up the rounded
    adjustments it stands for, so the taxes sum to ``tax_total`` exactly and, when no line
    is taxed twice, the taxable amounts to the total excluding tax. Empty without taxes.
    ``name``: what a tax adjustment is called (default: its label, else its rule)."""
    taxes = [a for a in invoice.adjustments if a.kind == "tax"]
    if not taxes:
        return []
    zero = Money.zero(invoice.currency)
    rows: dict[tuple[str, Decimal | None], list[Any]] = {}
    for adj in taxes:
        label = name(adj) if name is not None else (adj.label or adj.rule)
        row = rows.setdefault((label, adj.rate), [zero, zero])
        row[0] = None if row[0] is None or adj.base is None else row[0] + adj.base
        row[1] = row[1] + adj.amount
    summary = [TaxRow(label, rate, base, tax) for (label, rate), (base, tax) in rows.items()]
    # what no tax applies to: the total excluding tax less each taxed line's taxable amount
    # (every line is taxed when an invoice-scope tax is there)
    if any(a.line_position is None for a in taxes) or any(a.base is None for a in taxes):
        return summary
    taxed: dict[int, Money] = {}
    for adj in taxes:
        taxed.setdefault(adj.line_position, adj.base)  # type: ignore[arg-type]
    untaxed = invoice.total - invoice.tax_total - sum(taxed.values(), zero)
    if untaxed:
        summary.append(TaxRow(None, None, untaxed, zero))
    return summary


def taxed_once(invoice: InvoiceRecord) -> bool:
    """Whether no line carries two taxes (its taxable amount then counts once in the sum of
    the summary's taxable amounts)."""
    lines = [a.line_position for a in invoice.adjustments if a.kind == "tax"]
    scoped = [p for p in lines if p is not None]
    return len(scoped) == len(set(scoped)) and (not scoped or len(scoped) == len(lines))


def base_total(summary: Sequence[TaxRow]) -> Money | None:
    """The sum of the summary's taxable amounts; None when one of them is unknown."""
    if not summary or any(row.base is None for row in summary):
        return None
    return sum((row.base for row in summary[1:]), summary[0].base)  # type: ignore[misc]


def seller(catalog: Catalog, document: Any, fmt: Formatter) -> dict[str, Any]:
    """Who issues the document: the account's name, address, tax ids and embedded logo."""
    settings = catalog.settings
    return {
        "name": settings.account,
        "tax_ids": document.get("tax_ids", []),
        "address_lines": address_lines(settings.account_address, fmt),
        "logo": settings.account_logo_data,  # a file's content; a URL is not fetched here
    }


def frequency_text(frequency: Any, gettext: Any) -> str:
    """A billing frequency in the document's language: ``monthly``, ``every 3 months``."""
    unit = getattr(getattr(frequency, "unit", None), "value", None)
    count = getattr(frequency, "count", 1)
    if count == 1:
        one = {"W": gettext("weekly"), "M": gettext("monthly"), "Y": gettext("yearly")}
        return one.get(unit, str(frequency))
    many = {"W": gettext("every %(count)s weeks"), "M": gettext("every %(count)s months"),
            "Y": gettext("every %(count)s years")}  # fmt: skip
    return many[unit] % {"count": count} if unit in many else str(frequency)


def adjustment_text(adj: Any, label: str | None, fmt: Formatter, gettext: Any) -> str:
    """How a document names an adjustment: its label (else "Discount", "Fee"), and for a
    discount or fee the rule behind it and its percent: "Loyalty (rule loyalty, 10 %)"."""
    name = label or {"discount": gettext("Discount"), "fee": gettext("Fee")}.get(adj.kind, "")
    rate = fmt.percent(adj.rate) if adj.rate is not None else None
    if adj.kind == "tax":
        text = f"{name} {rate}" if rate else name
        return f"{text} ({gettext('included')})" if adj.inclusive else text
    parts = [gettext("rule %(name)s") % {"name": adj.rule}] if adj.rule != "unit_discount" else []
    if rate:
        parts.append(rate)
    return f"{name} ({', '.join(parts)})" if parts else name


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
    billed: Mapping[str, Subscription] | None = None,
    credit_notes: Sequence[CreditNoteRecord] = (),
) -> dict[str, Any]:
    currency = invoice.currency
    gettext = translations(invoice.document.get("language")
                           or catalog.settings.invoices.language).gettext  # fmt: skip
    billed = billed if billed is not None else ({sub.id: sub} if sub else {})

    def money(amount: Money | Decimal) -> str:
        """An amount of the invoice in its locale (``Money``, or a plain Decimal in its
        currency, as a template written before amounts were ``Money`` may pass)."""
        if isinstance(amount, Money):
            return fmt.money(amount.amount, amount.currency)
        return fmt.money(amount, currency)

    def tax_label(rule: str, label: str | None = None) -> str:
        return adjustment_label("tax", rule, label, catalog) or ""

    period_last_day = invoice.period_end - timedelta(days=1) if invoice.period_end else None

    def period_of(line: LineRecord) -> str | None:
        """What a line of a subscription's own items bills: "monthly, 1 January 2027 –
        31 January 2027" (None for
        a prorated or carried line, whose description says its own span)."""
        owner = billed.get(line.subscription_id or "")
        if owner is None or line.description not in {i.name for i in owner.items}:
            return None
        text = frequency_text(owner.frequency, gettext)
        if invoice.period_start and period_last_day:
            text += f", {fmt.date(invoice.period_start)} – {fmt.date(period_last_day)}"
        return text

    # each line as the template sees it: its fields, its period and its own adjustments
    lines = [{**_fields(line), "period": period_of(line),
              "adjustments": invoice.adjustments_of(line.position)}
             for line in invoice.lines]  # fmt: skip
    due = invoice.amount_due
    document = invoice.document
    buyer = bill_to(catalog, invoice.contact_id, sub, document.get("billing_address"))
    terms = (invoice.due_date - invoice.issue_date).days
    refunded = sum((n.amount for n in credit_notes), Money.zero(currency))
    summary = tax_summary(invoice, lambda adj: tax_label(adj.rule, adj.label))
    return {
        "invoice": invoice,
        "lines": lines,
        "invoice_adjustments": invoice.adjustments_of(None),
        "seller": seller(catalog, document, fmt),
        "buyer": {**buyer, "address_lines": address_lines(buyer["address"], fmt)},
        "comments": document.get("comments"),
        "period_last_day": period_last_day,
        "terms_days": terms,
        "amount_due": due,
        "tax_summary": summary,
        "tax_base_total": base_total(summary) if taxed_once(invoice) else None,
        "credit_notes": list(credit_notes),
        "refunded": refunded,
        "describe": lambda adj: adjustment_text(
            adj, adjustment_label(adj.kind, adj.rule, adj.label, catalog), fmt, gettext
        ),
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
    billed: Mapping[str, Subscription] | None = None,
    credit_notes: Sequence[CreditNoteRecord] = (),
) -> str:
    """The invoice document as HTML, in the invoice's language and locale. A ``invoice.html``
    in ``template_dir`` (the config's ``templates/``) replaces the built-in template.
    ``pay_url``: where the buyer pays online, printed while the invoice is open and due;
    ``billed``: the subscriptions its lines bill, by id (their frequency is printed with the
    lines; default: ``subscription``); ``credit_notes``: its refunds, printed with the
    totals."""
    document = invoice.document
    language = document.get("language") or catalog.settings.invoices.language
    locale = document.get("locale") or catalog.settings.invoices.locale
    env = environment(template_dir, language, "templates")
    try:
        template = env.get_template(TEMPLATE)
        fmt = Formatter(locale)
        with cpu_limit():
            return template.render(_context(invoice, catalog, fmt, subscription, pay_url,
                                            billed, credit_notes))  # fmt: skip
    except jinja2.TemplateError as exc:
        where = f"{exc.filename}:{exc.lineno}: " if getattr(exc, "lineno", None) else ""
        raise AbonnementError(f"invoice template: {where}{exc.message}") from None


def _fields(line: LineRecord) -> dict[str, Any]:
    return {f.name: getattr(line, f.name) for f in fields(line)}


def pdf_installed() -> bool:
    """Whether WeasyPrint (the ``pdf`` extra) is installed, without importing it (that takes
    a while, and loads the system libraries ``render_pdf`` reports missing)."""
    import importlib.util

    return importlib.util.find_spec("weasyprint") is not None


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
