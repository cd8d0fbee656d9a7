"""The stripe processor against a local HTTP stub of the Stripe API (no network)."""

import json
from datetime import date
from decimal import Decimal

import pytest

from abonnement.engine.money import Money
from abonnement.errors import PluginError
from abonnement.plugins.processors.stripe import StripeProcessor
from abonnement.plugins.storage.sql import SqlStorage
from tests.plugins import stripe_stub as stub
from tests.plugins.stripe_stub import StripeStub


@pytest.fixture
def stripe_api(monkeypatch):
    server, address = stub.start()
    monkeypatch.setenv("STRIPE_API_KEY", stub.SECRET_KEY)
    yield address
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
    instance = SqlStorage(s.db_url).instance_id()
    assert [r["key"] for r in StripeStub.requests] == [
        f"{instance}/INV-00001/attempt-1", f"{instance}/INV-00002/attempt-1"]  # fmt: skip
    assert [r["form"]["metadata[abonnement_key]"] for r in StripeStub.requests] == [
        f"{instance}/INV-00001/attempt-1", f"{instance}/INV-00002/attempt-1"]  # fmt: skip


# -- currency units: Stripe's own table, for every amount that crosses ---------------------


@pytest.mark.parametrize(("amount", "currency", "sent"), [
    ("12.34", "USD", "1234"),
    ("500", "JPY", "500"),  # zero-decimal: whole yen
    ("1000", "KRW", "1000"),
    ("500", "ISK", "50000"),  # whole krónur, sent with two decimals 00
    ("1234.00", "HUF", "123400"),  # charged with two decimals (only payouts are whole)
    ("1234.56", "HUF", "123456"),
    ("300.25", "TWD", "30025"),
    ("5000", "UGX", "500000"),  # whole shillings, sent with two decimals 00
    ("1.230", "KWD", "1230"),  # thousandths, last digit 0
    ("12.340", "BHD", "12340"),
])  # fmt: skip
def test_a_charge_sends_the_amount_in_stripes_units(stripe_api, amount, currency, sent):
    stripe = StripeProcessor({"api_base": stripe_api})
    result = stripe.charge(amount=Money(Decimal(amount), currency), token="pm_visa",
                           idempotency_key=f"{currency}/1", on=DAY)  # fmt: skip
    assert result.status == "succeeded"
    (request,) = StripeStub.requests
    assert (request["form"]["amount"], request["form"]["currency"]) == (sent, currency.lower())


@pytest.mark.parametrize(("amount", "currency", "sent"), [
    ("12.34", "USD", "1234"), ("500", "JPY", "500"), ("500", "ISK", "50000"),
    ("1.230", "KWD", "1230"), ("7000", "UGX", "700000"),
])  # fmt: skip
def test_a_refund_sends_the_amount_in_stripes_units(stripe_api, amount, currency, sent):
    stripe = StripeProcessor({"api_base": stripe_api})
    stripe.refund(charge_key="INV-1/attempt-1", reference="pi_1",
                  amount=Money(Decimal(amount), currency), idempotency_key="INV-1/refund-1",
                  on=DAY)  # fmt: skip
    (request,) = StripeStub.requests
    assert request["path"] == "/v1/refunds"
    assert (request["form"]["amount"], request["form"]["payment_intent"]) == (sent, "pi_1")


@pytest.mark.parametrize(("amount", "currency"), [
    ("1.235", "KWD"), ("500.50", "ISK"), ("12.345", "USD"), ("0.5", "JPY"),
])  # fmt: skip
def test_an_amount_stripe_cannot_take_fails_the_charge_without_calling_it(stripe_api, amount,
                                                                          currency):  # fmt: skip
    stripe = StripeProcessor({"api_base": stripe_api})
    money = Money(Decimal(amount), currency)
    result = stripe.charge(amount=money, token="pm_visa", idempotency_key="k/1", on=DAY)
    assert (result.status, result.failure_code, result.retryable) == (
        "failed", "amount_not_representable", False)  # fmt: skip
    refund = stripe.refund(charge_key="k/0", reference="pi_1", amount=money,
                           idempotency_key="k/r", on=DAY)  # fmt: skip
    assert (refund.status, refund.failure_code) == ("failed", "amount_not_representable")
    assert StripeStub.requests == []


@pytest.mark.parametrize(("amount", "currency", "units"), [
    ("12.34", "USD", 1234), ("500", "JPY", 500), ("500", "ISK", 50000), ("1234.00", "HUF", 123400),
    ("5000", "UGX", 500000), ("1.230", "KWD", 1230), ("0.010", "OMR", 10), ("2.500", "TND", 2500),
    ("9.990", "JOD", 9990),
])  # fmt: skip
def test_minor_units_go_there_and_back(amount, currency, units):
    from abonnement.plugins.processors.stripe import from_minor_units, to_minor_units

    money = Money(Decimal(amount), currency)
    assert to_minor_units(money) == units
    assert from_minor_units(units, currency.lower()) == money


