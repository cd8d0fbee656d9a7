"""Two classes of money mistakes, every path through the pricing engine: tax-inclusive prices
with more than one tax, and proration (discounts, durations, rounding mode, fees, taxes)."""

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from abonnement.engine.catalog import TaxRate
from abonnement.engine.edits import prorated
from abonnement.engine.items import Item
from abonnement.engine.money import Money, Percent, parse_money
from abonnement.engine.pricing import LineInput, price_invoice
from abonnement.engine.schedule import Frequency
from abonnement.engine.status import SubscriptionStatus
from abonnement.engine.subscriptions import Subscription
from abonnement.engine.taxes import AutomaticTax, Location
from tests.engine.test_pricing import rules

M = parse_money
GST = TaxRate("gst", "GST", "GST", Percent(Decimal(5)))
QST = TaxRate("qst", "QST", "TVQ", Percent(Decimal("9.975")))
QST_LINE = 'tax qst { rate 9.975% when customer.region == "QC" }'
QST_INVOICE = 'tax qst { rate 9.975% applies_to invoice when customer.region == "QC" }'
QC = {"customer": {"country": "CA", "region": "QC"}}


def line(price: str, *, quantity: int = 1, inclusive: bool = True, **kw) -> LineInput:
    unit = M(price)
    fields = {"sku": "SEAT", "category": kw.pop("category", None), "taxable": True}
    return LineInput("Seat", quantity, unit, unit * quantity, tax_inclusive=inclusive,
                     fields=fields, **kw)  # fmt: skip


def taxes_of(priced) -> list[tuple[str, str, bool]]:
    """(rule, amount, inclusive) of every tax: the lines' first, then the invoice's."""
    found = [t for p in priced.lines for t in p.taxes] + [
        a for a in priced.adjustments if a.kind == "tax"
    ]
    return [(t.rule, t.amount.format_amount(), t.inclusive) for t in found]


def provider(*rates: TaxRate) -> AutomaticTax:
    return AutomaticTax("table", lambda _where, lines: [list(rates) for _ in lines])


# -- tax-inclusive prices ----------------------------------------------------------------------
# (lines, rules, provider rates, expected taxes, subtotal, discounts, fees, tax total, total)
INCLUSIVE = {
    # the issue's example: own rate 5% and a line-scope rule 9.975%; net 114.98 / 1.14975 = 100
    "own rate and a line rule": (
        [line("114.98 USD", tax_rate=GST)], QST_LINE, (),
        [("gst", "5.00", True), ("qst", "9.98", True)],
        "114.98", "0.00", "0.00", "14.98", "114.98"),
    "own rate and an invoice rule": (
        [line("114.98 USD", tax_rate=GST)], QST_INVOICE, (),
        [("gst", "5.00", True), ("qst", "9.98", True)],
        "114.98", "0.00", "0.00", "14.98", "114.98"),
    "a tax provider's two rates": (
        [line("114.98 USD")], "", (GST, QST),
        [("table:gst", "5.00", True), ("table:qst", "9.98", True)],
        "114.98", "0.00", "0.00", "14.98", "114.98"),
    # exact net 8.7062 → taxes 0.44 + 0.87; the net (8.70, not 8.71) takes the residue
    "the net absorbs the rounding residue": (
        [line("10.01 USD", tax_rate=GST)], QST_LINE, (),
        [("gst", "0.44", True), ("qst", "0.87", True)],
        "10.01", "0.00", "0.00", "1.31", "10.01"),
    "two units": (
        [line("114.98 USD", quantity=2, tax_rate=GST)], QST_LINE, (),
        [("gst", "10.00", True), ("qst", "19.95", True)],  # net 200.00 (exactly 200.0087)
        "229.96", "0.00", "0.00", "29.95", "229.96"),
    # 20% of 114.98 = 23.00 off the price; 91.98 / 1.14975 = 80.00
    "after a discount": (
        [line("114.98 USD", tax_rate=GST)], QST_LINE + "\ndiscount team { amount 20% }", (),
        [("gst", "4.00", True), ("qst", "7.98", True)],
        "114.98", "23.00", "0.00", "11.98", "91.98"),
    # a taxable line fee on an inclusive line includes its tax: 119.93 / 1.14975 = 104.3096
    "a taxable line fee": (
        [line("114.98 USD", tax_rate=GST)],
        QST_LINE + "\nfee setup { amount 4.95 USD applies_to line }", (),
        [("gst", "5.22", True), ("qst", "10.40", True)],
        "114.98", "0.00", "4.95", "15.62", "119.93"),
    # a taxable invoice fee shared by the lines: 115.96 / 1.14975 = 100.8567
    "a taxable invoice fee": (
        [line("114.98 USD", tax_rate=GST)],
        QST_LINE + "\nfee card { amount 0.98 USD applies_to invoice }", (),
        [("gst", "5.04", True), ("qst", "10.06", True)],
        "114.98", "0.00", "0.98", "15.10", "115.96"),
    # an untaxed fee is not in the tax base and is added as it is
    "an untaxed fee": (
        [line("114.98 USD", tax_rate=GST)],
        QST_LINE + "\nfee card { amount 1.00 USD applies_to invoice taxable false }", (),
        [("gst", "5.00", True), ("qst", "9.98", True)],
        "114.98", "0.00", "1.00", "14.98", "115.98"),
    # a proration credit of an inclusive price: its tax comes back at the same rates
    "a credit line": (
        [line("-59.34 USD", tax_rate=GST, prorated=True)], QST_LINE, (),
        [("gst", "-2.58", True), ("qst", "-5.15", True)],  # net −51.6112
        "-59.34", "0.00", "0.00", "-7.73", "-59.34"),
    # one exclusive line (tax on top), one inclusive (tax within): the invoice rule gives both
    "exclusive and inclusive lines": (
        [line("100.00 USD", inclusive=False, tax_rate=GST), line("114.98 USD", tax_rate=GST)],
        QST_INVOICE, (),
        [("gst", "5.00", False), ("gst", "5.00", True), ("qst", "9.98", False),
         ("qst", "9.98", True)],
        "214.98", "0.00", "0.00", "29.96", "229.96"),
    "whole yen": (
        [line("1150 JPY", tax_rate=TaxRate("jct", "JCT", "JCT", Percent(Decimal(10))))],
        'tax local { rate 5% when customer.region == "QC" }', (),
        [("jct", "100", True), ("local", "50", True)],
        "1150", "0", "0", "150", "1150"),
}  # fmt: skip


