"""Domain events: what happened, to what, when. Written to the outbox with the change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any

__all__ = ["EVENT_TYPES", "Event", "numbered"]

EVENT_TYPES: tuple[str, ...] = (
    "subscription.created",
    "subscription.status_changed",
    "subscription.changed",
    "subscription.paused",
    "subscription.resumed",
    "subscription.canceled",
    "subscription.cancel_scheduled",
    "subscription.expired",
    "subscription.billing_failed",  # a run set it aside: {"error"}; the next run tries again
    "invoice.created",
    "invoice.paid",
    "invoice.carried",
    "invoice.overdue",
    "payment.succeeded",
    "payment.failed",
    "payment.disputed",  # the buyer's bank contests a charge (a processor webhook)
    "reminder.due",
)


@dataclass(frozen=True, slots=True)
class Event:
    """``type`` is one of ``EVENT_TYPES``; ``seq`` orders events of one subject."""

    type: str
    subject_id: str
    on: date
    payload: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    seq: int = 0


def numbered(
    subject_id: str, on: date, last_seq: int, *happened: tuple[str, Mapping[str, Any]]
) -> tuple[Event, ...]:
    """What happened to one subject on ``on``, as events numbered on from ``last_seq`` (the
    subject's count so far). The one place numbers are given: consumers of the outbox order
    and de-duplicate by them, and (subject, seq) is unique in storage."""
    return tuple(
        Event(kind, subject_id, on, _frozen(payload), last_seq + i)
        for i, (kind, payload) in enumerate(happened, start=1)
    )


def _frozen(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    # a copy: the caller's dict may change after the event is made
    return payload if type(payload) is MappingProxyType else MappingProxyType(dict(payload))
