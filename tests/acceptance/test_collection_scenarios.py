"""Collection scenarios of the spec (S1, S7, S8) through the CLI, on SQLite and PostgreSQL."""

import sqlite3
from decimal import Decimal

import pytest

from tests.acceptance.scenario import Scenario

SAMPLER = """\
  - id: sampler
    name: Every coffee we roast
    accepted_methods: [card]
    items:
      - {product: coffee-1kg, quantity: 1}
      - {product: coffee-500g, quantity: 1}
      - {product: coffee-250g, quantity: 1}
"""
BOB_CARD = "      - {id: bob-visa, type: card, token: tok_visa}\n"
SECRET = {"ABONNEMENT_LINK_SECRET": "s3cret-s3cret-s3cret-s3cret-s3cret"}
BOB_MONTHLY = """\
  - id: bob-coffee
    contact: bob
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 1}]
    collection: {mode: automatic, method: METHOD, payment_method: bob-visa}
"""
BOB_SAVED = BOB_MONTHLY.replace("METHOD", "saved")


def test_s1_checkout_then_three_months_of_renewals(tmp_path, db_url):
    s = Scenario(tmp_path, db_url)
    links = s.config / "links.yaml"
    links.write_text("payment_links:\n" + SAMPLER)
    bought = s.cli("checkout", "sampler", "--contact", "bob", "--card", "tok_visa",
                   "--as-of", "2026-12-01")  # fmt: skip
    assert (bought["invoice"], bought["total"], bought["payment"]) == ("INV-00001", "55.50",
                                                                       "succeeded")  # fmt: skip
    monthly, biweekly = bought["subscriptions"]
    checkout = s.cli("invoices", "show", "INV-00001")
    owners = [(line["sku"], line["subscription_id"]) for line in checkout["lines"]]
    assert sorted(owners) == [("COFFEE-1KG", monthly), ("COFFEE-250G", monthly),
                              ("COFFEE-500G", biweekly)]  # fmt: skip
    s.cli("run", "--until", "2027-03-01")
    invoices = s.invoices()
    assert len(invoices) == 10 and {i["status"] for i in invoices} == {"paid"}
    by_sub = {sub: [(i["issue_date"], i["total"]) for i in invoices if i["subscription_id"] == sub]
              for sub in (monthly, biweekly)}  # fmt: skip
    assert by_sub[monthly] == [("2027-01-01", "37.50"), ("2027-02-01", "37.50"),
                               ("2027-03-01", "37.50")]  # fmt: skip
    assert [d for d, _ in by_sub[biweekly]] == ["2026-12-15", "2026-12-29", "2027-01-12",
                                                "2027-01-26", "2027-02-09", "2027-02-23"]  # fmt: skip
    assert sum(Decimal(i["total"]) for i in invoices) == Decimal("276.00")
    assert s.subscription(monthly)["next_payment_date"] == "2027-04-01"
    assert s.subscription(biweekly)["next_payment_date"] == "2027-03-09"
    assert len(s.charges()) == 10  # the processor's own ledger: one charge per invoice


def _s7(tmp_path, db_url, token: str) -> Scenario:
    s = Scenario(
        tmp_path,
        db_url,
        replace={BOB_CARD: BOB_CARD.replace("tok_visa", token)},
        subscriptions=BOB_SAVED,
    )
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-09")
    return s


def test_s7_soft_decline_is_retried_then_the_update_link_collects(tmp_path, db_url):
    s = _s7(tmp_path, db_url, "tok_insufficient_funds")
    attempts = s.payments("bob-coffee")
    assert [(p["date"], p["attempt"], p["status"], p["failure_code"]) for p in attempts] == [
        ("2026-12-01", 1, "failed", "insufficient_funds"),
        ("2026-12-02", 2, "failed", "insufficient_funds"),
        ("2026-12-04", 3, "failed", "insufficient_funds"),
        ("2026-12-06", 4, "failed", "insufficient_funds"),
        ("2026-12-08", 5, "failed", "insufficient_funds"),
    ]
    assert s.subscription("bob-coffee")["status"] == "unpaid"
    link = s.cli(
        "payment-methods", "update-link", "bob-coffee", "--as-of", "2026-12-09", env=SECRET
    )
    assert link["expires_at"] == "2026-12-23"
    updated = s.cli("payment-methods", "update", link["token"], "--card", "tok_visa",
                    "--as-of", "2026-12-10", env=SECRET)  # fmt: skip
    assert updated == {"subscription": "bob-coffee", "collected": ["INV-00001"], "status": "active"}
    sub = s.subscription("bob-coffee")
    assert (sub["status"], sub["next_payment_date"]) == ("active", "2027-01-01")
    assert [(k.split("/")[1], a, st) for k, a, st in s.charges()] == [("INV-00001", "25.00",
                                                                       "succeeded")]  # fmt: skip


