"""The spec's scenarios (scenarios.md) through the CLI, on SQLite and PostgreSQL."""

import pytest

from tests.acceptance.scenario import Scenario

S1_ITEMS = ["--item", "coffee-1kg", "--item", "coffee-500g", "--item", "coffee-250g"]


def test_s1_quote_groups_items_into_two_subscriptions(tmp_path, db_url):
    s = Scenario(tmp_path, db_url)
    quote = s.cli("quote", "--contact", "bob", *S1_ITEMS, "--as-of", "2026-12-01")
    assert [(g["frequency"], g["recurring_amount"], [i["sku"] for i in g["items"]])
            for g in quote["subscriptions"]] == [
        ("monthly", "37.50", ["COFFEE-1KG", "COFFEE-250G"]),
        ("biweekly", "18.00", ["COFFEE-500G"]),
    ]  # fmt: skip
    assert quote["due_now"]["total"] == "55.50"
    assert quote["future_payments"] == [
        {"frequency": "monthly", "amount": "37.50", "count": None},
        {"frequency": "biweekly", "amount": "18.00", "count": None},
    ]
    assert quote["total"] is None


def test_s2_fixed_number_of_payments(tmp_path, db_url):
    quote = Scenario(tmp_path / "q", db_url).cli(
        "quote", "--contact", "bob", "--item", "coffee-1kg", "--start", "2027-03-01",
        "--payments", "6",
    )  # fmt: skip
    assert quote["due_now"]["total"] == "25.00"
    assert quote["future_payments"] == [{"frequency": "monthly", "amount": "25.00", "count": 5}]
    assert quote["total"] == "150.00"

    s = Scenario(tmp_path / "s", db_url, subscriptions="""\
  - id: bob-coffee
    contact: bob
    start: 2027-03-01
    terms: {payments: 6}
    items: [{product: coffee-1kg, quantity: 1}]
    collection: {mode: automatic, method: saved, payment_method: bob-visa}
""")  # fmt: skip
    s.cli("apply", "--as-of", "2027-02-20")
    s.cli("run", "--until", "2027-08-15")
    sub = s.subscription("bob-coffee")
    assert (sub["status"], sub["end_date"], sub["number_of_payments"]) == (
        "active",
        "2027-09-01",
        6,
    )
    s.cli("run", "--until", "2027-12-31")
    sub = s.subscription("bob-coffee")
    assert sub["status"] == "expired"
    assert sub["next_payment_date"] is None and sub["payments_made"] == 6
    dates = [i["issue_date"] for i in s.invoices("bob-coffee")]
    assert dates == ["2027-03-01", "2027-04-01", "2027-05-01", "2027-06-01", "2027-07-01",
                     "2027-08-01"]  # fmt: skip
    expired = [h for h in sub["history"] if h["type"] == "subscription.expired"]
    assert [h["date"] for h in expired] == ["2027-09-01"]


def test_s3_unit_discount_rounding(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions="""\
  - id: beans
    contact: bob
    start: 2026-12-01
    items:
      - {name: Beans, unit_price: "11.90 USD", frequency: monthly, unit_discount: 15%}
""")  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")
    (listed,) = s.invoices("beans")
    invoice = s.cli("invoices", "show", listed["number"])
    (line,) = invoice["lines"]
    assert (line["amount"], line["discounts"]) == ("11.90", [{"rule": "unit_discount",
        "label": "Unit discount", "rate": "15%", "amount": "1.79"}])  # fmt: skip
    assert (invoice["discount_total"], invoice["total"]) == ("1.79", "10.11")


TIERS = """\
  - id: seats
    name: Seats
    frequency: monthly
    pricing: graduated
    tiers:
      - {up_to: 99, unit_price: "100.00 USD"}
      - {up_to: 199, unit_price: "90.00 USD"}
      - {unit_price: "80.00 USD"}
  - id: plan
    name: Plan
    frequency: monthly
    pricing: stairstep
    tiers:
      - {up_to: 10, price: "50.00 USD"}
      - {up_to: 50, price: "200.00 USD"}
      - {price: "500.00 USD"}
"""


@pytest.mark.parametrize(("item", "subtotal"), [
    ("storage:6000", "360.00"), ("seats:250", "22980.00"), ("plan:25", "200.00"),
])  # fmt: skip
def test_s4_tiers(tmp_path, db_url, item, subtotal):
    s = Scenario(tmp_path, db_url, replace={"\ncompanies:": TIERS + "\ncompanies:"})
    quote = s.cli("quote", "--contact", "bob", "--item", item, "--as-of", "2026-12-01")
    assert quote["due_now"]["subtotal"] == subtotal


