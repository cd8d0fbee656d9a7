"""Which messages an event asks for, and to whom (F25). Pure: the outbox consumer renders and
delivers them through the notifier plugins.

Settings decide the standard messages (receipts, admin notices, reminders, failed-payment and
change notices, and the e-mails of an invoice sent for payment); workflow triggers add theirs
with ``notify``. Each planned message gets a key — event, template, recipient — so a channel
delivers it once.

An invoice sent for payment (manual collection, or a card collected on the first invoice)
plans its three messages when it is issued (``invoice_planned``): the invoice at once, a
reminder some days before its due date and a notice the day after it, each not sent before
its day (``Planned.after``). Whether the later ones still have something to say is known only
then: ``still_to_say`` answers it when they are delivered, and one that has not (the invoice
was paid) is recorded as done without a message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from abonnement.engine.catalog import Settings

__all__ = [
    "INVOICE_TEMPLATES",
    "MAX_ATTEMPTS",
    "Planned",
    "invoice_planned",
    "next_try_in",
    "planned",
    "recipients",
    "settled_with_nothing_owed",
    "still_to_say",
]

MAX_ATTEMPTS = 8  # then a delivery is given up and reported
_TO_CONTACT = {
    "reminder.due": "reminder",
    "payment.failed": "payment_failed",
    "subscription.changed": "subscription_changed",
    "subscription.paused": "subscription_paused",
    "subscription.resumed": "subscription_changed",
    "subscription.canceled": "subscription_canceled",
}


@dataclass(frozen=True, slots=True)
class Planned:
    """One message to render and deliver: ``template`` to ``to`` (``contact``, ``admins``,
    ``team:NAME`` or an e-mail address), asked for by ``source`` (settings or a trigger)."""

    template: str
    to: str
    source: str = "settings"
    after: date | None = None  # not sent before this day (None: at once)


# the messages of an invoice sent for payment: when issued, before its due date, after it
INVOICE_TEMPLATES = ("invoice", "invoice_reminder", "invoice_past_due")


def invoice_planned(settings: Settings, issued: date, due: date) -> list[Planned]:
    """The messages of an invoice sent for payment, issued on ``issued`` and due on ``due``,
    per the settings: the invoice at once, the reminder ``days_before`` its due date (none
    when the payment terms are not longer than that), the notice the day after it."""
    out = []
    if settings.invoice_email:
        out.append(Planned("invoice", "contact"))
    remind = due - timedelta(days=settings.invoice_reminder_days_before)
    if settings.invoice_reminder_enabled and remind > issued:
        out.append(Planned("invoice_reminder", "contact", after=remind))
    if settings.past_due_notice:
        out.append(Planned("invoice_past_due", "contact", after=due + timedelta(days=1)))
    return out


def still_to_say(template: str, *, open_: bool, due: date | None, on: date) -> bool:
    """Whether a message of ``INVOICE_TEMPLATES`` planned at issue still has something to
    say when it is delivered on ``on``: only while its invoice is open (unpaid, not void),
    a reminder only until the due date (later, the notice says it), a notice only after it
    (one a user made due early, ``deliveries retry``, waits)."""
    if not open_ or due is None:
        return open_
    if template == "invoice_reminder":
        return on <= due
    return template != "invoice_past_due" or on > due


def planned(
    event_type: str, payload: Mapping[str, Any], settings: Settings, *, first_payment: bool
) -> list[Planned]:
    """The standard messages of an event, per the notification settings."""
    if payload.get("trigger"):  # a workflow's own change: it said what to send
        return []
    out: list[Planned] = []
    if event_type == "payment.succeeded" or settled_with_nothing_owed(event_type, payload):
        out.append(Planned("receipt", "contact"))
        if first_payment and settings.notify_first_payment:
            out.append(Planned("admin_first_payment", "admins"))
        if settings.notify_payment_succeeded:
            out.append(Planned("admin_payment_succeeded", "admins"))
    elif event_type == "payment.failed" and settings.notify_payment_failed:
        out.append(Planned("admin_payment_failed", "admins"))
    by_hand = event_type == "payment.failed" and payload.get("manual")
    if event_type in _TO_CONTACT and not by_hand:  # a payment made by hand was seen failing
        out.insert(0, Planned(_TO_CONTACT[event_type], "contact"))
    return out


def settled_with_nothing_owed(event_type: str, payload: Mapping[str, Any]) -> bool:
    """Whether the event is an invoice of zero paid when issued: it asks for the messages a
    payment does (the receipt, the admin notices the settings ask for), though nothing was
    charged."""
    return event_type == "invoice.paid" and payload.get("settled") == "nothing_owed"


def recipients(to: str, contact_email: str | None, settings: Settings) -> tuple[str, ...]:
    """The addresses behind a ``to`` of ``Planned`` (empty when there is nobody to tell)."""
    if to == "contact":
        return (contact_email,) if contact_email else ()
    if to == "admins":
        return settings.admins
    if to.startswith("team:"):
        return tuple(settings.teams.get(to[5:], ()))
    return (to,)


def next_try_in(attempts: int) -> int | None:
    """Days until a failed delivery is tried again after ``attempts`` tries: the next run,
    then 1, 2, 4 days (at most 7) — or None once it is given up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return 0 if attempts <= 1 else min(2 ** (attempts - 2), 7)
