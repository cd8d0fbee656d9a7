"""Pricing one invoice: the spec's order, rounding per adjustment, totals as sums of parts."""

from decimal import Decimal

import pytest

from abonnement.engine.catalog import PricingModel, Product, TaxRate, Tier
from abonnement.engine.money import Money, Percent, parse_money
from abonnement.engine.pricing import LineInput, line_amount, price_invoice
from abonnement.rules.ruleset import build_ruleset
from abonnement.rules.types import RuleEnv

M = parse_money
ENV = RuleEnv(currencies=("USD", "EUR", "JPY"))


def rules(text: str):
    ruleset, problems = build_ruleset([("t.rules", text)], ENV, {})
    assert not problems, [str(p) for p in problems]
    return ruleset.pricing


def line(price: str, quantity: int = 1, **kw) -> LineInput:
    unit = M(price)
    fields = {"sku": kw.pop("sku", "SKU"), "category": kw.pop("category", None)}
    return LineInput("item", quantity, unit, unit * quantity, fields=fields, **kw)


def tiered(model: PricingModel, *tiers: Tier) -> Product:
    return Product("p", "p", "P", pricing=model, tiers=tiers, frequency=None)


def test_unit_discount_rounds_half_up_per_line():
    # S3: 11.90 with 15% → discount 1.785 → 1.79 → pays 10.11
    priced = price_invoice([line("11.90 USD", unit_discount=Percent(Decimal(15)))], {},
                           currency="USD")  # fmt: skip
    (p,) = priced.lines
    assert p.amount == M("11.90 USD")
    assert [(d.rule, d.amount) for d in p.discounts] == [("unit_discount", M("1.79 USD"))]
    assert priced.total == M("10.11 USD")


@pytest.mark.parametrize(
    ("model", "tiers", "quantity", "expected"),
    [
        # S4: volume, storage × 6000 → 0.06 for every unit
        (PricingModel.VOLUME,
         (Tier(999, M("0.10 USD")), Tier(4999, M("0.08 USD")), Tier(None, M("0.06 USD"))),
         6000, "360.00 USD"),
        (PricingModel.VOLUME,
         (Tier(999, M("0.10 USD")), Tier(4999, M("0.08 USD")), Tier(None, M("0.06 USD"))),
         999, "99.90 USD"),
        # S4: graduated 99 @ 100, 100 @ 90, 51 @ 80
        (PricingModel.GRADUATED,
         (Tier(99, M("100.00 USD")), Tier(199, M("90.00 USD")), Tier(None, M("80.00 USD"))),
         250, "22980.00 USD"),
        (PricingModel.GRADUATED,
         (Tier(99, M("100.00 USD")), Tier(199, M("90.00 USD")), Tier(None, M("80.00 USD"))),
         50, "5000.00 USD"),
        # S4: stairstep: the tier holding the quantity has one price
        (PricingModel.STAIRSTEP,
         (Tier(10, price=M("50.00 USD")), Tier(50, price=M("200.00 USD")),
          Tier(None, price=M("500.00 USD"))),
         25, "200.00 USD"),
        (PricingModel.STAIRSTEP,
         (Tier(10, price=M("50.00 USD")), Tier(50, price=M("200.00 USD")),
          Tier(None, price=M("500.00 USD"))),
         51, "500.00 USD"),
    ],
)  # fmt: skip
def test_pricing_models(model, tiers, quantity, expected):
    assert line_amount(tiered(model, *tiers), quantity, "USD") == M(expected)


def test_discount_then_tax_on_the_discounted_amount():
    # S6: 3 × 25.00, bulk 10% → 7.50; 25% of 67.50 = 16.875 → 16.88; total 84.38
    pricing = rules(
        "discount bulk { amount 10% when line.quantity >= 3 }\n"
        'tax vat { rate 25% when customer.country == "DK" }'
    )
    priced = price_invoice([line("25.00 USD", 3)], {"customer": {"country": "DK"}}, pricing,
                           currency="USD")  # fmt: skip
    assert priced.by_rule("discount") == {"bulk": M("7.50 USD")}
    assert priced.by_rule("tax") == {"vat": M("16.88 USD")}
    assert (priced.subtotal, priced.total) == (M("75.00 USD"), M("84.38 USD"))


def test_each_percentage_applies_to_what_remains():
    pricing = rules("discount a { amount 10% }\ndiscount b { amount 10% }")
    priced = price_invoice([line("100.00 USD")], {}, pricing, currency="USD")
    assert priced.by_rule("discount") == {"a": M("10.00 USD"), "b": M("9.00 USD")}
    assert priced.total == M("81.00 USD")


