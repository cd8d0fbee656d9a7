"""``abonnement plan``: what ``apply`` would do, and what it does to money, without writing.

Each side is the billing run itself, in a transaction that is rolled back, charging nobody:
*before* is the database billed under the config applied last (its rules, prices and
settings: every apply keeps the config's files in the database), *after* is the config as it
is now, applied and billed. So a change of a price, a rule or a declared subscription shows
up as the invoices it changes. A database no config was applied to yet (or applied before
configs were kept) is billed as it is, under the current rules, for *before*.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from abonnement.operations.context import Context
from abonnement.operations.declared import Difference, compare
from abonnement.operations.progress import Progress

if TYPE_CHECKING:
    from abonnement.engine.billing_run import RunSummary

__all__ = ["Invoiced", "Plan", "plan", "signed_amount"]


@dataclass(frozen=True)
class Invoiced:
    """One subscription's (or the total's) invoices in one currency, before and after."""

    subject: str  # a subscription id, or "total"
    currency: str
    before_count: int
    before: Decimal
    after_count: int
    after: Decimal

    @property
    def change(self) -> Decimal:
        return self.after - self.before

    def as_json(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "before": {"invoices": self.before_count, "total": _amount(self.before, self.currency)},
            "after": {"invoices": self.after_count, "total": _amount(self.after, self.currency)},
            "change": signed_amount(self.change, self.currency),
        }


@dataclass
class Plan:
    """What an apply on ``as_of`` would do (``differences``) and the invoices of the months
    up to ``until`` before and after it (``money``: per subscription, then ``totals``)."""

    as_of: date
    months: int
    until: date
    baseline: dict[str, Any] | None  # the applied config compared with: version, applied_on
    differences: list[Difference]
    money: list[Invoiced] = field(default_factory=list)
    totals: list[Invoiced] = field(default_factory=list)

    @property
    def to_apply(self) -> list[Difference]:
        return [d for d in self.differences if d.action in ("create", "change")]

    @property
    def has_changes(self) -> bool:
        """Whether applying changes anything: a subscription, or an invoice to come."""
        return bool(self.to_apply) or any(m.change or m.before_count != m.after_count
                                          for m in self.money)  # fmt: skip

    def as_json(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "until": self.until.isoformat(),
            "months": self.months,
            "baseline": self.baseline,
            "changes": self.has_changes,
            "subscriptions": [d.as_json() for d in self.differences],
            "invoices": {
                "subscriptions": [{"id": m.subject, **m.as_json()} for m in self.money],
                "totals": [m.as_json() for m in self.totals],
            },
        }


def plan(
    ctx: Context,
    as_of: date,
    months: int = 3,
    *,
    prorate: bool = False,
    progress: Progress | None = None,
) -> Plan:
    """What ``apply --as-of AS_OF`` would do, and the invoices of the next ``months`` months
    before and after it; writes nothing and charges nobody. ``progress`` is told
    ``(subscriptions billed, expected)`` over both runs (the second is expected to be as
    long as the first until it starts)."""
    from abonnement.engine.schedule import add_months
    from abonnement.operations.billing import Claims, apply_and_bill, bill

    until = add_months(as_of, months) - timedelta(days=1)
    differences = compare(ctx, as_of, prorate=prorate)
    store = ctx.storage
    first: Claims | None = None
    with _applied(ctx) as (before_ctx, baseline), store.dry_run():
        if progress is not None:
            first = Claims(ctx, until, lambda done, total: progress(done, 2 * (total or 0)))
        if before_ctx is None:
            before = bill(ctx, until, charge=False, keep_invoices=True, progress=first)
        else:
            _, before = apply_and_bill(before_ctx, as_of, until, charge=False,
                                       keep_invoices=True, progress=first)  # fmt: skip
        if first is not None:
            first.finish()
    with store.dry_run():
        second = Claims(ctx, until, progress, base=first.done) if first and progress else None
        _, after = apply_and_bill(ctx, as_of, until, prorate=prorate, charge=False,
                                  keep_invoices=True, progress=second)  # fmt: skip
        if second is not None:
            second.finish()
    result = Plan(as_of, months, until, baseline, differences)
    result.money, result.totals = _money(_sums(before), _sums(after))
    return result


@contextmanager
def _applied(ctx: Context) -> Iterator[tuple[Context | None, dict[str, Any] | None]]:
    """A context under the config applied last (``ctx`` itself when it is the same), and
    what identifies it; (None, None) when none was kept."""
    from abonnement.config.snapshot import config_files, files_version, load_files

    kept = ctx.storage.applied_config()
    if kept is None:
        yield None, None
        return
    baseline = {"version": kept.version, "applied_on": str(kept.applied_on)}
    if files_version(config_files(ctx.config_dir, ctx.catalog)) == kept.version:
        yield ctx, baseline
        return
    with tempfile.TemporaryDirectory(prefix="abonnement-applied-") as folder:
        config = load_files(kept.files, ctx.plugins.names(), Path(folder))
        yield Context(config_dir=Path(folder), catalog=config.catalog, rules=config.rules,
                      plugins=ctx.plugins, open_storage=lambda: ctx.storage,
                      database_url=ctx.database_url), baseline  # fmt: skip


def _sums(summary: RunSummary) -> dict[tuple[str, str], tuple[int, Decimal]]:
    """(subscription, currency) → (invoices, total)."""
    out: dict[tuple[str, str], tuple[int, Decimal]] = {}
    for _, draft in summary.invoices:
        key = (draft.subscription_id, draft.currency)
        count, total = out.get(key, (0, Decimal(0)))
        out[key] = (count + 1, total + draft.total.amount)
    return out


def _money(
    before: dict[tuple[str, str], tuple[int, Decimal]],
    after: dict[tuple[str, str], tuple[int, Decimal]],
) -> tuple[list[Invoiced], list[Invoiced]]:
    rows = []
    totals: dict[str, list[Any]] = {}
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key, (0, Decimal(0))), after.get(key, (0, Decimal(0)))
        rows.append(Invoiced(key[0], key[1], b[0], b[1], a[0], a[1]))
        total = totals.setdefault(key[1], [0, Decimal(0), 0, Decimal(0)])
        for i, value in enumerate((*b, *a)):
            total[i] += value
    return rows, [Invoiced("total", c, *t) for c, t in sorted(totals.items())]


def _amount(value: Decimal, currency: str) -> str:
    """``value`` in ``currency``'s minor unit, as invoices show it."""
    from abonnement.engine.money import Money

    return Money(value, currency).format_amount()


def signed_amount(value: Decimal, currency: str) -> str:
    """A difference of money: ``+150.00``, ``-12.90``, ``0.00``."""
    return ("+" if value > 0 else "") + _amount(value, currency)
