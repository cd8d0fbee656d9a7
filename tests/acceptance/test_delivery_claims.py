"""The outbox under interruptions and concurrency (issues 16 and 19): the coffee story's
mailbox is what it was before deliveries were batched, an interrupted delivery sends every
remaining message once on the next run, and processes working one outbox at once send each
message exactly once."""

from __future__ import annotations

import collections
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from abonnement.plugins.notifiers import mailbox as mailbox_notifier
from abonnement.plugins.storage.sql import SqlStorage
from tests.acceptance.coffee_story import FIXTURE, SECRET, STOPS, mailbox, story_config
from tests.conftest import ROOT, run

# the messages an invoice plans at issue for later days: sent only if still true by then
LATER = ("invoice_reminder", "invoice_past_due")


def file_name(key: str) -> str:
    """The mailbox's file (without ``.eml``) of delivery ``key``."""
    key = key.rsplit("/", 1)[0]
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in key)


def story(tmp_path: Path, db_url: str, stops=STOPS) -> Path:
    config = story_config(tmp_path, tmp_path / "ledger.db")
    for stop in stops:
        result = run("--config", str(config), "--db", db_url, "run", "--until", stop, "--json",
                     env=SECRET)  # fmt: skip
        assert result.exit_code == 0, result.output + result.stderr
    return config


def test_the_coffee_story_mailbox_is_what_it_was(tmp_path, db_url):
    config = story(tmp_path, db_url)
    assert mailbox(config / "outbox") == FIXTURE.read_text()
    # 29 of them about invoices paid by hand: e-mailed, reminded, past due
    assert len(list((config / "outbox").glob("*.eml"))) == 90
    store = SqlStorage(db_url)
    assert {d.status for d in store.deliveries() if not d.next_try_on} == {"sent"}
    # what waits is the last invoices' reminders and notices, held until their days
    assert min(d.next_try_on for d in store.deliveries() if d.next_try_on) > date(2027, 6, 30)
    assert store.claim_deliveries(date(2027, 6, 30), "x", 0, 1) == []  # nothing left, no claims


class Interrupted(BaseException):
    """Stands for whatever stops a process mid-delivery (Ctrl-C, a failing disk)."""


def test_an_interrupted_delivery_sends_every_remaining_message_once(tmp_path, db_url, monkeypatch):
    sends: collections.Counter[str] = collections.Counter()
    write = mailbox_notifier._write

    def failing_after(n: int):
        def counted(directory, name, suffix, data):
            if n and sum(sends.values()) >= n:
                raise Interrupted
            sends[Path(name).stem] += 1
            return write(directory, name, suffix, data)

        return counted

    config = story_config(tmp_path, tmp_path / "ledger.db")

    def cli(stop: str):
        return run("--config", str(config), "--db", db_url, "run", "--until", stop, "--json",
                   env=SECRET)  # fmt: skip

    monkeypatch.setattr(mailbox_notifier, "_write", failing_after(0))
    for stop in STOPS[:3]:
        assert cli(stop).exit_code == 0
    before = sum(sends.values())
    monkeypatch.setattr(mailbox_notifier, "_write", failing_after(before + 9))
    with pytest.raises(Interrupted):
        cli(STOPS[3])
    assert sum(sends.values()) == before + 9
    store = SqlStorage(db_url)
    pending = [d for d in store.deliveries() if d.status == "pending"]
    assert pending and all(d.attempts == 0 for d in pending)  # not counted as failures
    # what the interrupted run sent is recorded, what it did not is free for the next;
    # reminders and notices of invoices paid meanwhile are recorded done without a message
    done = store.deliveries("sent")
    silent = [d for d in done if file_name(d.key) not in sends]
    assert {d.template for d in silent} <= set(LATER)
    assert len(done) == before + 9 + len(silent)
    monkeypatch.setattr(mailbox_notifier, "_write", failing_after(0))
    for stop in STOPS[3:]:
        assert cli(stop).exit_code == 0
    assert set(sends.values()) == {1}
    silent = {file_name(d.key) for d in store.deliveries() if d.template in LATER} - set(sends)
    keys = {file_name(d.key) for d in store.deliveries()} - silent
    assert set(sends) == keys and len(keys) == 90
    assert mailbox(config / "outbox") == FIXTURE.read_text()


