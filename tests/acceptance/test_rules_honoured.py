"""Everything a rule or a setting promises is honoured: a rule's `label` is what the invoice
and its document show."""

import re

from tests.acceptance.scenario import Scenario
from tests.acceptance.test_collection_scenarios import BOB_SAVED
from tests.conftest import run

LABELLED = """\
tax ny_sales {
  label "NY sales tax"
  rate tax_rate("ny-sales")
  when customer.region == "NY" and line.taxable
}

discount loyalty {
  label "Loyalty discount"
  amount 10%
  applies_to invoice
}

fee card_fee {
  label "Card processing fee"
  amount 2.9% + 0.30 USD
  applies_to invoice
  taxable false
  when payment.method == "card"
}

fee handling {
  amount 1.00 USD
  applies_to line
}
"""


def _billed(tmp_path, db_url) -> Scenario:
    s = Scenario(tmp_path, db_url, rules=LABELLED, subscriptions=BOB_SAVED)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")
    return s


def test_invoices_show_names_each_adjustment_by_its_label(tmp_path, db_url):
    s = _billed(tmp_path, db_url)
    invoice = s.cli("invoices", "show", "INV-00001")
    (line,) = invoice["lines"]
    # 25.00 − 10% = 22.50; handling 1.00 (taxable); tax 8.875% of 23.50 = 2.09;
    # card fee 2.9% of 22.50 = 0.65 + 0.30; 22.50 + 1.00 + 2.09 + 0.95
    assert line["taxes"] == [{"rule": "ny_sales", "label": "NY sales tax", "rate": "8.875%",
                              "amount": "2.09"}]  # fmt: skip
    assert line["fees"] == [{"rule": "handling", "label": "handling", "amount": "1.00"}]
    assert invoice["adjustments"] == [
        {"kind": "discount", "rule": "loyalty", "label": "Loyalty discount", "rate": "10%",
         "amount": "2.50"},
        {"kind": "fee", "rule": "card_fee", "label": "Card processing fee", "amount": "0.95"},
    ]  # fmt: skip
    assert invoice["total"] == "26.54"
    text = run("--config", str(s.config), "--db", s.db_url, "invoices", "show", "INV-00001").stdout
    lines = text.splitlines()
    start = lines.index("discounts, fees and taxes:") + 1
    assert lines[start : start + 5] == [
        "ON       KIND      LABEL                  RATE  AMOUNT",
        "1        fee       handling                  -    1.00",
        "1        tax       NY sales tax         8.875%    2.09",
        "invoice  discount  Loyalty discount        10%    2.50",
        "invoice  fee       Card processing fee       -    0.95",
    ]
    assert lines[-3:] == ["total       26.54", "paid        26.54", "amount due   0.00"]


def test_the_invoice_document_shows_the_rule_labels_and_rates(tmp_path, db_url):
    s = _billed(tmp_path, db_url)
    html = run("--config", str(s.config), "--db", s.db_url, "invoices", "render",
               "INV-00001").stdout  # fmt: skip
    cells = [re.sub(r"\s+", " ", c).strip() for c in re.findall(r"<td>(.*?)</td>", html, re.S)]
    assert "NY sales tax 8.875%" in cells
    # a discount or fee line names its rule, and a discount its percent
    assert "Loyalty discount (rule loyalty, 10%)" in cells
    assert "Card processing fee (rule card_fee)" in cells
    assert "Fee (rule handling)" in cells  # `handling` has no label: the document's own word
    assert "Ny sales" not in html


BOB = "    email: bob@example.com\n"


def test_a_contacts_language_and_locale_write_its_invoices_and_emails(tmp_path, db_url):
    from tests.acceptance.test_notification_scenarios import mails

    s = Scenario(tmp_path, db_url, subscriptions=BOB_SAVED,
                 replace={BOB: BOB + "    language: de\n    locale: de_DE\n"})  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")
    invoice = s.cli("invoices", "show", "INV-00001")
    assert (invoice["language"], invoice["locale"]) == ("de", "de_DE")
    html = run("--config", str(s.config), "--db", s.db_url, "invoices", "render",
               "INV-00001").stdout  # fmt: skip
    assert "Rechnung" in html and "25,00\xa0USD" in html
    (receipt,) = [m for m in mails(s) if m["To"] == "bob@example.com"]
    assert receipt["Subject"].strip() == "Beleg für Ihre Zahlung an Just One More Cup Coffee Co."
    text = receipt.get_body(("plain",)).get_content()
    assert (
        "Wir haben Ihre Zahlung über 25,00\xa0USD für Rechnung INV-00001 am 1. Dezember 2026 erhalten."
        in (text)
    )
    # admins get the account's language
    admin = [m for m in mails(s) if m["To"] == "billing@example.com"]
    assert admin and all(
        m["Subject"].startswith(("First payment", "Payment succeeded")) for m in admin
    )