@pytest.mark.parametrize(("frequency", "start", "until", "dates"), [
    ("monthly", "2027-01-31", "2027-05-31",
     ["2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30", "2027-05-31"]),
    ("annually", "2028-02-29", "2032-03-01",
     ["2028-02-29", "2029-02-28", "2030-02-28", "2031-02-28", "2032-02-29"]),
    ("biweekly", "2026-12-30", "2027-02-10",
     ["2026-12-30", "2027-01-13", "2027-01-27", "2027-02-10"]),
])  # fmt: skip
def test_s5_calendar_anchoring(tmp_path, db_url, frequency, start, until, dates):
    s = Scenario(tmp_path, db_url, subscriptions=f"""\
  - id: anchored
    contact: bob
    start: {start}
    items: [{{name: Beans, unit_price: "10.00 USD", frequency: {frequency}}}]
""")  # fmt: skip
    s.cli("apply", "--as-of", start)
    s.cli("run", "--until", until)
    assert [i["issue_date"] for i in s.invoices("anchored")] == dates


S6_RULES = """\
discount bulk_coffee {
  label "Bulk discount"
  amount 10%
  applies_to line
  when line.quantity >= 3 and line.sku startswith "COFFEE-"
}

tax dk_vat {
  label "Moms"
  rate 25%
  applies_to line
  when customer.country == "DK" and not customer.tax_exempt
}
"""


def test_s6_discount_then_tax(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, rules=S6_RULES, subscriptions="""\
  - id: ane-bulk
    contact: ane
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 3}]
""")  # fmt: skip
    quote = s.cli("quote", "--contact", "ane", "--item", "coffee-1kg:3", "--as-of", "2026-12-01")
    assert quote["due_now"] == {"subtotal": "75.00", "discount_total": "7.50",
                                "fee_total": "0.00", "tax_total": "16.88", "total": "84.38"}  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")
    (listed,) = s.invoices("ane-bulk")
    (line,) = s.cli("invoices", "show", listed["number"])["lines"]
    assert line["amount"] == "75.00"
    assert line["discounts"] == [{"rule": "bulk_coffee", "label": "Bulk discount", "rate": "10%",
                                  "amount": "7.50"}]  # fmt: skip
    assert line["taxes"] == [{"rule": "dk_vat", "label": "Moms", "rate": "25%",
                              "amount": "16.88"}]  # fmt: skip
    assert listed["total"] == "84.38"


S9 = """\
  - id: acme-storage
    contact: ane
    company: acme
    billing_contact: ane
    billing_address: same_as_company
    currency: USD
    start: 2026-12-01
    terms: {payments: 12}
    items:
      - {product: storage, quantity: 6000}
      - {name: Premium support, unit_price: "99.00 USD", frequency: monthly, unit_discount: 10%, tax_rate: dk-vat}
    collection: {mode: manual, payment_terms: net_30, accept_online: true}
    invoice: {comments: PO 1234, language: da, locale: da_DK}
"""


def test_s9_manual_invoices_and_past_due(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=S9)
    assert s.cli("apply", "--as-of", "2026-12-01") == {
        "created": ["acme-storage"], "updated": [], "unchanged": [], "deferred": {},
        "no_longer_declared": [], "pruned": [], "deleted": [], "refused": {},
    }  # fmt: skip
    s.cli("run", "--until", "2026-12-01")
    (first,) = s.invoices("acme-storage")
    invoice = s.cli("invoices", "show", first["number"])
    assert (invoice["number"], invoice["status"], invoice["issue_date"], invoice["due_date"]) == (
        "INV-00001",
        "open",
        "2026-12-01",
        "2026-12-31",
    )
    storage, support = invoice["lines"]
    assert (storage["sku"], storage["quantity"], storage["unit_price"], storage["amount"]) == (
        "STORAGE-GB",
        6000,
        "0.06",
        "360.00",
    )
    assert (support["amount"], support["discounts"], support["taxes"]) == (
        "99.00",
        [{"rule": "unit_discount", "label": "Unit discount", "rate": "10%", "amount": "9.90"}],
        [{"rule": "dk-vat", "label": "Moms", "rate": "25%", "amount": "22.28"}],
    )
    assert (invoice["subtotal"], invoice["discount_total"], invoice["tax_total"],
            invoice["total"], invoice["amount_due"]) == ("459.00", "9.90", "22.28", "471.38",
                                                         "471.38")  # fmt: skip
    assert (invoice["comments"], invoice["language"], invoice["locale"]) == (
        "PO 1234",
        "da",
        "da_DK",
    )

    s.cli("run", "--until", "2027-01-01")
    assert s.subscription("acme-storage")["status"] == "past_due"
    numbers = [i["number"] for i in s.invoices("acme-storage")]
    assert numbers == ["INV-00001", "INV-00002"]
    s.cli("invoices", "pay", "INV-00001", "--as-of", "2027-01-02")
    assert s.subscription("acme-storage")["status"] == "active"
    s.cli("invoices", "pay", "INV-00002", "--as-of", "2027-01-02")
    assert [i["status"] for i in s.invoices("acme-storage")] == ["paid", "paid"]
    assert s.subscription("acme-storage")["status"] == "active"


