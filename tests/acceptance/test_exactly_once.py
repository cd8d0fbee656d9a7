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


def _run(config: Path, url: str, kill_after: float | None) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "abonnement", "--config", str(config), "--db", url, "run",
               "--until", "2026-12-31", "--batch-size", "100"]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)  # fmt: skip
    if kill_after is None:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err.decode()
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
    per_invoice = Counter(key.split("/")[0] for (key,) in charges)
    assert sorted(per_invoice) == sorted(i.number for i in invoices)
    assert set(per_invoice.values()) == {1}  # charged exactly once, whatever the kill hit
    assert not [p for p in store.payments() if p.status == "pending"]
