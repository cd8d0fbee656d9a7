"""Processes at once on one database: applies and runs on a fresh one, a second run on SQLite,
first uses racing the migrations, a kill while a database is made, a worker killed, commands
racing a run. Each is bounded in time; none may print a traceback."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from filelock import FileLock

from abonnement.plugins.storage.sql import SqlStorage
from tests.conftest import PG_URL, ROOT

N = 40
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _config(root: Path, *, declared: int = N, latency: float = 0.0, notify: bool = False) -> Path:
    """A config declaring ``declared`` monthly subscriptions (25.00 USD, tok_visa) from
    2026-12-01, and a payment link; the test processor answers after ``latency`` s;
    ``notify``: receipts and admin notices to a mailbox (``config/outbox``)."""
    config = root / "config"
    config.mkdir()
    subs = "".join(
        f"  - {{id: d{i:03d}, contact: c1, currency: USD, start: 2026-12-01, "
        "items: [{product: coffee}], "
        "collection: {mode: automatic, payment_method: c1-visa}}\n"
        for i in range(declared)
    )
    (config / "abonnement.yaml").write_text(
        "settings:\n  account: Busy Co.\n  currencies: [USD]\n"
        f"  payments: {{processor: test, test: {{ledger: '{root / 'ledger.db'}', "
        f"latency: {latency}}}}}\n"
        + (
            "  notifications: {notifiers: [mailbox], mailbox: {directory: outbox}, "
            "admins: [billing@example.com]}\n"
            if notify
            else "  notifications: {notifiers: []}\n"
        )
        + "products:\n  - {id: coffee, name: Coffee, price: '25.00 USD', frequency: monthly}\n"
        "contacts:\n  - id: c1\n    name: C\n    email: c@example.com\n"
        "    payment_methods:\n      - {id: c1-visa, type: card, token: tok_visa}\n"
        "payment_links:\n  - {id: buy, name: Coffee, items: [{product: coffee}]}\n"
        + (f"subscriptions:\n{subs}" if declared else "")
    )
    return config


def _start(config: Path, url: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "abonnement", "--config", str(config), "--db", url, *args]
    return subprocess.Popen(command, env=env or ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip


def _finish(process: subprocess.Popen, timeout: float = 60) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    assert b"Traceback" not in err, err.decode()
    return process.returncode, out.decode(), err.decode()


def _fresh_url(tmp_path: Path, db_url: str) -> str:
    """SQLite: a file that does not exist yet (both processes make it); PostgreSQL: the
    fixture's migrated, empty schema (a server database is never made by a command)."""
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    return db_url


@pytest.mark.parametrize("command", [("apply", "--as-of", "2026-12-01"),
                                     ("run", "--until", "2026-12-01")])  # fmt: skip
def test_two_processes_on_a_fresh_database_create_each_declared_subscription_once(
    tmp_path, db_url, command
):
    url = _fresh_url(tmp_path, db_url)
    config = _config(tmp_path)
    processes = [_start(config, url, *command) for _ in range(3)]
    results = [_finish(p) for p in processes]
    assert [rc for rc, _, _ in results] == [0, 0, 0], results
    store = SqlStorage(url)
    subs = store.subscriptions()
    assert sorted(s.id for s in subs) == [f"d{i:03d}" for i in range(N)]
    created = Counter(e.subject_id for e in store.events() if e.type == "subscription.created")
    assert set(created.values()) == {1} and len(created) == N
    if command[0] == "run":  # and each billed once
        invoices = store.invoices()
        assert sorted(i.subscription_id for i in invoices) == [f"d{i:03d}" for i in range(N)]
        with sqlite3.connect(tmp_path / "ledger.db") as db:
            (charged,) = db.execute("SELECT count(*) FROM charges").fetchone()
        assert charged == N
    store.close()


