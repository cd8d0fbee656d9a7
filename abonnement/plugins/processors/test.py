"""The ``test`` processor: deterministic outcomes by token, with a ledger of its own.

Tokens (the spec's table): ``tok_visa``/``tok_mastercard`` succeed; ``tok_insufficient_funds``
is a soft decline; ``tok_lost_card``/``tok_expired_card`` are hard declines; ``tok_ach`` is a
bank debit that settles 4 days later, ``tok_ach_fails`` one that fails then
(``account_closed``); ``tok_timeout`` charges but times out on the first call for a key. The
ledger is a SQLite file, so tests can count the charges that really happened, across
processes and crashes: ``settings.payments.test.ledger`` (a relative path is taken from the
config directory), by default ``test-processor-ledger.db`` next to the database. Databases
side by side share it, as they would share a processor account: the instance id in every
key keeps their charges apart. ``settings.payments.test.latency`` (seconds, default 0) makes
every charge take that long to answer, as real processors do.

Its webhooks (``POST /hooks/test``) are signed like Stripe's: the header
``Abonnement-Signature: t=UNIX_TIME,v1=HEX`` where ``HEX`` is the HMAC-SHA256 of
``"UNIX_TIME." + body`` with the webhook secret; a signature older than five minutes is
refused. The body is JSON ``{"id", "type": "charge.succeeded" | "charge.failed",
"data": {"idempotency_key", "reference", "failure_code"}}``, or ``{"id", "type":
"charge.dispute.created", "data": {"idempotency_key", "dispute_id", "amount", "reason"}}``
(``amount`` a decimal string, the whole charge when left out); ``sign_webhook`` makes one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import time
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from abonnement.config.paths import escapes
from abonnement.engine.collection import ChargeResult
from abonnement.engine.money import Money
from abonnement.errors import PluginError, ProcessorTimeout
from abonnement.plugins import hookimpl
from abonnement.plugins.interfaces import Dispute, Processor, Registry, WebhookEvent
from abonnement.private_files import create_private

SETTINGS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "description": "The test processor: where it keeps its ledger of charges.",
    "properties": {
        "ledger": {"type": "string", "minLength": 1},
        "webhook_secret": {"type": "string", "minLength": 16},
        "latency": {"type": "number", "minimum": 0, "maximum": 10},
    },
}
SIGNATURE_HEADER = "abonnement-signature"
TOLERANCE_SECONDS = 300  # a signature older than this is a replay
DEFAULT_LEDGER = "test-processor-ledger.db"
SETTLE_DAYS = 4
_DECLINES = {
    "tok_insufficient_funds": ("insufficient_funds", True),
    "tok_lost_card": ("lost_card", False),
    "tok_expired_card": ("expired_card", False),
}
_SUCCEEDS = ("tok_visa", "tok_mastercard", "tok_timeout")
_DEBITS = ("tok_ach", "tok_ach_fails")


class TestProcessor(Processor):
    name = "test"

    def __init__(self, settings: Mapping[str, Any] | None = None):
        """``settings``: the config's ``ledger`` (a path; a relative one is taken from
        ``config_dir`` and may not climb out of it) and, from the operations' context,
        ``config_dir`` and ``data_dir`` (the database's folder: the default ledger is kept
        there). Built without them (a test), paths are taken as given."""
        super().__init__(settings or {})
        if "ledger" in self.settings:
            ledger = self.settings["ledger"]
            if not os.path.isabs(ledger) and escapes(ledger):
                raise PluginError(
                    f"the test processor's ledger `{ledger}` climbs out of the directory it is "
                    "relative to; write an absolute path if you mean it"
                )
            folder = self.settings.get("config_dir")
        else:
            ledger, folder = DEFAULT_LEDGER, self.settings.get("data_dir")
        if ledger != ":memory:" and folder and not os.path.isabs(ledger):
            ledger = str(Path(folder) / ledger)
        if ledger != ":memory:":  # payment tokens inside: its owner's only (SQLite keeps the mode)
            create_private(ledger)
        # one request at a time, but not always on the thread that opened it (the server)
        self.db = sqlite3.connect(ledger, timeout=30, isolation_level=None,
                                  check_same_thread=False)  # fmt: skip
        # WAL survives a killed process (what the crash tests do), without a sync per charge
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS charges (key TEXT PRIMARY KEY, token TEXT, amount TEXT,"
            " currency TEXT, status TEXT, reference TEXT, failure_code TEXT, retryable INTEGER,"
            " charged_on TEXT, settles_on TEXT, answered INTEGER)"
        )

    def _result(self, row: tuple, on: date) -> ChargeResult:
        token, status, reference, code, retryable, settles = row
        settles_on = date.fromisoformat(settles) if settles else None
        if status == "processing" and settles_on and on >= settles_on:
            status, code = ("failed", "account_closed") if token == "tok_ach_fails" else (
                "succeeded", None)  # fmt: skip
        return ChargeResult(status, reference, code, bool(retryable), settles_on)

    def _row(self, key: str) -> tuple | None:
        return self.db.execute(
            "SELECT token, status, reference, failure_code, retryable, settles_on, answered"
            " FROM charges WHERE key = ?", (key,)).fetchone()  # fmt: skip

    def charge(self, *, amount: Money, token: str, idempotency_key: str, on: date) -> ChargeResult:
        # ``latency``: seconds a charge takes to answer, as a real processor's do (races
        # between callers are tried with it)
        time.sleep(float(self.settings.get("latency") or 0))
        reference = "ch_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
        settles = None
        if token in _DECLINES:
            code, retryable = _DECLINES[token]
            status, reference = "failed", None
        elif token in _DEBITS:
            status, code, retryable = "processing", None, False
            settles = (on + timedelta(days=SETTLE_DAYS)).isoformat()
        elif token in _SUCCEEDS:
            status, code, retryable = "succeeded", None, False
        else:
            status, code, retryable, reference = "failed", "invalid_token", False, None
        answered = 0 if token == "tok_timeout" else 1
        # One statement for a new key; a key seen before keeps its first outcome.
        inserted = self.db.execute(
            "INSERT INTO charges VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (idempotency_key, token, str(amount.amount), amount.currency, status, reference,
             code, int(retryable), on.isoformat(), settles, answered),
        ).rowcount  # fmt: skip
        if not inserted:  # the same key: the first outcome, never a second charge
            row = self._row(idempotency_key)
            if not row[6]:  # type: ignore[index]
                self.db.execute("UPDATE charges SET answered = 1 WHERE key = ?", (idempotency_key,))
            return self._result(row[:6], on)  # type: ignore[index]
        if not answered:
            raise ProcessorTimeout(idempotency_key)
        return self._result((token, status, reference, code, retryable, settles), on)

    def lookup(self, *, idempotency_key: str, on: date) -> ChargeResult | None:
        row = self._row(idempotency_key)
        return self._result(row[:6], on) if row else None

    def refund(
        self, *, charge_key: str, reference: str | None, amount: Money, idempotency_key: str,
        on: date,
    ) -> ChargeResult:  # fmt: skip
        row = self._row(idempotency_key)
        if row is not None:
            return self._result(row[:6], on)
        charged = self._row(charge_key)
        if charged is None or self._result(charged[:6], on).status != "succeeded":
            return ChargeResult("failed", None, "no_such_charge")
        self.db.execute(
            "INSERT INTO charges VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (idempotency_key, charged[0], str(-amount.amount), amount.currency, "succeeded",
             "re_" + charge_key, None, 0, on.isoformat(), None, 1),
        )  # fmt: skip
        return ChargeResult("succeeded", "re_" + charge_key)

    def charges(self) -> list[tuple[str, str, str]]:
        """(key, amount, status) of every charge that moved money, for tests."""
        return self.db.execute(
            "SELECT key, amount, status FROM charges WHERE status != 'failed' ORDER BY key"
        ).fetchall()


def sign_webhook(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Abonnement-Signature`` header value for ``body`` sent at ``timestamp`` (now)."""
    when = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{when}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={when},v1={mac}"


