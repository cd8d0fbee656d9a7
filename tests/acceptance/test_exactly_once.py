"""Kill the billing run at random points, rerun it: every invoice charged exactly once."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from abonnement.engine.items import Item
from abonnement.engine.money import Money
from abonnement.engine.schedule import Frequency
from abonnement.engine.subscriptions import Subscription
from abonnement.plugins.storage.sql import SqlStorage
from tests.conftest import ROOT

N = 2000
TRIALS = 20
MONTHLY = Frequency.parse("monthly")


def _config(root: Path, ledger: Path) -> Path:
    config = root / "config"
    config.mkdir()
    (config / "abonnement.yaml").write_text(
        "settings:\n  account: Crash Co.\n  currencies: [USD]\n"
        f"  payments: {{processor: test, test: {{ledger: '{ledger}'}}}}\n"
        "  notifications: {notifiers: []}\n"  # charges are the point here, not receipts
        "contacts:\n  - {id: c1, name: C, email: c@example.com}\n"
    )
    return config


def _subscriptions() -> list[Subscription]:
    item = Item("Coffee", 1, Money(Decimal("25.00"), "USD"), frequency=MONTHLY)
    return [
        Subscription(
            f"s{i:05d}",
            "c1",
            "USD",
            MONTHLY,
            date(2026, 12, 1 + i % 20),
            (item,),
            collection_mode="automatic",
            payment_type="card",
            payment_token="tok_timeout" if i % 10 == 0 else "tok_visa",
        )
        for i in range(N)
    ]


def _run(config: Path, url: str, kill_after: float | None, exit_code: int = 0) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "abonnement", "--config", str(config), "--db", url, "run",
               "--until", "2026-12-31", "--batch-size", "100"]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)  # fmt: skip
    if kill_after is None:
        _, err = process.communicate(timeout=300)
        assert process.returncode == exit_code, err.decode()
        assert b"Traceback" not in err, err.decode()
        return
    time.sleep(kill_after)
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.mark.parametrize("trial", range(TRIALS))
def test_a_killed_run_then_a_rerun_charges_every_invoice_once(tmp_path, trial):
    rng = random.Random(trial)
    ledger = tmp_path / "ledger.db"
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    config = _config(tmp_path, ledger)
    SqlStorage(url).insert_subscriptions(_subscriptions(), "declared")
    _run(config, url, kill_after=rng.uniform(0.6, 3.4))
    _run(config, url, kill_after=None)

    store = SqlStorage(url)
    invoices = store.invoices()
    assert len(invoices) == N  # one December invoice per subscription, none twice
    assert {i.status for i in invoices} == {"paid"}
    with sqlite3.connect(ledger) as db:
        charges = db.execute("SELECT key FROM charges WHERE status = 'succeeded'").fetchall()
    per_invoice = Counter(key.split("/")[1] for (key,) in charges)
    assert sorted(per_invoice) == sorted(i.number for i in invoices)
    assert set(per_invoice.values()) == {1}  # charged exactly once, whatever the kill hit
    assert not [p for p in store.payments() if p.status == "pending"]


POISONED = ("s00500", "s01234")  # 1,000,000,000 × 10,000.00: more than storage holds


@pytest.mark.parametrize("trial", range(5))
def test_a_killed_run_with_poisoned_subscriptions_bills_everyone_else_once(tmp_path, trial):
    from dataclasses import replace

    rng = random.Random(1000 + trial)
    ledger = tmp_path / "ledger.db"
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    config = _config(tmp_path, ledger)
    huge = Item("Racks", 1_000_000_000, Money(Decimal("10000.00"), "USD"), frequency=MONTHLY)
    subs = [replace(s, items=(huge,)) if s.id in POISONED else s for s in _subscriptions()]
    SqlStorage(url).insert_subscriptions(subs, "declared")
    _run(config, url, kill_after=rng.uniform(0.6, 3.4))
    _run(config, url, kill_after=None, exit_code=1)  # it names them, and bills the rest

    store = SqlStorage(url)
    invoices = store.invoices()
    assert sorted(i.subscription_id for i in invoices) == sorted(
        s.id for s in subs if s.id not in POISONED)  # fmt: skip
    assert {i.status for i in invoices} == {"paid"}
    with sqlite3.connect(ledger) as db:
        charges = db.execute("SELECT key FROM charges WHERE status = 'succeeded'").fetchall()
    per_invoice = Counter(key.split("/")[1] for (key,) in charges)
    assert sorted(per_invoice) == sorted(i.number for i in invoices)
    assert set(per_invoice.values()) == {1}
    assert not [p for p in store.payments() if p.status == "pending"]
    for sub_id in POISONED:  # set aside in the run that reached it, or in both
        assert {e.type for e in store.events(sub_id)} == {"subscription.billing_failed"}
