"""Analytics from history: point-in-time figures, churn and MRR movements, by month."""

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from abonnement.engine.analytics import History, Revision, figures, month_starts, report
from abonnement.engine.catalog import Settings
from abonnement.engine.schedule import Frequency, add_months

SETTINGS = Settings(account="a", currencies=("USD", "EUR"), default_currency="USD")
MONTHLY, WEEKLY = Frequency.parse("monthly"), Frequency.parse("weekly")
D = date.fromisoformat


def sub(sid, created, statuses=(), revisions=(), currency="USD"):
    revs = tuple(Revision(D(on), freq, Decimal(a), Decimal(n)) for on, freq, a, n in revisions)
    return History(sid, currency, D(created), tuple((D(d), s) for d, s in statuses), revs)


HISTORIES = [
    # new in December, expands in January (25 → 75), contracts in February (75 → 50)
    sub("a", "2026-12-01", [("2026-12-01", "active")],
        [("2026-12-01", MONTHLY, "25.00", "25.00"), ("2027-01-10", MONTHLY, "75.00", "70.00"),
         ("2027-02-03", MONTHLY, "50.00", "45.00")]),
    # weekly 11.90 from November, canceled in January: churned 51.57
    sub("b", "2026-11-20", [("2026-11-20", "active"), ("2027-01-20", "canceled")],
        [("2026-11-20", WEEKLY, "11.90", "10.71")]),
    # paused in December (contraction), resumed in February (expansion, not new)
    sub("c", "2026-11-01", [("2026-11-01", "active"), ("2026-12-15", "paused"),
                            ("2027-02-01", "active")],
        [("2026-11-01", MONTHLY, "10.00", "10.00")]),
    # another currency: never counted in USD
    sub("d", "2026-11-01", [("2026-11-01", "active")], [("2026-11-01", MONTHLY, "99.00", "99.00")],
        currency="EUR"),
    # scheduled in November, starts in March
    sub("e", "2026-11-15", [("2027-03-01", "active")], [("2026-11-15", MONTHLY, "30.00", "30.00")]),
]  # fmt: skip


def series(metric, first="2026-11-01", last="2027-03-01", as_of="2027-03-31"):
    value, rows = report(metric, HISTORIES, SETTINGS, currency="USD", as_of=D(as_of),
                         months=month_starts(D(first), D(last)))  # fmt: skip
    return value, [(m.isoformat()[:7], v) for m, v in rows]


def test_mrr_and_active_at_each_month_end_from_history():
    value, rows = series("mrr")
    assert [(m, str(v.amount)) for m, v in rows] == [
        ("2026-11", "61.57"),  # c 10.00 + b 11.90 × 52/12
        ("2026-12", "76.57"),  # + a 25.00, c paused
        ("2027-01", "75.00"),  # a 75.00, b canceled
        ("2027-02", "60.00"),  # a 50.00 + c resumed 10.00
        ("2027-03", "90.00"),  # + e 30.00
    ]
    assert str(value.amount) == "90.00"
    assert [v for _, v in series("active")[1]] == [2, 2, 1, 2, 3]
    # 12 × the exact 76.5666…, rounded once (not 12 × the rounded 76.57 = 918.84)
    assert str(series("arr", as_of="2026-12-20")[0].amount) == "918.80"


def test_movements_explain_every_change_of_mrr():
    _, rows = series("movements")
    table = {m: {k: str(v.amount) for k, v in moves.items()} for m, moves in rows}
    assert table["2026-11"] == {"new": "61.57", "expansion": "0.00", "contraction": "0.00",
                                "churned": "0.00", "net": "61.57"}  # fmt: skip
    assert table["2026-12"] == {"new": "25.00", "expansion": "0.00", "contraction": "10.00",
                                "churned": "0.00", "net": "15.00"}  # fmt: skip
    assert table["2027-01"] == {"new": "0.00", "expansion": "50.00", "contraction": "0.00",
                                "churned": "51.57", "net": "-1.57"}  # fmt: skip
    assert table["2027-02"] == {"new": "0.00", "expansion": "10.00", "contraction": "25.00",
                                "churned": "0.00", "net": "-15.00"}  # fmt: skip
    assert table["2027-03"]["new"] == "30.00"


def test_churn_is_customers_lost_over_customers_live_at_the_month_start():
    _, rows = series("churn")
    assert dict(rows)["2027-01"] == Decimal("50.00")  # a and b live on 01-01, b lost
    assert dict(rows)["2026-12"] == Decimal("0.00")  # c paused is not lost
    value, _ = report("churn", HISTORIES, SETTINGS, currency="USD", as_of=D("2027-01-19"))
    assert value == Decimal("0.00")  # as it was on the 19th: b not canceled yet


