"""What a purchase creates: declared subscriptions, and the summary of a prospective one (F12).

A purchase on a date groups its items (F7): one-time items and recurring items that start that
day are due now, on one invoice; each group becomes a subscription whose later payments are
its future payments. The total is null when anything renews until cancelled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import Any

from abonnement.engine.catalog import Catalog, DeclaredSubscription, Settings, TaxRate
from abonnement.engine.context import purchase_context
from abonnement.engine.invoicing import line_inputs
from abonnement.engine.items import Group, Item, group_items, resolve_item
from abonnement.engine.money import Money
from abonnement.engine.pricing import LineInput, PricedInvoice, price_invoice
from abonnement.engine.schedule import resolve_start
from abonnement.engine.subscriptions import Subscription
from abonnement.engine.taxes import AutomaticTax, buyer_location
from abonnement.errors import CollectionError

__all__ = ["FuturePayment", "Summary", "from_declared", "price_due_now", "prospective",
           "summarize"]  # fmt: skip


def from_declared(decl: DeclaredSubscription, catalog: Catalog, today: date) -> Subscription:
    """A declared subscription (``subscriptions:`` in the config) as applied on ``today``."""
    # terms and start belong to the subscription once it exists, not to its items
    items = tuple(resolve_item(spec, catalog, decl.currency) for spec in decl.items)
    settings = catalog.settings
    coll = decl.collection
    # no billing contact: no look-up (the contacts a run sees include stored buyers, and a
    # missing id is asked of the database every time)
    billing = catalog.contacts.get(decl.billing_contact) if decl.billing_contact else None
    owners = [catalog.contacts.get(decl.contact), billing]
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


_HORIZON = 36  # future payments a quote prices one by one (three years of monthly payments)


@dataclass(frozen=True)
class Summary:
    currency: str
    groups: tuple[Group, ...]
    due_now: PricedInvoice
    future: tuple[FuturePayment, ...]
    total: Money | None


def prospective(
    group: Group, contact_id: str, purchase: date, *, sub_id: str = "",
    company_id: str | None = None,
) -> Subscription:  # fmt: skip
    """The subscription ``group`` becomes when bought on ``purchase``, as its first invoice's
    rules see it: active (or scheduled), nothing paid yet."""
    started = group.start_date <= purchase
    return Subscription(
        id=sub_id, contact_id=contact_id, currency=group.currency, frequency=group.frequency,
        anchor=group.start_date, items=group.items, status="active" if started else "scheduled",
        payments=group.terms.payments, company_id=company_id, created_on=purchase,
    )  # fmt: skip


def price_due_now(
    items: Sequence[Item],
    owners: Sequence[Subscription | None],
    contact_id: str,
    purchase: date,
    rules: Sequence[Any],
    catalog: Catalog,
    *,
    currency: str,
    due_date: date,
    company_id: str | None = None,
    method: str | None = None,
    taxes: AutomaticTax | None = None,
) -> PricedInvoice:
    """The invoice of what a purchase makes due now: ``items`` with the subscription each
    starts (``owners``, None for one-time items), paid with ``method`` (a quote has none).
    A quote and a checkout price through here, so the quote says what the checkout charges."""
    # each subscription as its first invoice sees it: nothing paid yet
    first = {id(s): replace(s, next_index=0) for s in owners if s is not None}
    owners = [first[id(s)] if s is not None else None for s in owners]
    distinct = list(first.values())
    ctx = purchase_context(
        catalog, contact_id, purchase, items=items, currency=currency, due_date=due_date,
        company_id=company_id, method=method,
        subscription=distinct[0] if len(distinct) == 1 else None,
    )  # fmt: skip
    lines = line_inputs(items, catalog, owners)
    return price_invoice(lines, ctx, rules, currency=currency, payments_made=0,
                         rounding=catalog.settings.rounding,
                         line_taxes=_line_taxes(taxes, ctx, lines))  # fmt: skip


def _line_taxes(
    taxes: AutomaticTax | None, ctx: Mapping[str, Any], lines: Sequence[LineInput]
) -> tuple[tuple[TaxRate, ...], ...] | None:
    """The tax provider's rates for ``lines`` at the buyer's location in ``ctx``."""
    return taxes.line_taxes(buyer_location(ctx), lines) if taxes is not None else None


def summarize(
    items: Sequence[Item],
    purchase: date,
    contact_id: str,
    rules: Sequence[Any],
    catalog: Catalog,
    taxes: AutomaticTax | None = None,
    method: str | None = None,
) -> Summary:
    """The summary of ``contact_id`` buying ``items`` on ``purchase`` (F12), priced as the
    checkout prices it: the same contexts, each line with the subscription it starts;
    ``taxes``: the tax provider's rates by the buyer's location; ``method``: the payment
    type when it is known (a payment link that takes one), None for a quote."""
    settings = catalog.settings
    currency = items[0].currency
    contact = catalog.contacts.get(contact_id)
    company_id = contact.company if contact else None
    one_time, groups = group_items(items, purchase)
    subs = [prospective(g, contact_id, purchase, company_id=company_id) for g in groups]
    starting = [(g, s) for g, s in zip(groups, subs, strict=True) if g.start_date <= purchase]
    now_items = [*one_time, *(i for g, _ in starting for i in g.items)]
    owners = [None] * len(one_time) + [s for g, s in starting for _ in g.items]
    due_now = price_due_now(
        now_items,
        owners,
        contact_id,
        purchase,
        rules,
        catalog,
        currency=currency,
        due_date=purchase,
        company_id=company_id,
        method=method,
        taxes=taxes,
    )
    future = []
    for group, sub in zip(groups, subs, strict=True):
        # the next payment: the second when the first is due now, else the first
        first = 1 if group.start_date <= purchase else 0
        remaining = None if group.terms.payments is None else group.terms.payments - first
        segments: list[list[Any]] = []  # [amount, count]: a run of payments of one amount
        # each payment priced as its invoice will be (a discount for N payments, or until a
        # date, ends within the horizon); what lies beyond bills as the last one priced
        for index in range(first, first + min(_HORIZON, _HORIZON if remaining is None
                                               else remaining)):  # fmt: skip
            later_sub = replace(sub, next_index=index)
            on = later_sub.date_of(index)
            later_ctx = purchase_context(
                catalog, contact_id, on, items=group.items, currency=currency, due_date=on,
                company_id=company_id, method=method, sequence=index + 1,
                subscription=later_sub,
            )  # fmt: skip
            lines = line_inputs(group.items, catalog)
            later = price_invoice(lines, later_ctx, rules, currency=currency,
                                  payments_made=index, rounding=settings.rounding,
                                  line_taxes=_line_taxes(taxes, later_ctx, lines))  # fmt: skip
            if segments and segments[-1][0] == later.total:
                segments[-1][1] += 1
            else:
                segments.append([later.total, 1])
        if segments and remaining is None:
            segments[-1][1] = None  # renews until cancelled
        elif segments and remaining is not None and remaining > _HORIZON:
            segments[-1][1] += remaining - _HORIZON
        future.extend(FuturePayment(group, amount, count) for amount, count in segments)
    total: Money | None = due_now.total
    for payment in future:
        if payment.count is None:
            total = None
            break
        total = total + payment.amount * payment.count  # type: ignore[operator]
    return Summary(currency, tuple(groups), due_now, tuple(future), total)
