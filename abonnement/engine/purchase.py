"""What a purchase creates: declared subscriptions, and the summary of a prospective one (F12).

A purchase on a date groups its items (F7): one-time items and recurring items that start that
day are due now, on one invoice; each group becomes a subscription whose later payments are
its future payments. The total is null when anything renews until cancelled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from abonnement.engine.catalog import Catalog, DeclaredSubscription, Settings, TaxRate
from abonnement.engine.invoicing import line_inputs
from abonnement.engine.items import Group, Item, group_items, resolve_item
from abonnement.engine.money import Money
from abonnement.engine.pricing import PricedInvoice, price_invoice
from abonnement.engine.schedule import resolve_start
from abonnement.engine.subscriptions import Subscription
from abonnement.errors import CollectionError

__all__ = ["FuturePayment", "Summary", "from_declared", "summarize"]


def from_declared(decl: DeclaredSubscription, catalog: Catalog, today: date) -> Subscription:
    """A declared subscription (``subscriptions:`` in the config) as applied on ``today``."""
    # terms and start belong to the subscription once it exists, not to its items
    items = tuple(resolve_item(spec, catalog, decl.currency) for spec in decl.items)
    settings = catalog.settings
    coll = decl.collection
    owners = [catalog.contacts.get(decl.contact), catalog.contacts.get(decl.billing_contact or "")]
    method = next((m for who in owners if who for m in who.payment_methods
                   if m.id == coll.payment_method), None)  # fmt: skip
    if method is not None and method.saved_on is not None and method.saved_on > today:
        raise CollectionError(
            f"subscription `{decl.id}`: payment method `{method.id}` was saved on "
            f"{method.saved_on}, after the subscription was created; it cannot be charged "
            "automatically"
        )
    return Subscription(
        id=decl.id,
        contact_id=decl.contact,
        currency=decl.currency,
        frequency=items[0].frequency,  # validation guarantees one frequency
        anchor=resolve_start(today, decl.start),
        items=items,
        payments=decl.terms.payments,
        company_id=decl.company,
        billing_contact_id=decl.billing_contact,
        collection_mode="first_invoice"
        if coll.mode == "automatic" and coll.method == "first_invoice"
        else coll.mode,
        payment_method_id=coll.payment_method,
        payment_token=method.token if method and coll.mode == "automatic" else None,
        payment_type=method.type if method else None,
        payment_terms=coll.payment_terms or settings.invoices.payment_terms,
        owner=decl.owner,
        invoice_creation=decl.invoice_creation,
        properties={**_defaults(settings), **decl.properties},
        invoice_settings=_invoice_settings(decl),
        deals=decl.deals,
        created_on=today,
    )


def _defaults(settings: Settings) -> dict[str, Any]:
    """The settings' property defaults: a new subscription's, before what it declares."""
    return {p.name: p.default for p in settings.custom_properties if p.default is not None}


def _invoice_settings(decl: DeclaredSubscription) -> dict[str, Any]:
    """The subscription's document settings; the billing address goes on its invoices."""
    own = dict(decl.invoice)
    address = decl.billing_address
    if isinstance(address, str):
        own["billing_address"] = address
    elif address is not None:
        own["billing_address"] = {k: v for k, v in asdict(address).items() if v is not None}
    return own


@dataclass(frozen=True)
class FuturePayment:
    group: Group
    amount: Money
    count: int | None  # None: renews until cancelled


@dataclass(frozen=True)
class Summary:
    currency: str
    groups: tuple[Group, ...]
    due_now: PricedInvoice
    future: tuple[FuturePayment, ...]
    total: Money | None


def summarize(
    items: Sequence[Item],
    purchase: date,
    ctx: Mapping[str, Any],
    rules: Sequence[Any],
    settings: Settings,
    tax_rates: Mapping[str, TaxRate],
) -> Summary:
    """The summary of buying ``items`` on ``purchase`` (F12)."""
    currency = items[0].currency
    one_time, groups = group_items(items, purchase)
    starting = [i for g in groups if g.start_date <= purchase for i in g.items]
    due_now = price_invoice(
        line_inputs([*one_time, *starting], tax_rates), ctx, rules,
        currency=currency, payments_made=0, rounding=settings.rounding,
    )  # fmt: skip
    future = []
    for group in groups:
        later = price_invoice(line_inputs(group.items, tax_rates), ctx, rules, currency=currency,
                              payments_made=1, rounding=settings.rounding)  # fmt: skip
        count = group.terms.payments
        if count is not None and group.start_date <= purchase:
            count -= 1
        future.append(FuturePayment(group, later.total, count))
    total: Money | None = due_now.total
    for payment in future:
        if payment.count is None:
            total = None
            break
        total = total + payment.amount * payment.count  # type: ignore[operator]
    return Summary(currency, tuple(groups), due_now, tuple(future), total)
