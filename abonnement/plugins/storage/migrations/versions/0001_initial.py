"""The initial schema, frozen as it stood at 0001.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "companies",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("address", sa.JSON()),
        sa.Column("properties", sa.JSON()),
    )
    op.create_table(
        "contacts",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("company_id", sa.String(100)),
        sa.Column("address", sa.JSON()),
        sa.Column("properties", sa.JSON()),
    )
    op.create_table(
        "deals",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("contact_id", sa.String(100)),
        sa.Column("company_id", sa.String(100)),
    )
    op.create_table(
        "events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("type", sa.String(50), nullable=False),
        sa.Column("subject_id", sa.String(100), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("on_date", sa.Date(), nullable=False),
        sa.Column("payload", sa.JSON()),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("subject_id", "seq", name="uq_event_subject_seq"),
    )
    op.create_table(
        "invoices",
        sa.Column("number", sa.String(50), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False, unique=True),
        sa.Column("subscription_id", sa.String(100)),
        sa.Column("contact_id", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("period_start", sa.Date()),
        sa.Column("period_end", sa.Date()),
        sa.Column("subtotal", sa.BigInteger(), nullable=False),
        sa.Column("discount_total", sa.BigInteger(), nullable=False),
        sa.Column("fee_total", sa.BigInteger(), nullable=False),
        sa.Column("tax_total", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("amount_paid", sa.BigInteger(), nullable=False),
        sa.Column("document", sa.JSON()),
        sa.Column("collect_on", sa.Date()),
        sa.Column("auto_retries", sa.Integer(), nullable=False),
        sa.Column("first_failure_on", sa.Date()),
        sa.UniqueConstraint("subscription_id", "period_start", name="uq_invoice_period"),
    )
    op.create_index("ix_invoices_collect_on", "invoices", ["collect_on"])
    op.create_index("ix_invoices_subscription", "invoices", ["subscription_id"])
    op.create_table(
        "quotes",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("deal_id", sa.String(100)),
        sa.Column("contact_id", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
    )
    op.create_table(
        "sequences",
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("contact_id", sa.String(100), nullable=False),
        sa.Column("company_id", sa.String(100)),
        sa.Column("billing_contact_id", sa.String(100)),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("frequency", sa.String(10), nullable=False),
        sa.Column("anchor", sa.Date(), nullable=False),
        sa.Column("payments", sa.Integer()),
        sa.Column("next_index", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("collection_mode", sa.String(20), nullable=False),
        sa.Column("payment_method_id", sa.String(100)),
        sa.Column("payment_token", sa.String(200)),
        sa.Column("payment_type", sa.String(10)),
        sa.Column("payment_terms", sa.String(20), nullable=False),
        sa.Column("owner", sa.Text()),
        sa.Column("invoice_creation", sa.Boolean(), nullable=False),
        sa.Column("properties", sa.JSON()),
        sa.Column("invoice_settings", sa.JSON()),
        sa.Column("deals", sa.JSON()),
        sa.Column("quote_id", sa.String(100)),
        sa.Column("created_on", sa.Date()),
        sa.Column("open_due_on", sa.Date()),
        sa.Column("canceled_on", sa.Date()),
        sa.Column("next_event_on", sa.Date()),
        sa.Column("event_seq", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
    )
    op.create_index("ix_subscriptions_next_event", "subscriptions", ["next_event_on", "id"])
    op.create_table(
        "invoice_adjustments",
        sa.Column(
            "invoice_number", sa.String(50), sa.ForeignKey("invoices.number"), primary_key=True
        ),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("line_position", sa.Integer()),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("label", sa.Text()),
        sa.Column("rate", sa.BigInteger()),
        sa.Column("inclusive", sa.Boolean(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "invoice_lines",
        sa.Column(
            "invoice_number", sa.String(50), sa.ForeignKey("invoices.number"), primary_key=True
        ),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("subscription_id", sa.String(100)),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("sku", sa.Text()),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "payments",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column(
            "invoice_number", sa.String(50), sa.ForeignKey("invoices.number"), nullable=False
        ),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("method", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("failure_code", sa.String(50)),
        sa.Column("idempotency_key", sa.String(120), nullable=False, unique=True),
        sa.Column("reference", sa.String(120)),
        sa.Column("on_date", sa.Date(), nullable=False),
        sa.Column("check_on", sa.Date()),
        sa.Column("manual", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_payments_invoice", "payments", ["invoice_number", "status"])
    op.create_index("ix_payments_check_on", "payments", ["check_on"])
    op.create_table(
        "subscription_items",
        sa.Column(
            "subscription_id", sa.String(100), sa.ForeignKey("subscriptions.id"), primary_key=True
        ),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("product_id", sa.String(100)),
        sa.Column("sku", sa.Text()),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.BigInteger(), nullable=False),
        sa.Column("unit_discount", sa.BigInteger()),
        sa.Column("tax_rate_id", sa.String(100)),
        sa.Column("taxable", sa.Boolean(), nullable=False),
        sa.Column("tax_inclusive", sa.Boolean(), nullable=False),
        sa.Column("category", sa.Text()),
        sa.Column("pricing", sa.String(20), nullable=False),
        sa.Column("tiers", sa.JSON()),
    )

    op.execute("INSERT INTO sequences (name, value) VALUES ('invoice', 0)")


def downgrade() -> None:
    op.drop_table("subscription_items")
    op.drop_table("payments")
    op.drop_table("invoice_lines")
    op.drop_table("invoice_adjustments")
    op.drop_table("subscriptions")
    op.drop_table("sequences")
    op.drop_table("quotes")
    op.drop_table("invoices")
    op.drop_table("events")
    op.drop_table("deals")
    op.drop_table("contacts")
    op.drop_table("companies")
