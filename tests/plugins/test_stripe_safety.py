"""The stripe processor with real money in mind, against the local Stripe stub: one customer
per contact, the request kept before it is sent and replayed with its key after a crash (never
found by Search, which lags), every error an outcome or a pending attempt, never a double
charge."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import httpx
import pytest

from abonnement.engine.catalog import Contact
from abonnement.engine.money import Money
from abonnement.errors import PaymentDeclined, PluginError, ProcessorTimeout
from abonnement.plugins.processors import stripe as plugin
from abonnement.plugins.processors.stripe import API_VERSION, StripeProcessor
from abonnement.plugins.storage.sql import SqlStorage
from tests.plugins import stripe_stub as stub
from tests.plugins.stripe_stub import StripeStub

USD25 = Money(Decimal("25.00"), "USD")
DAY = date(2026, 12, 1)
BOB = Contact(id="bob", name="Bob Baker", email="bob@example.com")
ANE = Contact(id="ane", name="Ane Olsen", email="ane@example.com")


@pytest.fixture
def api(monkeypatch):
    server, address = stub.start()
    monkeypatch.setenv("STRIPE_API_KEY", stub.SECRET_KEY)
    yield address
    server.shutdown()


@pytest.fixture
def store(db_url):
    storage = SqlStorage(db_url)
    yield storage
    storage.close()


def _stripe(api: str, store: SqlStorage) -> StripeProcessor:
    """A processor as a new process builds it: nothing in memory, the storage shared."""
    return StripeProcessor({"api_base": api, "storage": store})


def _intents_posted() -> list[dict]:
    return [r for r in StripeStub.requests if r["path"] == "/v1/payment_intents"]


def test_every_request_pins_the_api_version(api, store):
    stripe = _stripe(api, store)
    token = stripe.attach(contact=BOB, token="pm_visa", on=DAY)
    stripe.charge(amount=USD25, token=token, idempotency_key="i/INV-1/attempt-1", on=DAY)
    assert [r["path"] for r in StripeStub.requests] == [
        "/v1/customers", "/v1/payment_methods/pm_visa/attach", "/v1/setup_intents",
        "/v1/payment_intents"]  # fmt: skip
    assert {r["version"] for r in StripeStub.requests} == {API_VERSION}


def test_a_customer_is_made_once_per_contact_and_kept(api, store):
    first = _stripe(api, store).attach(contact=BOB, token="pm_visa", on=DAY)
    # another process, another card of Bob's: the customer kept is used
    second = _stripe(api, store).attach(contact=BOB, token="pm_mastercard", on=DAY)
    other = _stripe(api, store).attach(contact=ANE, token="pm_ane", on=DAY)
    assert (first, second, other) == ("cus_1:pm_visa", "cus_1:pm_mastercard", "cus_2:pm_ane")
    made = [r for r in StripeStub.requests if r["path"] == "/v1/customers"]
    instance = store.instance_id()
    assert [(r["key"], r["form"]["email"], r["form"]["metadata[abonnement_contact]"])
            for r in made] == [(f"{instance}/customer/bob", "bob@example.com", "bob"),
                               (f"{instance}/customer/ane", "ane@example.com", "ane")]  # fmt: skip
    assert StripeStub.methods == {"pm_visa": "cus_1", "pm_mastercard": "cus_1", "pm_ane": "cus_2"}
    assert store.processor_customer("stripe", "bob") == "cus_1"


def test_a_customer_made_twice_at_once_is_one_customer(api, store):
    # two first uses racing: both send the contact's key; Stripe makes one customer, and the
    # table keeps one id for the contact
    a, b = _stripe(api, store), _stripe(api, store)
    ids = {a.customer(BOB, DAY), b.customer(BOB, DAY)}
    store.save_processor_customer("stripe", "bob", "cus_elsewhere", DAY)  # a late loser
    assert ids == {"cus_1"} and len(StripeStub.customers) == 1
    assert store.processor_customer("stripe", "bob") == "cus_1"


def test_an_attached_card_is_charged_with_its_customer_off_session(api, store):
    stripe = _stripe(api, store)
    token = stripe.attach(contact=BOB, token="pm_visa", on=DAY)
    result = stripe.charge(amount=USD25, token=token, idempotency_key="i/INV-1/attempt-1", on=DAY)
    assert (result.status, result.reference) == ("succeeded", "pi_1")
    (sent,) = _intents_posted()
    assert sent["key"] == "i/INV-1/attempt-1"
    assert {k: sent["form"][k] for k in ("amount", "currency", "customer", "payment_method",
                                         "confirm", "off_session",
                                         "metadata[abonnement_key]")} == {
        "amount": "2500", "currency": "usd", "customer": "cus_1", "payment_method": "pm_visa",
        "confirm": "true", "off_session": "true", "metadata[abonnement_key]": "i/INV-1/attempt-1",
    }  # fmt: skip
    kept = store.processor_request("stripe", "i/INV-1/attempt-1")
    assert kept["reference"] == "pi_1"
    assert json.loads(kept["request"])["customer"] == "cus_1"


def test_a_card_declined_or_unknown_when_attached_is_explained(api, store):
    stripe = _stripe(api, store)
    with pytest.raises(PaymentDeclined) as declined:
        stripe.attach(contact=BOB, token="pm_attach_declined", on=DAY)
    assert declined.value.failure_code == "do_not_honor"
    with pytest.raises(
        PaymentDeclined, match=r"Stripe could not save this card \(resource_missing\)"
    ) as gone:
        stripe.attach(contact=BOB, token="pm_gone", on=DAY)
    assert gone.value.failure_code == "invalid_token"


def test_the_same_key_replays_the_first_result(api, store):
    stripe = _stripe(api, store)
    first = stripe.charge(amount=USD25, token="pm_visa", idempotency_key="k/1", on=DAY)
    again = _stripe(api, store).charge(amount=USD25, token="pm_visa", idempotency_key="k/1",
                                       on=DAY)  # fmt: skip
    assert first == again and len(stub.charges()) == 1


@pytest.mark.parametrize("fault", ["drop", "garbage", "500"])
def test_a_crash_or_a_bad_answer_then_reconcile_charges_exactly_once(api, store, fault):
    """drop: the PaymentIntent is made, the answer is lost (a crash between request and
    record looks the same); garbage: made, the answer unreadable; 500: Stripe failed before
    making anything. Each time the charge is unknown (pending), and asking again replays the
    kept request with the same key: one charge, never two."""
    StripeStub.faults = [fault]
    with pytest.raises(ProcessorTimeout):
        _stripe(api, store).charge(amount=USD25, token="pm_visa", idempotency_key="i/INV-7/a-1",
                                   on=DAY)  # fmt: skip
    made_before = len(StripeStub.intents)
    assert made_before == (0 if fault == "500" else 1)
    found = _stripe(api, store).lookup(idempotency_key="i/INV-7/a-1", on=DAY)
    assert (found.status, found.reference) == ("succeeded", "pi_1")
    assert [i["id"] for i in stub.charges()] == ["pi_1"]
    posted = _intents_posted()
    assert [r["key"] for r in posted] == ["i/INV-7/a-1", "i/INV-7/a-1"]
    assert posted[0]["form"] == posted[1]["form"]  # the same request, to the letter
    assert not [r for r in StripeStub.requests if "search" in r["path"]]


def test_reconcile_does_not_depend_on_search_which_lags(api, store):
    """Stripe's Search is not read-after-write: here a new PaymentIntent shows in it only
    after three searches. A reconcile by search would find nothing and charge again."""
    StripeStub.search_lag = 3
    StripeStub.faults = ["drop"]
    with pytest.raises(ProcessorTimeout):
        _stripe(api, store).charge(amount=USD25, token="pm_visa", idempotency_key="i/INV-8/a-1",
                                   on=DAY)  # fmt: skip
    search = httpx.get(f"{api}/v1/payment_intents/search",
                       params={"query": "metadata['abonnement_key']:'i/INV-8/a-1'"},
                       headers={"Authorization": f"Bearer {stub.SECRET_KEY}"})  # fmt: skip
    assert search.json()["data"] == []  # the stub hides it, as Stripe's index may
    found = _stripe(api, store).lookup(idempotency_key="i/INV-8/a-1", on=DAY)
    assert (found.status, found.reference) == ("succeeded", "pi_1")
    assert len(StripeStub.intents) == 1
    ours = [r for r in StripeStub.requests if r["auth"] and "search" in r["path"]]
    assert len(ours) == 1  # the test's own search only


def test_a_request_kept_but_never_sent_is_sent_by_the_reconcile(api, store):
    # a crash after the request was kept, before it went out: the replay is its first sending
    store.save_processor_request("stripe", "i/INV-9/a-1", json.dumps({
        "amount": 2500, "confirm": True, "currency": "usd", "metadata": {"abonnement_key":
        "i/INV-9/a-1"}, "off_session": True, "payment_method": "pm_visa"}, sort_keys=True),
        int(plugin._clock()))  # fmt: skip
    found = _stripe(api, store).lookup(idempotency_key="i/INV-9/a-1", on=DAY)
    assert (found.status, found.reference) == ("succeeded", "pi_1")
    assert _stripe(api, store).lookup(idempotency_key="i/INV-never/a-1", on=DAY) is None


def test_past_the_replay_window_a_known_intent_is_retrieved_and_an_unknown_one_waits(
    api, store, monkeypatch, caplog
):
    stripe = _stripe(api, store)
    stripe.charge(amount=USD25, token="pm_ach", idempotency_key="i/INV-2/a-1", on=DAY)
    StripeStub.faults = ["drop"]
    with pytest.raises(ProcessorTimeout):
        stripe.charge(amount=USD25, token="pm_visa", idempotency_key="i/INV-3/a-1", on=DAY)
    later = plugin._clock() + 25 * 3600  # Stripe has forgotten both keys
    monkeypatch.setattr(plugin, "_clock", lambda: later)
    StripeStub.intents["pi_1"]["status"] = "succeeded"  # the bank debit settled meanwhile
    StripeStub.responses.clear()
    settled = _stripe(api, store).lookup(idempotency_key="i/INV-2/a-1", on=DAY)
    assert (settled.status, settled.reference) == ("succeeded", "pi_1")
    assert StripeStub.requests[-1]["path"] == "/v1/payment_intents/pi_1"
    before = len(StripeStub.requests)
    unknown = _stripe(api, store).lookup(idempotency_key="i/INV-3/a-1", on=DAY)
    # never sent again (that would be a second charge now): left for a webhook or a person
    assert (unknown.status, unknown.reference, unknown.failure_code) == (
        "processing", None, "manual_review")  # fmt: skip
    assert len(StripeStub.requests) == before and len(StripeStub.intents) == 2
    (warning,) = [r for r in caplog.records if r.name == "abonnement.processors.stripe"]
    assert warning.levelname == "WARNING"
    assert warning.getMessage().startswith(
        "charge i/INV-3/a-1 needs a person: it was sent more than 23 hours ago"
    )
    assert "metadata abonnement_key=i/INV-3/a-1 in the Stripe Dashboard" in warning.getMessage()


def test_a_bank_debit_is_read_by_its_id_not_replayed(api, store):
    # a replay would answer "processing" forever: the first result of the key
    stripe = _stripe(api, store)
    first = stripe.charge(amount=USD25, token="pm_ach", idempotency_key="i/INV-4/a-1", on=DAY)
    assert first.status == "processing"
    StripeStub.intents["pi_1"]["status"] = "succeeded"
    assert stripe.lookup(idempotency_key="i/INV-4/a-1", on=DAY).status == "succeeded"


@pytest.mark.parametrize(("token", "code", "retryable"), [
    ("pm_insufficient", "insufficient_funds", True),
    ("pm_lost", "lost_card", False),
    ("pm_3ds", "authentication_required", False),
    ("pm_gone", "resource_missing", False),
])  # fmt: skip
def test_declines_are_failed_outcomes_with_their_reason(api, store, token, code, retryable):
    result = _stripe(api, store).charge(amount=USD25, token=token, idempotency_key=f"{token}/1",
                                        on=DAY)  # fmt: skip
    assert (result.status, result.failure_code, result.retryable) == ("failed", code, retryable)
    assert stub.charges() == []


def test_a_refused_secret_key_is_a_clear_configuration_error(api, store, monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_wrong")
    with pytest.raises(PluginError, match="Stripe refused the secret key in STRIPE_API_KEY"):
        _stripe(api, store).charge(amount=USD25, token="pm_visa", idempotency_key="k/1", on=DAY)
    with pytest.raises(PluginError, match="Stripe refused the secret key in STRIPE_API_KEY"):
        _stripe(api, store).attach(contact=BOB, token="pm_visa", on=DAY)
    assert StripeStub.intents == {} and StripeStub.customers == {}


def test_the_request_is_kept_even_when_the_charge_rolls_back(api, store):
    """On PostgreSQL the billing run holds one transaction around its processor calls: the
    kept request must be committed on its own, before it is sent, or a crash would lose it."""
    with pytest.raises(RuntimeError), store.holding():
        _stripe(api, store).charge(amount=USD25, token="pm_visa", idempotency_key="i/INV-5/a-1",
                                   on=DAY)  # fmt: skip
        raise RuntimeError("the process dies here")
    kept = store.processor_request("stripe", "i/INV-5/a-1")
    assert kept is not None and kept["reference"] == "pi_1"
