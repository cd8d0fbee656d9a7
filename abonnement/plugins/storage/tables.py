"""The database schema, as SQLAlchemy Core tables. Money is stored exactly: integer millionths
(``Micros``), never a float, on SQLite and PostgreSQL alike, so SQL sums stay exact."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)

__all__ = ["MICROS_LIMIT", "Micros", "from_micros", "metadata", "to_micros"]

_SCALE = Decimal(1_000_000)
# A BIGINT of millionths: ±9,223,372,036,854.775807 is the largest amount a row holds
# (``engine.bounds`` keeps what the config and the commands write well inside it)
MICROS_LIMIT = 2**63 - 1


def to_micros(value: Any) -> int | None:
    """Decimal → integer millionths. Raises ``ValueError`` for anything finer, or beyond
    ±``MICROS_LIMIT`` millionths (an amount the database's integer cannot hold)."""
    if value is None:
        return None
    scaled = Decimal(value) * _SCALE
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than 6 decimals")
    micros = int(scaled)
    if not -MICROS_LIMIT <= micros <= MICROS_LIMIT:
        raise ValueError(f"{value} is beyond the largest amount storage keeps "
                         f"({from_micros(MICROS_LIMIT)})")  # fmt: skip
    return micros


def from_micros(value: int) -> Decimal:
    """Integer millionths → the Decimal they store."""
    return (Decimal(value) / _SCALE).normalize()


class Micros(TypeDecorator):
    """A Decimal with up to six decimals, stored as an integer count of millionths."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> int | None:
        return to_micros(value)

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        return None if value is None else from_micros(value)


metadata = MetaData()

companies = Table(
    "companies", metadata,
    Column("id", String(100), primary_key=True),
    Column("name", Text, nullable=False),
    Column("address", JSON),
    Column("properties", JSON(none_as_null=True)),
)  # fmt: skip

contacts = Table(
    "contacts", metadata,
    Column("id", String(100), primary_key=True),
    Column("name", Text, nullable=False),
    Column("email", Text, nullable=False),
    Column("company_id", String(100)),
    Column("address", JSON),
    Column("properties", JSON(none_as_null=True)),
)  # fmt: skip

deals = Table(
    "deals", metadata,
    Column("id", String(100), primary_key=True),
    Column("name", Text, nullable=False),
    Column("contact_id", String(100)),
    Column("company_id", String(100)),
)  # fmt: skip

quotes = Table(
    "quotes", metadata,
    Column("id", String(100), primary_key=True),
    Column("deal_id", String(100)),
    Column("contact_id", String(100), nullable=False),
    Column("status", String(20), nullable=False),
)  # fmt: skip

subscriptions = Table(
    "subscriptions", metadata,
    Column("id", String(100), primary_key=True),
    Column("contact_id", String(100), nullable=False),
    Column("company_id", String(100)),
    Column("billing_contact_id", String(100)),
    Column("currency", String(3), nullable=False),
    Column("frequency", String(10), nullable=False),  # ISO 8601: P1M
    Column("anchor", Date, nullable=False),
    Column("payments", Integer),  # NULL: renews until cancelled
    Column("next_index", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("collection_mode", String(20), nullable=False),
    Column("payment_method_id", String(100)),
    Column("payment_token", String(200)),  # what the processor charges
    Column("payment_type", String(10)),  # card | ach | sepa | bacs | pads
    Column("payment_terms", String(20), nullable=False),
    Column("owner", Text),
    Column("invoice_creation", Boolean, nullable=False),
    Column("properties", JSON(none_as_null=True)),
    Column("invoice_settings", JSON(none_as_null=True)),
    Column("deals", JSON(none_as_null=True)),
    Column("quote_id", String(100)),
    Column("created_on", Date),
    Column("open_due_on", Date),
    Column("canceled_on", Date),
    Column("next_event_on", Date),  # what the billing run sorts and claims by
    Column("event_seq", Integer, nullable=False, default=0),
    Column("skipped", Integer, nullable=False, server_default="0"),  # 0002
    Column("cancel_on", Date),  # 0002
    Column("reminded", Integer, nullable=False, server_default="0"),  # 0003: periods reminded
    Column("pending_lines", JSON(none_as_null=True)),  # 0003: one-time lines for the next invoice
    Column("rebase_on", Date),  # 0003: a moved next payment date …
    Column("rebase_index", Integer, nullable=False, server_default="0"),  # … for this payment
    # 0009: the reminder lead (days; 0: none) next_event_on was computed with; NULL: none
    # recorded. A billing run reschedules live rows whose lead is not the settings' one.
    Column("reminder_days", Integer),
    Column("source", String(20), nullable=False),  # declared | checkout | quote | created
    # 0012: digest of the declaration apply last made this row true to (NULL: compare in full)
    Column("declared_hash", String(64)),
    Index("ix_subscriptions_next_event", "next_event_on", "id"),
)  # fmt: skip

subscription_items = Table(
    "subscription_items", metadata,
    Column("subscription_id", String(100), ForeignKey("subscriptions.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("product_id", String(100)),
    Column("sku", Text),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Micros, nullable=False),
    Column("unit_discount", Micros),  # percent
    Column("tax_rate_id", String(100)),
    Column("taxable", Boolean, nullable=False),
    Column("tax_inclusive", Boolean, nullable=False),
    Column("category", Text),
    Column("pricing", String(20), nullable=False),
    Column("tiers", JSON(none_as_null=True)),
)  # fmt: skip

sequences = Table(
    "sequences", metadata,
    Column("name", String(50), primary_key=True),
    Column("value", BigInteger, nullable=False),
)  # fmt: skip

_CHARGING = text("collect_on IS NOT NULL")

invoices = Table(
    "invoices", metadata,
    Column("number", String(50), primary_key=True),
    Column("seq", BigInteger, nullable=False, unique=True),
    Column("subscription_id", String(100)),
    Column("contact_id", String(100), nullable=False),
    Column("status", String(20), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("issue_date", Date, nullable=False),
    Column("due_date", Date, nullable=False),
    Column("period_start", Date),
    Column("period_end", Date),
    Column("subtotal", Micros, nullable=False),
    Column("discount_total", Micros, nullable=False),
    Column("fee_total", Micros, nullable=False),
    Column("tax_total", Micros, nullable=False),
    Column("total", Micros, nullable=False),
    Column("amount_paid", Micros, nullable=False),
    Column("document", JSON),  # language, locale, comments, tax_ids
    Column("collect_on", Date),  # next automatic charge attempt (first try or a retry)
    Column("auto_retries", Integer, nullable=False, default=0),
    Column("first_failure_on", Date),
    # 0004: only invoices with a charge to make (the query's `collect_on <=` implies it)
    Index("ix_invoices_collect_on", "collect_on", sqlite_where=_CHARGING,
          postgresql_where=_CHARGING),
    # also serves lookups by subscription_id alone
    UniqueConstraint("subscription_id", "period_start", name="uq_invoice_period"),
)  # fmt: skip

invoice_lines = Table(
    "invoice_lines", metadata,
    Column("invoice_number", String(50), ForeignKey("invoices.number"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("subscription_id", String(100)),
    Column("description", Text, nullable=False),
    Column("sku", Text),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Micros, nullable=False),
    Column("amount", Micros, nullable=False),
    sqlite_with_rowid=False,  # 0004: stored in key order, one B-tree (an invoice's lines)
)  # fmt: skip

# 0005: the subscriptions a purchase's invoice belongs to (its ``subscription_id`` is NULL:
# one invoice, several subscriptions). Position 0 is the one a payment of it moves and
# tells of; a billing-run invoice has its one subscription in ``invoices.subscription_id``
# and no rows here (nothing more to write on the hot path).
invoice_subscriptions = Table(
    "invoice_subscriptions", metadata,
    Column("subscription_id", String(100), primary_key=True),
    Column("invoice_number", String(50), ForeignKey("invoices.number"), primary_key=True),
    Column("position", Integer, nullable=False),
    Index("ix_invoice_subscriptions_invoice", "invoice_number", "position"),
)  # fmt: skip

invoice_adjustments = Table(
    "invoice_adjustments", metadata,
    Column("invoice_number", String(50), ForeignKey("invoices.number"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("line_position", Integer),  # NULL: invoice scope
    Column("kind", String(10), nullable=False),  # discount | fee | tax
    Column("rule", Text, nullable=False),
    Column("label", Text),
    Column("rate", Micros),  # percent
    Column("inclusive", Boolean, nullable=False),
    Column("amount", Micros, nullable=False),
    Column("base", Micros),  # 0014: a tax's taxable amount (NULL before, and off taxes)
    sqlite_with_rowid=False,  # 0004
)  # fmt: skip

# 0014: credit notes, numbered from the ``credit_note`` row of ``sequences`` (gap-free, in the
# transaction of the refund they document)
credit_notes = Table(
    "credit_notes", metadata,
    Column("number", String(50), primary_key=True),
    Column("seq", BigInteger, nullable=False, unique=True),
    Column("invoice_number", String(50), ForeignKey("invoices.number"), nullable=False,
           index=True),
    Column("payment_id", BigInteger, nullable=False, unique=True),
    Column("amount", Micros, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("issue_date", Date, nullable=False),
)  # fmt: skip

payments = Table(
    "payments", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("invoice_number", String(50), ForeignKey("invoices.number"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("amount", Micros, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("method", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("failure_code", String(50)),
    Column("idempotency_key", String(120), nullable=False, unique=True),
    Column("reference", String(120)),
    Column("on_date", Date, nullable=False),
    Column("check_on", Date),  # a processing bank debit: ask about it again then
    Column("manual", Boolean, nullable=False, default=False),
    Index("ix_payments_check_on", "check_on"),
    Index("ix_payments_invoice", "invoice_number", "status"),
)  # fmt: skip

events = Table(
    "events", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("type", String(50), nullable=False),
    Column("subject_id", String(100), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("on_date", Date, nullable=False),
    Column("payload", JSON),
    Column("delivered", Boolean, nullable=False, default=False),  # handed to notifications
    UniqueConstraint("subject_id", "seq", name="uq_event_subject_seq"),
    Index("ix_events_undelivered", "delivered", "id"),  # 0003
)  # fmt: skip

# 0003: one row per message and channel an event asked for; the key makes a delivery once
deliveries = Table(
    "deliveries", metadata,
    Column("key", String(300), primary_key=True),  # event id/template/recipient/channel
    Column("event_id", BigInteger, nullable=False),
    Column("channel", String(50), nullable=False),
    Column("template", String(100), nullable=False),
    Column("recipient", Text, nullable=False),  # contact | admins | team:NAME | an address
    Column("source", String(120), nullable=False),  # settings | trigger:NAME
    Column("status", String(10), nullable=False),  # pending | sent | failed (gave up) | skipped
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_try_on", Date),
    Column("sent_on", Date),
    Column("error", Text),
    # 0011: the process sending it (a random token) and until when, in epoch seconds: a claim
    # of a process that died lapses then
    Column("claimed_by", String(32)),
    Column("claimed_until", BigInteger),
    Index("ix_deliveries_pending", "status", "next_try_on"),
    # 0017: claims walk the pending ones in key order; a process finds its claims by token
    Index("ix_deliveries_status_key", "status", "key"),
    Index("ix_deliveries_claimed", "claimed_by", "key"),
)  # fmt: skip

# 0005: each config `apply` made true (when it differs from the one before): its version and
# its files' text, relative path → text, so `plan` can bill as the last applied config would
applied_configs = Table(
    "applied_configs", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("version", String(64), nullable=False),
    Column("applied_on", Date, nullable=False),
    Column("files", JSON, nullable=False),
)  # fmt: skip

# 0007: what a database knows of itself, by name: ``instance`` (a random id made with the
# database, in every payment idempotency key) and ``timeline`` (the ISO date the last billing
# run reached)
meta = Table(
    "meta", metadata,
    Column("name", String(50), primary_key=True),
    Column("value", Text, nullable=False),
)  # fmt: skip

# 0008: buyer links (update and pay tokens) used once; by the SHA-256 of the signed payload,
# never the token, so this table opens no link. The primary key makes a second use lose a race.
used_links = Table(
    "used_links", metadata,
    Column("digest", String(64), primary_key=True),
    Column("kind", String(10), nullable=False),  # update | pay
    Column("subject", String(200), nullable=False),  # subscription id | invoice number
    Column("used_on", Date, nullable=False),
)  # fmt: skip

# 0010 (the server): buyers a payment-link page stored, contacts beside the config's YAML ones
# (the `contacts` table of 0001 is unused).
# Matched by e-mail (lower-cased in ``email_key``); the config's contacts win an id or e-mail.
buyers = Table(
    "buyers", metadata,
    Column("id", String(100), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("email", String(320), nullable=False),
    Column("email_key", String(320), nullable=False, unique=True),
    Column("address", JSON),  # {country, line1, line2, city, region, postal_code} or null
    Column("language", String(20)),
    Column("created_on", Date, nullable=False),
)  # fmt: skip

# HTTP API keys: the SHA-256 of the key only (the key is shown once, when made)
api_keys = Table(
    "api_keys", metadata,
    Column("name", String(100), primary_key=True),
    Column("digest", String(64), nullable=False, unique=True),
    Column("prefix", String(12), nullable=False),  # the key's first characters, to tell keys apart
    Column("created_on", Date, nullable=False),
    Column("revoked_on", Date),
)  # fmt: skip

# the first answer to an API write with an Idempotency-Key, per API key; status null while
# the first request is still running
idempotency_keys = Table(
    "idempotency_keys", metadata,
    Column("api_key", String(100), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request", String(64), nullable=False),  # SHA-256 of method, path and body
    Column("status", Integer),
    Column("response", Text),
    Column("created_on", Date, nullable=False),
)  # fmt: skip

# processor webhook events recorded: a replayed event id is refused
webhook_events = Table(
    "webhook_events", metadata,
    Column("processor", String(50), primary_key=True),
    Column("event_id", String(255), primary_key=True),
    Column("type", String(100), nullable=False),
    Column("received_on", Date, nullable=False),
)  # fmt: skip

# 0016: disputes a processor's webhook reported (a buyer's bank contesting a charge), once each
disputes = Table(
    "disputes", metadata,
    Column("processor", String(50), primary_key=True),
    Column("dispute_id", String(255), primary_key=True),
    Column("payment_id", BigInteger, nullable=False),
    Column("invoice_number", String(50), nullable=False),
    Column("amount", Micros, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", String(100)),
    Column("opened_on", Date, nullable=False),
    Index("ix_disputes_invoice", "invoice_number"),
)  # fmt: skip

# 0015: what a payment processor plugin keeps in the database (the ``stripe`` processor).
# Its customer for each contact, made on first use: one per contact, the key decides a race.
processor_customers = Table(
    "processor_customers", metadata,
    Column("processor", String(50), primary_key=True),
    Column("contact_id", String(100), primary_key=True),
    Column("customer_id", String(255), nullable=False),
    Column("created_on", Date, nullable=False),
)  # fmt: skip

# Every charge request as sent, written (and committed) before it is sent: after a crash the
# processor replays exactly this request with the same idempotency key. ``reference`` is the
# processor's id for what it made (a PaymentIntent), once known; ``sent_at`` is UNIX seconds
# (the processor's own clock decides how long a key is remembered, 24 hours at Stripe).
processor_requests = Table(
    "processor_requests", metadata,
    Column("processor", String(50), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request", Text, nullable=False),  # JSON of the request's parameters
    Column("reference", String(255)),
    Column("sent_at", BigInteger, nullable=False),
)  # fmt: skip
