"""MRR follows what is billed every period (F28): rule discounts count by their duration when
``discounts_reduce_mrr`` is on, and every face that shows MRR agrees."""

import pytest

from tests.acceptance.scenario import Scenario

PLAN = """\
  - id: bob-plan
    contact: bob
    start: 2026-12-01
    items: [{name: Plan, unit_price: "40.00 USD", frequency: monthly}]
    collection: {mode: automatic, method: saved, payment_method: bob-visa}
"""
REDUCE = {"discounts_reduce_mrr: false": "discounts_reduce_mrr: true"}
SEGMENT = "\nsegment half_mrr {\n  of subscriptions\n  where subscription.mrr == 20.00 USD\n}\n"


def _scenario(tmp_path, db_url, rules, subscriptions=PLAN, replace=REDUCE):
    s = Scenario(tmp_path, db_url, rules=rules + SEGMENT, subscriptions=subscriptions,
                 replace=replace)  # fmt: skip
    s.cli("apply", "--as-of", "2026-11-20")
    return s


def _mrr(s, as_of):
    return s.cli("report", "mrr", "--as-of", as_of)["value"]


def _faces(s, as_of):
    """MRR as the report, the subscription and the rule field `subscription.mrr` see it."""
    members = s.cli("segments", "show", "half_mrr", "--as-of", as_of)["members"]
    return _mrr(s, as_of), s.subscription("bob-plan")["mrr"], "bob-plan" in members


def test_an_every_payment_rule_discount_reduces_mrr_in_every_face(tmp_path, db_url):
    s = _scenario(tmp_path, db_url, "discount half {\n  amount 50%\n}\n")
    s.cli("run", "--until", "2027-01-15")
    assert [i["total"] for i in s.invoices()] == ["20.00", "20.00"]
    assert _faces(s, "2027-01-15") == ("20.00", "20.00", True)
    assert s.cli("report", "arr", "--as-of", "2027-01-15")["value"] == "240.00"
    moves = s.cli("report", "movements", "--as-of", "2026-12-31")["value"]
    assert (moves["new"], moves["net"]) == ("20.00", "20.00")


def test_without_the_setting_rule_discounts_leave_mrr_alone(tmp_path, db_url):
    s = _scenario(tmp_path, db_url, "discount half {\n  amount 50%\n}\n", replace={})
    s.cli("run", "--until", "2027-01-15")
    assert _faces(s, "2027-01-15") == ("40.00", "40.00", False)


def test_a_discount_for_three_payments_leaves_mrr_after_the_third(tmp_path, db_url):
    s = _scenario(tmp_path, db_url, "discount intro {\n  amount 50%\n  for 3 payments\n}\n")
    s.cli("run", "--until", "2027-02-28")
    assert _faces(s, "2027-02-28") == ("20.00", "20.00", True)
    assert _mrr(s, "2027-03-01") == "40.00"  # the 4th period bills 40.00: as history knew
    s.cli("run", "--until", "2027-03-15")
    assert [i["total"] for i in s.invoices()] == ["20.00", "20.00", "20.00", "40.00"]
    assert _faces(s, "2027-03-15") == ("40.00", "40.00", False)
    march = s.cli("report", "movements", "--as-of", "2027-03-31")["value"]
    assert march == {"new": "0.00", "expansion": "20.00", "contraction": "0.00",
                     "churned": "0.00", "net": "20.00"}  # fmt: skip


def test_a_discount_until_a_date_ends_in_mrr_on_the_first_period_after_it(tmp_path, db_url):
    s = _scenario(tmp_path, db_url,
                  "discount launch {\n  amount 50%\n  when invoice.date < 2027-02-15\n}\n")  # fmt: skip
    s.cli("run", "--until", "2027-03-05")
    assert [i["total"] for i in s.invoices()] == ["20.00", "20.00", "20.00", "40.00"]
    series = s.cli("report", "mrr", "--as-of", "2027-03-05", "--from", "2026-12-01",
                   "--to", "2027-02-01")["series"]  # fmt: skip
    assert [r["value"] for r in series] == ["20.00", "20.00", "20.00"]
    assert _faces(s, "2027-03-05") == ("40.00", "40.00", False)


def test_a_once_discount_never_reduces_mrr(tmp_path, db_url):
    s = _scenario(tmp_path, db_url, "discount welcome {\n  amount 50%\n  once\n}\n")
    s.cli("run", "--until", "2026-12-15")
    assert [i["total"] for i in s.invoices()] == ["20.00"]
    assert _faces(s, "2026-12-15") == ("40.00", "40.00", False)


@pytest.mark.parametrize(("frequency", "price", "mrr"), [
    ("quarterly", "100.00 USD", "30.00"),  # 90.00 ÷ 3
    ("annually", "100.00 USD", "7.50"),  # 90.00 ÷ 12
    ("weekly", "11.90 USD", "46.41"),  # 10.71 × 52/12
])  # fmt: skip
def test_longer_and_shorter_periods_are_normalized_to_a_month_after_the_discount(
    tmp_path, db_url, frequency, price, mrr
):
    plan = PLAN.replace('"40.00 USD", frequency: monthly', f'"{price}", frequency: {frequency}')
    s = _scenario(tmp_path, db_url, "discount tenth {\n  amount 10%\n}\n", plan)
    s.cli("run", "--until", "2026-12-01")
    assert _mrr(s, "2026-12-01") == mrr
    assert s.subscription("bob-plan")["mrr"] == mrr


def test_mrr_of_many_subscriptions_is_rounded_once(tmp_path, db_url):
    """Three quarterly 10.00 plans: 3 × 3.333… = 10.00, not 3 × 3.33 = 9.99."""
    plans = "".join(
        PLAN.replace("bob-plan", f"bob-plan-{n}").replace(
            '"40.00 USD", frequency: monthly', '"10.00 USD", frequency: quarterly'
        )
        for n in range(3)
    )
    s = _scenario(tmp_path, db_url, "", plans, replace={})
    s.cli("run", "--until", "2026-12-01")
    assert _mrr(s, "2026-12-01") == "10.00"
    assert s.cli("report", "arr", "--as-of", "2026-12-01")["value"] == "120.00"
    moves = s.cli("report", "movements", "--as-of", "2026-12-31")["value"]
    assert (moves["new"], moves["net"]) == ("10.00", "10.00")
    assert [s.subscription(f"bob-plan-{n}")["mrr"] for n in range(3)] == ["3.33"] * 3
