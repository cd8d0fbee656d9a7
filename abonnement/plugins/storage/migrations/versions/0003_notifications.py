"""Notifications (deliveries per event and channel, reminders sent, an index of undelivered
events), prorated lines waiting for a subscription's next invoice, moved payment dates.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("reminded", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("pending_lines", sa.JSON()))
        batch.add_column(sa.Column("rebase_on", sa.Date()))
        batch.add_column(
            sa.Column("rebase_index", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_index("ix_events_undelivered", "events", ["delivered", "id"])
    op.create_table(
        "deliveries",
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(50), nullable=False),
        sa.Column("template", sa.String(100), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("source", sa.String(120), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_try_on", sa.Date()),
        sa.Column("sent_on", sa.Date()),
        sa.Column("error", sa.Text()),
    )
    op.create_index("ix_deliveries_pending", "deliveries", ["status", "next_try_on"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_pending", "deliveries")
    op.drop_table("deliveries")
    op.drop_index("ix_events_undelivered", "events")
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("rebase_index")
        batch.drop_column("rebase_on")
        batch.drop_column("pending_lines")
        batch.drop_column("reminded")
