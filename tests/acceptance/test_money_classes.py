"""Tax-inclusive prices with more than one tax, and proration, through the CLI: quote,
checkout, run, ``subscriptions edit --prorate`` and ``apply --prorate`` then run, ``invoices
show --json`` and the rendered document."""

import re

import pytest

from tests.acceptance.scenario import Scenario
from tests.conftest import run

CURRENCIES = {"currencies: [USD, EUR, DKK, JPY]": "currencies: [USD, EUR, DKK, JPY, CAD]"}
PRORATION = {"    proration: false\n": "    proration: true\n"}
QST = 'tax qst { rate 9.975% when customer.region == "QC" }\n'
CATALOG = """\
tax_rates:
  - {id: gst, name: GST, label: GST, rate: 5%}
products:
  - id: seat-ca
    sku: SEAT-CA
    name: Seat
    prices: {USD: "114.98 USD", CAD: "114.98 CAD"}
    frequency: monthly
    tax_behavior: inclusive
    tax_rate: gst
  - id: seat
    sku: SEAT
    name: Team seat
    prices: {USD: "20.00 USD", JPY: "5 JPY"}
    frequency: monthly
contacts:
  - id: claire
    name: Claire Roy
    email: claire@example.ca
    address: {line1: 1 rue Principale, city: Montréal, region: QC, postal_code: H2X 1Y4, country: CA}
    payment_methods:
      - {id: claire-visa, type: card, token: tok_visa}
payment_links:
  - id: seat-link
    name: A seat
    accepted_methods: [card]
    items:
      - {product: seat-ca, quantity: 1}
"""
CLAIRE_SEAT = """\
  - id: claire-seat
    contact: claire
    currency: CAD
    start: 2026-12-01
    items: [{product: seat-ca, quantity: QUANTITY}]
    collection: {mode: automatic, method: saved, payment_method: claire-visa}
"""


def scenario(tmp_path, db_url, rules: str = QST, *, replace=None, **kw) -> Scenario:
    s = Scenario(tmp_path, db_url, rules=rules, replace={**CURRENCIES, **(replace or {})}, **kw)
    (s.config / "catalog.yaml").write_text(CATALOG)
    return s


def taxes(invoice: dict) -> list[list[tuple[str, str, str]]]:
    return [[(t["rule"], t["rate"], t["amount"]) for t in line["taxes"]]
            for line in invoice["lines"]]  # fmt: skip


def totals(invoice: dict) -> tuple[str, ...]:
    keys = ("subtotal", "discount_total", "fee_total", "tax_total", "total_excluding_tax",
            "total")  # fmt: skip
    return tuple(invoice[k] for k in keys)


def rendered_totals(s: Scenario, number: str) -> dict[str, str]:
    """The totals table of the invoice document: label → amount as printed."""
    result = run("--config", str(s.config), "--db", s.db_url, "invoices", "render", number)
    assert result.exit_code == 0, result.output
    table = result.stdout[result.stdout.index('<table class="totals">') :]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr[^>]*><td>([^<]+)</td><td class=\"num\">([^<]+)</td></tr>", table)
    return dict(rows)


# -- tax-inclusive prices with more than one tax ----------------------------------------------
GST_QST = [("gst", "5%", "5.00"), ("qst", "9.975%", "9.98")]


def test_an_inclusive_price_on_a_quote(tmp_path, db_url):
    s = scenario(tmp_path, db_url)
    quote = s.cli("quote", "--contact", "claire", "--item", "seat-ca", "--as-of", "2026-12-01")
    # net 114.98 / 1.14975 = 100.00: GST 5.00, QST 9.98 — not 5.48 + 10.43
    assert quote["due_now"] == {"subtotal": "114.98", "discount_total": "0.00",
                                "fee_total": "0.00", "tax_total": "14.98", "total": "114.98"}  # fmt: skip
    assert quote["future_payments"] == [{"frequency": "monthly", "amount": "114.98", "count": None}]
    two = s.cli("quote", "--contact", "claire", "--item", "seat-ca:2", "--as-of", "2026-12-01")
    # 229.96 / 1.14975 = 200.0087: GST 10.00, QST 19.95; the price stays 229.96
    assert (two["due_now"]["tax_total"], two["due_now"]["total"]) == ("29.95", "229.96")


