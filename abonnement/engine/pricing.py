"""Pricing one invoice, in the spec's order, explaining every amount.

1. line amount: unit price × quantity by the product's pricing model (flat, volume,
   graduated, stairstep), rounded;
2. the line's unit discount %, then discount rules in file order — each percentage applies to
   what remains; invoice-scope amounts are allocated to lines pro rata; never below zero;
3. fees: a percentage of the lines after discounts (before any fee) plus a fixed part;
4. taxes per line on the discounted amount (plus taxable fees); inclusive prices have the
   tax taken out instead of added;
5. each adjustment is rounded to the currency's minor unit on its own, per line, and every
   total is the sum of those rounded parts.

Pure: values in, values out. Rules come in as ``PricingRule``s (``rules.ruleset``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP
from typing import Any

from abonnement.engine.catalog import PricingModel, Product, TaxRate, Tier
from abonnement.engine.money import Money, MoneyError, Percent, allocate

__all__ = [
    "Adjustment",
    "LineInput",
    "PricedInvoice",
    "PricedLine",
    "line_amount",
    "price_invoice",
    "tiered_amount",
]

ROUNDING = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN}


def _tier_for(tiers: Sequence[Tier], quantity: int) -> Tier:
    return next((t for t in tiers if t.up_to is None or quantity <= t.up_to), tiers[-1])


def tiered_amount(
    model: PricingModel, tiers: Sequence[Tier], quantity: int, currency: str
) -> Money:
    """Volume: one unit price chosen by the total quantity; graduated: each tier prices the
    units inside it; stairstep: the flat price of the tier that holds the quantity."""
    if model is PricingModel.VOLUME:
        return _tier_for(tiers, quantity).unit_price * quantity  # type: ignore[operator]
    if model is PricingModel.STAIRSTEP:
        return _tier_for(tiers, quantity).price  # type: ignore[return-value]
    total, below = Money.zero(currency), 0
    for tier in tiers:
        top = quantity if tier.up_to is None else min(quantity, tier.up_to)
        if top > below:
            total = total + tier.unit_price * (top - below)  # type: ignore[operator]
        below = top
        if tier.up_to is None or quantity <= tier.up_to:
            break
    return total


def line_amount(product: Product, quantity: int, currency: str) -> Money:
    """Unit price × quantity by the product's pricing model (F2), unrounded."""
    if product.pricing is PricingModel.FLAT:
        if currency not in product.prices:
            raise MoneyError(f"product `{product.id}` has no {currency} price")
        return product.prices[currency] * quantity
    return tiered_amount(product.pricing, product.tiers, quantity, currency)


@dataclass(frozen=True, slots=True)
class Adjustment:
    """One amount added to or taken from a line or invoice, and the rule or setting behind it."""

    kind: str  # discount | fee | tax
    rule: str
    label: str
    amount: Money
    rate: Percent | None = None
    inclusive: bool = False


@dataclass(frozen=True)
class LineInput:
    """A line to price. ``fields`` is the ``line`` record rules see; ``context`` overrides
    roots of the invoice context for this line (a checkout line's own ``subscription``)."""

    description: str
    quantity: int
    unit_price: Money
    amount: Money  # before any adjustment; rounded here
    sku: str | None = None
    unit_discount: Percent | None = None
    tax_rate: TaxRate | None = None
    tax_inclusive: bool = False
    fields: Mapping[str, Any] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)
    payments_made: int | None = None  # of this line's subscription; None: the invoice's


@dataclass(frozen=True)
class PricedLine:
    line: LineInput
    amount: Money
    discounts: tuple[Adjustment, ...]
    fees: tuple[Adjustment, ...]
    taxes: tuple[Adjustment, ...]

    @property
    def net(self) -> Money:
        """The amount after discounts."""
        return self.amount - sum((d.amount for d in self.discounts), self.amount * 0)

    @property
    def total(self) -> Money:
        extra = [f.amount for f in self.fees] + [t.amount for t in self.taxes if not t.inclusive]
        return sum(extra, self.net)


