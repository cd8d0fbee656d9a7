"""The initial schema.

Revision ID: 0001
Revises:
"""

from alembic import op

from abonnement.plugins.storage import tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The first revision creates the schema of tables.py as it stood at 0001; every later
    # change to tables.py comes with its own explicit revision.
    tables.metadata.create_all(op.get_bind())
    op.execute(tables.sequences.insert().values(name="invoice", value=0))


def downgrade() -> None:
    tables.metadata.drop_all(op.get_bind())
