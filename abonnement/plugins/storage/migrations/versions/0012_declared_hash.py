"""A digest of the declaration each declared subscription was last made equal to.

``apply`` compares every declared subscription with its row; with the digest of the
declaration (and of the config around it) that the row was last made true to, an unchanged
one is known without loading it. A write of a definition column outside ``apply`` clears it.
NULL: compare in full.

Revision ID: 0012
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("declared_hash", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("declared_hash")
