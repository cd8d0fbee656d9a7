"""The e-mails of an invoice sent for payment: the invoice when it is issued (its PDF attached,
its pay link working), a reminder before its due date and a notice the day after it, each
sent once, none once it is paid, each a setting; automatic card invoices are not e-mailed."""

import email
import io
import re
from email import policy

import pytest

from abonnement.plugins.interfaces import Attachment, Message
from abonnement.plugins.notifiers.mailbox import eml
from tests.acceptance.scenario import Scenario
from tests.acceptance.test_collection_scenarios import BOB_SAVED, SECRET
from tests.conftest import run
from tests.server.shop import Shop, text_of
from tests.server.test_pages import BOB_MANUAL

BOB_FIRST_INVOICE = """\
  - id: bob-first
    contact: bob
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 1}]
    collection: {mode: automatic, method: first_invoice, payment_terms: net_30}
"""
NOTIFICATIONS = "    reminder: {enabled: true, days_before: 14}\n"
MAILBOX = "    mailbox: {directory: outbox}        # each plugin's own settings under its name\n"
ACCOUNT = "Just One More Cup Coffee Co."


def mails(s: Scenario) -> list[email.message.EmailMessage]:
    folder = s.config / "outbox"
    return [email.message_from_bytes(p.read_bytes(), policy=policy.default)
            for p in sorted(folder.glob("*.eml"))]  # fmt: skip


def subjects(s: Scenario) -> list[str]:
    return sorted(m["Subject"] for m in mails(s) if "next payment" not in m["Subject"])


def pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    return " ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def _needs_pdf():
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError) as exc:
        pytest.skip(f"PDF rendering needs WeasyPrint and Pango: {exc}")


def test_a_manual_invoice_is_emailed_once_with_its_pdf_and_a_pay_link_that_works(
    tmp_path, monkeypatch, smtp_server
):
    _needs_pdf()
    import abonnement.documents.invoice as documents

    port, received = smtp_server
    made = []
    render_pdf = documents.render_pdf
    monkeypatch.setattr(documents, "render_pdf", lambda html: made.append(1) or render_pdf(html))
    # two channels deliver the one e-mail: the PDF is made once
    s = Shop(tmp_path, f"sqlite:///{tmp_path / 'abonnement.db'}", monkeypatch,
             subscriptions=BOB_MANUAL,
             replace={"notifiers: [mailbox]": "notifiers: [smtp, mailbox]",
                      MAILBOX: MAILBOX + f"    smtp: {{host: 127.0.0.1, port: {port}}}\n"
                               "    invoice: {enabled: true, attach_pdf: true}\n"})  # fmt: skip
    try:
        s.cli("apply", "--as-of", "2026-12-01")
        s.cli("run", "--until", "2026-12-01")
        assert len(received) == 1 and len(made) == 1
        ((rcpts, body),) = received
        assert rcpts == ["bob@example.com"]
        mail = email.message_from_bytes(body, policy=policy.default)
        assert mail["Subject"] == f"Invoice INV-00001 from {ACCOUNT}"
        assert mail.get_content_type() == "multipart/mixed"
        text = mail.get_body(("plain",)).get_content()
        assert "Invoice INV-00001 for $25.00 is due on December 31, 2026." in text
        assert "The invoice is attached as a PDF." in text
        (attachment,) = mail.iter_attachments()
        assert (attachment.get_filename(), attachment.get_content_type()) == (
            "INV-00001.pdf", "application/pdf")  # fmt: skip
        document = pdf_text(attachment.get_content())
        assert "INV-00001" in document and "$25.00" in document
        # the mailbox got the same e-mail, attachment and all
        (saved,) = mails(s)
        assert saved["Subject"] == mail["Subject"]
        assert next(saved.iter_attachments()).get_content() == attachment.get_content()
        # the link opens the invoice's page, where it can be paid
        url = re.search(r"View and pay it online here: (\S+)", text).group(1)
        assert url.startswith("http://localhost:8000/i/")
        path = url.removeprefix("http://localhost:8000")
        s.today = s.today.replace(day=5)
        page = s.client.get(path)
        assert page.status_code == 200
        assert "Invoice INV-00001 Amount due $25.00 Due date December 31, 2026" in text_of(
            page.text)  # fmt: skip
        assert s.form(path, card="tok_visa").status_code == 200
        assert s.cli("invoices", "show", "INV-00001")["status"] == "paid"
        # a rerun sends nothing more; paid, nothing is reminded or noticed later either
        s.cli("run", "--until", "2026-12-01")
        s.cli("run", "--until", "2027-01-02")
        later = [email.message_from_bytes(b, policy=policy.default)["Subject"]
                 for _, b in received[1:]]  # fmt: skip
        assert [x for x in later if "INV-00001" in x] == []
        assert f"Invoice INV-00002 from {ACCOUNT}" in later
    finally:
        s.close()