def test_a_claim_holds_until_it_lapses(tmp_path, db_url, monkeypatch):
    """A process that died holding deliveries: they wait for its claim to lapse, then the
    next run sends them."""
    from abonnement.operations import delivery

    config = story_config(tmp_path, tmp_path / "ledger.db")
    # the deliveries made, none sent (handed over claimed, then released unsent)
    monkeypatch.setattr(delivery._Sender, "send", lambda *a, **k: None)
    result = run("--config", str(config), "--db", db_url, "run", "--until", "2026-12-01",
                 "--json", env=SECRET)  # fmt: skip
    assert result.exit_code == 0, result.output
    monkeypatch.undo()
    store = SqlStorage(db_url)
    now = int(time.time())
    held = store.claim_deliveries(date(2026, 12, 1), "dead", now, now + 3600, limit=3)
    assert len(held) == 3
    first = run("--config", str(config), "--db", db_url, "run", "--until", "2026-12-01",
                "--json", env=SECRET)  # fmt: skip
    total = len(store.deliveries())
    assert first.exit_code == 0
    sent = {d.key for d in store.deliveries("sent")}
    assert len(sent) == total - 3 and not sent & {d.key for d in held}
    # its claim lapses (claimed until a time already past): the next run sends them
    store.renew_claims("dead", now - 1)
    again = run("--config", str(config), "--db", db_url, "run", "--until", "2026-12-01",
                "--json", env=SECRET)  # fmt: skip
    assert again.exit_code == 0
    assert len(store.deliveries("sent")) == total


def bench_config(root: Path, n: int) -> Path:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_notifications import generate
    finally:
        sys.path.pop(0)
    return generate(root, n, notify=True)


@pytest.mark.parametrize("processes", [4])
def test_processes_sharing_one_outbox_send_each_message_once(tmp_path, db_url, processes):
    config = bench_config(tmp_path, 40)
    from abonnement.operations import delivery

    # the deliveries made, none sent: the processes below share them
    original = delivery._Sender.send
    delivery._Sender.send = lambda *a, **k: None  # type: ignore[method-assign]
    try:
        result = run("--config", str(config), "--db", db_url, "run", "--until", "2026-12-01")
    finally:
        delivery._Sender.send = original  # type: ignore[method-assign]
    assert result.exit_code == 0, result.output + result.stderr
    store = SqlStorage(db_url)
    pending = store.deliveries("pending")
    keys = {file_name(d.key) for d in pending if d.next_try_on is None}
    # 36 paid automatically: receipt and admin notice each, 36 more; 4 invoices e-mailed
    assert len(keys) == 112
    # their past-due notices wait for the day after the due date
    assert {d.template for d in pending if d.next_try_on} == {"invoice_past_due"}
    log, ready = tmp_path / "sends.log", tmp_path / "ready"
    ready.mkdir()
    command = [sys.executable, "-m", "tests.acceptance.delivery_worker", str(config), db_url,
               "2026-12-01", str(log), str(ready), str(processes)]  # fmt: skip
    workers = [
        subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        assert "Traceback" not in err, err
    lines = [line.split() for line in log.read_text().splitlines()]
    sends = collections.Counter(key for _, key in lines)
    assert set(sends) == keys
    assert set(sends.values()) == {1}, [k for k, n in sends.items() if n > 1]
    assert len({pid for pid, _ in lines}) > 1  # they did share the work
    assert {d.status for d in store.deliveries() if not d.next_try_on} == {"sent"}
