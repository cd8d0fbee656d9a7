"""Notifications through the outbox (F25, F26): reminders (S10), failed-payment notices (S7),
a workflow e-mailing the team through a real SMTP server, and webhooks that fail and retry."""

import dataclasses
import email
import threading
import typing
from datetime import date
from decimal import Decimal
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from abonnement.engine.items import Item
from abonnement.engine.money import Money
from abonnement.engine.schedule import Frequency
from abonnement.engine.subscriptions import Subscription, pause
from abonnement.plugins.storage.sql import SqlStorage
from tests.acceptance.receiver import SIGNING_SECRET
from tests.acceptance.scenario import Scenario
from tests.acceptance.test_collection_scenarios import BOB_CARD, BOB_SAVED, SECRET

MAILBOX = "    mailbox: {directory: outbox}        # each plugin's own settings under its name\n"


def mails(s: Scenario) -> list[email.message.EmailMessage]:
    folder = s.config / "outbox"
    return [email.message_from_bytes(p.read_bytes(), policy=policy.default)
            for p in sorted(folder.glob("*.eml"))]  # fmt: skip


def test_s10_a_reminder_before_each_monthly_payment_none_for_biweekly(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=BOB_SAVED + """\
  - id: bob-biweekly
    contact: bob
    start: 2026-12-01
    items: [{product: coffee-500g, quantity: 1}]
    collection: {mode: automatic, method: saved, payment_method: bob-visa}
""")  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-17")
    assert not [m for m in mails(s) if "next payment" in m["Subject"]]
    run = s.cli("run", "--until", "2027-01-01")
    assert run["notifications"]["sent"] >= 1
    events = SqlStorage(s.db_url).events()
    reminders = [(e.subject_id, e.on_date.isoformat(), e.payload["payment_date"])
                 for e in events if e.type == "reminder.due"]  # fmt: skip
    assert reminders == [("bob-coffee", "2026-12-18", "2027-01-01")]
    (reminder,) = [m for m in mails(s) if "next payment" in m["Subject"]]
    assert reminder["To"] == "bob@example.com"
    assert reminder["Subject"].strip() == (
        "Your next payment to Just One More Cup Coffee Co. is on January 1, 2027"
    )
    assert "$25.00 will be charged" in reminder.get_body(("plain",)).get_content()
    assert reminder.get_body(("html",)) is not None
    # a rerun sends nothing twice
    again = s.cli("run", "--until", "2027-01-01")
    assert again["notifications"] == {
        "events": 0,
        "sent": 0,
        "retrying": 0,
        "failed": 0,
        "skipped": 0,
    }


def test_s7_the_buyer_gets_the_update_link_and_admins_each_failure(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=BOB_SAVED,
                 replace={BOB_CARD: BOB_CARD.replace("tok_visa", "tok_insufficient_funds")})  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-09", env=SECRET)
    inbox = mails(s)
    to_buyer = [m for m in inbox if m["To"] == "bob@example.com"]
    to_admins = [m for m in inbox if m["To"] == "billing@example.com"]
    assert len(to_buyer) == 5 and all("failed" in m["Subject"] for m in to_buyer)
    assert "http://localhost:8000/u/" in to_buyer[0].get_body(("plain",)).get_content()
    assert len(to_admins) == 5
    assert {m["Subject"] for m in to_admins} == {"Payment failed: $25.00 from Bob Smith"}


def test_a_workflow_emails_the_team_through_smtp_and_sets_the_owner(tmp_path, db_url, smtp_server):
    port, received = smtp_server
    rules = """\
trigger past_due_alert {
  on subscription.status_changed
  when subscription.status in ["unpaid", "past_due"]
  do notify(to: "team:billing", template: "past_due")
  do set(subscription.owner, "collections")
}
"""
    s = Scenario(tmp_path, db_url, rules=rules, subscriptions=BOB_SAVED,
                 replace={BOB_CARD: BOB_CARD.replace("tok_visa", "tok_lost_card"),
                          "notifiers: [mailbox]": "notifiers: [smtp]",
                          MAILBOX: f"    smtp: {{host: 127.0.0.1, port: {port}}}\n",
                          "    payment_failed: true\n": "    payment_failed: false\n"})  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-02")
    assert s.subscription("bob-coffee")["owner"] == "collections"
    alerts = [(to, email.message_from_bytes(body, policy=policy.default)) for to, body in received
              if b"is unpaid" in body]  # fmt: skip
    assert sorted(to for rcpts, _ in alerts for to in rcpts) == [
        "billing@example.com", "ops@example.com"]  # fmt: skip
    assert alerts[0][1]["Subject"] == "Subscription bob-coffee is unpaid"
    buyer = [m for to, m in ((t, email.message_from_bytes(b, policy=policy.default))
                             for t, b in received) if to == ["bob@example.com"]]  # fmt: skip
    assert [m["Subject"] for m in buyer] == ["Your payment to Just One More Cup Coffee Co. failed"]
    history = [e for e in SqlStorage(s.db_url).events("bob-coffee")
               if e.type == "subscription.changed"]  # fmt: skip
    assert [e.payload for e in history] == [
        {"trigger": "past_due_alert", "set": {"owner": "collections"}}]  # fmt: skip
    count = len(received)
    s.cli("run", "--until", "2026-12-03")
    assert len(received) == count, [b[:300] for _, b in received[count:]]  # nothing twice


