"""Signed, expiring, single-use buyer links (F17): payment-method update links and invoice
pay links. Pure: the secret, the date and the nonce come in; whether a link was used already is
the caller's to record (``Verified.digest`` names the use).

A token is ``BODY.MAC``: ``BODY`` is the payload ``KIND|SUBJECT|EXPIRES|NONCE`` and ``MAC`` its
HMAC-SHA256, both base64url without padding. Exactly one spelling of a payload is accepted:
padding, the standard alphabet, stray characters or non-zero trailing bits are refused, so a
token cannot be re-spelled into a second "unused" token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import date, timedelta

from abonnement.errors import InvalidInput, InvalidState

__all__ = [
    "KINDS",
    "MIN_SECRET_BYTES",
    "PAY_URL",
    "UPDATE_URL",
    "Verified",
    "check_secret",
    "link",
    "sign",
    "verify",
]

# paths on the server buyers reach (``abonnement serve``); the operations put
# ``settings.server.public_url`` in front
UPDATE_URL = "/u/{token}"  # the payment-method update page
PAY_URL = "/i/{token}"  # an invoice's pay-online page
KINDS = {"update": "update link", "pay": "pay link"}  # kind → what the buyer calls it
MIN_SECRET_BYTES = 32  # HMAC-SHA256's own output size: a shorter key is guessable sooner

# base64url without padding: whole 4-character groups, then nothing or 2 or 3 characters
_B64URL = re.compile(r"(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?")


@dataclass(frozen=True, slots=True)
class Verified:
    """A token that passed its signature and date checks.

    ``kind``: ``update`` or ``pay``; ``subject``: the subscription id or invoice number;
    ``expires``: the last valid day; ``digest``: SHA-256 hex of the payload, what a use is
    recorded under (never the token itself)."""

    kind: str
    subject: str
    expires: date
    digest: str


def check_secret(secret: str | bytes, source: str = "the link secret") -> bytes:
    """``secret`` as bytes; ``InvalidInput`` naming ``source`` (where it came from) when
    shorter than ``MIN_SECRET_BYTES``."""
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_SECRET_BYTES:
        raise InvalidInput(
            f"{source} is {len(key)} bytes long; links need at least {MIN_SECRET_BYTES} "
            "(python -c 'import secrets; print(secrets.token_urlsafe(32))' makes one)"
        )
    return key


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    """The bytes of canonical unpadded base64url ``text``; ``ValueError`` for any other form."""
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _encode(data) != text:  # trailing bits set: a second spelling of the same bytes
        raise ValueError("not canonical")
    return data


def _mac(payload: bytes, key: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()


def sign(kind: str, subject: str, expires: date, secret: str | bytes, nonce: str) -> str:
    """A ``kind`` token for ``subject``, valid through ``expires``. ``nonce`` (a few random
    URL-safe characters, no ``|``) makes two links for one subject two uses."""
    if kind not in KINDS or "|" in nonce or not nonce:
        raise ValueError(f"bad link kind {kind!r} or nonce {nonce!r}")
    payload = f"{kind}|{subject}|{expires.isoformat()}|{nonce}".encode()
    return _encode(payload) + "." + _encode(_mac(payload, check_secret(secret)))


def link(
    kind: str, subject: str, on: date, days: int, secret: str | bytes, nonce: str
) -> tuple[str, str, date]:
    """(token, path, last valid day) of a ``kind`` link made on ``on``, valid ``days`` days."""
    expires = on + timedelta(days=days)
    token = sign(kind, subject, expires, secret, nonce)
    url = (UPDATE_URL if kind == "update" else PAY_URL).format(token=token)
    return token, url, expires


def verify(token: str, secret: str | bytes, on: date, kind: str = "update") -> Verified:
    """The subject of a valid ``kind`` token. ``InvalidInput`` if malformed, forged, of
    another kind or not ASCII; ``InvalidState`` if expired (the link was good once: a new one
    is what the buyer needs). Whether it was used already is for the caller to check."""
    key = check_secret(secret)
    invalid = InvalidInput(f"this {KINDS[kind]} is not valid")
    if not isinstance(token, str) or not token.isascii():
        raise invalid
    try:
        body, mac = token.split(".", 1)
        payload, signature = _decode(body), _decode(mac)
    except (ValueError, binascii.Error):
        raise invalid from None
    # compared as bytes, in constant time, before anything in the payload is believed
    if not hmac.compare_digest(signature, _mac(payload, key)):
        raise invalid
    try:
        found, rest = payload.decode("utf-8").split("|", 1)
        subject, expires, _nonce = rest.rsplit("|", 2)
        valid_through = date.fromisoformat(expires)
    except ValueError:  # UnicodeDecodeError is one
        raise invalid from None
    if found != kind:
        raise invalid
    if on > valid_through:
        raise InvalidState(f"this {KINDS[kind]} expired on {valid_through}; ask for a new one")
    return Verified(kind, subject, valid_through, hashlib.sha256(payload).hexdigest())