def test_the_reminder_comes_n_days_before_the_due_date_and_the_notice_the_day_after(
    tmp_path, db_url
):
    s = Scenario(tmp_path, db_url, subscriptions=BOB_MANUAL, replace={NOTIFICATIONS: (
        NOTIFICATIONS + "    invoice_reminder: {enabled: true, days_before: 5}\n")})  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01", env=SECRET)
    assert subjects(s) == [f"Invoice INV-00001 from {ACCOUNT}"]
    (sent,) = mails(s)
    assert not list(sent.iter_attachments())  # attach_pdf is off unless asked for
    s.cli("run", "--until", "2026-12-25", env=SECRET)
    assert len(subjects(s)) == 1
    s.cli("run", "--until", "2026-12-26", env=SECRET)  # 5 days before December 31
    assert subjects(s) == sorted([f"Invoice INV-00001 from {ACCOUNT}",
                                  "Invoice INV-00001 is due on December 31, 2026"])  # fmt: skip
    reminder = next(m for m in mails(s) if "is due on" in m["Subject"])
    assert reminder["To"] == "bob@example.com"
    text = reminder.get_body(("plain",)).get_content()
    assert "A reminder: invoice INV-00001 for $25.00 is due on December 31, 2026." in text
    assert "http://localhost:8000/i/" in text
    s.cli("run", "--until", "2026-12-31", env=SECRET)  # due today: not past due yet
    assert len(subjects(s)) == 2
    s.cli("run", "--until", "2027-01-01", env=SECRET)
    notice = next(m for m in mails(s) if "past due" in m["Subject"])
    assert notice["Subject"] == "Invoice INV-00001 is past due"
    assert ("Invoice INV-00001 for $25.00 was due on December 31, 2026 and is not paid yet."
            in notice.get_body(("plain",)).get_content())  # fmt: skip
    assert s.subscription("bob-manual")["status"] == "past_due"
    count = len(mails(s))
    again = s.cli("run", "--until", "2027-01-01", env=SECRET)
    assert again["notifications"]["sent"] == 0 and len(mails(s)) == count
    keys = {d["id"].split("/", 1)[1]: d["sent_on"] for d in s.cli("deliveries", "list")
            if d["event_type"] == "invoice.created" and d["sent_on"]}  # fmt: skip
    assert keys == {"invoice/contact/mailbox": "2027-01-01",  # INV-00002's, the later wins
                    "invoice_reminder/contact/mailbox": "2026-12-26",
                    "invoice_past_due/contact/mailbox": "2027-01-01"}  # fmt: skip


def test_paid_before_the_due_date_no_reminder_and_no_notice(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=BOB_MANUAL)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01", env=SECRET)
    s.cli("invoices", "pay", "INV-00001", "--as-of", "2026-12-10", env=SECRET)
    ran = s.cli("run", "--until", "2027-01-05", env=SECRET)
    assert ran["notifications"]["skipped"] == 2  # INV-00001's reminder and notice
    assert [x for x in subjects(s) if "INV-00001" in x] == [f"Invoice INV-00001 from {ACCOUNT}"]
    # the two planned at issue are done, without a message, by the run that found them due
    done = {d["template"]: (d["status"], d["sent_on"]) for d in s.cli("deliveries", "list")
            if d["event_id"].endswith("_3")}  # fmt: skip
    assert done == {"invoice": ("sent", "2026-12-01"),
                    "invoice_reminder": ("skipped", None),
                    "invoice_past_due": ("skipped", None)}  # fmt: skip
    # the run's summary counts them apart from what was sent; retrying one is refused
    reminder = next(
        d["id"]
        for d in s.cli("deliveries", "list")
        if d["event_id"].endswith("_3") and d["template"] == "invoice_reminder"
    )
    refused = run("--config", str(s.config), "--db", s.db_url, "deliveries", "retry",
                  reminder, "--json", env=SECRET)  # fmt: skip
    assert refused.exit_code == 1
    assert "had nothing to send when its day came" in refused.output + refused.stderr
    assert s.subscription("bob-manual")["status"] == "active"


