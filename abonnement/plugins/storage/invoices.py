"""Invoices in SQL: numbered drafts written in batches, and read back as ``InvoiceRecord``.

Numbers are gap-free: the counter row moves in the same transaction as the invoices it
numbers (and stays locked until that commits, so workers take turns at it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, or_, select, update

from abonnement.engine.invoicing import InvoiceDraft
from abonnement.engine.money import Money
from abonnement.engine.records import AdjustmentRecord, InvoiceRecord, LineRecord
from abonnement.engine.status import InvoiceStatus
from abonnement.plugins.storage import tables as t
from abonnement.plugins.storage.database import Database
from abonnement.plugins.storage.rows import INSERT_ADJUSTMENT, INSERT_INVOICE, INSERT_LINE

__all__ = ["Invoices", "of_subscription"]

_I, _L = t.invoices.c, t.invoice_subscriptions.c
_STATUS = {s.value: s for s in InvoiceStatus}


def of_subscription(sub_id: str) -> Any:
    """Invoices of ``sub_id``: its own, and those of the purchase that started it."""
    linked = select(_L.invoice_number).where(_L.subscription_id == sub_id)
    return or_(_I.subscription_id == sub_id, _I.number.in_(linked))


class Invoices:
    """The invoices of one ``Database``."""

    def __init__(self, db: Database):
        self.db = db

    def insert(
        self, conn: Connection, drafts: Sequence[InvoiceDraft], number_format: str
    ) -> list[str]:
        """Number ``drafts`` in order (``number_format`` with ``{seq}``) and write them with
        their lines and adjustments, in the caller's transaction; returns the numbers."""
        if not drafts:
            return []
        last = conn.execute(
            update(t.sequences).where(t.sequences.c.name == "invoice")
            .values(value=t.sequences.c.value + len(drafts)).returning(t.sequences.c.value)
        ).scalar_one()  # fmt: skip
        first = last - len(drafts) + 1
        numbers = [number_format.format(seq=first + i) for i in range(len(drafts))]
        codec = self.db.codec
        invoices, lines, adjustments = codec.invoice_rows(first, numbers, drafts)
        codec.executemany(conn, *INSERT_INVOICE, invoices)
        codec.executemany(conn, *INSERT_LINE, lines)
        codec.executemany(conn, *INSERT_ADJUSTMENT, adjustments)
        return numbers

    def invoices(
        self, subscription_id: str | None = None, status: str | None = None
    ) -> list[InvoiceRecord]:
        query = select(t.invoices).order_by(_I.seq)
        if subscription_id:
            query = query.where(of_subscription(subscription_id))
        if status:
            query = query.where(_I.status == status)
        with self.db.tx() as conn:
            return [invoice_record(row) for row in conn.execute(query)]

    def invoice(self, number: str) -> InvoiceRecord | None:
        with self.db.tx() as conn:
            row = conn.execute(select(t.invoices).where(_I.number == number)).first()
            if row is None:
                return None
            line_rows = conn.execute(
                select(t.invoice_lines)
                .where(t.invoice_lines.c.invoice_number == number)
                .order_by(t.invoice_lines.c.position)
            )
            adjustment_rows = conn.execute(select(t.invoice_adjustments).where(
                t.invoice_adjustments.c.invoice_number == number,
            ).order_by(t.invoice_adjustments.c.position))  # fmt: skip
            currency = row.currency
            lines = tuple(
                LineRecord(
                    r.position,
                    r.description,
                    r.sku,
                    r.quantity,
                    Money(r.unit_price, currency),
                    Money(r.amount, currency),
                    r.subscription_id,
                )
                for r in line_rows
            )
            adjustments = tuple(
                AdjustmentRecord(
                    r.position,
                    r.line_position,
                    r.kind,
                    r.rule,
                    Money(r.amount, currency),
                    r.label,
                    r.rate,
                    bool(r.inclusive),
                    Money(r.base, currency) if r.base is not None else None,
                )
                for r in adjustment_rows
            )
            return invoice_record(row, lines, adjustments)

    def header(self, conn: Connection, number: str) -> InvoiceRecord | None:
        """One invoice without lines, in the caller's transaction."""
        row = conn.execute(select(t.invoices).where(_I.number == number)).first()
        return invoice_record(row) if row is not None else None

    def owners(self, number: str, conn: Connection | None = None) -> list[str]:
        """The subscriptions invoice ``number`` belongs to: its own, or those of the purchase
        that issued it (the first one carries its payments)."""
        if conn is None:
            with self.db.tx() as c:
                return self.owners(number, c)
        own = conn.execute(select(_I.subscription_id).where(_I.number == number)).scalar()
        if own is not None:
            return [own]
        return list(conn.execute(select(_L.subscription_id).where(_L.invoice_number == number)
                                 .order_by(_L.position)).scalars())  # fmt: skip


def invoice_record(
    row: Any, lines: tuple[LineRecord, ...] = (), adjustments: tuple[AdjustmentRecord, ...] = ()
) -> InvoiceRecord:
    """An ``InvoiceRecord`` from a row of ``invoices`` (by column name)."""
    c = row.currency
    return InvoiceRecord(
        number=row.number, seq=row.seq, subscription_id=row.subscription_id,
        contact_id=row.contact_id, status=_STATUS[row.status], currency=c,
        issue_date=row.issue_date, due_date=row.due_date, period_start=row.period_start,
        period_end=row.period_end, subtotal=Money(row.subtotal, c),
        discount_total=Money(row.discount_total, c), fee_total=Money(row.fee_total, c),
        tax_total=Money(row.tax_total, c), total=Money(row.total, c),
        amount_paid=Money(row.amount_paid, c), document=row.document or {},
        collect_on=row.collect_on, auto_retries=row.auto_retries,
        first_failure_on=row.first_failure_on, lines=lines, adjustments=adjustments,
    )  # fmt: skip
