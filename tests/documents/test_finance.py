"""Documents a finance team accepts: the seller block, the tax summary per rate, discount
lines naming their rule, line periods, and credit notes for refunds (their own gap-free
series, also under concurrent refunds)."""

import base64
import threading
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from abonnement.app import App
from abonnement.operations import payments
from tests.acceptance.scenario import Scenario
from tests.acceptance.test_edits import cli_error
from tests.conftest import run
from tests.documents.test_invoice import LINK_SECRET

SUBS = """\
  - id: acme-coffee
    contact: ane
    company: acme
    billing_contact: ane
    billing_address: same_as_company
    currency: EUR
    start: 2027-01-01
    items:
      - {name: Coffee 1 kg, unit_price: "33.33 EUR", quantity: 3, frequency: monthly, tax_rate: dk-vat}
      - {name: Coffee book, unit_price: "10.01 EUR", quantity: 1, frequency: monthly, tax_rate: reduced}
      - {name: Gift wrapping, unit_price: "7.77 EUR", quantity: 1, frequency: monthly}
    collection: {mode: manual, payment_terms: net_30}
    invoice: {language: LANG, locale: LOCALE}
"""
RULES = """\
discount loyalty {
  label "Loyalty discount"
  amount 10%
  applies_to invoice
}
"""
DK_VAT = "  - {id: dk-vat, name: Danish VAT, label: Moms, rate: 25%}\n"
ACCOUNT = "  account: Just One More Cup Coffee Co.\n"
LOGO = (b'<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40">'
        b'<rect width="120" height="40" fill="#5b3a29"/></svg>')  # fmt: skip


def scenario(root: Path, db_url: str | None = None, *, language: str = "en",
             locale: str = "en_US", logo: str = "assets/logo.svg") -> Scenario:  # fmt: skip
    """Three lines at 25 %, 12 % and no tax, and a 10 % loyalty discount on the invoice
    (allocated to the lines, so the taxable amounts are not the line amounts)."""
    seller = (f"{ACCOUNT}  account_logo: {logo}\n  account_address: {{line1: Nørregade 1, "
              'city: København, postal_code: "1165", country: DK}\n')  # fmt: skip
    s = Scenario(root, db_url or f"sqlite:///{root / 'abonnement.db'}", rules=RULES,
                 subscriptions=SUBS.replace("LANG", language).replace("LOCALE", locale),
                 replace={DK_VAT: DK_VAT + "  - {id: reduced, name: Reduced VAT, label: "
                          "Reduced VAT, rate: 12%}\n", ACCOUNT: seller})  # fmt: skip
    (s.config / "assets").mkdir()
    (s.config / "assets" / "logo.svg").write_bytes(LOGO)
    s.cli("apply", "--as-of", "2027-01-01")
    s.cli("run", "--until", "2027-01-01")
    return s


def html_of(s: Scenario, noun: str, number: str) -> str:
    result = run("--config", str(s.config), "--db", s.db_url, noun, "render", number,
                 env=LINK_SECRET)  # fmt: skip
    assert result.exit_code == 0, result.output + result.stderr
    return result.stdout


def cells(html: str) -> str:
    """The document's text, one table row a line, cells apart by " | "."""
    import re

    text = re.sub(r"</t[dh]>\s*<t[dh][^>]*>", " | ", html)
    text = re.sub(r"<br>", " / ", text)
    text = re.sub(r"<[^>]+>", "", text)
    return "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())


@pytest.fixture
def issued(tmp_path: Path) -> Scenario:
    return scenario(tmp_path)


