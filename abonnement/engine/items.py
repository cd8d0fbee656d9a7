"""Line items: copies of products (or custom items) with everything billing needs, and the
grouping rule that turns a purchase's items into subscriptions (F7)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from abonnement.engine.catalog import AUTO_RENEW, Catalog, ItemSpec, PricingModel, Terms, Tier
from abonnement.engine.money import Money, MoneyError, Percent
from abonnement.engine.pricing import tiered_amount
from abonnement.engine.schedule import AtPurchase, Frequency, Start, resolve_start

__all__ = ["Group", "Item", "group_items", "resolve_item"]


@dataclass(frozen=True, slots=True)
class Item:
    """A line item as sold: a copy, so later edits of the product never change it."""

    name: str
    quantity: int
    unit_price: Money
    sku: str | None = None
    product_id: str | None = None
    description: str | None = None
    unit_discount: Percent | None = None
    frequency: Frequency | None = None  # None: one-time
    terms: Terms = AUTO_RENEW
    start: Start = field(default_factory=AtPurchase)
    tax_rate: str | None = None
    taxable: bool = True
    tax_inclusive: bool = False
    category: str | None = None
    pricing: PricingModel = PricingModel.FLAT
    tiers: tuple[Tier, ...] = ()
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Items key the billing run's pricing memo: hash once, not on every lookup.
        fields = (self.name, self.quantity, self.unit_price, self.sku, self.product_id,
                  self.description, self.unit_discount, self.frequency, self.terms, self.start,
                  self.tax_rate, self.taxable, self.tax_inclusive, self.category, self.pricing,
                  self.tiers)  # fmt: skip
        object.__setattr__(self, "_hash", hash(fields))

    def __hash__(self) -> int:
        return self._hash

    @property
    def currency(self) -> str:
        return self.unit_price.currency

    @property
    def effective_unit_price(self) -> Money:
        """What one unit costs at this quantity: the tier price for tiered items."""
        if self.pricing is PricingModel.FLAT or not self.quantity:
            return self.unit_price
        each = (self.amount().amount / self.quantity).quantize(Decimal("0.000001"))
        return Money(each.normalize(), self.currency)

    def amount(self) -> Money:
        """Unit price × quantity by the pricing model (F2), unrounded."""
        if self.pricing is PricingModel.FLAT:
            return self.unit_price * self.quantity
        return tiered_amount(self.pricing, self.tiers, self.quantity, self.currency)


def resolve_item(
    spec: ItemSpec,
    catalog: Catalog,
    currency: str,
    *,
    terms: Terms | None = None,
    start: Start | None = None,
) -> Item:
    """The item ``spec`` describes, priced in ``currency`` (a copy of its product)."""
    product = catalog.products.get(spec.product) if spec.product else None
    frequency = spec.frequency or (product.frequency if product else None)
    if spec.unit_price is not None:
        unit_price = spec.unit_price
    elif product is not None and product.pricing is PricingModel.FLAT:
        if currency not in product.prices:
            raise MoneyError(f"product `{product.id}` has no {currency} price")
        unit_price = product.prices[currency]
    elif product is not None:  # tiered: the unit price shown is the first tier's
        first = product.tiers[0]
        unit_price = first.unit_price or first.price  # type: ignore[assignment]
    else:
        raise MoneyError("a custom item needs a unit price")
    tiers = product.tiers if product and spec.unit_price is None else ()
    pricing = product.pricing if tiers else PricingModel.FLAT
    return Item(
        name=spec.name or (product.name if product else "Item"),
        quantity=spec.quantity,
        unit_price=unit_price,
        sku=spec.sku or (product.sku if product else None),
        product_id=product.id if product else None,
        description=spec.description or (product.description if product else None),
        unit_discount=spec.unit_discount,
        frequency=frequency,
        terms=spec.terms or terms or AUTO_RENEW,
        start=spec.start or start or AtPurchase(),
        tax_rate=spec.tax_rate or (product.tax_rate if product else None),
        taxable=spec.taxable
        if spec.taxable is not None
        else (product.taxable if product else True),
        tax_inclusive=bool(product and product.tax_behavior == "inclusive"),
        category=spec.category or (product.category if product else None),
        pricing=pricing,
        tiers=tiers,
    )


@dataclass(frozen=True)
class Group:
    """Items that become one subscription: same currency, frequency, terms, start, payments."""

    currency: str
    frequency: Frequency
    start_date: date
    terms: Terms
    items: tuple[Item, ...]


def group_items(items: Sequence[Item], purchase: date) -> tuple[tuple[Item, ...], list[Group]]:
    """(one-time items, subscriptions) of a purchase on ``purchase`` (F7)."""
    one_time = tuple(i for i in items if i.frequency is None)
    groups: dict[tuple, list[Item]] = {}
    for item in items:
        if item.frequency is None:
            continue
        key = (item.currency, item.frequency, resolve_start(purchase, item.start), item.terms)
        groups.setdefault(key, []).append(item)
    return one_time, [
        Group(currency, freq, start, terms, tuple(group))
        for (currency, freq, start, terms), group in groups.items()
    ]