def test_an_unsupported_language_is_a_validation_error(tmp_path):
    s = Scenario(tmp_path, "sqlite://", replace={BOB: BOB + "    language: nl\n"})
    result = run("--config", str(s.config), "validate")
    assert result.exit_code == 1
    text = (s.config / "abonnement.yaml").read_text()
    line = text[: text.index("    language: nl")].count("\n") + 1
    assert f"abonnement.yaml:{line}:15: error: unsupported language `nl`" in result.stderr
    assert "supported: en, da, de, fr, es" in result.stderr


def _not_accepted(s: Scenario) -> None:
    from tests.acceptance.test_notification_scenarios import mails

    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")
    assert s.charges() == []  # the processor never heard of it
    (payment,) = s.payments("bob-coffee")
    assert (payment["status"], payment["failure_code"], payment["method"], payment["amount"]) == (
        "failed", "method_not_accepted", "card", "25.00")  # fmt: skip
    assert s.subscription("bob-coffee")["status"] == "unpaid"
    assert s.invoices("bob-coffee")[0]["status"] == "open"
    subjects = sorted(m["Subject"].strip() for m in mails(s))
    assert "Payment failed: $25.00 from Bob Smith" in subjects
    assert any("failed" in m["Subject"] for m in mails(s) if m["To"] == "bob@example.com")
    s.cli("run", "--until", "2026-12-20")  # a hard failure: never retried
    assert len(s.payments("bob-coffee")) == 1 and s.charges() == []


def test_a_subscriptions_accepted_methods_hold_for_automatic_charges(tmp_path, db_url):
    sub = BOB_SAVED.replace("payment_method: bob-visa}",
                            "payment_method: bob-visa, accepted_methods: [ach]}")  # fmt: skip
    _not_accepted(Scenario(tmp_path, db_url, subscriptions=sub))


def test_the_accounts_accepted_methods_hold_for_automatic_charges(tmp_path, db_url):
    _not_accepted(Scenario(tmp_path, db_url, subscriptions=BOB_SAVED, replace={
        "accepted_methods: [card, ach]": "accepted_methods: [ach]",
        "    accepted_methods: [card]\n    save_payment_method": "    save_payment_method"}))  # fmt: skip


CARD_PAID = """\
trigger card_paid {
  on payment.succeeded
  when payment.method == "card"
  do notify(to: "ops@example.com", template: "receipt")
}
"""
TWO_MANUAL = """\
  - id: bob-a
    contact: bob
    start: 2026-12-01
    items: [{name: Beans, unit_price: "10.00 USD", frequency: monthly}]
  - id: bob-b
    contact: bob
    start: 2026-12-01
    items: [{name: Tea, unit_price: "7.00 USD", frequency: monthly}]
"""


def test_a_rule_sees_the_method_a_payment_actually_used(tmp_path, db_url):
    from tests.acceptance.test_notification_scenarios import mails

    s = Scenario(tmp_path, db_url, rules=CARD_PAID, subscriptions=TWO_MANUAL)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")
    by_sub = {i["subscription_id"]: i["number"] for i in s.invoices()}
    s.cli("invoices", "pay", by_sub["bob-a"], "--card", "tok_visa", "--as-of", "2026-12-03")
    s.cli("invoices", "pay", by_sub["bob-b"], "--method", "bank_transfer", "--as-of", "2026-12-03")
    history = s.subscription("bob-b")["history"]
    assert [h["method"] for h in history if h["type"] == "payment.succeeded"] == ["bank_transfer"]
    to_ops = [
        m.get_body(("plain",)).get_content() for m in mails(s) if m["To"] == "ops@example.com"
    ]
    assert len(to_ops) == 1 and f"for invoice {by_sub['bob-a']}" in to_ops[0]