def test_the_tax_summary_adds_up_exactly_over_mixed_rates_and_rounding(issued):
    invoice = issued.cli("invoices", "show", "INV-00001")
    assert (invoice["subtotal"], invoice["discount_total"], invoice["tax_total"],
            invoice["total"]) == ("117.77", "11.78", "23.58", "129.57")  # fmt: skip
    text = cells(html_of(issued, "invoices", "INV-00001"))
    # 11.78 of discount allocated 10.00 / 1.00 / 0.78 (largest remainder): the taxable
    # amounts are 89.99 (× 25 % = 22.4975 → 22.50) and 9.01 (× 12 % = 1.0812 → 1.08)
    assert "Tax summary | Rate | Taxable amount | Tax" in text
    assert "Moms | 25% | EUR 89.99 | EUR 22.50" in text
    assert "Reduced VAT | 12% | EUR 9.01 | EUR 1.08" in text
    assert "Not taxed | | EUR 6.99 | EUR 0.00" in text
    # every total is the sum of its parts: 89.99 + 9.01 + 6.99 = 129.57 − 23.58
    assert "Total | | EUR 105.99 | EUR 23.58" in text
    assert Decimal("89.99") + Decimal("9.01") + Decimal("6.99") == Decimal("129.57") - Decimal(
        "23.58"
    )


def test_the_seller_block_discount_rule_and_line_periods(issued):
    html = html_of(issued, "invoices", "INV-00001")
    text = cells(html)
    assert ("From\nJust One More Cup Coffee Co.\n/ Nørregade 1 / 1165 København / Denmark / "
            "EIN 12-3456789\nBill to") in text  # fmt: skip
    assert '<img class="logo" src="data:image/svg+xml;base64,' in html
    assert "Loyalty discount (rule loyalty, 10%) | | | −EUR 11.78" in text
    assert "Coffee 1 kg / monthly, January 1, 2027 – January 31, 2027 | 3 | EUR 33.33" in text


def test_line_periods_and_rule_names_are_in_the_documents_language(tmp_path):
    s = scenario(tmp_path, language="de", locale="de_DE")
    text = cells(html_of(s, "invoices", "INV-00001"))
    assert "Coffee 1 kg / monatlich, 1. Januar 2027 – 31. Januar 2027" in text
    assert "Loyalty discount (Regel loyalty, 10 %) | | | −11,78 €" in text
    assert "Steuerübersicht | Satz | Bemessungsgrundlage | Steuer" in text
    assert "Moms | 25 % | 89,99 € | 22,50 €" in text


def paid(s: Scenario) -> None:
    s.cli("invoices", "pay", "INV-00001", "--card", "tok_visa", "--as-of", "2027-01-05")


def test_refunds_issue_credit_notes_in_their_own_series(issued):
    paid(issued)
    (charge,) = issued.cli("payments", "list")
    first = issued.cli("payments", "refund", str(charge["id"]), "--amount", "50.00",
                       "--as-of", "2027-01-10")  # fmt: skip
    assert first == {"invoice": "INV-00001", "attempt": 2, "credit_note": "CN-0001",
                     "amount": "50.00", "currency": "EUR"}  # fmt: skip
    rest = issued.cli("payments", "refund", str(charge["id"]), "--as-of", "2027-01-11")
    assert (rest["credit_note"], rest["amount"]) == ("CN-0002", "79.57")
    notes = issued.cli("credit-notes", "list")
    assert notes == [
        {"number": "CN-0001", "invoice": "INV-00001", "payment_id": 2,
         "issue_date": "2027-01-10", "amount": "50.00", "currency": "EUR"},
        {"number": "CN-0002", "invoice": "INV-00001", "payment_id": 3,
         "issue_date": "2027-01-11", "amount": "79.57", "currency": "EUR"},
    ]  # fmt: skip
    assert issued.cli("credit-notes", "show", "CN-0002") == notes[1]
    # invoices show says what was refunded too, as the document does
    shown = issued.cli("invoices", "show", "INV-00001")
    assert (shown["refunded"], shown["credit_notes"]) == ("129.57", notes)
    text = run("--config", str(issued.config), "--db", issued.db_url, "invoices", "show",
               "INV-00001").stdout  # fmt: skip
    assert "refunded 129.57 EUR by credit notes:" in text and "CN-0002" in text
    assert issued.cli("credit-notes", "list", "--invoice", "INV-00001") == notes
    # the invoice shows what was refunded, and by which credit notes
    assert "Refunded (CN-0001, CN-0002) | EUR 129.57" in cells(
        html_of(issued, "invoices", "INV-00001"))  # fmt: skip
    # a partial refund gives back its share of each tax; rows sum to its tax and amount
    text = cells(html_of(issued, "credit-notes", "CN-0001"))
    assert "Credit note number | CN-0001" in text and "Invoice number | INV-00001" in text
    assert "Refund of invoice INV-00001 | EUR 50.00" in text
    assert "Total excluding tax | EUR 40.90" in text and "Tax | EUR 9.10" in text
    assert "Moms | 25% | EUR 34.72 | EUR 8.68" in text
    assert "Reduced VAT | 12% | EUR 3.48 | EUR 0.42" in text
    assert "Not taxed | | EUR 2.70 | EUR 0.00" in text
    assert "Total | | EUR 40.90 | EUR 9.10" in text
    assert "Nørregade 1" in text  # the seller block, as on the invoice


