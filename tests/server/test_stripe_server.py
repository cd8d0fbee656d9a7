"""The server with the ``stripe`` processor, against the local Stripe stub: the buyer pages
take Stripe's hosted fields (only a PaymentMethod id is posted), and ``POST /hooks/stripe``
settles bank debits from signed events, once; unsigned, forged, stale and replayed events are
refused with 400 and change nothing."""

from __future__ import annotations

import json
import time

import pytest

from abonnement.plugins.processors.stripe import API_VERSION
from tests.acceptance.test_collection_scenarios import BOB_CARD, BOB_SAVED
from tests.plugins import stripe_stub as stub
from tests.plugins.stripe_stub import StripeStub
from tests.server.shop import WEBHOOK_SECRET, Shop, text_of

PUBLISHABLE = "pk_test_publishable"
JS = "/stripe-js-stub.js"  # the pages load Stripe.js from here (no network in tests)


def _shop(tmp_path, monkeypatch, db_url, api, method: str = "", **kwargs) -> Shop:
    monkeypatch.setenv("STRIPE_API_KEY", stub.SECRET_KEY)
    monkeypatch.setenv("STRIPE_PUBLISHABLE_KEY", PUBLISHABLE)
    ledger = tmp_path / "ledger.db"
    replace = {f"    processor: test\n    test: {{ledger: '{ledger}'}}\n":
               f"    processor: stripe\n    stripe: {{api_base: '{api}', js_url: '{JS}'}}\n"}  # fmt: skip
    if method:
        replace[BOB_CARD] = method
    return Shop(tmp_path, db_url, monkeypatch, replace=replace, **kwargs)


@pytest.fixture
def api():
    server, address = stub.start()
    yield address
    server.shutdown()


@pytest.fixture
def shop(tmp_path, monkeypatch, api):
    s = _shop(tmp_path, monkeypatch, f"sqlite:///{tmp_path / 'abonnement.db'}", api)
    yield s
    s.close()


def test_the_link_page_takes_the_card_in_stripes_own_fields(shop):
    page = shop.client.get("/l/coffee-monthly")
    assert page.status_code == 200
    assert f'<script src="{JS}"></script>' in page.text
    assert f'data-key="{PUBLISHABLE}" data-currency="usd"' in page.text
    assert "createPaymentMethod({elements: elements})" in page.text
    # our form posts only the PaymentMethod id: no card number field of ours
    assert '<input type="hidden" id="card" name="card" value="">' in page.text
    assert 'type="text" id="card"' not in page.text and "tok_visa" not in page.text
    assert '<button type="submit">Subscribe now and save</button>' in page.text
    assert "Card payment here needs JavaScript" in page.text  # in <noscript>


def test_without_a_publishable_key_the_pages_take_no_card(shop, monkeypatch):
    monkeypatch.delenv("STRIPE_PUBLISHABLE_KEY")
    page = shop.client.get("/l/coffee-monthly")
    assert "Online card payment is not available here yet." in text_of(page.text)
    assert "<script" not in page.text and '<button type="submit">' not in page.text


def test_a_buyer_pays_with_a_payment_method_saved_on_a_customer_of_their_own(shop):
    done = shop.form("/l/coffee-monthly", name="Ada Lovelace", email="ada@example.org",
                     card="pm_visa")  # fmt: skip
    assert done.status_code == 200, text_of(done.text)
    ((customer_id, customer),) = StripeStub.customers.items()
    assert (customer["email"], customer["name"]) == ("ada@example.org", "Ada Lovelace")
    assert StripeStub.methods == {"pm_visa": customer_id}
    ((intent_id, intent),) = StripeStub.intents.items()
    assert (intent["customer"], intent["payment_method"], intent["amount"], intent["status"]) == (
        customer_id, "pm_visa", 2500, "succeeded")  # fmt: skip
    (payment,) = shop.project.context.storage.payments()
    assert (payment.status, payment.reference) == ("succeeded", intent_id)
    assert {r["version"] for r in StripeStub.requests} == {API_VERSION}


def test_a_declined_card_on_the_page_says_why_and_charges_nothing(shop):
    page = shop.form("/l/coffee-monthly", name="Ada Lovelace", email="ada@example.org",
                     card="pm_insufficient")  # fmt: skip
    assert page.status_code == 402
    assert "Your card was declined: insufficient funds. Nothing was charged." in text_of(page.text)
    assert stub.charges() == []


