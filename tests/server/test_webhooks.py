"""Processor webhooks (``POST /hooks/test``): a settled or failed bank debit recorded once;
unsigned, forged, stale and replayed events refused with 400 and nothing changed."""

import json
import time

import pytest

from abonnement.plugins.processors.test import sign_webhook
from tests.acceptance.test_collection_scenarios import BOB_CARD, BOB_SAVED
from tests.conftest import run
from tests.server.shop import WEBHOOK_SECRET, Shop


def _debit(tmp_path, monkeypatch, url):
    """Bob's monthly coffee paid by bank debit: on 2026-12-01 the debit is processing."""
    s = Shop(tmp_path, url, monkeypatch, subscriptions=BOB_SAVED,
             replace={BOB_CARD: "      - {id: bob-visa, type: ach, token: tok_ach}\n"})  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")
    assert [p["status"] for p in s.payments()] == ["processing"]
    return s


@pytest.fixture
def any_debit(tmp_path, monkeypatch, db_url):
    s = _debit(tmp_path, monkeypatch, db_url)
    yield s
    s.close()


@pytest.fixture
def debit(tmp_path, monkeypatch):
    s = _debit(tmp_path, monkeypatch, f"sqlite:///{tmp_path / 'abonnement.db'}")
    yield s
    s.close()


def _event(event_id: str, kind: str, key: str = "", **data: str) -> bytes:
    """An event about the charge with idempotency ``key`` (the processor knows it: it was
    sent with the charge)."""
    return json.dumps({"id": event_id, "type": kind,
                       "data": {"idempotency_key": key, **data}}).encode()  # fmt: skip


def _key(s: Shop) -> str:
    ((key, _amount, _status),) = s.charges()  # the processor's own ledger
    return key


def _post(s: Shop, body: bytes, signature: str | None = None, processor: str = "test"):
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Abonnement-Signature"] = signature
    return s.client.post(f"/hooks/{processor}", content=body, headers=headers)


def _state(s: Shop) -> tuple:
    return ([(p["status"], p["failure_code"]) for p in s.payments()],
            s.cli("invoices", "show", "INV-00001")["status"],
            s.subscription("bob-coffee")["status"])  # fmt: skip


def test_a_settled_debit_is_recorded_once_and_a_replay_is_refused(any_debit):
    debit = any_debit
    body = _event("evt_1", "charge.succeeded", _key(debit))
    answer = _post(debit, body, sign_webhook(body, WEBHOOK_SECRET))
    assert answer.status_code == 200
    assert answer.json() == {"event": "evt_1", "type": "charge.succeeded", "recorded": True}
    settled = ([("succeeded", None)], "paid", "active")
    assert _state(debit) == settled
    replay = _post(debit, body, sign_webhook(body, WEBHOOK_SECRET))
    assert replay.status_code == 400
    assert replay.json()["error"] == {"code": "webhook_refused",
                                      "message": "event evt_1 was received already"}  # fmt: skip
    # the same news under another event id changes nothing: the attempt is recorded
    again = _event("evt_2", "charge.succeeded", _key(debit))
    assert _post(debit, again, sign_webhook(again, WEBHOOK_SECRET)).json()["recorded"] is False
    # nor does the billing run's own look at the debit four days later
    debit.cli("run", "--until", "2026-12-05")
    assert _state(debit) == settled
    events = [e["type"] for e in debit.subscription("bob-coffee")["history"]]
    assert events.count("payment.succeeded") == 1 and events.count("invoice.paid") == 1


def test_a_failed_debit_is_recorded_with_its_reason(debit):
    body = _event("evt_9", "charge.failed", _key(debit), failure_code="account_closed")
    assert _post(debit, body, sign_webhook(body, WEBHOOK_SECRET)).status_code == 200
    assert _state(debit) == ([("failed", "account_closed")], "open", "unpaid")


@pytest.mark.parametrize("signed", [
    lambda body: None,  # unsigned
    lambda body: "t=0,v1=00",
    lambda body: sign_webhook(b"another body", WEBHOOK_SECRET),
    lambda body: sign_webhook(body, "the-wrong-secret-0000"),
    lambda body: sign_webhook(body, WEBHOOK_SECRET, int(time.time()) - 600),  # stale: a replay
])  # fmt: skip
def test_an_unsigned_forged_or_stale_event_is_refused_and_changes_nothing(debit, signed):
    body = _event("evt_1", "charge.succeeded", _key(debit))
    answer = _post(debit, body, signed(body))
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "webhook_refused"
    assert _state(debit) == ([("processing", None)], "open", "active")
    # the same body, signed now with the secret, is recorded: only the signature was wrong
    assert _post(debit, body, sign_webhook(body, WEBHOOK_SECRET)).json()["recorded"] is True