@pytest.mark.parametrize(
    ("setting", "left"),
    [
        ("invoice: {enabled: false}", ["Invoice INV-00001 is due on December 31, 2026",
                                       "Invoice INV-00001 is past due"]),
        ("invoice_reminder: {enabled: false}", [f"Invoice INV-00001 from {ACCOUNT}",
                                                "Invoice INV-00001 is past due"]),
        ("past_due: {enabled: false}", [f"Invoice INV-00001 from {ACCOUNT}",
                                        "Invoice INV-00001 is due on December 31, 2026"]),
    ],
)  # fmt: skip
def test_each_invoice_message_is_a_setting(tmp_path, setting, left):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", subscriptions=BOB_MANUAL,
                 replace={NOTIFICATIONS: NOTIFICATIONS + f"    {setting}\n"})  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-31", env=SECRET)
    s.cli("run", "--until", "2027-01-01", env=SECRET)
    assert [x for x in subjects(s) if "INV-00001" in x] == sorted(left)


def test_all_three_off_plans_nothing(tmp_path):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", subscriptions=BOB_MANUAL,
                 replace={NOTIFICATIONS: NOTIFICATIONS + "    invoice: {enabled: false}\n"
                          "    invoice_reminder: {enabled: false}\n"
                          "    past_due: {enabled: false}\n"})  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2027-01-01", env=SECRET)
    assert subjects(s) == []
    assert not [d for d in s.cli("deliveries", "list") if d["template"].startswith("invoice")]


def test_a_card_collected_on_the_first_invoice_is_emailed_automatic_ones_are_not(tmp_path):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}",
                 subscriptions=BOB_FIRST_INVOICE + BOB_SAVED)  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01", env=SECRET)
    invoices = {i["subscription_id"]: i["number"] for i in s.invoices()}
    first, automatic = invoices["bob-first"], invoices["bob-coffee"]
    assert [x for x in subjects(s) if x.startswith("Invoice")] == [
        f"Invoice {first} from {ACCOUNT}"]  # fmt: skip
    planned = [(d["template"], d["event_type"]) for d in s.cli("deliveries", "list")
               if d["template"].startswith("invoice")]  # fmt: skip
    assert sorted(planned) == [("invoice", "invoice.created"),  # bob-first's only
                               ("invoice_past_due", "invoice.created"),
                               ("invoice_reminder", "invoice.created")]  # fmt: skip
    assert not [m for m in mails(s) if automatic in m["Subject"]]


def test_without_weasyprint_the_invoice_goes_with_its_link_and_validate_warns(
    tmp_path, monkeypatch
):
    import abonnement.documents.invoice as documents
    from abonnement.errors import AbonnementError

    def missing(html):
        raise AbonnementError("PDF output needs WeasyPrint: pip install 'abonnement[pdf]'")

    monkeypatch.setattr(documents, "render_pdf", missing)
    monkeypatch.setattr(documents, "pdf_installed", lambda: False)
    s = Scenario(
        tmp_path,
        f"sqlite:///{tmp_path / 'a.db'}",
        subscriptions=BOB_MANUAL,
        replace={NOTIFICATIONS: NOTIFICATIONS + "    invoice: {attach_pdf: true}\n"},
    )
    checked = run("--config", str(s.config), "validate")
    assert checked.exit_code == 0, checked.stderr
    assert ("warning: invoice e-mails will go without the invoice's PDF (only the pay link): "
            "WeasyPrint is not installed") in checked.stderr + checked.stdout  # fmt: skip
    # by default nothing is attached: nothing to warn about
    plain = Scenario(tmp_path / "plain", f"sqlite:///{tmp_path / 'b.db'}", subscriptions=BOB_MANUAL)
    quiet = run("--config", str(plain.config), "validate")
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr + quiet.stdout
    s.cli("apply", "--as-of", "2026-12-01")
    ran = s.cli("run", "--until", "2026-12-01", env=SECRET)
    assert ran["notifications"]["failed"] == 0
    (mail,) = mails(s)
    assert not list(mail.iter_attachments())
    text = mail.get_body(("plain",)).get_content()
    assert "attached" not in text and "http://localhost:8000/i/" in text


