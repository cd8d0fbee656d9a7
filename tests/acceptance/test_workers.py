"""Several workers on one due set: every subscription billed once, every invoice charged once."""

import json
import sqlite3
import threading
import typing
from collections import Counter
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from abonnement.engine.items import Item
from abonnement.engine.money import Money
from abonnement.engine.schedule import Frequency
from abonnement.engine.subscriptions import Subscription
from abonnement.plugins.storage.sql import SqlStorage
from tests.acceptance.receiver import SIGNING_SECRET
from tests.acceptance.test_exactly_once import _config
from tests.conftest import run

N = 800


def test_four_workers_bill_and_charge_each_subscription_once(tmp_path, db_url):
    if db_url.startswith("sqlite"):
        pytest.skip("workers need PostgreSQL")
    monthly = Frequency.parse("monthly")
    item = Item("Coffee", 1, Money(Decimal("25.00"), "USD"), frequency=monthly)
    subs = [Subscription(f"w{i:04d}", "c1", "USD", monthly, date(2026, 12, 1 + i % 3), (item,),
                         collection_mode="automatic", payment_type="card",
                         payment_token="tok_visa") for i in range(N)]  # fmt: skip
    SqlStorage(db_url).insert_subscriptions(subs, "declared")
    ledger = tmp_path / "ledger.db"
    config = _config(tmp_path, ledger)
    result = run("--config", str(config), "--db", db_url, "run", "--until", "2027-01-03",
                 "--workers", "4", "--batch-size", "25", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output + result.stderr
    store = SqlStorage(db_url)
    invoices = store.invoices()
    assert len(invoices) == 2 * N  # December and January, once each
    assert sorted(i.seq for i in invoices) == list(range(1, 2 * N + 1))  # gap-free
    assert {i.status for i in invoices} == {"paid"}
    per_sub = Counter(i.subscription_id for i in invoices)
    assert set(per_sub.values()) == {2}
    with sqlite3.connect(ledger) as db:
        keys = [k for (k,) in db.execute("SELECT key FROM charges WHERE status = 'succeeded'")]
    assert sorted(Counter(k.split("/")[1] for k in keys).values()) == [1] * (2 * N)


def test_sqlite_refuses_more_than_one_worker(tmp_path):
    config = _config(tmp_path, tmp_path / "ledger.db")
    result = run("--config", str(config), "--db", f"sqlite:///{tmp_path / 'x.db'}", "run",
                 "--until", "2027-01-03", "--workers", "2")  # fmt: skip
    assert result.exit_code == 1
    assert "SQLite takes one worker at a time" in result.stderr


def test_workers_report_progress_through_the_parent(tmp_path, db_url):
    if db_url.startswith("sqlite"):
        pytest.skip("workers need PostgreSQL")
    from abonnement.app import App
    from abonnement.operations import billing

    monthly = Frequency.parse("monthly")
    item = Item("Coffee", 1, Money(Decimal("25.00"), "USD"), frequency=monthly)
    subs = [Subscription(f"p{i:03d}", "c1", "USD", monthly, date(2026, 12, 1), (item,))
            for i in range(60)]  # fmt: skip
    SqlStorage(db_url).insert_subscriptions(subs, "declared")
    config = _config(tmp_path, tmp_path / "ledger.db")
    calls: list[tuple[int, int | None]] = []
    result = billing.run(App(config, db_url).context, date(2027, 1, 3), workers=2,
                         batch_size=5, progress=lambda d, t: calls.append((d, t)))  # fmt: skip
    # 60 subscriptions, each claimed on Dec 1 and Jan 1 (and for its reminders)
    assert result.summary.subscriptions >= 120
    assert calls[-1] == (result.summary.subscriptions, result.summary.subscriptions)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


class _Counting(BaseHTTPRequestHandler):
    """A webhook receiver counting each message key (``webhook-id``) it is sent."""

    keys: typing.ClassVar[Counter] = Counter()

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).keys[self.headers["webhook-id"]] += 1
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_workers_share_the_deliveries_and_send_each_message_once(tmp_path, db_url):
    """``run --workers 2`` delivers in both workers: each message reaches the receiver once,
    and the run's counts are every delivery's."""
    if db_url.startswith("sqlite"):
        pytest.skip("workers need PostgreSQL")
    from tests.acceptance.test_delivery_claims import bench_config

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Counting.keys = Counter()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    config = bench_config(tmp_path, 300)
    path = config / "abonnement.yaml"
    text = path.read_text().replace("notifiers: [mailbox]", "notifiers: [webhook]")
    path.write_text(text.replace("mailbox: {directory: outbox}", f"webhook: {{url: '{url}'}}"))
    secret = {"ABONNEMENT_WEBHOOK_SIGNING_SECRET": SIGNING_SECRET}
    result = run("--config", str(config), "--db", db_url, "run", "--until", "2027-02-01",
                 "--workers", "2", "--batch-size", "25", "--json", env=secret)  # fmt: skip
    server.shutdown()
    assert result.exit_code == 0, result.output + result.stderr
    sent = SqlStorage(db_url).deliveries("sent")
    notifications = json.loads(result.stdout)["notifications"]
    assert notifications["sent"] == len(sent) > 600
    assert notifications["failed"] == notifications["retrying"] == 0
    assert set(_Counting.keys.values()) == {1}  # no message twice
    assert set(_Counting.keys) == {d.key.rsplit("/", 1)[0] for d in sent}