# -- webhooks ------------------------------------------------------------------------------


def _debit(tmp_path, monkeypatch, db_url, api) -> Shop:
    """Bob's monthly coffee by ACH debit: on 2026-12-01 Stripe's PaymentIntent is processing."""
    s = _shop(tmp_path, monkeypatch, db_url, api, subscriptions=BOB_SAVED,
              method="      - {id: bob-visa, type: ach, token: pm_ach}\n")  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")
    assert [p["status"] for p in s.payments()] == ["processing"]
    return s


@pytest.fixture
def debit(tmp_path, monkeypatch, db_url, api):
    s = _debit(tmp_path, monkeypatch, db_url, api)
    yield s
    s.close()


def _event(event_id: str, kind: str, **intent: object) -> bytes:
    """A Stripe event about the debit's PaymentIntent ``pi_1``."""
    (charged,) = StripeStub.intents.values()
    obj = {**charged, **intent, "object": "payment_intent"}
    return json.dumps({"id": event_id, "object": "event", "type": kind, "api_version": API_VERSION,
                       "created": int(time.time()), "data": {"object": obj}}).encode()  # fmt: skip


def _post(s: Shop, body: bytes, signature: str | None):
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return s.client.post("/hooks/stripe", content=body, headers=headers)


def _state(s: Shop) -> tuple:
    return ([(p["status"], p["failure_code"]) for p in s.payments()],
            s.cli("invoices", "show", "INV-00001")["status"])  # fmt: skip


def test_a_settled_debit_is_recorded_once_and_a_replay_is_refused(debit):
    body = _event("evt_1", "payment_intent.succeeded", status="succeeded")
    signature = stub.sign(body, WEBHOOK_SECRET, int(time.time()))
    answer = _post(debit, body, signature)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"event": "evt_1", "type": "payment_intent.succeeded",
                             "recorded": True}  # fmt: skip
    assert _state(debit) == ([("succeeded", None)], "paid")
    replay = _post(debit, body, signature)
    assert replay.status_code == 400
    assert replay.json()["error"]["message"] == "event evt_1 was received already"
    # Stripe sends an event more than once at times: the news under another id changes nothing
    again = _event("evt_2", "payment_intent.succeeded", status="succeeded")
    answer = _post(debit, again, stub.sign(again, WEBHOOK_SECRET, int(time.time())))
    assert answer.json()["recorded"] is False
    assert _state(debit) == ([("succeeded", None)], "paid")


def test_a_failed_debit_is_recorded_with_its_reason(debit):
    body = _event("evt_3", "payment_intent.payment_failed", status="requires_payment_method",
                  last_payment_error={"type": "card_error", "code": "account_closed"})  # fmt: skip
    answer = _post(debit, body, stub.sign(body, WEBHOOK_SECRET, int(time.time())))
    assert answer.json()["recorded"] is True
    assert _state(debit) == ([("failed", "account_closed")], "open")


@pytest.mark.parametrize("case", ["unsigned", "other secret", "stale", "tampered", "garbage"])
def test_an_event_not_signed_by_stripe_now_is_refused_and_changes_nothing(debit, case):
    body = _event("evt_4", "payment_intent.succeeded", status="succeeded")
    now = int(time.time())
    signature = {
        "unsigned": None,
        "other secret": stub.sign(body, "whsec_someone_else", now),
        "stale": stub.sign(body, WEBHOOK_SECRET, now - 600),  # a replay of an old delivery
        "tampered": stub.sign(
            body.replace(b'"succeeded"', b'"processing"', 1), WEBHOOK_SECRET, now
        ),
        "garbage": "t=,v1=zz",
    }[case]
    answer = _post(debit, body, signature)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "webhook_refused"
    assert _state(debit) == ([("processing", None)], "open")
    # refused, so not remembered: the genuine delivery of the event is still recorded
    genuine = _post(debit, body, stub.sign(body, WEBHOOK_SECRET, now))
    assert genuine.json()["recorded"] is True


def test_an_event_about_something_else_is_acknowledged_and_ignored(debit):
    body = json.dumps({"id": "evt_5", "type": "customer.created",
                       "data": {"object": {"id": "cus_9", "object": "customer"}}}).encode()  # fmt: skip
    answer = _post(debit, body, stub.sign(body, WEBHOOK_SECRET, int(time.time())))
    assert answer.json() == {"event": "evt_5", "type": "customer.created", "recorded": False}
    assert _state(debit) == ([("processing", None)], "open")


