"""What a buyer page says when it cannot do what was asked: the same link bought again on
the same day (the first purchase's receipt again, in the buyer's browser; a plain
explanation elsewhere), a pay or update link spent meanwhile, a collection under way —
each in the buyer's language, never an error's internal English text. The API answers a
repeated checkout with a stable code and the invoice of the first purchase."""

import re
from datetime import date

import pytest

from abonnement.errors import AlreadyCollecting, InvalidInput, InvalidState
from abonnement.operations import payments
from tests.server import test_pages
from tests.server.shop import text_of
from tests.server.test_pages import _pay_url

open_invoice, arrears = test_pages.open_invoice, test_pages.arrears  # the pages' fixtures

ENGLISH_INSIDE = ("already done", "records this purchase", "exists", "already used",
                  "no longer valid:", "collecting")  # fmt: skip


def _no_internal_text(html: str) -> None:
    text = text_of(html)
    for words in ENGLISH_INSIDE:
        assert words not in text, words


def test_the_same_buyer_back_the_same_day_sees_the_first_receipt_and_is_not_charged(shop):
    first = shop.form("/l/coffee-monthly", name="Ada Lovelace", email="ada@example.org",
                      card="tok_visa")  # fmt: skip
    assert first.status_code == 200
    again = shop.form("/l/coffee-monthly", name="Ada Lovelace", email="ada@example.org",
                      card="tok_visa")  # fmt: skip
    assert again.status_code == 409
    text = text_of(again.text)
    assert "You already bought this today" in text
    assert ("Nothing was charged again: this is the receipt of your purchase of "
            "December 1, 2026. It was sent to ada@example.org.") in text  # fmt: skip
    assert "Invoice INV-00001 · December 1, 2026" in text
    assert "monthly; next payment January 1, 2027" in text
    _no_internal_text(again.text)
    assert [c[1:3] for c in shop.charges()] == [("25.00", "succeeded")]
    assert len(shop.cli("invoices", "list")) == 1
    shop.today = date(2026, 12, 2)  # another day: another purchase
    assert shop.form("/l/coffee-monthly", name="Ada Lovelace", email="ada@example.org",
                     card="tok_visa").status_code == 200  # fmt: skip


@pytest.mark.parametrize(("lang", "title", "said"), [
    ("en", "Already bought today", "A payment link is bought once a day by each buyer"),
    ("da", "Allerede købt i dag", "så der blev ikke trukket noget nu"),
    ("de", "Heute bereits gekauft", "daher wurde jetzt nichts abgebucht"),
    ("fr", "Déjà acheté aujourd’hui", "rien n’a donc été débité maintenant"),
    ("es", "Ya comprado hoy", "así que ahora no se cobró nada"),
])  # fmt: skip
def test_the_same_e_mail_from_another_browser_is_told_plainly_without_the_receipt(
    shop, lang, title, said
):
    assert shop.form("/l/coffee-monthly", name="Ada", email="ada@example.org",
                     card="tok_visa").status_code == 200  # fmt: skip
    shop.client.cookies.clear()  # another browser: it holds no purchase of ours
    path = f"/l/coffee-monthly?lang={lang}"
    page = shop.client.get(path)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    again = shop.client.post(path, data={"csrf_token": token, "name": "Ada",
                                         "email": "ada@example.org", "card": "tok_visa"})  # fmt: skip
    assert again.status_code == 409
    text = text_of(again.text)
    assert title in text and said in text
    assert "INV-00001" not in again.text  # the first purchase is its buyer's to see
    _no_internal_text(again.text)
    assert len(shop.charges()) == 1


def test_a_forged_bought_cookie_shows_no_receipt(shop):
    shop.form("/l/coffee-monthly", name="Ada", email="ada@example.org", card="tok_visa")
    shop.client.cookies.set("abonnement_bought", "INV-00001." + "0" * 32)
    again = shop.form("/l/coffee-monthly", name="Ada", email="ada@example.org", card="tok_visa")
    assert again.status_code == 409 and "INV-00001" not in again.text


@pytest.mark.parametrize(("refused", "said"), [
    (InvalidState("this pay link was already used"),
     "This link was used already or is no longer valid. Nothing was charged with it."),
    (AlreadyCollecting("invoice INV-00001 is being collected by another caller"),
     "A payment of this invoice is being processed right now. Nothing more will be charged"),
    (InvalidInput("the processor refused token `x`: no such token"),
     "This card could not be used. Nothing was charged. Try another card."),
])  # fmt: skip
def test_a_refused_invoice_payment_is_explained_in_the_buyer_s_words(
    open_invoice,
    monkeypatch,
    refused,
    said,
):
    def refuse(*_args, **_kwargs):
        raise refused

    path = _pay_url(open_invoice)
    monkeypatch.setattr(payments, "pay_through_link", refuse)
    page = open_invoice.form(path, card="tok_visa")
    assert page.status_code == refused.http_status
    assert said in text_of(page.text)
    assert str(refused) not in page.text
    _no_internal_text(page.text)
    de = open_invoice.form(path + "?lang=de", card="tok_visa")
    assert "abgebucht" in text_of(de.text)  # said in German


def test_an_empty_card_on_the_invoice_page_asks_for_one(open_invoice):
    page = open_invoice.form(_pay_url(open_invoice), card=" ")
    assert page.status_code == 422 and "Enter a card." in text_of(page.text)


def test_a_refused_card_update_is_explained_in_the_buyer_s_words(arrears, monkeypatch):
    s = arrears
    mail = [m for m in s.mails() if m["To"] == "bob@example.com"][-1]
    path = re.search(r"http://localhost:8000(/u/\S+)",
                     mail.get_body(("plain",)).get_content()).group(1)  # fmt: skip
    empty = s.form(path, card="")
    assert empty.status_code == 422 and "Enter a card." in text_of(empty.text)

    def refuse(*_args, **_kwargs):
        raise InvalidState("this update link is no longer valid: the subscription has ended")

    monkeypatch.setattr(payments, "update_payment_method", refuse)
    page = s.form(path + "?lang=fr", card="tok_visa")
    assert page.status_code == 409
    assert "Ce lien a déjà été utilisé ou n’est plus valide." in text_of(page.text)
    _no_internal_text(page.text)


def test_the_api_answers_a_repeated_checkout_with_a_stable_code_and_the_first_invoice(shop):
    from tests.server.test_api import _key

    _key(shop)
    body = {"link_id": "coffee-monthly", "contact_id": "bob", "card": "tok_visa",
            "as_of": "2026-12-01"}  # fmt: skip
    first = shop.client.post("/api/v1/checkouts", json=body)
    assert first.status_code == 201
    again = shop.client.post("/api/v1/checkouts", json=body)
    assert again.status_code == 409
    error = again.json()["error"]
    assert (error["code"], error["invoice"], error["field"]) == (
        "already_purchased", first.json()["invoice"], None)  # fmt: skip
    assert len(shop.charges()) == 1


def test_a_refusal_is_told_by_its_kind_not_by_its_wording():
    """Below the minimum and "not by card" are both collection refusals; the page tells them
    apart by the error's class, whatever its (English) message says."""
    from abonnement.errors import BelowMinimumCharge, CollectionError
    from abonnement.server.pages import _refusal

    assert _refusal(BelowMinimumCharge("a purchase must charge at least 0.50 USD now")) == (
        "problem:below_minimum"
    )
    assert _refusal(CollectionError("charge at least something else")) == "problem:not_by_card"
    assert BelowMinimumCharge.code == CollectionError.code == "collection_refused"
