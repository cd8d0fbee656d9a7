"""Signed, expiring buyer links: payment-method update links (F17) and invoice pay links.
Pure: the secret and date come in. A link is a path (``/u/TOKEN``, ``/i/TOKEN``) on the server
buyers reach; the operations put ``settings.server.public_url`` in front."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import date, timedelta

from abonnement.errors import InvalidInput, InvalidState

__all__ = ["PAY_URL", "UPDATE_URL", "link", "sign", "verify"]

UPDATE_URL = "/u/{token}"  # the update page of `abonnement serve`
PAY_URL = "/i/{token}"  # an invoice's pay-online page
_KINDS = {"update": "update link", "pay": "pay link"}  # kind → what the buyer calls it


def _mac(payload: bytes, secret: str) -> str:
    digest = hmac.new(secret.encode(), payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _payload(kind: str, subject: str, expires: date) -> bytes:
    # an update link's payload has no kind in front: the links already sent stay valid
    prefix = "" if kind == "update" else f"{kind}|"
    return f"{prefix}{subject}|{expires.isoformat()}".encode()


def sign(subject: str, expires: date, secret: str, kind: str = "update") -> str:
    """A ``kind`` token naming ``subject`` (a subscription id, an invoice number), valid
    through ``expires``."""
    payload = _payload(kind, subject, expires)
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode() + "." + _mac(payload, secret)


def link(
    subject: str, on: date, days: int, secret: str, kind: str = "update"
) -> tuple[str, str, date]:
    """(token, path, last valid day) of a ``kind`` link made on ``on``, valid ``days`` days."""
    expires = on + timedelta(days=days)
    token = sign(subject, expires, secret, kind)
    return token, (UPDATE_URL if kind == "update" else PAY_URL).format(token=token), expires


def verify(token: str, secret: str, on: date, kind: str = "update") -> str:
    """The subject of a valid ``kind`` token; ``InvalidInput`` if forged or of another kind,
    ``InvalidState`` if expired (the link was good once: a new one is what the buyer needs)."""
    invalid = InvalidInput(f"this {_KINDS[kind]} is not valid")
    try:
        body, mac = token.split(".", 1)
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        subject, expires = payload.decode().rsplit("|", 1)
        valid_through = date.fromisoformat(expires)
    except (ValueError, UnicodeDecodeError):
        raise invalid from None
    if not hmac.compare_digest(mac, _mac(payload, secret)):
        raise invalid
    found = next((k for k in _KINDS if k != "update" and subject.startswith(f"{k}|")), "update")
    if found != kind:
        raise invalid
    if on > valid_through:
        raise InvalidState(f"this {_KINDS[kind]} expired on {valid_through}; ask for a new one")
    return subject.removeprefix(f"{kind}|") if kind != "update" else subject
