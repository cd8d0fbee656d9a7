"""Purchases: quotes, payment-link checkouts and quote or deal conversions (F22)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from datetime import date
from typing import TYPE_CHECKING, Any

from abonnement.engine.status import PaymentStatus, SubscriptionStatus
from abonnement.errors import (
    AlreadyPurchased,
    BelowMinimumCharge,
    CollectionError,
    InvalidInput,
    InvalidState,
    NotFound,
    PaymentDeclined,
)
from abonnement.operations.context import Context
from abonnement.operations.delivery import deliver_due

if TYPE_CHECKING:
    from abonnement.engine.catalog import Address
    from abonnement.engine.purchase import Summary
    from abonnement.operations.buyers import Buyer

__all__ = ["buy", "checkout", "convert", "quote", "quote_link"]


def quote(
    ctx: Context,
    contact_id: str,
    items: Sequence[tuple[str, int]],
    purchase: date,
    *,
    start: date | None = None,
    payments: int | None = None,
) -> Summary:
    """The summary of ``contact_id`` buying ``items`` (product id, quantity) on ``purchase``:
    due now, future payments, total (F21). Writes nothing. ``NotFound`` for an unknown contact
    or product, ``InvalidInput`` without items."""
    from abonnement.engine.catalog import ItemSpec, Terms
    from abonnement.engine.items import resolve_item
    from abonnement.engine.purchase import summarize
    from abonnement.engine.schedule import OnDate

    catalog = ctx.catalog
    if contact_id not in catalog.contacts:
        raise NotFound("contact", contact_id)
    currency = catalog.settings.default_currency
    resolved = []
    for product_id, quantity in items:
        if product_id not in catalog.products:
            raise NotFound("product", product_id)
        resolved.append(resolve_item(
            ItemSpec(product=product_id, quantity=quantity), catalog, currency,
            terms=Terms(payments) if payments else None,
            start=OnDate(start) if start else None,
        ))  # fmt: skip
    if not resolved:
        raise InvalidInput("a quote needs at least one --item")
    return summarize(resolved, purchase, contact_id, ctx.rules.pricing, catalog,
                     ctx.automatic_tax())  # fmt: skip


def quote_link(
    ctx: Context, link_id: str, purchase: date, contact_id: str | None = None
) -> Summary:
    """The summary of buying payment link ``link_id`` on ``purchase`` (what its page shows):
    priced as ``checkout`` prices it — paid with the link's first accepted payment type, for
    ``contact_id`` when the buyer is known (before that, without the buyer's taxes).
    ``NotFound`` for an unknown link."""
    from abonnement.engine.items import resolve_item
    from abonnement.engine.purchase import summarize

    catalog = ctx.catalog
    link = catalog.payment_links.get(link_id)
    if link is None:
        raise NotFound("payment link", link_id)
    currency = link.currency or catalog.settings.default_currency
    items = [resolve_item(spec, catalog, currency) for spec in link.items]
    method = (link.accepted_methods or catalog.settings.accepted_methods)[0]
    return summarize(items, purchase, contact_id or "", ctx.rules.pricing, catalog,
                     ctx.automatic_tax(), method=method)  # fmt: skip


def checkout(
    ctx: Context,
    link_id: str,
    contact_id: str,
    on: date,
    *,
    card: str | None = None,
    payment_method_id: str | None = None,
    shipping_address: Address | None = None,
) -> dict[str, Any]:
    """Buy a payment link as ``contact_id`` on ``on``: one invoice and one charge for what
    is due now, then the grouped subscriptions (F22), then what that set off delivered;
    ``shipping_address`` is kept on each subscription (its ``shipping_address`` property). Safe
    to repeat after a crash: the charge has a fixed idempotency key and the result is stored in
    one transaction. Returns ``{"invoice", "subscriptions", "payment", "total", "currency"}``.
    Raises ``NotFound`` (link, contact, method), ``CollectionError`` (no method, a method the
    link does not accept, under the minimum charge), ``PaymentDeclined``, ``AlreadyPurchased``."""
    catalog, settings = ctx.catalog, ctx.catalog.settings
    link = catalog.payment_links.get(link_id)
    if link is None:
        raise NotFound("payment link", link_id)
    if contact_id not in catalog.contacts:
        raise NotFound("contact", contact_id)
    method = _method(ctx, contact_id, card, payment_method_id, on)
    if method is None:
        raise CollectionError("checkout needs --card TOKEN or a saved --payment-method")
    accepted = link.accepted_methods or settings.accepted_methods
    if method[1] not in accepted:
        raise CollectionError(f"this link takes {', '.join(accepted)}, not {method[1]}")
    key, prefix = f"checkout/{link_id}/{contact_id}/{on.isoformat()}", f"{link_id}-{contact_id}"
    result = _purchase(
        ctx, key, f"{prefix}-{on:%Y%m%d}", contact_id, link.items,
        link.currency or settings.default_currency, on, method,
        deals=link.deals, save_method=link.save_payment_method,
        properties={"shipping_address": _address(shipping_address)} if shipping_address else {},
    )  # fmt: skip
    deliver_due(ctx, on, result["subscriptions"])  # its receipt, not the outbox's backlog
    return result


def buy(ctx: Context, link_id: str, buyer: Buyer, on: date, *, card: str | None,
        shipping_address: Address | None = None) -> dict[str, Any]:  # fmt: skip
    """A payment-link page's checkout: the buyer's contact found by e-mail (the config's,
    then the stored ones) or stored as new, then ``checkout`` with ``card`` (and where to
    ship, when the link asks). Returns
    ``checkout``'s result with ``"contact"`` (the contact id). ``NotFound`` for the link;
    ``InvalidInput`` (with its field) for the buyer's details; ``PaymentDeclined`` with the
    processor's reason."""
    from abonnement.operations.buyers import find_or_create

    if link_id not in ctx.catalog.payment_links:
        raise NotFound("payment link", link_id)
    if not card:
        raise InvalidInput("enter a card", field="card")
    contact = find_or_create(ctx, buyer, on)
    bought = checkout(ctx, link_id, contact.id, on, card=card, shipping_address=shipping_address)
    return {**bought, "contact": contact.id}


def convert(
    ctx: Context,
    kind: str,
    record_id: str,
    on: date,
    *,
    card: str | None = None,
    payment_method_id: str | None = None,
) -> dict[str, Any]:
    """Create the subscriptions of a published quote (``kind="quote"``) or of a deal's line
    items (``kind="deal"``) (F22, S12): what is due now is charged when a method is given, else
    invoiced with payment terms; then what that set off is delivered. Same result as
    ``checkout``; ``InvalidState`` for an unpublished quote or a deal without items."""
    catalog = ctx.catalog
    if kind == "quote":
        quote = catalog.quotes.get(record_id)
        if quote is None:
            raise NotFound("quote", record_id)
        if quote.status != "published":
            raise InvalidState(f"quote `{record_id}` is {quote.status}; publish it first")
        deal = catalog.deals.get(quote.deal or "")
        contact_id, specs, currency = quote.contact, quote.items, quote.currency
        company = quote.company or (deal.company if deal else None)
        deals, quote_id = ((quote.deal,) if quote.deal else ()), quote.id
    else:
        deal = catalog.deals.get(record_id)
        if deal is None:
            raise NotFound("deal", record_id)
        if not deal.contact or not deal.items:
            raise InvalidState(f"deal `{record_id}` needs a contact and line items")
        contact_id, specs, currency = deal.contact, deal.items, None
        company, deals, quote_id = deal.company, (deal.id,), None
    method = _method(ctx, contact_id, card, payment_method_id, on)
    result = _purchase(
        ctx, f"convert/{kind}/{record_id}", record_id, contact_id, specs,
        currency or catalog.settings.default_currency, on, method,
        deals=deals, quote_id=quote_id, company_id=company, source=kind,
    )  # fmt: skip
    deliver_due(ctx, on, result["subscriptions"])
    return result


def _method(
    ctx: Context, contact_id: str, card: str | None, payment_method_id: str | None, on: date
) -> tuple[str, str] | None:
    """(token, type) to charge: a card token (saved for the contact by the processor,
    ``payments.attached``), or a method the contact saved."""
    if card:
        from abonnement.operations.payments import attached

        return attached(ctx, contact_id, card, on), "card"
    if payment_method_id is None:
        return None
    contact = ctx.catalog.contacts.get(contact_id)
    saved = contact.payment_methods if contact else ()
    method = next((m for m in saved if m.id == payment_method_id), None)
    if method is None:
        raise NotFound("payment method", payment_method_id,
                       f"contact `{contact_id}` has no such saved method")  # fmt: skip
    return method.token, method.type


def _refuse_repeat(ctx: Context, key: str, subs: Sequence[Any]) -> None:
    """``AlreadyPurchased`` when the purchase ``key`` names (the same link, contact and day; the
    same quote or deal) was recorded already, whatever it bought: its subscriptions or, for
    one-time items alone, its invoice."""
    existing = ctx.storage.subscription(subs[0].id) if subs else None
    number = ctx.storage.purchase_invoice(key)
    if existing is not None:
        raise AlreadyPurchased(f"already done on {existing.created_on}: `{existing.id}` exists",
                               number, existing.created_on)  # fmt: skip
    if number is not None:
        why = _ONE_PURCHASE.get(key.split("/")[0], "")
        raise AlreadyPurchased(f"already done: invoice {number} records this purchase{why}",
                               number)  # fmt: skip


_ONE_PURCHASE = {
    "checkout": " (a link bought by one contact on one day is one purchase)",
    "convert": " (a quote or deal converts once)",
}


def _purchase(
    ctx: Context,
    key: str,
    prefix: str,
    contact_id: str,
    specs: Sequence[Any],
    currency: str,
    on: date,
    method: tuple[str, str] | None,
    *,
    deals: tuple[str, ...] = (),
    quote_id: str | None = None,
    company_id: str | None = None,
    save_method: bool = True,
    source: str = "checkout",
    properties: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One invoice for everything due now — charged with ``method``, or left open with
    the account's payment terms — and the grouped subscriptions, stored at once."""
    import hashlib

    from abonnement.engine.billing_run import charge_once
    from abonnement.engine.collection import Attempt
    from abonnement.engine.invoicing import InvoiceDraft, document_settings
    from abonnement.engine.items import group_items, resolve_item
    from abonnement.engine.outcomes import NOTHING_OWED, settlement
    from abonnement.engine.purchase import price_due_now
    from abonnement.engine.subscriptions import Subscription, due_date

    catalog, settings = ctx.catalog, ctx.catalog.settings
    contact = catalog.contacts.get(contact_id)
    if contact is None:
        raise NotFound("contact", contact_id)
    token, kind = method if method else (None, None)
    terms = "due_on_receipt" if method else settings.invoices.payment_terms
    items = [resolve_item(spec, catalog, currency) for spec in specs]
    one_time, groups = group_items(items, on)
    now_items = list(one_time)
    owners: list[str | None] = [None] * len(one_time)
    subs = []
    ACTIVE, SCHEDULED = SubscriptionStatus.ACTIVE, SubscriptionStatus.SCHEDULED
    for k, group in enumerate(groups, start=1):
        started = group.start_date <= on
        sub = Subscription(
            id=f"{prefix}-{k}", contact_id=contact_id,
            currency=currency, frequency=group.frequency, anchor=group.start_date,
            items=group.items, status=ACTIVE if started else SCHEDULED,
            payments=group.terms.payments, next_index=1 if started else 0,
            company_id=company_id or contact.company,
            collection_mode="automatic" if method else "manual",
            payment_token=token if save_method else None, payment_type=kind,
            payment_terms=terms, deals=deals, quote_id=quote_id, created_on=on,
            open_due_on=due_date(on, terms) if started and not method else None,
            properties=dict(properties or {}),
        )  # fmt: skip
        _check_term(sub)
        subs.append(sub)
        if started:
            now_items.extend(group.items)
            owners.extend([sub.id] * len(group.items))
    _refuse_repeat(ctx, key, subs)
    by_id = {sub.id: sub for sub in subs}
    priced = price_due_now(
        now_items, [by_id.get(o or "") for o in owners], contact_id, on, ctx.rules.pricing,
        catalog, currency=currency, due_date=due_date(on, terms),
        company_id=company_id or contact.company, method=kind or "manual",
        taxes=ctx.automatic_tax(),
    )  # fmt: skip
    attempt = result = None
    nothing_owed = settlement(priced.total, automatic=False, minimum=None) == NOTHING_OWED
    if nothing_owed:  # paid at issue, charged nothing: no invoice waits for a payment
        subs = [replace(s, open_due_on=None) for s in subs]
    elif method:
        minimum = settings.minimum_charge_for(currency)
        if priced.total < minimum:
            raise BelowMinimumCharge(f"a purchase must charge at least {minimum} now")
        # The key repeats only for the same purchase with the same method, so a rerun after
        # a crash finds the charge it made, while another card after a decline is a new try.
        card_digest = hashlib.sha256(token.encode()).hexdigest()[:12]
        sent_as = f"{ctx.storage.instance_id()}/{key}/{card_digest}/attempt-1"
        attempt = Attempt("", None, 1, priced.total, token, kind, on, stored_key=sent_as)
        result = charge_once(ctx.processor, attempt)
        if result is None or result.status == PaymentStatus.FAILED:
            code = result.failure_code if result else "timeout"
            raise PaymentDeclined(f"the payment was declined ({code}); nothing was bought", code)
    draft = InvoiceDraft(
        None, contact_id, currency, on, due_date(on, terms), None, None, priced,
        line_subscriptions=tuple(owners), document=document_settings(settings, None, contact),
    )  # fmt: skip
    bases = [ctx.recurring.basis(s, on) for s in subs]
    number = ctx.storage.record_checkout(ctx.scheduled(subs), draft, attempt, result, on,
                                          settings.invoices.number_format, source,
                                          bases=bases, total=priced.total, key=key)  # fmt: skip
    if number is None:  # a concurrent call recorded the same purchase first
        _refuse_repeat(ctx, key, subs)
    return {"invoice": number, "subscriptions": [s.id for s in subs],
            "payment": result.status if result else (NOTHING_OWED if nothing_owed else None),
            "total": priced.total.format_amount(), "currency": currency}  # fmt: skip


def _check_term(sub: Any) -> None:
    """``InvalidInput`` for a fixed term beyond ``engine.bounds``, before anything is written."""
    from abonnement.engine.bounds import term_problem

    problem = term_problem(sub)
    if problem:
        raise InvalidInput(f"`{sub.id}`: {problem}")


def _address(address: Address) -> dict[str, str]:
    """An address as stored in a property: its fields that are set."""
    return {k: v for k, v in asdict(address).items() if v is not None}