def test_s7_hard_decline_is_not_retried(tmp_path, db_url):
    s = _s7(tmp_path, db_url, "tok_lost_card")
    attempts = s.payments("bob-coffee")
    assert [(p["attempt"], p["failure_code"]) for p in attempts] == [(1, "lost_card")]
    assert s.subscription("bob-coffee")["status"] == "unpaid"


def test_a_forged_or_expired_update_link_is_refused(tmp_path, db_url):
    s = _s7(tmp_path, db_url, "tok_insufficient_funds")
    link = s.cli(
        "payment-methods", "update-link", "bob-coffee", "--as-of", "2026-12-09", env=SECRET
    )
    from tests.conftest import run

    for token, day in ((link["token"][:-2] + "xx", "2026-12-10"), (link["token"], "2027-01-01")):
        result = run("--config", str(s.config), "--db", s.db_url, "payment-methods", "update",
                     token, "--card", "tok_visa", "--as-of", day, env=SECRET)  # fmt: skip
        assert result.exit_code == 1 and "update link" in result.stderr


@pytest.mark.parametrize(("token", "status", "sub_status", "code"), [
    ("tok_ach", "succeeded", "active", None), ("tok_ach_fails", "failed", "unpaid", "account_closed"),
])  # fmt: skip
def test_s8_bank_debit_settles_four_days_later(tmp_path, db_url, token, status, sub_status, code):
    s = Scenario(
        tmp_path,
        db_url,
        replace={BOB_CARD: f"      - {{id: bob-visa, type: ach, token: {token}}}\n"},
        subscriptions=BOB_SAVED,
    )
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")
    (payment,) = s.payments("bob-coffee")
    assert (payment["method"], payment["status"]) == ("ach", "processing")
    assert s.subscription("bob-coffee")["status"] == "active"
    s.cli("run", "--until", "2026-12-04")
    assert s.payments("bob-coffee")[0]["status"] == "processing"
    s.cli("run", "--until", "2026-12-20")
    (payment,) = s.payments("bob-coffee")  # no automatic retry of a bank debit
    assert (payment["status"], payment["failure_code"]) == (status, code)
    assert s.subscription("bob-coffee")["status"] == sub_status
    assert s.invoices("bob-coffee")[0]["status"] == ("paid" if status == "succeeded" else "open")


def test_timeout_charges_once(tmp_path, db_url):
    s = Scenario(
        tmp_path,
        db_url,
        replace={BOB_CARD: BOB_CARD.replace("tok_visa", "tok_timeout")},
        subscriptions=BOB_SAVED,
    )
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2027-02-01")
    assert [p["status"] for p in s.payments("bob-coffee")] == ["succeeded"] * 3
    assert len(s.charges()) == 3


def test_after_the_final_failure_settings_may_cancel(tmp_path, db_url):
    s = Scenario(
        tmp_path,
        db_url,
        replace={
            BOB_CARD: BOB_CARD.replace("tok_visa", "tok_insufficient_funds"),
            "after_final_failure: keep_unpaid": "after_final_failure: cancel",
        },
        subscriptions=BOB_SAVED,
    )
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-07")
    assert s.subscription("bob-coffee")["status"] == "unpaid"  # one retry still to come
    s.cli("run", "--until", "2027-02-01")
    sub = s.subscription("bob-coffee")
    assert sub["status"] == "canceled" and sub["next_payment_date"] is None
    assert len(s.payments("bob-coffee")) == 5 and len(s.invoices("bob-coffee")) == 1


def test_manual_retries_are_limited_to_three(tmp_path, db_url):
    from tests.conftest import run

    s = _s7(tmp_path, db_url, "tok_lost_card")
    payment_id = str(s.payments("bob-coffee")[0]["id"])
    for attempt in (2, 3, 4):
        retried = s.cli("payments", "retry", payment_id, "--as-of", "2026-12-10")
        assert (retried["attempt"], retried["status"]) == (attempt, "failed")
    refused = run("--config", str(s.config), "--db", s.db_url, "payments", "retry", payment_id,
                  "--as-of", "2026-12-10")  # fmt: skip
    assert refused.exit_code == 1 and "has had its 3 manual retries" in refused.stderr


@pytest.mark.parametrize("collection", ["{mode: manual, payment_terms: net_15}",
                                        "{mode: automatic, method: first_invoice}"])  # fmt: skip
