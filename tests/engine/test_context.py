"""Every field the rule checker accepts is filled where rules run: the billing run (invoice
and line scope), a checkout, a quote, a workflow trigger and a segment.

The contexts are the ones the rules really receive: a rule that records what it is shown is
priced through the same functions the application calls. A field the field model declares
and no builder fills fails here with its path.
"""

from collections.abc import Mapping
from datetime import date
from decimal import Decimal

import pytest

from abonnement.engine.catalog import (
    AUTO_RENEW,
    Address,
    Catalog,
    Company,
    Contact,
    PaymentMethod,
    Product,
    Settings,
    Terms,
)
from abonnement.engine.context import buyer_records, segment_context, trigger_context
from abonnement.engine.invoicing import draft_invoice
from abonnement.engine.items import Item, group_items
from abonnement.engine.money import Money, Percent
from abonnement.engine.purchase import price_due_now, prospective, summarize
from abonnement.engine.records import InvoiceRecord
from abonnement.engine.schedule import Frequency
from abonnement.engine.status import InvoiceStatus
from abonnement.engine.subscriptions import Period, Subscription
from abonnement.rules.ruleset import PricingRule
from abonnement.rules.types import BLOCK_ROOTS, FIELDS

MONTHLY = Frequency.parse("monthly")
ADDRESS = Address("DK", "Nørregade 1", None, "København", "84", "1165")
BEANS = Product("beans", "Beans", "BEANS", {"USD": Money.parse("25.00 USD")}, MONTHLY,
                description="Whole beans", category="coffee",
                properties={"origin": "kenya"})  # fmt: skip
ACME = Company("acme", "ACME ApS", ADDRESS, "acme.dk", "DK123", {"tier": "gold"})
ANE = Contact("ane", "Ane", "ane@example.dk", "acme", ADDRESS,
              payment_methods=(PaymentMethod("visa", "card", "tok_visa"),),
              properties={"vip": True})  # fmt: skip
CATALOG = Catalog(Settings("Shop", ("USD",), "USD"), products={"beans": BEANS},
                  companies={"acme": ACME}, contacts={"ane": ANE})  # fmt: skip
ITEM = Item("Beans", 2, Money.parse("25.00 USD"), sku="BEANS", product_id="beans",
            description="Whole beans", unit_discount=Percent(Decimal(10)), frequency=MONTHLY,
            terms=Terms(12), category="coffee")  # fmt: skip
SUB = Subscription(
    "s1", "ane", "USD", MONTHLY, date(2026, 12, 1), (ITEM,), status="active",
    payments=12, next_index=2, company_id="acme", collection_mode="automatic",
    payment_token="tok_visa", payment_type="card", owner="sales",
    properties={"roast": "dark"}, created_on=date(2026, 12, 1),
)  # fmt: skip
PERIOD = Period(2, date(2027, 2, 1), date(2027, 3, 1), date(2027, 2, 1), date(2027, 3, 3))

# Values a path cannot know, and why: a quote is priced before a payment method is chosen,
# and the subscriptions a purchase creates have no owner and no properties yet.
UNKNOWN = {
    "quote": {("payment", "method"), ("subscription", "owner"), ("subscription", "properties")},
    "checkout": {("subscription", "owner"), ("subscription", "properties")},
}


def _recording(scope: str, seen: list) -> PricingRule:
    def when(ctx: Mapping) -> bool:
        seen.append(ctx)
        return False

    return PricingRule("discount", f"see_{scope}", "", scope, when, lambda ctx: None)


def _priced_contexts(price) -> dict[str, list[Mapping]]:
    """What a line-scope and an invoice-scope rule are shown when ``price(rules)`` runs."""
    lines: list[Mapping] = []
    invoices: list[Mapping] = []
    price((_recording("line", lines), _recording("invoice", invoices)))
    assert lines and invoices
    return {"line": lines, "invoice": invoices}


def _billing(rules):
    return draft_invoice(SUB, PERIOD, buyer_records(CATALOG, SUB), rules, CATALOG)


def _checkout(rules):
    (group,) = group_items([ITEM], date(2026, 12, 1))[1]
    sub = prospective(group, "ane", date(2026, 12, 1), sub_id="link-ane-1", company_id="acme")
    return price_due_now([ITEM], [sub], "ane", date(2026, 12, 1), rules, CATALOG,
                         currency="USD", due_date=date(2026, 12, 1), company_id="acme",
                         method="card")  # fmt: skip


def _quote(rules):
    return summarize([ITEM], date(2026, 12, 1), "ane", rules, CATALOG)


