"""The ``stripe`` processor: PaymentIntents through the official SDK.

Each charge is a PaymentIntent confirmed off-session with the saved payment method, sent with
the attempt's idempotency key (Stripe replays the first response for a repeated key) and the
key in its metadata, so ``lookup`` can find it again after a crash. The secret key comes from
``STRIPE_API_KEY`` only, never from a file, and is never logged. ``payments.stripe.api_base``
points the SDK elsewhere (a local stub in tests).

Amounts cross to Stripe in Stripe's own units, which are not always the ISO 4217 minor unit
(https://docs.stripe.com/currencies): zero-decimal currencies go as whole units; ISK and UGX
go with two decimals that must be ``00``; three-decimal currencies go in thousandths whose last
digit must be 0. ``to_minor_units`` is the one door for every amount sent (charges, refunds),
``from_minor_units`` the one for every amount read back.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from abonnement.engine.collection import ChargeResult
from abonnement.engine.money import Money
from abonnement.errors import MoneyError, PluginError, ProcessorTimeout
from abonnement.plugins import hookimpl
from abonnement.plugins.interfaces import Processor, Registry

SETTINGS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "description": "The Stripe processor. The secret key is read from STRIPE_API_KEY.",
    "properties": {
        "api_base": {"type": "string", "description": "API address (default Stripe's)."},
        "customer": {"type": "string", "description": "Customer of saved methods, if any."},
    },
}
# Declines a later retry may fix; any other decline is hard (lost, stolen, expired card…).
SOFT_DECLINES = frozenset({
    "insufficient_funds", "do_not_honor", "try_again_later", "processing_error",
    "generic_decline", "card_velocity_exceeded", "issuer_not_available",
})  # fmt: skip
_STATUS = {"succeeded": "succeeded", "processing": "processing"}

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


class StripeProcessor(Processor):
    name = "stripe"

    @classmethod
    def representable(cls, money: Money) -> str | None:
        """Stripe's own table, not the ISO minor unit: see ``to_minor_units``."""
        return unrepresentable(money)

    def __init__(self, settings: Mapping[str, Any] | None = None):
        super().__init__(settings or {})
        key = os.environ.get("STRIPE_API_KEY")
        if not key:
            raise PluginError("the stripe processor needs STRIPE_API_KEY in the environment")
        import stripe  # an optional dependency: `pip install abonnement[stripe]`

        self._stripe = stripe
        bases = {"api": self.settings["api_base"]} if "api_base" in self.settings else None
        self._client = stripe.StripeClient(key, base_addresses=bases or {}, max_network_retries=0)

    def _result(self, intent: Any) -> ChargeResult:
        status = _STATUS.get(intent.status)
        if status:
            return ChargeResult(status, intent.id)
        error = getattr(intent, "last_payment_error", None)
        code = (
            (getattr(error, "decline_code", None) or getattr(error, "code", None))
            if error
            else None
        )
        return ChargeResult("failed", intent.id, code or intent.status, code in SOFT_DECLINES)

    def charge(self, *, amount: Money, token: str, idempotency_key: str, on: date) -> ChargeResult:
        if unrepresentable(amount):  # a prorated or discounted total: never a wrong charge
            return ChargeResult("failed", None, AMOUNT_NOT_REPRESENTABLE)
        params = {
            "amount": to_minor_units(amount),
            "currency": amount.currency.lower(),
            "payment_method": token,
            "confirm": True,
            "off_session": True,
            "metadata": {"abonnement_key": idempotency_key},
        }
        if "customer" in self.settings:
            params["customer"] = self.settings["customer"]
        try:
            intent = self._client.v1.payment_intents.create(
                params,
                {"idempotency_key": idempotency_key},  # type: ignore[arg-type]
            )
        except self._stripe.CardError as exc:
            code = exc.code if exc.code != "card_declined" else (
                getattr(exc.error, "decline_code", None) or exc.code)  # fmt: skip
            intent_id = getattr(getattr(exc.error, "payment_intent", None), "id", None)
            return ChargeResult("failed", intent_id, code, code in SOFT_DECLINES)
        except self._stripe.APIConnectionError as exc:
            raise ProcessorTimeout(idempotency_key) from exc
        except self._stripe.InvalidRequestError as exc:
            # a 4xx about this request (a deleted or foreign payment method, say): this
            # attempt failed for good; it says nothing about Stripe being down for the others
            return ChargeResult("failed", None, exc.code or "invalid_request", False)
        return self._result(intent)

    def refund(
        self, *, charge_key: str, reference: str | None, amount: Money, idempotency_key: str,
        on: date,
    ) -> ChargeResult:  # fmt: skip
        if unrepresentable(amount):
            return ChargeResult("failed", None, AMOUNT_NOT_REPRESENTABLE)
        refund = self._client.v1.refunds.create(
            {"payment_intent": reference, "amount": to_minor_units(amount)},  # type: ignore[typeddict-item]
            {"idempotency_key": idempotency_key},
        )
        return ChargeResult("succeeded" if refund.status == "succeeded" else refund.status,
                            refund.id)  # fmt: skip

    def lookup(self, *, idempotency_key: str, on: date) -> ChargeResult | None:
        found = self._client.v1.payment_intents.search(
            {"query": f"metadata['abonnement_key']:'{idempotency_key}'"}
        )
        return self._result(found.data[0]) if found.data else None


@hookimpl
def abonnement_register_processors(register: Registry) -> None:
    register(StripeProcessor)


@hookimpl
def abonnement_settings_schemas() -> dict:
    return {"payments.stripe": SETTINGS_SCHEMA}
