"""The largest quantities and amounts abonnement takes, so every invoice fits the database.

Storage keeps an amount as a 64-bit count of millionths: ±9,223,372,036,854.775807 at most.
A quantity is a 32-bit integer. What the config, the commands and the edits write stays well
inside: a fixed term of at most ``MAX_PAYMENTS`` payments ending by the year 9999, a
quantity of at most ``MAX_QUANTITY``, and any single amount — a price, a fee, a
line (quantity × unit price, by its pricing model) — of at most ``MAX_AMOUNT``, so an
invoice of up to nine such lines still fits. An invoice beyond what storage holds (far more
lines, or records written around these checks) fails to store: the billing run sets that
subscription aside and names it, and bills everyone else.

Dates written stay between ``FIRST_DAY`` and ``LAST_DAY``, so a run up to the last day bills a
bounded number of periods and a period end or due date computed from them is a calendar date
(Python's end at 9999-12-31); a fixed number of payments must end by then
(``payments_problem``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from abonnement.engine.money import Money

if TYPE_CHECKING:
    from abonnement.engine.items import Item
    from abonnement.engine.schedule import Frequency
    from abonnement.engine.subscriptions import Subscription

__all__ = [
    "FIRST_DAY",
    "LAST_DAY",
    "MAX_AMOUNT",
    "MAX_PAYMENTS",
    "MAX_QUANTITY",
    "amount_problem",
    "day_problem",
    "item_problem",
    "items_problem",
    "payments_problem",
    "quantity_problem",
    "term_problem",
]

MAX_QUANTITY = 1_000_000_000
MAX_PAYMENTS = 1200  # a fixed term (``terms: {payments: N}``, ``--payments``): 100 years monthly
MAX_AMOUNT = Decimal(1_000_000_000_000)  # 10¹²: one price, one fee, one line
_SHOWN = f"{MAX_AMOUNT:,.0f}"
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2099, 12, 31)


def day_problem(day: date) -> str | None:
    """Why ``day`` is beyond the bounds, or None."""
    if FIRST_DAY <= day <= LAST_DAY:
        return None
    return f"{day.isoformat()} is outside {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}"


def amount_problem(money: Money, what: str = "an amount", made_of: str = "") -> str | None:
    """Why ``money`` is beyond the bounds, or None: ``what`` names it, ``made_of`` says how
    it was reached (``1,000,000,000 × 10000.00 USD``)."""
    if abs(money.amount) <= MAX_AMOUNT:
        return None
    how = f" ({made_of})" if made_of else ""
    return (f"{what} of {money}{how} is beyond the largest abonnement takes "
            f"({_SHOWN} {money.currency})")  # fmt: skip


def payments_problem(payments: int, frequency: Frequency | None = None) -> str | None:
    """Why a fixed number of ``payments`` is beyond the bounds, or None: more than
    ``MAX_PAYMENTS``, or so many of ``frequency`` that, from ``LAST_DAY``, they would end past
    the calendar."""
    from abonnement.engine.schedule import billing_date

    if not 1 <= payments <= MAX_PAYMENTS:
        return f"{payments:,} payments is outside 1 to {MAX_PAYMENTS:,}"
    try:
        if frequency is not None:
            billing_date(LAST_DAY, frequency, payments)
    except (OverflowError, ValueError):
        return f"{payments:,} payments of {frequency.iso} end after the year 9999"
    return None


def quantity_problem(quantity: int) -> str | None:
    """Why ``quantity`` is beyond the bounds, or None."""
    if 1 <= quantity <= MAX_QUANTITY:
        return None
    return f"quantity {quantity:,} is outside 1 to {MAX_QUANTITY:,}"


def item_problem(item: Item) -> str | None:
    """Why a line is beyond the bounds — its quantity, its unit price or its amount at that
    quantity — or None."""
    return (
        quantity_problem(item.quantity)
        or amount_problem(item.unit_price, "a unit price")
        or amount_problem(
            item.amount(), f"the line `{item.name}`", f"{item.quantity:,} × {item.unit_price}"
        )
    )


def items_problem(items: Iterable[Item]) -> str | None:
    """The first line of ``items`` beyond the bounds, numbered from 1, or None."""
    for position, item in enumerate(items, start=1):
        problem = item_problem(item)
        if problem:
            return f"line {position}: {problem}"
    return None


def term_problem(sub: Subscription) -> str | None:
    """Why a subscription's fixed term is beyond the bounds — more than ``MAX_PAYMENTS``
    payments, or a last payment after the calendar's end (year 9999) — or None."""
    if sub.payments is None:
        return None
    counted = payments_problem(sub.payments)  # the count first, as the config checks it
    if counted:
        return counted
    try:
        sub.date_of(sub.payments + sub.skipped)
    except (ValueError, OverflowError):
        return (f"{sub.payments:,} payments {sub.frequency} from {sub.anchor} end after the "
                "year 9999")  # fmt: skip
    return None