def test_a_malformed_event_or_another_processor_is_refused(debit):
    garbage = b"{not json"
    assert _post(debit, garbage, sign_webhook(garbage, WEBHOOK_SECRET)).status_code == 400
    body = _event("evt_1", "charge.succeeded", _key(debit))
    other = _post(debit, body, sign_webhook(body, WEBHOOK_SECRET), processor="stripe")
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
    assert _state(debit) == ([("processing", None)], "open", "active")


def test_an_event_about_nothing_of_ours_is_acknowledged_and_ignored(debit):
    body = json.dumps({"id": "evt_3", "type": "customer.updated", "data": {}}).encode()
    answer = _post(debit, body, sign_webhook(body, WEBHOOK_SECRET))
    assert answer.json() == {"event": "evt_3", "type": "customer.updated", "recorded": False}
    assert _state(debit) == ([("processing", None)], "open", "active")


@pytest.fixture
def paid(tmp_path, monkeypatch, db_url):
    """Bob's monthly coffee, paid by card on 2026-12-01."""
    s = Shop(tmp_path, db_url, monkeypatch, subscriptions=BOB_SAVED)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")
    yield s
    s.close()


def test_a_dispute_is_recorded_once_and_shown_with_its_invoice(paid):
    key = _key(paid)
    body = _event("evt_d1", "charge.dispute.created", key, dispute_id="dp_1", amount="25.00",
                  reason="fraudulent")  # fmt: skip
    answer = _post(paid, body, sign_webhook(body, WEBHOOK_SECRET))
    assert answer.status_code == 200
    assert answer.json() == {"event": "evt_d1", "type": "charge.dispute.created",
                             "recorded": True}  # fmt: skip
    replay = _post(paid, body, sign_webhook(body, WEBHOOK_SECRET))
    assert replay.status_code == 400
    assert replay.json()["error"]["message"] == "event evt_d1 was received already"
    # the same dispute told again under another event id is not a second dispute
    again = _event("evt_d2", "charge.dispute.created", key, dispute_id="dp_1", amount="25.00")
    assert _post(paid, again, sign_webhook(again, WEBHOOK_SECRET)).json()["recorded"] is False
    (payment,) = paid.payments()
    shown = paid.cli("invoices", "show", "INV-00001")
    assert shown["status"] == "paid"  # the money stays until the bank decides
    assert shown["disputes"] == [{"id": "dp_1", "processor": "test",
                                  "payment_id": payment["id"], "amount": "25.00",
                                  "currency": "USD", "reason": "fraudulent",
                                  "opened_on": "2026-12-01"}]  # fmt: skip
    text = run("--config", str(paid.config), "--db", paid.db_url, "invoices", "show",
               "INV-00001").stdout  # fmt: skip
    assert text.endswith(
        "disputes:\nOPENED      AMOUNT  CURRENCY  REASON      PROCESSOR  ID\n"
        "2026-12-01   25.00  USD       fraudulent  test       dp_1\n"
    )
    (event,) = paid.cli("events", "list", "--type", "payment.disputed")
    assert (event["subject_id"], event["data"]) == ("bob-coffee", {
        "invoice": "INV-00001", "payment": payment["id"], "dispute": "dp_1",
        "amount": "25.00", "currency": "USD", "reason": "fraudulent"})  # fmt: skip
    history = [e["type"] for e in paid.subscription("bob-coffee")["history"]]
    assert history.count("payment.disputed") == 1


def test_a_dispute_about_a_charge_not_ours_is_refused(paid):
    body = _event("evt_d3", "charge.dispute.created", "someone/else", dispute_id="dp_9")
    answer = _post(paid, body, sign_webhook(body, WEBHOOK_SECRET))
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == (
        "the disputed charge `someone/else` is not one of ours")  # fmt: skip
    assert "disputes" not in paid.cli("invoices", "show", "INV-00001")
    assert paid.cli("events", "list", "--type", "payment.disputed") == []