def test_discounts_reduce_mrr_only_when_settings_say_so():
    from dataclasses import replace

    net = replace(SETTINGS, discounts_reduce_mrr=True)
    value, _ = report("mrr", HISTORIES, net, currency="USD", as_of=D("2027-01-15"))
    assert str(value.amount) == "116.41"  # a's net 70.00 + b's 10.71 × 52/12; c paused
    factor = replace(SETTINGS, weekly_mrr_factor=Decimal("4.33"))
    value, _ = report("mrr", HISTORIES, factor, currency="USD", as_of=D("2026-11-30"))
    assert str(value.amount) == "61.53"  # 10.00 + 11.90 × 4.33


events = st.lists(
    st.tuples(st.integers(0, 400), st.sampled_from(["active", "paused", "unpaid", "canceled"])),
    max_size=5,
)
amounts = st.lists(st.tuples(st.integers(0, 400), st.integers(0, 50_000)), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), events, amounts), min_size=1, max_size=8))
def test_each_month_mrr_moves_by_exactly_its_movements(generated):
    base = D("2026-01-01")
    histories = []
    for n, (created, statuses, revisions) in enumerate(generated):
        day = base + timedelta(days=created)
        revs = sorted((day + timedelta(days=o), cents) for o, cents in revisions)
        histories.append(History(
            str(n), "USD", day,
            tuple(sorted((day + timedelta(days=o), s) for o, s in statuses)),
            tuple(Revision(d, MONTHLY, Decimal(c) / 100, Decimal(c) / 100) for d, c in revs),
        ))  # fmt: skip
    months = month_starts(base, D("2027-12-01"))
    windows = [(m, add_months(m, 1) - timedelta(days=1)) for m in months]
    figs = figures(histories, SETTINGS, "USD", windows)
    previous = Decimal(0)
    for fig in figs:
        m = fig.movements
        assert fig.mrr - previous == m["new"] + m["expansion"] - m["contraction"] - m["churned"]
        assert all(v >= 0 for v in m.values())
        previous = fig.mrr


def _customers(lost_on="2027-01-20"):
    """Ten customers live on 2027-01-01; c0 has a second subscription. c1 and c2 cancel
    everything in January, c0 one of its two: 2 customers of 10, 3 subscriptions of 11."""
    out = [History(f"s{n}", "USD", D("2026-11-01"),
                   ((D("2026-11-01"), "active"),) + (((D(lost_on), "canceled"),) if n in (1, 2)
                                                     else ()),
                   (Revision(D("2026-11-01"), MONTHLY, Decimal("10.00"), Decimal("10.00")),),
                   f"c{n}") for n in range(10)]  # fmt: skip
    out.append(History("s0b", "USD", D("2026-11-01"),
                       ((D("2026-11-01"), "active"), (D(lost_on), "canceled")),
                       (Revision(D("2026-11-01"), MONTHLY, Decimal("5.00"), Decimal("5.00")),),
                       "c0"))  # fmt: skip
    return out


def test_customer_churn_counts_customers_not_subscriptions():
    value, _ = report("churn", _customers(), SETTINGS, currency="USD", as_of=D("2027-01-31"))
    assert value == Decimal("20.00")  # c1, c2 of ten; c0 still has a subscription
    value, _ = report("subscription_churn", _customers(), SETTINGS, currency="USD",
                      as_of=D("2027-01-31"))  # fmt: skip
    assert value == Decimal("27.27")  # 3 of 11


def test_a_customer_lost_on_the_first_of_the_month_counts_in_that_month():
    _, rows = report("churn", _customers("2027-01-01"), SETTINGS, currency="USD",
                     as_of=D("2027-01-31"), months=[D("2026-12-01"), D("2027-01-01")])  # fmt: skip
    assert [v for _, v in rows] == [Decimal("0.00"), Decimal("20.00")]


def test_churn_agrees_with_the_churned_movement_of_the_same_month():
    moves, _ = report("movements", _customers(), SETTINGS, currency="USD", as_of=D("2027-01-31"))
    assert str(moves["churned"].amount) == "25.00"  # s1, s2 and s0b: the 3 subscriptions lost
    assert str(moves["net"].amount) == "-25.00"


