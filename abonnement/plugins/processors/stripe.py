"""The ``stripe`` processor: PaymentIntents through the official SDK.

Each charge is a PaymentIntent confirmed off-session with the saved payment method, sent with
the attempt's idempotency key (Stripe replays the first response for a repeated key) and the
key in its metadata, so ``lookup`` can find it again after a crash. The secret key comes from
``STRIPE_API_KEY`` only, never from a file, and is never logged. ``payments.stripe.api_base``
points the SDK elsewhere (a local stub in tests).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date
from typing import Any

from abonnement.engine.collection import ChargeResult
from abonnement.engine.money import Money
from abonnement.errors import PluginError, ProcessorTimeout
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


class StripeProcessor(Processor):
    name = "stripe"

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
        params = {
            "amount": amount.rounded().to_minor(),
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
        return self._result(intent)

    def refund(
        self, *, charge_key: str, reference: str | None, amount: Money, idempotency_key: str,
        on: date,
    ) -> ChargeResult:  # fmt: skip
        refund = self._client.v1.refunds.create(
            {"payment_intent": reference, "amount": amount.rounded().to_minor()},  # type: ignore[typeddict-item]
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