PRICED = {"billing run": _billing, "checkout": _checkout, "quote": _quote}


def _missing(ctx: Mapping, roots: tuple[str, ...], unknown: set) -> list[str]:
    """Every declared field of ``roots`` that ``ctx`` lacks (or leaves None, where the
    fixture gives it a value)."""
    missing = []
    for root in roots:
        record = ctx.get(root)
        if not isinstance(record, Mapping):
            missing.append(root)
            continue
        for name, kind in FIELDS[root].items():
            if name not in record:
                missing.append(f"{root}.{name}")
            elif kind == "product":
                missing.extend(f"line.{m}" for m in _missing(record, ("product",), set()))
            elif kind in ("properties", "subscription_properties"):
                # a mapping; the fixture gives every record some properties
                if not isinstance(record[name], Mapping) or (
                    not record[name] and (root, name) not in unknown
                ):
                    missing.append(f"{root}.{name}.*")
            elif record[name] is None and (root, name) not in unknown:
                missing.append(f"{root}.{name}")
    return missing


@pytest.mark.parametrize("path", list(PRICED))
@pytest.mark.parametrize("scope", ["line", "invoice"])
def test_pricing_rules_see_every_declared_field(path, scope):
    contexts = _priced_contexts(PRICED[path])[scope]
    unknown = UNKNOWN.get(path, set())
    for ctx in contexts:
        assert _missing(ctx, BLOCK_ROOTS[scope], unknown) == []
        assert ctx["today"] is not None


def test_triggers_see_every_declared_field():
    usd = Money(Decimal("50.00"), "USD")
    day = date(2027, 2, 1)
    row = InvoiceRecord("INV-00003", 3, SUB.id, SUB.contact_id, InvoiceStatus.OPEN, "USD", day,
                        day, day, None, usd, usd * 0, usd * 0, usd * 0, usd, usd * 0)  # fmt: skip
    ctx = trigger_context(CATALOG, SUB, "payment.failed",
                          {"invoice": "INV-00003", "attempt": 2, "previous_status": "active"},
                          date(2027, 2, 1), invoice=row, sequence=3)  # fmt: skip
    assert _missing(ctx, BLOCK_ROOTS["trigger"], set()) == []
    assert (ctx["payment"], ctx["invoice"]["sequence"]) == ({"method": "card", "attempt": 2}, 3)


@pytest.mark.parametrize("of", ["subscriptions", "contacts"])
def test_segments_see_every_declared_field(of):
    on = date(2027, 2, 1)
    if of == "subscriptions":
        ctx = segment_context(CATALOG, on, sub=SUB)
    else:
        ctx = segment_context(CATALOG, on, contact_id="ane")
    assert _missing(ctx, BLOCK_ROOTS[of], set()) == []


def test_every_record_kind_is_checked_above():
    checked = {*BLOCK_ROOTS["line"], *BLOCK_ROOTS["invoice"], *BLOCK_ROOTS["trigger"],
               *BLOCK_ROOTS["subscriptions"], *BLOCK_ROOTS["contacts"]}  # fmt: skip
    assert checked == set(FIELDS)


def test_the_invoice_record_says_the_subtotal_and_the_sequence():
    (ctx,) = _priced_contexts(_billing)["invoice"]
    assert ctx["invoice"] == {"date": date(2027, 2, 1), "due_date": date(2027, 3, 3),
                              "sequence": 3, "subtotal": Money.parse("50.00 USD")}  # fmt: skip


def test_periods_skipped_while_paused_are_not_counted_in_the_sequence():
    paused = Subscription("s2", "ane", "USD", MONTHLY, date(2026, 12, 1), (ITEM,),
                          status="active", next_index=4, skipped=2)  # fmt: skip
    period = Period(4, date(2027, 4, 1), date(2027, 5, 1), date(2027, 4, 1), date(2027, 4, 1))
    seen: list = []
    draft_invoice(paused, period, {}, (_recording("invoice", seen),), CATALOG)
    assert seen[0]["invoice"]["sequence"] == 3


def test_a_custom_item_has_a_product_with_no_properties():
    custom = Item("Support", 1, Money.parse("99.00 USD"), frequency=MONTHLY, terms=AUTO_RENEW)
    sub = Subscription("s3", "ane", "USD", MONTHLY, date(2026, 12, 1), (custom,), status="active")
    seen: list = []
    draft_invoice(sub, PERIOD, {}, (_recording("line", seen),), CATALOG)
    assert seen[0]["product"]["properties"] == {}
    assert seen[0]["product"]["description"] is None