def test_three_runs_with_notifications_hand_over_and_send_each_message_once(tmp_path, db_url):
    # the outbox's events are handed over by one process each (their rows locked, in order):
    # no duplicate delivery rows, no deadlock, no traceback
    config = _config(tmp_path, notify=True)
    env = {**ENV, "ABONNEMENT_LOCK_TIMEOUT": "600"}  # SQLite: the runs take turns, however slow
    # -q: a run's log of every delivery would fill the pipe of a process not read yet,
    # and that process would block holding the database
    processes = [_start(config, db_url, "-q", "run", "--until", "2027-03-01", env=env)
                 for _ in range(3)]  # fmt: skip
    results = [_finish(p, timeout=120) for p in processes]
    assert [rc for rc, _, _ in results] == [0, 0, 0], results
    store = SqlStorage(db_url)
    rows = store.deliveries()
    assert rows and {r.status for r in rows} == {"sent"}
    mails = sorted((config / "outbox").glob("*.eml"))
    assert len(mails) == len(rows) == len({r.key for r in rows})
    assert len(store.invoices()) == 4 * N  # December to March, each billed once
    store.close()


def test_a_second_run_on_sqlite_waits_then_says_another_run_holds_the_database(tmp_path):
    db = tmp_path / "a.db"
    url = f"sqlite:///{db}"
    config = _config(tmp_path)
    SqlStorage(url).close()
    env = {**ENV, "ABONNEMENT_LOCK_TIMEOUT": "1"}
    with FileLock(f"{db}-run"):  # what a first run holds while it runs
        started = time.monotonic()
        rc, _, err = _finish(_start(config, url, "run", "--until", "2026-12-01", env=env))
        waited = time.monotonic() - started
        rc_json, out, _ = _finish(
            _start(config, url, "run", "--until", "2026-12-01", "--json", env=env)
        )
    assert rc == 1
    assert err.startswith("error: another run holds the database; waited 1 s"), err
    assert waited >= 1
    assert rc_json == 1 and '"code": "busy"' in out
    store = SqlStorage(url)
    assert (store.subscriptions(), store.invoices()) == ([], [])  # nothing done
    store.close()


def test_two_runs_on_one_sqlite_file_take_turns_and_bill_everyone_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'b.db'}"
    config = _config(tmp_path, declared=8, latency=0.1)  # the first run takes ≥ 0.8 s
    processes = [_start(config, url, "run", "--until", "2026-12-01") for _ in range(2)]
    assert [_finish(p)[0] for p in processes] == [0, 0]
    store = SqlStorage(url)
    assert len(store.invoices()) == 8
    assert {p.status for p in store.payments()} == {"succeeded"} and len(store.payments()) == 8
    store.close()


