"""Credit notes (their own gap-free series, the ``credit_note`` row of ``sequences``) and the
taxable amount of each tax adjustment (an invoice's tax summary per rate).

Revision ID: 0014
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credit_notes",
        sa.Column("number", sa.String(50), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False, unique=True),
        sa.Column(
            "invoice_number", sa.String(50), sa.ForeignKey("invoices.number"), nullable=False
        ),
        sa.Column("payment_id", sa.BigInteger(), nullable=False, unique=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
    )
    op.create_index("ix_credit_notes_invoice_number", "credit_notes", ["invoice_number"])
    op.execute("INSERT INTO sequences (name, value) VALUES ('credit_note', 0)")
    op.add_column("invoice_adjustments", sa.Column("base", sa.BigInteger()))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("invoice_adjustments", recreate="always",
                                  table_kwargs={"sqlite_with_rowid": False}) as batch:  # fmt: skip
            batch.drop_column("base")
    else:
        op.drop_column("invoice_adjustments", "base")
    op.execute("DELETE FROM sequences WHERE name = 'credit_note'")
    op.drop_index("ix_credit_notes_invoice_number", table_name="credit_notes")
    op.drop_table("credit_notes")
