"""What a database knows of itself: a random instance id, made once, that every payment
idempotency key and processor record carries (two databases never share a key), and the
date its billing timeline stands at (where ``run --until`` picks up).

An existing database gets its instance id here; its timeline starts at its latest invoice's
issue date. Attempts already stored keep the keys they were sent with.

Revision ID: 0007
Revises: 0006
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    meta = op.create_table(
        "meta",
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    rows = [{"name": "instance", "value": secrets.token_hex(8)}]
    latest = op.get_bind().execute(sa.text("SELECT MAX(issue_date) FROM invoices")).scalar()
    if latest is not None:  # a date on PostgreSQL, ISO text on SQLite
        rows.append({"name": "timeline", "value": str(latest)[:10]})
    op.bulk_insert(meta, rows)


def downgrade() -> None:
    op.drop_table("meta")
