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
    assert str(series("arr", as_of="2026-12-20")[0].amount) == "918.84"  # 12 × 76.57


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
