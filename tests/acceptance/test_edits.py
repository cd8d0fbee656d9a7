"""Create, edit and delete subscriptions through the CLI (F20–F22, F24, F18)."""

import pytest

from tests.acceptance.scenario import Scenario
from tests.conftest import run


def cli_error(s: Scenario, *args: str) -> str:
    """The message of a refused command: exit code 3 when it names a record that does not
    exist, else 1."""
    result = run("--config", str(s.config), "--db", s.db_url, *args)
    expected = 3 if result.stderr.startswith("error: no ") else 1
    assert result.exit_code == expected, result.output
    return result.stderr


@pytest.fixture
def created(tmp_path, db_url) -> Scenario:
    s = Scenario(tmp_path, db_url)
    sub = s.cli("subscriptions", "create", "--id", "ane-beans", "--contact", "ane",
                "--company", "acme", "--item", "coffee-1kg:2", "--item", "coffee-250g",
                "--collection", "automatic", "--payment-method", "ane-visa",
                "--as-of", "2026-12-01")  # fmt: skip
    assert (sub["status"], sub["mrr"], sub["next_payment_date"]) == ("scheduled", "62.50",
                                                                     "2026-12-01")  # fmt: skip
    assert sub["properties"] == {"roast": "medium"}  # the default of settings
    return s


def test_create_then_bill_then_edit_from_the_next_cycle(created):
    s = created
    s.cli("run", "--until", "2026-12-01")
    (first,) = s.invoices("ane-beans")
    assert (first["total"], first["status"]) == ("62.50", "paid")
    edited = s.cli("subscriptions", "edit", "ane-beans", "--quantity", "1=3", "--clone", "2",
                   "--discount", "3=10%", "--property", "roast=dark",
                   "--as-of", "2026-12-10")  # fmt: skip
    assert [(i["sku"], i["quantity"], i["unit_discount"]) for i in edited["items"]] == [
        ("COFFEE-1KG", 3, None), ("COFFEE-250G", 1, None), ("COFFEE-250G", 1, "10%")]  # fmt: skip
    assert edited["mrr"] == "100.00" and edited["properties"] == {"roast": "dark"}
    s.cli("run", "--until", "2027-01-01")
    second = s.cli("invoices", "show", s.invoices("ane-beans")[1]["number"])
    assert (second["subtotal"], second["discount_total"], second["total"]) == (
        "100.00", "1.25", "98.75")  # fmt: skip
    s.cli("subscriptions", "edit", "ane-beans", "--delete", "3", "--move", "2=1",
          "--as-of", "2027-01-05")  # fmt: skip
    skus = [i["sku"] for i in s.subscription("ane-beans")["items"]]
    assert skus == ["COFFEE-250G", "COFFEE-1KG"]
    history = [h["type"] for h in s.subscription("ane-beans")["history"]]
    assert history.count("subscription.changed") == 2


def test_edits_are_refused_when_the_rules_say_so(created):
    s = created
    s.cli("run", "--until", "2026-12-01")
    # 2026-12-31 is one day before the next payment: inside the 2-day freeze
    assert "no edits within 2 days" in cli_error(
        s, "subscriptions", "edit", "ane-beans", "--quantity", "1=1", "--as-of", "2026-12-31"
    )
    assert "there is no line 9" in cli_error(
        s, "subscriptions", "edit", "ane-beans", "--delete", "9", "--as-of", "2026-12-10"
    )
    assert "bills monthly" in cli_error(
        s, "subscriptions", "edit", "ane-beans", "--add", "coffee-500g", "--as-of", "2026-12-10"
    )
    assert "a unit price is not negative" in cli_error(
        s, "subscriptions", "edit", "ane-beans", "--price", "1=-5.00 USD", "--as-of", "2026-12-10"
    )
    assert "between 0% and 100%" in cli_error(
        s, "subscriptions", "edit", "ane-beans", "--discount", "1=150%", "--as-of", "2026-12-10"
    )
    assert "not a value of property `roast`" in cli_error(
        s, "subscriptions", "edit", "ane-beans", "--property", "roast=burnt",
        "--as-of", "2026-12-10")  # fmt: skip
    assert "only an expired or canceled" in cli_error(s, "subscriptions", "delete", "ane-beans")
    s.cli("subscriptions", "cancel", "ane-beans", "--as-of", "2026-12-10")
    assert "only active or scheduled" in cli_error(
        s, "subscriptions", "edit", "ane-beans", "--quantity", "1=1", "--as-of", "2026-12-11"
    )
    assert s.cli("subscriptions", "delete", "ane-beans") == {"deleted": "ane-beans"}
    assert [i["status"] for i in s.invoices("ane-beans")] == ["paid"]  # invoices stay


def test_invoice_creation_off_is_a_record_never_billed(tmp_path, db_url):
    s = Scenario(tmp_path, db_url)
    s.cli("subscriptions", "create", "--id", "elsewhere", "--contact", "bob", "--item",
          "coffee-1kg", "--no-invoices", "--as-of", "2026-12-01")  # fmt: skip
    s.cli("run", "--until", "2027-03-01")
    assert s.invoices("elsewhere") == []
    assert "invoice creation is off" in cli_error(
        s, "subscriptions", "edit", "elsewhere", "--quantity", "1=2", "--as-of", "2027-01-10"
    )