def test_a_missing_credit_note_is_not_found(issued):
    result = run("--config", str(issued.config), "--db", issued.db_url, "credit-notes", "show",
                 "CN-0009", "--json")  # fmt: skip
    assert result.exit_code == 3
    assert '"message": "no credit note `CN-0009`"' in result.stdout


def test_a_credit_note_renders_as_a_pdf(issued, tmp_path):
    pypdf = pytest.importorskip("pypdf")
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError) as exc:  # not installed, or no Pango on this machine
        pytest.skip(f"PDF rendering needs WeasyPrint and Pango: {exc}")
    paid(issued)
    issued.cli("payments", "refund", "1", "--as-of", "2027-01-10")
    target = tmp_path / "CN-0001.pdf"
    result = run("--config", str(issued.config), "--db", issued.db_url, "credit-notes",
                 "render", "CN-0001", "--format", "pdf", "-o", str(target))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(target).pages)
    text = text.replace("\xa0", " ")
    for expected in ("Credit note", "Credit note number CN-0001", "Invoice number INV-00001",
                     "Refund of invoice INV-00001 EUR 129.57", "Total credited EUR 129.57",
                     "Moms 25% EUR 89.99 EUR 22.50"):  # fmt: skip
        assert expected in text, expected


def test_concurrent_refunds_take_consecutive_credit_note_numbers(tmp_path, db_url):
    s = scenario(tmp_path, db_url)
    paid(s)
    (charge,) = s.cli("payments", "list")
    barrier = threading.Barrier(2)
    results: list = []

    def refund(amount: str) -> None:
        ctx = App(config_dir=s.config, database_url=s.db_url).context
        barrier.wait()
        try:
            results.append(payments.refund(ctx, charge["id"], amount, date(2027, 1, 10)))
        except Exception as exc:  # a failure is part of the outcome under test
            results.append(exc)

    threads = [threading.Thread(target=refund, args=(a,)) for a in ("10.00", "20.00")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r["credit_note"] for r in results) == ["CN-0001", "CN-0002"], results
    notes = s.cli("credit-notes", "list")
    assert [n["number"] for n in notes] == ["CN-0001", "CN-0002"]
    assert sorted(n["amount"] for n in notes) == ["10.00", "20.00"]
    # and the next refund continues the series
    assert s.cli("payments", "refund", str(charge["id"]), "--amount", "1.00", "--as-of",
                 "2027-01-11")["credit_note"] == "CN-0003"  # fmt: skip