def test_a_purchase_invoiced_for_payment_is_emailed_once(tmp_path):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}")
    converted = s.cli("convert", "quote", "q-7", "--as-of", "2026-12-01", env=SECRET)
    number = converted["invoice"]
    (mail,) = [m for m in mails(s) if number in m["Subject"]]
    assert mail["Subject"] == f"Invoice {number} from {ACCOUNT}"
    assert "$139.00 is due on December 31, 2026" in mail.get_body(("plain",)).get_content()


def test_the_webhook_and_the_mailbox_carry_attachments_as_they_should(monkeypatch):
    from abonnement import signing
    from abonnement.plugins.notifiers.webhook import WebhookNotifier

    pdf = Attachment("INV-00001.pdf", "application/pdf", b"%PDF-1.7 bytes")
    message = Message(("bob@example.com",), "Invoice INV-00001", "Pay here: http://x/i/t\n",
                      html="<p>Pay</p>", kind="invoice", key="3/invoice/contact",
                      data={"pay_url": "http://x/i/t"}, attachments=(pdf,))  # fmt: skip
    data = eml(message)  # with attachments: through the email package
    parsed = email.message_from_bytes(data, policy=policy.default)
    assert (parsed["To"], parsed["Subject"]) == ("bob@example.com", "Invoice INV-00001")
    assert parsed.get_body(("plain",)).get_content() == "Pay here: http://x/i/t\n"
    assert parsed.get_content_type() == "multipart/mixed"
    assert next(parsed.iter_attachments()).get_content() == b"%PDF-1.7 bytes"
    plain = Message(("bob@example.com",), "Receipt", "Thanks\n", key="k")
    assert b"multipart/mixed" not in eml(plain)  # the fast path, unchanged
    posted = []
    monkeypatch.setenv("ABONNEMENT_WEBHOOK_SIGNING_SECRET", "whsec_" + "A" * 32)
    monkeypatch.setattr(signing, "post", lambda url, body, *a, **k: posted.append(body))
    WebhookNotifier({"url": "http://127.0.0.1:9/"}).send(message)
    (body,) = posted
    assert b"PDF-1.7" not in body and b"http://x/i/t" in body


def test_danish_invoice_emails_are_in_danish(tmp_path):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", subscriptions=BOB_MANUAL.replace(
        "collection: {mode: manual, payment_terms: net_30}",
        "collection: {mode: manual, payment_terms: net_30}\n"
        "    invoice: {language: da, locale: da_DK}"))  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-24", env=SECRET)
    s.cli("run", "--until", "2027-01-01", env=SECRET)
    got = subjects(s)
    assert "Faktura INV-00001 forfalder den 31. december 2026" in got
    assert "Faktura INV-00001 er forfalden" in got


def test_a_message_turned_off_after_it_was_planned_is_not_sent(tmp_path):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", subscriptions=BOB_MANUAL)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01", env=SECRET)  # all three planned
    config = s.config / "abonnement.yaml"
    config.write_text(config.read_text().replace(
        NOTIFICATIONS, NOTIFICATIONS + "    past_due: {enabled: false}\n"))  # fmt: skip
    s.cli("run", "--until", "2026-12-24", env=SECRET)
    s.cli("run", "--until", "2027-01-01", env=SECRET)
    assert [x for x in subjects(s) if "INV-00001" in x] == [
        f"Invoice INV-00001 from {ACCOUNT}",
        "Invoice INV-00001 is due on December 31, 2026",
    ]
    (notice,) = [d for d in s.cli("deliveries", "list") if d["template"] == "invoice_past_due"
                 and d["event_id"].endswith("_3")]  # fmt: skip
    assert (notice["status"], notice["sent_on"]) == ("skipped", None)  # done, unsent
