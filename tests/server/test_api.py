"""The HTTP API (``/api/v1``): API keys, the CLI's JSON shapes for every resource, errors in
one shape, idempotent writes."""

import pytest

from tests.acceptance.test_collection_scenarios import BOB_CARD, BOB_SAVED
from tests.conftest import run
from tests.server.shop import Shop

SEGMENT = """\
segment on_coffee {
  of subscriptions
  where subscription.currency == "USD"
}
"""


def _key(s: Shop, name: str = "ci") -> dict:
    s.client.headers["Authorization"] = "Bearer " + s.cli("api-keys", "create", name)["key"]
    return s.client.headers


@pytest.fixture
def api(tmp_path, monkeypatch):
    """Bob's monthly coffee billed on 2026-12-01, and an API key."""
    s = Shop(tmp_path, f"sqlite:///{tmp_path / 'abonnement.db'}", monkeypatch,
             subscriptions=BOB_SAVED, rules=SEGMENT)  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")
    _key(s)
    yield s
    s.close()


def test_no_key_a_wrong_key_or_a_revoked_key_is_401(any_shop):
    s = any_shop
    assert s.client.get("/api/v1/subscriptions").status_code == 401
    s.client.headers["Authorization"] = "Bearer abk_not-a-key"
    wrong = s.client.get("/api/v1/subscriptions")
    assert wrong.status_code == 401
    assert wrong.json() == {"error": {"code": "unauthorized", "field": None,
                                      "message": "this API key is unknown or revoked"}}  # fmt: skip
    _key(s, "shop-backend")
    assert s.client.get("/api/v1/subscriptions").status_code == 200
    keys = s.cli("api-keys", "list")
    assert [(k["name"], k["prefix"][:4], k["revoked_on"]) for k in keys] == [
        ("shop-backend", "abk_", None)]  # fmt: skip
    assert s.client.headers["Authorization"].split()[1] not in str(keys)  # shown once, only
    s.cli("api-keys", "revoke", "shop-backend", "--as-of", "2026-12-02")
    assert s.client.get("/api/v1/subscriptions").status_code == 401
    again = run("--config", str(s.config), "--db", s.db_url, "api-keys", "revoke", "shop-backend")
    assert (again.exit_code, again.stderr.strip()) == (3, "error: no API key `shop-backend`")


def test_the_openapi_document_lists_every_resource(shop):
    doc = shop.client.get("/api/v1/openapi.json").json()
    assert {"/subscriptions", "/subscriptions/{subscription_id}/cancel", "/invoices/{number}/pdf",
            "/payments/{payment_id}/refund", "/quotes", "/checkouts", "/reports/{metric}",
            "/segments/{name}", "/plan"} <= set(doc["paths"])  # fmt: skip
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_subscriptions_answer_the_cli_s_json(api):
    get = api.client.get
    assert get("/api/v1/subscriptions").json() == api.cli("subscriptions", "list")
    assert get("/api/v1/subscriptions/bob-coffee").json() == api.subscription("bob-coffee")
    made = api.client.post("/api/v1/subscriptions", json={
        "id": "ane-250", "contact_id": "ane", "items": [{"product": "coffee-250g", "quantity": 2}],
        "as_of": "2026-12-01"})  # fmt: skip
    assert made.status_code == 201
    assert made.json() == {k: v for k, v in api.subscription("ane-250").items()
                           if k not in ("invoices", "payments", "history")}  # fmt: skip
    api.cli("run", "--until", "2026-12-01")  # its first payment: it is live
    edited = api.client.patch("/api/v1/subscriptions/ane-250",
                              json={"quantity": {"1": 3}, "as_of": "2026-12-02"}).json()  # fmt: skip
    assert (edited["items"][0]["quantity"], edited["mrr"]) == (3, "37.50")
    paused = api.client.post("/api/v1/subscriptions/ane-250/pause", json={"as_of": "2026-12-03"})
    assert paused.json()["status"] == "paused"
    resumed = api.client.post("/api/v1/subscriptions/ane-250/resume", json={"as_of": "2026-12-04"})
    assert resumed.json()["status"] == "active"
    canceled = api.client.post("/api/v1/subscriptions/ane-250/cancel",
                               json={"as_of": "2026-12-05"}).json()  # fmt: skip
    assert canceled["status"] == "canceled"
    assert get("/api/v1/subscriptions?status=canceled").json() == [canceled]


