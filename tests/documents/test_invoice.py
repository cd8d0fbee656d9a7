"""Invoice documents: S9 as a Danish PDF, an English HTML invoice, template overrides, catalogs."""

from decimal import Decimal
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from abonnement.documents.i18n import LANGUAGES, Formatter, address_lines, translations
from abonnement.engine.catalog import Address
from tests.acceptance.scenario import Scenario
from tests.acceptance.test_billing_scenarios import S9
from tests.conftest import ROOT, run

DOCUMENTS = ROOT / "abonnement" / "documents"


def issued(tmp_path: Path, subscriptions: str = S9) -> Scenario:
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'abonnement.db'}", subscriptions=subscriptions)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")
    return s


@pytest.fixture
def s9(tmp_path: Path) -> Scenario:
    return issued(tmp_path)


LINK_SECRET = {"ABONNEMENT_LINK_SECRET": "a-link-secret-of-32-bytes-or-more-000"}


def render(s: Scenario, *args: str) -> bytes:
    result = run("--config", str(s.config), "--db", s.db_url, "invoices", "render", *args,
                 env=LINK_SECRET)  # fmt: skip
    assert result.exit_code == 0, result.output + result.stderr
    return result.stdout_bytes


def test_s9_as_a_danish_pdf(s9, tmp_path):
    pypdf = pytest.importorskip("pypdf")
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError) as exc:  # not installed, or no Pango on this machine
        pytest.skip(f"PDF rendering needs WeasyPrint and Pango: {exc}")
    target = tmp_path / "INV-00001.pdf"
    render(s9, "INV-00001", "--format", "pdf", "-o", str(target))
    assert target.read_bytes().startswith(b"%PDF-")
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(target).pages)
    text = text.replace("\xa0", " ").replace("\u202f", " ")  # babel's no-break spaces
    for expected in (
        "Faktura",
        "Fakturanummer INV-00001",
        "Fakturadato 1. december 2026",
        "Forfaldsdato 31. december 2026",
        "Periode 1. december 2026 – 31. december 2026",
        "ACME ApS",
        "1165 København",
        "Danmark",
        "Cloud storage (GB) STORAGE-GB 6.000 0,06 USD 360,00 USD",
        "Premium support 1 99,00 USD 99,00 USD",
        "Rabat 10 % −9,90 USD",
        "Moms 25 % 22,28 USD",
        "Subtotal 459,00 USD",
        "I alt 471,38 USD",
        "Skyldigt beløb 471,38 USD",
        "Netto 30 dage",
        "http://localhost:8000/i/",  # settings.server.public_url: the invoice's pay link
        "PO 1234",
        "EIN 12-3456789",
    ):
        assert expected in text, expected


def test_english_html_with_the_totals_and_no_pay_link_once_paid(tmp_path):
    s = issued(tmp_path, S9.replace("language: da, locale: da_DK", "language: en"))
    s.cli("invoices", "pay", "INV-00001", "--as-of", "2026-12-05")
    html = render(s, "INV-00001").decode()
    assert '<html lang="en">' in html
    for expected in (
        "<h1>Invoice</h1>",
        "December 1, 2026",
        "$360.00",
        "−$9.90",
        "Moms 25%",
        "$471.38",  # total and amount paid
        "Amount paid",
        "Net 30 days",
        "Paid",
    ):
        assert expected in html, expected
    assert 'Amount due</td><td class="num">$0.00' in html
    assert "/i/" not in html and "Pay online" not in html
    # the document is fixed when the invoice is issued: a later config change does not move it
    english = s.config / "abonnement.yaml"
    english.write_text(english.read_text().replace("language: en", "language: de"))
    assert render(s, "INV-00001").decode() == html


def test_a_template_in_the_config_replaces_the_builtin_one(s9):
    (s9.config / "templates").mkdir()
    (s9.config / "templates" / "invoice.html").write_text(
        "{{ invoice.number }} {{ _('Total') }} {{ money(invoice.total) }}"
    )
    assert render(s9, "INV-00001").decode() == "INV-00001 I alt 471,38\xa0USD"


def test_a_broken_template_and_an_unknown_invoice_are_clean_errors(s9):
    (s9.config / "templates").mkdir()
    (s9.config / "templates" / "invoice.html").write_text("{{ nonsense.field }}")
    result = run("--config", str(s9.config), "--db", s9.db_url, "invoices", "render", "INV-00001")
    assert result.exit_code == 1
    assert "invoice template" in result.stderr and "nonsense" in result.stderr
    result = run("--config", str(s9.config), "--db", s9.db_url, "invoices", "render", "INV-9")
    assert (result.exit_code, result.stderr.strip()) == (3, "error: no invoice `INV-9`")
    (s9.config / "templates" / "invoice.html").unlink()
    result = run("--config", str(s9.config), "--db", s9.db_url, "invoices", "render",
                 "INV-00001", "-o", "/nonexistent/dir/x.html")  # fmt: skip
    assert result.exit_code == 1 and "cannot write /nonexistent/dir/x.html" in result.stderr