def test_minor_units_refuse_what_stripe_cannot_take_with_the_step_it_takes():
    from abonnement.errors import MoneyError
    from abonnement.plugins.processors.stripe import to_minor_units

    with pytest.raises(MoneyError, match=r"1.235 KWD .* in steps of 0.010"):
        to_minor_units(Money(Decimal("1.235"), "KWD"))
    with pytest.raises(MoneyError, match=r"500.50 ISK .* in steps of 1"):
        to_minor_units(Money(Decimal("500.50"), "ISK"))


def _stripe_config(spec_config, monkeypatch, old: str, new: str):
    from tests.conftest import run

    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_secret")
    path = spec_config / "abonnement.yaml"
    text = path.read_text()
    text = text.replace(
        "currencies: [USD, EUR, DKK, JPY]", "currencies: [USD, EUR, DKK, JPY, ISK, KWD]"
    )
    text = text.replace("    processor: test ", "    processor: stripe ")
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return run("--config", str(spec_config), "validate"), path, text.replace(old, new, 1)


@pytest.mark.parametrize(("old", "new", "marker"), [
    ('price: "89.00 USD"', 'price: "1.235 KWD"', "1.235 KWD"),
    ('prices: {USD: "12.50 USD", EUR: "11.50 EUR"}',
     'prices: {USD: "12.50 USD", EUR: "11.50 EUR", KWD: "3.001 KWD"}', "3.001 KWD"),
    ('minimum_charge: {USD: "0.50 USD", EUR: "1.00 EUR"}',
     'minimum_charge: {USD: "0.50 USD", EUR: "1.00 EUR", KWD: "1.005 KWD"}', "1.005 KWD"),
])  # fmt: skip
def test_validate_refuses_a_price_the_processor_cannot_charge(spec_config, monkeypatch, old,
                                                              new, marker):  # fmt: skip
    result, path, text = _stripe_config(spec_config, monkeypatch, old, new)
    assert result.exit_code == 1, result.output
    line = text.count("\n", 0, text.index(marker)) + 1
    errors = [e for e in result.stderr.splitlines() if "cannot be sent to Stripe" in e]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"{path}:{line}:")
    assert "write a price the `stripe` processor can charge" in errors[0]


@pytest.mark.parametrize(("old", "new"), [
    # unit prices may have six decimals: the line is rounded to the currency before Stripe
    # sees it (whole krónur, cents)
    ('prices: {USD: "12.50 USD", EUR: "11.50 EUR"}',
     'prices: {USD: "12.50 USD", EUR: "11.50 EUR", ISK: "500.50 ISK"}'),
    ('unit_price: "99.00 USD"', 'unit_price: "99.005 USD"'),
    ('price: "89.00 USD"', 'price: "0.0125 USD"'),
])  # fmt: skip
def test_validate_takes_unit_prices_finer_than_the_currency(spec_config, monkeypatch, old, new):
    result, _, _ = _stripe_config(spec_config, monkeypatch, old, new)
    assert result.exit_code == 0, result.output


def test_validate_accepts_prices_stripe_can_charge(spec_config, monkeypatch):
    result, _, _ = _stripe_config(
        spec_config, monkeypatch, 'prices: {USD: "12.50 USD", EUR: "11.50 EUR"}',
        'prices: {USD: "12.50 USD", EUR: "11.50 EUR", ISK: "500.00 ISK", KWD: "1.230 KWD"}',
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr


def test_validate_refuses_a_fee_amount_the_processor_cannot_charge(spec_config, monkeypatch):
    rules = next(spec_config.glob("rules/*.rules"))
    source = rules.read_text()
    rules.write_text(source + "\nfee kwd_fee {\n  amount 0.125 KWD\n  applies_to invoice\n}\n")
    result, _, _ = _stripe_config(spec_config, monkeypatch, 'price: "89.00 USD"',
                                  'price: "89.00 USD"')  # fmt: skip
    assert result.exit_code == 1
    line = source.count("\n") + 3
    assert f"{rules}:{line}:10: error: 0.125 KWD cannot be sent to Stripe" in result.stderr


def test_a_discounted_total_stripe_cannot_take_fails_the_attempt_cleanly(stripe_api, tmp_path):
    """1.230 KWD at 50% is 0.615 KWD: Stripe takes KWD in steps of 0.010, so the charge fails
    with a code on the attempt — not 0.610 or 0.620, not a traceback."""
    from tests.acceptance.scenario import Scenario

    sub = (
        "  - id: bob-kwd\n    contact: bob\n    start: 2026-12-01\n    currency: KWD\n"
        '    items: [{name: Tea, unit_price: "1.230 KWD", frequency: monthly}]\n'
        "    collection: {mode: automatic, method: saved, payment_method: bob-visa}\n"
    )
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}",
                 rules="discount half {\n  amount 50%\n}\n",
                 replace={"currencies: [USD, EUR, DKK, JPY]": "currencies: [USD, EUR, DKK, JPY, KWD]",
                          "      - {id: bob-visa, type: card, token: tok_visa}\n":
                          "      - {id: bob-visa, type: card, token: pm_visa}\n"},
                 subscriptions=sub)  # fmt: skip
    config = s.config / "abonnement.yaml"
    text = config.read_text()
    start = text.index("    processor: test\n")
    end = text.index("\n", text.index("    test: {ledger", start)) + 1
    config.write_text(text[:start] + f"    processor: stripe\n    stripe: {{api_base: '{stripe_api}'}}\n"
                      + text[end:])  # fmt: skip
    s.cli("run", "--until", "2026-12-01")
    (invoice,) = s.invoices()
    assert (invoice["total"], invoice["status"]) == ("0.615", "open")
    (attempt,) = s.payments("bob-kwd")
    assert (attempt["status"], attempt["failure_code"]) == ("failed", "amount_not_representable")
    assert StripeStub.requests == []


