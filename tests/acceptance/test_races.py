"""Callers racing for one invoice, with a processor that takes 300 ms to answer as real ones
do: however many retries, online payments, update links and runs collect it at once, exactly
one charge succeeds — counted in the database and in the processor's own ledger. The losers
get "already being collected" or "not open"; nobody gets a traceback."""

import os
import sqlite3
import subprocess
import sys
import threading
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from abonnement.app import App
from abonnement.engine.items import Item
from abonnement.engine.money import Money
from abonnement.engine.schedule import Frequency
from abonnement.engine.subscriptions import Subscription
from abonnement.errors import AlreadyCollecting, InvalidState
from abonnement.operations import payments
from abonnement.plugins.storage.sql import SqlStorage
from tests.conftest import ROOT, run

SECRET = "races-" + "x" * 40
DAY = date(2026, 12, 1)
ON = date(2026, 12, 2)  # the day after the automatic try failed
CALLERS = 4
LATENCY = 0.3


def _config(root: Path, ledger: Path) -> Path:
    config = root / "config"
    config.mkdir()
    (config / "abonnement.yaml").write_text(
        "settings:\n  account: Race Co.\n  currencies: [USD]\n"
        f"  payments: {{processor: test, test: {{ledger: '{ledger}', latency: {LATENCY}}}}}\n"
        "  notifications: {notifiers: []}\n"
        "contacts:\n  - {id: c1, name: C, email: c@example.com}\n"
    )
    return config


def _owing(tmp_path: Path, url: str) -> tuple[Path, Path, str, int]:
    """A subscription whose first invoice (25.00 USD) failed on a soft decline, its card
    since replaced by one that works: (config, ledger, invoice number, payment id)."""
    ledger = tmp_path / "ledger.db"
    config = _config(tmp_path, ledger)
    monthly = Frequency.parse("monthly")
    item = Item("Coffee", 1, Money(Decimal("25.00"), "USD"), frequency=monthly)
    store = SqlStorage(url)
    store.insert_subscriptions([Subscription(
        "s1", "c1", "USD", monthly, DAY, (item,), collection_mode="automatic",
        payment_type="card", payment_token="tok_insufficient_funds")], "created")  # fmt: skip
    result = run("--config", str(config), "--db", url, "run", "--until", DAY.isoformat())
    assert result.exit_code == 0, result.output + result.stderr
    (failed,) = store.payments()
    assert (failed.status, failed.failure_code) == ("failed", "insufficient_funds")
    store.set_payment_method("s1", "tok_visa", "card")
    store.close()
    return config, ledger, failed.invoice_number, failed.id


def _succeeded(url: str, ledger: Path, number: str) -> tuple[int, int]:
    """Succeeded charges of invoice ``number``: (payment rows, the processor's ledger)."""
    store = SqlStorage(url)
    rows = [p for p in store.payments(invoice_number=number) if p.status == "succeeded"]
    invoice = store.invoice(number)
    store.close()
    assert invoice is not None and invoice.status == "paid"
    assert invoice.amount_paid == Money(Decimal("25.00"), "USD")
    with sqlite3.connect(ledger) as db:
        charged = db.execute(
            "SELECT count(*), coalesce(sum(amount), 0) FROM charges WHERE status = 'succeeded' "
            "AND key LIKE ?",
            (f"%/{number}/%",),
        ).fetchone()
    assert charged[1] == 25  # the amount of one charge, not two
    return len(rows), charged[0]