def test_every_template_string_is_translated_in_every_language():
    methods = [("**.html", "jinja2"), ("**.txt", "jinja2")]
    found = set()
    # the documents', the messages' and the buyer pages' templates share the catalogs
    for folder in (DOCUMENTS / "templates", ROOT / "abonnement" / "server" / "templates"):
        found |= {found[2] for found in extract_from_dir(str(folder), method_map=methods)}
    assert {"Invoice", "Net %(days)s days", "Uncollectible", "Thank you!",
            "This link is no longer valid", "Due now"} <= found  # fmt: skip
    for language in LANGUAGES[1:]:
        po = DOCUMENTS / "locale" / language / "LC_MESSAGES" / "abonnement.po"
        with po.open("rb") as source:
            catalog = read_po(source)
        translated = {m.id for m in catalog if m.id and m.string}
        assert found <= translated, (language, sorted(found - translated))


@pytest.mark.parametrize(
    "locale, currency, expected",
    [
        ("en_US", "USD", "$1,234.50"),  # a currency at home: its local sign
        ("da_DK", "DKK", "1.234,50\xa0kr."),
        ("de_DE", "EUR", "1.234,50\xa0€"),
        ("en_GB", "GBP", "£1,234.50"),
        ("da_DK", "USD", "1.234,50\xa0USD"),  # abroad: the ISO code (CLDR 46 said US$)
        ("de_DE", "USD", "1.234,50\xa0USD"),  # CLDR says "$": ambiguous on a German invoice
        ("en_GB", "USD", "USD\xa01,234.50"),  # a code before digits keeps a space
        ("en_US", "JPY", "JPY\xa01,234"),  # no minor unit: 1234 yen (amounts come rounded)
        ("da", "DKK", "1.234,50\xa0DKK"),  # a language without a country: codes only
        # ISO 4217's decimals, where CLDR's display digits differ (it shows HUF, IDR and COP
        # without decimals): the document shows what the invoice counts
        ("en_US", "HUF", "HUF\xa01,234.50"),
        ("de_DE", "IDR", "1.234,50\xa0IDR"),
        ("da_DK", "COP", "1.234,50\xa0COP"),
        ("en_US", "KWD", "KWD\xa01,234.500"),
        ("en_US", "ISK", "ISK\xa01,234"),
    ],
)
def test_currency_signs_are_ours_not_the_cldr_release(locale, currency, expected):
    amount = Decimal("1234") if currency in ("JPY", "ISK") else Decimal("1234.50")
    assert Formatter(locale).money(amount, currency) == expected


def test_money_dates_and_addresses_follow_the_locale():
    da, us = Formatter("da_DK"), Formatter("en_US")
    assert da.money(Decimal("25.00"), "USD") == "25,00\xa0USD"
    assert us.money(Decimal("1234.5"), "EUR") == "EUR\xa01,234.50"
    assert da.percent(Decimal("8.875")) == "8,875\xa0%"
    assert Formatter("xx_nowhere").money(Decimal(1), "USD") == "$1.00"
    ny = Address(line1="1 Main St", city="New York", region="NY", postal_code="10001", country="US")
    assert address_lines(ny, us) == ["1 Main St", "New York, NY 10001", "United States"]
    cph = Address(line1="Nørregade 1", city="København", postal_code="1165", country="DK")
    assert address_lines(cph, Formatter("de_DE")) == ["Nørregade 1", "1165 København", "Dänemark"]
    assert address_lines(None, us) == []


def test_the_catalogs_compile_from_the_po_files_in_the_package():
    assert translations("da_DK").gettext("Invoice") == "Faktura"
    assert translations("de").gettext("Net %(days)s days") % {"days": 14} == (
        "Zahlbar innerhalb von 14 Tagen netto"
    )
    assert translations("en").gettext("Invoice") == "Invoice"
    assert translations("sv").gettext("Invoice") == "Invoice"


def test_the_billing_address_is_fixed_on_the_invoice_when_issued(tmp_path):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'abonnement.db'}")
    s.cli("subscriptions", "create", "--id", "bob-acme", "--contact", "bob", "--company", "acme",
          "--billing-address", "same_as_company", "--item", "coffee-1kg",
          "--as-of", "2026-12-01")  # fmt: skip
    s.cli("run", "--until", "2026-12-01")
    html = render(s, "INV-00001").decode()
    assert "1165 København<br>Denmark" in html and "New York" not in html
    without = run("--config", str(s.config), "--db", s.db_url, "subscriptions", "create",
                  "--id", "x", "--contact", "bob", "--billing-address", "same_as_company",
                  "--item", "coffee-1kg")  # fmt: skip
    assert without.exit_code == 1 and "needs --company" in without.stderr
