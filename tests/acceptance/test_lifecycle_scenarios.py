"""S11 — pause, resume, cancel — through the CLI, on SQLite and PostgreSQL."""

from tests.acceptance.scenario import Scenario
from tests.conftest import run

MONTHLY = """\
  - id: beans
    contact: bob
    start: 2026-12-01
    SPEC
    items: [{name: Beans, unit_price: "10.00 USD", frequency: monthly}]
"""


def test_s11_pause_resume_cancel(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=MONTHLY.replace("    SPEC\n", ""))
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-10")
    paused = s.cli("subscriptions", "pause", "beans", "--as-of", "2026-12-10")
    assert (paused["status"], paused["next_payment_date"]) == ("paused", None)
    s.cli("run", "--until", "2027-02-14")
    resumed = s.cli("subscriptions", "resume", "beans", "--as-of", "2027-02-15")
    assert (resumed["status"], resumed["next_payment_date"]) == ("active", "2027-03-01")
    s.cli("run", "--until", "2027-03-09")
    assert [i["issue_date"] for i in s.invoices("beans")] == ["2026-12-01", "2027-03-01"]
    canceled = s.cli("subscriptions", "cancel", "beans", "--as-of", "2027-03-10")
    assert canceled["status"] == "canceled"
    s.cli("run", "--until", "2027-12-31")
    assert [i["issue_date"] for i in s.invoices("beans")] == ["2026-12-01", "2027-03-01"]
    history = [h["type"] for h in s.subscription("beans")["history"]]
    assert history.count("subscription.paused") == 1 and "subscription.canceled" in history


def test_a_paused_fixed_term_ends_later(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=MONTHLY.replace("SPEC", "terms: {payments: 3}"))
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-05")
    assert s.subscription("beans")["end_date"] == "2027-03-01"
    s.cli("subscriptions", "pause", "beans", "--as-of", "2026-12-05")
    s.cli("subscriptions", "resume", "beans", "--as-of", "2027-01-20")  # January is skipped
    sub = s.subscription("beans")
    assert (sub["end_date"], sub["payments_made"]) == ("2027-04-01", 1)
    s.cli("run", "--until", "2027-06-01")
    assert [i["issue_date"] for i in s.invoices("beans")] == ["2026-12-01", "2027-02-01",
                                                              "2027-03-01"]  # fmt: skip
    assert s.subscription("beans")["status"] == "expired"


def test_cancel_at_period_end_bills_the_period_then_stops(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=MONTHLY.replace("    SPEC\n", ""))
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-05")
    s.cli("subscriptions", "cancel", "beans", "--at-period-end", "--as-of", "2026-12-05")
    assert s.subscription("beans")["status"] == "active"
    s.cli("run", "--until", "2027-03-01")
    sub = s.subscription("beans")
    assert sub["status"] == "canceled"
    assert [i["issue_date"] for i in s.invoices("beans")] == ["2026-12-01"]


def test_refused_changes_are_clean_errors(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=MONTHLY.replace("    SPEC\n", ""))
    s.cli("apply", "--as-of", "2026-12-01")
    result = run("--config", str(s.config), "--db", s.db_url, "subscriptions", "resume", "beans")
    assert result.exit_code == 1 and "is scheduled, not paused" in result.stderr
    result = run("--config", str(s.config), "--db", s.db_url, "subscriptions", "pause", "nope")
    assert result.exit_code == 3 and "no subscription `nope`" in result.stderr  # not found


