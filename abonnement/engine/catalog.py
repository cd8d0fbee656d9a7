"""The typed, frozen catalog a config describes: settings, products, CRM records, subscriptions.

Built by ``abonnement.config`` after validation; the engine reads it and never changes it.
Lookups are read-only mappings by id, in file order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import Enum
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Any

from abonnement.engine.money import Money, Percent
from abonnement.engine.schedule import AtPurchase, Frequency, Start

__all__ = [
    "Address",
    "Catalog",
    "Collection",
    "Company",
    "Contact",
    "CustomProperty",
    "Deal",
    "DeclaredSubscription",
    "InvoiceSettings",
    "ItemSpec",
    "PaymentLink",
    "PaymentMethod",
    "PricingModel",
    "Product",
    "Quote",
    "RegionalRate",
    "Settings",
    "TaxRate",
    "Terms",
    "Tier",
    "WebhookEndpoint",
    "frozen_map",
]

EMPTY: Mapping[str, Any] = MappingProxyType({})


def _no_map() -> Any:
    return field(default_factory=lambda: EMPTY)


def frozen_map(items: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A read-only copy of ``items``; every empty one is ``EMPTY`` (most properties and
    invoice settings of 100,000 declared subscriptions are empty: one object, not 100,000)."""
    return MappingProxyType(dict(items)) if items else EMPTY


class PricingModel(Enum):
    FLAT = "flat"
    VOLUME = "volume"
    GRADUATED = "graduated"
    STAIRSTEP = "stairstep"


@dataclass(frozen=True, slots=True)
class Terms:
    """Auto-renew until cancelled (``payments is None``) or a fixed number of payments."""

    payments: int | None = None

    @property
    def auto_renew(self) -> bool:
        return self.payments is None


AUTO_RENEW = Terms()


@dataclass(frozen=True, slots=True)
class Address:
    country: str
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None


@dataclass(frozen=True, slots=True)
class TaxRate:
    id: str
    name: str
    label: str
    rate: Percent
    active: bool = True


@dataclass(frozen=True, slots=True)
class RegionalRate:
    """A row of ``settings.taxes.table``: a rate for buyers in ``country`` (and ``region``,
    when given), on lines of tax ``category`` (every category when None)."""

    country: str
    region: str | None
    category: str | None
    rate: TaxRate


@dataclass(frozen=True, slots=True)
class Tier:
    """``up_to`` is inclusive; None on the last tier. ``unit_price`` or (stairstep) ``price``."""

    up_to: int | None
    unit_price: Money | None = None
    price: Money | None = None


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    name: str
    sku: str
    prices: Mapping[str, Money] = _no_map()
    frequency: Frequency | None = None
    pricing: PricingModel = PricingModel.FLAT
    tiers: tuple[Tier, ...] = ()
    description: str | None = None
    category: str | None = None
    taxable: bool = True
    tax_rate: str | None = None
    tax_behavior: str = "exclusive"
    properties: Mapping[str, Any] = _no_map()

    @property
    def currencies(self) -> frozenset[str]:
        if self.tiers:
            tier = self.tiers[0]
            return frozenset({(tier.unit_price or tier.price).currency})  # type: ignore[union-attr]
        return frozenset(self.prices)

    @property
    def is_recurring(self) -> bool:
        return self.frequency is not None


@dataclass(frozen=True, slots=True)
class Company:
    id: str
    name: str
    address: Address | None = None
    domain: str | None = None
    tax_id: str | None = None
    properties: Mapping[str, Any] = _no_map()


@dataclass(frozen=True, slots=True)
class PaymentMethod:
    id: str
    type: str
    token: str
    saved_on: date | None = None  # None: saved before any subscription


@dataclass(frozen=True, slots=True)
class Contact:
    id: str
    name: str
    email: str
    company: str | None = None
    address: Address | None = None
    tax_exempt: bool = False
    language: str | None = None
    locale: str | None = None
    payment_methods: tuple[PaymentMethod, ...] = ()
    properties: Mapping[str, Any] = _no_map()


@dataclass(frozen=True, slots=True)
class ItemSpec:
    """A line item as written in a quote, link or subscription, before pricing."""

    product: str | None = None
    name: str | None = None
    sku: str | None = None
    description: str | None = None
    quantity: int = 1
    unit_price: Money | None = None
    unit_discount: Percent | None = None
    frequency: Frequency | None = None
    tax_rate: str | None = None
    taxable: bool | None = None
    category: str | None = None
    start: Start | None = None
    terms: Terms | None = None


