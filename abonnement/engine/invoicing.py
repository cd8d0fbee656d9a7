"""Invoices for billing periods: priced lines, dates, and the document settings they carry.

Pure: the billing run passes in the subscription, the period, the records rules may look at
and the rule set; numbering happens when the invoice is stored (gap-free, in one transaction).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from abonnement.engine.catalog import Catalog, Contact, InvoiceSettings, Settings
from abonnement.engine.context import billing_context, buyer_records, line_record, owner_context
from abonnement.engine.items import Item
from abonnement.engine.money import Money
from abonnement.engine.pricing import LineInput, PricedInvoice, PricedLine, price_invoice
from abonnement.engine.status import InvoiceStatus, allows, check_transition
from abonnement.engine.subscriptions import Period, Subscription
from abonnement.engine.taxes import AutomaticTax, buyer_location
from abonnement.errors import InvalidState

__all__ = [
    "CARRIED",
    "InvoiceDraft",
    "PricingMemo",
    "draft_invoice",
    "line_inputs",
    "payment_received",
    "period_line_prices",
]


@dataclass(frozen=True)
class InvoiceDraft:
    """An invoice before it has a number."""

    subscription_id: str | None
    contact_id: str
    currency: str
    issue_date: date
    due_date: date
    period_start: date | None
    period_end: date | None
    priced: PricedInvoice
    status: InvoiceStatus = InvoiceStatus.OPEN
    line_subscriptions: tuple[str | None, ...] = ()  # per line (checkout invoices span several)
    collect_on: date | None = None  # charge automatically on this date
    document: Mapping[str, Any] = field(default_factory=dict)  # language, locale, comments, tax_ids
    # settled when issued (``outcomes.settlement``): ``nothing_owed`` or ``carried``; None: owed
    settled: str | None = None

    @property
    def total(self) -> Money:
        return self.priced.total


def line_inputs(
    items: Sequence[Item],
    catalog: Catalog,
    owners: Sequence[Subscription | None] | None = None,
) -> list[LineInput]:
    """The lines to price for ``items``; ``owners`` (per item) are the subscriptions a
    purchase's lines start, which those lines' rules see as ``subscription``."""
    tax_rates, products, settings = catalog.tax_rates, catalog.products, catalog.settings
    return [
        LineInput(
            description=item.name,
            quantity=item.quantity,
            unit_price=item.effective_unit_price,
            amount=item.amount(),
            sku=item.sku,
            unit_discount=item.unit_discount,
            tax_rate=tax_rates.get(item.tax_rate) if item.tax_rate else None,
            tax_inclusive=item.tax_inclusive,
            fields=line_record(item, products),
            context=owner_context(owners[i], settings) if owners else {},
        )
        for i, item in enumerate(items)
    ]


def billed_contact(catalog: Catalog, sub: Subscription | None) -> Contact | None:
    """The contact a subscription's invoices and messages go to: its billing contact, else
    its contact."""
    if sub is None:
        return None
    return catalog.contacts.get(sub.billing_contact_id or sub.contact_id)


def document_settings(
    settings: Settings, sub: Subscription | None, contact: Contact | None = None
) -> Mapping[str, Any]:
    """Language, locale, comments and tax ids an invoice (or a message to the buyer)
    carries: the subscription's own where it has them, then the language and locale of
    ``contact`` (the one billed), else the account's (one shared, read-only mapping). A
    contact's language without a locale formats in that language too."""
    own = sub.invoice_settings if sub else None
    speaks = contact is not None and (contact.language or contact.locale)
    if not own and not speaks:
        return _account_document(settings.invoices)
    own = own or {}
    base = settings.invoices
    language = base.language
    locale = base.locale
    if speaks:
        language = contact.language or language  # type: ignore[union-attr]
        locale = contact.locale or contact.language or locale  # type: ignore[union-attr]
    document = {
        "language": own.get("language", language),
        "locale": own.get("locale", locale),
        "comments": own.get("comments", base.comments),
        "tax_ids": list(own.get("tax_ids", base.tax_ids)),
    }
    if "billing_address" in own:  # fixed on the invoice when it is issued
        document["billing_address"] = own["billing_address"]
    return document


@functools.lru_cache(maxsize=8)
def _account_document(base: InvoiceSettings) -> Mapping[str, Any]:
    return MappingProxyType({"language": base.language, "locale": base.locale,
                             "comments": base.comments, "tax_ids": list(base.tax_ids)})  # fmt: skip


class PricingMemo:
    """Pricing is a pure function of the items and of the context fields the rules read, so a
    billing run prices each distinct combination once. ``reads`` are the rules' field paths;
    a rule that counts payments (``once``, ``for N payments``) adds the period index."""

    LIMIT = 20_000

    def __init__(self, reads: frozenset[tuple[str, ...]], counts_payments: bool):
        self.paths = sorted(p for p in reads if p[0] not in ("line", "product"))
        self.counts_payments = counts_payments
        self.priced: dict[tuple, PricedInvoice] = {}
        # keys from the buyer's records alone spare building the whole rule context
        self.records_only = all(p[0] in _RECORD_ROOTS for p in self.paths)

    def key(self, sub: Subscription, index: int, ctx: Mapping[str, Any]) -> tuple | None:
        """``ctx`` is the rule context, or only the buyer's records when ``records_only``."""
        parts: list[Any] = [sub.items, sub.currency, index if self.counts_payments else None]
        for path in self.paths:
            value: Any = ctx
            for part in path:
                value = value.get(part) if isinstance(value, Mapping) else None
            parts.append(value)
        key = tuple(parts)
        try:
            hash(key)
        except TypeError:  # a property that is a list, say: price it without the memo
            return None
        return key