def test_an_inclusive_price_on_a_checkout(tmp_path, db_url):
    s = scenario(tmp_path, db_url)
    bought = s.cli("checkout", "seat-link", "--contact", "claire", "--card", "tok_visa",
                   "--as-of", "2026-12-01")  # fmt: skip
    assert (bought["total"], bought["payment"]) == ("114.98", "succeeded")
    invoice = s.cli("invoices", "show", bought["invoice"])
    assert taxes(invoice) == [GST_QST]
    assert totals(invoice) == ("114.98", "0.00", "0.00", "14.98", "100.00", "114.98")
    assert [amount for _, amount, _ in s.charges()] == ["114.98"]
    assert rendered_totals(s, bought["invoice"]) == {
        "Subtotal": "$114.98", "Total excluding tax": "$100.00", "Tax": "$14.98",
        "Total": "$114.98", "Amount paid": "$114.98", "Amount due": "$0.00",
    }  # fmt: skip


def test_an_inclusive_price_on_a_billing_run(tmp_path, db_url):
    s = scenario(tmp_path, db_url, subscriptions=CLAIRE_SEAT.replace("QUANTITY", "1"))
    s.cli("apply", "--as-of", "2026-12-01")
    ran = s.cli("run", "--until", "2027-01-01")
    assert ran["totals"] == {"CAD": "229.96"}
    for listed in s.invoices("claire-seat"):
        invoice = s.cli("invoices", "show", listed["number"])
        assert taxes(invoice) == [GST_QST]
        assert totals(invoice) == ("114.98", "0.00", "0.00", "14.98", "100.00", "114.98")
    document = rendered_totals(s, "INV-00001")
    assert (document["Total excluding tax"], document["Tax"], document["Total"]) == (
        "CA$100.00", "CA$14.98", "CA$114.98")  # fmt: skip


def test_an_invoice_scope_tax_rule_is_taken_out_of_an_inclusive_price(tmp_path, db_url):
    rule = 'tax qst { rate 9.975% applies_to invoice when customer.region == "QC" }\n'
    s = scenario(tmp_path, db_url, rule)
    bought = s.cli("checkout", "seat-link", "--contact", "claire", "--card", "tok_visa",
                   "--as-of", "2026-12-01")  # fmt: skip
    invoice = s.cli("invoices", "show", bought["invoice"])
    assert taxes(invoice) == [[("gst", "5%", "5.00")]]
    assert invoice["adjustments"] == [
        {"kind": "tax", "rule": "qst", "label": "qst", "rate": "9.975%", "amount": "9.98"}
    ]
    assert totals(invoice) == ("114.98", "0.00", "0.00", "14.98", "100.00", "114.98")


def test_a_tax_providers_rates_are_taken_out_of_an_inclusive_price(tmp_path, db_url):
    table = """\
  taxes:
    provider: table
    table:
      - {country: CA, name: GST, rate: 5%}
      - {country: CA, region: QC, name: QST, label: TVQ, rate: 9.975%}
"""
    s = scenario(tmp_path, db_url, "", replace={"  analytics:\n": table + "  analytics:\n"})
    catalog = s.config / "catalog.yaml"
    catalog.write_text(catalog.read_text().replace("    tax_rate: gst\n", ""))
    quote = s.cli("quote", "--contact", "claire", "--item", "seat-ca", "--as-of", "2026-12-01")
    assert (quote["due_now"]["tax_total"], quote["due_now"]["total"]) == ("14.98", "114.98")
    bought = s.cli("checkout", "seat-link", "--contact", "claire", "--card", "tok_visa",
                   "--as-of", "2026-12-01")  # fmt: skip
    invoice = s.cli("invoices", "show", bought["invoice"])
    assert taxes(invoice) == [[("table:GST", "5%", "5.00"), ("table:QST", "9.975%", "9.98")]]
    assert totals(invoice) == ("114.98", "0.00", "0.00", "14.98", "100.00", "114.98")


