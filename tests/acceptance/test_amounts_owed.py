"""Zero, below-minimum and negative amounts on every path that issues an invoice: a 0.00
invoice is paid at issue, charges nothing and sends the receipt; an automatic renewal below
``minimum_charge`` is carried to the next invoice (docs/concepts.md)."""

from tests.acceptance.scenario import Scenario
from tests.acceptance.test_edits import cli_error
from tests.acceptance.test_notification_scenarios import mails

FREE_MANUAL = """\
  - id: bob-free
    contact: bob
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 1, unit_discount: 100%}]
    collection: {mode: manual, payment_terms: due_on_receipt}
"""
FREE_AUTOMATIC = """\
  - id: bob-free
    contact: bob
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 1, unit_discount: 100%}]
    collection: {mode: automatic, method: saved, payment_method: bob-visa}
"""
FREE_LINK = """\
payment_links:
  - id: free-month
    name: A month on the house
    accepted_methods: [card]
    items:
      - {product: coffee-1kg, quantity: 1, unit_discount: 100%}
quotes:
  - id: q-free
    contact: bob
    status: published
    items:
      - {product: coffee-1kg, quantity: 1, unit_discount: 100%}
"""
RECEIPT = "Receipt for your payment to Just One More Cup Coffee Co."


def _statuses(s: Scenario, sub_id: str) -> list[tuple[str, str, str, str]]:
    return [(i["number"], i["status"], i["total"], i["amount_due"]) for i in s.invoices(sub_id)]


def _receipts(s: Scenario) -> list[str]:
    return [m.get_body(("plain",)).get_content() for m in mails(s)
            if m["Subject"].strip() == RECEIPT]  # fmt: skip


def _events(s: Scenario, sub_id: str) -> list[tuple[str, str, dict]]:
    return [(h.pop("type"), h.pop("date"), {k: v for k, v in h.items() if k != "seq"})
            for h in s.subscription(sub_id)["history"]]  # fmt: skip


def test_a_free_manual_subscription_is_paid_at_issue_and_never_past_due(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=FREE_MANUAL)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2027-01-10")
    assert _statuses(s, "bob-free") == [("INV-00001", "paid", "0.00", "0.00"),
                                        ("INV-00002", "paid", "0.00", "0.00")]  # fmt: skip
    assert s.subscription("bob-free")["status"] == "active"
    paid = [e for e in _events(s, "bob-free") if e[0] in ("invoice.paid", "invoice.overdue")]
    assert paid == [
        ("invoice.paid", "2026-12-01",
         {"invoice": "INV-00001", "amount": "0.00", "settled": "nothing_owed"}),
        ("invoice.paid", "2027-01-01",
         {"invoice": "INV-00002", "amount": "0.00", "settled": "nothing_owed"}),
    ]  # fmt: skip
    assert s.payments("bob-free") == [] and s.charges() == []
    assert len(_receipts(s)) == 2
    assert "We received your payment of $0.00 for invoice INV-00001" in _receipts(s)[0]


def test_a_free_automatic_subscription_charges_nothing(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=FREE_AUTOMATIC)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2027-01-01")
    assert _statuses(s, "bob-free") == [("INV-00001", "paid", "0.00", "0.00"),
                                        ("INV-00002", "paid", "0.00", "0.00")]  # fmt: skip
    assert s.payments("bob-free") == [] and s.charges() == []
    assert s.subscription("bob-free")["status"] == "active"
    assert len(_receipts(s)) == 2


def test_a_subscription_edited_to_free_stays_active_and_editable(tmp_path, db_url):
    s = Scenario(tmp_path, db_url)
    s.cli("subscriptions", "create", "--id", "bob-beans", "--contact", "bob", "--item",
          "coffee-1kg", "--start", "2026-12-01", "--payment-terms", "due_on_receipt",
          "--as-of", "2026-11-20")  # fmt: skip
    s.cli("subscriptions", "edit", "bob-beans", "--discount", "1=100%", "--as-of", "2026-11-21")
    s.cli("run", "--until", "2027-01-10")
    assert _statuses(s, "bob-beans") == [("INV-00001", "paid", "0.00", "0.00"),
                                         ("INV-00002", "paid", "0.00", "0.00")]  # fmt: skip
    assert s.subscription("bob-beans")["status"] == "active"
    edited = s.cli("subscriptions", "edit", "bob-beans", "--quantity", "1=2",
                   "--as-of", "2027-01-10")  # fmt: skip
    assert edited["items"][0]["quantity"] == 2