@pytest.mark.parametrize("case", INCLUSIVE.values(), ids=INCLUSIVE.keys())
def test_inclusive_prices_take_every_tax_out_at_their_sum(case):
    lines, text, rates, taxes, subtotal, discounts, fees, tax, total = case
    currency = lines[0].amount.currency
    found = provider(*rates).line_taxes(Location("CA", "QC"), lines) if rates else None
    priced = price_invoice(lines, QC, rules(text) if text else (), currency=currency,
                           line_taxes=found)  # fmt: skip
    assert taxes_of(priced) == taxes
    sums = (priced.subtotal, priced.discount_total, priced.fee_total, priced.tax_total,
            priced.total)  # fmt: skip
    assert tuple(m.format_amount() for m in sums) == (subtotal, discounts, fees, tax, total)
    # every total is the sum of its parts: what excludes tax plus the taxes is the total
    excluded = priced.subtotal - priced.discount_total + priced.fee_total + sum(
        (t.amount for p in priced.lines for t in p.taxes if not t.inclusive),
        Money.zero(currency),
    ) + sum((a.amount for a in priced.adjustments if a.kind == "tax" and not a.inclusive),
            Money.zero(currency))  # fmt: skip
    assert excluded == priced.total


def test_exclusive_prices_are_taxed_on_top_as_before():
    priced = price_invoice([line("100.00 USD", inclusive=False, tax_rate=GST)], QC,
                           rules(QST_LINE), currency="USD")  # fmt: skip
    assert taxes_of(priced) == [("gst", "5.00", False), ("qst", "9.98", False)]
    assert priced.total == M("114.98 USD")


# -- proration ---------------------------------------------------------------------------------
MONTHLY = Frequency.parse("monthly")


def running(*items: Item, index: int = 1, currency: str = "USD") -> Subscription:
    """A monthly subscription from 2026-12-01 whose period ``index`` is running (billed)."""
    return Subscription("sub", "bob", currency, MONTHLY, date(2026, 12, 1), items,
                        status=SubscriptionStatus.ACTIVE, next_index=index + 1)  # fmt: skip


def seat(quantity: int = 1, price: str = "20.00 USD", **kw) -> Item:
    return Item("Seat", quantity, M(price), sku="SEAT", frequency=MONTHLY, **kw)


def priced_by(text: str, rounding: str = "half_up"):
    """``LinePrices`` by ``price_invoice`` with the rules of ``text`` (no context)."""
    pricing = rules(text) if text else ()

    def prices(sub: Subscription, index: int) -> list[Money]:
        lines = [LineInput(i.name, i.quantity, i.unit_price, i.amount(), unit_discount=i.unit_discount,
                           fields={"sku": i.sku, "quantity": i.quantity}) for i in sub.items]  # fmt: skip
        priced = price_invoice(lines, {}, pricing, currency=sub.currency, payments_made=index,
                               rounding=rounding)  # fmt: skip
        return [sum((f.amount for f in p.fees), p.discounted) for p in priced.lines]

    return prices