# -- proration ---------------------------------------------------------------------------------
TEAM = "discount team { amount 20% }\n"


def test_a_prorated_edit_honours_an_every_payment_discount(tmp_path, db_url):
    s = scenario(tmp_path, db_url, TEAM, replace=PRORATION)
    s.cli("subscriptions", "create", "--id", "bob-seats", "--contact", "bob", "--item", "seat",
          "--as-of", "2027-01-01")  # fmt: skip
    s.cli("run", "--until", "2027-01-01")
    # on 01-16, 16 of January's 31 days remain: 16/31 of the 16.00 paid back, 16/31 of 32.00
    edited = s.cli("subscriptions", "edit", "bob-seats", "--quantity", "1=2", "--prorate",
                   "--as-of", "2027-01-16")  # fmt: skip
    assert [p["unit_price"] for p in edited["pending_lines"]] == ["-8.26", "16.52"]
    s.cli("run", "--until", "2027-02-01")
    january, february = (s.cli("invoices", "show", i["number"]) for i in s.invoices("bob-seats"))
    assert january["total"] == "16.00"
    assert [(line["amount"], line["discounts"]) for line in february["lines"]] == [
        ("40.00", [{"rule": "team", "label": "team", "rate": "20%", "amount": "8.00"}]),
        ("-8.26", []), ("16.52", []),
    ]  # fmt: skip
    assert (february["discount_total"], february["total"]) == ("8.00", "40.26")
    assert rendered_totals(s, february["number"])["Total"] == "$40.26"


def test_a_prorated_apply_of_a_declared_subscription_uses_the_same_formula(tmp_path, db_url):
    declared = """\
  - id: bob-seats
    contact: bob
    start: 2027-01-01
    items: [{product: seat, quantity: QUANTITY}]
"""
    s = scenario(tmp_path, db_url, TEAM, replace=PRORATION,
                 subscriptions=declared.replace("QUANTITY", "1"))  # fmt: skip
    s.cli("apply", "--as-of", "2027-01-01")
    s.cli("run", "--until", "2027-01-01")
    config = s.config / "abonnement.yaml"
    config.write_text(config.read_text().replace("quantity: 1}]", "quantity: 2}]"))
    s.cli("apply", "--prorate", "--as-of", "2027-01-16")
    pending = s.subscription("bob-seats")["pending_lines"]
    assert [p["unit_price"] for p in pending] == ["-8.26", "16.52"]
    s.cli("run", "--until", "2027-02-01")
    assert [i["total"] for i in s.invoices("bob-seats")] == ["16.00", "40.26"]


@pytest.mark.parametrize(
    ("rules", "day", "credit", "charge", "total"),
    [
        # for 3 payments: January (the 2nd) still has it, and so does February
        ("discount promo { amount 20% for 3 payments }\n", "2027-01-16", "-8.26", "16.52",
         "40.26"),
        # for 1 payment: December had it (16/31 of 16.00 back, of 32.00 more), January not
        ("discount promo { amount 20% for 1 payments }\n", "2026-12-16", "-8.26", "16.52",
         "48.26"),
        # once: December paid 15.00 (16/31 back), two seats would have paid 35.00
        ("discount hello { amount 5.00 USD once }\n", "2026-12-16", "-7.74", "18.06", "50.32"),
        # a line fee is part of what the line cost: 16/31 of 21.00 and of 41.00
        ("fee setup { amount 1.00 USD applies_to line }\n", "2027-01-16", "-10.84", "21.16",
         "51.32"),
    ],
)  # fmt: skip
def test_proration_follows_each_discount_and_fee_as_the_period_had_it(
    tmp_path, rules, day, credit, charge, total
):
    s = scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", rules, replace=PRORATION)
    s.cli("subscriptions", "create", "--id", "bob-seats", "--contact", "bob", "--item", "seat",
          "--collection", "automatic", "--payment-method", "bob-visa",
          "--as-of", "2026-12-01")  # fmt: skip
    s.cli("run", "--until", day)
    edited = s.cli("subscriptions", "edit", "bob-seats", "--quantity", "1=2", "--prorate",
                   "--as-of", day)  # fmt: skip
    assert [p["unit_price"] for p in edited["pending_lines"]] == [credit, charge]
    s.cli("run", "--until", "2027-02-01")
    following = next(i for i in s.invoices("bob-seats") if i["issue_date"] > day)
    assert following["total"] == total


