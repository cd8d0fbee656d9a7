"""A local stub of the Stripe API on loopback: the request and response shapes the ``stripe``
processor uses, with Stripe's idempotency (the first result of a key is replayed for the same
parameters; other parameters are an ``idempotency_error``), and faults to inject.

Endpoints: ``POST /v1/customers``, ``POST /v1/payment_methods/PM/attach``,
``POST /v1/setup_intents``, ``GET /v1/setup_intents/ID``,
``POST /v1/payment_intents``, ``GET /v1/payment_intents/ID``, ``GET /v1/payment_intents/search``
(with delayed visibility: a new PaymentIntent shows there only after ``search_lag`` searches,
as Stripe's search index lags), ``POST /v1/refunds``. Payment methods: ``pm_insufficient`` and
``pm_lost`` decline, ``pm_ach`` is a bank debit left ``processing``, ``pm_gone`` does not
exist, ``pm_3ds`` needs the buyer (``requires_action``), ``pm_attach_declined`` is declined
when attached; any other ``pm_…`` succeeds.

3-D Secure, as Stripe answers it: a SetupIntent confirmed for ``pm_3ds`` waits for the buyer
(``status: requires_action``, ``next_action.type: use_stripe_sdk``, a ``client_secret``) until
``authenticate`` plays the buyer passing (or failing) the bank's check, as Stripe.js's
``handleNextAction`` would; the card's off-session PaymentIntents then succeed. A method in
``reauthenticate`` is one whose bank asks again: its off-session PaymentIntent is a 402
``card_error`` with ``code: authentication_required`` (the PaymentIntent back to
``requires_payment_method``, ``last_payment_error.code: authentication_required``) and its
next SetupIntent waits for the buyer again.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

SECRET_KEY = "sk_test_secret"
DECLINES = {"pm_insufficient": "insufficient_funds", "pm_lost": "lost_card"}


class StripeStub(BaseHTTPRequestHandler):
    """One Stripe account. Class state, reset by ``reset``."""

    intents: ClassVar[dict[str, dict]] = {}
    setups: ClassVar[dict[str, dict]] = {}  # SetupIntents by id
    authenticated: ClassVar[set[str]] = set()  # methods whose buyer passed 3-D Secure
    reauthenticate: ClassVar[set[str]] = set()  # methods whose bank asks the buyer again
    customers: ClassVar[dict[str, dict]] = {}
    methods: ClassVar[dict[str, str]] = {}  # payment method → the customer it is attached to
    responses: ClassVar[dict[str, tuple[dict, int, dict]]] = {}  # key → (params, status, body)
    requests: ClassVar[list[dict]] = []
    faults: ClassVar[list[str]] = []  # the next requests' faults, in order (see ``_fault``)
    down: ClassVar[bool] = False  # every request 503, as Stripe in an incident
    search_lag: ClassVar[int] = 0  # searches before a new PaymentIntent is found by one
    lock = threading.Lock()

    @classmethod
    def reset(cls) -> None:
        cls.intents, cls.customers, cls.methods, cls.responses = {}, {}, {}, {}
        cls.requests, cls.faults, cls.down, cls.search_lag = [], [], False, 0
        cls.setups, cls.authenticated, cls.reauthenticate = {}, set(), set()

    @classmethod
    def authenticate(cls, setup_id: str, *, passed: bool = True) -> None:
        """The buyer completes the bank's check of SetupIntent ``setup_id`` (what Stripe.js's
        ``handleNextAction`` does in the browser): it succeeds, or fails as Stripe records a
        failed authentication."""
        setup = cls.setups[setup_id]
        setup["next_action"] = None
        if passed:
            setup["status"] = "succeeded"
            cls.authenticated.add(setup["payment_method"])
            cls.reauthenticate.discard(setup["payment_method"])
        else:
            setup["status"] = "requires_payment_method"
            setup["last_setup_error"] = {
                "type": "invalid_request_error", "code": "setup_intent_authentication_failure",
                "message": "We are unable to authenticate your payment method."}  # fmt: skip

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, payload: dict | bytes) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, kind: str, message: str, **more: Any) -> tuple[int, dict]:
        return status, {"error": {"type": kind, "message": message, **more}}

    def _note(self, form: dict | None) -> dict:
        entry = {"method": self.command, "path": urlparse(self.path).path, "form": form,
                 "key": self.headers.get("Idempotency-Key"),
                 "version": self.headers.get("Stripe-Version"),
                 "auth": self.headers.get("Authorization")}  # fmt: skip
        self.requests.append(entry)
        return entry

    def _refused(self) -> bool:
        """Answered already: Stripe down (503) or a wrong secret key (401)."""
        if self.down:
            self.requests[-1]["down"] = True
            self._send(*self._error(503, "api_error", "try again later"))
            return True
        if self.headers.get("Authorization") != f"Bearer {SECRET_KEY}":
            self._send(*self._error(401, "invalid_request_error", "Invalid API Key provided"))
            return True
        return False

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        form = {k: v[0] for k, v in parse_qs(raw).items()}
        entry = self._note(form)
        if self._refused():
            return
        fault = self.faults.pop(0) if self.faults else None
        if fault == "500":  # failed before the endpoint ran: nothing made, nothing kept
            self._send(*self._error(500, "api_error", "An unknown error occurred"))
            return
        key = entry["key"]
        with self.lock:
            if key and key in self.responses:
                params, status, body = self.responses[key]
                if params != form:  # the same parameters, in any order
                    status, body = self._error(400, "idempotency_error",
                                               "Keys for idempotent requests can only be used "
                                               "with the same parameters")  # fmt: skip
            else:
                status, body = self._handle(entry["path"], form)
                if key:
                    self.responses[key] = (form, status, body)
        if fault == "garbage":  # made and kept, but the answer arrives mangled
            self._send(200, b"<html>502 Bad Gateway</html>")
        elif fault == "drop":  # made and kept, then the connection is lost
            self.close_connection = True
            self.wfile.flush()
            self.connection.close()
        else:
            self._send(status, body)

    def _handle(self, path: str, form: dict) -> tuple[int, dict]:
        if path == "/v1/customers":
            customer = {"id": f"cus_{len(self.customers) + 1}", "object": "customer",
                        "email": form.get("email"), "name": form.get("name"),
                        "metadata": {"abonnement_contact": form.get("metadata[abonnement_contact]")}}  # fmt: skip
            self.customers[customer["id"]] = customer
            return 200, customer
        if path.startswith("/v1/payment_methods/") and path.endswith("/attach"):
            method = path.split("/")[3]
            if method == "pm_attach_declined":
                return self._error(402, "card_error", "Your card was declined.",
                                   code="card_declined", decline_code="do_not_honor")  # fmt: skip
            if method == "pm_gone":
                return self._error(400, "invalid_request_error", f"No such PaymentMethod: '{method}'",
                                   code="resource_missing", param="payment_method")  # fmt: skip
            owner = self.methods.get(method)
            if owner and owner != form["customer"]:
                return self._error(400, "invalid_request_error", "already attached",
                                   code="payment_method_unexpected_state")  # fmt: skip
            self.methods[method] = form["customer"]
            kind = "us_bank_account" if method == "pm_ach" else "card"
            return 200, {"id": method, "object": "payment_method", "customer": form["customer"],
                         "type": kind}  # fmt: skip
        if path == "/v1/setup_intents":
            return self._setup(form)
        if path == "/v1/refunds":
            return 200, {"id": f"re_{len(self.responses) + 1}", "object": "refund",
                         "amount": int(form["amount"]), "payment_intent": form["payment_intent"],
                         "status": "succeeded"}  # fmt: skip
        return self._intent(form)

    def _setup(self, form: dict) -> tuple[int, dict]:
        method = form["payment_method"]
        if method == "pm_gone":
            return self._error(400, "invalid_request_error", "No such PaymentMethod: 'pm_gone'",
                               code="resource_missing", param="payment_method")  # fmt: skip
        setup_id = f"seti_{len(self.setups) + 1}"
        setup = {"id": setup_id, "object": "setup_intent", "customer": form.get("customer"),
                 "payment_method": method, "usage": form.get("usage"), "status": "succeeded",
                 "client_secret": f"{setup_id}_secret_{len(self.requests)}",
                 "next_action": None, "last_setup_error": None,
                 "payment_method_types": [form.get("payment_method_types[0]")]}  # fmt: skip
        self.setups[setup_id] = setup
        if DECLINES.get(method) == "lost_card":  # a setup checks the card, not the funds
            error = {"type": "card_error", "code": "card_declined",
                     "decline_code": "lost_card", "message": "Your card was declined."}  # fmt: skip
            setup.update(status="requires_payment_method", last_setup_error=error)
            return 402, {"error": {**error, "setup_intent": setup}}
        needs_buyer = method.startswith("pm_3ds") and (
            method not in self.authenticated or method in self.reauthenticate
        )
        if needs_buyer and form.get("confirm") == "true":
            setup["status"] = "requires_action"
            setup["next_action"] = {"type": "use_stripe_sdk", "use_stripe_sdk": {
                "type": "three_d_secure_redirect", "stripe_js": "https://hooks.stripe.com/3ds2",
                "source": f"src_{setup_id}"}}  # fmt: skip
        return 200, setup

    def _intent(self, form: dict) -> tuple[int, dict]:
        method = form["payment_method"]
        if method == "pm_gone":  # a payment method deleted on Stripe's side
            return self._error(400, "invalid_request_error", "No such PaymentMethod: 'pm_gone'",
                               code="resource_missing", param="payment_method")  # fmt: skip
        owner = self.methods.get(method)
        if owner is not None and form.get("customer") != owner:
            return self._error(400, "invalid_request_error",
                               "The provided PaymentMethod belongs to a Customer; pass it",
                               code="parameter_missing", param="customer")  # fmt: skip
        intent_id = f"pi_{len(self.intents) + 1}"
        status = {"pm_ach": "processing", "pm_3ds": "requires_action"}.get(method, "succeeded")
        if method in self.authenticated and method not in self.reauthenticate:
            status = "succeeded"  # set up for off-session use: the bank does not ask again
        intent = {"id": intent_id, "object": "payment_intent", "amount": int(form["amount"]),
                  "currency": form["currency"], "status": status, "customer": form.get("customer"),
                  "payment_method": method, "last_payment_error": None,
                  "metadata": {"abonnement_key": form.get("metadata[abonnement_key]")},
                  "searches_until_visible": self.search_lag}  # fmt: skip
        self.intents[intent_id] = intent
        if method in self.reauthenticate and form.get("off_session") == "true":
            # Stripe's answer to an off-session charge the bank wants the buyer for
            error = {"type": "card_error", "code": "authentication_required",
                     "decline_code": "authentication_required",
                     "message": "Your card was declined. This transaction requires "
                                "authentication."}  # fmt: skip
            intent.update(status="requires_payment_method", last_payment_error=error)
            return 402, {"error": {**error, "payment_intent": intent}}
        if method in DECLINES:
            intent["status"] = "requires_payment_method"
            error = {"type": "card_error", "code": "card_declined",
                     "decline_code": DECLINES[method], "message": "Your card was declined."}  # fmt: skip
            intent["last_payment_error"] = error
            return 402, {"error": {**error, "payment_intent": intent}}
        return 200, intent

    def do_GET(self) -> None:
        self._note(None)
        if self._refused():
            return
        path = urlparse(self.path).path
        if path == "/v1/payment_intents/search":  # eventually consistent, as Stripe's
            query = parse_qs(urlparse(self.path).query)["query"][0]
            key = query.split(":", 1)[1].strip("'")
            found = []
            for intent in self.intents.values():
                if intent["searches_until_visible"] > 0:
                    intent["searches_until_visible"] -= 1
                elif intent["metadata"]["abonnement_key"] == key:
                    found.append(intent)
            self._send(200, {"object": "search_result", "data": found, "has_more": False,
                             "url": "/v1/payment_intents/search"})  # fmt: skip
            return
        if path.startswith("/v1/setup_intents/"):
            setup = self.setups.get(path.rsplit("/", 1)[-1])
            if setup is None:
                self._send(*self._error(404, "invalid_request_error", "No such setupintent",
                                        code="resource_missing"))  # fmt: skip
            else:
                self._send(200, setup)
            return
        intent = self.intents.get(path.rsplit("/", 1)[-1])
        if intent is None:
            self._send(*self._error(404, "invalid_request_error", "No such payment_intent",
                                    code="resource_missing"))  # fmt: skip
            return
        self._send(200, intent)


def start() -> tuple[ThreadingHTTPServer, str]:
    """A fresh stub account listening on loopback: (the server, its address)."""
    StripeStub.reset()
    server = ThreadingHTTPServer(("127.0.0.1", 0), StripeStub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def charges() -> list[dict]:
    """The PaymentIntents that moved (or are moving) money."""
    return [i for i in StripeStub.intents.values() if i["status"] in ("succeeded", "processing")]


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """A ``Stripe-Signature`` header for ``body``, as Stripe makes it."""
    import hashlib
    import hmac

    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"
