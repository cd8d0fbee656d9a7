"""Rules on the fields only a live context fills (product description and properties, the
company's postal code, the invoice's subtotal and sequence) apply where invoices are made:
the billing run, a quote and a checkout, on SQLite and PostgreSQL."""

import pytest

from tests.acceptance.scenario import Scenario

COFFEE = "    name: Just one more cup - 1 KG Subscription\n"
DESCRIBED = {COFFEE: COFFEE + "    description: Whole beans, dark roast\n"
                              "    properties: {origin: kenya}\n"}  # fmt: skip

# ane belongs to acme (postal code 1165); bob has no company. Both monthly from December.
SUBSCRIPTIONS = """\
  - id: ane-coffee
    contact: ane
    company: acme
    currency: USD
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 2}]
  - id: bob-coffee
    contact: bob
    currency: USD
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 1}]
"""

RULES = {
    "description": 'discount dark { amount 10% when product.description contains "dark roast" }',
    "property": 'discount kenyan { amount 1.00 USD when product.properties.origin == "kenya" }',
    "postal_code": "discount copenhagen { amount 2.00 USD applies_to invoice\n"
    '  when company.postal_code == "1165" }',
    "subtotal": "discount big { amount 5% applies_to invoice when invoice.subtotal >= 50.00 USD }",
    "first": "discount first { amount 3.00 USD applies_to invoice when invoice.sequence == 1 }",
    "third": "discount third { amount 3.00 USD applies_to invoice when invoice.sequence == 3 }",
}


@pytest.mark.parametrize(
    "rule, ane, bob",
    [
        ("description", ["45.00", "45.00", "45.00"], ["22.50", "22.50", "22.50"]),
        ("property", ["49.00", "49.00", "49.00"], ["24.00", "24.00", "24.00"]),
        ("postal_code", ["48.00", "48.00", "48.00"], ["25.00", "25.00", "25.00"]),
        ("subtotal", ["47.50", "47.50", "47.50"], ["25.00", "25.00", "25.00"]),
        ("first", ["47.00", "50.00", "50.00"], ["22.00", "25.00", "25.00"]),
        ("third", ["50.00", "50.00", "47.00"], ["25.00", "25.00", "22.00"]),
    ],
)
def test_a_rule_on_the_field_applies_on_invoices_of_the_billing_run(
    tmp_path, db_url, rule, ane, bob
):
    s = Scenario(tmp_path, db_url, rules=RULES[rule], subscriptions=SUBSCRIPTIONS,
                 replace=DESCRIBED)  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2027-02-01")
    assert [i["total"] for i in s.invoices("ane-coffee")] == ane
    assert [i["total"] for i in s.invoices("bob-coffee")] == bob


@pytest.mark.parametrize(
    "rule, due_now, later",
    [
        ("description", "45.00", "45.00"),
        ("property", "49.00", "49.00"),  # a line of 2 units: one 1.00 discount per line
        ("postal_code", "48.00", "48.00"),
        ("subtotal", "47.50", "47.50"),
        ("first", "47.00", "50.00"),  # the next payment is the second invoice
        ("third", "50.00", "50.00"),
    ],
)
def test_a_rule_on_the_field_applies_in_a_quote(tmp_path, db_url, rule, due_now, later):
    s = Scenario(tmp_path, db_url, rules=RULES[rule], replace=DESCRIBED)
    quote = s.cli("quote", "--contact", "ane", "--item", "coffee-1kg:2", "--as-of", "2026-12-01")
    assert (quote["due_now"]["total"], quote["future_payments"][0]["amount"]) == (due_now, later)


@pytest.mark.parametrize(
    "rule, totals",
    [
        ("description", ["22.50", "22.50", "22.50"]),
        ("property", ["24.00", "24.00", "24.00"]),
        ("postal_code", ["23.00", "23.00", "23.00"]),
        ("subtotal", ["25.00", "25.00", "25.00"]),  # 25.00 of coffee: below 50.00
        ("first", ["22.00", "25.00", "25.00"]),  # the checkout's invoice is the first
        ("third", ["25.00", "25.00", "22.00"]),  # …so February's renewal is the third
    ],
)
def test_a_rule_on_the_field_applies_at_checkout_and_on_its_renewals(
    tmp_path, db_url, rule, totals
):
    s = Scenario(tmp_path, db_url, rules=RULES[rule], replace=DESCRIBED)
    bought = s.cli("checkout", "coffee-monthly", "--contact", "ane", "--card", "tok_visa",
                   "--as-of", "2026-12-01")  # fmt: skip
    (sub_id,) = bought["subscriptions"]
    s.cli("run", "--until", "2027-02-01")
    # the purchase invoice is the subscription's too: listed first
    invoices = [(i["number"], i["total"]) for i in s.invoices(sub_id)]
    assert invoices[0] == (bought["invoice"], bought["total"])
    assert [total for _, total in invoices] == totals


TRIGGER = """\
trigger second_invoice {
  on invoice.created
  when invoice.sequence == 2 and invoice.subtotal == 25.00 USD and company.postal_code == "1165"
  do set(subscription.owner, "second")
}
"""


def test_a_trigger_sees_the_invoice_an_event_is_about(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, rules=TRIGGER, replace=DESCRIBED)
    bought = s.cli("checkout", "coffee-monthly", "--contact", "ane", "--card", "tok_visa",
                   "--as-of", "2026-12-01")  # fmt: skip
    (sub_id,) = bought["subscriptions"]
    s.cli("run", "--until", "2026-12-31")
    assert s.subscription(sub_id)["owner"] is None
    s.cli("run", "--until", "2027-01-01")  # the first renewal: the checkout's was the first
    assert s.subscription(sub_id)["owner"] == "second"