def test_movements_add_up_to_the_change_of_the_rounded_mrr():
    """Three quarterly 1.00 plans: 3 × 0.333… = 1.00 of MRR, which rounded parts would make
    0.99; the movements are rounded so that they add up to the rounded MRR's change."""
    quarterly = Frequency.parse("quarterly")
    subs = [History(f"q{n}", "USD", D("2027-01-05"), ((D("2027-01-05"), "active"),),
                    (Revision(D("2027-01-05"), quarterly, Decimal("1.00"), Decimal("1.00")),))
            for n in range(3)]  # fmt: skip
    subs.append(History("q3", "USD", D("2026-12-01"), ((D("2026-12-01"), "active"),
                                                       (D("2027-01-20"), "canceled")),
                        (Revision(D("2026-12-01"), quarterly, Decimal("2.00"), Decimal("2.00")),)))  # fmt: skip
    value, rows = report("mrr", subs, SETTINGS, currency="USD", as_of=D("2027-01-31"),
                         months=[D("2026-12-01")])  # fmt: skip
    assert (str(rows[0][1].amount), str(value.amount)) == ("0.67", "1.00")
    moves, _ = report("movements", subs, SETTINGS, currency="USD", as_of=D("2027-01-31"))
    assert {k: str(v.amount) for k, v in moves.items()} == {
        "new": "1.00", "expansion": "0.00", "contraction": "0.00", "churned": "0.67",
        "net": "0.33",
    }  # fmt: skip


def test_a_recurring_discount_steps_and_a_later_revision_replaces_them():
    from dataclasses import replace

    net = replace(SETTINGS, discounts_reduce_mrr=True)
    # 40.00 at half for three payments (Jan, Feb, Mar), so 40.00 from April 1st …
    first = Revision(D("2027-01-01"), MONTHLY, Decimal("40.00"), Decimal("20.00"),
                     ((D("2027-04-01"), Decimal("40.00")),))  # fmt: skip
    # … but changed on March 10th to a plan of 30.00 with no discount: April's step is gone
    second = Revision(D("2027-03-10"), MONTHLY, Decimal("30.00"), Decimal("30.00"))
    h = History("p", "USD", D("2027-01-01"), ((D("2027-01-01"), "active"),), (first, second))
    _, rows = report("mrr", [h], net, currency="USD", as_of=D("2027-05-31"),
                     months=month_starts(D("2027-01-01"), D("2027-04-01")))  # fmt: skip
    assert [str(v.amount) for _, v in rows] == ["20.00", "20.00", "30.00", "30.00"]
    only_first = History("p", "USD", D("2027-01-01"), ((D("2027-01-01"), "active"),), (first,))
    _, rows = report("mrr", [only_first], net, currency="USD", as_of=D("2027-05-31"),
                     months=month_starts(D("2027-01-01"), D("2027-04-01")))  # fmt: skip
    assert [str(v.amount) for _, v in rows] == ["20.00", "20.00", "20.00", "40.00"]
    _, rows = report("mrr", [only_first], SETTINGS, currency="USD", as_of=D("2027-05-31"),
                     months=month_starts(D("2027-01-01"), D("2027-04-01")))  # fmt: skip
    assert [str(v.amount) for _, v in rows] == ["40.00"] * 4  # discounts do not count


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), events, amounts,
                          st.sampled_from(["weekly", "quarterly", "annually", "P3W"])),
                min_size=1, max_size=8))  # fmt: skip
def test_rounded_movements_always_add_up_to_the_rounded_mrr_change(generated):
    from abonnement.engine.analytics import rounded_movements
    from abonnement.engine.money import Money

    base = D("2026-01-01")
    histories = []
    for n, (created, statuses, revisions, freq) in enumerate(generated):
        day = base + timedelta(days=created)
        revs = sorted((day + timedelta(days=o), cents) for o, cents in revisions)
        histories.append(History(
            str(n), "USD", day,
            tuple(sorted((day + timedelta(days=o), s) for o, s in statuses)),
            tuple(Revision(d, Frequency.parse(freq), Decimal(c) / 100, Decimal(c) / 100)
                  for d, c in revs),
        ))  # fmt: skip
    months = month_starts(base, D("2027-12-01"))
    windows = [(m, add_months(m, 1) - timedelta(days=1)) for m in months]
    previous = Money(Decimal(0), "USD")
    for fig in figures(histories, SETTINGS, "USD", windows):
        m = rounded_movements(fig, "USD")
        now = Money(fig.mrr, "USD").rounded()
        assert m["net"] == now - previous
        assert m["new"] + m["expansion"] - m["contraction"] - m["churned"] == m["net"]
        assert all(v.amount >= 0 for k, v in m.items() if k != "net")
        previous = now


def test_a_subscription_canceled_at_a_period_end_stops_counting_from_that_day():
    asked = History("f", "USD", D("2026-12-01"), ((D("2026-12-01"), "active"),),
                    (Revision(D("2026-12-01"), MONTHLY, Decimal("10.00"), Decimal("10.00")),),
                    ends_on=D("2027-01-01"))  # fmt: skip
    mrr = [report("mrr", [asked], SETTINGS, currency="USD", as_of=D(day))[0].amount
           for day in ("2026-12-31", "2027-01-01", "2027-03-01")]  # fmt: skip
    assert [str(v) for v in mrr] == ["10.00", "0.00", "0.00"]
