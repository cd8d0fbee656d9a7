"""What a billing run guarantees beyond one subscription's billing: it picks up where the
database's timeline stands, a bad record never stops it, and its payment keys are the
database's own."""

import json
import re
import sqlite3
import textwrap
from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa

from abonnement.engine.items import Item
from abonnement.engine.money import Money
from abonnement.engine.schedule import Frequency
from abonnement.engine.subscriptions import Subscription
from abonnement.plugins.storage.sql import SqlStorage
from tests.acceptance.scenario import Scenario
from tests.acceptance.test_declared import ANE, BOB, set_quantity
from tests.conftest import run

MONTHLY = Frequency.parse("monthly")
TOO_BIG = "10000000000000.00 is beyond the largest amount storage keeps (9223372036854.775807)"


def history(s: Scenario, sub_id: str) -> list[tuple[str, str]]:
    return [(e["type"], e["date"]) for e in s.subscription(sub_id)["history"]]


# -- the timeline: `run --until` picks up where the last run stopped ------------------------


def test_run_until_applies_where_the_timeline_stands_not_today(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=ANE)
    # a fresh database: the apply is dated at the earliest declared start
    assert s.cli("run", "--until", "2027-01-01")["invoice_count"] == 2
    assert history(s, "ane-coffee")[0] == ("subscription.created", "2026-12-01")
    set_quantity(s, 3)
    # the timeline stands at 2027-01-01: the change is dated there, and bills from February
    assert s.cli("run", "--until", "2027-03-01")["applied"]["updated"] == ["ane-coffee"]
    assert ("subscription.changed", "2027-01-01") in history(s, "ane-coffee")
    assert [i["total"] for i in s.invoices("ane-coffee")] == ["25.00", "25.00", "75.00", "75.00"]
    # an earlier date does not move the timeline back
    s.cli("run", "--until", "2027-02-01")
    config = s.config / "abonnement.yaml"
    config.write_text(
        config.read_text().replace("coffee-1kg, quantity: 3", "coffee-1kg, quantity: 2")
    )
    s.cli("run", "--until", "2027-04-01")
    assert ("subscription.changed", "2027-03-01") in history(s, "ane-coffee")  # not 02-01
    assert [i["total"] for i in s.invoices("ane-coffee")][-1] == "50.00"
    assert SqlStorage(s.db_url).timeline() == date(2027, 4, 1)


# -- a bad record never stops billing ---------------------------------------------------------


def poisoned(sub_id: str = "b-poison", quantity: int = 1_000_000_000) -> Subscription:
    """Written around the bounds (an old version, a script): 1,000,000,000 × 10,000.00 is an
    invoice beyond what the database's integers hold."""
    item = Item("Racks", quantity, Money(Decimal("10000.00"), "USD"), frequency=MONTHLY)
    return Subscription(sub_id, "bob", "USD", MONTHLY, date(2026, 12, 1), (item,),
                        collection_mode="automatic", payment_type="card",
                        payment_token="tok_visa")  # fmt: skip


def test_a_subscription_that_cannot_be_stored_is_set_aside_and_the_rest_is_billed(tmp_path,
                                                                                  db_url):  # fmt: skip
    s = Scenario(tmp_path, db_url, subscriptions=ANE + BOB)
    # between ane-coffee and bob-coffee by id: the batch of three is redone without it
    SqlStorage(s.db_url).insert_subscriptions([poisoned()], "created")
    result = run("--config", str(s.config), "--db", s.db_url, "run", "--until", "2026-12-01",
                 "--json")  # fmt: skip
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["failed"] == [{"id": "b-poison", "message": TOO_BIG}]
    assert (summary["invoice_count"], summary["payments"]) == (2, {"succeeded": 2})
    assert [(i["number"], i["subscription_id"], i["status"]) for i in s.invoices()] == [
        ("INV-00001", "ane-coffee", "paid"), ("INV-00002", "bob-coffee", "paid")]  # fmt: skip
    assert history(s, "b-poison") == [("subscription.billing_failed", "2026-12-01")]
    assert s.subscription("b-poison")["history"][0]["error"] == TOO_BIG
    # the next run tries again (and says so in text)
    again = run("--config", str(s.config), "--db", s.db_url, "run", "--until", "2026-12-02")
    assert again.exit_code == 1
    assert again.stdout == "up to 2026-12-02: issued 0 invoices (nothing)\n"
    assert again.stderr == ("1 subscription not billed (set aside; the next run tries "
                            f"again):\n  b-poison: {TOO_BIG}\n")  # fmt: skip
    assert len(history(s, "b-poison")) == 2
    # once the record is right, it is billed from where it stood
    with SqlStorage(s.db_url).engine.begin() as conn:
        conn.exec_driver_sql("UPDATE subscription_items SET quantity = 2 "
                             "WHERE subscription_id = 'b-poison'")  # fmt: skip
    after = s.cli("run", "--until", "2026-12-02")
    assert (after["failed"], after["invoice_count"]) == ([], 1)
    assert [(i["number"], i["total"]) for i in s.invoices("b-poison")] == [
        ("INV-00003", "20000.00")]  # fmt: skip