@dataclass(frozen=True)
class PricedInvoice:
    currency: str
    lines: tuple[PricedLine, ...]
    adjustments: tuple[Adjustment, ...]  # invoice scope: discounts, fees, taxes

    def _sum(self, kind: str, *, exclusive_only: bool = False) -> Money:
        total = Money.zero(self.currency)
        for line in self.lines:
            for adj in (*line.discounts, *line.fees, *line.taxes):
                if adj.kind == kind and not (exclusive_only and adj.inclusive):
                    total = total + adj.amount
        for adj in self.adjustments:
            if adj.kind == kind and not (exclusive_only and adj.inclusive):
                total = total + adj.amount
        return total

    @property
    def subtotal(self) -> Money:
        return sum((line.amount for line in self.lines), Money.zero(self.currency))

    @property
    def discount_total(self) -> Money:
        return self._sum("discount")

    @property
    def fee_total(self) -> Money:
        return self._sum("fee")

    @property
    def tax_total(self) -> Money:
        return self._sum("tax")

    @property
    def total(self) -> Money:
        return (
            self.subtotal
            - self.discount_total
            + self.fee_total
            + self._sum("tax", exclusive_only=True)
        )

    def by_rule(self, kind: str) -> dict[str, Money]:
        """Each rule's total of ``kind`` adjustments, lines and invoice together."""
        out: dict[str, Money] = {}
        for adj in (
            *(a for line in self.lines for a in (*line.discounts, *line.fees, *line.taxes)),
            *self.adjustments,
        ):
            if adj.kind == kind:
                out[adj.rule] = out.get(adj.rule, Money.zero(self.currency)) + adj.amount
        return out


class _Line:
    """Working state of one line while the invoice is priced."""

    def __init__(self, line: LineInput, ctx: Mapping[str, Any], rounding: str):
        self.line = line
        self.amount = line.amount.rounded(rounding)
        self.remaining = self.amount
        self.discounts: list[Adjustment] = []
        self.fees: list[Adjustment] = []
        self.taxes: list[Adjustment] = []
        self.taxable_extra = Money.zero(self.amount.currency)  # taxable fees on this line
        record = {**line.fields, "amount": self.amount, "unit_price": line.unit_price,
                  "quantity": line.quantity}  # fmt: skip
        self.ctx = {**ctx, **line.context, "line": record, "product": record.get("product")}


def _applies(rule: Any, payments_made: int) -> bool:
    if rule.once:
        return payments_made == 0
    if rule.for_payments is not None:
        return payments_made < rule.for_payments
    return True


