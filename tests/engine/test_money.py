from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from abonnement.engine.money import Money, Percent, allocate, minor_unit, parse_money, parse_percent
from abonnement.errors import MoneyError

D = Decimal


@pytest.mark.parametrize(
    ("currency", "digits"),
    # HUF, IDR, COP: 2 in ISO 4217, where CLDR (babel) says 0; IQD 3 where CLDR says 0
    [("USD", 2), ("EUR", 2), ("JPY", 0), ("KWD", 3), ("HUF", 2), ("IDR", 2), ("COP", 2),
     ("IQD", 3), ("ISK", 0), ("CLF", 4)],
)  # fmt: skip
def test_minor_units_come_from_iso_4217(currency, digits):
    assert minor_unit(currency) == digits


def test_amounts_round_to_the_iso_minor_unit():
    assert Money(D("1234.565"), "HUF").rounded() == Money(D("1234.57"), "HUF")
    assert Money(D("1.0005"), "IQD").rounded() == Money(D("1.001"), "IQD")
    assert Money(D("10.5"), "ISK").rounded() == Money(D("11"), "ISK")


@pytest.mark.parametrize("code", ["XAU", "XXX", "XTS", "XYZ"])
def test_codes_without_a_minor_unit_are_not_billing_currencies(code):
    with pytest.raises(MoneyError, match="unknown currency"):
        Money(D(1), code)


def test_parse_money_keeps_the_amount_exactly():
    assert parse_money("25.00 USD") == Money(D("25.00"), "USD")
    assert parse_money("0.123456 USD").amount == D("0.123456")


@pytest.mark.parametrize(
    "text", ["25.00", "25.00 usd", "25,00 USD", "USD 25.00", "1.1234567 USD", "25.00 XYZ", ""]
)
def test_parse_money_refuses_what_is_not_money(text):
    with pytest.raises(MoneyError):
        parse_money(text)


def test_parse_percent():
    assert parse_percent("15%") == Percent(D("15"))
    assert parse_percent("8.875%").fraction == D("0.08875")
    with pytest.raises(MoneyError):
        parse_percent("15")


def test_floats_are_refused_everywhere():
    with pytest.raises(MoneyError):
        Money(0.1, "USD")  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        Money(D("1"), "USD") * 1.5  # type: ignore[operator]
    with pytest.raises(MoneyError):
        parse_money(25.0)  # type: ignore[arg-type]


def test_mixed_currencies_refuse_to_combine():
    with pytest.raises(MoneyError, match="USD with EUR"):
        Money(D("1"), "USD") + Money(D("1"), "EUR")
    with pytest.raises(MoneyError):
        _ = Money(D("1"), "USD") < Money(D("1"), "EUR")


def test_unit_discount_example_of_the_spec_rounds_half_up():
    # F9: 11.90 with 15% → discount 1.785 → 1.79 → pays 10.11
    price = parse_money("11.90 USD")
    discount = Percent(D("15")).of(price)
    assert discount.amount == D("1.785")
    assert discount.rounded() == parse_money("1.79 USD")
    assert price - discount.rounded() == parse_money("10.11 USD")


def test_rounding_mode_is_configurable():
    assert Money(D("2.345"), "USD").rounded() == Money(D("2.35"), "USD")
    assert Money(D("2.345"), "USD").rounded(ROUND_HALF_EVEN) == Money(D("2.34"), "USD")
    assert Money(D("2.5"), "JPY").rounded() == Money(D("3"), "JPY")
    assert Money(D("1.0005"), "KWD").rounded() == Money(D("1.001"), "KWD")


def test_formatting_shows_the_minor_unit():
    assert str(Money(D("25"), "USD")) == "25.00 USD"
    assert str(Money(D("0.125"), "USD")) == "0.125 USD"
    assert str(Money(D("1000"), "JPY")) == "1000 JPY"


def test_minor_units_round_trip():
    assert Money(D("12.34"), "USD").to_minor() == 1234
    assert Money.from_minor(1234, "USD") == Money(D("12.34"), "USD")
    with pytest.raises(MoneyError):
        Money(D("12.345"), "USD").to_minor()


def test_allocate_gives_leftover_cents_to_the_largest_remainders():
    parts = allocate(parse_money("10.00 USD"), [1, 1, 1])
    assert [str(p) for p in parts] == ["3.34 USD", "3.33 USD", "3.33 USD"]
    parts = allocate(parse_money("5.00 USD"), [D("360.00"), D("89.10")])
    assert [str(p) for p in parts] == ["4.01 USD", "0.99 USD"]


def test_allocate_with_all_zero_weights_splits_evenly():
    assert [str(p) for p in allocate(parse_money("1.00 USD"), [0, 0])] == ["0.50 USD", "0.50 USD"]


amounts = st.decimals(min_value=D("-100000"), max_value=D("100000"), places=2)
weights = st.lists(st.decimals(min_value=0, max_value=D("1e6"), places=6), min_size=1, max_size=20)


@given(amount=amounts, weights=weights, currency=st.sampled_from(["USD", "JPY", "KWD"]))
def test_allocation_always_sums_exactly(amount, weights, currency):
    total = Money(amount, currency).rounded()
    parts = allocate(total, weights)
    assert sum((p.amount for p in parts), D(0)) == total.amount
    assert all(p.is_rounded() and isinstance(p.amount, Decimal) for p in parts)
    # no part is more than one minor unit away from its exact share
    weight_sum = sum(weights) or len(weights)
    unit = D(1).scaleb(-minor_unit(currency))
    for part, w in zip(parts, weights or [1], strict=True):
        share = total.amount * (w if sum(weights) else 1) / weight_sum
        assert abs(part.amount - share) < unit


@given(amount=st.decimals(min_value=D("-1e9"), max_value=D("1e9"), places=6))
def test_text_round_trip(amount):
    money = Money(amount, "USD")
    assert parse_money(str(money)) == money
    assert not isinstance(money.amount, float)


@given(a=amounts, b=amounts)
def test_sum_of_rounded_parts_is_exact(a, b):
    x, y = Money(a, "USD"), Money(b, "USD")
    assert (x + y).amount == a + b
    assert (x + y - y) == x
