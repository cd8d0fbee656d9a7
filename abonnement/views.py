"""JSON shapes of the command line (``cli.md``): money as decimal strings, dates as ISO text."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from abonnement.engine.catalog import Settings
from abonnement.engine.money import Money
from abonnement.engine.purchase import Summary
from abonnement.engine.records import (
    AdjustmentRecord,
    CreditNoteRecord,
    InvoiceRecord,
    PaymentRecord,
)
from abonnement.engine.subscriptions import Subscription, mrr

__all__ = [
    "credit_note_json",
    "invoice_json",
    "invoice_summary_json",
    "payment_json",
    "quote_json",
    "report_json",
    "segment_json",
    "subscription_detail_json",
    "subscription_json",
]


def _amount(value: Decimal | Money | None, currency: str) -> str | None:
    if value is None:
        return None
    money = value if isinstance(value, Money) else Money(value, currency)
    return money.format_amount()


def _date(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _percent(value: Any) -> str | None:
    if value is None:
        return None
    number = getattr(value, "value", value)
    return f"{Decimal(number).normalize():f}%"


def _items(sub_items: Any, currency: str) -> list[dict[str, Any]]:
    return [
        {
            "sku": item.sku,
            "name": item.name,
            "quantity": item.quantity,
            "unit_price": _amount(item.effective_unit_price, currency),
            "unit_discount": _percent(item.unit_discount),
        }
        for item in sub_items
    ]


def subscription_json(
    sub: Subscription, settings: Settings, recurring: Any = None
) -> dict[str, Any]:
    """A subscription in the documented shape. Its ``mrr`` counts the recurring discount rules
    of ``recurring`` (a ``RecurringPricing``) when settings say discounts reduce MRR; its
    ``payment_method`` is the saved method a processor charges (``{"id", "type"}``, never the
    token; None when nothing is charged automatically), ``payment_terms`` those of its
    invoices while it is not."""
    factor = settings.weekly_mrr_factor
    charged = sub.collection_mode == "automatic" and sub.payment_token
    return {
        "id": sub.id,
        "status": sub.status,
        "currency": sub.currency,
        "contact_id": sub.contact_id,
        "company_id": sub.company_id,
        "frequency": sub.frequency.name,
        "start_date": _date(sub.anchor),
        "end_date": _date(sub.end_date),
        "next_payment_date": _date(sub.next_payment_date),
        "payments_made": sub.payments_made,
        "number_of_payments": sub.payments,
        "collection_mode": sub.collection_mode,
        "payment_method": {"id": sub.payment_method_id, "type": sub.payment_type}
        if charged
        else None,
        "payment_terms": sub.payment_terms,
        "owner": sub.owner,
        "items": _items(sub.items, sub.currency),
        "pending_lines": _items(sub.pending, sub.currency),  # on the next invoice only
        "mrr": _amount(
            mrr(sub, factor, with_discounts=settings.discounts_reduce_mrr, recurring=recurring),
            sub.currency,
        ),
        "properties": dict(sub.properties),
        "deals": list(sub.deals),
        "quote_id": sub.quote_id,
        "billing_contact_id": sub.billing_contact_id,
    }


def invoice_json(invoice: InvoiceRecord) -> dict[str, Any]:
    """A stored invoice (``Storage.invoice``) in the documented shape."""
    currency = invoice.currency
    lines = []
    for line in invoice.lines:
        own = invoice.adjustments_of(line.position)

        def of(kind: str, own: tuple[AdjustmentRecord, ...] = own) -> list[dict[str, Any]]:
            out = []
            for a in own:
                if a.kind == kind:
                    out.append(_adjustment(a, currency))
            return out

        lines.append({
            "description": line.description, "sku": line.sku,
            "quantity": line.quantity, "unit_price": _amount(line.unit_price, currency),
            "amount": _amount(line.amount, currency), "subscription_id": line.subscription_id,
            "discounts": of("discount"), "fees": of("fee"), "taxes": of("tax"),
        })  # fmt: skip
    document = invoice.document
    return {
        "number": invoice.number,
        "subscription_id": invoice.subscription_id,
        "status": invoice.status,
        "currency": currency,
        "issue_date": _date(invoice.issue_date),
        "due_date": _date(invoice.due_date),
        "period_start": _date(invoice.period_start),
        "period_end": _date(invoice.period_end),
        "subtotal": _amount(invoice.subtotal, currency),
        "discount_total": _amount(invoice.discount_total, currency),
        "fee_total": _amount(invoice.fee_total, currency),
        "tax_total": _amount(invoice.tax_total, currency),
        "total": _amount(invoice.total, currency),
        # what the total is before tax (prices that include tax have it taken out)
        "total_excluding_tax": _amount(invoice.total - invoice.tax_total, currency),
        "amount_paid": _amount(invoice.amount_paid, currency),
        "amount_due": _amount(invoice.amount_due, currency),
        "lines": lines,
        "adjustments": [
            {"kind": a.kind, **_adjustment(a, currency)} for a in invoice.adjustments_of(None)
        ],
        "language": document.get("language"),
        "locale": document.get("locale"),
        "comments": document.get("comments"),
        "tax_ids": document.get("tax_ids", []),
    }


def _adjustment(a: AdjustmentRecord, currency: str) -> dict[str, Any]:
    """A stored adjustment: the rule behind it, what the invoice calls it (the rule's
    ``label``, or its name when it has none), a discount's or tax's rate (None for a fixed
    amount), its amount."""
    entry: dict[str, Any] = {"rule": a.rule, "label": a.label or a.rule}
    if a.kind != "fee":  # a fee's percentage is only part of it: its amount says it all
        entry["rate"] = _percent(a.rate)
    entry["amount"] = _amount(a.amount, currency)
    return entry


def quote_json(summary: Summary) -> dict[str, Any]:
    currency = summary.currency
    due = summary.due_now
    return {
        "currency": currency,
        "subscriptions": [
            {
                "frequency": f.group.frequency.name,
                "start_date": _date(f.group.start_date),
                "number_of_payments": f.group.terms.payments,
                "items": _items(f.group.items, currency),
                "recurring_amount": _amount(f.amount, currency),
            }
            for f in summary.future
        ],
        "due_now": {
            "subtotal": _amount(due.subtotal, currency),
            "discount_total": _amount(due.discount_total, currency),
            "fee_total": _amount(due.fee_total, currency),
            "tax_total": _amount(due.tax_total, currency),
            "total": _amount(due.total, currency),
        },
        "future_payments": [
            {
                "frequency": f.group.frequency.name,
                "amount": _amount(f.amount, currency),
                "count": f.count,
            }
            for f in summary.future
        ],
        "total": _amount(summary.total, currency),
    }


def payment_json(payment: PaymentRecord) -> dict[str, Any]:
    """A stored payment attempt as the CLI's and the API's JSON."""
    return {
        "id": payment.id, "invoice_number": payment.invoice_number,
        "subscription_id": payment.subscription_id, "attempt": payment.attempt,
        "amount": payment.amount.format_amount(), "currency": payment.currency,
        "method": payment.method, "status": payment.status,
        "failure_code": payment.failure_code, "date": payment.on_date.isoformat(),
    }  # fmt: skip


def subscription_detail_json(
    detail: Any, settings: Settings, recurring: Any = None
) -> dict[str, Any]:
    """``subscriptions show``: a subscription (``queries.SubscriptionDetail``) with its invoice
    numbers, payments and history."""
    payload = subscription_json(detail.subscription, settings, recurring)
    payload["invoices"] = detail.invoices
    payload["payments"] = [payment_json(r) for r in detail.payments]
    payload["history"] = [
        {"seq": e.seq, "type": e.type, "date": e.on_date.isoformat(), **e.payload}
        for e in detail.history
    ]
    return payload


def credit_note_json(note: CreditNoteRecord) -> dict[str, Any]:
    """A credit note in the documented shape: ``{"number", "invoice", "payment_id",
    "issue_date", "amount", "currency"}`` (the amount given back, positive)."""
    return {
        "number": note.number,
        "invoice": note.invoice_number,
        "payment_id": note.payment_id,
        "issue_date": _date(note.issue_date),
        "amount": note.amount.format_amount(),
        "currency": note.currency,
    }


def invoice_summary_json(invoice: InvoiceRecord) -> dict[str, Any]:
    """An invoice in a listing: ``invoice_json`` without its lines and adjustments."""
    payload = invoice_json(invoice)
    del payload["lines"], payload["adjustments"]
    return payload


def _report_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _report_value(x) for k, x in value.items()}
    if hasattr(value, "format_amount"):
        return value.format_amount()
    return value if isinstance(value, int) else str(value)


def report_json(
    metric: str, currency: str, as_of: date, value: Any, series: list[tuple[date, Any]]
) -> dict[str, Any]:
    """``report METRIC --json``: the value on ``as_of`` and the monthly series (money as
    decimal strings, counts as numbers, rates as decimal strings)."""
    rows = [{"month": m.strftime("%Y-%m"), "value": _report_value(v)} for m, v in series]
    return {"metric": metric, "currency": currency, "as_of": as_of.isoformat(),
            "value": _report_value(value), "series": rows}  # fmt: skip


def segment_json(name: str, kind: str, as_of: date, members: list[Any]) -> dict[str, Any]:
    """``segments show NAME --json``: the member ids on ``as_of``."""
    return {"segment": name, "of": kind, "as_of": as_of.isoformat(),
            "members": [m.id for m in members]}  # fmt: skip