def test_a_prorated_edit_settles_the_rest_of_the_period_on_the_next_invoice(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, replace={"    proration: false\n": "    proration: true\n"})
    s.cli("subscriptions", "create", "--id", "bob-beans", "--contact", "bob", "--item",
          "coffee-1kg", "--as-of", "2026-12-01")  # fmt: skip
    s.cli("run", "--until", "2026-12-01")
    # on 12-11, 21 of December's 31 days remain: 25.00 × 21/31 = 16.94 back, 50.00 × 21/31 = 33.87
    edited = s.cli("subscriptions", "edit", "bob-beans", "--quantity", "1=2", "--prorate",
                   "--as-of", "2026-12-11")  # fmt: skip
    assert [(p["name"], p["unit_price"]) for p in edited["pending_lines"]] == [
        ("Unused time: Just one more cup - 1 KG Subscription (2026-12-11 – 2026-12-31)", "-16.94"),
        ("Remaining time: Just one more cup - 1 KG Subscription (2026-12-11 – 2026-12-31)",
         "33.87"),
    ]  # fmt: skip
    s.cli("run", "--until", "2027-02-01")
    january, february = [s.cli("invoices", "show", i["number"])
                         for i in s.invoices("bob-beans")[1:]]  # fmt: skip
    assert [line["amount"] for line in january["lines"]] == ["50.00", "-16.94", "33.87"]
    assert january["total"] == "66.93"
    assert [line["amount"] for line in february["lines"]] == ["50.00"]
    assert s.subscription("bob-beans")["pending_lines"] == []


def test_prorate_needs_the_setting(tmp_path):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}")
    s.cli("subscriptions", "create", "--id", "bob-beans", "--contact", "bob", "--item",
          "coffee-1kg", "--as-of", "2026-12-01")  # fmt: skip
    s.cli("run", "--until", "2026-12-01")
    assert "proration is off" in cli_error(s, "subscriptions", "edit", "bob-beans", "--quantity",
                                           "1=2", "--prorate", "--as-of", "2026-12-11")  # fmt: skip


def test_moving_the_next_payment_date_moves_the_later_ones(tmp_path, db_url):
    s = Scenario(tmp_path, db_url)
    s.cli("subscriptions", "create", "--id", "bob-beans", "--contact", "bob", "--item",
          "coffee-1kg", "--payments", "3", "--as-of", "2026-12-01")  # fmt: skip
    s.cli("run", "--until", "2026-12-01")
    moved = s.cli("subscriptions", "edit", "bob-beans", "--next-payment-date", "2027-01-15",
                  "--as-of", "2026-12-10")  # fmt: skip
    assert (moved["next_payment_date"], moved["end_date"]) == ("2027-01-15", "2027-03-15")
    assert "must be after 2026-12-11" in cli_error(
        s, "subscriptions", "edit", "bob-beans", "--next-payment-date", "2026-12-05",
        "--as-of", "2026-12-11")  # fmt: skip
    s.cli("run", "--until", "2027-06-01")
    assert [(i["issue_date"], i["period_start"], i["period_end"]) for i in s.invoices("bob-beans")] == [
        ("2026-12-01", "2026-12-01", "2027-01-01"),  # issued before the move, as it was
        ("2027-01-15", "2027-01-15", "2027-02-15"),
        ("2027-02-15", "2027-02-15", "2027-03-15"),
    ]  # fmt: skip
    assert s.subscription("bob-beans")["status"] == "expired"
    assert "is expired" in cli_error(
        s, "subscriptions", "edit", "bob-beans", "--next-payment-date", "2027-07-01",
        "--as-of", "2027-06-01")  # fmt: skip


def test_show_lists_items_invoices_payments_and_history(created):
    s = created
    s.cli("run", "--until", "2026-12-01")
    shown = s.subscription("ane-beans")
    assert shown["invoices"] == ["INV-00001"]
    assert [(p["invoice_number"], p["status"], p["amount"]) for p in shown["payments"]] == [
        ("INV-00001", "succeeded", "62.50")]  # fmt: skip
    assert [h["type"] for h in shown["history"]] == [
        "subscription.created", "subscription.status_changed", "invoice.created",
        "payment.succeeded", "invoice.paid"]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), [
    (["--item", "coffee-1kg", "--collection", "automatic"], "automatic collection needs --payment-method"),
    (["--item", "coffee-1kg", "--payment-terms", "net_x"], "bad payment terms `net_x`"),
    (["--item", "coffee-1kg", "--item", "coffee-500g"], "different frequencies"),
    (["--item", "grinder"], "`grinder` is sold once"),
    (["--item", "coffee-1kg", "--currency", "EUR"], "`coffee-1kg` has no price in EUR"),
    (["--item", "nope"], "no product `nope`"),
    (["--item", "coffee-1kg", "--property", "roast=burnt"], "not a value of property `roast`"),
])  # fmt: skip
def test_create_refuses_what_the_config_loader_would(tmp_path, args, message):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}")
    assert message in cli_error(
        s, "subscriptions", "create", "--id", "y", "--contact", "bob", *args
    )
    assert s.cli("subscriptions", "list") == []  # nothing written


def test_create_refuses_the_id_of_a_declared_subscription_not_applied_yet(tmp_path, db_url):
    declared = """\
  - id: bob-declared
    contact: bob
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 1}]
"""
    s = Scenario(tmp_path, db_url, subscriptions=declared)
    error = cli_error(s, "subscriptions", "create", "--id", "bob-declared", "--contact", "bob",
                      "--item", "coffee-250g", "--as-of", "2026-12-01")  # fmt: skip
    assert "subscription `bob-declared` is declared in abonnement.yaml:" in error
    assert "`abonnement apply` creates it, or choose another id" in error
    applied = s.cli("apply", "--as-of", "2026-12-01")
    assert applied["created"] == ["bob-declared"]
    sub = s.subscription("bob-declared")
    assert [(i["sku"], i["quantity"]) for i in sub["items"]] == [("COFFEE-1KG", 1)]
