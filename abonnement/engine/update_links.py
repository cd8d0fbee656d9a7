"""Signed, expiring payment-method update links (F17). Pure: the secret and date come in."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import date, timedelta

from abonnement.errors import InvalidInput, InvalidState

__all__ = ["UPDATE_URL", "link", "sign", "verify"]

UPDATE_URL = "https://pay.abonnement.dev/update/{token}"  # where a buyer opens the link


def _mac(payload: bytes, secret: str) -> str:
    digest = hmac.new(secret.encode(), payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(subscription_id: str, expires: date, secret: str) -> str:
    """A token naming the subscription, valid through ``expires``."""
    payload = f"{subscription_id}|{expires.isoformat()}".encode()
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode() + "." + _mac(payload, secret)


def link(subscription_id: str, on: date, days: int, secret: str) -> tuple[str, str, date]:
    """(token, URL, last valid day) of an update link made on ``on``, valid ``days`` days."""
    expires = on + timedelta(days=days)
    token = sign(subscription_id, expires, secret)
    return token, UPDATE_URL.format(token=token), expires


def verify(token: str, secret: str, on: date) -> str:
    """The subscription id of a valid token; ``InvalidInput`` if forged, ``InvalidState`` if
    expired (the link was good once: a new one is what the buyer needs)."""
    try:
        body, mac = token.split(".", 1)
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        subscription_id, expires = payload.decode().rsplit("|", 1)
        valid_through = date.fromisoformat(expires)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("this update link is not valid") from None
    if not hmac.compare_digest(mac, _mac(payload, secret)):
        raise InvalidInput("this update link is not valid")
    if on > valid_through:
        raise InvalidState(f"this update link expired on {valid_through}; ask for a new one")
    return subscription_id
