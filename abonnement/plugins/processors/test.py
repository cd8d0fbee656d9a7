"""The ``test`` processor: deterministic outcomes by token, for tests and demos.

Tokens (the table of the spec's scenarios): ``tok_visa``/``tok_mastercard`` succeed;
``tok_insufficient_funds`` is a soft decline; ``tok_lost_card``/``tok_expired_card`` are hard
declines; ``tok_ach``/``tok_ach_fails`` are bank debits that stay ``processing``; ``tok_timeout``
times out once per key after charging. The same idempotency key never charges twice.
"""

from __future__ import annotations

import hashlib

from abonnement.engine.money import Money
from abonnement.plugins import hookimpl
from abonnement.plugins.interfaces import ChargeResult, Processor, Registry

_DECLINES = {
    "tok_insufficient_funds": ("insufficient_funds", True),
    "tok_lost_card": ("lost_card", False),
    "tok_expired_card": ("expired_card", False),
}


class ProcessorTimeout(Exception):
    """The processor did the work but the answer never came back."""


class TestProcessor(Processor):
    name = "test"

    def __init__(self, settings=None):
        super().__init__(settings or {})
        self.ledger: dict[str, ChargeResult] = {}

    def charge(self, *, amount: Money, token: str, idempotency_key: str) -> ChargeResult:
        if idempotency_key in self.ledger:
            return self.ledger[idempotency_key]
        reference = "ch_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
        if token in _DECLINES:
            code, retryable = _DECLINES[token]
            return ChargeResult("failed", None, code, retryable)
        if token in ("tok_ach", "tok_ach_fails"):
            result = ChargeResult("processing", reference)
        elif token in ("tok_visa", "tok_mastercard", "tok_timeout"):
            result = ChargeResult("succeeded", reference)
        else:
            return ChargeResult("failed", None, "invalid_token", False)
        self.ledger[idempotency_key] = result
        if token == "tok_timeout":
            raise ProcessorTimeout(idempotency_key)
        return result

    def lookup(self, *, idempotency_key: str) -> ChargeResult | None:
        return self.ledger.get(idempotency_key)


@hookimpl
def abonnement_register_processors(register: Registry) -> None:
    register(TestProcessor)
