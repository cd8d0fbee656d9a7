"""Buyer links through the CLI: single-use, dead once their subscription ends or their invoice
is settled, signed with a secret that outlives the command that made it."""

import os
import stat
import threading
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from abonnement.plugins.storage.sql import SqlStorage
from tests.acceptance.scenario import Scenario
from tests.acceptance.test_collection_scenarios import SECRET, _s7
from tests.conftest import run


def _refused(s: Scenario, *args: str, env: dict | None = SECRET) -> str:
    # -q: the error alone, without the audit log of what the command did before refusing
    result = run("--config", str(s.config), "--db", s.db_url, "-q", *args, env=env)
    assert result.exit_code == 1, result.output
    return result.stderr.strip()


def _update_link(s: Scenario, day: str = "2026-12-09", env: dict | None = SECRET) -> str:
    return s.cli("payment-methods", "update-link", "bob-coffee", "--as-of", day, env=env)["token"]


def test_an_update_link_changes_the_card_once(tmp_path, db_url):
    s = _s7(tmp_path, db_url, "tok_insufficient_funds")
    token = _update_link(s)
    updated = s.cli("payment-methods", "update", token, "--card", "tok_visa",
                    "--as-of", "2026-12-10", env=SECRET)  # fmt: skip
    assert updated["collected"] == ["INV-00001"]
    for card in ("tok_lost_card", "tok_expired_card"):  # an attacker replaying the link
        assert _refused(s, "payment-methods", "update", token, "--card", card, "--as-of",
                        "2026-12-11") == (
            "error: this update link was already used; ask for a new one"
        )  # fmt: skip
    s.cli("run", "--until", "2027-01-01")  # the card the buyer saved is the one charged
    assert [p["status"] for p in s.payments("bob-coffee")][-1] == "succeeded"
    assert s.charges()[-1][1:] == ("25.00", "succeeded")


def test_a_second_link_for_the_same_subscription_is_a_use_of_its_own(tmp_path, db_url):
    s = _s7(tmp_path, db_url, "tok_insufficient_funds")
    first, second = _update_link(s), _update_link(s)
    assert first != second
    s.cli("payment-methods", "update", first, "--card", "tok_lost_card", "--as-of", "2026-12-10",
          env=SECRET)  # fmt: skip
    again = s.cli("payment-methods", "update", second, "--card", "tok_visa",
                  "--as-of", "2026-12-10", env=SECRET)  # fmt: skip
    assert (again["collected"], again["status"]) == (["INV-00001"], "active")


def test_an_update_link_dies_with_its_subscription(tmp_path, db_url):
    s = _s7(tmp_path, db_url, "tok_insufficient_funds")
    token = _update_link(s)
    s.cli("subscriptions", "cancel", "bob-coffee", "--as-of", "2026-12-10")
    assert _refused(s, "payment-methods", "update", token, "--card", "tok_visa",
                    "--as-of", "2026-12-10") == (
        "error: this update link is no longer valid: the subscription has ended"
    )  # fmt: skip
    assert _refused(s, "payment-methods", "update-link", "bob-coffee") == (
        "error: subscription bob-coffee is canceled"
    )


def test_a_pay_link_pays_once_and_survives_a_declined_card(tmp_path, db_url):
    s = _s7(tmp_path, db_url, "tok_insufficient_funds")
    link = s.cli("invoices", "pay-link", "INV-00001", "--as-of", "2026-12-09", env=SECRET)
    assert link["url"] == f"http://localhost:8000/i/{link['token']}"
    assert link["expires_at"] == "2026-12-23"
    pay = ("invoices", "pay-through-link", link["token"], "--as-of", "2026-12-10", "--card")
    assert _refused(s, *pay, "tok_lost_card") == "error: the payment was declined (lost_card)"
    paid = s.cli(*pay, "tok_visa", env=SECRET)
    assert (paid["number"], paid["status"], Decimal(paid["amount_paid"])) == (
        "INV-00001", "paid", Decimal("25.00"))  # fmt: skip
    assert _refused(s, *pay, "tok_visa") == (
        "error: this pay link is no longer valid: the invoice is settled"
    )
    assert [(a, st) for _, a, st in s.charges()] == [("25.00", "succeeded")]
    # a pay link is not an update link, and the other way round
    assert _refused(s, "payment-methods", "update", link["token"], "--card", "tok_visa",
                    "--as-of", "2026-12-10") == "error: this update link is not valid"  # fmt: skip