def test_an_invoice_discount_is_allocated_pro_rata_and_taxed_per_line():
    pricing = rules(
        "discount welcome { amount 5.00 USD applies_to invoice once }\ntax vat { rate 25% }"
    )
    lines = [line("360.00 USD"), line("89.10 USD")]
    priced = price_invoice(lines, {}, pricing, currency="USD", payments_made=0)
    assert [a.amount for a in priced.adjustments] == [M("5.00 USD")]
    # 5.00 split 4.01 / 0.99; taxes on 355.99 and 88.11
    assert [t.amount for p in priced.lines for t in p.taxes] == [M("89.00 USD"), M("22.03 USD")]
    assert priced.total == M("444.10 USD") + M("111.03 USD")
    later = price_invoice(lines, {}, pricing, currency="USD", payments_made=1)
    assert later.adjustments == ()


def test_for_n_payments():
    pricing = rules("discount promo { amount 20% for 3 payments }")
    totals = [price_invoice([line("25.00 USD")], {}, pricing, currency="USD",
                            payments_made=n).total for n in range(5)]  # fmt: skip
    assert totals == [M("20.00 USD")] * 3 + [M("25.00 USD")] * 2


def test_discounts_never_go_below_zero():
    pricing = rules("discount big { amount 50.00 USD }\ndiscount more { amount 10% }")
    priced = price_invoice([line("30.00 USD")], {}, pricing, currency="USD")
    assert priced.by_rule("discount") == {"big": M("30.00 USD")}
    assert priced.total == M("0.00 USD")


def test_money_in_another_currency_does_not_apply():
    pricing = rules("discount eur { amount 5.00 EUR }")
    assert price_invoice([line("30.00 USD")], {}, pricing, currency="USD").total == M("30.00 USD")


def test_card_fee_is_a_percentage_of_the_discounted_lines_plus_fixed_and_untaxed():
    # the spec's second rule case: 2 × 10.00, NY sales tax 8.875%, card fee 2.9% + 0.30
    pricing = rules(
        "fee card { amount 2.9% + 0.30 USD applies_to invoice taxable false "
        'when payment.method == "card" }\n'
        "tax ny { rate 8.875% when line.taxable }"
    )
    item = LineInput("mug", 2, M("10.00 USD"), M("20.00 USD"), fields={"taxable": True})
    priced = price_invoice([item], {"payment": {"method": "card"}}, pricing, currency="USD")
    assert priced.by_rule("fee") == {"card": M("0.88 USD")}
    assert priced.by_rule("tax") == {"ny": M("1.78 USD")}
    assert priced.total == M("22.66 USD")


def test_a_taxable_line_fee_is_taxed_with_its_line():
    pricing = rules(
        'fee shipping { amount 4.95 USD applies_to line when line.category == "hardware" }\n'
        "tax vat { rate 25% }"
    )
    priced = price_invoice([line("89.00 USD", category="hardware")], {}, pricing, currency="USD")
    assert priced.by_rule("tax") == {"vat": M("23.49 USD")}  # 25% of 93.95 = 23.4875
    assert priced.total == M("89.00 USD") + M("4.95 USD") + M("23.49 USD")


def test_inclusive_prices_take_the_tax_out():
    vat = TaxRate("dk", "Danish VAT", "Moms", Percent(Decimal(25)))
    priced = price_invoice([line("125.00 EUR", tax_rate=vat,
                                 tax_inclusive=True)], {}, currency="EUR")  # fmt: skip
    assert priced.tax_total == M("25.00 EUR")
    assert priced.total == M("125.00 EUR")


def test_jpy_rounds_to_whole_yen():
    priced = price_invoice([line("1000 JPY", unit_discount=Percent(Decimal("12.5")))], {},
                           currency="JPY")  # fmt: skip
    assert priced.discount_total == Money(Decimal(125), "JPY")
    assert priced.total == Money(Decimal(875), "JPY")


def test_every_total_is_the_sum_of_its_rounded_parts():
    pricing = rules(
        "discount a { amount 3.3% }\ndiscount b { amount 1.11 USD applies_to invoice }\n"
        "fee f { amount 1.7% + 0.05 USD applies_to invoice }\ntax t { rate 8.875% }"
    )
    lines = [line(p, q) for p, q in [("0.333333 USD", 7), ("19.99 USD", 3), ("4.005 USD", 11)]]
    priced = price_invoice(lines, {}, pricing, currency="USD")
    parts = [a.amount for p in priced.lines for a in (*p.discounts, *p.fees, *p.taxes)]
    parts += [a.amount for a in priced.adjustments]
    assert all(part.is_rounded() for part in parts)
    assert priced.total == (priced.subtotal - priced.discount_total + priced.fee_total
                            + priced.tax_total)  # fmt: skip
    assert priced.subtotal == sum((p.amount for p in priced.lines), M("0 USD"))