def test_the_stripe_webhook_secret_variable_is_read_too(debit, monkeypatch):
    monkeypatch.delenv("ABONNEMENT_WEBHOOK_SECRET")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_from_stripe")
    body = _event("evt_6", "payment_intent.succeeded", status="succeeded")
    assert _post(debit, body, stub.sign(body, WEBHOOK_SECRET, int(time.time()))).status_code == 400
    answer = _post(debit, body, stub.sign(body, "whsec_from_stripe", int(time.time())))
    assert answer.json()["recorded"] is True


# -- the update and invoice pages ------------------------------------------------------------


@pytest.fixture
def arrears(tmp_path, monkeypatch, api):
    """Bob's card (a bare, declined PaymentMethod) failed on 2026-12-01: INV-00001 is owed."""
    from datetime import date

    s = _shop(tmp_path, monkeypatch, f"sqlite:///{tmp_path / 'abonnement.db'}", api,
              subscriptions=BOB_SAVED,
              method="      - {id: bob-visa, type: card, token: pm_insufficient}\n")  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-09")
    s.today = date(2026, 12, 10)
    yield s
    s.close()


def test_the_update_page_saves_the_new_card_on_the_contacts_customer_and_collects(arrears):
    import re

    s = arrears
    mail = [m for m in s.mails() if m["To"] == "bob@example.com"][-1]
    path = re.search(r"http://localhost:8000(/u/\S+)",
                     mail.get_body(("plain",)).get_content()).group(1)  # fmt: skip
    page = s.client.get(path)
    assert f'data-key="{PUBLISHABLE}"' in page.text and 'type="text" id="card"' not in page.text
    done = s.form(path, card="pm_new_card")
    assert done.status_code == 200, text_of(done.text)
    assert "We collected: Invoice INV-00001 $25.00" in text_of(done.text)
    ((customer_id, customer),) = StripeStub.customers.items()
    assert customer["metadata"] == {"abonnement_contact": "bob"}
    assert StripeStub.methods == {"pm_new_card": customer_id}
    assert [(i["payment_method"], i["customer"]) for i in stub.charges()] == [
        ("pm_new_card", customer_id)]  # fmt: skip
    # the saved token names the customer: the next renewals are charged off-session with it
    (sub,) = [x for x in s.project.context.storage.subscriptions() if x.id == "bob-coffee"]
    assert sub.payment_token == f"{customer_id}:pm_new_card"


def test_a_card_stripe_cannot_save_leaves_the_update_link_usable(arrears):
    import re

    s = arrears
    mail = [m for m in s.mails() if m["To"] == "bob@example.com"][-1]
    path = re.search(r"http://localhost:8000(/u/\S+)",
                     mail.get_body(("plain",)).get_content()).group(1)  # fmt: skip
    refused = s.form(path, card="pm_attach_declined")
    assert refused.status_code == 402
    assert s.client.get(path).status_code == 200  # not spent
    assert s.form(path, card="pm_visa").status_code == 200
    assert s.cli("invoices", "show", "INV-00001")["status"] == "paid"


def test_an_invoice_is_paid_online_with_stripes_fields(tmp_path, monkeypatch, api):
    import re
    from datetime import date

    from tests.conftest import run

    manual = ("  - id: bob-manual\n    contact: bob\n    start: 2026-12-01\n"
              "    items: [{product: coffee-1kg, quantity: 1}]\n"
              "    collection: {mode: manual, payment_terms: net_30}\n")  # fmt: skip
    s = _shop(tmp_path, monkeypatch, f"sqlite:///{tmp_path / 'abonnement.db'}", api,
              subscriptions=manual)  # fmt: skip
    try:
        s.cli("apply", "--as-of", "2026-12-01")
        s.cli("run", "--until", "2026-12-01")
        s.today = date(2026, 12, 5)
        html = run("--config", str(s.config), "--db", s.db_url, "invoices", "render",
                   "INV-00001").stdout  # fmt: skip
        path = re.search(r'href="http://localhost:8000(/i/[^"]+)"', html).group(1)
        page = s.client.get(path)
        assert f'data-key="{PUBLISHABLE}" data-currency="usd"' in page.text
        assert "Pay $25.00" in text_of(page.text)
        declined = s.form(path, card="pm_lost")
        assert "Your card was declined: the card was reported lost." in text_of(declined.text)
        paid = s.form(path, card="pm_visa")
        assert "Thank you! Invoice INV-00001 is paid: $25.00." in text_of(paid.text)
        # both cards were saved on Bob's one customer; one charge moved money
        assert StripeStub.methods == {"pm_lost": "cus_1", "pm_visa": "cus_1"}
        assert [(i["payment_method"], i["customer"], i["amount"]) for i in stub.charges()] == [
            ("pm_visa", "cus_1", 2500)]  # fmt: skip
    finally:
        s.close()