def test_a_pay_link_dies_when_the_invoice_is_settled_by_hand(tmp_path, db_url):
    s = _s7(tmp_path, db_url, "tok_insufficient_funds")
    token = s.cli("invoices", "pay-link", "INV-00001", "--as-of", "2026-12-09", env=SECRET)["token"]
    s.cli("invoices", "pay", "INV-00001", "--as-of", "2026-12-10")
    assert _refused(s, "invoices", "pay-through-link", token, "--card", "tok_visa",
                    "--as-of", "2026-12-10") == (
        "error: this pay link is no longer valid: the invoice is settled"
    )  # fmt: skip
    assert (
        _refused(s, "invoices", "pay-link", "INV-00001") == "error: invoice INV-00001 is not open"
    )


@pytest.mark.parametrize("token", ["dXBk\u00e9.x", "\u2603\u2603", "a" * 5000, "=.="])
def test_a_garbled_token_is_a_clean_error(tmp_path, db_url, token):
    s = _s7(tmp_path, db_url, "tok_insufficient_funds")
    assert _refused(s, "payment-methods", "update", token, "--card", "tok_visa") == (
        "error: this update link is not valid"
    )


def test_a_short_secret_is_refused_with_a_clear_error(tmp_path, db_url):
    s = _s7(tmp_path, db_url, "tok_insufficient_funds")
    assert _refused(s, "payment-methods", "update-link", "bob-coffee",
                    env={"ABONNEMENT_LINK_SECRET": "s3cret"}) == (
        "error: ABONNEMENT_LINK_SECRET is 6 bytes long; links need at least 32 "
        "(python -c 'import secrets; print(secrets.token_urlsafe(32))' makes one)"
    )  # fmt: skip


def test_without_the_variable_a_secret_is_made_once_beside_the_sqlite_database(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'abonnement.db'}"
    s = _s7(tmp_path, db_url, "tok_insufficient_funds")
    env = {"ABONNEMENT_LINK_SECRET": ""}
    token = _update_link(s, env=env)
    kept = tmp_path / "abonnement.db.link-secret"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    secret = kept.read_text().strip()
    assert len(secret) >= 32
    assert _update_link(s, env=env) and kept.read_text().strip() == secret  # made once
    # the variable wins over the file: what the file signed is not valid under another secret
    assert _refused(s, "payment-methods", "update", token, "--card", "tok_visa",
                    "--as-of", "2026-12-10") == "error: this update link is not valid"  # fmt: skip
    # and a later command (a new process) still honours the link the file signed
    updated = s.cli("payment-methods", "update", token, "--card", "tok_visa",
                    "--as-of", "2026-12-10", env=env)  # fmt: skip
    assert updated["collected"] == ["INV-00001"]


def test_a_shared_database_needs_the_variable(tmp_path, db_url):
    if db_url.startswith("sqlite"):
        pytest.skip("a SQLite database keeps its secret beside it")
    s = _s7(tmp_path, db_url, "tok_insufficient_funds")
    assert _refused(s, "payment-methods", "update-link", "bob-coffee",
                    env={"ABONNEMENT_LINK_SECRET": ""}) == (
        "error: set ABONNEMENT_LINK_SECRET (32 bytes or more, the same on every machine) "
        "to sign buyer links: this database keeps no secret file beside it"
    )  # fmt: skip


def test_of_racing_uses_of_one_link_exactly_one_wins(tmp_path, db_url):
    SqlStorage(db_url).close()  # migrated once, before the race
    stores = [SqlStorage(db_url) for _ in range(6)]
    start = threading.Barrier(len(stores))
    won: list[bool] = []

    def use(store: SqlStorage) -> None:
        start.wait()
        won.append(store.use_link("d" * 64, "update", "bob-coffee", date(2026, 12, 10)))

    threads = [threading.Thread(target=use, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert sorted(won) == [False] * 5 + [True]


def test_a_new_sqlite_database_is_private(tmp_path):
    path = Path(tmp_path / "fresh.db")
    SqlStorage(f"sqlite:///{path}").close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