@dataclass(frozen=True, slots=True)
class Deal:
    id: str
    name: str
    contact: str | None = None
    company: str | None = None
    stage: str | None = None
    items: tuple[ItemSpec, ...] = ()
    properties: Mapping[str, Any] = _no_map()


@dataclass(frozen=True, slots=True)
class Quote:
    id: str
    contact: str
    items: tuple[ItemSpec, ...]
    deal: str | None = None
    company: str | None = None
    status: str = "draft"
    currency: str | None = None
    expires_on: date | None = None


@dataclass(frozen=True, slots=True)
class PaymentLink:
    id: str
    name: str
    items: tuple[ItemSpec, ...]
    button_text: str | None = None
    currency: str | None = None
    accepted_methods: tuple[str, ...] = ()
    save_payment_method: bool = True
    deals: tuple[str, ...] = ()
    collect_billing_address: bool = False  # the buyer page asks for one
    collect_shipping_address: bool = False  # kept on the subscriptions bought


@dataclass(frozen=True, slots=True)
class Collection:
    mode: str = "manual"  # automatic | manual
    method: str = "saved"  # saved | first_invoice
    payment_method: str | None = None
    payment_terms: str | None = None  # None: the account's
    accept_online: bool = True
    accepted_methods: tuple[str, ...] = ()


# the languages documents and messages are translated into (documents/locale)
LANGUAGES: tuple[str, ...] = ("en", "da", "de", "fr", "es")

DEFAULT_PUBLIC_URL = "http://localhost:8000"  # where `abonnement serve` listens by default


@dataclass(frozen=True, slots=True)
class InvoiceSettings:
    number_format: str = "INV-{seq:05d}"
    comments: str | None = None
    language: str = "en"
    locale: str = "en_US"
    payment_terms: str = "due_on_receipt"
    tax_ids: tuple[str, ...] = ()
    pay_url: str | None = None  # the account's own pay page (`{number}`); None: the server's
    credit_note_format: str = "CN-{seq:04d}"  # the credit notes' own gap-free series


@dataclass(frozen=True, slots=True)
class DeclaredSubscription:
    id: str
    contact: str
    currency: str
    items: tuple[ItemSpec, ...]
    company: str | None = None
    billing_contact: str | None = None
    billing_address: Address | str | None = None  # an Address or "same_as_company"
    deals: tuple[str, ...] = ()
    start: Start = field(default_factory=AtPurchase)
    terms: Terms = AUTO_RENEW
    owner: str | None = None
    invoice_creation: bool = True
    collection: Collection = Collection()
    invoice: Mapping[str, Any] = _no_map()  # per-subscription overrides of InvoiceSettings
    properties: Mapping[str, Any] = _no_map()  # as written (the settings' defaults apart)
    prorate: bool = False  # a change applied to it settles the current period (F20)


@dataclass(frozen=True, slots=True)
class CustomProperty:
    name: str
    type: str
    values: tuple[str, ...] = ()
    default: Any = None
    user_can_override: bool = True
    label: str | None = None


DEFAULT_MINIMUM_CHARGE = {"USD": "0.50", "EUR": "1.00", "GBP": "0.60"}


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """Where ``settings.webhooks`` POSTs domain events: a URL and the event types it wants
    (shell-style patterns: ``invoice.*``; every event when none are given)."""

    url: str
    events: tuple[str, ...] = ("*",)

    def wants(self, event_type: str) -> bool:
        """Whether an event of ``event_type`` goes to this endpoint."""
        return any(fnmatchcase(event_type, pattern) for pattern in self.events)