def test_rerunning_and_reapplying_do_nothing_twice(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=S9)
    s.cli("apply", "--as-of", "2026-12-01")
    first = s.cli("run", "--until", "2027-03-01")
    assert first["invoice_count"] == 4
    assert s.cli("apply", "--as-of", "2027-03-01") == {
        "created": [], "updated": [], "unchanged": ["acme-storage"], "deferred": {},
        "no_longer_declared": [], "pruned": [], "deleted": [], "refused": {},
    }  # fmt: skip
    again = s.cli("run", "--until", "2027-03-01")
    assert again["invoice_count"] == 0
    assert [i["number"] for i in s.invoices()] == [f"INV-0000{n}" for n in range(1, 5)]


def test_dry_run_shows_the_invoices_and_writes_nothing(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=S9)
    s.cli("apply", "--as-of", "2026-12-01")
    dry = s.cli("run", "--until", "2027-01-01", "--dry-run")
    assert [(i["number"], i["issue_date"], i["total"]) for i in dry["invoices"]] == [
        ("INV-00001", "2026-12-01", "471.38"),
        ("INV-00002", "2027-01-01", "471.38"),
    ]
    assert s.invoices() == []
    assert s.subscription("acme-storage")["status"] == "scheduled"
    real = s.cli("run", "--until", "2027-01-01")
    assert real["invoice_count"] == 2
    assert [i["number"] for i in s.invoices()] == ["INV-00001", "INV-00002"]


@pytest.mark.parametrize(("factor", "mrr"), [(None, "51.57"), ("4.33", "51.53")])
def test_s13_weekly_mrr(tmp_path, db_url, factor, mrr):
    replace = {'weekly_mrr_factor: "52/12"': f'weekly_mrr_factor: "{factor}"'} if factor else {}
    s = Scenario(tmp_path, db_url, replace=replace, subscriptions="""\
  - id: weekly
    contact: bob
    start: 2026-12-01
    items: [{name: Beans, unit_price: "11.90 USD", frequency: weekly, unit_discount: 10%}]
""")  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    assert s.subscription("weekly")["mrr"] == mrr  # discounts do not reduce MRR by default
    s.cli("run", "--until", "2026-12-01")
    assert s.cli("report", "mrr", "--as-of", "2026-12-01")["value"] == mrr


def test_forecast_runs_the_engine_and_writes_nothing(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions="""\
  - id: monthly
    contact: bob
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 1}]
  - id: biweekly
    contact: bob
    start: 2026-12-01
    items: [{product: coffee-500g, quantity: 1}]
""")  # fmt: skip
    result = s.cli("forecast", "--months", "3", "--as-of", "2026-12-01")
    assert result["forecast"] == [
        {"month": "2026-12", "currency": "USD", "invoices": 4, "total": "79.00"},
        {"month": "2027-01", "currency": "USD", "invoices": 3, "total": "61.00"},
        {"month": "2027-02", "currency": "USD", "invoices": 3, "total": "61.00"},
    ]
    assert s.invoices() == [] and s.cli("subscriptions", "list") == []


def test_a_dry_run_on_a_fresh_database_does_not_apply_for_real(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=S9)
    dry = s.cli("run", "--until", "2027-01-01", "--dry-run")
    assert dry["applied"]["created"] == ["acme-storage"]
    assert [i["issue_date"] for i in dry["invoices"]] == ["2026-12-01", "2027-01-01"]
    assert s.cli("subscriptions", "list") == [] and s.invoices() == []
