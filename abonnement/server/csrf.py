"""CSRF tokens for the buyer pages' forms, without server-side sessions.

A form carries ``TIME.MAC``: the HMAC of the time it was made, the form's path and a random
value kept in a cookie (``SameSite=Lax``, HTTP only). Another site can neither read the cookie
nor make a MAC for it, so a form posted from elsewhere fails; a token is good for two hours."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

__all__ = ["COOKIE", "FIELD", "MAX_AGE", "new_cookie", "token", "valid"]

COOKIE = "abonnement_csrf"
FIELD = "csrf_token"
MAX_AGE = 2 * 3600  # seconds a form stays good: a buyer may take a while to find a card


def new_cookie() -> str:
    """A fresh random cookie value."""
    return secrets.token_urlsafe(18)


def _mac(key: bytes, when: int, cookie: str, path: str) -> str:
    return hmac.new(key, f"{when}|{cookie}|{path}".encode(), hashlib.sha256).hexdigest()


def token(key: bytes, cookie: str, path: str, now: float | None = None) -> str:
    """The token for a form posting to ``path`` from a browser holding ``cookie``."""
    when = int(time.time() if now is None else now)
    return f"{when}.{_mac(key, when, cookie, path)}"


def valid(key: bytes, cookie: str | None, path: str, sent: str | None,
          now: float | None = None) -> bool:  # fmt: skip
    """Whether ``sent`` is a token this server made for ``cookie`` and ``path``, in time."""
    if not cookie or not sent or "." not in sent:
        return False
    when, mac = sent.split(".", 1)
    if not when.isdigit():
        return False
    age = (time.time() if now is None else now) - int(when)
    if not 0 <= age <= MAX_AGE:
        return False
    return hmac.compare_digest(mac, _mac(key, int(when), cookie, path))