def test_invoices_and_payments_answer_the_cli_s_json(api):
    get = api.client.get
    assert get("/api/v1/invoices").json() == api.invoices()
    assert get("/api/v1/invoices/INV-00001").json() == api.cli("invoices", "show", "INV-00001")
    assert get("/api/v1/payments").json() == api.payments()
    (payment,) = api.payments()
    refund = api.client.post(f"/api/v1/payments/{payment['id']}/refund",
                             json={"amount": "5.00", "as_of": "2026-12-02"})  # fmt: skip
    assert refund.json() == {"invoice": "INV-00001", "attempt": 2, "credit_note": "CN-0001",
                             "amount": "5.00", "currency": "USD"}  # fmt: skip
    assert [p["status"] for p in get("/api/v1/payments?invoice=INV-00001").json()] == [
        "succeeded", "refunded"]  # fmt: skip


def test_an_invoice_is_paid_and_a_failed_payment_retried_through_the_api(tmp_path, monkeypatch):
    s = Shop(tmp_path, f"sqlite:///{tmp_path / 'abonnement.db'}", monkeypatch,
             subscriptions=BOB_SAVED,
             replace={BOB_CARD: BOB_CARD.replace("tok_visa", "tok_insufficient_funds")})  # fmt: skip
    try:
        s.cli("apply", "--as-of", "2026-12-01")
        s.cli("run", "--until", "2026-12-01")
        _key(s)
        (failed,) = s.payments()
        retried = s.client.post(f"/api/v1/payments/{failed['id']}/retry",
                                json={"as_of": "2026-12-01"})  # fmt: skip
        assert retried.json() == {"invoice": "INV-00001", "attempt": 2, "status": "failed",
                                  "failure_code": "insufficient_funds"}  # fmt: skip
        paid = s.client.post("/api/v1/invoices/INV-00001/pay",
                             json={"card": "tok_visa", "as_of": "2026-12-02"})  # fmt: skip
        assert paid.json() == {
            "number": "INV-00001",
            "status": "paid",
            "amount_paid": "25.00",
        }  # as the CLI
        assert s.cli("invoices", "show", "INV-00001")["status"] == "paid"
    finally:
        s.close()


