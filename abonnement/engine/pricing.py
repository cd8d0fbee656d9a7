"""Pricing one invoice, in the spec's order, explaining every amount.

1. line amount: unit price × quantity by the product's pricing model (flat, volume,
   graduated, stairstep), rounded;
2. the line's unit discount %, then discount rules in file order — each percentage applies to
   what remains; invoice-scope amounts are allocated to lines pro rata; never below zero;
3. fees: a percentage of the lines after discounts (before any fee) plus a fixed part;
4. taxes per line on the discounted amount (plus taxable fees): the line's own rate, a tax
   provider's rates (given as values), then tax rules; inclusive prices have the tax taken
   out instead of added: the net is the amount ÷ (1 + the sum of every rate that applies to
   the line, invoice-scope tax rules included), each tax is its rate × that net, rounded, and
   the net (amount − those rounded taxes) takes the rounding residue, so the buyer pays the
   price they saw;
5. each adjustment is rounded to the currency's minor unit on its own, per line, and every
   total is the sum of those rounded parts.

Prorated lines (``LineInput.prorated``: the unused or remaining time of a period settled on
the next invoice) come already discounted, their line fees included (``edits.prorated``):
discount rules and line fees pass them by; taxes and invoice fees treat them as any line.

Pure: values in, values out. Rules come in as ``PricingRule``s (``rules.ruleset``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from abonnement.engine.catalog import PricingModel, Product, TaxRate, Tier
from abonnement.engine.context import line_context
from abonnement.engine.money import ROUNDING_MODES, Money, MoneyError, Percent, allocate, minor_unit

__all__ = [
    "Adjustment",
    "LineInput",
    "PricedInvoice",
    "PricedLine",
    "line_amount",
    "price_invoice",
    "tiered_amount",
]

ROUNDING = ROUNDING_MODES


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
    base: Money | None = None  # a tax's taxable amount (the invoice's tax summary sums these)


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
    prorated: bool = False  # a proration line: its discounts and line fees are in its amount


@dataclass(frozen=True)
class PricedLine:
    """A priced line: its amount before adjustments (rounded), its own adjustments and
    ``discounted``, its amount after every discount, its share of invoice-scope discounts
    included (None when built elsewhere than ``price_invoice``)."""

    line: LineInput
    amount: Money
    discounts: tuple[Adjustment, ...]
    fees: tuple[Adjustment, ...]
    taxes: tuple[Adjustment, ...]
    discounted: Money | None = None

    @property
    def adjustments(self) -> tuple[Adjustment, ...]:
        return (*self.discounts, *self.fees, *self.taxes)


@dataclass(frozen=True)
class PricedInvoice:
    """Priced lines, invoice-scope adjustments, and totals that are sums of rounded parts."""

    currency: str
    lines: tuple[PricedLine, ...]
    adjustments: tuple[Adjustment, ...]  # invoice scope: discounts, fees, taxes
    subtotal: Money
    discount_total: Money
    fee_total: Money
    tax_total: Money
    total: Money

    @classmethod
    def of(
        cls, currency: str, lines: tuple[PricedLine, ...], adjustments: tuple[Adjustment, ...]
    ) -> PricedInvoice:
        zero = Decimal(0)
        sums = {"discount": zero, "fee": zero, "tax": zero}
        exclusive_tax = zero
        subtotal = zero
        for line in lines:
            subtotal += line.amount.amount
        for adj in (*(a for line in lines for a in line.adjustments), *adjustments):
            sums[adj.kind] += adj.amount.amount
            if adj.kind == "tax" and not adj.inclusive:
                exclusive_tax += adj.amount.amount
        total = subtotal - sums["discount"] + sums["fee"] + exclusive_tax
        return cls(currency, lines, adjustments, Money(subtotal, currency),
                   Money(sums["discount"], currency), Money(sums["fee"], currency),
                   Money(sums["tax"], currency), Money(total, currency))  # fmt: skip

    def by_rule(self, kind: str) -> dict[str, Money]:
        """Each rule's total of ``kind`` adjustments, lines and invoice together."""
        out: dict[str, Money] = {}
        for adj in (*(a for line in self.lines for a in line.adjustments), *self.adjustments):
            if adj.kind == kind:
                out[adj.rule] = out.get(adj.rule, Money.zero(self.currency)) + adj.amount
        return out


