"""What a subscription bills every period after the discounts that recur: the base of its MRR
when ``settings.analytics.discounts_reduce_mrr`` is on (F28).

A discount recurs unless it is ``once`` (one-off adjustments never count in MRR). It may still
end: ``for N payments`` after the Nth payment, and a condition on the date (``today()``,
``invoice.date``) or on the payments made on the date it stops holding. So the recurring amount
is a schedule: the amount of the period running when the definition was recorded, then the
dates on which it changes. Each amount is the pricing engine run on a representative invoice
of that period with the recurring discount rules alone (no fees, no taxes): exactly what that
invoice shows before fees and taxes. Pure: catalog and rules in, amounts out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from abonnement.engine.catalog import Catalog
from abonnement.engine.money import Money
from abonnement.engine.pricing import price_invoice
from abonnement.engine.subscriptions import Subscription, monthly, mrr_basis, period_amounts

__all__ = ["DATE_FIELDS", "HORIZON_DAYS", "RecurringPricing", "current_index"]

# Fields through which a discount's condition or amount can change from one period to the
# next without the subscription changing: the date, and the payments made.
DATE_FIELDS = frozenset({
    ("today",), ("invoice", "date"), ("invoice", "due_date"), ("subscription", "payments_made"),
    ("subscription", "next_payment_date"), ("subscription", "end_date"),
})  # fmt: skip
# How far ahead a discount that depends on the date is followed: one that ends later than
# five years from when the definition is recorded is counted as not ending.
HORIZON_DAYS = 5 * 366
MAX_PERIODS = 270  # five years of weekly periods


def current_index(sub: Subscription) -> int:
    """The period running now: the last one invoiced (the first before any invoice)."""
    return max(sub.next_index - 1, 0)


def _reads(rule: Any) -> set[tuple[str, ...]]:
    from abonnement.rules.ast import Call, Field
    from abonnement.rules.ruleset import walk

    paths: set[tuple[str, ...]] = set()
    block = rule.block
    for keyword in ("when", "amount"):
        stmt = block.get(keyword) if block is not None else None
        for node in walk(stmt.value) if stmt is not None else ():
            if isinstance(node, Field):
                paths.add(node.path)
            elif isinstance(node, Call):
                paths.add(("today",) if node.name == "today" else ("?", node.name))
    return paths


@dataclass(frozen=True)
class RecurringPricing:
    """Prices the periods of subscriptions with the discount rules that recur."""

    catalog: Catalog
    rules: tuple[Any, ...]  # discount rules, not ``once``, in file order
    limited: int  # the largest N of ``for N payments`` (0: none)
    dated: bool  # some rule reads the date or the payments made (or a plugin function)

    @classmethod
    def of(cls, catalog: Catalog, rules: Sequence[Any] | Any) -> RecurringPricing:
        """From a ``RuleSet`` (or a sequence of pricing rules)."""
        pricing = getattr(rules, "pricing", rules)
        recurring = tuple(r for r in pricing if r.kind == "discount" and not r.once)
        reads = set().union(*(_reads(r) for r in recurring)) if recurring else set()
        dated = bool(reads & DATE_FIELDS) or any(p[0] == "?" for p in reads)
        limited = max((r.for_payments or 0 for r in recurring), default=0)
        return cls(catalog, recurring, limited, dated)

    def _records(self, sub: Subscription) -> Mapping[str, Any]:
        from abonnement.engine.context import buyer_records

        return buyer_records(self.catalog, sub)

    def period_amount(
        self, sub: Subscription, index: int, records: Mapping[str, Any] | None = None
    ) -> Decimal:
        """What period ``index`` of ``sub`` bills after unit discounts and the recurring
        discount rules, before fees and taxes."""
        if not self.rules:
            return period_amounts(sub)[1]
        from abonnement.engine.context import invoice_record, subscription_record, subtotal
        from abonnement.engine.invoicing import line_inputs

        settings = self.catalog.settings
        day = sub.date_of(index)
        record = subscription_record(sub, settings, with_mrr=False)
        record["payments_made"] = index
        # A discount that reads subscription.mrr sees it before rule discounts: the MRR after
        # them is what is being computed.
        record["mrr"] = monthly(period_amounts(sub)[1 if settings.discounts_reduce_mrr else 0],
                                sub.frequency, settings.weekly_mrr_factor,
                                sub.currency).rounded()  # fmt: skip
        amount = subtotal(sub.items, sub.currency, settings.rounding)
        invoice = invoice_record(day, day, index - sub.skipped + 1, amount)
        ctx = {**(records if records is not None else self._records(sub)), "today": day,
               "subscription": record, "invoice": invoice}  # fmt: skip
        priced = price_invoice(line_inputs(sub.items, self.catalog), ctx, self.rules,
                               currency=sub.currency, payments_made=index,
                               rounding=settings.rounding)  # fmt: skip
        return (priced.subtotal - priced.discount_total).amount

    def schedule(
        self, sub: Subscription, on: date
    ) -> tuple[Decimal, tuple[tuple[date, Decimal], ...]]:
        """(what the period running on ``on`` bills, [(date, amount) from which it changes]).

        The periods followed: the current one (``current_index``), then up to the end of the
        longest ``for N payments``, and — when a rule reads the date — every period within
        ``HORIZON_DAYS``; never past a fixed term's last payment."""
        first = current_index(sub)
        last = max(first, self.limited) if self.rules else first
        if self.dated:
            last = first + MAX_PERIODS
        if sub.payments is not None:
            last = min(last, max(first, sub.payments + sub.skipped - 1))
        records = self._records(sub) if self.rules else None
        horizon = on + timedelta(days=HORIZON_DAYS)
        amount = self.period_amount(sub, first, records)
        steps: list[tuple[date, Decimal]] = []
        for index in range(first + 1, last + 1):
            day = sub.date_of(index)
            if day > horizon:
                break
            value = self.period_amount(sub, index, records)
            if day <= on:  # a period already running when recorded: its amount is the start
                amount = value
            elif value != (steps[-1][1] if steps else amount):
                steps.append((day, value))
        return amount, tuple(steps)

    def basis(self, sub: Subscription, on: date) -> dict[str, Any]:
        """``mrr_basis`` with the recurring discounts: ``net`` is what the period running on
        ``on`` bills after them, ``steps`` the later changes (ISO date, amount)."""
        return mrr_basis(sub, self, on)

    def mrr(self, sub: Subscription) -> Money:
        """The MRR of ``sub`` now (its current period), rounded once; discounts count only
        when settings say so."""
        settings = self.catalog.settings
        if settings.discounts_reduce_mrr:
            amount = self.period_amount(sub, current_index(sub))
        else:
            amount = period_amounts(sub)[0]
        return monthly(amount, sub.frequency, settings.weekly_mrr_factor, sub.currency).rounded()