_RECORD_ROOTS = ("customer", "company", "payment")


def draft_invoice(
    sub: Subscription,
    period: Period,
    records: Mapping[str, Any],
    rules: Sequence[Any],
    catalog: Catalog,
    *,
    with_mrr: bool = True,
    with_subtotal: bool = True,
    memo: PricingMemo | None = None,
    taxes: AutomaticTax | None = None,
    recurring: Any = None,
) -> InvoiceDraft:
    """The invoice of ``sub`` for ``period``, priced by the rules in file order; with
    ``taxes``, the tax provider's rates for the buyer's location too. ``with_mrr`` and
    ``with_subtotal`` say whether a rule reads ``subscription.mrr`` and ``invoice.subtotal``
    (each costs something to compute); ``recurring``: see ``context.subscription_record``."""
    settings = catalog.settings
    ctx = None
    key = priced = location = None
    if taxes is not None:
        location = buyer_location(records, sub.invoice_settings.get("billing_address"))

    def context() -> dict[str, Any]:
        return billing_context(sub, period, records, settings, with_mrr=with_mrr,
                               with_subtotal=with_subtotal, recurring=recurring)  # fmt: skip

    if memo is not None and not sub.pending:  # prorated lines are one-offs: never remembered
        if not memo.records_only:
            ctx = context()
        key = memo.key(sub, period.index, records if ctx is None else ctx)
        if key is not None and taxes is not None:
            key = (key, location)  # the provider's rates follow the buyer's location
        priced = memo.priced.get(key) if key is not None else None
    carried: tuple[Item, ...] = ()
    pending = sub.pending
    if pending:
        carried = tuple(i for i in pending if i.category == CARRIED)
        pending = tuple(i for i in pending if i.category != CARRIED)
    if priced is None:
        lines = line_inputs(sub.items, catalog)
        if pending:  # proration lines: already discounted, their line fees included
            lines += [replace(line, prorated=True) for line in line_inputs(pending, catalog)]
        priced = price_invoice(
            lines,
            ctx or context(),
            rules,
            currency=sub.currency,
            payments_made=period.index,
            rounding=settings.rounding,
            line_taxes=taxes.line_taxes(location, lines) if taxes is not None else None,
        )
        if key is not None:
            if len(memo.priced) >= memo.LIMIT:  # type: ignore[union-attr]
                memo.priced.clear()  # type: ignore[union-attr]  # memory stays bounded
            memo.priced[key] = priced  # type: ignore[union-attr]
    if carried:
        priced = with_carried(priced, carried)
    return InvoiceDraft(
        subscription_id=sub.id,
        contact_id=sub.contact_id,
        currency=sub.currency,
        issue_date=period.issue_date,
        due_date=period.due_date,
        period_start=period.start,
        period_end=period.end,
        priced=priced,
        line_subscriptions=(sub.id,) * len(priced.lines),
        document=document_settings(settings, sub, billed_contact(catalog, sub)),
        collect_on=period.issue_date
        if sub.collection_mode == "automatic" and sub.payment_token
        else None,
    )


def period_line_prices(
    catalog: Catalog, rules: Sequence[Any], *, recurring: Any = None
) -> Callable[[Subscription, int], list[Money]]:
    """``edits.LinePrices`` by the account's pricing: each item of a subscription priced as
    the invoice of period ``index`` prices it (``rules``: the pricing rules; the buyer's
    records from the catalog) — its amount after every discount that applies in that period
    (unit, line and its share of invoice discounts, by their durations) plus its line fees,
    before tax. Pending proration lines are left out."""

    def prices(sub: Subscription, index: int) -> list[Money]:
        start = sub.date_of(index)
        period = Period(index, start, sub.date_of(index + 1), start, start)
        before = replace(sub, next_index=index, pending=())  # as the period's invoice saw it
        priced = draft_invoice(before, period, buyer_records(catalog, sub), rules, catalog,
                               recurring=recurring).priced  # fmt: skip
        out = []
        for line in priced.lines:
            amount = line.discounted if line.discounted is not None else line.amount
            out.append(sum((fee.amount for fee in line.fees), amount))
        return out

    return prices


CARRIED = "abonnement:carried"  # the category of a pending line that carries an earlier amount


def carried_item(number: str, amount: Money) -> Item:
    """The pending line that carries ``amount`` of invoice ``number`` (below the minimum
    charge, or a credit) to the subscription's next invoice."""
    return Item(f"Carried from {number}", 1, amount, taxable=False, category=CARRIED)


def with_carried(priced: PricedInvoice, carried: Sequence[Item]) -> PricedInvoice:
    """``priced`` with the amounts carried from earlier invoices added as lines of their own:
    added after pricing, as they were billed — no rule discounts, charges a fee on or taxes
    an amount that already had its discounts, fees and taxes."""
    lines = tuple(
        PricedLine(LineInput(item.name, 1, item.unit_price, item.unit_price),
                   item.unit_price.rounded(), (), (), ())
        for item in carried
    )  # fmt: skip
    return PricedInvoice.of(priced.currency, priced.lines + lines, priced.adjustments)


def payment_received(number: str, status: str, total: Decimal, paid: Decimal) -> InvoiceStatus:
    """The status of invoice ``number`` (now ``status``) once ``paid`` of its ``total`` has been
    paid in all: paid when covered, as it was when not yet. ``InvalidState`` if it takes no
    payment (paid, void or written off as uncollectible)."""
    current = InvoiceStatus(status)
    if not allows(current, InvoiceStatus.PAID):
        raise InvalidState(f"invoice {number} is {current}")
    if paid < total:
        return current
    check_transition(current, InvoiceStatus.PAID)
    return InvoiceStatus.PAID