def price_invoice(
    lines: Sequence[LineInput],
    ctx: Mapping[str, Any],
    rules: Sequence[Any] = (),
    *,
    currency: str,
    payments_made: int = 0,
    rounding: str = "half_up",
) -> PricedInvoice:
    """Price ``lines`` in ``currency`` for the invoice context ``ctx`` (customer, payment…)."""
    mode = ROUNDING.get(rounding, rounding)
    work = [_Line(line, ctx, mode) for line in lines]
    invoice_adjustments: list[Adjustment] = []
    zero = Money.zero(currency)

    def rnd(money: Money) -> Money:
        return money.rounded(mode)

    # 2. unit discounts, then discount rules in file order
    for w in work:
        if w.line.unit_discount and w.remaining:
            cut = min(rnd(w.line.unit_discount.of(w.remaining)), w.remaining)
            w.discounts.append(Adjustment("discount", "unit_discount", "Unit discount", cut,
                                          w.line.unit_discount))  # fmt: skip
            w.remaining = w.remaining - cut
    for rule in (r for r in rules if r.kind == "discount"):
        if rule.scope == "line":
            for w in work:
                made = w.line.payments_made if w.line.payments_made is not None else payments_made
                if not (_applies(rule, made) and w.remaining and rule.when(w.ctx)):
                    continue
                cut = _discount(rule.value(w.ctx), w.remaining, rnd)
                if cut:
                    w.discounts.append(Adjustment("discount", rule.name, rule.label, cut,
                                                  _rate(rule.value(w.ctx))))  # fmt: skip
                    w.remaining = w.remaining - cut
            continue
        remaining = sum((w.remaining for w in work), zero)
        if not (_applies(rule, payments_made) and remaining and rule.when(ctx)):
            continue
        cut = _discount(rule.value(ctx), remaining, rnd)
        if not cut:
            continue
        invoice_adjustments.append(Adjustment("discount", rule.name, rule.label, cut))
        for w, part in zip(work, allocate(cut, [w.remaining.amount for w in work]), strict=True):
            w.remaining = w.remaining - part  # allocated back, so taxes see the discount

    # 3. fees on the lines after discounts, before any fee
    after_discounts = [w.remaining for w in work]
    for rule in (r for r in rules if r.kind == "fee"):
        if rule.scope == "line":
            for w, base in zip(work, after_discounts, strict=True):
                if not rule.when(w.ctx):
                    continue
                fee = _fee(rule.value(w.ctx), base, rnd)
                if fee:
                    w.fees.append(Adjustment("fee", rule.name, rule.label, fee))
                    if rule.taxable:
                        w.taxable_extra = w.taxable_extra + fee
            continue
        if not rule.when(ctx):
            continue
        fee = _fee(rule.value(ctx), sum(after_discounts, zero), rnd)
        if not fee:
            continue
        invoice_adjustments.append(Adjustment("fee", rule.name, rule.label, fee))
        if rule.taxable and work:
            weights = [a.amount for a in after_discounts]
            for w, part in zip(work, allocate(fee, weights), strict=True):
                w.taxable_extra = w.taxable_extra + part

    # 4. taxes per line on the discounted amount
    taxes = [r for r in rules if r.kind == "tax"]
    for w in work:
        base = w.remaining + w.taxable_extra
        inclusive = w.line.tax_inclusive
        own = w.line.tax_rate
        if own is not None and own.active:
            w.taxes.append(_tax(own.id, own.label, own.rate, base, inclusive, rnd))
        for rule in taxes:
            if rule.scope == "line" and rule.when(w.ctx):
                rate = rule.value(w.ctx)
                if isinstance(rate, Percent):
                    w.taxes.append(_tax(rule.name, rule.label, rate, base, inclusive, rnd))
    for rule in (r for r in taxes if r.scope == "invoice"):
        if rule.when(ctx) and isinstance(rate := rule.value(ctx), Percent):
            base = sum((w.remaining + w.taxable_extra for w in work), zero)
            invoice_adjustments.append(_tax(rule.name, rule.label, rate, base, False, rnd))

    priced = tuple(
        PricedLine(w.line, w.amount, tuple(w.discounts), tuple(w.fees), tuple(w.taxes))
        for w in work
    )
    return PricedInvoice(currency, priced, tuple(invoice_adjustments))


def _rate(value: Any) -> Percent | None:
    return value if isinstance(value, Percent) else None


def _discount(value: Any, remaining: Money, rnd: Any) -> Money | None:
    if isinstance(value, Percent):
        return min(rnd(value.of(remaining)), remaining)
    if isinstance(value, Money) and value.currency == remaining.currency:
        return min(rnd(value), remaining)
    return None  # none, or money in another currency: the rule does not apply


def _fee(value: Any, base: Money, rnd: Any) -> Money | None:
    percent = getattr(value, "percent", value if isinstance(value, Percent) else None)
    fixed = getattr(value, "fixed", value if isinstance(value, Money) else None)
    if fixed is not None and fixed.currency != base.currency:
        return None
    fee = rnd(percent.of(base)) if percent is not None else Money.zero(base.currency)
    return fee + rnd(fixed) if fixed is not None else fee


def _tax(
    rule: str, label: str, rate: Percent, base: Money, inclusive: bool, rnd: Any
) -> Adjustment:
    if inclusive:
        exact = Money(base.amount * rate.fraction / (1 + rate.fraction), base.currency)
    else:
        exact = rate.of(base)
    return Adjustment("tax", rule, label, rnd(exact), rate, inclusive)
