"""Buyer pages through the app in-process: a payment link bought by a new buyer, a decline
that keeps the form, an invoice paid online, an update link collecting arrears; bad, expired
and tampered links; CSRF refusals; languages."""

import re
from datetime import date, timedelta

import pytest

from abonnement.operations.payments import PAY_LINK_DAYS
from tests.acceptance.test_collection_scenarios import BOB_CARD, BOB_SAVED
from tests.conftest import run
from tests.server.shop import LINK_SECRET, Shop, text_of

BOB_MANUAL = """\
  - id: bob-manual
    contact: bob
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 1}]
    collection: {mode: manual, payment_terms: net_30}
"""


def test_the_link_page_shows_the_items_the_summary_and_the_form(shop):
    page = shop.client.get("/l/coffee-monthly")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "1 KG monthly coffee bean subscription" in text
    assert "Just one more cup - 1 KG Subscription $25.00 Due now $25.00" in text
    assert "Then $25.00 monthly, until cancelled" in text
    assert "Total: renews until cancelled" in text
    assert '<button type="submit">Subscribe now and save</button>' in page.text
    assert re.search(r'name="csrf_token" value="\d+\.[0-9a-f]{64}"', page.text)
    assert "abonnement_csrf" in page.headers["set-cookie"]
    assert "<script" not in page.text  # works without JavaScript


def test_a_new_buyer_buys_the_link_is_stored_as_a_contact_and_gets_the_receipt(shop):
    done = shop.form("/l/coffee-monthly", name="Ada Lovelace", email="Ada@Example.org",
                     card="tok_visa")  # fmt: skip
    assert done.status_code == 200, text_of(done.text)
    text = text_of(done.text)
    assert "Thank you! Your payment of $25.00 was received." in text
    assert "A receipt was sent to Ada@Example.org." in text
    assert "Invoice INV-00001 · December 1, 2026" in text
    assert "monthly; next payment January 1, 2027" in text
    (sub,) = shop.cli("subscriptions", "list")
    assert (sub["id"], sub["contact_id"], sub["status"]) == (
        "coffee-monthly-ada-20261201-1", "ada", "active")  # fmt: skip
    assert shop.cli("invoices", "show", "INV-00001")["status"] == "paid"
    receipts = [m for m in shop.mails() if m["To"] == "Ada@Example.org"]
    assert [m["Subject"] for m in receipts] == [
        "Receipt for your payment to Just One More Cup Coffee Co."
    ]
    # the stored buyer is the contact the invoice is addressed to
    html = run("--config", str(shop.config), "--db", shop.db_url, "invoices", "render",
               "INV-00001").stdout  # fmt: skip
    assert "Ada Lovelace" in html and "Ada@Example.org" in html


def test_a_buyer_is_matched_by_e_mail_among_the_config_s_contacts_and_the_stored_ones(shop):
    assert shop.form("/l/coffee-monthly", name="Robert", email="BOB@example.com",
                     card="tok_visa").status_code == 200  # fmt: skip
    shop.today = date(2026, 12, 2)
    shop.form("/l/coffee-monthly", name="Ada", email="ada@example.org", card="tok_visa")
    shop.today = date(2026, 12, 3)
    shop.form("/l/coffee-monthly", name="Ada L.", email="ada@EXAMPLE.org", card="tok_visa")
    subs = shop.cli("subscriptions", "list")
    assert [(s["id"], s["contact_id"]) for s in subs] == [
        ("coffee-monthly-ada-20261202-1", "ada"),
        ("coffee-monthly-ada-20261203-1", "ada"),
        ("coffee-monthly-bob-20261201-1", "bob"),
    ]


def test_a_decline_shows_the_reason_and_keeps_the_form_filled(shop):
    page = shop.form("/l/coffee-monthly", name="Ada Lovelace", email="ada@example.org",
                     card="tok_insufficient_funds")  # fmt: skip
    assert page.status_code == 402
    assert ("Your card was declined: insufficient funds. Nothing was charged. Try another card."
            in text_of(page.text))  # fmt: skip
    assert 'name="name" autocomplete="name" required value="Ada Lovelace"' in page.text
    assert 'value="ada@example.org"' in page.text
    assert (
        '<input type="text" id="card" name="card" autocomplete="off" required spellcheck="false">'
        in page.text
    )  # the card is not kept
    assert shop.cli("invoices", "list") == [] and shop.charges() == []
    # another card on the same page works
    assert shop.form("/l/coffee-monthly", name="Ada Lovelace", email="ada@example.org",
                     card="tok_visa").status_code == 200  # fmt: skip


