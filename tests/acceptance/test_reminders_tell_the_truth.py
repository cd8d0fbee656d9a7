"""Reminders and notices tell the truth: a reminder states what the payment will charge
(priced as the billing run prices it), none is sent for a payment a cancellation stops, and a
cancel at the period's end shows its end date, stops MRR from then and happens even to an
unpaid subscription."""

from tests.acceptance.scenario import Scenario
from tests.acceptance.test_collection_scenarios import BOB_CARD, BOB_SAVED
from tests.acceptance.test_notification_scenarios import mails

FEE_AND_TAX = """\
fee card_fee {
  label "Card processing fee"
  amount 2.9% + 0.30 USD
  applies_to invoice
  taxable false
  when payment.method == "card"
}

tax ny_sales {
  label "NY sales tax"
  rate tax_rate("ny-sales")
  when customer.region == "NY" and line.taxable
}

discount launch_promo {
  amount 20%
  for 2 payments
}
"""
MONTHLY = """\
  - id: beans
    contact: bob
    start: 2026-12-01
    items: [{name: Beans, unit_price: "10.00 USD", frequency: monthly}]
"""


def _reminders(s: Scenario) -> list[str]:
    return [m.get_body(("plain",)).get_content() for m in mails(s)
            if "Your next payment" in m["Subject"]]  # fmt: skip


def test_the_reminder_states_the_invoice_the_run_will_charge(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, rules=FEE_AND_TAX, subscriptions=BOB_SAVED)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2027-02-01")
    totals = [i["total"] for i in s.invoices("bob-coffee")]
    # 25.00 − 20% = 20.00; card fee 0.58 + 0.30; NY sales tax 8.875% of 20.00 = 1.78
    # the third payment has no discount: 25.00 + 1.03 + 2.22
    assert totals == ["22.66", "22.66", "28.25"]
    said = sorted(line for text in _reminders(s) for line in text.splitlines()
                  if "will be charged" in line)  # fmt: skip
    assert said == ["Your subscription renews on February 1, 2027: $28.25 will be charged.",
                    "Your subscription renews on January 1, 2027: $22.66 will be charged."]  # fmt: skip
    events = s.subscription("bob-coffee")["history"]
    assert [e["amount"] for e in events if e["type"] == "reminder.due"] == ["22.66", "28.25"]


def test_a_reminder_counts_a_method_a_fee_rule_reads_and_a_manual_one_without(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, rules=FEE_AND_TAX,
                 subscriptions=BOB_SAVED.replace("bob-coffee", "bob-card") + MONTHLY.replace(
                     "beans", "bob-manual").replace("10.00 USD", "25.00 USD"))  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-18")
    card = [e for e in s.subscription("bob-card")["history"] if e["type"] == "reminder.due"]
    manual = [e for e in s.subscription("bob-manual")["history"] if e["type"] == "reminder.due"]
    # the manual one pays no card fee: 20.00 + 1.78 tax
    assert [e["amount"] for e in card] == ["22.66"] and [e["amount"] for e in manual] == ["21.78"]
    # and nothing is charged to it: it is told an invoice comes
    said = sorted(line for text in _reminders(s) for line in text.splitlines()
                  if line.startswith("Your subscription renews"))  # fmt: skip
    assert said == [
        "Your subscription renews on January 1, 2027: $22.66 will be charged.",
        "Your subscription renews on January 1, 2027: you will receive an invoice for $21.78.",
    ]


def test_a_reminder_for_a_payment_a_credit_covers_charges_nothing(tmp_path, db_url):
    # a 100% discount for the second payment: its reminder must not say "will be charged"
    free = "discount second_free {\n  amount 100%\n  when subscription.payments_made == 1\n}\n"
    s = Scenario(tmp_path, db_url, rules=free, subscriptions=MONTHLY)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-20")
    assert [e["amount"] for e in s.subscription("beans")["history"]
            if e["type"] == "reminder.due"] == ["0.00"]  # fmt: skip
    (text,) = _reminders(s)
    assert "Your subscription renews on January 1, 2027; your credit covers it and nothing " \
           "will be charged." in text.replace("\n", " ")  # fmt: skip
    assert "will be charged." not in text.replace("nothing will be charged.", "")


def test_no_reminder_for_a_payment_a_cancel_at_period_end_stops(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=MONTHLY)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-05")
    canceled = s.cli("subscriptions", "cancel", "beans", "--at-period-end",
                     "--as-of", "2026-12-05")  # fmt: skip
    assert (canceled["status"], canceled["end_date"]) == ("active", "2027-01-01")
    s.cli("run", "--until", "2027-02-01")
    assert _reminders(s) == []
    history = [(h["type"], h["date"]) for h in s.subscription("beans")["history"]]
    assert ("subscription.cancel_scheduled", "2026-12-05") in history
    assert ("subscription.canceled", "2027-01-01") in history
    assert not any(t == "reminder.due" for t, _ in history)


def test_a_cancel_at_period_end_stops_mrr_from_its_end_date(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=MONTHLY)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-05")
    s.cli("subscriptions", "cancel", "beans", "--at-period-end", "--as-of", "2026-12-05")
    # before the run reaches the end date, the report already knows it
    assert s.cli("report", "mrr", "--as-of", "2026-12-31")["value"] == "10.00"
    assert s.cli("report", "mrr", "--as-of", "2027-01-01")["value"] == "0.00"
    churn = s.cli("report", "subscription_churn", "--as-of", "2027-01-31")
    assert churn["value"] == "100.00"
    s.cli("run", "--until", "2027-01-02")
    assert s.cli("report", "mrr", "--as-of", "2027-01-01")["value"] == "0.00"


def test_an_unpaid_subscription_canceled_at_period_end_ends_then(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=BOB_SAVED,
                 replace={BOB_CARD: BOB_CARD.replace("tok_visa", "tok_lost_card")})  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-02")
    assert s.subscription("bob-coffee")["status"] == "unpaid"
    canceled = s.cli("subscriptions", "cancel", "bob-coffee", "--at-period-end",
                     "--as-of", "2026-12-10")  # fmt: skip
    assert (canceled["status"], canceled["end_date"]) == ("unpaid", "2027-01-01")
    s.cli("run", "--until", "2027-01-01")
    sub = s.subscription("bob-coffee")
    assert sub["status"] == "canceled"
    changes = [(h["date"], h.get("status")) for h in sub["history"]
               if h["type"] == "subscription.status_changed"]  # fmt: skip
    assert changes[-1] == ("2027-01-01", "canceled")