# (rules, the running period's index, old item, new item, credit, charge): 1 → 2 seats on
# day 16 of a 31-day month (16 days left): December (0), January (1) or March (3)
PRORATION = {
    "no discount": ("", 1, seat(1), seat(2), "-10.32", "20.65"),
    # the issue's example: 16/31 of 16.00 paid, 16/31 of 32.00
    "a discount for every payment": ("discount team { amount 20% }", 1, seat(1), seat(2),
                                     "-8.26", "16.52"),
    "a unit discount": ("", 1, seat(1, unit_discount=Percent(Decimal(20))),
                        seat(2, unit_discount=Percent(Decimal(20))), "-8.26", "16.52"),
    "for 2 payments, within them": ("discount promo { amount 20% for 2 payments }", 1, seat(1),
                                    seat(2), "-8.26", "16.52"),
    "for 3 payments, after them": ("discount promo { amount 20% for 3 payments }", 3, seat(1),
                                   seat(2), "-10.32", "20.65"),
    "once, in the first period": ("discount hello { amount 5.00 USD once }", 0, seat(1),
                                  seat(2), "-7.74", "18.06"),
    "once, later": ("discount hello { amount 5.00 USD once }", 1, seat(1), seat(2), "-10.32",
                    "20.65"),
    "a line fee": ("fee setup { amount 1.00 USD applies_to line }", 1, seat(1), seat(2),
                   "-10.84", "21.16"),
    "a fixed invoice discount": ("discount flat { amount 4.00 USD applies_to invoice }", 1,
                                 seat(1), seat(2), "-8.26", "18.58"),
}  # fmt: skip


@pytest.mark.parametrize("case", PRORATION.values(), ids=PRORATION.keys())
def test_proration_settles_what_the_period_costs_after_discounts(case):
    text, index, old, new, credit, charge = case
    sub = running(old, index=index)
    start = sub.date_of(index)
    day = date(start.year, start.month, 16)
    assert (sub.date_of(index + 1) - start).days == 31
    lines = prorated(sub, [new], day, line_prices=priced_by(text))
    assert [(i.quantity, i.unit_price.format_amount()) for i in lines] == [(1, credit),
                                                                          (1, charge)]  # fmt: skip


def test_the_issue_example_next_invoice_totals_40_26():
    sub = running(seat(1))
    pricing = rules("discount team { amount 20% }")
    (credit, charge) = prorated(sub, [seat(2)], date(2027, 1, 16),
                                line_prices=priced_by("discount team { amount 20% }"))  # fmt: skip
    lines = [LineInput("Seat", 2, M("20.00 USD"), M("40.00 USD"))] + [
        LineInput(i.name, 1, i.unit_price, i.unit_price, prorated=True) for i in (credit, charge)
    ]
    priced = price_invoice(lines, {}, pricing, currency="USD", payments_made=2)
    assert [p.discounts for p in priced.lines[1:]] == [(), ()]  # discounted once, not again
    assert priced.total == M("40.26 USD")


@pytest.mark.parametrize(
    ("rounding", "credit", "charge"), [("half_even", "-2", "2"), ("half_up", "-3", "3")]
)
def test_proration_rounds_by_the_settings_rounding_mode(rounding, credit, charge):
    # 5 JPY a month, changed on 2027-04-16: 15 of April's 30 days left, 15/30 × 5 = 2.5
    sub = running(seat(1, "5 JPY"), currency="JPY", index=4)
    lines = prorated(sub, [seat(1, "10 JPY")], date(2027, 4, 16), rounding=rounding)
    assert [i.unit_price for i in lines] == [Money(Decimal(credit), "JPY"),
                                             Money(Decimal(5), "JPY")]  # fmt: skip
    added = prorated(sub, [seat(1, "5 JPY"), seat(1, "5 JPY")], date(2027, 4, 16),
                     rounding=rounding, line_prices=priced_by("", rounding))  # fmt: skip
    assert [i.unit_price for i in added] == [Money(Decimal(charge), "JPY")]


def test_proration_lines_keep_the_tax_behaviour_of_their_item():
    old = seat(1, "114.98 USD", tax_rate="gst", tax_inclusive=True)
    new = replace(old, quantity=2)
    credit, charge = prorated(running(old), [new], date(2027, 1, 16))
    assert (credit.tax_inclusive, credit.tax_rate, credit.unit_price) == (True, "gst",
                                                                         M("-59.34 USD"))  # fmt: skip
    assert (charge.tax_inclusive, charge.unit_price) == (True, M("118.69 USD"))