@pytest.mark.parametrize(("fields", "message"), [
    ({"name": " ", "email": "ada@example.org"}, "Enter your name."),
    ({"name": "Ada", "email": "ada-at-example"}, "Enter a valid e-mail address."),
    ({"name": "Ada", "email": "ada@example.org", "card": ""}, "Enter a card."),
    # control characters would reach mail headers and logs
    ({"name": "Ada", "email": "nul\x00@example.org"}, "Enter a valid e-mail address."),
    ({"name": "A\x01da", "email": "ada@example.org"}, "Enter your name."),
])  # fmt: skip
def test_missing_details_are_named_and_nothing_is_bought(shop, fields, message):
    page = shop.form("/l/coffee-monthly", **{"card": "tok_visa", **fields})
    assert page.status_code == 422
    assert re.search(r'<div class="error" role="alert">\s*' + re.escape(message), page.text)
    assert shop.cli("subscriptions", "list") == []


def test_a_link_that_asks_for_the_billing_address_puts_it_on_the_invoice(shop):
    page = shop.form("/l/grinder-shop", name="Ada", email="ada@example.org", card="tok_visa")
    assert page.status_code == 422 and "Enter the billing address." in page.text
    done = shop.form("/l/grinder-shop", name="Ada", email="ada@example.org", card="tok_visa",
                     line1="12 Rue de Rivoli", postal_code="75001", city="Paris",
                     country="fr")  # fmt: skip
    assert done.status_code == 200, text_of(done.text)
    html = run("--config", str(shop.config), "--db", shop.db_url, "invoices", "render",
               "INV-00001").stdout  # fmt: skip
    assert "12 Rue de Rivoli" in html and "75001 Paris" in html and "France" in html


def test_a_link_that_asks_where_to_ship_keeps_the_address_on_the_subscription(shop):
    page = shop.client.get("/l/coffee-shipped")
    assert '<h2 style="margin-top:1.25rem">Shipping address</h2>' in page.text
    assert ('<input type="text" id="shipping_line1" name="shipping_line1" '
            'autocomplete="shipping address-line1" value="">') in page.text  # fmt: skip
    assert 'name="line1"' not in page.text  # no billing address asked
    german = shop.client.get("/l/coffee-shipped", headers={"Accept-Language": "de"})
    assert ">Lieferadresse</h2>" in german.text
    buyer = {"name": "Ada", "email": "ada@example.org", "card": "tok_visa"}
    missing = shop.form("/l/coffee-shipped", **buyer, shipping_line1="12 Rue de Rivoli",
                        shipping_city="Paris", shipping_country="France")  # fmt: skip
    assert missing.status_code == 422 and "Enter the shipping address." in missing.text
    assert (
        'name="shipping_line1" autocomplete="shipping address-line1" value="12 Rue de Rivoli"'
        in missing.text
    )
    assert shop.cli("subscriptions", "list") == [] and shop.charges() == []
    done = shop.form("/l/coffee-shipped", **buyer, shipping_line1="12 Rue de Rivoli",
                     shipping_line2="Bâtiment B", shipping_postal_code="75001",
                     shipping_city="Paris", shipping_country="fr")  # fmt: skip
    assert done.status_code == 200, text_of(done.text)
    (sub,) = shop.cli("subscriptions", "list")
    assert sub["properties"] == {"shipping_address": {
        "country": "FR", "line1": "12 Rue de Rivoli", "line2": "Bâtiment B", "city": "Paris",
        "postal_code": "75001"}}  # fmt: skip
    assert shop.subscription(sub["id"])["properties"] == sub["properties"]


def test_a_form_without_our_csrf_token_is_refused_and_nothing_is_bought(shop):
    fields = {"name": "Ada", "email": "ada@example.org", "card": "tok_visa"}
    missing = shop.client.post("/l/coffee-monthly", data=fields)
    assert missing.status_code == 403 and "This form has expired" in missing.text
    page = shop.client.get("/l/coffee-monthly")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    other_digit = "1" if token.endswith("0") else "0"
    forged = shop.client.post(
        "/l/coffee-monthly", data={**fields, "csrf_token": token[:-1] + other_digit}
    )
    other_form = shop.client.post("/l/grinder-shop", data={**fields, "csrf_token": token})
    shop.client.cookies.clear()  # another browser: the token is not its
    elsewhere = shop.client.post("/l/coffee-monthly", data={**fields, "csrf_token": token})
    assert [forged.status_code, other_form.status_code, elsewhere.status_code] == [403] * 3
    assert shop.cli("subscriptions", "list") == [] and shop.charges() == []


