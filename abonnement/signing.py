"""Outgoing webhooks, signed one way: Standard Webhooks (https://www.standardwebhooks.com).

Both things abonnement POSTs — each domain event (``settings.webhooks``) and each rendered
message of the ``webhook`` notifier — carry ``webhook-id`` (stable across retries, so a
receiver drops duplicates), ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``
(``v1,BASE64`` of HMAC-SHA256 over ``ID.TIMESTAMP.BODY``), made with the one secret in
``ABONNEMENT_WEBHOOK_SIGNING_SECRET`` (``whsec_`` + base64, as the Standard Webhooks libraries
take it). A receiver checks them with ``standardwebhooks.Webhook(secret).verify(body, headers)``.
Nothing goes out unsigned: without the secret, no command that delivers starts
(``require_secret``); ``validate`` only notes it, as a CI job checking a config has no
secrets.

This is not the secret of *incoming* processor webhooks (``ABONNEMENT_WEBHOOK_SECRET``, the one
the processor signs ``POST /hooks/PROCESSOR`` with): those are the processor's to choose.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

from abonnement.errors import ConfigError, PluginError, Problem

__all__ = [
    "HINT",
    "SECRET_ENV",
    "post",
    "require_secret",
    "secret_problem",
    "signed_headers",
    "signing_secret",
    "unsigned",
]

SECRET_ENV = "ABONNEMENT_WEBHOOK_SIGNING_SECRET"
_MIN_BYTES = 16  # a shorter key is guessable


HINT = ("make one with `python -c \"import base64, secrets; print('whsec_' + "
        "base64.b64encode(secrets.token_bytes(32)).decode())\"` and give it to the receivers: "
        "they verify signatures with it")  # fmt: skip


def secret_problem() -> str | None:
    """Why the signing secret cannot be used (unset, not base64, too short), or None;
    ``HINT`` says how to make one."""
    value = os.environ.get(SECRET_ENV, "")
    if not value:
        return f"outgoing webhooks are signed: set the environment variable {SECRET_ENV}"
    try:
        key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return f"{SECRET_ENV} is not `whsec_` and base64"
    if len(key) < _MIN_BYTES:
        return (f"{SECRET_ENV} is {len(key)} bytes long, fewer than {_MIN_BYTES} (a secret is "
                f"`whsec_` and the base64 of {_MIN_BYTES} bytes or more)")  # fmt: skip
    return None


def unsigned(signed_at: Sequence[tuple[str, int, int, str]]) -> list[Problem]:
    """A problem at each place of the config that asks for signed POSTs (``signed_at``, from
    ``Settings.signed_at``) when the secret cannot be used now; none when it can."""
    problem = secret_problem() if signed_at else None
    if problem is None:
        return []
    return [Problem(file, line, column, f"{problem} (signing is asked for {where})", HINT)
            for file, line, column, where in signed_at]  # fmt: skip


def require_secret(signed_at: Sequence[tuple[str, int, int, str]]) -> None:
    """``ConfigError`` (at the settings that sign) when the config asks for signed POSTs and
    the secret is unset or unusable: a command that could deliver refuses to start."""
    problems = unsigned(signed_at)
    if problems:
        raise ConfigError(problems)


def signing_secret() -> str:
    """The signing secret; ``PluginError`` when ``secret_problem`` finds one."""
    problem = secret_problem()
    if problem:
        raise PluginError(f"{problem}; {HINT}")
    return os.environ[SECRET_ENV]


def signed_headers(secret: str, message_id: str, body: bytes) -> dict[str, str]:
    """The headers of one signed POST of ``body`` as ``message_id``, timestamped now."""
    # a real clock here, not the billing date: receivers reject stale timestamps
    now = datetime.fromtimestamp(int(time.time()), UTC)
    signature = Webhook(secret).sign(message_id, now, body.decode())
    return {
        "Content-Type": "application/json",
        "User-Agent": "abonnement-webhook",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }


def post(url: str, body: bytes, message_id: str, secret: str, *, timeout: float,
         retries: int) -> None:  # fmt: skip
    """POST ``body`` signed as ``message_id``; a 5xx answer or a timeout is tried again
    ``retries`` times at once (newly timestamped, the same id), then raised, as a 4xx is
    at once: the outbox records it and tries again on a later run."""
    for attempt in range(retries + 1):
        headers = signed_headers(secret, message_id, body)
        request = urllib.request.Request(url, body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                return
        except (urllib.error.URLError, TimeoutError) as exc:
            client_error = isinstance(exc, urllib.error.HTTPError) and exc.code < 500
            if client_error or attempt == retries:
                raise
            time.sleep(0.2 * 2**attempt)