class _Line:
    """Working state of one line while the invoice is priced (plain Decimals: this is hot)."""

    __slots__ = ("amount", "ctx", "discounts", "fees", "line", "remaining", "taxable_extra",
                 "taxes")  # fmt: skip

    def __init__(self, line: LineInput, ctx: Mapping[str, Any], amount: Decimal):
        self.line = line
        self.amount = amount
        self.remaining = amount
        self.discounts: list[Adjustment] = []
        self.fees: list[Adjustment] = []
        self.taxes: list[Adjustment] = []
        self.taxable_extra = _ZERO  # taxable fees on this line
        self.ctx = line_context(ctx, line.fields, line.context,
                                Money(amount, line.amount.currency), line.unit_price,
                                line.quantity)  # fmt: skip


_ZERO = Decimal(0)


def _applies(rule: Any, payments_made: int) -> bool:
    if rule.once:
        return payments_made == 0
    if rule.for_payments is not None:
        return payments_made < rule.for_payments
    return True


def _split(total: Decimal, weights: list[Decimal], currency: str) -> list[Decimal]:
    return [m.amount for m in allocate(Money(total, currency), weights)]


def price_invoice(
    lines: Sequence[LineInput],
    ctx: Mapping[str, Any],
    rules: Sequence[Any] = (),
    *,
    currency: str,
    payments_made: int = 0,
    rounding: str = "half_up",
    line_taxes: Sequence[Sequence[TaxRate]] | None = None,
) -> PricedInvoice:
    """Price ``lines`` in ``currency`` for the invoice context ``ctx`` (customer, payment…).

    ``line_taxes``: for each line, in order, the rates a tax provider found for it (automatic
    tax by the buyer's location); taxed like the line's own rate, before the tax rules."""
    mode = ROUNDING.get(rounding, rounding)
    quantum = Decimal(1).scaleb(-minor_unit(currency))

    def rnd(value: Decimal) -> Decimal:
        return value.quantize(quantum, rounding=mode)

    def money(value: Decimal) -> Money:
        return Money(value, currency)

    work = [_Line(line, ctx, rnd(line.amount.amount)) for line in lines]
    invoice_adjustments: list[Adjustment] = []

    # 2. unit discounts, then discount rules in file order; a proration line is already
    # discounted, and a credit (below zero) is never discounted further
    for w in work:
        percent = w.line.unit_discount
        if percent and w.remaining > 0 and not w.line.prorated:
            cut = min(rnd(w.remaining * percent.value / 100), w.remaining)
            w.discounts.append(Adjustment("discount", "unit_discount", "Unit discount",
                                          money(cut), percent))  # fmt: skip
            w.remaining -= cut
    regular = [w for w in work if not w.line.prorated]
    for rule in rules:
        if rule.kind != "discount":
            continue
        if rule.scope == "line":
            for w in regular:
                made = w.line.payments_made if w.line.payments_made is not None else payments_made
                if not (w.remaining > 0 and _applies(rule, made) and rule.when(w.ctx)):
                    continue
                value = rule.value(w.ctx)
                cut = _discount(value, w.remaining, currency, rnd)
                if cut:
                    w.discounts.append(Adjustment("discount", rule.name, rule.label, money(cut),
                                                  _rate(value)))  # fmt: skip
                    w.remaining -= cut
            continue
        shares = [max(w.remaining, _ZERO) for w in regular]
        remaining = sum(shares, _ZERO)
        if not (remaining and _applies(rule, payments_made) and rule.when(ctx)):
            continue
        value = rule.value(ctx)
        cut = _discount(value, remaining, currency, rnd)
        if not cut:
            continue
        invoice_adjustments.append(Adjustment("discount", rule.name, rule.label, money(cut),
                                              _rate(value)))  # fmt: skip
        for w, part in zip(regular, _split(cut, shares, currency), strict=True):
            w.remaining -= part  # allocated back, so taxes see the discount

    # 3. fees on the lines after discounts, before any fee
    after_discounts = [w.remaining for w in work]
    for rule in rules:
        if rule.kind != "fee":
            continue
        if rule.scope == "line":
            for w, base in zip(work, after_discounts, strict=True):
                if w.line.prorated or not rule.when(w.ctx):
                    continue
                fee = _fee(rule.value(w.ctx), base, currency, rnd)
                if fee:
                    w.fees.append(Adjustment("fee", rule.name, rule.label, money(fee)))
                    if rule.taxable:
                        w.taxable_extra += fee
            continue
        if not rule.when(ctx):
            continue
        fee = _fee(rule.value(ctx), sum(after_discounts, _ZERO), currency, rnd)
        if not fee:
            continue
        invoice_adjustments.append(Adjustment("fee", rule.name, rule.label, money(fee)))
        if rule.taxable and work:
            # taxed where it was earned: a credit line earns none of it
            weights = [max(base, _ZERO) for base in after_discounts]
            for w, part in zip(work, _split(fee, weights, currency), strict=True):
                w.taxable_extra += part

    # 4. taxes per line on the discounted amount (plus its taxable fees)
    taxes = [r for r in rules if r.kind == "tax"]
    invoice_rates: list[tuple[Any, Percent]] = []
    for rule in taxes:
        if rule.scope == "invoice" and rule.when(ctx):
            rate = rule.value(ctx)
            if isinstance(rate, Percent):
                invoice_rates.append((rule, rate))
    exclusive_base = inclusive_net = _ZERO  # what invoice-scope taxes are computed on
    has_exclusive = has_inclusive = False
    for i, w in enumerate(work):
        base = w.remaining + w.taxable_extra
        found: list[tuple[str, str, Percent]] = []
        own = w.line.tax_rate
        if own is not None and own.active:
            found.append((own.id, own.label, own.rate))
        for rate in line_taxes[i] if line_taxes is not None else ():
            found.append((rate.id, rate.label, rate.rate))
        for rule in taxes:
            if rule.scope == "line" and rule.when(w.ctx):
                rate = rule.value(w.ctx)
                if isinstance(rate, Percent):
                    found.append((rule.name, rule.label, rate))
        inclusive = w.line.tax_inclusive
        gross = base
        if inclusive:
            # The amount holds every tax of the line: take them out together, at their sum.
            combined = sum((r.value for *_, r in found), _ZERO)
            combined += sum((r.value for _, r in invoice_rates), _ZERO)
            base = base * 100 / (100 + combined)
            inclusive_net += base
            has_inclusive = True
        else:
            exclusive_base += base
            has_exclusive = True
        amounts = [rnd(base * rate.value / 100) for *_, rate in found]
        # the taxable amount printed beside each tax: an inclusive line's net takes the
        # rounding residue (price − its rounded taxes), as the buyer paid the price they saw
        net = gross - sum(amounts, _ZERO) if inclusive and not invoice_rates else rnd(base)
        for (name, label, rate), amount in zip(found, amounts, strict=True):
            w.taxes.append(Adjustment("tax", name, label, money(amount), rate, inclusive,
                                      money(net)))  # fmt: skip
    for rule, rate in invoice_rates:
        # One adjustment for the lines taxed on top, one for those whose price includes it.
        if has_exclusive or not has_inclusive:
            amount = rnd(exclusive_base * rate.value / 100)
            invoice_adjustments.append(Adjustment("tax", rule.name, rule.label, money(amount),
                                                  rate, False, money(exclusive_base)))  # fmt: skip
        if has_inclusive:
            amount = rnd(inclusive_net * rate.value / 100)
            net = money(rnd(inclusive_net))
            invoice_adjustments.append(Adjustment("tax", rule.name, rule.label, money(amount),
                                                  rate, True, net))  # fmt: skip

    priced = tuple(
        PricedLine(
            w.line,
            money(w.amount),
            tuple(w.discounts),
            tuple(w.fees),
            tuple(w.taxes),
            discounted=money(w.remaining),
        )
        for w in work
    )
    return PricedInvoice.of(currency, priced, tuple(invoice_adjustments))


def _rate(value: Any) -> Percent | None:
    return value if isinstance(value, Percent) else None


def _discount(value: Any, remaining: Decimal, currency: str, rnd: Any) -> Decimal | None:
    if isinstance(value, Percent):
        return min(rnd(remaining * value.value / 100), remaining)
    if isinstance(value, Money) and value.currency == currency:
        return min(rnd(value.amount), remaining)
    return None  # none, or money in another currency: the rule does not apply


def _fee(value: Any, base: Decimal, currency: str, rnd: Any) -> Decimal | None:
    percent = getattr(value, "percent", value if isinstance(value, Percent) else None)
    fixed = getattr(value, "fixed", value if isinstance(value, Money) else None)
    if fixed is not None and fixed.currency != currency:
        return None
    fee = rnd(base * percent.value / 100) if percent is not None else _ZERO
    return fee + rnd(fixed.amount) if fixed is not None else fee