def test_a_free_checkout_is_paid_at_issue_without_a_charge(tmp_path, db_url):
    s = Scenario(tmp_path, db_url)
    (s.config / "free.yaml").write_text(FREE_LINK)
    bought = s.cli("checkout", "free-month", "--contact", "bob", "--card", "tok_visa",
                   "--as-of", "2026-12-01")  # fmt: skip
    assert (bought["invoice"], bought["total"], bought["payment"]) == (
        "INV-00001", "0.00", "nothing_owed")  # fmt: skip
    (sub_id,) = bought["subscriptions"]
    assert _statuses(s, sub_id) == [("INV-00001", "paid", "0.00", "0.00")]
    assert s.charges() == [] and s.payments(sub_id) == []
    assert len(_receipts(s)) == 1
    s.cli("run", "--until", "2027-01-01")  # the card was saved: renewals are free too
    assert _statuses(s, sub_id)[1] == ("INV-00002", "paid", "0.00", "0.00")
    assert s.charges() == []


def test_a_free_quote_converted_without_a_method_is_paid_at_issue(tmp_path, db_url):
    s = Scenario(tmp_path, db_url)
    (s.config / "free.yaml").write_text(FREE_LINK)
    converted = s.cli("convert", "quote", "q-free", "--as-of", "2026-12-01")
    assert (converted["invoice"], converted["total"], converted["payment"]) == (
        "INV-00001", "0.00", "nothing_owed")  # fmt: skip
    s.cli("run", "--until", "2026-12-20")
    assert _statuses(s, "q-free-1") == [("INV-00001", "paid", "0.00", "0.00")]
    assert s.subscription("q-free-1")["status"] == "active"
    assert len(_receipts(s)) == 1


CHEAP = """\
  - id: bob-sample
    contact: bob
    start: 2026-12-01
    items: [{name: Sample, unit_price: "0.30 USD", frequency: monthly}]
    collection: {mode: automatic, method: saved, payment_method: bob-visa}
"""


def test_a_renewal_below_the_minimum_charge_is_carried_to_the_next_invoice(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=CHEAP)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2027-02-01")
    invoices = [(i["number"], i["status"], i["total"], i["amount_paid"], i["amount_due"])
                for i in s.invoices("bob-sample")]  # fmt: skip
    assert invoices == [("INV-00001", "paid", "0.30", "0.30", "0.00"),
                        ("INV-00002", "paid", "0.60", "0.60", "0.00"),
                        ("INV-00003", "paid", "0.30", "0.30", "0.00")]  # fmt: skip
    second = s.cli("invoices", "show", "INV-00002")
    assert [(line["description"], line["amount"]) for line in second["lines"]] == [
        ("Sample", "0.30"), ("Carried from INV-00001", "0.30")]  # fmt: skip
    # the processor saw one charge, of 0.60, never one below its minimum
    ((key, amount, status),) = s.charges()
    assert (key.split("/", 1)[1], amount, status) == ("INV-00002/attempt-1", "0.60", "succeeded")
    carried = [e for e in _events(s, "bob-sample") if e[0] in ("invoice.carried", "invoice.paid")]
    assert carried[:2] == [
        ("invoice.carried", "2026-12-01", {"invoice": "INV-00001", "amount": "0.30"}),
        ("invoice.paid", "2026-12-01",
         {"invoice": "INV-00001", "amount": "0.30", "settled": "carried"}),
    ]  # fmt: skip
    assert s.subscription("bob-sample")["pending_lines"] == [
        {"sku": None, "name": "Carried from INV-00003", "quantity": 1, "unit_price": "0.30",
         "unit_discount": None}]  # fmt: skip
    assert _receipts(s) == [_receipts(s)[0]] and "$0.60" in _receipts(s)[0]


def test_a_manual_invoice_below_the_minimum_charge_is_sent_as_usual(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=CHEAP.replace(
        "{mode: automatic, method: saved, payment_method: bob-visa}",
        "{mode: manual, payment_terms: net_30}"))  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")
    assert _statuses(s, "bob-sample") == [("INV-00001", "open", "0.30", "0.30")]


def test_a_checkout_below_the_minimum_charge_is_refused(tmp_path, db_url):
    s = Scenario(tmp_path, db_url)
    (s.config / "cheap.yaml").write_text(FREE_LINK.replace("unit_discount: 100%",
                                                           "unit_discount: 99%"))  # fmt: skip
    error = cli_error(s, "checkout", "free-month", "--contact", "bob", "--card", "tok_visa",
                      "--as-of", "2026-12-01")  # fmt: skip
    assert "a purchase must charge at least 0.50 USD now" in error
    assert s.invoices() == [] and s.charges() == []
