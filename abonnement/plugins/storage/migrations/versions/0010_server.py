"""The server: buyers a payment-link page created, HTTP API keys, idempotent API writes and
the processor webhook events received.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "buyers",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("email_key", sa.String(320), nullable=False, unique=True),
        sa.Column("address", sa.JSON()),
        sa.Column("language", sa.String(20)),
        sa.Column("created_on", sa.Date(), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(12), nullable=False),
        sa.Column("created_on", sa.Date(), nullable=False),
        sa.Column("revoked_on", sa.Date()),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("api_key", sa.String(100), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer()),
        sa.Column("response", sa.Text()),
        sa.Column("created_on", sa.Date(), nullable=False),
    )
    op.create_table(
        "webhook_events",
        sa.Column("processor", sa.String(50), primary_key=True),
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
    )


def downgrade() -> None:
    for table in ("webhook_events", "idempotency_keys", "api_keys", "buyers"):
        op.drop_table(table)
