"""A local stub of the Stripe API on loopback: the request and response shapes the ``stripe``
processor uses, with Stripe's idempotency (the first result of a key is replayed for the same
parameters; other parameters are an ``idempotency_error``), and faults to inject.

Endpoints: ``POST /v1/customers``, ``POST /v1/payment_methods/PM/attach``,
``POST /v1/payment_intents``, ``GET /v1/payment_intents/ID``, ``GET /v1/payment_intents/search``
(with delayed visibility: a new PaymentIntent shows there only after ``search_lag`` searches,
as Stripe's search index lags), ``POST /v1/refunds``. Payment methods: ``pm_insufficient`` and
``pm_lost`` decline, ``pm_ach`` is a bank debit left ``processing``, ``pm_gone`` does not
exist, ``pm_3ds`` needs the buyer (``requires_action``), ``pm_attach_declined`` is declined
when attached; any other ``pm_…`` succeeds.
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
            return 200, {"id": method, "object": "payment_method", "customer": form["customer"],
                         "type": "card"}  # fmt: skip
        if path == "/v1/refunds":
            return 200, {"id": f"re_{len(self.responses) + 1}", "object": "refund",
                         "amount": int(form["amount"]), "payment_intent": form["payment_intent"],
                         "status": "succeeded"}  # fmt: skip
        return self._intent(form)

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
        intent = {"id": intent_id, "object": "payment_intent", "amount": int(form["amount"]),
                  "currency": form["currency"], "status": status, "customer": form.get("customer"),
                  "payment_method": method, "last_payment_error": None,
                  "metadata": {"abonnement_key": form.get("metadata[abonnement_key]")},
                  "searches_until_visible": self.search_lag}  # fmt: skip
        self.intents[intent_id] = intent
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
