"""Claiming deliveries walks the pending ones in key order, and a process finds what it holds
by its token: two indexes, so a pass over the outbox reads each pending delivery once (it
sorted every pending one for each batch of 500 claimed, and each process's claims were found
by reading the whole table), whatever the number of held and sent ones.

Revision ID: 0017
Revises: 0016
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_status_key", "deliveries", ["status", "key"])
    op.create_index("ix_deliveries_claimed", "deliveries", ["claimed_by", "key"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_claimed", "deliveries")
    op.drop_index("ix_deliveries_status_key", "deliveries")
