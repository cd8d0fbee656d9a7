"""The lifecycle of one subscription: create, edit, pause, resume, cancel, delete (F20-F22).
Each operation decides through the engine, stores the outcome, then delivers what the change
set off (change notices, triggers) and returns the subscription as it is after that."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING, Any

from abonnement.engine.status import SubscriptionStatus
from abonnement.errors import AlreadyExists, InvalidInput, InvalidState, NotFound
from abonnement.operations.context import Context
from abonnement.operations.delivery import deliver_due

if TYPE_CHECKING:
    from abonnement.engine.catalog import Catalog, DeclaredSubscription, ItemSpec
    from abonnement.engine.edits import ItemOp
    from abonnement.engine.subscriptions import Subscription

__all__ = ["cancel", "create", "delete", "edit", "pause", "resume"]


def create(ctx: Context, decl: DeclaredSubscription, on: date) -> Subscription:
    """``subscriptions create``: a subscription from scratch (F22), checked like a declared
    one, created on ``on``, then what that set off delivered. Returns it as stored after
    delivery. Raises ``NotFound`` for unknown references, ``InvalidInput`` for what the
    config loader would refuse, ``AlreadyExists`` for a taken id."""
    from abonnement.engine.events import numbered
    from abonnement.engine.purchase import from_declared
    from abonnement.engine.subscriptions import mrr_basis

    settings = ctx.catalog.settings
    if not decl.invoice_creation and not settings.allow_invoice_creation_off:
        raise InvalidInput("settings.subscriptions.allow_invoice_creation_off is false")
    _check_new(decl, ctx.catalog)
    defaults = {p.name: p.default for p in settings.custom_properties
                if p.default is not None}  # fmt: skip
    decl = replace(decl, properties={**defaults, **decl.properties})
    if ctx.storage.subscription(decl.id) is not None:
        raise AlreadyExists(f"subscription `{decl.id}` exists already")
    if decl.id in ctx.catalog.subscriptions:  # the config's, even before its first apply
        where = ctx.catalog.declared_at.get(decl.id, "the config")
        raise AlreadyExists(f"subscription `{decl.id}` is declared in {where}; "
                            "`abonnement apply` creates it, or choose another id")  # fmt: skip
    sub = replace(from_declared(decl, ctx.catalog, on), event_seq=1)
    _check_bounds(sub)
    created = numbered(sub.id, on, 0, ("subscription.created", mrr_basis(sub, ctx.recurring, on)))
    ctx.storage.insert_subscriptions(ctx.scheduled([sub]), "created", created)
    return _delivered(ctx, sub, on)


def edit(
    ctx: Context,
    sub_id: str,
    on: date,
    *,
    add: Sequence[ItemSpec] = (),
    ops: Sequence[ItemOp] = (),
    payment_method_id: str | None = None,
    contact_id: str | None = None,
    properties: Mapping[str, Any] | None = None,
    next_payment_date: date | None = None,
    prorate: bool = False,
) -> Subscription:
    """``subscriptions edit`` (F20): lines (``add`` first, then ``ops`` in order), payment
    method, contact, properties or the next payment date, from the next cycle; then what the
    change set off delivered. See ``engine.edits.edit`` for the rules (freeze window,
    statuses, proration). A declared subscription's definition belongs to the config: only
    its state (a later payment date, properties the config does not write) is edited here.
    Raises ``NotFound``, ``InvalidState`` or ``InvalidInput``."""
    from abonnement.config.settings import property_value_problem
    from abonnement.engine.edits import ItemOp
    from abonnement.engine.edits import edit as edit_items
    from abonnement.engine.items import resolve_item

    catalog = ctx.catalog
    current = ctx.storage.subscription(sub_id)
    if current is None:
        raise NotFound("subscription", sub_id)
    decl = catalog.subscriptions.get(sub_id)
    if decl is not None and (
        add or ops or prorate or payment_method_id is not None or contact_id is not None
        or any(name in decl.properties for name in properties or {})
        or (next_payment_date is not None and current.next_index == 0)  # its declared start
    ):  # fmt: skip
        from abonnement.operations.declared import ownership_error

        raise ownership_error(ctx, sub_id)
    for spec in add:
        if spec.product not in catalog.products:
            raise NotFound("product", spec.product)
    if contact_id is not None and contact_id not in catalog.contacts:
        raise NotFound("contact", contact_id)
    item_ops = [ItemOp("add", item=resolve_item(spec, catalog, current.currency)) for spec in add]
    item_ops += ops

    def change(sub: Subscription) -> Any:
        payment = None
        if payment_method_id is not None:
            owner = catalog.contacts.get(sub.billing_contact_id or sub.contact_id)
            saved = {m.id: m for m in owner.payment_methods} if owner else {}
            if payment_method_id not in saved:
                who = owner.id if owner else "?"
                hint = f"contact `{who}` has no such saved method"
                raise NotFound("payment method", payment_method_id, hint)
            method = saved[payment_method_id]
            payment = (payment_method_id, method.token, method.type)

        def problem(prop: Any, value: Any) -> str | None:
            found = property_value_problem(prop, value)
            return found[0] if found else None

        result = edit_items(sub, on, catalog.settings, ops=item_ops, payment=payment,
                            check_property=problem, contact_id=contact_id, prorate=prorate,
                            next_payment_date=next_payment_date, recurring=ctx.recurring,
                            line_prices=line_prices(ctx),
                            properties=dict(properties or {}))  # fmt: skip
        _check_bounds(result.subscription)  # raised inside the change: nothing is written
        return result

    return _delivered(ctx, ctx.storage.change(sub_id, change), on)


def _check_bounds(sub: Subscription) -> None:
    """``InvalidInput`` for a line beyond ``engine.bounds`` (quantity, unit price, amount)
    or a fixed term beyond them (checked before anything is written)."""
    from abonnement.engine.bounds import items_problem, term_problem

    problem = items_problem(sub.items) or term_problem(sub)
    if problem:
        raise InvalidInput(f"`{sub.id}` {problem}; see the bounds in docs/concepts.md")


def pause(ctx: Context, sub_id: str, on: date) -> Subscription:
    """``subscriptions pause``: nothing is billed while paused (F19); then delivery."""
    from abonnement.engine.subscriptions import pause as paused

    return _delivered(ctx, ctx.storage.change(sub_id, lambda sub: paused(sub, on)), on)


def resume(ctx: Context, sub_id: str, on: date) -> Subscription:
    """``subscriptions resume``: billing again from the first payment date on or after
    ``on``, no back-billing (F19); then delivery."""
    from abonnement.engine.subscriptions import resume as resumed

    return _delivered(ctx, ctx.storage.change(sub_id, lambda sub: resumed(sub, on)), on)


def cancel(ctx: Context, sub_id: str, on: date, *, at_period_end: bool = False) -> Subscription:
    """``subscriptions cancel``: now, or after the period already billed; then delivery."""
    from abonnement.engine.subscriptions import cancel as canceled

    change = lambda sub: canceled(sub, on, at_period_end=at_period_end)  # noqa: E731
    return _delivered(ctx, ctx.storage.change(sub_id, change), on)


def delete(ctx: Context, sub_id: str) -> None:
    """Only an expired or canceled subscription is deleted (F22); invoices stay. A declared
    one is not: the config would create it again (remove it from the config instead)."""
    sub = ctx.storage.subscription(sub_id)
    if sub is None:
        raise NotFound("subscription", sub_id)
    if sub_id in ctx.catalog.subscriptions:
        from abonnement.operations.declared import ownership_error

        raise ownership_error(ctx, sub_id)
    if sub.status not in (SubscriptionStatus.EXPIRED, SubscriptionStatus.CANCELED):
        raise InvalidState(f"subscription `{sub_id}` is {sub.status}; only an expired or "
                           "canceled subscription is deleted (cancel it first)")  # fmt: skip
    ctx.storage.delete_subscription(sub_id)


def _delivered(ctx: Context, sub: Subscription, on: date) -> Subscription:
    """Deliver what a change set off, then the subscription as it is now (a workflow may
    have set fields)."""
    deliver_due(ctx, on, [sub.id])
    return ctx.storage.subscription(sub.id) or sub


def _check_new(decl: Any, catalog: Catalog) -> None:
    """What the config loader checks of a declared subscription, for one made on the CLI."""
    import re

    from abonnement.config.settings import declared_property_problem

    # as the config's schema takes ids (common.schema.json): no path, no control character
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", decl.id, re.ASCII):
        raise InvalidInput(f"{decl.id[:40]!r} is not an id: 1 to 100 letters, digits, '-', '_' "
                           "or '.', starting with a letter or digit", field="id")  # fmt: skip
    for kind, ref, known in (("contact", decl.contact, catalog.contacts),
                             ("contact", decl.billing_contact, catalog.contacts),
                             ("company", decl.company, catalog.companies)):  # fmt: skip
        if ref is not None and ref not in known:
            raise NotFound(kind, ref)
    if decl.billing_address == "same_as_company" and not decl.company:
        raise InvalidInput("--billing-address same_as_company needs --company")
    if decl.currency not in catalog.settings.currencies:
        raise InvalidInput(f"{decl.currency} is not in settings.currencies")
    frequencies = set()
    for spec in decl.items:
        product = catalog.products.get(spec.product or "")
        if product is None:
            raise NotFound("product", spec.product)
        if not product.is_recurring:
            raise InvalidInput(f"`{product.id}` is sold once: a subscription bills "
                                  "recurring products (sell it with a quote or link)")  # fmt: skip
        if decl.currency not in product.currencies:
            raise InvalidInput(f"`{product.id}` has no price in {decl.currency}")
        frequencies.add(product.frequency)
    if len(frequencies) > 1:
        raise InvalidInput("the lines bill on different frequencies: one subscription per "
                              "frequency")  # fmt: skip
    terms = decl.collection.payment_terms
    # as the config's schema: at most 999 days
    if terms is not None and not re.fullmatch(r"due_on_receipt|net_[0-9]{1,3}", terms):
        raise InvalidInput(f"bad payment terms `{terms}`; due_on_receipt or net_DAYS (up to 999)")
    if decl.collection.mode == "automatic":
        billing = catalog.contacts.get(decl.billing_contact) if decl.billing_contact else None
        owners = [catalog.contacts.get(decl.contact), billing]
        saved = {m.id for who in owners if who for m in who.payment_methods}
        if decl.collection.payment_method not in saved:
            raise InvalidInput("automatic collection needs --payment-method, one the contact "
                                  f"saved ({', '.join(sorted(saved)) or 'none'})")  # fmt: skip
    for name, value in decl.properties.items():
        problem = declared_property_problem(catalog.settings, name, value)
        if problem:
            raise InvalidInput(f"{problem[0]}; {problem[1]}" if problem[1] else problem[0])


def line_prices(ctx: Context) -> Any:
    """What proration settles (``edits.LinePrices``): each line of a period priced by the
    account's pricing rules, as that period's invoice prices it."""
    from abonnement.engine.invoicing import period_line_prices

    return period_line_prices(ctx.catalog, ctx.rules.pricing, recurring=ctx.recurring)