def test_a_retry_with_no_saved_method_is_refused_and_charges_nothing(tmp_path, db_url,
                                                                     collection):  # fmt: skip
    """An invoice sent for payment (manual, or a card to collect on the first invoice), which
    the buyer tried to pay with a card that was declined: that card was not kept, so
    `payments retry` has nothing to charge. It says so, and nothing is written: no attempt,
    no event, no message."""
    from tests.conftest import run

    declared = BOB_MONTHLY.replace(
        "{mode: automatic, method: METHOD, payment_method: bob-visa}", collection
    )
    s = Scenario(tmp_path, db_url, subscriptions=declared)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")
    declined = run("--config", str(s.config), "--db", s.db_url, "invoices", "pay", "INV-00001",
                   "--card", "tok_insufficient_funds", "--as-of", "2026-12-02")  # fmt: skip
    assert declined.exit_code == 1 and "declined (insufficient_funds)" in declined.stderr
    (payment,) = s.payments("bob-coffee")
    events = s.cli("events", "list")
    outbox = sorted(p.name for p in (s.config / "outbox").iterdir())
    refused = run("--config", str(s.config), "--db", s.db_url, "payments", "retry",
                  str(payment["id"]), "--as-of", "2026-12-03")  # fmt: skip
    assert refused.exit_code == 1
    assert refused.stderr.strip() == (
        "error: invoice INV-00001 has no saved payment method to charge; the buyer pays it "
        "through its pay link, or record a payment made by other means "
        "(`invoices pay INV-00001`)"
    )
    assert s.payments("bob-coffee") == [payment]
    assert s.cli("events", "list") == events
    assert sorted(p.name for p in (s.config / "outbox").iterdir()) == outbox
    assert s.invoices("bob-coffee")[0]["status"] == "open"
    # paid by other means since: not open, as before (not "no saved method")
    s.cli("invoices", "pay", "INV-00001", "--as-of", "2026-12-04")
    paid = run("--config", str(s.config), "--db", s.db_url, "payments", "retry",
               str(payment["id"]), "--as-of", "2026-12-05")  # fmt: skip
    assert paid.exit_code == 1 and paid.stderr.strip() == "error: invoice INV-00001 is not open"


def test_a_retry_while_a_bank_debit_is_on_its_way_charges_nothing_more(tmp_path, db_url):
    """A first invoice the buyer paid by bank debit on its page (processing): a retry must
    not send anyone to take a second payment; the debit's outcome is the one."""
    from tests.conftest import run

    declared = BOB_MONTHLY.replace(
        "{mode: automatic, method: METHOD, payment_method: bob-visa}",
        "{mode: automatic, method: first_invoice}",
    )
    s = Scenario(tmp_path, db_url, subscriptions=declared)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")
    debit = s.cli("invoices", "pay", "INV-00001", "--card", "tok_ach", "--as-of", "2026-12-02")
    assert debit["status"] == "processing"
    (payment,) = s.payments("bob-coffee")
    refused = run("--config", str(s.config), "--db", s.db_url, "payments", "retry",
                  str(payment["id"]), "--as-of", "2026-12-03")  # fmt: skip
    assert refused.exit_code != 0
    assert (
        "invoice INV-00001 is already being collected (attempt 1 is pending); its "
        "outcome is the one, nothing more is charged" in refused.stderr
    )
    assert s.payments("bob-coffee") == [payment]


def test_dunning_ends_when_the_subscription_turns_manual(tmp_path, db_url):
    """A declined automatic charge is in dunning when the declaration switches the
    subscription to manual collection (its saved method dropped): the retries due are not
    sent (no charge of an empty token, no "payment failed" to the buyer), the invoice stays
    open and is paid like a manual one."""
    s = Scenario(
        tmp_path,
        db_url,
        replace={BOB_CARD: BOB_CARD.replace("tok_visa", "tok_insufficient_funds")},
        subscriptions=BOB_SAVED,
    )
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")
    (failed,) = s.payments("bob-coffee")
    assert (failed["attempt"], failed["failure_code"]) == (1, "insufficient_funds")
    yaml = s.config / "abonnement.yaml"
    manual = "{mode: manual, payment_terms: net_15}"
    yaml.write_text(yaml.read_text().replace(
        "{mode: automatic, method: saved, payment_method: bob-visa}", manual))  # fmt: skip
    assert s.cli("apply", "--as-of", "2026-12-01")["updated"] == ["bob-coffee"]
    s.cli("run", "--until", "2026-12-09")
    assert s.payments("bob-coffee") == [failed]
    with sqlite3.connect(s.ledger) as ledger:  # every call the processor had, declines too
        asked = ledger.execute("SELECT token, status FROM charges ORDER BY key").fetchall()
    assert asked == [("tok_insufficient_funds", "failed")]
    failures = [p.name for p in (s.config / "outbox").iterdir() if "payment_failed" in p.name]
    assert len(failures) == 2  # the buyer's and the admins' of the first decline, no more
    assert [(i["number"], i["status"]) for i in s.invoices("bob-coffee")] == [("INV-00001", "open")]
    paid = s.cli("invoices", "pay", "INV-00001", "--card", "tok_visa", "--as-of", "2026-12-10")
    assert paid["status"] == "paid"
    assert s.invoices("bob-coffee")[0]["status"] == "paid"
    assert s.subscription("bob-coffee")["status"] == "active"
    assert [(p["attempt"], p["status"]) for p in s.payments("bob-coffee")] == [
        (1, "failed"), (2, "succeeded")]  # fmt: skip