RAISING_PLUGIN = textwrap.dedent(
    """
    from abonnement.plugins import hookimpl
    from abonnement.plugins.interfaces import RuleFunction

    def loyalty(contact_id):
        if contact_id == "bob":
            raise RuntimeError("the loyalty service has no record of bob")
        return 1

    @hookimpl
    def abonnement_register_rule_functions(register):
        register(RuleFunction("loyalty_years", ("string",), "number", loyalty))
    """
)
LOYALTY_RULE = """\
fee loyalty_box {
  amount 2.50 USD
  applies_to invoice
  when loyalty_years(customer.id) >= 1
}
"""


def test_a_rule_whose_plugin_raises_sets_that_subscription_aside(tmp_path, db_url, monkeypatch):
    from tests.plugins.test_plugins import install_fake_distribution

    install_fake_distribution(tmp_path / "site", "loyalty", RAISING_PLUGIN, "loyalty_plugin")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    s = Scenario(tmp_path, db_url, subscriptions=ANE + BOB, rules=LOYALTY_RULE)
    result = run("--config", str(s.config), "--db", s.db_url, "run", "--until", "2027-01-01",
                 "--json")  # fmt: skip
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["failed"] == [{"id": "bob-coffee", "message":
                                  "RuntimeError: the loyalty service has no record of bob"}]  # fmt: skip
    assert [(i["subscription_id"], i["total"]) for i in s.invoices()] == [
        ("ane-coffee", "27.50"), ("ane-coffee", "27.50")]  # fmt: skip
    assert history(s, "bob-coffee")[-1] == ("subscription.billing_failed", "2026-12-01")


# -- bounds: what the config and the commands write always fits ------------------------------


def test_validate_refuses_a_line_beyond_the_bounds_with_its_position(tmp_path):
    line = (
        '      - {name: Racks, unit_price: "10000.00 USD", quantity: 1000000000, '
        "frequency: monthly}\n"
    )
    sub = ANE.replace("      - {product: coffee-1kg, quantity: 1}\n", line)
    s = Scenario(tmp_path, "sqlite://", subscriptions=sub,
                 rules='fee huge {\n  amount 2000000000000.00 USD\n}\n')  # fmt: skip
    result = run("--config", str(s.config), "validate")
    assert result.exit_code == 1
    config = s.config / "abonnement.yaml"
    row = config.read_text().splitlines().index(line.rstrip("\n")) + 1
    column = line.index("1000000000") + 1
    assert result.stderr.splitlines() == [
        f"{config}:{row}:{column}: error: a line of 10000000000000.00 USD (1,000,000,000 × "
        "10000.00 USD) is beyond the largest abonnement takes (1,000,000,000,000 USD) in "
        "subscription `ane-coffee` (items[0].quantity); see the bounds in docs/concepts.md",
        f"{s.config / 'rules' / 'scenario.rules'}:2:10: error: an amount of 2000000000000.00 "
        "USD is beyond the largest abonnement takes (1,000,000,000,000 USD); see the bounds "
        "in docs/concepts.md",
        "2 errors",
    ]


def test_create_and_edit_refuse_quantities_and_amounts_beyond_the_bounds(tmp_path, db_url):
    s = Scenario(tmp_path, db_url)
    base = ("--config", str(s.config), "--db", s.db_url, "subscriptions")
    result = run(*base, "create", "--id", "big", "--contact", "bob", "--item",
                 "coffee-1kg:5000000000", "--as-of", "2026-12-01")  # fmt: skip
    assert (result.exit_code, result.stderr) == (1, (
        "error: `big` line 1: quantity 5,000,000,000 is outside 1 to 1,000,000,000; see the "
        "bounds in docs/concepts.md\n"))  # fmt: skip
    s.cli("subscriptions", "create", "--id", "big", "--contact", "bob", "--item",
          "coffee-1kg:1000000000", "--as-of", "2026-12-01")  # fmt: skip
    result = run(*base, "edit", "big", "--price", "1=2000.00 USD", "--as-of", "2026-12-05")
    assert (result.exit_code, result.stderr) == (1, (
        "error: `big` line 1: the line `Just one more cup - 1 KG Subscription` of "
        "2000000000000.00 USD (1,000,000,000 × 2000.00 USD) is beyond the largest abonnement "
        "takes (1,000,000,000,000 USD); see the bounds in docs/concepts.md\n"))  # fmt: skip
    assert [i["unit_price"] for i in s.subscription("big")["items"]] == ["25.00"]