class _Hook(BaseHTTPRequestHandler):
    failures = 0
    calls: typing.ClassVar[list] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls.append((dict(self.headers), body))
        if type(self).failures > 0:
            type(self).failures -= 1
            self.send_response(500)
        else:
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def _bob_with_webhooks_down(tmp_path):
    """Bob's saved-card subscription applied, its messages going to a webhook receiver on
    loopback that answers 500 until ``_Hook.failures`` runs out (100: this whole run)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hook.calls, _Hook.failures = [], 100
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", subscriptions=BOB_SAVED,
                 replace={"notifiers: [mailbox]": "notifiers: [webhook]",
                          MAILBOX: f"    webhook: {{url: '{url}', retries: 1}}\n"})  # fmt: skip
    env = {"ABONNEMENT_WEBHOOK_SIGNING_SECRET": SIGNING_SECRET}
    s.cli("apply", "--as-of", "2026-12-01", env=env)
    return server, s, env


def test_webhooks_are_signed_and_retried_on_the_next_run(tmp_path):
    server, s, env = _bob_with_webhooks_down(tmp_path)
    first = s.cli("run", "--until", "2026-12-01", env=env)["notifications"]
    assert first["sent"] == 0 and first["retrying"] == 3  # receipt + 2 admin notices, 2 tries each
    assert len(_Hook.calls) == 6
    _Hook.calls, _Hook.failures = [], 0
    second = s.cli("run", "--until", "2026-12-01", env=env)["notifications"]
    assert (second["sent"], second["retrying"]) == (3, 0)
    headers, body = _Hook.calls[0]
    # signed as every outgoing webhook is: Standard Webhooks, the message key as webhook-id
    payload = Webhook(SIGNING_SECRET).verify(body, headers)
    assert payload["event"]["type"] == "payment.succeeded"
    assert payload["key"] == {k.lower(): v for k, v in headers.items()}["webhook-id"]
    with pytest.raises(WebhookVerificationError):
        Webhook(SIGNING_SECRET).verify(body + b" ", headers)
    server.shutdown()


class _Observer:
    seen: typing.ClassVar[list] = []

    @staticmethod
    @__import__("abonnement.plugins", fromlist=["hookimpl"]).hookimpl
    def abonnement_on_event(event):
        _Observer.seen.append((event.type, event.subject_id, event.seq))


def test_event_observers_see_each_event_once_after_it_committed(tmp_path):
    from datetime import date

    from abonnement.app import App
    from abonnement.operations import billing
    from abonnement.operations.delivery import deliver_due
    from abonnement.plugins.manager import Plugins, build_plugin_manager

    pm = build_plugin_manager()
    pm.register(_Observer, name="observer")
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", subscriptions=BOB_SAVED)
    app = App(s.config, s.db_url, _plugins=Plugins.load(pm))
    _Observer.seen = []
    billing.run(app.context, date(2026, 12, 1), apply_on=date(2026, 12, 1))
    deliver_due(app.context, date(2026, 12, 1))
    assert _Observer.seen == [
        ("subscription.created", "bob-coffee", 1),
        ("subscription.status_changed", "bob-coffee", 2),
        ("invoice.created", "bob-coffee", 3),
        ("payment.succeeded", "bob-coffee", 4),
        ("invoice.paid", "bob-coffee", 5),
    ]


def test_a_danish_receipt_in_danish_money_and_dates(tmp_path):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", subscriptions=BOB_SAVED.replace(
        "    collection:", "    invoice: {language: da, locale: da_DK}\n    collection:"))  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")
    (receipt,) = [m for m in mails(s) if m["To"] == "bob@example.com"]
    assert (
        receipt["Subject"].strip() == "Kvittering for din betaling til Just One More Cup Coffee Co."
    )
    text = receipt.get_body(("plain",)).get_content().replace("\xa0", " ")
    assert "Hej Bob Smith," in text
    assert (
        "Vi har modtaget din betaling på 25,00 USD for faktura INV-00001 den 1. december 2026."
        in text
    )
    admins = [m for m in mails(s) if m["To"] == "billing@example.com"]
    assert {m["Subject"].strip() for m in admins} == {  # the account's language for the team
        "First payment from Bob Smith", "Payment succeeded: $25.00 from Bob Smith"}  # fmt: skip


class _SlowHook(BaseHTTPRequestHandler):
    def do_POST(self):
        import time

        time.sleep(1.0)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_webhook_that_times_out_is_retried_not_lost(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowHook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/slow"
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", subscriptions=BOB_SAVED,
                 replace={"notifiers: [mailbox]": "notifiers: [webhook]",
                          "    first_payment: true\n": "    first_payment: false\n",
                          "    payment_succeeded: true\n": "    payment_succeeded: false\n",
                          MAILBOX: f"    webhook: {{url: '{url}', retries: 0, timeout: 0.2}}\n"})  # fmt: skip
    env = {"ABONNEMENT_WEBHOOK_SIGNING_SECRET": SIGNING_SECRET}
    s.cli("apply", "--as-of", "2026-12-01", env=env)
    assert s.cli("run", "--until", "2026-12-01", env=env)["notifications"]["retrying"] == 1
    (row,) = SqlStorage(s.db_url).deliveries()
    assert (row.status, row.attempts, row.next_try_on.isoformat()) == (
        "pending", 1, "2026-12-01")  # fmt: skip
    assert "timed out" in row.error
    server.shutdown()


def test_a_workflow_set_never_overwrites_a_change_made_meanwhile(tmp_path):
    monthly = Frequency.parse("monthly")
    item = Item("Beans", 1, Money(Decimal("10.00"), "USD"), frequency=monthly)
    active = Subscription("x", "bob", "USD", monthly, date(2026, 12, 1), (item,), status="active")
    store = SqlStorage(f"sqlite:///{tmp_path / 'a.db'}")
    store.insert_subscriptions([active], "declared")
    read = store.subscription("x")  # a workflow reads it at event count 0 …
    store.change("x", lambda sub: pause(sub, date(2026, 12, 5)))  # … someone pauses it …
    stale = dataclasses.replace(read, owner="collections", event_seq=1)
    assert store.hand_over([], [], [stale], [], {"x": 0}) is False  # … so the set is refused
    assert (store.subscription("x").owner, store.subscription("x").status) == (None, "paused")
    assert store.hand_over([], [], [], [], {"x": 2}) is True


def test_a_trigger_asking_for_a_message_the_settings_send_gets_it_once(tmp_path, db_url):
    """A trigger that notifies the receipt the settings send anyway: one delivery (one key),
    one e-mail — never a duplicate key that stops the outbox."""
    rules = """\