def test_a_card_stripe_cannot_save_leaves_the_pay_link_usable(tmp_path, monkeypatch, api):
    import re
    from datetime import date

    from tests.conftest import run

    manual = ("  - id: bob-manual\n    contact: bob\n    start: 2026-12-01\n"
              "    items: [{product: coffee-1kg, quantity: 1}]\n"
              "    collection: {mode: manual, payment_terms: net_30}\n")  # fmt: skip
    s = _shop(tmp_path, monkeypatch, f"sqlite:///{tmp_path / 'abonnement.db'}", api,
              subscriptions=manual)  # fmt: skip
    try:
        s.cli("apply", "--as-of", "2026-12-01")
        s.cli("run", "--until", "2026-12-01")
        s.today = date(2026, 12, 5)
        html = run("--config", str(s.config), "--db", s.db_url, "invoices", "render",
                   "INV-00001").stdout  # fmt: skip
        path = re.search(r'href="http://localhost:8000(/i/[^"]+)"', html).group(1)
        gone = s.form(path, card="pm_gone")
        assert gone.status_code == 402
        assert ("Your card was declined: the card number is not valid. Nothing was charged."
                in text_of(gone.text))  # fmt: skip
        assert s.client.get(path).status_code == 200  # the link is not spent
        assert s.form(path, card="pm_visa").status_code == 200
        assert s.cli("invoices", "show", "INV-00001")["status"] == "paid"
    finally:
        s.close()


# -- 3-D Secure ----------------------------------------------------------------------------


def _post_form(s: Shop, path: str, **fields: str):
    """POST ``path``'s form again as the browser does after Stripe.js ran (the page's own
    CSRF token, the fields it kept)."""
    import re

    page = s.client.get(path)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return s.client.post(path, data={"csrf_token": token, **fields})


def test_a_card_the_bank_wants_confirmed_is_authenticated_on_the_page_then_charged_once(shop):
    asked = shop.form("/l/coffee-monthly", name="Ada Lovelace", email="ada@example.org",
                      card="pm_3ds")  # fmt: skip
    assert asked.status_code == 402
    assert ("Your bank asks you to confirm this card. Follow the steps in the window that "
            "opens; nothing has been charged yet.") in text_of(asked.text)  # fmt: skip
    (setup,) = StripeStub.setups.values()
    assert (setup["status"], setup["usage"], setup["payment_method"]) == (
        "requires_action", "off_session", "pm_3ds")  # fmt: skip
    assert setup["next_action"]["type"] == "use_stripe_sdk"
    # the page runs Stripe.js's check at once, with the SetupIntent's client secret
    assert f'data-authenticate="{setup["client_secret"]}"' in asked.text
    assert "stripe.handleNextAction({clientSecret: box.dataset.authenticate})" in asked.text
    assert 'value="Ada Lovelace"' in asked.text  # the form is kept for the second post
    assert StripeStub.intents == {} and shop.cli("invoices", "list") == []
    posted = [r for r in StripeStub.requests if r["path"] == "/v1/setup_intents"]
    assert posted[0]["form"]["confirm"] == "true"
    assert posted[0]["form"]["payment_method_types[0]"] == "card"

    StripeStub.authenticate(setup["id"])  # the buyer passes the bank's check in Stripe's frame
    done = _post_form(shop, "/l/coffee-monthly", name="Ada Lovelace", email="ada@example.org",
                      card=setup["id"])  # fmt: skip
    assert done.status_code == 200, text_of(done.text)
    assert "Thank you! Your payment of $25.00 was received." in text_of(done.text)
    ((intent_id, intent),) = StripeStub.intents.items()
    assert (intent["customer"], intent["payment_method"], intent["status"]) == (
        setup["customer"], "pm_3ds", "succeeded")  # fmt: skip
    (charge,) = [r for r in StripeStub.requests if r["path"] == "/v1/payment_intents"]
    assert charge["form"]["off_session"] == "true"
    (payment,) = shop.project.context.storage.payments()
    assert (payment.status, payment.reference) == ("succeeded", intent_id)
    (sub,) = shop.cli("subscriptions", "list")
    assert sub["status"] == "active"


