"""What rules can see: the field model, the functions, events, templates, and their types.

Types are short names: ``bool``, ``number``, ``string``, ``money``, ``percent``, ``date``,
``duration``, ``none``, ``any`` and ``list[T]``; ``fee_amount`` is ``2.9% + 0.30 USD``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from abonnement.engine.events import EVENT_TYPES

__all__ = [
    "BLOCK_ROOTS",
    "BUILTIN_FUNCTIONS",
    "BUILTIN_TEMPLATES",
    "FIELDS",
    "TRIGGER_EVENTS",
    "RuleEnv",
    "RuleFunction",
    "Signature",
    "is_list",
    "list_of",
]

FIELDS: dict[str, dict[str, str]] = {
    "customer": {
        "id": "string",
        "name": "string",
        "email": "string",
        "country": "string",
        "region": "string",
        "postal_code": "string",
        "city": "string",
        "tax_exempt": "bool",
        "properties": "properties",
    },
    "company": {
        "id": "string",
        "name": "string",
        "domain": "string",
        "tax_id": "string",
        "country": "string",
        "region": "string",
        "postal_code": "string",
        "city": "string",
        "properties": "properties",
    },
    "subscription": {
        "id": "string",
        "status": "string",
        "currency": "string",
        "frequency": "string",
        "start_date": "date",
        "end_date": "date",
        "next_payment_date": "date",
        "payments_made": "number",
        "number_of_payments": "number",
        "owner": "string",
        "mrr": "money",
        "properties": "subscription_properties",
    },
    "line": {
        "sku": "string",
        "name": "string",
        "quantity": "number",
        "unit_price": "money",
        "amount": "money",
        "frequency": "string",
        "taxable": "bool",
        "category": "string",
        "unit_discount": "percent",
        "is_recurring": "bool",
        "product": "product",
    },
    "product": {
        "id": "string",
        "sku": "string",
        "name": "string",
        "description": "string",
        "category": "string",
        "taxable": "bool",
        "properties": "properties",
    },
    "invoice": {"subtotal": "money", "sequence": "number", "date": "date", "due_date": "date"},
    "payment": {"method": "string", "attempt": "number"},
    "event": {"type": "string", "previous_status": "string"},
}

_PRICING = ("customer", "company", "subscription", "line", "product", "invoice", "payment")
BLOCK_ROOTS: dict[str, tuple[str, ...]] = {
    "line": _PRICING,
    "invoice": ("customer", "company", "subscription", "invoice", "payment"),
    "trigger": ("event", "customer", "company", "subscription", "invoice", "payment"),
    "subscriptions": ("customer", "company", "subscription"),
    "contacts": ("customer", "company"),
}

TRIGGER_EVENTS: tuple[str, ...] = EVENT_TYPES  # every domain event can trigger a workflow

BUILTIN_TEMPLATES: tuple[str, ...] = (
    "receipt",
    "payment_failed",
    "reminder",
    "invoice",
    "invoice_reminder",
    "invoice_past_due",
    "welcome",
    "past_due",
    "subscription_changed",
    "subscription_paused",
    "subscription_canceled",
    "admin_first_payment",
    "admin_payment_succeeded",
    "admin_payment_failed",
)


@dataclass(frozen=True, slots=True)
class Signature:
    """Overloads: each a tuple of parameter types and the result type."""

    overloads: tuple[tuple[tuple[str, ...], str], ...]


_ORDERED = ("number", "money", "date", "percent")
BUILTIN_FUNCTIONS: dict[str, Signature] = {
    "today": Signature(((((), "date")),)),
    "tax_rate": Signature(((("string",), "percent"),)),
    "days_between": Signature(((("date", "date"), "number"),)),
    "min": Signature(tuple(((t, t), t) for t in _ORDERED)),
    "max": Signature(tuple(((t, t), t) for t in _ORDERED)),
    "round": Signature(
        ((("number",), "number"), (("number", "number"), "number"), (("money",), "money"))
    ),
    "lower": Signature(((("string",), "string"),)),
    "upper": Signature(((("string",), "string"),)),
}


def list_of(item: str) -> str:
    return f"list[{item}]"


def is_list(kind: str) -> bool:
    return kind.startswith("list[")


@dataclass(frozen=True)
class RuleEnv:
    """What the checker knows of the config: currencies, rates, properties, plugins."""

    currencies: tuple[str, ...] = ()
    tax_rates: Mapping[str, bool] = field(default_factory=dict)  # id → active
    subscription_properties: Mapping[str, str] = field(default_factory=dict)  # name → type
    teams: tuple[str, ...] = ()
    templates: tuple[str, ...] = BUILTIN_TEMPLATES
    functions: Mapping[str, Signature] = field(default_factory=dict)  # from plugins


@dataclass(frozen=True, slots=True)
class RuleFunction:
    """A function rules may call, registered by a plugin: ``params`` and ``returns`` are
    rule-language type names, ``implementation`` the Python callable."""

    name: str
    params: tuple[str, ...]
    returns: str
    implementation: Callable[..., Any] = field(compare=False)