trigger receipt_again {
  on payment.succeeded
  do notify(to: "contact", template: "receipt")
}
"""
    s = Scenario(tmp_path, db_url, rules=rules, subscriptions=BOB_SAVED)
    s.cli("apply", "--as-of", "2026-12-01")
    ran = s.cli("run", "--until", "2027-01-01")
    receipts = [d for d in s.cli("deliveries", "list") if d["template"] == "receipt"]
    assert [d["status"] for d in receipts] == ["sent", "sent"]  # December and January
    assert ran["notifications"]["failed"] == 0
    outbox = sorted(p.name for p in (s.config / "outbox").glob("*receipt*.eml"))
    assert len(outbox) == 2


def test_sends_are_recorded_a_batch_at_a_time(tmp_path, monkeypatch):
    """What one hand-over asks for is sent and recorded ``BATCH`` rows at a time (a crash
    sends again at most one batch), and the claims of the rest are kept while it renders."""
    from abonnement.operations import delivery

    recorded: list[int] = []
    original = SqlStorage.delivery_results

    def spy(self, results, on, claimant=None, skipped=()):
        recorded.append(len(results) + len(skipped))
        return original(self, results, on, claimant, skipped)

    monkeypatch.setattr(delivery, "BATCH", 2)
    monkeypatch.setattr(SqlStorage, "delivery_results", spy)
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", subscriptions=BOB_SAVED)
    s.cli("apply", "--as-of", "2026-12-01")
    ran = s.cli("run", "--until", "2026-12-01")
    # the receipt and the two admin notices of Bob's first payment: 2, then 1
    assert ran["notifications"]["sent"] == 3
    assert [n for n in recorded if n] == [2, 1]


def test_the_run_summary_says_what_will_be_tried_again(tmp_path):
    """Deliveries that failed and wait for the next run are named in the text summary (on
    stderr), not only in the log; the run still exits 0 (nothing was given up)."""
    from tests.conftest import run

    server, s, env = _bob_with_webhooks_down(tmp_path)
    ran = run("--config", str(s.config), "--db", s.db_url, "-q", "run", "--until", "2026-12-01",
              env=env)  # fmt: skip
    server.shutdown()
    assert ran.exit_code == 0
    assert ("3 deliveries failed and will be tried again on the next run: see `abonnement "
            "deliveries list --status pending`") in ran.stderr  # fmt: skip