def test_a_failed_or_foreign_authentication_charges_nothing(shop):
    shop.form("/l/coffee-monthly", name="Ada", email="ada@example.org", card="pm_3ds")
    (setup,) = StripeStub.setups.values()
    StripeStub.authenticate(setup["id"], passed=False)
    failed = _post_form(shop, "/l/coffee-monthly", name="Ada", email="ada@example.org",
                        card=setup["id"])  # fmt: skip
    assert failed.status_code == 402
    assert "Your card was declined: your bank asks you to confirm the payment" in text_of(
        failed.text)  # fmt: skip
    # someone else posting Ada's SetupIntent: it is read back from Stripe and is not theirs
    StripeStub.authenticate(setup["id"])
    other = _post_form(shop, "/l/coffee-monthly", name="Eve", email="eve@example.org",
                       card=setup["id"])  # fmt: skip
    assert other.status_code == 402
    assert "Your card was declined: the card number is not valid." in text_of(other.text)
    assert StripeStub.intents == {} and stub.charges() == []


def test_a_renewal_the_bank_refuses_without_the_buyer_fails_clearly_and_the_update_link_asks(
    tmp_path, monkeypatch, api
):
    import re

    s = _shop(tmp_path, monkeypatch, f"sqlite:///{tmp_path / 'abonnement.db'}", api,
              subscriptions=BOB_SAVED,
              method="      - {id: bob-visa, type: card, token: pm_3ds}\n")  # fmt: skip
    try:
        StripeStub.authenticated.add("pm_3ds")  # set up once, but the bank asks again
        StripeStub.reauthenticate.add("pm_3ds")
        s.cli("apply", "--as-of", "2026-12-01")
        s.cli("run", "--until", "2026-12-01")
        (failed,) = s.payments()
        assert (failed["status"], failed["failure_code"]) == ("failed", "authentication_required")
        assert stub.charges() == []
        (intent,) = StripeStub.intents.values()
        assert intent["last_payment_error"]["code"] == "authentication_required"
        mail = [m for m in s.mails() if m["To"] == "bob@example.com"][-1]
        path = re.search(r"http://localhost:8000(/u/\S+)",
                         mail.get_body(("plain",)).get_content()).group(1)  # fmt: skip
        asked = s.form(path, card="pm_3ds")
        assert asked.status_code == 402
        assert "Your bank asks you to confirm this card." in text_of(asked.text)
        setup = list(StripeStub.setups.values())[-1]
        assert f'data-authenticate="{setup["client_secret"]}"' in asked.text
        assert s.cli("invoices", "show", "INV-00001")["status"] == "open"
        StripeStub.authenticate(setup["id"])
        done = _post_form(s, path, card=setup["id"])
        assert done.status_code == 200, text_of(done.text)
        assert "We collected: Invoice INV-00001 $25.00" in text_of(done.text)
        assert s.cli("invoices", "show", "INV-00001")["status"] == "paid"
        assert s.subscription("bob-coffee")["status"] == "active"
        assert [c["payment_method"] for c in stub.charges()] == ["pm_3ds"]
    finally:
        s.close()


def test_the_api_hands_a_card_the_bank_wants_confirmed_back_with_its_client_secret(shop):
    from tests.server.test_api import _key

    _key(shop)
    body = {"link_id": "coffee-monthly", "contact_id": "bob", "card": "pm_3ds",
            "as_of": "2026-12-01"}  # fmt: skip
    asked = shop.client.post("/api/v1/checkouts", json=body)
    assert asked.status_code == 402
    (setup,) = StripeStub.setups.values()
    error = asked.json()["error"]
    assert (error["code"], error["failure_code"], error["client_secret"], error["setup_intent"]) == (
        "authentication_required", "authentication_required", setup["client_secret"], setup["id"])  # fmt: skip
    StripeStub.authenticate(setup["id"])  # the client's own page ran Stripe.js
    done = shop.client.post("/api/v1/checkouts", json={**body, "card": setup["id"]})
    assert done.status_code == 201 and done.json()["payment"] == "succeeded"
    assert [c["payment_method"] for c in stub.charges()] == ["pm_3ds"]
