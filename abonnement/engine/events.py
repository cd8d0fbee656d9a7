"""Domain events: what happened, to what, when. Written to the outbox with the change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any

__all__ = ["EVENT_TYPES", "Event"]

EVENT_TYPES: tuple[str, ...] = (
    "subscription.created",
    "subscription.status_changed",
    "subscription.changed",
    "subscription.paused",
    "subscription.resumed",
    "subscription.canceled",
    "subscription.expired",
    "invoice.created",
    "invoice.paid",
    "invoice.overdue",
    "payment.succeeded",
    "payment.failed",
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
