"""The config's own templates rendered once with sample data, so a broken template is a
``file:line`` problem at ``abonnement validate`` rather than a failed delivery at a billing run.

Which data a template gets depends on its name, as at delivery: ``invoice.html`` the invoice
document's, ``credit_note.html`` a credit note's, ``*.txt`` a message's, ``_layout.html`` a
message's page; any other file (an include, a macro library, ``_document.html``) is parsed,
and rendered through the templates that use it.
"""

from __future__ import annotations

import traceback
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2

from abonnement.documents.credit_note import TEMPLATE as CREDIT_NOTE
from abonnement.documents.credit_note import _context as _credit_note_context
from abonnement.documents.i18n import Formatter
from abonnement.documents.invoice import TEMPLATE, _context
from abonnement.documents.templating import cpu_limit, environment
from abonnement.engine.catalog import Catalog
from abonnement.engine.money import Money
from abonnement.engine.records import (
    AdjustmentRecord,
    CreditNoteRecord,
    InvoiceRecord,
    LineRecord,
)
from abonnement.engine.status import InvoiceStatus
from abonnement.errors import Problem

__all__ = ["message_sample", "template_problems"]

SAMPLE_DAY = date(2027, 1, 1)
_SUFFIXES = (".html", ".htm", ".txt", ".xml")


def template_problems(config_dir: Path, catalog: Catalog) -> list[Problem]:
    """One problem (file relative to ``config_dir``, line, message) per template of
    ``config_dir/templates`` that does not compile or does not render with sample data."""
    config_dir = config_dir.resolve()
    folder = config_dir / "templates"
    if not folder.is_dir():
        return []
    invoices = catalog.settings.invoices
    problems = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in _SUFFIXES):
        name = path.relative_to(folder).as_posix()
        if name in (TEMPLATE, CREDIT_NOTE, "_document.html"):
            env = environment(folder, invoices.language, "templates")
        else:
            env = environment(folder, invoices.language, "templates/messages")
        try:
            with cpu_limit():
                _render_sample(env.get_template(name), name, catalog)
        except Exception as exc:  # whatever a template's code raises is the template's problem
            problems.append(_problem(config_dir, path, exc))
    return problems


def _render_sample(template: Any, name: str, catalog: Catalog) -> None:
    """Render one template of the config's ``templates/`` with sample data."""
    invoices = catalog.settings.invoices
    if name == TEMPLATE:
        pay_url = catalog.settings.buyer_url("/i/sample")
        template.render(_context(_invoice(catalog), catalog, Formatter(invoices.locale), None,
                                 pay_url))  # fmt: skip
    elif name == CREDIT_NOTE:
        invoice = _invoice(catalog)
        note = CreditNoteRecord("CN-0001", 1, invoice.number, 1, invoice.total, SAMPLE_DAY)
        template.render(_credit_note_context(note, invoice, catalog, Formatter(invoices.locale),
                                             None))  # fmt: skip
    elif name.endswith(".txt"):
        template.render(message_sample(catalog))
    elif name == "_layout.html":
        template.render({**message_sample(catalog), "subject": "Sample",
                         "paragraphs": ["One.", "Two."]})  # fmt: skip


def message_sample(catalog: Catalog) -> dict[str, Any]:
    """What a message template is given at delivery (``operations.delivery.render_message``),
    with sample values."""
    settings = catalog.settings
    fmt = Formatter(settings.invoices.locale)
    currency = settings.default_currency
    # what every subscription carries: the declared properties' defaults
    properties = {p.name: _sample_property(p) for p in settings.custom_properties
                  if p.default is not None}  # fmt: skip
    subscription = {
        "id": "sample", "status": "active", "currency": currency, "frequency": "monthly",
        "start_date": SAMPLE_DAY, "end_date": None, "next_payment_date": SAMPLE_DAY,
        "payments_made": 1, "number_of_payments": None, "owner": None,
        "properties": properties, "mrr": Decimal("25.00"),
    }  # fmt: skip
    return {
        "account": settings.account,
        "name": "Sample Buyer",
        "subscription": subscription,
        "event": {"type": "payment.failed", "invoice": "INV-00001", "attempt": 1},
        "on": SAMPLE_DAY,
        "number": "INV-00001",
        "amount": fmt.money(Decimal("25.00"), currency),
        "amount_value": Decimal("25.00"),
        "collection_mode": "automatic",
        "due_date": SAMPLE_DAY,
        "payment_date": SAMPLE_DAY,
        "attempt": 1,
        "update_url": catalog.settings.buyer_url("/u/sample"),
        "pay_url": catalog.settings.buyer_url("/i/sample"),
        "attached": True,
        "day": fmt.date,
        "money": fmt.money,
        "lang": fmt.locale.language,
    }


def _sample_property(prop: Any) -> Any:
    """A declared custom property's default, as a subscription carries it (a ``date`` one as
    a date, as the rules and templates see it)."""
    if prop.type == "date" and isinstance(prop.default, str):
        return date.fromisoformat(prop.default)
    return prop.default


def _invoice(catalog: Catalog) -> InvoiceRecord:
    """A stored invoice as ``render_html`` reads it: one line with a discount and a tax."""
    currency = catalog.settings.default_currency
    contact = next(iter(catalog.contacts), "sample")

    def money(amount: str) -> Money:
        return Money(Decimal(amount), currency)

    adjustments = (
        AdjustmentRecord(0, 1, "discount", "sample_discount", money("2.50")),
        AdjustmentRecord(1, 1, "tax", "sample_tax", money("2.25"), "Tax", Decimal("10")),
    )
    lines = (LineRecord(1, "Sample product", "SAMPLE", 1, money("25.00"), money("25.00"),
                        "sample"),)  # fmt: skip
    return InvoiceRecord(
        number="INV-00001", seq=1, subscription_id="sample", contact_id=contact,
        status=InvoiceStatus.OPEN, currency=currency, issue_date=SAMPLE_DAY,
        due_date=SAMPLE_DAY + timedelta(days=14), period_start=SAMPLE_DAY,
        period_end=SAMPLE_DAY + timedelta(days=31), subtotal=money("25.00"),
        discount_total=money("2.50"), fee_total=money("0"), tax_total=money("2.25"),
        total=money("24.75"), amount_paid=money("0"), lines=lines, adjustments=adjustments,
    )  # fmt: skip


def _problem(config_dir: Path, path: Path, exc: Exception) -> Problem:
    """Where in which template ``exc`` happened: the syntax error's own line, else the
    deepest frame of a template file of the config (an include's line, if it failed)."""
    file, line = path, getattr(exc, "lineno", None)
    if isinstance(exc, jinja2.TemplateSyntaxError) and exc.filename:
        file = Path(exc.filename).resolve()
    else:
        line = None
        for frame in traceback.extract_tb(exc.__traceback__):
            where = Path(frame.filename).resolve()
            if where.is_relative_to(config_dir / "templates") and frame.lineno:
                file, line = where, frame.lineno
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    kind = "template syntax error" if isinstance(exc, jinja2.TemplateSyntaxError) else (
        "template error")  # fmt: skip
    try:
        shown = file.relative_to(config_dir).as_posix()
    except ValueError:
        shown = str(file)
    return Problem(shown, line or 1, 1, f"{kind}: {message}")
