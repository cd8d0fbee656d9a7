"""The configs ``apply`` made true, so ``plan`` can bill the database as the last applied
config (its rules, prices, settings) would, beside the config as it is now.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "applied_configs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("applied_on", sa.Date(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("applied_configs")