# -- outages: the run goes on, the attempt waits for the next run ---------------------------


def _stripe_scenario(tmp_path, api_base: str, subscriptions: str):
    """A scenario charging through Stripe at ``api_base``; returns it and a function that
    points it at another address."""
    from tests.acceptance.scenario import Scenario

    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}",
                 replace={"      - {id: bob-visa, type: card, token: tok_visa}\n":
                          "      - {id: bob-visa, type: card, token: pm_visa}\n"},
                 subscriptions=subscriptions)  # fmt: skip
    config = s.config / "abonnement.yaml"
    text = config.read_text()
    start = text.index("    processor: test\n")
    end = text.index("\n", text.index("    test: {ledger", start)) + 1
    config.write_text(text[:start] + "    processor: stripe\n    stripe: {api_base: 'BASE'}\n"
                      + text[end:])  # fmt: skip
    template = config.read_text()

    def point_at(base: str) -> None:
        config.write_text(template.replace("BASE", base))

    point_at(api_base)
    return s, point_at


def _closed_port() -> str:
    import socket

    with socket.socket() as sock:  # bound, then closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


BOB_AND_ANE = """\
  - id: bob-coffee
    contact: bob
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 1}]
    collection: {mode: automatic, method: saved, payment_method: bob-visa}
  - id: ane-coffee
    contact: ane
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 2}]
    collection: {mode: manual, payment_terms: net_30}
"""


@pytest.mark.parametrize("outage", ["refused", "503"])
def test_a_processor_outage_leaves_the_charge_pending_and_the_next_run_charges_once(
    stripe_api, tmp_path, outage
):
    from tests.conftest import run

    s, point_at = _stripe_scenario(tmp_path, _closed_port() if outage == "refused"
                                   else stripe_api, BOB_AND_ANE)  # fmt: skip
    StripeStub.down = outage == "503"
    # Before: the first run left the payment pending without a word, the next one died
    # with an APIConnectionError traceback in reconciliation, before billing anyone.
    for until in ("2026-12-01", "2026-12-02"):  # the second run reconciles during the outage
        result = run("--config", str(s.config), "--db", s.db_url, "-q", "run", "--until",
                     until, "--json")  # fmt: skip
        assert (result.exit_code, result.stderr) == (0, ""), result.stderr  # -q: no audit log
        summary = json.loads(result.stdout)
        assert summary["payments"] == {"awaiting": 1}
        assert summary["processor_error"].startswith("the `stripe` processor did not answer")
    assert [(i["subscription_id"], i["status"]) for i in s.invoices()] == [
        ("ane-coffee", "open"), ("bob-coffee", "open")]  # fmt: skip
    (attempt,) = s.payments("bob-coffee")
    assert attempt["status"] == "pending"
    text = run("--config", str(s.config), "--db", s.db_url, "run", "--until", "2026-12-03")
    assert text.exit_code == 0 and "Traceback" not in text.output + text.stderr
    assert text.stdout.splitlines()[1] == (
        "1 charge awaits the processor's answer (" + summary["processor_error"] + "); left "
        "pending, asked again on the next run")  # fmt: skip
    assert not [r for r in StripeStub.requests if "down" not in r]  # nothing reached Stripe

    StripeStub.down = False
    point_at(stripe_api)
    after = s.cli("run", "--until", "2026-12-03")
    # the first attempt never reached Stripe: its request, kept before it was sent, is sent
    # again with the same key — one PaymentIntent, the attempt's own
    assert after["payments"] == {"succeeded": 1}
    assert [(p["attempt"], p["status"], p["failure_code"]) for p in s.payments("bob-coffee")] == [
        (1, "succeeded", None)]  # fmt: skip
    assert [i["status"] for i in s.invoices("bob-coffee")] == ["paid"]
    charges = [r for r in StripeStub.requests if r.get("form") and not r.get("down")]
    assert [(r["path"], r["form"]["amount"]) for r in charges] == [("/v1/payment_intents", "2500")]
    assert [i["amount"] for i in stub.charges()] == [2500]
    # every try sent the one key, the one request
    sent = {(r["key"], json.dumps(r["form"], sort_keys=True)) for r in StripeStub.requests
            if r["path"] == "/v1/payment_intents"}  # fmt: skip
    assert len(sent) == 1


