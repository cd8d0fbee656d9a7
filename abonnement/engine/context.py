"""What rules see: every rule context is built here, from values, for each place rules run.

A context maps the roots of the field model (``rules/types.py``: ``customer``, ``company``,
``subscription``, ``line``, ``product``, ``invoice``, ``payment``, ``event``) to plain dicts,
plus ``today``. The places rules run, and the builder each uses:

- the billing run: ``billing_context`` per invoice (``buyer_records`` once per buyer), and
  ``line_context`` per line (pricing calls it) over the line's ``line_record``;
- a purchase (checkout, conversion of a quote or deal) and a quote: ``purchase_context`` for
  what is due now (or a later payment), ``owner_context`` for a line's own subscription;
- workflow triggers: ``trigger_context`` per event;
- segments: ``segment_context`` for a subscription or a contact.

Pure: values in, values out. Two fields cost something to compute, so the billing run asks
for them only when a rule reads them: ``subscription.mrr`` (``with_mrr``) and
``invoice.subtotal`` (``with_subtotal``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import suppress
from datetime import date
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from abonnement.engine.catalog import Catalog, Product, Settings
from abonnement.engine.money import ROUNDING_MODES, Money

if TYPE_CHECKING:  # items and subscriptions import pricing, which imports this module
    from abonnement.engine.items import Item
    from abonnement.engine.records import InvoiceRecord
    from abonnement.engine.subscriptions import Period, Subscription

__all__ = [
    "billing_context",
    "buyer_records",
    "contact_records",
    "invoice_record",
    "line_context",
    "line_record",
    "owner_context",
    "purchase_context",
    "rule_context",
    "segment_context",
    "subscription_record",
    "subtotal",
    "trigger_context",
]

_NO_PROPERTIES: Mapping[str, Any] = MappingProxyType({})


# -- the buyer: customer, company, payment ------------------------------------------------------
def contact_records(
    catalog: Catalog,
    contact_id: str,
    *,
    billing_contact_id: str | None = None,
    company_id: str | None = None,
    payment_method_id: str | None = None,
) -> dict[str, Any]:
    """The ``customer``, ``company`` and (given a saved method's id) ``payment`` records of a
    buyer. The billing contact, when there is one, is the customer rules see."""
    contact = catalog.contacts.get(billing_contact_id or contact_id) or (
        catalog.contacts.get(contact_id)
    )
    company = catalog.companies.get(company_id or (contact.company if contact else "") or "")
    records: dict[str, Any] = {}
    if contact is not None:
        address = contact.address
        records["customer"] = {
            "id": contact.id, "name": contact.name, "email": contact.email,
            "country": address.country if address else None,
            "region": address.region if address else None,
            "postal_code": address.postal_code if address else None,
            "city": address.city if address else None,
            "tax_exempt": contact.tax_exempt, "properties": dict(contact.properties),
        }  # fmt: skip
    if company is not None:
        address = company.address
        records["company"] = {
            "id": company.id, "name": company.name, "domain": company.domain,
            "tax_id": company.tax_id, "country": address.country if address else None,
            "region": address.region if address else None,
            "postal_code": address.postal_code if address else None,
            "city": address.city if address else None, "properties": dict(company.properties),
        }  # fmt: skip
    if payment_method_id and contact is not None:
        method = next((m for m in contact.payment_methods if m.id == payment_method_id), None)
        if method is not None:
            records["payment"] = {"method": method.type, "attempt": 1}
    return records


def buyer_records(catalog: Catalog, sub: Subscription) -> dict[str, Any]:
    """The buyer records of ``sub``'s invoices. ``payment`` is there when the subscription is
    charged automatically (a method to charge, of a known type), whether the method was saved
    on the contact or given at checkout; the attempt is the first (pricing comes before it)."""
    records = contact_records(catalog, sub.contact_id, billing_contact_id=sub.billing_contact_id,
                              company_id=sub.company_id)  # fmt: skip
    if sub.collection_mode == "automatic" and sub.payment_token and sub.payment_type:
        records["payment"] = {"method": sub.payment_type, "attempt": 1}
    return records


# -- the subscription --------------------------------------------------------------------------
def subscription_record(
    sub: Subscription,
    settings: Settings | None = None,
    *,
    with_mrr: bool = True,
    recurring: Any = None,
) -> dict[str, Any]:
    """The ``subscription`` record; ``mrr`` needs the settings (the weekly factor, whether
    discounts count) and is the MRR every face shows: with ``recurring`` (a
    ``RecurringPricing``), after the discount rules that recur."""
    record = {
        "id": sub.id,
        "status": sub.status,
        "currency": sub.currency,
        "frequency": sub.frequency.name,
        "start_date": sub.anchor,
        "end_date": sub.end_date,
        "next_payment_date": sub.next_payment_date,
        "payments_made": sub.payments_made,
        "number_of_payments": sub.payments,
        "owner": sub.owner,
        "properties": _typed_properties(sub.properties, settings),
    }
    if with_mrr and settings is not None:
        from abonnement.engine.subscriptions import mrr  # see the import note at the top

        record["mrr"] = mrr(sub, settings.weekly_mrr_factor, recurring=recurring,
                            with_discounts=settings.discounts_reduce_mrr)  # fmt: skip
    return record


def _typed_properties(values: Mapping[str, Any], settings: Settings | None) -> dict[str, Any]:
    """The properties as the rules type them: a `date` property is written as ISO text but
    compared and shifted as a date (`properties.renewal + 30 days`)."""
    properties = dict(values)
    for prop in settings.custom_properties if settings is not None else ():
        value = properties.get(prop.name)
        if prop.type == "date" and isinstance(value, str):
            with suppress(ValueError):  # checked when written; a stored value stays as it was
                properties[prop.name] = date.fromisoformat(value)
    return properties


def rule_context(
    sub: Subscription | None,
    records: Mapping[str, Any],
    settings: Settings,
    on: date,
    *,
    with_mrr: bool = True,
    recurring: Any = None,
) -> dict[str, Any]:
    """The buyer's ``records``, the ``subscription`` (if any) and ``today``.
    ``with_mrr=False`` skips computing ``subscription.mrr`` when no rule reads it."""
    ctx: dict[str, Any] = {**records, "today": on}
    if sub is not None:
        ctx["subscription"] = subscription_record(sub, settings, with_mrr=with_mrr,
                                                  recurring=recurring)  # fmt: skip
    return ctx


# -- lines and products ------------------------------------------------------------------------
def line_record(item: Item, products: Mapping[str, Product]) -> dict[str, Any]:
    """The ``line`` record of ``item`` (pricing adds its amount), with its ``product``: the
    item's own copy of name, sku, description, category and taxable, and the catalog
    product's properties (empty for a custom item)."""
    product = products.get(item.product_id) if item.product_id else None
    return {
        "sku": item.sku,
        "name": item.name,
        "quantity": item.quantity,
        "unit_price": item.unit_price,
        "frequency": item.frequency.name if item.frequency else None,
        "taxable": item.taxable,
        "category": item.category,
        "unit_discount": item.unit_discount,
        "is_recurring": item.frequency is not None,
        "product": {
            "id": item.product_id, "sku": item.sku, "name": item.name,
            "description": item.description, "category": item.category,
            "taxable": item.taxable,
            "properties": product.properties if product is not None else _NO_PROPERTIES,
        },
    }  # fmt: skip


def line_context(
    ctx: Mapping[str, Any],
    fields: Mapping[str, Any],
    overrides: Mapping[str, Any],
    amount: Money,
    unit_price: Money,
    quantity: int,
) -> dict[str, Any]:
    """What a line-scope rule sees: the invoice's context, the line's own roots
    (``overrides``: a purchase line's subscription) and its ``line`` and ``product``."""
    record = {**fields, "amount": amount, "unit_price": unit_price, "quantity": quantity}
    return {**ctx, **overrides, "line": record, "product": record.get("product")}


def owner_context(sub: Subscription | None, settings: Settings) -> Mapping[str, Any]:
    """The roots a purchase line overrides: the subscription it starts (none when one-time)."""
    if sub is None:
        return _NO_PROPERTIES
    return {"subscription": subscription_record(sub, settings)}


# -- the invoice -------------------------------------------------------------------------------
def subtotal(items: Iterable[Item], currency: str, rounding: str) -> Money:
    """``invoice.subtotal``: the sum of the lines' amounts before any adjustment (unit
    discounts included), each rounded as pricing rounds it — the invoice's subtotal."""
    mode = ROUNDING_MODES.get(rounding, rounding)
    total = Decimal(0)
    for item in items:
        total += item.amount().rounded(mode).amount
    return Money(total, currency)


def invoice_record(
    issue_date: date, due_date: date, sequence: int | None, subtotal: Money | None
) -> dict[str, Any]:
    """The ``invoice`` record. ``sequence`` is the invoice's ordinal within its subscription
    (1 for the first: a checkout's invoice, or the first period a run bills)."""
    return {"date": issue_date, "due_date": due_date, "sequence": sequence,
            "subtotal": subtotal}  # fmt: skip


def billing_context(
    sub: Subscription,
    period: Period,
    records: Mapping[str, Any],
    settings: Settings,
    *,
    with_mrr: bool = True,
    with_subtotal: bool = True,
    recurring: Any = None,
) -> dict[str, Any]:
    """The context of ``sub``'s invoice for ``period`` (``sub`` as it was before the period).
    Periods skipped while paused were never invoiced: the sequence leaves them out."""
    ctx = rule_context(sub, records, settings, period.issue_date, with_mrr=with_mrr,
                       recurring=recurring)  # fmt: skip
    ctx["subscription"]["payments_made"] = period.index
    amount = None
    if with_subtotal:
        amount = subtotal((*sub.items, *sub.pending), sub.currency, settings.rounding)
    ctx["invoice"] = invoice_record(period.issue_date, period.due_date,
                                    period.index - sub.skipped + 1, amount)  # fmt: skip
    return ctx


def purchase_context(
    catalog: Catalog,
    contact_id: str,
    on: date,
    *,
    items: Iterable[Item],
    currency: str,
    due_date: date,
    company_id: str | None = None,
    method: str | None = None,
    sequence: int = 1,
    subscription: Subscription | None = None,
) -> dict[str, Any]:
    """The context of what a purchase on ``on`` makes due: the buyer, ``payment`` (``method``
    is the checkout's method type, ``manual`` without one, None for a quote that has none
    yet), the ``invoice`` of ``items`` and, when one subscription owns the whole invoice,
    its ``subscription`` (each line carries its own: ``owner_context``)."""
    settings = catalog.settings
    ctx = rule_context(subscription, contact_records(catalog, contact_id, company_id=company_id),
                       settings, on)  # fmt: skip
    ctx["payment"] = {"method": method, "attempt": 1}
    ctx["invoice"] = invoice_record(on, due_date, sequence,
                                    subtotal(items, currency, settings.rounding))  # fmt: skip
    return ctx


# -- workflows and segments --------------------------------------------------------------------
def trigger_context(
    catalog: Catalog,
    sub: Subscription,
    event_type: str,
    payload: Mapping[str, Any],
    on: date,
    *,
    invoice: InvoiceRecord | None = None,
    sequence: int | None = None,
    recurring: Any = None,
) -> dict[str, Any]:
    """The context of a trigger on an event of ``sub``: ``subscription.status`` is the status
    the event made; ``invoice`` is the stored invoice the event is about (its issue and due
    dates, subtotal) with its ``sequence``; ``payment`` is the event's attempt and the
    method it used."""
    ctx = rule_context(sub, buyer_records(catalog, sub), catalog.settings, on,
                       recurring=recurring)  # fmt: skip
    ctx["event"] = {"type": event_type, "previous_status": payload.get("previous_status")}
    if "status" in payload:  # the status the event made, not the one the subscription has now
        ctx["subscription"]["status"] = payload["status"]
    if "attempt" in payload:  # the payment's own method: by hand, online, a new card…
        method = payload.get("method") or ctx.get("payment", {}).get("method", sub.payment_type)
        ctx["payment"] = {"method": method, "attempt": payload["attempt"]}
    if invoice is not None:
        ctx["invoice"] = invoice_record(invoice.issue_date, invoice.due_date, sequence,
                                        invoice.subtotal)  # fmt: skip
    return ctx


def segment_context(
    catalog: Catalog,
    on: date,
    *,
    sub: Subscription | None = None,
    contact_id: str | None = None,
    with_mrr: bool = True,
    recurring: Any = None,
) -> dict[str, Any]:
    """The context of a segment's ``where``: a subscription (``of subscriptions``) with its
    buyer, or a contact (``of contacts``)."""
    if sub is None:
        return {**contact_records(catalog, contact_id or ""), "today": on}
    records = contact_records(catalog, sub.contact_id, company_id=sub.company_id,
                              billing_contact_id=sub.billing_contact_id)  # fmt: skip
    return rule_context(sub, records, catalog.settings, on, with_mrr=with_mrr,
                        recurring=recurring)  # fmt: skip
