"""The ``stripe`` processor: PaymentIntents through the official SDK, safe with real money.

- **API version pinned**: every request carries ``Stripe-Version: API_VERSION`` (the version
  this code is written and tested against), whatever the installed SDK's default.
- **A customer per contact**: a payment method the buyer's page submits (a ``pm_…`` id made
  by Stripe.js: card numbers never reach us) is attached to the contact's Stripe customer,
  made on first use and kept in ``processor_customers``; the token stored and charged is
  ``cus_…:pm_…``. A ``pm_…`` alone (declared in YAML) is charged as it is, with
  ``payments.stripe.customer`` if set.
- **3-D Secure**: a card a buyer's page gives is set up with a SetupIntent (``usage:
  off_session``) while the buyer is there; when the bank wants the buyer, the page completes
  the authentication with Stripe.js (``handleNextAction``) and posts the SetupIntent's id,
  which is read back and checked before anything is charged. A charge made without the buyer
  that the bank still refuses is a failed payment, ``authentication_required``, and the
  update link's page authenticates the card again.
- **Charges**: an off-session PaymentIntent (``confirm``, ``off_session``) sent with the
  attempt's idempotency key, also in its metadata (``abonnement_key``). The request is kept in
  ``processor_requests`` (committed) *before* it is sent.
- **After a crash or an outage** (``lookup``): a PaymentIntent whose id we know is retrieved
  (retrieval by id reads what was written); else, within Stripe's 24 hours, the kept request is
  replayed with the same key: Stripe answers with the first result, and never charges twice.
  Never Search, which Stripe documents as not read-after-write: a charge made a moment ago
  may be missing from it, and charging again then would charge twice. Past the 24 hours with no
  id, the attempt is left ``processing`` with ``manual_review`` (never charged again): a
  ``payment_intent.*`` webhook settles it, or a person does.
- **Errors**: a decline is a failed outcome with its reason (soft or hard); a 5xx, a 429, a
  lost connection or a body we cannot read raise ``ProcessorTimeout``: the attempt stays
  pending and the next ask replays the same key; a refused secret key is a ``PluginError``
  saying so. None of them ever shows a traceback or charges twice.
- **Webhooks** (``POST /hooks/stripe``): verified with the endpoint's signing secret by the SDK
  (``construct_event``, five minutes' tolerance); ``payment_intent.succeeded``,
  ``.processing`` and ``.payment_failed`` settle our charge with the key in their metadata.

The secret key comes from ``STRIPE_API_KEY`` only, never from a file, and is never logged;
the publishable key for the pages from ``STRIPE_PUBLISHABLE_KEY``; the webhook secret from
``ABONNEMENT_WEBHOOK_SECRET`` or ``STRIPE_WEBHOOK_SECRET``. ``payments.stripe.api_base``
points the SDK elsewhere (a local stub in tests).

Amounts cross to Stripe in Stripe's own units, which are not always the ISO 4217 minor unit
(https://docs.stripe.com/currencies): zero-decimal currencies go as whole units; ISK and UGX
go with two decimals that must be ``00``; three-decimal currencies go in thousandths whose last
digit must be 0. ``to_minor_units`` is the one door for every amount sent (charges, refunds),
``from_minor_units`` the one for every amount read back.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from abonnement.engine.collection import ChargeResult
from abonnement.engine.money import Money
from abonnement.errors import (
    AuthenticationRequired,
    MoneyError,
    PaymentDeclined,
    PluginError,
    ProcessorTimeout,
)
from abonnement.plugins import hookimpl
from abonnement.plugins.interfaces import Processor, Registry, WebhookEvent

if TYPE_CHECKING:
    from abonnement.engine.catalog import Contact

SETTINGS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "description": "The Stripe processor. Its keys are read from the environment only: "
    "STRIPE_API_KEY (secret), STRIPE_PUBLISHABLE_KEY (the pages), and the webhook signing "
    "secret from ABONNEMENT_WEBHOOK_SECRET or STRIPE_WEBHOOK_SECRET.",
    "properties": {
        "api_base": {"type": "string", "description": "API address (default Stripe's)."},
        "customer": {"type": "string", "description": "Customer of bare pm_ tokens, if any."},
        "js_url": {"type": "string", "description": "Stripe.js address (default Stripe's)."},
    },
}
# The API version this code is written and tested against (stripe-python 16.1's own): sent
# with every request, so a newer SDK or a change of the account's default changes nothing.
API_VERSION = "2026-10-28.endive"
JS_URL = "https://js.stripe.com/v3/"
KEY_ENV, PUBLISHABLE_ENV, WEBHOOK_ENV = (
    "STRIPE_API_KEY",
    "STRIPE_PUBLISHABLE_KEY",
    "STRIPE_WEBHOOK_SECRET",
)
# Stripe keeps an idempotency key's first result for 24 hours; replay only well inside that.
REPLAY_SECONDS = 23 * 3600
MANUAL_REVIEW = "manual_review"
# a payment method Stripe would not attach (unknown, someone else's): the pages' reason
# for a card number that is not valid
UNUSABLE_METHOD = "invalid_token"
METADATA_KEY = "abonnement_key"
_EVENTS = {"payment_intent.succeeded": "succeeded", "payment_intent.processing": "processing",
           "payment_intent.payment_failed": "failed"}  # fmt: skip
# Declines a later retry may fix; any other decline is hard (lost, stolen, expired card…).
SOFT_DECLINES = frozenset({
    "insufficient_funds", "do_not_honor", "try_again_later", "processing_error",
    "generic_decline", "card_velocity_exceeded", "issuer_not_available",
})  # fmt: skip
_STATUS = {"succeeded": "succeeded", "processing": "processing"}
_log = logging.getLogger("abonnement.processors.stripe")


def _clock() -> float:
    """UNIX seconds now: how long Stripe still remembers a key is a matter of real time."""
    return time.time()


# Stripe's currency table (docs.stripe.com/currencies). Every other currency is sent in
# hundredths. HUF and TWD are charged and refunded with two decimals too; only their payouts,
# which this plugin never makes, must be whole units.
ZERO_DECIMAL = frozenset({
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "VND", "VUV", "XAF",
    "XOF", "XPF",
})  # fmt: skip
# Effectively zero-decimal, but for backwards compatibility sent with two decimals that
# must be 00 ("to charge 5 ISK, provide an amount value of 500").
WHOLE_UNITS_IN_HUNDREDTHS = frozenset({"ISK", "UGX"})
# Thousandths, but Stripe's payment partners need the last digit to be 0.
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
AMOUNT_NOT_REPRESENTABLE = "amount_not_representable"


def stripe_units(currency: str) -> tuple[int, int]:
    """(decimal places of Stripe's amount, the step the integer amount must be a multiple of)
    for ``currency`` (upper case ISO code)."""
    if currency in ZERO_DECIMAL:
        return 0, 1
    if currency in WHOLE_UNITS_IN_HUNDREDTHS:
        return 2, 100
    if currency in THREE_DECIMAL:
        return 3, 10
    return 2, 1


def unrepresentable(money: Money) -> str | None:
    """Why Stripe cannot take ``money`` as written, or None when it can."""
    places, step = stripe_units(money.currency)
    units = money.amount.scaleb(places)
    if units == units.to_integral_value() and int(units) % step == 0:
        return None
    smallest = Money(Decimal(step).scaleb(-places), money.currency)
    return (f"{money} cannot be sent to Stripe: it takes {money.currency} amounts in steps of "
            f"{smallest.format_amount()}")  # fmt: skip


def to_minor_units(money: Money) -> int:
    """``money`` as the integer ``amount`` Stripe expects (USD 12.34 → 1234, JPY 500 → 500,
    ISK 500 → 50000, KWD 1.230 → 1230). Raises ``MoneyError`` if Stripe cannot take it."""
    problem = unrepresentable(money)
    if problem:
        raise MoneyError(problem)
    return int(money.amount.scaleb(stripe_units(money.currency)[0]))


def from_minor_units(units: int, currency: str) -> Money:
    """An ``amount`` read back from Stripe (``currency`` in any case) as money."""
    code = currency.upper()
    return Money(Decimal(units).scaleb(-stripe_units(code)[0]), code)


def split_token(token: str) -> tuple[str | None, str]:
    """(customer, payment method) of a stored token: ``cus_…:pm_…``, or a bare ``pm_…``."""
    customer, sep, method = token.partition(":")
    return (customer, method) if sep else (None, token)


def _field(obj: Any, name: str) -> Any:
    """``obj[name]`` of a Stripe object or a dict, None when absent (a StripeObject is not a
    dict: it has no ``get``)."""
    try:
        return obj[name]
    except (KeyError, TypeError, IndexError):
        return None


def _decline_code(error: Any) -> str | None:
    """Stripe's most precise reason on an error object: the issuer's decline code first."""
    if not error:
        return None
    code = _field(error, "decline_code") or _field(error, "code")
    return code if isinstance(code, str) else None


class StripeProcessor(Processor):
    name = "stripe"

    @classmethod
    def representable(cls, money: Money) -> str | None:
        """Stripe's own table, not the ISO minor unit: see ``to_minor_units``."""
        return unrepresentable(money)

    def __init__(self, settings: Mapping[str, Any] | None = None):
        """``settings``: the ``payments.stripe`` block, plus ``storage`` (where customers
        and requests sent are kept; without it, nothing can be replayed after a crash and
        such attempts wait for a webhook or a person)."""
        super().__init__(settings or {})
        key = os.environ.get(KEY_ENV)
        if not key:
            raise PluginError(f"the stripe processor needs {KEY_ENV} in the environment")
        import stripe  # an optional dependency: `pip install abonnement[stripe]`

        self._stripe = stripe
        bases = {"api": self.settings["api_base"]} if "api_base" in self.settings else None
        # our own retries replay the same key (the billing run asks once more on a timeout)
        self._client = stripe.StripeClient(key, stripe_version=API_VERSION,
                                           base_addresses=bases or {},  # type: ignore[arg-type]
                                           max_network_retries=0)  # fmt: skip
        store = self.settings.get("storage")
        self._store = store if hasattr(store, "save_processor_request") else None

    # -- errors -------------------------------------------------------------------------------
    def _unknown(self, exc: Exception, key: str) -> Exception:
        """What a Stripe error becomes when it says nothing about the charge itself: a refused
        key is the operator's to fix (``PluginError``); anything else (5xx, 429, a lost
        connection, a body we cannot read) leaves the outcome unknown, and the same key asks
        again (``ProcessorTimeout``)."""
        stripe = self._stripe
        if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
            return PluginError(
                f"Stripe refused the secret key in {KEY_ENV} ({exc.user_message or exc}): "
                "set a valid secret or restricted key with write access to PaymentIntents, "
                "Customers and PaymentMethods"
            )
        if isinstance(exc, stripe.IdempotencyError):
            return PluginError(
                f"Stripe refused key {key}: it was used with other parameters ({exc}); "
                "nothing was charged by this request, check the payment by hand"
            )
        return ProcessorTimeout(key)

    def _read(self, intent: Any, key: str) -> ChargeResult:
        """A PaymentIntent as an outcome; a body that is not one is an unknown outcome."""
        try:
            status, intent_id = intent["status"], intent["id"]
        except (KeyError, TypeError, AttributeError) as exc:
            raise ProcessorTimeout(key) from exc
        if not isinstance(status, str) or not isinstance(intent_id, str):
            raise ProcessorTimeout(key)
        self._keep_reference(key, intent_id)
        known = _STATUS.get(status)
        if known:
            return ChargeResult(known, intent_id)
        if status in ("requires_capture", "requires_confirmation", "requires_action"):
            # off-session and not capturable by us: the bank wants the buyer (3-D Secure)
            return ChargeResult("failed", intent_id, "authentication_required", False)
        code = _decline_code(_field(intent, "last_payment_error")) or status
        return ChargeResult("failed", intent_id, code, code in SOFT_DECLINES)

    def _keep_reference(self, key: str, intent_id: str) -> None:
        if self._store is not None:
            self._store.set_processor_reference(self.name, key, intent_id)

    # -- charges ------------------------------------------------------------------------------
    def _request(self, amount: Money, token: str, key: str) -> dict[str, Any]:
        customer, method = split_token(token)
        params: dict[str, Any] = {
            "amount": to_minor_units(amount),
            "currency": amount.currency.lower(),
            "payment_method": method,
            "confirm": True,
            "off_session": True,
            "metadata": {METADATA_KEY: key},
        }
        customer = customer or self.settings.get("customer")
        if customer:
            params["customer"] = customer
        return params

    def _send(self, params: Mapping[str, Any], key: str) -> ChargeResult:
        """Create the PaymentIntent ``params`` with idempotency ``key`` (a repeat is a replay)."""
        stripe = self._stripe
        try:
            intent = self._client.v1.payment_intents.create(
                dict(params),  # type: ignore[arg-type]
                {"idempotency_key": key},
            )
        except stripe.CardError as exc:
            error = exc.error
            code = (_decline_code(error) if exc.code == "card_declined" else exc.code) or "declined"
            intent_id = getattr(getattr(error, "payment_intent", None), "id", None)
            if intent_id:
                self._keep_reference(key, intent_id)
            return ChargeResult("failed", intent_id, code, code in SOFT_DECLINES)
        except stripe.IdempotencyError as exc:
            raise self._unknown(exc, key) from exc
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 429 or exc.code == "rate_limit":  # not processed: ask again
                raise ProcessorTimeout(key) from exc
            # a 4xx about this request (a deleted or foreign payment method, say): this
            # attempt failed for good; it says nothing about Stripe being down for the others
            return ChargeResult("failed", None, exc.code or "invalid_request", False)
        except stripe.StripeError as exc:
            raise self._unknown(exc, key) from exc
        return self._read(intent, key)

    def charge(self, *, amount: Money, token: str, idempotency_key: str, on: date) -> ChargeResult:
        if unrepresentable(amount):  # a prorated or discounted total: never a wrong charge
            return ChargeResult("failed", None, AMOUNT_NOT_REPRESENTABLE)
        # sent as kept, so a replay after a crash is the same request to the letter
        body = json.dumps(self._request(amount, token, idempotency_key), sort_keys=True)
        params = json.loads(body)
        kept = self._store is None or self._store.save_processor_request(
            self.name, idempotency_key, body, int(_clock())
        )
        if not kept:
            # sent before with this key (a retry, a checkout run again after a crash): what
            # Stripe knows of it, never a second PaymentIntent
            return self.lookup(idempotency_key=idempotency_key, on=on) or self._send(
                params, idempotency_key
            )
        return self._send(params, idempotency_key)

    def lookup(self, *, idempotency_key: str, on: date) -> ChargeResult | None:
        """What became of the charge sent with ``idempotency_key``: retrieved by its
        PaymentIntent id when known; else the kept request replayed with the same key within
        Stripe's 24 hours (the first result comes back, nothing is charged twice); else
        ``processing`` with ``manual_review``. None when no request was kept for the key (it
        is kept before it is sent: it was never sent)."""
        if self._store is None:
            raise PluginError(
                f"charge {idempotency_key}: this storage keeps no Stripe requests, so it cannot "
                "be asked about safely; a payment_intent webhook or a person settles it"
            )
        kept = self._store.processor_request(self.name, idempotency_key)
        if kept is None:
            return None
        if kept["reference"]:
            try:
                intent = self._client.v1.payment_intents.retrieve(kept["reference"])
            except self._stripe.StripeError as exc:
                raise self._unknown(exc, idempotency_key) from exc
            return self._read(intent, idempotency_key)
        if _clock() - kept["sent_at"] < REPLAY_SECONDS:
            return self._send(json.loads(kept["request"]), idempotency_key)
        _log.warning(
            "charge %s needs a person: it was sent more than 23 hours ago, its answer never "
            "came, and Stripe no longer replays its key; find the PaymentIntent with "
            "metadata abonnement_key=%s in the Stripe Dashboard (a payment_intent webhook "
            "settles it too). It is left processing (manual_review), never charged again.",
            idempotency_key, idempotency_key,
        )  # fmt: skip
        return ChargeResult("processing", None, MANUAL_REVIEW)

    # -- payment methods ----------------------------------------------------------------------
    def customer(self, contact: Contact, on: date) -> str:
        """The contact's Stripe customer, made on first use (its id kept). Two first uses at
        once send the same idempotency key, so Stripe makes one customer."""
        if self._store is None:
            raise PluginError("the stripe processor keeps customers in the database; "
                              "this storage cannot keep them")  # fmt: skip
        kept = self._store.processor_customer(self.name, contact.id)
        if kept:
            return kept
        key = f"{self._store.instance_id()}/customer/{contact.id}"
        try:
            made = self._client.v1.customers.create(
                {"email": contact.email, "name": contact.name,
                 "metadata": {"abonnement_contact": contact.id}},  # type: ignore[typeddict-item]
                {"idempotency_key": key},
            )  # fmt: skip
            customer_id = made["id"]
        except (self._stripe.StripeError, KeyError, TypeError) as exc:
            raise self._page_error(exc) from exc
        return self._store.save_processor_customer(self.name, contact.id, customer_id, on)

    def _page_error(self, exc: Exception) -> Exception:
        """A Stripe error while saving a buyer's method, as the buyer's page shows it."""
        stripe = self._stripe
        if isinstance(exc, stripe.CardError):
            code = _decline_code(exc.error) or "declined"
            return PaymentDeclined(f"the payment was declined ({code})", code)
        if isinstance(exc, stripe.InvalidRequestError):  # no such method, someone else's…
            return PaymentDeclined(f"Stripe could not save this card ({exc.code or exc})",
                                   UNUSABLE_METHOD)  # fmt: skip
        unknown = self._unknown(exc, "")
        if isinstance(unknown, PluginError):
            return unknown
        return PaymentDeclined("Stripe did not answer in time; nothing was charged", "timeout")

    def attach(self, *, contact: Contact, token: str, on: date) -> str:
        """Attach the PaymentMethod ``token`` (``pm_…``, made by Stripe.js on the buyer's
        page) to the contact's customer and, for a card, set it up for payments made without
        the buyer (``_set_up``); returns ``cus_…:pm_…``, what is stored and charged.

        ``AuthenticationRequired`` when the bank wants the buyer to confirm the card (3-D
        Secure): the page completes it with Stripe.js and posts the SetupIntent's id
        (``seti_…``) as ``token``, read back here (``_authenticated``). A token that is
        neither is returned as it is."""
        if token.startswith("seti_") and ":" not in token:
            return self._authenticated(contact, token, on)
        if not token.startswith("pm_") or ":" in token:
            return token
        customer = self.customer(contact, on)
        try:
            method = self._client.v1.payment_methods.attach(token, {"customer": customer})
            owner, kind = method["customer"], _field(method, "type")
        except (self._stripe.StripeError, KeyError, TypeError) as exc:
            raise self._page_error(exc) from exc
        if not isinstance(owner, str):  # expanded: the customer object
            owner = _field(owner, "id")
        if owner != customer:
            raise PaymentDeclined("Stripe could not save this card for you", UNUSABLE_METHOD)
        if kind == "card":  # a bank debit has its mandate, not 3-D Secure
            self._set_up(customer, token)
        return f"{customer}:{token}"

    def _set_up(self, customer: str, method: str) -> None:
        """Confirm a SetupIntent for ``method`` with ``usage: off_session`` while the buyer is
        on the page: the bank authenticates the card now, if it wants to, so the charges made
        without the buyer (this checkout's, the renewals) are exempt from asking again.
        ``AuthenticationRequired`` with its client secret when the bank wants the buyer.

        Its idempotency key is fresh each time: a SetupIntent moves no money, so a duplicate
        is harmless, while a replayed first answer would hand the page a stale client secret
        when the same card is set up again (a card updated after a failed renewal)."""
        import secrets

        params = {"customer": customer, "payment_method": method, "confirm": True,
                  "usage": "off_session", "payment_method_types": ["card"],
                  "use_stripe_sdk": True}  # fmt: skip
        key = f"setup/{customer}/{method}/{secrets.token_hex(8)}"
        try:
            setup = self._client.v1.setup_intents.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": key},
            )
        except self._stripe.StripeError as exc:
            raise self._page_error(exc) from exc
        self._settled_setup(setup, customer, method)

    def _settled_setup(self, setup: Any, customer: str, method: str | None) -> str:
        """The payment method of a SetupIntent that succeeded for ``customer`` (and for
        ``method``, when given); ``AuthenticationRequired`` while it waits for the buyer;
        ``PaymentDeclined`` when it failed, is someone else's or is not one."""
        status, setup_id = _field(setup, "status"), _field(setup, "id")
        owner, used = _field(setup, "customer"), _field(setup, "payment_method")
        owner = owner if isinstance(owner, str) else _field(owner, "id")
        used = used if isinstance(used, str) else _field(used, "id")
        if not isinstance(setup_id, str) or owner != customer or (method and used != method):
            raise PaymentDeclined("Stripe could not save this card for you", UNUSABLE_METHOD)
        if status == "requires_action":
            secret = _field(setup, "client_secret")
            if not isinstance(secret, str):
                raise PaymentDeclined("Stripe could not save this card for you",
                                      UNUSABLE_METHOD)  # fmt: skip
            raise AuthenticationRequired("the bank asks the buyer to confirm this card",
                                         secret, setup_id)  # fmt: skip
        if status != "succeeded" or not isinstance(used, str):
            # the buyer did not pass the bank's check (``setup_intent_authentication_failure``)
            code = _decline_code(_field(setup, "last_setup_error"))
            raise PaymentDeclined(f"the card could not be confirmed ({code or status})",
                                  "authentication_required")  # fmt: skip
        return used

    def _authenticated(self, contact: Contact, setup_id: str, on: date) -> str:
        """``cus_…:pm_…`` of the SetupIntent ``setup_id`` the buyer's page authenticated:
        read back by id (never trusted from the page), and only if it is this contact's."""
        customer = self.customer(contact, on)
        try:
            setup = self._client.v1.setup_intents.retrieve(setup_id)
        except self._stripe.StripeError as exc:
            raise self._page_error(exc) from exc
        return f"{customer}:{self._settled_setup(setup, customer, None)}"

    def refund(
        self, *, charge_key: str, reference: str | None, amount: Money, idempotency_key: str,
        on: date,
    ) -> ChargeResult:  # fmt: skip
        if unrepresentable(amount):
            return ChargeResult("failed", None, AMOUNT_NOT_REPRESENTABLE)
        try:
            refund = self._client.v1.refunds.create(
                {"payment_intent": reference, "amount": to_minor_units(amount)},  # type: ignore[typeddict-item]
                {"idempotency_key": idempotency_key},
            )
        except self._stripe.InvalidRequestError as exc:
            return ChargeResult("failed", None, exc.code or "invalid_request")
        except self._stripe.StripeError as exc:
            unknown = self._unknown(exc, idempotency_key)
            if isinstance(unknown, PluginError):
                raise unknown from exc
            # the same key asked again replays the first answer: a refund is never doubled
            return ChargeResult("failed", None, "processor_unavailable")
        return ChargeResult("succeeded" if refund.status == "succeeded" else refund.status,
                            refund.id)  # fmt: skip

    def page(self) -> dict[str, str] | None:
        """What the buyer pages need to take a card with Stripe.js: ``{"publishable_key",
        "js_url"}``, or None without ``STRIPE_PUBLISHABLE_KEY`` (then no card form)."""
        key = os.environ.get(PUBLISHABLE_ENV)
        if not key:
            return None
        return {"publishable_key": key, "js_url": self.settings.get("js_url", JS_URL)}