def test_payment_methods_stripe_refuses_fail_alone_and_everyone_else_is_charged(
    stripe_api, tmp_path
):
    # A 400 about one request (a deleted payment method) used to count as Stripe being down:
    # after three of them in a row the run stopped charging anyone, every run, exit code 0.
    gone = "".join(
        f"""\
  - id: gone-{n}
    contact: bob
    start: 2026-12-01
    items: [{{product: coffee-1kg, quantity: 1}}]
    collection: {{mode: automatic, method: saved, payment_method: bob-gone}}
"""
        for n in range(1, 4)
    )
    s, _ = _stripe_scenario(tmp_path, stripe_api, gone + BOB_AND_ANE.split("  - id: ane")[0])
    config = s.config / "abonnement.yaml"
    config.write_text(config.read_text().replace(
        "      - {id: bob-visa, type: card, token: pm_visa}\n",
        "      - {id: bob-visa, type: card, token: pm_visa}\n"
        "      - {id: bob-gone, type: card, token: pm_gone}\n"))  # fmt: skip
    summary = s.cli("run", "--until", "2026-12-01")
    assert summary["payments"] == {"failed": 3, "succeeded": 1}
    assert [p["status"] for p in s.payments("bob-coffee")] == ["succeeded"]
    for n in range(1, 4):
        (payment,) = s.payments(f"gone-{n}")
        assert (payment["status"], payment["failure_code"]) == ("failed", "resource_missing")


@pytest.mark.parametrize("fault", ["500", "garbage", "drop"])
def test_a_bad_answer_leaves_the_charge_pending_and_the_next_run_reconciles_it_once(
    stripe_api, tmp_path, fault
):
    """Both tries of the run get a 500 (nothing made), an unreadable body or a lost
    connection (the PaymentIntent made, its answer lost): the attempt stays pending, no
    traceback. The next run replays the kept request with the same key: one charge."""
    s, _ = _stripe_scenario(tmp_path, stripe_api, BOB_AND_ANE)
    StripeStub.faults = [fault, fault]
    first = s.cli("run", "--until", "2026-12-01")
    assert first["payments"] == {"awaiting": 1}
    assert first["processor_error"] == "the `stripe` processor did not answer: no answer in time"
    assert [p["status"] for p in s.payments("bob-coffee")] == ["pending"]
    assert len(StripeStub.intents) == (0 if fault == "500" else 1)
    s.cli("run", "--until", "2026-12-02")
    assert [(p["attempt"], p["status"]) for p in s.payments("bob-coffee")] == [(1, "succeeded")]
    assert [i["status"] for i in s.invoices("bob-coffee")] == ["paid"]
    assert [(i["id"], i["amount"]) for i in stub.charges()] == [("pi_1", 2500)]
    keys = {r["key"] for r in StripeStub.requests if r["path"] == "/v1/payment_intents"}
    assert len(keys) == 1
    assert not [r for r in StripeStub.requests if "search" in r["path"]]


def test_a_refused_secret_key_stops_nothing_else_and_says_so(stripe_api, tmp_path, monkeypatch):
    s, _ = _stripe_scenario(tmp_path, stripe_api, BOB_AND_ANE)
    monkeypatch.setenv("STRIPE_API_KEY", "sk_live_revoked")
    summary = s.cli("run", "--until", "2026-12-01")
    assert summary["payments"] == {"awaiting": 1}
    assert summary["processor_error"].startswith(
        "the `stripe` processor did not answer: Stripe refused the secret key in STRIPE_API_KEY"
    )
    assert StripeStub.intents == {}
    monkeypatch.setenv("STRIPE_API_KEY", stub.SECRET_KEY)  # fixed: the next run charges once
    s.cli("run", "--until", "2026-12-02")
    assert [p["status"] for p in s.payments("bob-coffee")] == ["succeeded"]
    assert len(stub.charges()) == 1