@dataclass(frozen=True, slots=True)
class Settings:
    account: str
    currencies: tuple[str, ...]
    default_currency: str
    timezone: str = "UTC"
    rounding: str = "half_up"
    rules: tuple[str, ...] = ()
    invoices: InvoiceSettings = InvoiceSettings()
    processor: str = "test"
    accepted_methods: tuple[str, ...] = ("card",)
    minimum_charge: Mapping[str, Money] = _no_map()
    retry_days: tuple[int, ...] = (1, 3, 5, 7)
    after_final_failure: str = "keep_unpaid"
    manual_retry_limit: int = 3
    update_link_days: int = 14
    notifiers: tuple[str, ...] = ("mailbox",)
    sender: str | None = None
    admins: tuple[str, ...] = ()
    teams: Mapping[str, tuple[str, ...]] = _no_map()
    notify_first_payment: bool = True
    notify_payment_succeeded: bool = True
    notify_payment_failed: bool = True
    reminder_enabled: bool = True
    reminder_days_before: int = 14
    invoice_email: bool = True  # manual and first-invoice invoices e-mailed when issued
    # the PDF attached too (the pay link's page has it): rendering one costs ~0.1 s of CPU
    invoice_attach_pdf: bool = False
    invoice_reminder_enabled: bool = True  # an open invoice reminded before its due date
    invoice_reminder_days_before: int = 7
    past_due_notice: bool = True  # the buyer told the day after an invoice's due date
    edit_freeze_days: int = 2
    allow_invoice_creation_off: bool = True
    proration: bool = False
    custom_properties: tuple[CustomProperty, ...] = ()
    weekly_mrr_factor: Decimal = Decimal(52) / Decimal(12)
    discounts_reduce_mrr: bool = False
    plugin_settings: Mapping[str, Mapping[str, Any]] = _no_map()  # "notifications.mailbox" → block
    tax_provider: str | None = None  # a registered tax provider: automatic tax by location
    tax_table: tuple[RegionalRate, ...] = ()  # the built-in `table` provider's rates
    public_url: str = DEFAULT_PUBLIC_URL  # the base of every link written for buyers
    account_logo: str | None = None  # a URL, or a file of the config directory
    webhooks: tuple[WebhookEndpoint, ...] = ()  # every domain event POSTed, signed
    # where the config asks for signed POSTs (file, line, column, ``in settings.…``): the
    # signing secret is checked there when a command that delivers starts, not when loaded
    signed_at: tuple[tuple[str, int, int, str], ...] = ()
    webhook_timeout: float = 5.0  # seconds per request
    webhook_retries: int = 2  # immediate retries of a 5xx or timeout, before the outbox's
    # the logo file's content as a ``data:`` URI (embedded in documents and buyer pages)
    account_logo_data: str | None = None
    account_address: Address | None = None  # the seller's address printed on documents

    @property
    def logo_src(self) -> str | None:
        """What an ``<img src>`` shows as the account's logo: the file's content, else the
        URL."""
        return self.account_logo_data or self.account_logo

    def buyer_url(self, path: str) -> str:
        """``path`` (``/i/TOKEN``) on the server buyers reach (``settings.server.public_url``)."""
        return self.public_url.rstrip("/") + path

    @property
    def reminder_lead(self) -> int:
        """Days before a payment its reminder is due; 0 when reminders are off."""
        return self.reminder_days_before if self.reminder_enabled else 0

    def minimum_charge_for(self, currency: str) -> Money:
        if currency in self.minimum_charge:
            return self.minimum_charge[currency]
        return Money(Decimal(DEFAULT_MINIMUM_CHARGE.get(currency, "0")), currency)


@dataclass(frozen=True, slots=True)
class Catalog:
    """Everything a config declares. ``version`` is a digest of the files it was built from."""

    settings: Settings
    version: str = ""
    tax_rates: Mapping[str, TaxRate] = _no_map()
    products: Mapping[str, Product] = _no_map()
    companies: Mapping[str, Company] = _no_map()
    contacts: Mapping[str, Contact] = _no_map()
    deals: Mapping[str, Deal] = _no_map()
    quotes: Mapping[str, Quote] = _no_map()
    payment_links: Mapping[str, PaymentLink] = _no_map()
    subscriptions: Mapping[str, DeclaredSubscription] = _no_map()
    rule_files: tuple[str, ...] = field(default=())
    # where each declared subscription is written: "abonnement.yaml:135:5"
    declared_at: Mapping[str, str] = _no_map()
    # declared subscription id → digest of its declaration and of the catalog around it
    # (``config.cache.declaration_hashes``); apply skips a row last made true to the same
    declared_hashes: Mapping[str, str] = field(
        default_factory=lambda: EMPTY, compare=False, repr=False
    )

    def accepted_for(self, subscription_id: str | None) -> tuple[str, ...]:
        """The payment method types a subscription's charges may use: its declared
        ``collection.accepted_methods``, else ``settings.payments.accepted_methods``."""
        declared = self.subscriptions.get(subscription_id or "")
        own = declared.collection.accepted_methods if declared else ()
        return own or self.settings.accepted_methods

    def counts(self) -> dict[str, int]:
        return {
            "products": len(self.products),
            "tax_rates": len(self.tax_rates),
            "companies": len(self.companies),
            "contacts": len(self.contacts),
            "deals": len(self.deals),
            "quotes": len(self.quotes),
            "payment_links": len(self.payment_links),
            "subscriptions": len(self.subscriptions),
        }
