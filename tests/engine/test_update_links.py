"""Buyer-link tokens: one spelling per payload, signatures compared as bytes, clean errors."""

import base64
import hmac
from datetime import date

import pytest

from abonnement.engine import update_links
from abonnement.engine.update_links import link, sign, verify
from abonnement.errors import InvalidInput, InvalidState

SECRET = "k" * 32
ON = date(2026, 12, 9)


def _token(kind: str = "update", subject: str = "bob-coffee") -> str:
    return sign(kind, subject, date(2026, 12, 23), SECRET, "n0nce")


def test_a_token_names_its_kind_subject_and_last_day():
    token, url, expires = link("update", "bob-coffee", ON, 14, SECRET, "n0nce")
    assert (url, expires) == (f"/u/{token}", date(2026, 12, 23))  # a path on the server
    found = verify(token, SECRET, ON)
    assert (found.kind, found.subject, found.expires) == ("update", "bob-coffee", expires)
    assert len(found.digest) == 64 and found.digest not in token


def test_two_links_for_one_subject_are_two_uses():
    first = verify(sign("update", "a", ON, SECRET, "one"), SECRET, ON)
    second = verify(sign("update", "a", ON, SECRET, "two"), SECRET, ON)
    assert first.digest != second.digest


@pytest.mark.parametrize(
    "respell",
    [
        lambda t: t + "=",  # padding after the MAC
        lambda t: t.replace(".", "==.", 1),  # padding after the body
        lambda t: t.replace(".", "=.", 1),
        lambda t: t.replace("-", "+").replace("_", "/"),  # the standard alphabet
        lambda t: " " + t,
        lambda t: t + "\n",
        lambda t: t.upper(),
        lambda t: t.split(".")[0],  # no MAC
        lambda t: t + ".x",
    ],
)
def test_any_other_spelling_of_a_token_is_refused(respell):
    token = _token("update", "bob-coffee?>")  # a payload whose base64 has - and _
    assert "-" in token or "_" in token
    respelled = respell(token)
    assert respelled != token
    with pytest.raises(InvalidInput, match=r"^this update link is not valid$"):
        verify(respelled, SECRET, ON)


def test_trailing_bits_are_not_a_second_spelling():
    token = _token()
    body, mac = token.split(".")
    assert len(mac) % 4 == 3  # 32 bytes: the last character carries two unused bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(mac[-1]) ^ 1]  # the same 6-bit group but the lowest bit
    respelled = f"{body}.{mac[:-1]}{twin}"
    assert base64.urlsafe_b64decode(mac + "=") == base64.urlsafe_b64decode(respelled[-43:] + "=")
    with pytest.raises(InvalidInput, match="not valid"):
        verify(respelled, SECRET, ON)


@pytest.mark.parametrize("token", ["dXBk\u00e9.abc", "\u2603", "", ".", "é" * 10, "a.b.c"])
def test_a_token_that_is_not_ascii_or_not_a_token_is_a_clean_error(token):
    with pytest.raises(InvalidInput, match=r"^this update link is not valid$"):
        verify(token, SECRET, ON)


def test_a_forged_an_expired_and_a_foreign_kind_token_are_refused():
    with pytest.raises(InvalidInput, match="not valid"):
        verify(_token(), "o" * 32, ON)
    with pytest.raises(InvalidState, match="expired on 2026-12-23; ask for a new one"):
        verify(_token(), SECRET, date(2026, 12, 24))
    with pytest.raises(InvalidInput, match=r"^this pay link is not valid$"):
        verify(_token("update"), SECRET, ON, "pay")


def test_the_signature_is_compared_in_constant_time_as_bytes(monkeypatch):
    seen = []
    original = hmac.compare_digest

    def compare(a, b):
        seen.append((type(a), type(b)))
        return original(a, b)

    monkeypatch.setattr(update_links.hmac, "compare_digest", compare)
    verify(_token(), SECRET, ON)
    assert seen == [(bytes, bytes)]


@pytest.mark.parametrize("secret", ["", "s3cret", "k" * 31, b"k" * 31])
def test_a_secret_shorter_than_32_bytes_is_refused(secret):
    with pytest.raises(InvalidInput, match="bytes long; links need at least 32"):
        sign("update", "a", ON, secret, "n")
    with pytest.raises(InvalidInput, match="bytes long; links need at least 32"):
        verify(_token(), secret, ON)
