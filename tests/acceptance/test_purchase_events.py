"""Every path records the events a billing run records for the same act: checkouts and
conversions with a card, payments by hand, online and through an update link — so the outbox
sends the receipt and the admin's first-payment notice and fires ``invoice.paid`` triggers.
A purchase's invoice belongs to the subscriptions it starts."""

from decimal import Decimal

from tests.acceptance.scenario import Scenario
from tests.acceptance.test_collection_scenarios import BOB_CARD, BOB_SAVED, SAMPLER
from tests.acceptance.test_notification_scenarios import mails

RECEIPT = "Receipt for your payment to Just One More Cup Coffee Co."
PAID_TRIGGER = """\
trigger thank_you {
  on invoice.paid
  do set(subscription.owner, "thanked")
}
"""


def _history(s: Scenario, sub_id: str) -> list[tuple]:
    return [(e["type"], e.get("invoice")) for e in s.subscription(sub_id)["history"]]


def _checkout(tmp_path, db_url, **scenario) -> tuple[Scenario, dict]:
    s = Scenario(tmp_path, db_url, **scenario)
    (s.config / "links.yaml").write_text("payment_links:\n" + SAMPLER)
    bought = s.cli("checkout", "sampler", "--contact", "bob", "--card", "tok_visa",
                   "--as-of", "2026-12-01")  # fmt: skip
    return s, bought


def test_a_checkout_sends_the_receipt_and_the_first_payment_notice(tmp_path, db_url):
    s, bought = _checkout(tmp_path, db_url)
    inbox = [(m["To"], m["Subject"].strip()) for m in mails(s)]
    assert sorted(inbox) == [
        ("billing@example.com", "First payment from Bob Smith"),
        ("billing@example.com", "Payment succeeded: $55.50 from Bob Smith"),
        ("bob@example.com", RECEIPT),
    ]
    monthly, biweekly = bought["subscriptions"]
    assert _history(s, monthly) == [
        ("subscription.created", "INV-00001"), ("subscription.status_changed", None),
        ("invoice.created", "INV-00001"), ("payment.succeeded", "INV-00001"),
        ("invoice.paid", "INV-00001")]  # fmt: skip
    assert _history(s, biweekly) == [
        ("subscription.created", "INV-00001"), ("subscription.status_changed", None),
        ("invoice.created", "INV-00001")]  # fmt: skip


def test_a_checkout_fires_invoice_paid_triggers(tmp_path, db_url):
    s, bought = _checkout(tmp_path, db_url, rules=PAID_TRIGGER)
    monthly, biweekly = bought["subscriptions"]
    assert (s.subscription(monthly)["owner"], s.subscription(biweekly)["owner"]) == (
        "thanked", None)  # fmt: skip


def test_a_purchase_invoice_belongs_to_each_subscription_it_starts(tmp_path, db_url):
    s, bought = _checkout(tmp_path, db_url)
    for sub_id in bought["subscriptions"]:
        shown = s.subscription(sub_id)
        assert shown["invoices"] == ["INV-00001"]
        assert [(p["invoice_number"], p["amount"], p["status"]) for p in shown["payments"]] == [
            ("INV-00001", "55.50", "succeeded")]  # fmt: skip
        assert [i["number"] for i in s.invoices(sub_id)] == ["INV-00001"]
        assert [p["invoice_number"] for p in s.payments(sub_id)] == ["INV-00001"]


def test_converting_a_quote_with_a_card_sends_the_receipt_and_fires_triggers(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, rules=PAID_TRIGGER)
    s.cli("convert", "quote", "q-7", "--card", "tok_visa", "--as-of", "2026-12-01")
    inbox = sorted((m["To"], m["Subject"].strip()) for m in mails(s))
    assert inbox == [
        ("ane@example.dk", RECEIPT),
        ("billing@example.com", "First payment from Ane Jensen"),
        ("billing@example.com", "Payment succeeded: $139.00 from Ane Jensen"),
    ]
    shown = s.subscription("q-7-1")
    assert shown["owner"] == "thanked"
    assert shown["invoices"] == ["INV-00001"]
    assert [(p["invoice_number"], p["amount"], p["status"]) for p in shown["payments"]] == [
        ("INV-00001", "139.00", "succeeded")]  # fmt: skip
    assert [i["number"] for i in s.invoices("q-7-1")] == ["INV-00001"]


