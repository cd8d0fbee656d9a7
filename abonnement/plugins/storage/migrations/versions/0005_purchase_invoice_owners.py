"""The subscriptions a purchase's invoice belongs to: a checkout or a conversion issues one
invoice for several subscriptions, so its ``subscription_id`` stays NULL and each of them is
a row here (position 0 carries the payment). Invoices stored before are linked to the
subscriptions their lines name, in line order.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BACKFILL = """
INSERT INTO invoice_subscriptions (subscription_id, invoice_number, position)
SELECT subscription_id, invoice_number,
       ROW_NUMBER() OVER (PARTITION BY invoice_number ORDER BY first_line) - 1
FROM (
    SELECT l.subscription_id, l.invoice_number, MIN(l.position) AS first_line
    FROM invoice_lines l JOIN invoices i ON i.number = l.invoice_number
    WHERE i.subscription_id IS NULL AND l.subscription_id IS NOT NULL
    GROUP BY l.subscription_id, l.invoice_number
) AS owners
"""


def upgrade() -> None:
    op.create_table(
        "invoice_subscriptions",
        sa.Column("subscription_id", sa.String(100), primary_key=True),
        sa.Column(
            "invoice_number", sa.String(50), sa.ForeignKey("invoices.number"), primary_key=True
        ),
        sa.Column("position", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_invoice_subscriptions_invoice", "invoice_subscriptions", ["invoice_number", "position"]
    )
    op.execute(_BACKFILL)


def downgrade() -> None:
    op.drop_index("ix_invoice_subscriptions_invoice", "invoice_subscriptions")
    op.drop_table("invoice_subscriptions")