@pytest.mark.parametrize("kind", ["retry", "pay_online", "update_link", "mixed"])
def test_threads_racing_for_one_invoice_charge_it_once(tmp_path, db_url, kind, monkeypatch):
    monkeypatch.setenv("ABONNEMENT_LINK_SECRET", SECRET)
    config, ledger, number, payment_id = _owing(tmp_path, db_url)
    links = [payments.update_link(App(config, db_url).context, "s1", ON)["token"]
             for _ in range(CALLERS)]  # fmt: skip
    calls = {
        "retry": lambda ctx, i: payments.retry(ctx, payment_id, ON),
        "pay_online": lambda ctx, i: payments.pay_online(ctx, number, "tok_visa", ON),
        "update_link": lambda ctx, i: payments.update_payment_method(ctx, links[i], "tok_visa", ON),
    }
    order = list(calls) if kind == "mixed" else [kind]
    contexts = [App(config, db_url).context for _ in range(CALLERS)]
    barrier = threading.Barrier(CALLERS)
    outcomes: list[object] = [None] * CALLERS

    def caller(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = calls[order[i % len(order)]](contexts[i], i)
        except (AlreadyCollecting, InvalidState) as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert _succeeded(db_url, ledger, number) == (1, 1)
    refused = [o for o in outcomes if isinstance(o, Exception)]
    for exc in refused:
        text = str(exc)
        assert "already being collected" in text or "not open" in text, text
    # one caller collected it; an update link that lost saved its card and collected nothing
    winners = [o for o in outcomes if isinstance(o, dict) and (
        o.get("status") in ("succeeded", "paid") or o.get("collected"))]  # fmt: skip
    assert len(winners) == 1, outcomes
    losers = [o for o in outcomes if not any(o is w for w in winners)]
    assert all(isinstance(o, Exception) or o["collected"] == [] for o in losers), outcomes
    assert len(losers) == CALLERS - 1


def _command(config: Path, url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "abonnement", "--config", str(config), "--db", url, *args]


def test_processes_racing_for_one_invoice_charge_it_once(tmp_path, db_url, monkeypatch):
    # retries, an online payment, an update link and a billing run reaching the automatic
    # retry, each in its own process, started together
    monkeypatch.setenv("ABONNEMENT_LINK_SECRET", SECRET)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    config, ledger, number, payment_id = _owing(tmp_path, db_url)
    link = payments.update_link(App(config, db_url).context, "s1", ON)["token"]
    as_of = ("--as-of", ON.isoformat())
    commands = [
        _command(config, db_url, "payments", "retry", str(payment_id), *as_of),
        _command(config, db_url, "payments", "retry", str(payment_id), *as_of),
        _command(config, db_url, "invoices", "pay", number, "--card", "tok_visa", *as_of),
        _command(config, db_url, "payment-methods", "update", link, "--card", "tok_visa", *as_of),
        _command(config, db_url, "run", "--until", "2026-12-10"),
    ]
    processes = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for c in commands]  # fmt: skip
    outputs = [p.communicate(timeout=60) for p in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        text = err.decode()
        assert "Traceback" not in text, text
        assert process.returncode in (0, 1), text
        if process.returncode == 1:
            assert "already being collected" in text or "not open" in text, text
    assert _succeeded(db_url, ledger, number) == (1, 1)
    assert processes[-1].returncode == 0  # the run is never the one refused


def test_a_payment_by_hand_while_a_charge_is_in_flight_is_refused(tmp_path, db_url):
    config, ledger, number, payment_id = _owing(tmp_path, db_url)
    by_hand = App(config, db_url).context
    assert by_hand.storage is not None  # opened before the race: the charge takes 0.3 s
    charging = threading.Thread(
        target=payments.retry, args=(App(config, db_url).context, payment_id, ON)
    )
    charging.start()
    store = SqlStorage(db_url)
    for _ in range(200):  # until the retry's attempt is committed pending
        if any(p.status == "pending" for p in store.payments(invoice_number=number)):
            break
        threading.Event().wait(0.01)
    with pytest.raises(AlreadyCollecting, match=f"invoice {number} is already being collected"):
        payments.pay_invoice(by_hand, number, ON, amount="25.00")
    charging.join(timeout=30)
    store.close()
    assert _succeeded(db_url, ledger, number) == (1, 1)  # the charge; nothing recorded by hand