def test_a_declined_checkout_buys_nothing(tmp_path, db_url):
    from tests.conftest import run

    s = Scenario(tmp_path, db_url)
    (s.config / "links.yaml").write_text("payment_links:\n" + SAMPLER)
    for card, message in (("tok_lost_card", "declined (lost_card); nothing was bought"),):
        result = run("--config", str(s.config), "--db", s.db_url, "checkout", "sampler",
                     "--contact", "bob", "--card", card, "--as-of", "2026-12-01")  # fmt: skip
        assert result.exit_code == 1 and message in result.stderr
    assert s.invoices() == [] and s.cli("subscriptions", "list") == []


def test_a_link_takes_only_its_accepted_payment_types(tmp_path, db_url):
    from tests.conftest import run

    s = Scenario(tmp_path, db_url,
                 replace={BOB_CARD: "      - {id: bob-visa, type: ach, token: tok_ach}\n"})  # fmt: skip
    (s.config / "links.yaml").write_text("payment_links:\n" + SAMPLER)
    result = run("--config", str(s.config), "--db", s.db_url, "checkout", "sampler",
                 "--contact", "bob", "--payment-method", "bob-visa", "--as-of", "2026-12-01")  # fmt: skip
    assert result.exit_code == 1 and "this link takes card, not ach" in result.stderr


def test_first_invoice_collects_the_method_then_charges_automatically(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=BOB_MONTHLY.replace("METHOD", "first_invoice"))
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")
    (first,) = s.invoices("bob-coffee")
    assert (first["status"], first["due_date"]) == ("open", "2026-12-31")  # sent with terms
    assert s.payments("bob-coffee") == []
    paid = s.cli("invoices", "pay", first["number"], "--card", "tok_mastercard",
                 "--as-of", "2026-12-05")  # fmt: skip
    assert paid["status"] == "paid"
    s.cli("run", "--until", "2027-01-01")
    assert [(i["issue_date"], i["status"]) for i in s.invoices("bob-coffee")] == [
        ("2026-12-01", "paid"),
        ("2027-01-01", "paid"),
    ]
    assert [p["date"] for p in s.payments("bob-coffee")] == ["2026-12-05", "2027-01-01"]
    assert s.subscription("bob-coffee")["collection_mode"] == "automatic"


def test_a_refund_leaves_the_subscription_alone(tmp_path, db_url):
    from tests.conftest import run

    s = Scenario(tmp_path, db_url, subscriptions=BOB_SAVED)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")
    (payment,) = s.payments("bob-coffee")
    refund = s.cli("payments", "refund", str(payment["id"]), "--amount", "10.00",
                   "--as-of", "2026-12-03")  # fmt: skip
    assert (refund["amount"], refund["attempt"]) == ("10.00", 2)
    assert [(p["amount"], p["status"]) for p in s.payments("bob-coffee")] == [
        ("25.00", "succeeded"),
        ("-10.00", "refunded"),
    ]
    assert s.subscription("bob-coffee")["status"] == "active"
    too_much = run("--config", str(s.config), "--db", s.db_url, "payments", "refund",
                   str(payment["id"]), "--amount", "20.00")  # fmt: skip
    assert too_much.exit_code == 1 and "at most 15.00 can be refunded" in too_much.stderr


