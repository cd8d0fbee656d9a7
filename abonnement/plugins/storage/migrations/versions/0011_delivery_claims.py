"""Deliveries claimed before they are sent: by whom (a random token per delivering process)
and until when (seconds since the epoch), so concurrent runs and commands share the outbox and
send each message once; a claim left by a process that died lapses at that time.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(32)))
        batch.add_column(sa.Column("claimed_until", sa.BigInteger()))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
