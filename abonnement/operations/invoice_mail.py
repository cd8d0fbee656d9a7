"""The e-mails of an invoice sent for payment (manual collection, or a card collected on the
first invoice): which the outbox plans when the invoice is issued, and what it adds to them
when it renders them — the invoice's pay link, and its PDF attached.

The PDF is made once per invoice in a delivery pass, whatever the number of channels that
deliver the e-mail, and only for the ``invoice`` message: no other message pays for it.
Without WeasyPrint (the ``pdf`` extra) the e-mail goes with the pay link only; ``validate``
warns about it (``config.loader.invoices_without_pdf``) and the run logs it once.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import TYPE_CHECKING, Any

from abonnement.engine.notifications import (
    Planned,
    invoice_planned,
    recipients,
    still_to_say,
)
from abonnement.engine.records import DeliveryRecord, EventRecord, InvoiceRecord
from abonnement.engine.status import InvoiceStatus
from abonnement.engine.subscriptions import Subscription, sent_for_payment
from abonnement.errors import AbonnementError
from abonnement.plugins.interfaces import Attachment

if TYPE_CHECKING:
    from abonnement.operations.context import Context as App

__all__ = ["InvoiceMail", "asks", "owes", "planned", "still_wanted"]

log = logging.getLogger(__name__)

_KEPT = 64  # PDFs kept in a pass: a message's channels are delivered one after the other


def asks(ev: EventRecord, settings: Any) -> bool:
    """Whether the settings want messages of an invoice ``ev`` issued (so the outbox reads
    its subscription when it hands ``ev`` over)."""
    return ev.type == "invoice.created" and (
        settings.invoice_email or settings.invoice_reminder_enabled or settings.past_due_notice
    )


def planned(app: App, records: Any, ev: EventRecord, sub: Subscription | None) -> list[Planned]:
    """The messages of the invoice ``ev`` tells was issued, when it is sent for payment and
    still open: the invoice e-mail, the reminder before its due date and the past-due notice
    (``engine.notifications.invoice_planned``). A purchase's invoice, issued with several
    subscriptions, is told once: by its first owner's event."""
    settings = app.catalog.settings
    if sub is None or not asks(ev, settings) or not sent_for_payment(sub.collection_mode):
        return []
    invoice = _invoice(records, sub, ev.payload)
    if invoice is None or not owes(invoice):
        return []  # paid at issue (nothing owed), or already
    if invoice.subscription_id is None:
        owners = [owner for owner in app.storage.invoice_owners(invoice.number) if owner]
        if not owners or owners[0] != sub.id:
            return []
    return invoice_planned(settings, invoice.issue_date, invoice.due_date)


def _invoice(records: Any, sub: Subscription, payload: Any) -> InvoiceRecord | None:
    """The invoice an event names (read with its batch), else the one invoiced for the
    event's period (an event written before invoices were named: the subscription's invoices
    are searched)."""
    if payload.get("invoice"):
        return records.header(payload["invoice"])
    return records.invoice_of(sub, payload)[0]


def still_wanted(template: str, settings: Any) -> bool:
    """Whether the settings still ask for a message of ``template`` planned at issue (one
    turned off since is not sent)."""
    if template == "invoice":
        return bool(settings.invoice_email)
    if template == "invoice_reminder":
        return bool(settings.invoice_reminder_enabled)
    return bool(settings.past_due_notice)


def owes(invoice: InvoiceRecord) -> bool:
    """Whether the buyer still has something to pay on ``invoice``."""
    return invoice.status == InvoiceStatus.OPEN and invoice.amount_due.amount > 0


class InvoiceMail:
    """What one delivery pass adds to the messages of an invoice: the stored invoice, its pay
    link and its PDF, each PDF made once."""

    def __init__(self, app: App):
        self.app = app
        self.pdfs: dict[str, Attachment | None] = {}
        self.warned = False

    def prepare(
        self, row: DeliveryRecord, records: Any, sub: Subscription | None,
        found: InvoiceRecord | None, contact_email: str | None, on: date,
    ) -> tuple[InvoiceRecord | None, str | None, tuple[Attachment, ...]] | None:  # fmt: skip
        """What a message of ``INVOICE_TEMPLATES`` adds, delivered on ``on``: (its invoice,
        the pay link, the attachments) — or None when one the settings planned at issue has
        nothing left to say (the invoice is paid or void, a reminder's due date has passed,
        the setting was turned off since): it is then recorded as done, without a message.

        The invoice is ``found`` by the event's number, else the one the event's period was
        invoiced on (the billing run's ``invoice.created``)."""
        invoice = found
        if invoice is None and sub is not None:
            invoice = _invoice(records, sub, row.event.payload)
        open_ = invoice is not None and owes(invoice)
        settings = self.app.catalog.settings
        due = invoice.due_date if invoice else None
        if row.source == "settings" and not (
            still_wanted(row.template, settings)
            and still_to_say(row.template, open_=open_, due=due, on=on)
        ):
            log.info("skipped %s: nothing left to say", row.template, extra={"key": row.key})
            return None
        if invoice is None:
            return None, None, ()
        pay_url = self.pay_url(invoice) if open_ else None
        attachments: tuple[Attachment, ...] = ()
        told = recipients(row.recipient, contact_email, settings)
        if row.template == "invoice" and settings.invoice_attach_pdf and told:
            attachments = self.pdf(invoice)
        return invoice, pay_url, attachments

    def pay_url(self, invoice: InvoiceRecord) -> str | None:
        """The invoice's pay link, as printed on the invoice (``payments.pay_url``)."""
        from abonnement.operations.payments import pay_url

        return pay_url(self.app, invoice)

    def pdf(self, invoice: InvoiceRecord) -> tuple[Attachment, ...]:
        """The invoice's PDF as an attachment, made once per pass; none when WeasyPrint is
        missing (the e-mail then carries the link only)."""
        if invoice.number not in self.pdfs:
            if len(self.pdfs) >= _KEPT:
                self.pdfs.clear()
            self.pdfs[invoice.number] = self._render(invoice)
        made = self.pdfs[invoice.number]
        return (made,) if made is not None else ()

    def _render(self, invoice: InvoiceRecord) -> Attachment | None:
        from abonnement.documents.invoice import render_pdf
        from abonnement.operations.queries import render_invoice

        html = render_invoice(self.app, invoice.number, "html").decode()
        try:
            data = render_pdf(html)
        except AbonnementError as exc:  # no WeasyPrint, or not its system libraries
            if not self.warned:
                log.warning("invoice e-mails go without their PDF: %s", exc)
                self.warned = True
            return None
        name = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in invoice.number)
        return Attachment(f"{name}.pdf", "application/pdf", data)