def _signed(headers: Mapping[str, str], body: bytes, secret: str) -> bool:
    parts = dict(p.split("=", 1) for p in headers.get(SIGNATURE_HEADER, "").split(",") if "=" in p)
    when = parts.get("t", "")
    if not when.isdigit() or abs(time.time() - int(when)) > TOLERANCE_SECONDS:
        return False
    expected = sign_webhook(body, secret, int(when)).split("v1=", 1)[1]
    return hmac.compare_digest(parts.get("v1", ""), expected)


@hookimpl
def abonnement_parse_webhook(
    processor: str, headers: Mapping[str, str], body: bytes, secret: str | None
) -> WebhookEvent | None:
    if processor != TestProcessor.name or not secret or not _signed(headers, body, secret):
        return None
    try:
        event = json.loads(body)
        data = event.get("data") or {}
        kind, event_id, key = event["type"], event["id"], data.get("idempotency_key")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(event_id, str) or not event_id or not isinstance(kind, str):
        return None
    if kind == "charge.dispute.created" and isinstance(key, str):
        dispute_id = data.get("dispute_id")
        if not isinstance(dispute_id, str) or not dispute_id:
            return None
        return WebhookEvent(event_id, kind, key, dispute=Dispute(
            dispute_id, data.get("amount"), data.get("reason")))  # fmt: skip
    status = {"charge.succeeded": "succeeded", "charge.failed": "failed"}.get(kind)
    if status is None or not isinstance(key, str):
        return WebhookEvent(event_id, kind)  # not about a charge of ours: nothing to record
    code = data.get("failure_code") or ("declined" if status == "failed" else None)
    return WebhookEvent(event_id, kind, key, ChargeResult(status, data.get("reference"), code))


@hookimpl
def abonnement_register_processors(register: Registry) -> None:
    register(TestProcessor)


@hookimpl
def abonnement_settings_schemas() -> dict:
    return {"payments.test": SETTINGS_SCHEMA}
