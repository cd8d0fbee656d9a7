"""Config as code: the config owns a declared subscription's definition, the database its
state; `apply` makes the config true (from the next cycle, waiting out the freeze window)."""

import json

import pytest

from tests.acceptance.scenario import Scenario
from tests.conftest import run

ANE = """\
  - id: ane-coffee
    contact: ane
    currency: USD
    start: 2026-12-01
    items:
      - {product: coffee-1kg, quantity: 1}
    collection: {mode: automatic, method: saved, payment_method: ane-visa}
"""
BOB = """\
  - id: bob-coffee
    contact: bob
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 2}]
    collection: {mode: automatic, method: saved, payment_method: bob-visa}
"""
PRORATION_ON = {"proration: false": "proration: true"}


def refused(s: Scenario, *args: str) -> str:
    result = run("--config", str(s.config), "--db", s.db_url, *args)
    assert result.exit_code == 1, result.output + result.stderr
    return result.stderr


def declared_at(s: Scenario) -> str:
    """Where ane-coffee is written: the line of its `- id:` in the scenario's config."""
    lines = (s.config / "abonnement.yaml").read_text().splitlines()
    return f"abonnement.yaml:{lines.index('  - id: ane-coffee') + 1}:5"


def lines_of(s: Scenario, number: str) -> list[tuple[str, str]]:
    invoice = s.cli("invoices", "show", number)
    return [(line["sku"] or line["description"], line["amount"]) for line in invoice["lines"]]


def set_quantity(s: Scenario, quantity: int) -> None:
    config = s.config / "abonnement.yaml"
    config.write_text(config.read_text().replace(
        "{product: coffee-1kg, quantity: 1}", f"{{product: coffee-1kg, quantity: {quantity}}}"))  # fmt: skip


def test_editing_a_declared_definition_is_refused_so_a_run_never_reverts_it(tmp_path, db_url):
    # Before: the edit succeeded, the next run's apply put quantity 1 back, and the prorated
    # lines of the edit (+25.81) were still charged on that run's invoice.
    s = Scenario(tmp_path, db_url, subscriptions=ANE, replace=PRORATION_ON)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--as-of", "2026-12-01")
    message = refused(s, "subscriptions", "edit", "ane-coffee", "--quantity", "1=3",
                      "--prorate", "--as-of", "2026-12-16")  # fmt: skip
    assert message == (f"error: `ane-coffee` is declared at {declared_at(s)}; change it "
                       "there and run `abonnement apply`\n")  # fmt: skip
    for change in (
        ["--payment-method", "ane-visa"],
        ["--contact", "bob"],
        ["--add", "coffee-250g"],
    ):
        assert "is declared at" in refused(s, "subscriptions", "edit", "ane-coffee", *change,
                                          "--as-of", "2026-12-16")  # fmt: skip
    # state is the database's: a property the config does not write, a later payment date
    edited = s.cli("subscriptions", "edit", "ane-coffee", "--property", "roast=dark",
                   "--as-of", "2026-12-16")  # fmt: skip
    assert edited["properties"] == {"roast": "dark"}
    s.cli("run", "--as-of", "2027-01-01")
    sub = s.subscription("ane-coffee")
    assert ([i["quantity"] for i in sub["items"]], sub["properties"]) == ([1], {"roast": "dark"})
    assert lines_of(s, s.invoices("ane-coffee")[1]["number"]) == [("COFFEE-1KG", "25.00")]


def test_lifecycle_commands_work_on_a_declared_subscription(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=ANE)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--as-of", "2026-12-01")
    assert s.cli("subscriptions", "pause", "ane-coffee", "--as-of", "2026-12-05")["status"] == (
        "paused")  # fmt: skip
    assert s.cli("run", "--as-of", "2027-01-05")["applied"]["unchanged"] == ["ane-coffee"]
    resumed = s.cli("subscriptions", "resume", "ane-coffee", "--as-of", "2027-01-10")
    assert (resumed["status"], resumed["next_payment_date"]) == ("active", "2027-02-01")
    canceled = s.cli("subscriptions", "cancel", "ane-coffee", "--as-of", "2027-01-11")
    assert canceled["status"] == "canceled"


def test_deleting_a_declared_subscription_is_refused_and_later_runs_go_on(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=ANE)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--as-of", "2026-12-01")
    s.cli("subscriptions", "cancel", "ane-coffee", "--at-period-end", "--as-of", "2026-12-10")
    s.cli("run", "--as-of", "2027-01-05")
    assert s.subscription("ane-coffee")["status"] == "canceled"
    assert refused(s, "subscriptions", "delete", "ane-coffee") == (
        f"error: `ane-coffee` is declared at {declared_at(s)}; change it there and run "
        "`abonnement apply`\n")  # fmt: skip
    assert s.cli("run", "--as-of", "2027-03-01")["invoice_count"] == 0


