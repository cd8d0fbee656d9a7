"""What a payment processor plugin keeps: its customer per contact, and every charge request
as sent (replayed with the same idempotency key after a crash).

Revision ID: 0015
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "processor_customers",
        sa.Column("processor", sa.String(50), primary_key=True),
        sa.Column("contact_id", sa.String(100), primary_key=True),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("created_on", sa.Date(), nullable=False),
    )
    op.create_table(
        "processor_requests",
        sa.Column("processor", sa.String(50), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("reference", sa.String(255)),
        sa.Column("sent_at", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("processor_requests")
    op.drop_table("processor_customers")
