"""Exact money: a ``Decimal`` amount and an ISO 4217 currency. Never a float.

Amounts may carry more digits than the currency's minor unit (unit prices have up to six
decimals); ``rounded()`` brings them to the minor unit at the steps the spec names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache, lru_cache

from iso4217 import Currency as _Iso4217

from abonnement.errors import InvalidInput, MoneyError

__all__ = [
    "ROUNDING_MODES",
    "Money",
    "Percent",
    "allocate",
    "minor_unit",
    "parse_money",
    "parse_percent",
    "positive_amount",
]

# settings.rounding → the decimal module's mode
ROUNDING_MODES = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN}

_MONEY_RE = re.compile(r"^\s*(?P<amount>[+-]?\d+(?:\.\d+)?)\s+(?P<currency>[A-Z]{3})\s*$", re.ASCII)
# ASCII digits only: Python's \d and Decimal() also take ٥ or ５ as a five
_AMOUNT_RE = re.compile(r"\d+(?:\.\d+)?", re.ASCII)  # no sign, exponent, NaN or spaces
_PERCENT_RE = re.compile(r"^\s*(?P<value>[+-]?\d+(?:\.\d+)?)\s*%\s*$", re.ASCII)


@cache
def _minor_units() -> dict[str, int]:
    """ISO 4217's minor unit of every current currency (the ``iso4217`` package carries the
    standard's own list). Not CLDR's digits, which are a display habit: CLDR shows HUF, IDR
    and COP without decimals, though ISO 4217 (and invoices) count them in hundredths. Codes
    without a minor unit (gold, SDR, test codes) are not currencies one bills in."""
    return {c.code: c.exponent for c in _Iso4217 if c.exponent is not None}


def _known_currencies() -> dict[str, int]:
    return _minor_units()


@lru_cache(maxsize=256)
def minor_unit(currency: str) -> int:
    """Digits after the decimal point for ``currency`` per ISO 4217 (USD 2, JPY 0, KWD 3,
    HUF 2)."""
    digits = _minor_units().get(currency)
    if digits is None:
        raise MoneyError(f"unknown currency {currency!r}; expected an ISO 4217 code like 'USD'")
    return digits


@lru_cache(maxsize=256)
def _quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_unit(currency))


def _as_decimal(value: object) -> Decimal:
    if isinstance(value, (bool, float)):
        raise MoneyError(f"refusing {value!r}: money is never a float; use Decimal or a string")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            raise MoneyError(f"{value!r} is not a number") from None
    raise MoneyError(f"refusing {value!r} of type {type(value).__name__} as an amount")


@dataclass(frozen=True, slots=True, order=False)
class Money:
    """An exact amount in one currency. Arithmetic across currencies raises ``MoneyError``."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        # On the hot path of pricing: cheap checks first, the full ones only when needed.
        if self.amount.__class__ is not Decimal:
            object.__setattr__(self, "amount", _as_decimal(self.amount))
        if not self.amount.is_finite():
            raise MoneyError(f"{self.amount} is not a finite amount")
        if self.currency not in _known_currencies():
            minor_unit(self.currency)  # raises with the message

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0), currency)

    @classmethod
    def parse(cls, text: str) -> Money:
        return parse_money(text)

    def _same(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise MoneyError(f"cannot combine money with {type(other).__name__}")
        if other.currency != self.currency:
            raise MoneyError(f"cannot combine {self.currency} with {other.currency}")
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self.amount + self._same(other).amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.amount - self._same(other).amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        return Money(self.amount * _as_decimal(factor), self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        return self.amount < self._same(other).amount

    def __le__(self, other: Money) -> bool:
        return self.amount <= self._same(other).amount

    def __gt__(self, other: Money) -> bool:
        return self.amount > self._same(other).amount

    def __ge__(self, other: Money) -> bool:
        return self.amount >= self._same(other).amount

    def __bool__(self) -> bool:
        return bool(self.amount)

    @property
    def minor_unit(self) -> int:
        return minor_unit(self.currency)

    def rounded(self, rounding: str = ROUND_HALF_UP) -> Money:
        """This amount at the currency's minor unit (half-up unless ``rounding`` says otherwise)."""
        return Money(
            self.amount.quantize(_quantum(self.currency), rounding=rounding), self.currency
        )

    def is_rounded(self) -> bool:
        return self.amount == self.amount.quantize(_quantum(self.currency))

    def to_minor(self) -> int:
        """Integer minor units (cents) of a rounded amount."""
        if not self.is_rounded():
            raise MoneyError(f"{self} has more digits than {self.currency} allows")
        return int(self.amount.scaleb(self.minor_unit))

    @classmethod
    def from_minor(cls, units: int, currency: str) -> Money:
        return cls(Decimal(units).scaleb(-minor_unit(currency)), currency)

    def format_amount(self) -> str:
        """The amount as plain text with at least the currency's minor digits ("25.00")."""
        amount = self.amount
        if amount.as_tuple().exponent > -self.minor_unit:  # type: ignore[operator]
            amount = amount.quantize(_quantum(self.currency))
        return f"{amount:f}"

    def __str__(self) -> str:
        return f"{self.format_amount()} {self.currency}"


@dataclass(frozen=True, slots=True)
class Percent:
    """A percentage kept as written (``15%`` is ``Percent(Decimal("15"))``)."""

    value: Decimal

    @property
    def fraction(self) -> Decimal:
        return self.value / 100

    def of(self, money: Money) -> Money:
        """The unrounded share of ``money``; rounding is the caller's step."""
        return Money(money.amount * self.value / 100, money.currency)

    @classmethod
    def parse(cls, text: str) -> Percent:
        return parse_percent(text)

    def __str__(self) -> str:
        return f"{self.value:f}%"


def parse_money(text: str, *, max_decimals: int = 6) -> Money:
    """``"25.00 USD"`` → ``Money(Decimal("25.00"), "USD")``."""
    if not isinstance(text, str):
        raise MoneyError(f"write money as '25.00 USD', not {text!r}")
    match = _MONEY_RE.match(text)
    if not match:
        raise MoneyError(f"{text!r} is not money; write it as '25.00 USD'")
    amount = Decimal(match["amount"])
    if -amount.as_tuple().exponent > max_decimals:  # type: ignore[operator]
        raise MoneyError(f"{text!r} has more than {max_decimals} decimals")
    return Money(amount, match["currency"])


def positive_amount(
    value: str | Decimal, currency: str, what: str, *, decimals: int | None = None,
    zero: bool = False,
) -> Decimal:  # fmt: skip
    """``value`` (``"12.50"``) as a Decimal amount of ``currency``: greater than zero (or
    zero too, with ``zero``), with at most ``decimals`` decimals (default: the currency's
    minor unit, USD 2, JPY 0) and at most ``engine.bounds.MAX_AMOUNT``. Anything else is
    ``InvalidInput`` naming ``what`` (the option or field, e.g. ``--amount``): a sign, an
    exponent, NaN, a currency code, a comma."""
    places = minor_unit(currency) if decimals is None else decimals
    text = value if isinstance(value, str) else format(value, "f")
    if not isinstance(value, (str, Decimal)) or not _AMOUNT_RE.fullmatch(text):
        kind = "a zero or positive" if zero else "a positive"
        raise InvalidInput(f"{what}: {str(value)!r} is not {kind} amount (e.g. 12.50)")
    amount = Decimal(text)
    if amount == 0 and not zero:
        raise InvalidInput(f"{what}: the amount must be greater than zero")
    if -amount.as_tuple().exponent > places:  # type: ignore[operator]
        raise InvalidInput(f"{what}: {text} has more decimals than {currency} has ({places})")
    from abonnement.engine.bounds import MAX_AMOUNT  # which imports this module

    if amount > MAX_AMOUNT:  # also what storage can hold: checked before anything is written
        raise InvalidInput(f"{what}: {text} is beyond the largest amount abonnement takes "
                           f"({MAX_AMOUNT:,.0f} {currency})")  # fmt: skip
    return amount


def parse_percent(text: str) -> Percent:
    """``"15%"`` → ``Percent(Decimal("15"))``."""
    if not isinstance(text, str):
        raise MoneyError(f"write a percentage as '15%', not {text!r}")
    match = _PERCENT_RE.match(text)
    if not match:
        raise MoneyError(f"{text!r} is not a percentage; write it as '15%'")
    return Percent(Decimal(match["value"]))


def allocate(total: Money, weights: Sequence[Decimal | int]) -> list[Money]:
    """Split a rounded ``total`` over ``weights`` so the parts sum to it exactly.

    Largest remainder: every part gets the floor of its exact share in minor units, and the
    units left over go one each to the largest remainders (ties to the earlier weight). Zero
    weights get zero unless every weight is zero, in which case the split is even.
    """
    if not weights:
        raise MoneyError("cannot allocate over no weights")
    exact_weights = [_as_decimal(w) for w in weights]
    if any(w < 0 for w in exact_weights):
        raise MoneyError("allocation weights must not be negative")
    units = total.rounded().to_minor()
    sign = -1 if units < 0 else 1
    units = abs(units)
    weight_sum = sum(exact_weights)
    if weight_sum == 0:
        exact_weights = [Decimal(1)] * len(exact_weights)
        weight_sum = Decimal(len(exact_weights))
    shares = [units * w / weight_sum for w in exact_weights]
    floors = [int(s) for s in shares]
    left = units - sum(floors)
    by_remainder = sorted(range(len(shares)), key=lambda i: (-(shares[i] - floors[i]), i))
    for i in by_remainder[:left]:
        floors[i] += 1
    return [Money.from_minor(sign * f, total.currency) for f in floors]