def test_the_invoice_pdf(api):
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError) as exc:
        pytest.skip(f"PDF rendering needs WeasyPrint and Pango: {exc}")
    pdf = api.client.get("/api/v1/invoices/INV-00001/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert pdf.headers["content-type"] == "application/pdf"


def test_quotes_checkouts_reports_segments_and_plan_answer_the_cli_s_json(api):
    post, get = api.client.post, api.client.get
    quote = post("/api/v1/quotes", json={"contact_id": "ane", "items": [{"product": "coffee-1kg"}],
                                         "as_of": "2026-12-01"})  # fmt: skip
    assert quote.json() == api.cli("quote", "--contact", "ane", "--item", "coffee-1kg",
                                   "--as-of", "2026-12-01")  # fmt: skip
    bought = post("/api/v1/checkouts", json={"link_id": "coffee-monthly", "contact_id": "ane",
                                             "card": "tok_visa", "as_of": "2026-12-01"})  # fmt: skip
    assert bought.status_code == 201
    assert bought.json() == {"invoice": "INV-00002", "subscriptions": [
        "coffee-monthly-ane-20261201-1"], "payment": "succeeded", "total": "25.00",
        "currency": "USD"}  # fmt: skip
    for path, args in (("/reports/mrr?as_of=2026-12-15", ("report", "mrr", "--as-of", "2026-12-15")),
                       ("/reports/active?as_of=2026-12-15&from=2026-11-01",
                        ("report", "active", "--as-of", "2026-12-15", "--from", "2026-11-01")),
                       ("/segments/on_coffee?as_of=2026-12-15",
                        ("segments", "show", "on_coffee", "--as-of", "2026-12-15")),
                       ("/plan?as_of=2026-12-15&months=2", ("plan", "--as-of", "2026-12-15",
                                                           "--months", "2"))):  # fmt: skip
        assert get("/api/v1" + path).json() == api.cli(*args), path
    assert get("/api/v1/reports/mrr?as_of=2026-12-15").json()["value"] == "50.00"


def test_errors_have_one_shape_with_the_http_status_of_the_error(api):
    missing = api.client.get("/api/v1/subscriptions/nobody")
    assert missing.status_code == 404
    assert missing.json()["error"] == {"code": "not_found", "message": "no subscription `nobody`",
                                       "field": None, "kind": "subscription", "id": "nobody"}  # fmt: skip
    invalid = api.client.post("/api/v1/quotes", json={"contact_id": "ane", "items": []})
    assert invalid.status_code == 422
    error = invalid.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_input", "items")
    state = api.client.post("/api/v1/subscriptions/bob-coffee/resume", json={"as_of": "2026-12-02"})
    assert state.status_code == 409 and state.json()["error"]["code"] == "invalid_state"
    money = api.client.post("/api/v1/invoices/INV-00001/pay", json={"amount": 10.5})
    assert money.status_code == 422 and money.json()["error"]["field"] == "amount"
    assert api.client.get("/api/v1/nothing-here").json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "/api/v1/checkouts", {"link_id": "coffee-monthly", "contact_id": "bob",
                                       "card": "tok_visa", "as_of": "0001-01-01"}, "as_of"),
        ("post", "/api/v1/checkouts", {"link_id": "coffee-monthly", "contact_id": "bob",
                                       "card": "tok_visa", "as_of": "9999-12-31"}, "as_of"),
        ("get", "/api/v1/plan?as_of=9999-12-31", None, "as_of"),
        ("get", "/api/v1/reports/mrr?from=0001-01-01&to=2027-01-01", None, "from"),
        ("get", "/api/v1/segments/loyal?as_of=2100-01-01", None, "as_of"),
    ],
)  # fmt: skip
def test_dates_beyond_the_bounds_are_refused_as_the_cli_refuses_them(api, method, path, body,
                                                                     field):  # fmt: skip
    # one request dated in the year 1 once made a run bill (and charge) 4,800 months
    before = api.charges()
    answer = getattr(api.client, method)(path, **({"json": body} if body else {}))
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_input", field)
    assert "is outside 1900-01-01 to 2099-12-31" in error["message"]
    assert api.charges() == before


def test_an_idempotency_key_replays_the_first_answer_and_refuses_another_body(any_shop):
    s = any_shop
    _key(s)
    body = {"link_id": "coffee-monthly", "contact_id": "bob", "card": "tok_visa",
            "as_of": "2026-12-01"}  # fmt: skip
    headers = {"Idempotency-Key": "order-1001"}
    first = s.client.post("/api/v1/checkouts", json=body, headers=headers)
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    again = s.client.post("/api/v1/checkouts", json=body, headers=headers)
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    assert len(s.charges()) == 1
    other = s.client.post("/api/v1/checkouts", json={**body, "contact_id": "ane"}, headers=headers)
    assert other.status_code == 409
    assert other.json()["error"] == {"code": "invalid_state", "field": None,
                                     "message": "Idempotency-Key 'order-1001' was used for another request"}  # fmt: skip
    # a refusal is an answer too: the same request gets it again, without a second try
    declined = {**body, "contact_id": "ane", "card": "tok_lost_card"}
    refused = s.client.post("/api/v1/checkouts", json=declined, headers={"Idempotency-Key": "o-2"})
    assert refused.status_code == 402 and refused.json()["error"]["code"] == "payment_declined"
    again = s.client.post("/api/v1/checkouts", json=declined, headers={"Idempotency-Key": "o-2"})
    assert (again.status_code, again.json()) == (402, refused.json())


def test_the_built_in_storage_keeps_what_the_server_needs(tmp_path):
    from abonnement.engine import ports
    from abonnement.plugins.storage.sql import SqlStorage

    store = SqlStorage(f"sqlite:///{tmp_path / 'a.db'}")
    assert isinstance(store, ports.Storage) and isinstance(store, ports.ServerStore)
    store.close()