def test_first_uses_of_a_new_sqlite_file_never_see_it_half_migrated(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    config = _config(tmp_path, declared=0)
    processes = [_start(config, url, "subscriptions", "list", "--json") for _ in range(4)]
    results = [_finish(p) for p in processes]
    assert [(rc, out.strip()) for rc, out, _ in results] == [(0, "[]")] * 4, results


def test_a_kill_while_a_database_is_made_leaves_none_or_a_whole_one(tmp_path):
    config = _config(tmp_path, declared=0)
    rng = random.Random(19)
    for trial in range(4):
        db = tmp_path / f"k{trial}.db"
        url = f"sqlite:///{db}"
        process = _start(config, url, "subscriptions", "list")
        time.sleep(rng.uniform(0.3, 1.5))  # somewhere in start-up, creation or migration
        process.send_signal(signal.SIGKILL)
        process.wait()
        existed = db.exists()
        rc, out, err = _finish(_start(config, url, "subscriptions", "list", "--json"))
        assert (rc, out.strip()) == (0, "[]"), (existed, err)


def test_an_empty_file_left_by_an_older_kill_is_migrated(tmp_path):
    db = tmp_path / "empty.db"
    db.touch()  # made, never migrated
    config = _config(tmp_path, declared=0)
    rc, out, err = _finish(_start(config, f"sqlite:///{db}", "subscriptions", "list", "--json"))
    assert (rc, out.strip(), err) == (0, "[]", "")


@pytest.mark.skipif(not PG_URL, reason="needs ABONNEMENT_TEST_DATABASE_URL")
def test_two_db_upgrades_of_a_new_postgresql_schema_take_turns(tmp_path):
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"
        config = _config(tmp_path, declared=0)
        processes = [_start(config, url, "db", "upgrade") for _ in range(2)]
        results = [_finish(p) for p in processes]
        assert [rc for rc, _, _ in results] == [0, 0], results
        rc, out, _ = _finish(_start(config, url, "subscriptions", "list", "--json"))
        assert (rc, out.strip()) == (0, "[]")
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_checkout_and_retry_racing_a_run_give_no_traceback(tmp_path, db_url):
    # the run charges 40 invoices at 50 ms each; a checkout and a retry come in meanwhile
    config = _config(tmp_path, latency=0.05)
    run = _start(config, db_url, "run", "--until", "2026-12-01")
    time.sleep(1.5)
    others = [
        _start(config, db_url, "checkout", "buy", "--contact", "c1", "--card", "tok_visa",
               "--as-of", "2026-12-01", "--json"),
        _start(config, db_url, "payments", "retry", "1", "--as-of", "2026-12-01"),
    ]  # fmt: skip
    rc_run, _, err = _finish(run, timeout=120)
    assert rc_run == 0, err
    (rc_checkout, _, err), (rc_retry, _, err_retry) = [_finish(p) for p in others]
    assert rc_checkout == 0, err
    # payment 1 may not exist yet, or be paid already: a clear refusal either way
    assert rc_retry in (0, 1, 3), err_retry
    if rc_retry:
        assert err_retry.startswith("error: "), err_retry
    store = SqlStorage(db_url)
    paid = Counter(p.invoice_number for p in store.payments() if p.status == "succeeded")
    assert set(paid.values()) == {1} and len(paid) == N + 1  # the run's 40 and the checkout
    store.close()


def _workers_of(pid: int) -> list[int]:
    """The processes ``pid`` spawned through multiprocessing (its billing workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the workers through /proc")
def test_a_killed_worker_is_noticed_and_the_run_finishes_billing_everyone_once(tmp_path, db_url):
    if db_url.startswith("sqlite"):
        pytest.skip("workers need PostgreSQL")
    from datetime import date
    from decimal import Decimal

    import sqlalchemy as sa

    from abonnement.engine.items import Item
    from abonnement.engine.money import Money
    from abonnement.engine.schedule import Frequency
    from abonnement.engine.subscriptions import Subscription

    count = 200
    monthly = Frequency.parse("monthly")
    item = Item("Coffee", 1, Money(Decimal("25.00"), "USD"), frequency=monthly)
    store = SqlStorage(db_url)
    store.insert_subscriptions([
        Subscription(f"w{i:04d}", "c1", "USD", monthly, date(2026, 12, 1), (item,),
                     collection_mode="automatic", payment_type="card", payment_token="tok_visa")
        for i in range(count)
    ], "created")  # fmt: skip
    config = _config(tmp_path, declared=0, latency=0.02)
    run = _start(config, db_url, "run", "--until", "2026-12-01", "--workers", "2",
                 "--batch-size", "5")  # fmt: skip
    deadline = time.monotonic() + 60
    victim = None
    while victim is None and time.monotonic() < deadline and run.poll() is None:
        workers = _workers_of(run.pid)
        with store.engine.connect() as conn:
            billed = conn.execute(sa.text("SELECT count(*) FROM payments")).scalar_one()
        if workers and billed:  # at work: kill one mid-run
            victim = workers[0]
            os.kill(victim, signal.SIGKILL)
        time.sleep(0.05)
    assert victim is not None, "the workers were never seen at work"
    rc, _, err = _finish(run, timeout=120)  # never waits forever
    assert rc == 0, err
    assert "a worker of the billing run died; the run goes on in one process" in err
    invoices = store.invoices()
    assert Counter(i.subscription_id for i in invoices) == {f"w{i:04d}": 1 for i in range(count)}
    assert {i.status for i in invoices} == {"paid"}
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        keys = [k for (k,) in db.execute("SELECT key FROM charges WHERE status = 'succeeded'")]
    assert sorted(Counter(k.split("/")[1] for k in keys).values()) == [1] * count
    store.close()
