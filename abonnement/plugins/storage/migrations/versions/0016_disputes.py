"""Disputes: a buyer's bank contesting a charge, as the processor's webhook told it, once each.

Revision ID: 0016
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "disputes",
        sa.Column("processor", sa.String(50), primary_key=True),
        sa.Column("dispute_id", sa.String(255), primary_key=True),
        sa.Column("payment_id", sa.BigInteger(), nullable=False),
        sa.Column("invoice_number", sa.String(50), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),  # millionths (Micros)
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.String(100)),
        sa.Column("opened_on", sa.Date(), nullable=False),
    )
    op.create_index("ix_disputes_invoice", "disputes", ["invoice_number"])


def downgrade() -> None:
    op.drop_index("ix_disputes_invoice", "disputes")
    op.drop_table("disputes")
