"""The reminder lead each subscription's next event date was computed with.

The date a billing run claims a subscription by includes its next reminder, so it depends on
the account's reminder settings. Storage keeps no settings: the engine stamps the lead it
scheduled with on the row, and a run reschedules live rows stamped with another lead. Rows
stored before have none (NULL) and are rescheduled by the next run.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("reminder_days", sa.Integer()))


def downgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("reminder_days")
