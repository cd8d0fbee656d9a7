"""A buyer's request sends what it set off, not the outbox's backlog: a checkout through
the server with 2,000 messages pending from an earlier run, and 600 events of another
subscription not handed over yet, sends its own receipt and returns; the next ``run``
delivers the backlog, each message once."""

from datetime import date

import sqlalchemy as sa

from tests.server.shop import Shop
from tests.server.test_pages import BOB_MANUAL

BACKLOG = 2000
WAITING = 600  # events not handed over: more than one batch of the hand-over


def _backlog(shop: Shop) -> None:
    """2,000 welcome messages to bob pending from the earlier run (another key each), as a
    run whose mail server was down leaves them."""
    engine = sa.create_engine(shop.db_url)
    with engine.begin() as conn:
        event_id = conn.execute(
            sa.text("SELECT id FROM events WHERE subject_id = 'bob-manual' ORDER BY id")
        ).scalar()
        conn.execute(sa.text(
            "INSERT INTO deliveries (key, event_id, channel, template, recipient, source, "
            "status, attempts) VALUES (:key, :event_id, 'mailbox', 'welcome', 'contact', "
            "'settings', 'pending', 0)"
        ), [{"key": f"backlog/{n:05d}/mailbox", "event_id": event_id}
            for n in range(BACKLOG)])  # fmt: skip
        seq = conn.execute(sa.text(
            "SELECT max(seq) FROM events WHERE subject_id = 'bob-manual'")).scalar()  # fmt: skip
        # a change notice each, as a run stopped before its hand-over leaves them
        conn.execute(sa.text(
            "INSERT INTO events (type, subject_id, seq, on_date, payload, delivered) VALUES "
            "('subscription.changed', 'bob-manual', :seq, '2026-12-01', '{}', false)"
        ), [{"seq": seq + 1 + n} for n in range(WAITING)])  # fmt: skip
    engine.dispose()


def test_a_checkout_sends_its_receipt_not_the_backlog_which_the_next_run_delivers(
    tmp_path, monkeypatch, db_url
):
    shop = Shop(tmp_path, db_url, monkeypatch, subscriptions=BOB_MANUAL)
    try:
        shop.cli("apply", "--as-of", "2026-12-01")
        shop.cli("run", "--until", "2026-12-01")
        before = len(shop.mails())
        _backlog(shop)
        shop.today = date(2026, 12, 1)
        done = shop.form("/l/coffee-monthly", name="Ada Lovelace", email="ada@example.org",
                         card="tok_visa")  # fmt: skip
        assert done.status_code == 200
        new = shop.mails()[before:]
        assert [(m["To"], m["Subject"]) for m in new if m["To"] == "ada@example.org"] == [
            ("ada@example.org", "Receipt for your payment to Just One More Cup Coffee Co.")
        ]
        assert all(m["To"] != "bob@example.com" for m in new)  # none of the backlog
        assert len(new) < 10
        # besides the backlog, only bob's invoice reminder and past-due notice wait (held
        # for their dates)
        pending = shop.cli("deliveries", "list", "--status", "pending")
        assert sorted(d["template"] for d in pending if not d["id"].startswith("backlog/")) == [
            "invoice_past_due", "invoice_reminder"]  # fmt: skip
        assert len(pending) == BACKLOG + 2
        bob_before = sum(m["To"] == "bob@example.com" for m in shop.mails())
        shop.cli("run", "--until", "2026-12-01")
        held = shop.cli("deliveries", "list", "--status", "pending")
        assert sorted(d["template"] for d in held) == ["invoice_past_due", "invoice_reminder"]
        mails = shop.mails()  # by file name (event id first): compared as counts
        assert len(mails) == before + len(new) + BACKLOG + WAITING
        bob = sum(m["To"] == "bob@example.com" for m in mails)
        assert bob - bob_before == BACKLOG + WAITING
    finally:
        shop.close()