def test_pages_speak_the_buyer_s_language(shop):
    danish = shop.client.get("/l/coffee-monthly", headers={"Accept-Language": "da-DK,da;q=0.9"})
    assert '<html lang="da">' in danish.text and "Til betaling nu" in danish.text
    french = shop.client.get("/l/coffee-monthly?lang=fr")
    assert "À payer maintenant" in french.text and "jusqu’à résiliation" in french.text
    assert '<html lang="en">' in shop.client.get("/l/coffee-monthly",
                                                 headers={"Accept-Language": "sv"}).text  # fmt: skip


def test_an_unknown_page_or_link_is_the_friendly_404(shop):
    for path in ("/l/no-such-link", "/nowhere", "/i/", "/u/x.y"):
        page = shop.client.get(path)
        assert page.status_code == 404, path
        assert "This link is no longer valid" in page.text and "Traceback" not in page.text


def _pay_url(shop: Shop) -> str:
    html = run("--config", str(shop.config), "--db", shop.db_url, "invoices", "render",
               "INV-00001").stdout  # fmt: skip
    return re.search(r'href="http://localhost:8000(/i/[^"]+)"', html).group(1)


@pytest.fixture
def open_invoice(tmp_path, monkeypatch):
    s = Shop(tmp_path, f"sqlite:///{tmp_path / 'abonnement.db'}", monkeypatch,
             subscriptions=BOB_MANUAL)  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")
    s.today = date(2026, 12, 5)
    yield s
    s.close()


def test_an_open_invoice_is_shown_and_paid_online_then_its_link_is_spent(open_invoice):
    s = open_invoice
    path = _pay_url(s)
    page = s.client.get(path)
    assert page.status_code == 200
    text = text_of(page.text)
    assert "Invoice INV-00001 Amount due $25.00 Due date December 31, 2026" in text
    document = s.client.get(path + "/document")
    assert document.status_code == 200 and "<h1>Invoice</h1>" in document.text
    declined = s.form(path, card="tok_lost_card")
    assert declined.status_code == 402
    assert "Your card was declined: the card was reported lost." in text_of(declined.text)
    assert s.cli("invoices", "show", "INV-00001")["status"] == "open"
    paid = s.form(path, card="tok_visa")
    assert paid.status_code == 200
    assert "Thank you! Invoice INV-00001 is paid: $25.00." in text_of(paid.text)
    assert s.cli("invoices", "show", "INV-00001")["status"] == "paid"
    for spent in (path, path + "/document", path + "/pdf"):
        assert s.client.get(spent).status_code == 404
    assert s.client.post(path, data={"card": "tok_visa"}).status_code == 404


def test_the_invoice_pdf_downloads(open_invoice):
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError) as exc:
        pytest.skip(f"PDF rendering needs WeasyPrint and Pango: {exc}")
    pdf = open_invoice.client.get(_pay_url(open_invoice) + "/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert pdf.headers["content-disposition"] == 'attachment; filename="INV-00001.pdf"'


def test_a_tampered_expired_or_other_kind_of_invoice_link_is_a_404(open_invoice):
    s = open_invoice
    path = _pay_url(s)
    body, mac = path.removeprefix("/i/").split(".")
    tampered = ["/i/" + body + "." + mac[:-1] + ("A" if mac[-1] != "A" else "B"),
                "/i/" + body[:-2] + "." + mac, "/i/" + body, "/i/%00"]  # fmt: skip
    for bad in tampered:
        page = s.client.get(bad)
        assert page.status_code == 404 and "This link is no longer valid" in page.text, bad
    update = s.cli("payment-methods", "update-link", "bob-manual", "--as-of", "2026-12-05")
    assert s.client.get("/i/" + update["token"]).status_code == 404  # an update link's token
    s.today = date(2026, 12, 1) + timedelta(days=PAY_LINK_DAYS + 1)
    assert s.client.get(path).status_code == 404


@pytest.fixture
def arrears(tmp_path, monkeypatch):
    s = Shop(tmp_path, f"sqlite:///{tmp_path / 'abonnement.db'}", monkeypatch,
             subscriptions=BOB_SAVED,
             replace={BOB_CARD: BOB_CARD.replace("tok_visa", "tok_insufficient_funds")})  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-09")
    s.today = date(2026, 12, 10)
    yield s
    s.close()


def test_the_update_link_page_saves_the_card_and_collects_what_is_past_due(arrears):
    s = arrears
    mail = [m for m in s.mails() if m["To"] == "bob@example.com"][-1]
    url = re.search(r"http://localhost:8000(/u/\S+)", mail.get_body(("plain",)).get_content())
    path = url.group(1)
    page = s.client.get(path)
    assert page.status_code == 200
    text = text_of(page.text)
    assert "Hello Bob Smith," in text
    assert "$25.00 is past due. It is charged to the new card right away." in text
    assert "Save card and pay $25.00" in text
    done = s.form(path, card="tok_visa")
    assert done.status_code == 200
    assert "Your card is saved We collected: Invoice INV-00001 $25.00" in text_of(done.text)
    assert s.subscription("bob-coffee")["status"] == "active"
    assert s.cli("invoices", "show", "INV-00001")["status"] == "paid"
    again = s.client.get(path)  # the link works once
    assert again.status_code == 404 and "This link is no longer valid" in again.text


def test_a_tampered_or_expired_update_link_is_a_404(arrears):
    s = arrears
    link = s.cli("payment-methods", "update-link", "bob-coffee", "--as-of", "2026-12-09")
    token = link["token"]
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), token.split(".")[0], "nope"):
        assert s.client.get("/u/" + bad).status_code == 404
        assert s.client.post("/u/" + bad, data={"card": "tok_visa"}).status_code == 404
    s.today = date(2026, 12, 24)  # valid through 2026-12-23
    page = s.client.get("/u/" + token)
    assert page.status_code == 404 and "This link is no longer valid" in page.text
    assert s.subscription("bob-coffee")["status"] == "unpaid"


