"""Which messages an event asks for, and to whom (F25). Pure: the outbox consumer renders and
delivers them through the notifier plugins.

Settings decide the standard messages (receipts, admin notices, reminders, failed-payment and
change notices); workflow triggers add theirs with ``notify``. Each planned message gets a
key — event, template, recipient — so a channel delivers it once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from abonnement.engine.catalog import Settings

__all__ = [
    "MAX_ATTEMPTS",
    "Planned",
    "next_try_in",
    "planned",
    "recipients",
    "settled_with_nothing_owed",
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
    if event_type in _TO_CONTACT:
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
