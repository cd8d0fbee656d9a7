"""Fewer index writes per invoice: the index on invoices.subscription_id goes (the unique
(subscription_id, period_start) index serves the same lookups), the collect_on index holds
only invoices that have a charge to make, and on SQLite invoice lines and adjustments are
stored in their primary key's order (WITHOUT ROWID: one B-tree instead of two).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_CHILDREN = ("invoice_lines", "invoice_adjustments")


def _collect_on_index(**where: object) -> None:
    op.drop_index("ix_invoices_collect_on", "invoices")
    op.create_index("ix_invoices_collect_on", "invoices", ["collect_on"], **where)


def _rowid(keep: bool) -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in _CHILDREN:  # rows copied into a new table of the same columns
            with op.batch_alter_table(name, recreate="always",
                                      table_kwargs={"sqlite_with_rowid": keep}):  # fmt: skip
                pass


def upgrade() -> None:
    op.drop_index("ix_invoices_subscription", "invoices")
    charging = sa.text("collect_on IS NOT NULL")
    _collect_on_index(sqlite_where=charging, postgresql_where=charging)
    _rowid(False)


def downgrade() -> None:
    _rowid(True)
    _collect_on_index()
    op.create_index("ix_invoices_subscription", "invoices", ["subscription_id"])