def test_s1_mrr_after_three_months(tmp_path, db_url):
    s = Scenario(tmp_path, db_url)
    (s.config / "links.yaml").write_text("payment_links:\n" + SAMPLER)
    s.cli("checkout", "sampler", "--contact", "bob", "--card", "tok_visa", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2027-03-01")
    report = s.cli("report", "mrr", "--as-of", "2027-03-01")
    assert report == {"metric": "mrr", "currency": "USD", "as_of": "2027-03-01",
                      "value": "76.50", "series": []}  # 37.50 + 18.00 × 26/12  # fmt: skip
    assert s.cli("report", "arr", "--as-of", "2027-03-01")["value"] == "918.00"
    assert s.cli("report", "active", "--as-of", "2027-03-01")["value"] == 2
    assert s.cli("report", "mrr", "--as-of", "2026-11-30")["value"] == "0.00"  # as it was then


def test_a_monthly_series_and_churn_from_history(tmp_path, db_url):
    s = Scenario(tmp_path, db_url,
                 replace={BOB_CARD: BOB_CARD.replace("tok_visa", "tok_lost_card"),
                          "after_final_failure: keep_unpaid": "after_final_failure: cancel"},
                 subscriptions=BOB_SAVED + """\
  - id: ane-coffee
    contact: ane
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 2}]
    collection: {mode: automatic, method: saved, payment_method: ane-visa}
""")  # fmt: skip
    s.cli("apply", "--as-of", "2026-11-20")
    s.cli("run", "--until", "2027-02-15")  # bob's card is lost: canceled on 2026-12-01
    mrr = s.cli("report", "mrr", "--as-of", "2027-02-15", "--from", "2026-11-01",
                "--to", "2027-02-01")  # fmt: skip
    assert mrr["series"] == [
        {"month": "2026-11", "value": "0.00"}, {"month": "2026-12", "value": "50.00"},
        {"month": "2027-01", "value": "50.00"}, {"month": "2027-02", "value": "50.00"},
    ]  # fmt: skip
    churn = s.cli("report", "churn", "--as-of", "2027-02-15", "--from", "2026-12-01",
                  "--to", "2027-01-01")  # fmt: skip
    # bob was never live at a month start: he was canceled on the day he started
    assert churn["series"] == [{"month": "2026-12", "value": "0.00"},
                               {"month": "2027-01", "value": "0.00"}]  # fmt: skip
    from tests.conftest import run

    csv = run("--config", str(s.config), "--db", s.db_url, "report", "active", "--as-of",
              "2027-01-15", "--from", "2026-12-01", "--to", "2027-01-01", "--csv")  # fmt: skip
    assert csv.stdout == "month,value\n2026-12,1\n2027-01,1\n"


def test_churn_counts_customers_lost_in_the_month(tmp_path, db_url):
    s = Scenario(tmp_path, db_url,
                 replace={BOB_CARD: BOB_CARD.replace("tok_visa", "tok_insufficient_funds"),
                          "after_final_failure: keep_unpaid": "after_final_failure: cancel"},
                 subscriptions=BOB_SAVED.replace("2026-12-01", "2026-11-01") + """\
  - id: ane-coffee
    contact: ane
    start: 2026-11-01
    items: [{product: coffee-1kg, quantity: 2}]
    collection: {mode: automatic, method: saved, payment_method: ane-visa}
""")  # fmt: skip
    s.cli("apply", "--as-of", "2026-10-20")
    s.cli("run", "--until", "2026-12-15")  # bob: unpaid on 11-01, canceled after the 11-08 retry
    churn = s.cli("report", "churn", "--as-of", "2026-12-15", "--from", "2026-11-01",
                  "--to", "2026-12-01")  # fmt: skip
    assert churn["series"] == [{"month": "2026-11", "value": "50.00"},
                               {"month": "2026-12", "value": "0.00"}]  # fmt: skip


def test_a_dry_run_charges_nobody(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=BOB_SAVED)
    s.cli("apply", "--as-of", "2026-12-01")
    dry = s.cli("run", "--until", "2027-02-01", "--dry-run")
    assert [i["issue_date"] for i in dry["invoices"]] == ["2026-12-01", "2027-01-01", "2027-02-01"]
    assert dry["payments"] == {}
    assert not s.ledger.exists() or s.charges() == []
    assert s.payments("bob-coffee") == [] and s.invoices() == []


def test_report_draws_a_chart(tmp_path, db_url):
    from tests.conftest import run

    s = Scenario(tmp_path, db_url, subscriptions=BOB_SAVED)
    s.cli("run", "--until", "2027-03-01")
    chart = tmp_path / "mrr.png"
    result = run("--config", str(s.config), "--db", s.db_url, "report", "mrr", "--as-of",
                 "2027-03-01", "--from", "2026-11-01", "--to", "2027-03-01", "--chart", str(chart))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = chart.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (600, 450)  # 6 × 4.5 inches at 100 dpi, labels and all
