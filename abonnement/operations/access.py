"""Who may call the HTTP API (API keys, stored hashed) and the first answer to each
idempotent write (``Idempotency-Key``)."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import date
from typing import Any

from abonnement.errors import InvalidInput, InvalidState, NotFound
from abonnement.operations.context import Context

__all__ = [
    "KEY_PREFIX",
    "answer",
    "authenticate",
    "claim",
    "create_key",
    "keys",
    "release",
    "revoke_key",
]

KEY_PREFIX = "abk_"  # so a leaked key is recognisable (secret scanners, logs)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _digest(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def create_key(ctx: Context, name: str, on: date) -> dict[str, str]:
    """A new API key named ``name``: ``{"name", "key", "prefix"}``. The key (32 random bytes)
    is returned this once; only its SHA-256 is stored. ``AlreadyExists`` for a live name,
    ``InvalidInput`` for a name that is not an id."""
    if not _NAME.match(name):
        raise InvalidInput(f"{name!r} is not a key name: letters, digits, '-', '_', '.'",
                           field="name")  # fmt: skip
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    prefix = key[: len(KEY_PREFIX) + 4]
    ctx.storage.add_api_key(name, _digest(key), prefix, on)
    return {"name": name, "key": key, "prefix": prefix}


def keys(ctx: Context) -> list[dict[str, Any]]:
    """Every key without its secret: ``{"name", "prefix", "created_on", "revoked_on"}``."""
    return [
        {**row, "created_on": row["created_on"].isoformat(),
         "revoked_on": row["revoked_on"].isoformat() if row["revoked_on"] else None}
        for row in ctx.storage.api_keys()
    ]  # fmt: skip


def revoke_key(ctx: Context, name: str, on: date) -> dict[str, str]:
    """Revoke the live key ``name`` from now: ``{"revoked": name}``; ``NotFound`` if none."""
    if not ctx.storage.revoke_api_key(name, on):
        raise NotFound("API key", name)
    return {"revoked": name}


def authenticate(ctx: Context, key: str) -> str | None:
    """The name of the live key ``key``, or None (unknown or revoked)."""
    if not key.startswith(KEY_PREFIX):
        return None
    return ctx.storage.api_key_named(_digest(key))


def claim(ctx: Context, api_key: str, key: str, request: bytes, on: date) -> tuple[int, str] | None:
    """Claim ``Idempotency-Key`` ``key`` of ``api_key`` for ``request`` (method, path and
    body): None when it is new (run it, then ``answer``); the first ``(status, response)``
    when the same request came before. ``InvalidState`` (409) when the key was used for
    another request, or its first request is still running."""
    if not key or len(key) > 255:
        raise InvalidInput("an Idempotency-Key is 1 to 255 characters", field="Idempotency-Key")
    found = ctx.storage.claim_idempotency_key(api_key, key, _digest(request), on)
    if found is None:
        return None
    if found["request"] != _digest(request):
        raise InvalidState(f"Idempotency-Key {key!r} was used for another request")
    if found["status"] is None:
        raise InvalidState(f"the request with Idempotency-Key {key!r} is still running")
    return found["status"], found["response"]


def answer(ctx: Context, api_key: str, key: str, status: int, response: str) -> None:
    """Keep the answer to the request that claimed ``key``: a repeat gets it."""
    ctx.storage.answer_idempotency_key(api_key, key, status, response)


def release(ctx: Context, api_key: str, key: str) -> None:
    """Give up a claim whose request crashed, so the client can try it again."""
    ctx.storage.release_idempotency_key(api_key, key)