# -- keys that cannot collide ----------------------------------------------------------------


def test_two_databases_in_one_folder_keep_their_charges_apart(tmp_path):
    folder = tmp_path / "databases"
    folder.mkdir()
    outcomes = {}
    for name, token in (("declines", "tok_lost_card"), ("succeeds", "tok_visa")):
        s = Scenario(tmp_path / name, f"sqlite:///{folder / name}.db", subscriptions=BOB,
                     replace={"token: tok_visa}": f"token: {token}}}"})  # fmt: skip
        config = s.config / "abonnement.yaml"  # the ledger where the processor keeps it
        config.write_text(config.read_text().replace(f"    test: {{ledger: '{s.ledger}'}}\n", ""))
        s.cli("run", "--until", "2026-12-01")
        (invoice,) = s.invoices()
        (payment,) = s.payments()
        outcomes[name] = (invoice["number"], invoice["status"], payment["status"],
                          payment["failure_code"])  # fmt: skip
    # Before: one key, INV-00001/attempt-1, for both; the second database got the first's
    # outcome from the processor (a decline) for a card that succeeds.
    assert outcomes == {"declines": ("INV-00001", "open", "failed", "lost_card"),
                        "succeeds": ("INV-00001", "paid", "succeeded", None)}  # fmt: skip
    with sqlite3.connect(folder / "test-processor-ledger.db") as ledger:  # next to them
        keys = dict(ledger.execute("SELECT key, status FROM charges"))
    instances = {name: SqlStorage(f"sqlite:///{folder / name}.db").instance_id()
                 for name in outcomes}  # fmt: skip
    assert all(re.fullmatch("[0-9a-f]{16}", i) for i in instances.values())
    assert keys == {f"{instances['declines']}/INV-00001/attempt-1": "failed",
                    f"{instances['succeeds']}/INV-00001/attempt-1": "succeeded"}  # fmt: skip


def test_an_upgraded_database_gets_an_instance_and_reconciles_its_old_keys(tmp_path):
    from alembic import command

    from abonnement.engine.collection import Attempt
    from abonnement.plugins.processors.test import TestProcessor
    from abonnement.plugins.storage.sql import alembic_config
    from tests.plugins.test_storage import _insert_before_0009, draft

    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'old.db'}")
    with sa.create_engine(s.db_url).begin() as conn:
        command.upgrade(alembic_config(conn), "0006")
    old = SqlStorage(s.db_url, migrate=False)
    # bought on 2026-12-01 (its invoice), billed from 2027-01-01
    item = Item("Racks", 1, Money(Decimal("10.00"), "USD"), frequency=MONTHLY)
    _insert_before_0009(old, [Subscription("bob-coffee", "bob", "USD", MONTHLY,
                                           date(2027, 1, 1), (item,))], "created")  # fmt: skip
    (number,) = old.commit([], [draft("bob-coffee", date(2026, 12, 1))], [], "INV-{seq:05d}")
    # charged before the upgrade, with the old key; the crash came before the answer
    attempt = Attempt(number, "bob-coffee", 1, Money(Decimal("10.00"), "USD"), "tok_visa",
                      "card", date(2026, 12, 1))  # fmt: skip
    old.begin_attempts([attempt])
    TestProcessor({"ledger": str(s.ledger)}).charge(
        amount=attempt.amount, token="tok_visa", idempotency_key=attempt.key, on=attempt.on
    )
    assert attempt.key == "INV-00001/attempt-1"

    assert run("--db", s.db_url, "db", "upgrade").exit_code == 0
    new = SqlStorage(s.db_url)
    assert re.fullmatch("[0-9a-f]{16}", new.instance_id())
    assert new.timeline() == date(2026, 12, 1)  # its latest invoice
    s.cli("run", "--until", "2026-12-01")
    assert [(p["attempt"], p["status"]) for p in s.payments()] == [(1, "succeeded")]
    assert [i["status"] for i in s.invoices()] == ["paid"]
    assert s.charges() == [("INV-00001/attempt-1", "10.00", "succeeded")]  # once


@pytest.mark.parametrize("command", [["run", "--until", "2026-12-01"], ["db", "upgrade"]])
def test_a_new_database_has_an_instance_id_of_its_own(tmp_path, command):
    ids = set()
    for name in ("a", "b"):
        s = Scenario(tmp_path / name, f"sqlite:///{tmp_path / name / 'x.db'}")
        assert run("--config", str(s.config), "--db", s.db_url, *command).exit_code == 0
        ids.add(SqlStorage(s.db_url).instance_id())
    assert len(ids) == 2