def test_apply_leaves_alone_a_declared_id_deleted_with_its_history_kept(tmp_path, db_url):
    # a database from before deletes were refused: the row is gone, invoices and events stay
    from abonnement.plugins.storage.sql import SqlStorage

    s = Scenario(tmp_path, db_url, subscriptions=ANE)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--as-of", "2026-12-01")
    s.cli("subscriptions", "cancel", "ane-coffee", "--as-of", "2026-12-10")
    SqlStorage(s.db_url).delete_subscription("ane-coffee")
    assert s.cli("apply", "--as-of", "2027-01-05")["deleted"] == ["ane-coffee"]
    result = run("--config", str(s.config), "--db", s.db_url, "apply", "--as-of", "2027-01-05")
    assert result.exit_code == 0 and "ane-coffee: declared, but deleted" in result.stdout
    assert s.cli("run", "--as-of", "2027-03-01")["invoice_count"] == 0
    assert [i["total"] for i in s.invoices()] == ["25.00"]


def test_a_relative_start_in_subscriptions_is_a_validation_error(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=ANE.replace("start: 2026-12-01",
                                                             "start: {delay_days: 30}"))  # fmt: skip
    result = run("--config", str(s.config), "validate")
    assert result.exit_code == 1
    lines = (s.config / "abonnement.yaml").read_text().splitlines()
    line = lines.index("    start: {delay_days: 30}") + 1
    assert result.stderr == (
        f"{s.config / 'abonnement.yaml'}:{line}:12: error: a declared subscription starts on "
        "a date, not {delay_days: 30} in subscription `ane-coffee` (start); relative starts "
        "are for purchases (payment links, quotes, `subscriptions create`); write the date, "
        "e.g. start: 2026-12-01\n1 error\n"
    )


def test_a_change_inside_the_freeze_window_waits_for_the_following_cycle(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=ANE)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--as-of", "2026-12-01")
    set_quantity(s, 3)
    # 2026-12-31 is one day before the payment of 2027-01-01: inside the 2-day freeze
    applied = s.cli("apply", "--as-of", "2026-12-31")
    assert (applied["updated"], applied["deferred"]) == ([], {"ane-coffee": "2027-01-01"})
    text = run("--config", str(s.config), "--db", s.db_url, "apply", "--as-of", "2026-12-31")
    assert text.stdout == (
        "0 created, 0 updated, 0 unchanged\nane-coffee: the change waits — its payment on "
        "2027-01-01 is inside the 2-day freeze window; it applies to the payment after that\n"
    )
    assert [i["quantity"] for i in s.subscription("ane-coffee")["items"]] == [1]
    # the run bills 2027-01-01 as it was, then applies the change, dated that day
    ran = s.cli("run", "--as-of", "2027-01-01")
    assert (ran["applied"]["updated"], ran["applied"]["deferred"]) == (["ane-coffee"], {})
    assert [i["quantity"] for i in s.subscription("ane-coffee")["items"]] == [3]
    changed = [h for h in s.subscription("ane-coffee")["history"]
               if h["type"] == "subscription.changed"]  # fmt: skip
    assert [(h["date"], h["changed"]) for h in changed] == [("2027-01-01", ["items"])]
    s.cli("run", "--as-of", "2027-02-01")
    assert [i["total"] for i in s.invoices("ane-coffee")] == ["25.00", "25.00", "75.00"]


@pytest.mark.parametrize("late_run", [["--as-of", "2027-01-02"], ["--until", "2027-01-02"]])
def test_a_change_that_waits_still_waits_when_the_run_comes_a_day_late(tmp_path, db_url, late_run):
    # A cron that missed the payment day (--as-of after it), or a run replaying from the
    # timeline (--until), used to apply the change before billing the payment it said it
    # would skip: 2027-01-01 was billed 75.00.
    s = Scenario(tmp_path, db_url, subscriptions=ANE)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--as-of", "2026-12-01")
    set_quantity(s, 3)
    assert s.cli("apply", "--as-of", "2026-12-31")["deferred"] == {"ane-coffee": "2027-01-01"}
    s.cli("run", *late_run)
    assert [i["total"] for i in s.invoices("ane-coffee")] == ["25.00", "25.00"]
    assert [i["quantity"] for i in s.subscription("ane-coffee")["items"]] == [3]
    s.cli("run", "--as-of", "2027-02-01")
    assert [i["total"] for i in s.invoices("ane-coffee")] == ["25.00", "25.00", "75.00"]


