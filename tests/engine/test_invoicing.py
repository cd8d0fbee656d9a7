"""Invoices for periods, and the pricing memo of billing runs."""

from datetime import date
from decimal import Decimal

from abonnement.engine.catalog import Catalog, Settings
from abonnement.engine.invoicing import PricingMemo, draft_invoice
from abonnement.engine.items import Item
from abonnement.engine.money import Money
from abonnement.engine.schedule import Frequency
from abonnement.engine.subscriptions import Period, Subscription
from abonnement.rules.ruleset import build_ruleset
from abonnement.rules.types import RuleEnv

MONTHLY = Frequency.parse("monthly")
CATALOG = Catalog(Settings("Shop", ("USD",), "USD"))
RULES = 'tax vat { rate 25% when customer.country == "DK" }\ndiscount first { amount 10% once }\n'


def _draft(memo, country, index=0, sub_id="s1"):
    rules, problems = build_ruleset([("r.rules", RULES)], RuleEnv(currencies=("USD",)), {})
    assert not problems
    item = Item("Coffee", 2, Money(Decimal("25.00"), "USD"), frequency=MONTHLY)
    sub = Subscription(sub_id, "c", "USD", MONTHLY, date(2026, 12, 1), (item,))
    day = date(2026, 12, 1)
    period = Period(index, day, date(2027, 1, 1), day, day)
    records = {"customer": {"country": country}}
    return draft_invoice(sub, period, records, rules.pricing, CATALOG, memo=memo,
                         with_mrr=False), rules  # fmt: skip


def test_the_memo_prices_what_the_rules_read_and_nothing_else():
    _, rules = _draft(None, "DK")
    memo = PricingMemo(rules.fields, rules.counts_payments)
    dk, _ = _draft(memo, "DK")
    us, _ = _draft(memo, "US")
    dk_again, _ = _draft(memo, "DK", sub_id="s2")
    later, _ = _draft(memo, "DK", index=1)
    assert (dk.total, us.total, later.total) == (
        Money(Decimal("56.25"), "USD"), Money(Decimal("45.00"), "USD"),
        Money(Decimal("62.50"), "USD"))  # fmt: skip
    assert dk_again.priced is dk.priced  # the same inputs: priced once
    assert dk_again.subscription_id == "s2"  # the invoice itself is the subscription's own
    assert len(memo.priced) == 3


def test_without_the_memo_the_same_amounts():
    assert _draft(None, "DK")[0].total == Money(Decimal("56.25"), "USD")
