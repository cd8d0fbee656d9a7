"""The stripe processor against a local HTTP stub of the Stripe API (no network)."""

import json
import threading
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from abonnement.engine.money import Money
from abonnement.errors import PluginError
from abonnement.plugins.processors.stripe import StripeProcessor

DECLINES = {"pm_insufficient": "insufficient_funds", "pm_lost": "lost_card"}


class StripeStub(BaseHTTPRequestHandler):
    """Just enough of /v1/payment_intents: create (idempotent by key) and search."""

    intents: ClassVar[dict] = {}
    responses: ClassVar[dict] = {}
    requests: ClassVar[list] = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        key = self.headers.get("Idempotency-Key")
        self.requests.append({"path": self.path, "form": form, "key": key,
                              "auth": self.headers.get("Authorization")})  # fmt: skip
        if key in self.responses:  # Stripe replays the first response for a key
            self._send(*self.responses[key])
            return
        intent_id = f"pi_{len(self.intents) + 1}"
        method = form["payment_method"]
        status = "processing" if method == "pm_ach" else "succeeded"
        intent = {"id": intent_id, "object": "payment_intent", "amount": int(form["amount"]),
                  "currency": form["currency"], "status": status,
                  "metadata": {"abonnement_key": form["metadata[abonnement_key]"]}}  # fmt: skip
        if method in DECLINES:
            intent["status"] = "requires_payment_method"
            error = {"type": "card_error", "code": "card_declined",
                     "decline_code": DECLINES[method], "message": "declined",
                     "payment_intent": intent}  # fmt: skip
            self.intents[intent_id] = intent
            response = (402, {"error": error})
        else:
            self.intents[intent_id] = intent
            response = (200, intent)
        self.responses[key] = response
        self._send(*response)

    def do_GET(self):
        query = parse_qs(urlparse(self.path).query)["query"][0]
        key = query.split(":", 1)[1].strip("'")
        data = [i for i in self.intents.values() if i["metadata"]["abonnement_key"] == key]
        self._send(200, {"object": "search_result", "data": data, "has_more": False,
                         "url": "/v1/payment_intents/search"})  # fmt: skip


@pytest.fixture
def stripe_api(monkeypatch):
    StripeStub.intents, StripeStub.responses, StripeStub.requests = {}, {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), StripeStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_secret")
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


USD25 = Money(Decimal("25.00"), "USD")
DAY = date(2026, 12, 1)


def test_a_charge_is_a_confirmed_payment_intent_sent_with_its_idempotency_key(stripe_api):
    stripe = StripeProcessor({"api_base": stripe_api})
    result = stripe.charge(amount=USD25, token="pm_visa", idempotency_key="INV-00001/attempt-1",
                           on=DAY)  # fmt: skip
    assert (result.status, result.reference) == ("succeeded", "pi_1")
    (request,) = StripeStub.requests
    assert request["path"] == "/v1/payment_intents"
    assert request["key"] == "INV-00001/attempt-1"
    assert request["auth"] == "Bearer sk_test_secret"
    assert {k: request["form"][k] for k in ("amount", "currency", "confirm", "off_session")} == {
        "amount": "2500",
        "currency": "usd",
        "confirm": "true",
        "off_session": "true",
    }


def test_the_same_key_never_charges_twice(stripe_api):
    stripe = StripeProcessor({"api_base": stripe_api})
    first = stripe.charge(amount=USD25, token="pm_visa", idempotency_key="k/1", on=DAY)
    again = stripe.charge(amount=USD25, token="pm_visa", idempotency_key="k/1", on=DAY)
    assert first == again and len(StripeStub.intents) == 1


@pytest.mark.parametrize(("token", "code", "retryable"), [
    ("pm_insufficient", "insufficient_funds", True), ("pm_lost", "lost_card", False),
])  # fmt: skip
def test_declines_are_soft_or_hard(stripe_api, token, code, retryable):
    stripe = StripeProcessor({"api_base": stripe_api})
    result = stripe.charge(amount=USD25, token=token, idempotency_key=f"{token}/1", on=DAY)
    assert (result.status, result.failure_code, result.retryable) == ("failed", code, retryable)


def test_lookup_finds_a_charge_by_its_key_after_a_crash(stripe_api):
    stripe = StripeProcessor({"api_base": stripe_api})
    stripe.charge(amount=USD25, token="pm_ach", idempotency_key="INV-00002/attempt-1", on=DAY)
    found = StripeProcessor({"api_base": stripe_api}).lookup(
        idempotency_key="INV-00002/attempt-1", on=DAY
    )
    assert found is not None and found.status == "processing"
    assert stripe.lookup(idempotency_key="INV-09999/attempt-1", on=DAY) is None


def test_the_secret_comes_from_the_environment_only(monkeypatch):
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    with pytest.raises(PluginError, match="STRIPE_API_KEY"):
        StripeProcessor({})


def test_a_billing_run_collects_through_stripe(stripe_api, tmp_path):
    from tests.acceptance.scenario import Scenario
    from tests.acceptance.test_collection_scenarios import BOB_SAVED

    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}",
                 replace={"      - {id: bob-visa, type: card, token: tok_visa}\n":
                          "      - {id: bob-visa, type: card, token: pm_visa}\n"},
                 subscriptions=BOB_SAVED)  # fmt: skip
    config = s.config / "abonnement.yaml"
    text = config.read_text()
    start = text.index("    processor: test\n")
    end = text.index("\n", text.index("    test: {ledger", start)) + 1
    config.write_text(text[:start] + f"    processor: stripe\n    stripe: {{api_base: '{stripe_api}'}}\n"
                      + text[end:])  # fmt: skip
    s.cli("run", "--until", "2027-01-01")
    assert [(i["issue_date"], i["status"]) for i in s.invoices()] == [
        ("2026-12-01", "paid"),
        ("2027-01-01", "paid"),
    ]
    assert [r["key"] for r in StripeStub.requests] == ["INV-00001/attempt-1", "INV-00002/attempt-1"]