def parse_event(body: bytes, signature: str, secret: str) -> WebhookEvent | None:
    """A Stripe webhook as our event, or None unless ``signature`` (the ``Stripe-Signature``
    header) signs ``body`` with ``secret`` within five minutes (an older one is a replay)
    and the body is a well-formed event."""
    import stripe

    try:
        stripe.WebhookSignature.verify_header(body.decode(), signature, secret, tolerance=300)
        event = json.loads(body)
        event_id, kind = event["id"], event["type"]
        intent = event["data"]["object"]
        key = (intent.get("metadata") or {}).get(METADATA_KEY)
        reference = intent.get("id")
    except (stripe.SignatureVerificationError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(event_id, str) or not event_id or not isinstance(kind, str):
        return None
    status = _EVENTS.get(kind)
    if status is None or not isinstance(key, str) or not key:
        return WebhookEvent(event_id, kind)  # not about a charge of ours: nothing to record
    code, retryable = None, False
    if status == "failed":
        code = _decline_code(intent.get("last_payment_error")) or "declined"
        retryable = code in SOFT_DECLINES
    reference = reference if isinstance(reference, str) else None
    return WebhookEvent(event_id, kind, key, ChargeResult(status, reference, code, retryable))


@hookimpl
def abonnement_parse_webhook(
    processor: str, headers: Mapping[str, str], body: bytes, secret: str | None
) -> WebhookEvent | None:
    if processor != StripeProcessor.name:
        return None
    secret = secret or os.environ.get(WEBHOOK_ENV)
    signature = headers.get("stripe-signature")
    if not secret or not signature:
        return None
    return parse_event(body, signature, secret)


@hookimpl
def abonnement_register_processors(register: Registry) -> None:
    register(StripeProcessor)


@hookimpl
def abonnement_settings_schemas() -> dict:
    return {"payments.stripe": SETTINGS_SCHEMA}