def test_s12_convert_quote_charges_due_now_and_keeps_the_associations(tmp_path, db_url):
    s = Scenario(tmp_path, db_url)
    converted = s.cli("convert", "quote", "q-7", "--payment-method", "ane-visa",
                      "--as-of", "2026-12-01")  # fmt: skip
    assert converted == {"invoice": "INV-00001", "subscriptions": ["q-7-1"],
                         "payment": "succeeded", "total": "139.00", "currency": "USD"}  # fmt: skip
    invoice = s.cli("invoices", "show", "INV-00001")
    assert [(line["sku"], line["quantity"], line["amount"], line["subscription_id"])
            for line in invoice["lines"]] == [
        ("GRINDER", 1, "89.00", None), ("COFFEE-1KG", 2, "50.00", "q-7-1")]  # fmt: skip
    sub = s.subscription("q-7-1")
    assert (sub["status"], sub["frequency"], sub["mrr"], sub["number_of_payments"]) == (
        "active", "monthly", "50.00", None)  # fmt: skip
    assert (sub["contact_id"], sub["company_id"], sub["deals"], sub["quote_id"]) == (
        "ane", "acme", ["deal-42"], "q-7")  # fmt: skip
    assert sub["next_payment_date"] == "2027-01-01"
    s.cli("run", "--until", "2027-01-01")
    renewals = [i for i in s.invoices("q-7-1") if i["number"] != "INV-00001"]
    assert [(i["issue_date"], i["total"], i["status"]) for i in renewals] == [
        ("2027-01-01", "50.00", "paid")]  # fmt: skip
    again = run("--config", str(s.config), "--db", s.db_url, "convert", "quote", "q-7",
                "--payment-method", "ane-visa", "--as-of", "2026-12-02")  # fmt: skip
    assert again.exit_code == 1 and "already done" in again.stderr


def test_converting_without_a_method_invoices_with_payment_terms(tmp_path, db_url):
    s = Scenario(tmp_path, db_url)
    converted = s.cli("convert", "quote", "q-7", "--as-of", "2026-12-01")
    assert (converted["payment"], converted["total"]) == (None, "139.00")
    invoice = s.cli("invoices", "show", converted["invoice"])
    assert (invoice["status"], invoice["due_date"]) == ("open", "2026-12-31")  # net_30
    assert s.subscription("q-7-1")["collection_mode"] == "manual"
    s.cli("run", "--until", "2027-01-01")
    assert s.subscription("q-7-1")["status"] == "past_due"


def test_convert_deal_bills_its_line_items_and_refuses_a_deal_without_them(tmp_path, db_url):
    s = Scenario(tmp_path, db_url)
    (s.config / "deals.yaml").write_text(  # sections split across files are concatenated
        "deals:\n  - {id: deal-43, name: Bob's beans, contact: bob,"
        " items: [{product: coffee-250g, quantity: 2}]}\n"
    )
    converted = s.cli("convert", "deal", "deal-43", "--card", "tok_visa", "--as-of", "2026-12-01")
    assert (converted["subscriptions"], converted["total"], converted["payment"]) == (
        ["deal-43-1"], "25.00", "succeeded")  # fmt: skip
    assert s.subscription("deal-43-1")["deals"] == ["deal-43"]
    refused = run("--config", str(s.config), "--db", s.db_url, "convert", "deal", "deal-42")
    assert refused.exit_code == 1 and "needs a contact and line items" in refused.stderr


def test_a_declined_card_then_another_card_buys(tmp_path, db_url):
    s = Scenario(tmp_path, db_url)
    declined = run("--config", str(s.config), "--db", s.db_url, "convert", "quote", "q-7",
                   "--card", "tok_lost_card", "--as-of", "2026-12-01")  # fmt: skip
    assert declined.exit_code == 1 and "declined (lost_card)" in declined.stderr
    bought = s.cli("convert", "quote", "q-7", "--card", "tok_visa", "--as-of", "2026-12-01")
    assert (bought["payment"], bought["total"]) == ("succeeded", "139.00")
    ((key, amount, status),) = s.charges()  # one charge moved money: the second card's
    from abonnement.plugins.storage.sql import SqlStorage

    prefix = f"{SqlStorage(s.db_url).instance_id()}/convert/quote/q-7/"  # the database's key
    assert (key.startswith(prefix), amount, status) == (True, "139.00", "succeeded")