def test_paying_a_conversion_invoice_by_hand_records_the_payment_and_clears_the_due(
    tmp_path, db_url
):
    s = Scenario(tmp_path, db_url)
    converted = s.cli("convert", "quote", "q-7", "--as-of", "2026-12-01")
    assert s.subscription("q-7-1")["invoices"] == [converted["invoice"]]
    paid = s.cli("invoices", "pay", converted["invoice"], "--as-of", "2026-12-10")
    assert (paid["status"], Decimal(paid["amount_paid"])) == ("paid", Decimal("139.00"))
    assert _history(s, "q-7-1")[-2:] == [("payment.succeeded", "INV-00001"),
                                         ("invoice.paid", "INV-00001")]  # fmt: skip
    assert ("ane@example.dk", RECEIPT) in [(m["To"], m["Subject"].strip()) for m in mails(s)]
    s.cli("run", "--until", "2027-01-01")  # the paid purchase invoice is not overdue any more
    assert s.subscription("q-7-1")["status"] == "active"


def test_paying_a_conversion_invoice_online_records_the_payment(tmp_path, db_url):
    s = Scenario(tmp_path, db_url)
    converted = s.cli("convert", "quote", "q-7", "--as-of", "2026-12-01")
    paid = s.cli("invoices", "pay", converted["invoice"], "--card", "tok_visa",
                 "--as-of", "2026-12-10")  # fmt: skip
    assert (paid["status"], Decimal(paid["amount_paid"])) == ("paid", Decimal("139.00"))
    assert _history(s, "q-7-1")[-2:] == [("payment.succeeded", "INV-00001"),
                                         ("invoice.paid", "INV-00001")]  # fmt: skip
    assert [(p["invoice_number"], p["status"]) for p in s.payments("q-7-1")] == [
        ("INV-00001", "succeeded")]  # fmt: skip


def test_a_renewal_paid_by_hand_says_what_a_charge_says(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=BOB_SAVED.replace(
        "collection: {mode: automatic, method: saved, payment_method: bob-visa}",
        "collection: {mode: manual}"))  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")
    (invoice,) = s.invoices("bob-coffee")
    s.cli("invoices", "pay", invoice["number"], "--as-of", "2026-12-03")
    assert _history(s, "bob-coffee")[-2:] == [("payment.succeeded", invoice["number"]),
                                              ("invoice.paid", invoice["number"])]  # fmt: skip
    subjects = [m["Subject"].strip() for m in mails(s)]
    assert RECEIPT in subjects and "First payment from Bob Smith" in subjects


def test_a_purchase_paid_by_bank_debit_settles_on_a_later_run(tmp_path, db_url):
    # The purchase's charge is sent before its invoice has a number: a later run must ask the
    # processor with that same key, settle it once, and finish (it used to ask with the
    # invoice's key, never settle, and replay the settlement day forever).
    s = Scenario(tmp_path, db_url,
                 replace={BOB_CARD: "      - {id: bob-visa, type: ach, token: tok_ach}\n"})  # fmt: skip
    (s.config / "links.yaml").write_text("payment_links:\n" + SAMPLER.replace("[card]", "[ach]"))
    bought = s.cli("checkout", "sampler", "--contact", "bob", "--payment-method", "bob-visa",
                   "--as-of", "2026-12-01")  # fmt: skip
    assert bought["payment"] == "processing"
    monthly, _ = bought["subscriptions"]
    s.cli("run", "--until", "2026-12-10")
    (payment,) = [p for p in s.payments(monthly) if p["invoice_number"] == bought["invoice"]]
    assert (payment["status"], payment["method"]) == ("succeeded", "ach")
    assert s.cli("invoices", "show", bought["invoice"])["status"] == "paid"
    assert ("payment.succeeded", bought["invoice"]) in _history(s, monthly)
    assert RECEIPT in [m["Subject"].strip() for m in mails(s)]


def test_a_part_payment_by_hand_gets_a_receipt_for_what_it_paid(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=BOB_SAVED.replace(
        "collection: {mode: automatic, method: saved, payment_method: bob-visa}",
        "collection: {mode: manual}"))  # fmt: skip
    s.cli("run", "--as-of", "2026-12-01")
    (invoice,) = s.invoices("bob-coffee")  # 25.00
    s.cli("invoices", "pay", invoice["number"], "--amount", "10.00", "--as-of", "2026-12-03")
    s.cli("invoices", "pay", invoice["number"], "--as-of", "2026-12-04")
    receipts = [m.get_body(("plain",)).get_content() for m in mails(s)
                if m["Subject"].strip() == RECEIPT]  # fmt: skip
    assert [("$10.00" in text, "$15.00" in text, "$25.00" in text) for text in receipts] == [
        (True, False, False), (False, True, False)]  # fmt: skip
    # the admins hear of the first payment once, when the invoice is paid in full
    firsts = [m for m in mails(s) if m["Subject"].strip() == "First payment from Bob Smith"]
    assert len(firsts) == 1