def test_a_crash_is_an_apology_never_a_traceback(shop, monkeypatch):
    from fastapi.testclient import TestClient

    from abonnement.operations import purchases

    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(purchases, "quote_link", broken)
    client = TestClient(shop.client.app, raise_server_exceptions=False)
    page = client.get("/l/coffee-monthly")
    assert page.status_code == 500
    assert "Something went wrong" in page.text and "a bug" not in page.text


def test_the_link_secret_signs_what_the_pages_open(open_invoice):
    # the pay link is signed with ABONNEMENT_LINK_SECRET: another secret cannot open it
    assert LINK_SECRET in open_invoice.project.context.link_secret()


def test_a_card_declined_on_an_invoice_page_leaves_the_subscription_billing(open_invoice):
    """A payment made by hand that fails (the buyer on the invoice's page) is no automatic
    charge: the invoice stays open, the subscription active (``unpaid`` is an automatic
    charge that failed), the next invoice comes on its date, and the buyer — who saw the
    decline — gets no "update your payment method" e-mail; the admins hear of it."""
    s = open_invoice
    before = len(s.mails())
    assert s.form(_pay_url(s), card="tok_insufficient_funds").status_code == 402
    assert s.cli("subscriptions", "show", "bob-manual")["status"] == "active"
    assert s.cli("invoices", "show", "INV-00001")["status"] == "open"
    new = s.mails()[before:]
    assert [m["To"] for m in new] == ["billing@example.com"]
    assert new[0]["Subject"].startswith("Payment failed")
    s.cli("run", "--until", "2027-01-01")
    assert [i["number"] for i in s.cli("invoices", "list")] == ["INV-00001", "INV-00002"]
    assert s.cli("subscriptions", "show", "bob-manual")["status"] == "past_due"  # after Dec 31


def test_invoice_overdue_names_the_invoice_and_its_due_date(open_invoice):
    """A webhook receiver reads which invoice is overdue from the event itself."""
    s = open_invoice
    s.cli("run", "--until", "2027-01-01")
    overdue = [e for e in s.cli("events", "list") if e["type"] == "invoice.overdue"]
    assert [e["data"] for e in overdue] == [{"invoice": "INV-00001", "due_date": "2026-12-31"}]


def test_a_bank_debit_paid_on_the_invoice_page_is_processing_then_settles_with_no_overdue(
    open_invoice,
):
    """A bank debit given on the invoice's page is on its way, not declined: the page says so
    (202); when it settles the invoice is paid and the subscription's due date read again: no
    ``invoice.overdue`` and no ``past_due`` after the date it was due."""
    s = open_invoice
    page = s.form(_pay_url(s), card="tok_ach")
    assert page.status_code == 202
    assert "A payment of this invoice is being processed right now" in text_of(page.text)
    assert s.cli("invoices", "show", "INV-00001")["status"] == "open"
    s.cli("run", "--until", "2027-01-02")
    assert s.cli("invoices", "show", "INV-00001")["status"] == "paid"
    assert s.cli("subscriptions", "show", "bob-manual")["status"] == "active"
    assert [e for e in s.cli("events", "list") if e["type"] == "invoice.overdue"] == []