@pytest.mark.parametrize("how", ["declaration", "flag"])
def test_prorate_settles_the_current_period_as_edit_prorate_does(tmp_path, db_url, how):
    s = Scenario(tmp_path, db_url, subscriptions=ANE, replace=PRORATION_ON)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--as-of", "2026-12-01")
    set_quantity(s, 3)
    if how == "declaration":
        config = s.config / "abonnement.yaml"
        config.write_text(config.read_text().replace("    start: 2026-12-01\n",
                                                     "    start: 2026-12-01\n    prorate: true\n"))  # fmt: skip
    assert s.cli("apply", "--as-of", "2026-12-16",
                 *(["--prorate"] if how == "flag" else []))["updated"] == ["ane-coffee"]  # fmt: skip
    s.cli("run", "--as-of", "2027-01-01")
    assert lines_of(s, s.invoices("ane-coffee")[1]["number"]) == [
        ("COFFEE-1KG", "75.00"), ("COFFEE-1KG", "-12.90"), ("COFFEE-1KG", "38.71")]  # fmt: skip
    assert s.invoices("ane-coffee")[1]["total"] == "100.81"


def test_prorate_needs_proration_on_in_settings(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=ANE.replace("    start: 2026-12-01\n",
                                                             "    start: 2026-12-01\n    prorate: true\n"))  # fmt: skip
    result = run("--config", str(s.config), "validate")
    assert result.exit_code == 1 and "error: proration is off in subscription `ane-coffee`" in (
        result.stderr)  # fmt: skip


def test_no_longer_declared_is_reported_left_alone_and_pruned_on_request(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=ANE + BOB)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--as-of", "2026-12-01")
    config = s.config / "abonnement.yaml"
    config.write_text(config.read_text().replace(BOB, ""))
    text = run("--config", str(s.config), "--db", s.db_url, "apply", "--as-of", "2026-12-10")
    assert text.stdout == (
        "0 created, 0 updated, 1 unchanged\nno longer declared: bob-coffee\n  left as they "
        "are; `abonnement apply --prune` cancels them at period end\n"
    )
    assert s.subscription("bob-coffee")["status"] == "active"
    pruned = s.cli("apply", "--prune", "--as-of", "2026-12-10")
    assert (pruned["no_longer_declared"], pruned["pruned"]) == (["bob-coffee"], ["bob-coffee"])
    # no longer declared, the database owns it: edits are the user's again
    assert s.cli("subscriptions", "edit", "bob-coffee", "--property", "roast=dark",
                 "--as-of", "2026-12-11")["properties"] == {"roast": "dark"}  # fmt: skip
    s.cli("run", "--as-of", "2027-01-01")
    assert s.subscription("bob-coffee")["status"] == "canceled"
    assert [i["total"] for i in s.invoices("bob-coffee")] == ["50.00"]
    again = s.cli("apply", "--prune", "--as-of", "2027-01-02")
    assert (again["no_longer_declared"], again["pruned"]) == ([], [])


def test_a_change_no_apply_can_make_is_named_and_the_others_are_billed(tmp_path, db_url):
    # It used to stop the whole run (and every later one) before anyone was billed.
    bob = ANE.replace("ane-coffee", "bob-coffee").replace("contact: ane", "contact: bob")
    bob = bob.replace("payment_method: ane-visa", "payment_method: bob-visa")
    bob = bob.replace("coffee-1kg", "coffee-250g")  # priced in USD and EUR
    s = Scenario(tmp_path, db_url, subscriptions=ANE + bob)
    s.cli("run", "--as-of", "2026-12-01")
    config = s.config / "abonnement.yaml"
    text = config.read_text()
    at = text.index("  - id: bob-coffee")
    config.write_text(text[:at] + text[at:].replace("currency: USD", "currency: EUR", 1))
    result = run("--config", str(s.config), "--db", s.db_url, "run", "--as-of", "2027-01-01",
                 "--json")  # fmt: skip
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert "failed" in summary, summary
    ((failed_id, message),) = [(f["id"], f["message"]) for f in summary["failed"]]
    assert failed_id == "bob-coffee" and "has billed in USD" in message
    assert message.startswith("abonnement.yaml:")  # where to change it
    assert [i["issue_date"] for i in s.invoices("ane-coffee")] == ["2026-12-01", "2027-01-01"]
    # bob's own subscription is left as it was: still billed, in USD
    assert [(i["issue_date"], i["currency"]) for i in s.invoices("bob-coffee")] == [
        ("2026-12-01", "USD"), ("2027-01-01", "USD")]  # fmt: skip
    applied = run("--config", str(s.config), "--db", s.db_url, "apply", "--as-of", "2027-01-02")
    assert applied.exit_code == 1 and "bob-coffee: not applied" in applied.stderr