@pytest.mark.parametrize(
    "logo, write, message",
    [
        ("assets/missing.png", None, "cannot read the logo `assets/missing.png`"),
        ("assets/logo.gif", b"GIF89a", "the logo `assets/logo.gif` is not a PNG, JPEG or SVG file"),
        ("assets/logo.png", b"not a png", "the logo `assets/logo.png` is not a valid PNG image"),
        ("../outside.svg", LOGO, "the logo `../outside.svg` is outside the config directory"),
    ],
)
def test_a_bad_logo_is_a_problem_at_its_setting(tmp_path, logo, write, message):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}",
                 replace={ACCOUNT: f"{ACCOUNT}  account_logo: {logo}\n"})  # fmt: skip
    if write is not None:
        target = (s.config / logo).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(write)
    result = run("--config", str(s.config), "validate")
    assert result.exit_code == 1
    line = 1 + s.config.joinpath("abonnement.yaml").read_text().splitlines().index(
        f"  account_logo: {logo}")  # fmt: skip
    assert f"abonnement.yaml:{line}:" in result.output + result.stderr
    assert message in result.output + result.stderr


def test_a_png_logo_and_a_url_logo(tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}",
                 replace={ACCOUNT: f"{ACCOUNT}  account_logo: logo.png\n"})  # fmt: skip
    (s.config / "logo.png").write_bytes(png)
    settings = App(config_dir=s.config).context.catalog.settings
    assert settings.logo_src == "data:image/png;base64," + base64.b64encode(png).decode()
    url = "https://example.com/logo.png"
    (s.config / "abonnement.yaml").write_text((s.config / "abonnement.yaml").read_text()
                                              .replace("logo.png", url))  # fmt: skip
    settings = App(config_dir=s.config).context.catalog.settings
    assert (settings.account_logo_data, settings.logo_src) == (None, url)


def test_validate_renders_a_credit_note_template_with_sample_data(tmp_path):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}")
    (s.config / "templates").mkdir()
    (s.config / "templates" / "credit_note.html").write_text(
        "<p>{{ note.number }} {{ money(note.amount) }}</p>\n<p>{{ note.reason }}</p>\n"
    )
    result = run("--config", str(s.config), "validate")
    assert result.exit_code == 1
    assert "templates/credit_note.html:2" in result.output + result.stderr
    assert "has no attribute 'reason'" in result.output + result.stderr


def test_two_refunds_of_the_same_amount_are_two_credit_notes(issued):
    paid(issued)
    (charge,) = issued.cli("payments", "list")
    refund = ("payments", "refund", str(charge["id"]), "--amount", "5.00", "--as-of", "2027-01-10")
    assert issued.cli(*refund)["credit_note"] == "CN-0001"
    assert issued.cli(*refund)["credit_note"] == "CN-0002"  # a second refund, not a repeat
    refunds = [p for p in issued.cli("payments", "list") if p["status"] == "refunded"]
    assert [p["amount"] for p in refunds] == ["-5.00", "-5.00"]


def test_a_refund_is_refused_when_nothing_is_left_or_dated_out_of_order(issued):
    paid(issued)
    (charge,) = issued.cli("payments", "list")
    pid = str(charge["id"])
    error = cli_error(issued, "payments", "refund", pid, "--as-of", "2027-01-04")
    assert f"a refund cannot be dated before its payment ({charge['date']})" in error
    assert issued.cli("payments", "refund", pid, "--amount", "9.57",
                      "--as-of", "2027-01-12")["credit_note"] == "CN-0001"  # fmt: skip
    error = cli_error(issued, "payments", "refund", pid, "--as-of", "2027-01-11")
    assert "the last credit note, CN-0001, is dated 2027-01-12" in error
    assert issued.cli("payments", "refund", pid, "--as-of", "2027-01-12")["amount"] == "120.00"
    error = cli_error(issued, "payments", "refund", pid, "--as-of", "2027-01-13")
    assert f"payment {pid} is refunded in full; nothing is left to refund" in error
    assert [n["number"] for n in issued.cli("credit-notes", "list")] == ["CN-0001", "CN-0002"]
