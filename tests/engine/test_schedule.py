import itertools
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abonnement.engine.schedule import (
    FREQUENCY_NAMES,
    AtPurchase,
    DelayDays,
    DelayMonths,
    Frequency,
    OnDate,
    Unit,
    billing_date,
    end_date,
    resolve_start,
)
from abonnement.errors import ScheduleError


def dates(anchor, name, count, start=0):
    freq = Frequency.parse(name)
    return [billing_date(anchor, freq, n).isoformat() for n in range(start, start + count)]


def test_monthly_dates_keep_the_anchor_day_clamped_at_month_end():
    # S5: monthly from 2027-01-31
    assert dates(date(2027, 1, 31), "monthly", 5) == [
        "2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30", "2027-05-31",
    ]  # fmt: skip


def test_annual_dates_from_a_leap_day_fall_on_feb_28_in_common_years():
    # S5: annually from 2028-02-29
    assert dates(date(2028, 2, 29), "annually", 4, start=1) == [
        "2029-02-28", "2030-02-28", "2031-02-28", "2032-02-29",
    ]  # fmt: skip


def test_biweekly_is_fourteen_days():
    # S5: biweekly from 2026-12-30
    assert dates(date(2026, 12, 30), "biweekly", 3, start=1) == [
        "2027-01-13", "2027-01-27", "2027-02-10",
    ]  # fmt: skip


def test_seed_biweekly_renewals():
    # S1's biweekly renewals from 2026-12-01
    assert dates(date(2026, 12, 1), "biweekly", 6, start=1) == [
        "2026-12-15", "2026-12-29", "2027-01-12", "2027-01-26", "2027-02-09", "2027-02-23",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "iso", "second"),
    [
        ("weekly", "P1W", "2027-01-08"),
        ("biweekly", "P2W", "2027-01-15"),
        ("monthly", "P1M", "2027-02-01"),
        ("quarterly", "P3M", "2027-04-01"),
        ("per_six_months", "P6M", "2027-07-01"),
        ("annually", "P1Y", "2028-01-01"),
        ("per_two_years", "P2Y", "2029-01-01"),
        ("per_three_years", "P3Y", "2030-01-01"),
        ("per_four_years", "P4Y", "2031-01-01"),
        ("per_five_years", "P5Y", "2032-01-01"),
    ],
)
def test_the_ten_frequencies_and_their_iso_durations(name, iso, second):
    freq = Frequency.parse(name)
    assert Frequency.parse(iso) == freq
    assert freq.iso == iso and freq.name == name
    assert billing_date(date(2027, 1, 1), freq, 1).isoformat() == second


def test_other_iso_durations_and_day_counts():
    assert Frequency.parse("P14D") == Frequency(2, Unit.WEEK)
    assert Frequency.parse("P2M").name == "P2M"
    for bad in ["P10D", "P0M", "fortnightly", "P1H", "monthly "]:
        with pytest.raises(ScheduleError):
            Frequency.parse(bad)


def test_fixed_term_ends_n_periods_after_start():
    # S2: 6 monthly payments from 2027-03-01 end on 2027-09-01; the last is 2027-08-01
    monthly = Frequency.parse("monthly")
    assert end_date(date(2027, 3, 1), monthly, 6) == date(2027, 9, 1)
    assert billing_date(date(2027, 3, 1), monthly, 5) == date(2027, 8, 1)
    with pytest.raises(ScheduleError):
        end_date(date(2027, 3, 1), monthly, 0)


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (AtPurchase(), date(2027, 1, 31)),
        (OnDate(date(2027, 3, 1)), date(2027, 3, 1)),
        (DelayDays(30), date(2027, 3, 2)),
        (DelayMonths(1), date(2027, 2, 28)),
    ],
)
def test_delayed_starts(start, expected):
    assert resolve_start(date(2027, 1, 31), start) == expected


FOUR_YEARS = st.dates(min_value=date(2027, 1, 1), max_value=date(2030, 12, 31))
FREQUENCIES = st.sampled_from([Frequency.parse(n) for n in FREQUENCY_NAMES])


def _last_day(d: date) -> int:
    nxt = date(d.year + d.month // 12, d.month % 12 + 1, 1)
    return (nxt - timedelta(days=1)).day


@settings(max_examples=1500)
@given(anchor=FOUR_YEARS, freq=FREQUENCIES)
def test_every_anchor_and_frequency_keeps_the_calendar(anchor, freq):
    series = [billing_date(anchor, freq, n) for n in range(0, 30)]
    assert all(a < b for a, b in itertools.pairwise(series))
    for n, d in enumerate(series):
        if freq.unit is Unit.WEEK:
            assert (d - anchor).days == 7 * freq.count * n
            continue
        months = (d.year - anchor.year) * 12 + d.month - anchor.month
        assert months == n * freq.months  # never skips or repeats a month
        assert d.day == anchor.day or (d.day == _last_day(d) and anchor.day > d.day)


def test_every_start_day_of_four_years_for_every_frequency():
    # Exhaustive twin of the property above: every anchor of 2027–2030 × the ten frequencies.
    for freq in (Frequency.parse(n) for n in FREQUENCY_NAMES):
        anchor = date(2027, 1, 1)
        while anchor.year < 2031:
            series = [billing_date(anchor, freq, n) for n in range(13)]
            assert all(a < b for a, b in itertools.pairwise(series))
            if freq.unit is not Unit.WEEK:
                for d in series:
                    assert d.day == anchor.day or d.day == _last_day(d) < anchor.day
            anchor += timedelta(days=1)
