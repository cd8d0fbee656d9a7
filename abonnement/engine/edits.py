"""Editing a live subscription (F20): its items, payment method, contact and properties.

Only ``active`` and ``scheduled`` subscriptions are edited, never within the account's freeze
window before the next payment (the invoice is being prepared), never one whose invoice
creation is off (a record kept elsewhere). Changes apply from the next cycle: the period
already invoiced stays as it was. Every edit is one ``subscription.changed`` event that
records the new definition (for analytics) and what changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from abonnement.engine.catalog import CustomProperty, Settings
from abonnement.engine.events import numbered
from abonnement.engine.items import Item
from abonnement.engine.money import ROUNDING_MODES, Money, Percent
from abonnement.engine.status import SubscriptionStatus
from abonnement.engine.subscriptions import Step, Subscription, mrr_basis
from abonnement.errors import InvalidInput, InvalidState, MoneyError

__all__ = ["ItemOp", "LinePrices", "apply_item_ops", "edit", "prorated"]

EDITABLE = (SubscriptionStatus.ACTIVE, SubscriptionStatus.SCHEDULED)


@dataclass(frozen=True, slots=True)
class ItemOp:
    """One change to the item list. ``position`` is 1-based, as users count lines.

    ``add`` (``item``), ``quantity``/``price``/``discount`` (``value``), ``clone``, ``delete``,
    ``move`` (``value``: the new position)."""

    kind: str
    position: int = 0
    value: Any = None
    item: Item | None = None


def apply_item_ops(items: Sequence[Item], ops: Sequence[ItemOp], currency: str) -> tuple[Item, ...]:
    """``items`` after ``ops``, in order; raises ``InvalidInput`` naming the bad one."""
    out = list(items)

    def at(op: ItemOp) -> int:
        if not 1 <= op.position <= len(out):
            raise InvalidInput(
                f"--{op.kind}: there is no line {op.position} (the subscription has "
                f"{len(out)} line{'s' if len(out) != 1 else ''})"
            )
        return op.position - 1

    for op in ops:
        if op.kind == "add":
            assert op.item is not None
            out.append(op.item)
        elif op.kind == "quantity":
            if not isinstance(op.value, int) or op.value < 1:
                raise InvalidInput(f"--quantity: a whole number ≥ 1, not {op.value}")
            out[at(op)] = replace(out[at(op)], quantity=op.value)
        elif op.kind == "price":
            try:
                price = Money.parse(op.value) if isinstance(op.value, str) else op.value
            except MoneyError as exc:
                raise InvalidInput(f"--price: {exc}") from None
            if price.currency != currency:
                raise InvalidInput(f"--price: the subscription bills in {currency}")
            if price.amount < 0:
                raise InvalidInput("--price: a unit price is not negative; for a credit, "
                                   "use a discount")  # fmt: skip
            out[at(op)] = replace(out[at(op)], unit_price=price)
        elif op.kind == "discount":
            discount = Percent.parse(op.value)
            if not 0 <= discount.value <= 100:
                raise InvalidInput(f"--discount: between 0% and 100%, not {op.value}")
            out[at(op)] = replace(out[at(op)], unit_discount=discount)
        elif op.kind == "clone":
            out.insert(at(op) + 1, out[at(op)])
        elif op.kind == "delete":
            del out[at(op)]
        elif op.kind == "move":
            moved = out.pop(at(op))
            out.insert(max(0, min(int(op.value) - 1, len(out))), moved)
        else:
            raise InvalidInput(f"unknown item change `{op.kind}`")
    if not out:
        raise InvalidInput("a subscription keeps at least one line; cancel it instead")
    return tuple(out)


def edit(
    sub: Subscription,
    on: date,
    settings: Settings,
    *,
    ops: Sequence[ItemOp] = (),
    payment: tuple[str, str, str] | None = None,  # (method id, token, type)
    contact_id: str | None = None,
    properties: Mapping[str, Any] | None = None,
    check_property: Callable[[CustomProperty, Any], str | None] | None = None,
    prorate: bool = False,
    next_payment_date: date | None = None,
    recurring: Any = None,
    line_prices: LinePrices | None = None,
) -> Step:
    """``sub`` edited on ``on``, with the event that records it (its new definition for
    analytics, with the recurring discounts of ``recurring``, a ``RecurringPricing``).
    ``prorate``: see ``prorated``, which ``line_prices`` (the account's pricing) serves."""
    if not sub.invoice_creation:
        raise InvalidState(
            f"invoice creation is off for `{sub.id}`: it is a record only, billed elsewhere"
        )
    if sub.status not in EDITABLE:
        raise InvalidState(f"subscription `{sub.id}` is {sub.status}; only active or "
                           "scheduled subscriptions are edited")  # fmt: skip
    upcoming = sub.next_payment_date
    freeze = settings.edit_freeze_days
    if upcoming is not None and 0 <= (upcoming - on).days < freeze:
        raise InvalidState(
            f"the next payment of `{sub.id}` is on {upcoming}: no edits within {freeze} days "
            "of a payment (settings.subscriptions.edit_freeze_days)"
        )
    changed: list[str] = []
    new = sub
    if ops:
        items = apply_item_ops(sub.items, ops, sub.currency)
        frequencies = {item.frequency for item in items}
        if frequencies != {sub.frequency}:
            raise InvalidInput(f"every line of `{sub.id}` bills {sub.frequency.name}; "
                               "start another subscription for another frequency")  # fmt: skip
        new = replace(new, items=items)
        changed.append("items")
        if prorate:
            if not settings.proration:
                raise InvalidInput("proration is off (settings.subscriptions.proration)")
            settled = prorated(sub, items, on, rounding=settings.rounding,
                               line_prices=line_prices)  # fmt: skip
            new = replace(new, pending=new.pending + settled)
    if next_payment_date is not None:
        if next_payment_date <= on:
            raise InvalidInput(f"the next payment date must be after {on}")
        if new.next_index == 0:  # not started: the start moves
            new = replace(new, anchor=next_payment_date)
        else:  # payments so far stay where they were; the next and later ones follow the date
            new = replace(new, rebase_on=next_payment_date, rebase_index=new.next_index)
        changed.append("next_payment_date")
    if payment is not None:
        method_id, token, kind = payment
        new = replace(new, payment_method_id=method_id, payment_token=token, payment_type=kind,
                      collection_mode="automatic")  # fmt: skip
        changed.append("payment_method")
    if contact_id is not None:
        new = replace(new, contact_id=contact_id)
        changed.append("contact")
    if properties:
        by_name = {p.name: p for p in settings.custom_properties}
        merged = dict(sub.properties)
        for name, value in properties.items():
            prop = by_name.get(name)
            if prop is None:
                raise InvalidInput(f"unknown custom property `{name}`")
            if not prop.user_can_override:
                raise InvalidInput(f"property `{name}` cannot be overridden")
            problem = check_property(prop, value) if check_property else None
            if problem:
                raise InvalidInput(problem)
            merged[name] = value
        new = replace(new, properties=merged)
        changed.append("properties")
    if not changed:
        raise InvalidInput("nothing to change: give an item change, --next-payment-date, "
                           "--payment-method, --contact or --property")  # fmt: skip
    if prorate and not ops:
        raise InvalidInput("--prorate goes with a change of lines")
    events = numbered(sub.id, on, sub.event_seq,
                      ("subscription.changed", {**mrr_basis(new, recurring, on),
                                                "changed": changed}))  # fmt: skip
    return Step(replace(new, event_seq=events[-1].seq), (), events)


# (a subscription, the index of one of its periods) → what each of its items, in order, costs
# in that period after every discount that applies to it, its line fees included, before tax
LinePrices = Callable[[Subscription, int], Sequence[Money]]


def prorated(
    sub: Subscription,
    items: Sequence[Item],
    on: date,
    *,
    rounding: str = "half_up",
    line_prices: LinePrices | None = None,
) -> tuple[Item, ...]:
    """Dated lines for the next invoice that settle the rest of the period already invoiced:
    a credit for each line taken away, a charge for each line added (lines on both sides are
    left alone), each for the days from ``on`` to the period's end (F20). Nothing when no
    period is running.

    Each is ``share × price``, rounded once by ``rounding`` (``settings.rounding``), where
    ``share`` = days left ÷ days in the period and ``price`` is what the line costs in the
    running period after its discounts (unit and rules, by their durations), its line fees
    included, before tax: ``line_prices`` of ``sub`` for a line taken away (what was paid
    for it), of ``sub`` with ``items`` for a line added. Without ``line_prices``, the line's
    amount after its unit discount. The lines keep the item's tax rate and whether its price
    includes tax, so the next invoice taxes them as the period was taxed; they are marked
    ``prorated`` there, so no discount or line fee is applied to them again."""
    if sub.next_index == 0 or sub.status != SubscriptionStatus.ACTIVE:
        return ()
    index = sub.next_index - 1
    start, end = sub.date_of(index), sub.date_of(sub.next_index)
    if not start <= on < end:
        return ()
    mode = ROUNDING_MODES.get(rounding, rounding)
    share = Decimal((end - on).days) / Decimal((end - start).days)
    span = f"{on.isoformat()} – {(end - timedelta(days=1)).isoformat()}"
    left = list(range(len(sub.items)))  # positions of the old lines not found among the new
    added: list[int] = []
    for position, item in enumerate(items):
        same = next((i for i in left if sub.items[i] == item), None)
        if same is None:
            added.append(position)
        else:
            left.remove(same)
    if not left and not added:
        return ()
    prices = line_prices or _after_unit_discount(mode)
    old_prices = prices(sub, index) if left else ()
    new_prices = prices(replace(sub, items=tuple(items), pending=()), index) if added else ()

    def line(item: Item, price: Money, sign: int, label: str) -> Item:
        amount = Money(price.amount * share * sign, sub.currency).rounded(mode)
        return Item(f"{label}: {item.name} ({span})", 1, amount, sku=item.sku,
                    tax_rate=item.tax_rate, taxable=item.taxable,
                    tax_inclusive=item.tax_inclusive, category=item.category)  # fmt: skip

    return tuple([line(sub.items[i], old_prices[i], -1, "Unused time") for i in left]
                 + [line(items[i], new_prices[i], 1, "Remaining time") for i in added])  # fmt: skip


def _after_unit_discount(mode: str) -> LinePrices:
    """Each line's amount after its unit discount, each step rounded by ``mode``."""

    def prices(sub: Subscription, index: int) -> list[Money]:
        out = []
        for item in sub.items:
            amount = item.amount().rounded(mode)
            if item.unit_discount:
                amount = amount - item.unit_discount.of(amount).rounded(mode)
            out.append(amount)
        return out

    return prices