@pytest.mark.parametrize(("rounding", "credit", "total"), [("half_even", "-2", "13"),
                                                           ("half_up", "-3", "12")])  # fmt: skip
def test_proration_rounds_by_the_settings_rounding_mode(tmp_path, rounding, credit, total):
    s = scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", "",
                 replace={**PRORATION, "  timezone:": f"  rounding: {rounding}\n  timezone:"})  # fmt: skip
    s.cli("subscriptions", "create", "--id", "bob-yen", "--contact", "bob", "--item", "seat",
          "--currency", "JPY", "--as-of", "2027-04-01")  # fmt: skip
    s.cli("run", "--until", "2027-04-01")
    # 15 of April's 30 days left: 5 JPY × 15/30 = 2.5 back, 10 JPY × 15/30 = 5 more
    edited = s.cli("subscriptions", "edit", "bob-yen", "--quantity", "1=2", "--prorate",
                   "--as-of", "2027-04-16")  # fmt: skip
    assert [p["unit_price"] for p in edited["pending_lines"]] == [credit, "5"]
    s.cli("run", "--until", "2027-05-01")
    assert s.invoices("bob-yen")[-1]["total"] == total


def test_prorating_an_inclusive_price_takes_the_taxes_out_of_the_credit_and_charge(
    tmp_path, db_url
):
    s = scenario(tmp_path, db_url, replace=PRORATION,
                 subscriptions=CLAIRE_SEAT.replace("QUANTITY", "1"))  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2027-01-01")
    config = s.config / "abonnement.yaml"
    config.write_text(config.read_text().replace("quantity: 1}]", "quantity: 2}]"))
    s.cli("apply", "--prorate", "--as-of", "2027-01-16")
    s.cli("run", "--until", "2027-02-01")
    february = s.cli("invoices", "show", s.invoices("claire-seat")[-1]["number"])
    # 229.96 a month; 16/31 of 114.98 back (59.34), 16/31 of 229.96 more (118.69), each with
    # its taxes inside: −59.34 / 1.14975 = −51.6112, 118.69 / 1.14975 = 103.2311
    assert [line["amount"] for line in february["lines"]] == ["229.96", "-59.34", "118.69"]
    assert taxes(february) == [
        [("gst", "5%", "10.00"), ("qst", "9.975%", "19.95")],
        [("gst", "5%", "-2.58"), ("qst", "9.975%", "-5.15")],
        [("gst", "5%", "5.16"), ("qst", "9.975%", "10.30")],
    ]
    assert totals(february) == ("289.31", "0.00", "0.00", "37.68", "251.63", "289.31")


@pytest.mark.parametrize(("rule", "payments", "total"), [
    # coffee-1kg is 25.00 a month, bought 2026-12-01: payments Dec 1, Jan 1, Feb 1, Mar 1
    # 20.00 now, then 20.00, 25.00, 25.00
    ("discount promo { amount 20% for 2 payments }", [("20.00", 1), ("25.00", 2)], "90.00"),
    # 12.50 now, then 12.50, 12.50 (Feb 1), 25.00
    ("discount early { amount 50% when invoice.date < 2027-02-15 }",
     [("12.50", 2), ("25.00", 1)], "62.50"),
    ("discount loyal { amount 10% when invoice.sequence >= 3 }",
     [("25.00", 1), ("22.50", 2)], "95.00"),
])  # fmt: skip
def test_a_quote_prices_each_future_payment_as_its_invoice(tmp_path, rule, payments, total):
    # a discount that lasts a number of payments, or until a date, ends within the quote: the
    # later payments are not all priced like the second one
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", rules=rule)
    quoted = s.cli("quote", "--contact", "bob", "--item", "coffee-1kg", "--payments", "4",
                   "--as-of", "2026-12-01")  # fmt: skip
    assert [(f["amount"], f["count"]) for f in quoted["future_payments"]] == payments
    assert quoted["total"] == total
