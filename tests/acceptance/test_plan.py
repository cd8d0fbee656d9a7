"""`abonnement plan` on the coffee example: what `apply` would do, and the invoices of the
coming months before and after a change of a price, a rule or a declared subscription."""

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, run

COFFEE = ROOT / "abonnement" / "examples" / "coffee"
LOYALTY = """
discount loyalty {
  label "Loyal customer"
  amount 10%
  applies_to line
  when subscription.payments_made >= 1
}
"""


class Coffee:
    """The coffee example (ane-coffee: 1 × coffee-1kg at 25.00 USD monthly from 2026-12-01),
    applied on 2026-11-20."""

    def __init__(self, root: Path, db_url: str):
        self.config = root / "coffee"
        shutil.copytree(COFFEE, self.config)
        yaml = self.config / "abonnement.yaml"
        yaml.write_text(yaml.read_text().replace(
            "    processor: test\n", f"    processor: test\n    test: {{ledger: '{root / 'ledger.db'}'}}\n"))  # fmt: skip
        self.db_url = db_url

    def __call__(self, *args: str) -> tuple[int, str]:
        result = run("--config", str(self.config), "--db", self.db_url, *args)
        assert result.exit_code in (0, 2), result.output + result.stderr
        return result.exit_code, result.stdout

    def json(self, *args: str) -> dict:
        return json.loads(self(*args, "--json")[1])

    def edit(self, name: str, old: str, new: str) -> None:
        path = self.config / name
        assert old in path.read_text()
        path.write_text(path.read_text().replace(old, new))


@pytest.fixture
def coffee(tmp_path, db_url) -> Coffee:
    shop = Coffee(tmp_path, db_url)
    shop("apply", "--as-of", "2026-11-20")
    return shop


def invoices(shop: Coffee, *args: str) -> dict:
    return shop.json("plan", "--as-of", "2026-11-20", *args)["invoices"]


def test_nothing_to_apply_exits_0_with_the_same_invoices_on_both_sides(coffee):
    code, _ = coffee("plan", "--as-of", "2026-11-20", "--detailed-exitcode")
    assert code == 0
    assert invoices(coffee)["totals"] == [{
        "currency": "USD", "before": {"invoices": 3, "total": "75.00"},
        "after": {"invoices": 3, "total": "75.00"}, "change": "0.00",
    }]  # fmt: skip


def test_a_price_change_is_a_change_of_the_subscription_and_of_its_invoices(coffee):
    coffee.edit("abonnement.yaml", 'price: "25.00 USD"', 'price: "27.00 USD"')
    plan = coffee.json("plan", "--as-of", "2026-11-20")
    (ane,) = plan["subscriptions"]
    assert ane == {
        "id": "ane-coffee", "action": "change", "declared_at": "abonnement.yaml:74:5",
        "from": "2026-12-01",
        "changes": [{"field": "items[1].unit_price", "old": "25.00 USD", "new": "27.00 USD"}],
    }  # fmt: skip
    assert plan["invoices"]["subscriptions"] == [{
        "id": "ane-coffee", "currency": "USD", "before": {"invoices": 3, "total": "75.00"},
        "after": {"invoices": 3, "total": "81.00"}, "change": "+6.00",
    }]  # fmt: skip
    assert plan["changes"] is True
    assert coffee("plan", "--as-of", "2026-11-20", "--detailed-exitcode")[0] == 2
    # plan wrote nothing; apply does what it showed, and then there is nothing left to do
    assert coffee.json("subscriptions", "show", "ane-coffee")["items"][0]["unit_price"] == "25.00"
    coffee("apply", "--as-of", "2026-11-20")
    assert coffee("plan", "--as-of", "2026-11-20", "--detailed-exitcode")[0] == 0
    assert invoices(coffee)["totals"][0]["after"] == {"invoices": 3, "total": "81.00"}


def test_a_rule_change_shows_the_invoices_it_changes(coffee):
    (coffee.config / "rules" / "pricing.rules").write_text(
        (COFFEE / "rules" / "pricing.rules").read_text() + LOYALTY
    )
    plan = coffee.json("plan", "--as-of", "2026-11-20")
    assert [(s["id"], s["action"]) for s in plan["subscriptions"]] == [("ane-coffee", "unchanged")]
    # the first payment is full price; the next two are 10% off: 25.00 + 22.50 + 22.50
    assert plan["invoices"]["totals"] == [{
        "currency": "USD", "before": {"invoices": 3, "total": "75.00"},
        "after": {"invoices": 3, "total": "70.00"}, "change": "-5.00",
    }]  # fmt: skip
    assert coffee("plan", "--as-of", "2026-11-20", "--detailed-exitcode")[0] == 2
    coffee("apply", "--as-of", "2026-11-20")  # the rules applied are kept: the new baseline
    assert coffee("plan", "--as-of", "2026-11-20", "--detailed-exitcode")[0] == 0


def test_the_text_and_markdown_plans_read_as_a_review(coffee):
    coffee.edit("abonnement.yaml", "{product: coffee-1kg, quantity: 1}",
                "{product: coffee-1kg, quantity: 2}")  # fmt: skip
    coffee.edit("abonnement.yaml", "subscriptions:\n", """subscriptions:
  - id: bob-beans
    contact: bob
    start: 2026-12-15
    items: [{product: coffee-250g, quantity: 1}]
""")  # fmt: skip
    _, text = coffee("plan", "--as-of", "2026-11-20", "--months", "2")
    applied_on = "before: the config applied on 2026-11-20"
    assert text.splitlines()[0].startswith("Plan as of 2026-11-20: invoices up to 2027-01-19 "
                                           f"(2 months); {applied_on} (")  # fmt: skip
    assert text.splitlines()[1:] == [
        "",
        "+ bob-beans: create, first payment 2026-12-15  (abonnement.yaml:74:5)",
        "~ ane-coffee: change from 2026-12-01  (abonnement.yaml:78:5)",
        "    items[1].quantity: 1 → 2",
        "",
        "invoices                              before          after       change",
        "ane-coffee                USD     50.00 ( 2)    100.00 ( 2)       +50.00",
        "bob-beans                 USD      0.00 ( 0)     25.00 ( 2)       +25.00",
        "total                     USD     50.00 ( 2)    125.00 ( 4)       +75.00",
        "",
        "changes to apply: 1 create, 1 change; invoices +75.00 USD",
    ]
    _, markdown = coffee("plan", "--as-of", "2026-11-20", "--months", "2", "--format",
                         "markdown")  # fmt: skip
    assert "| ~ | `ane-coffee` | change | 2026-12-01 |" in markdown
    assert "| `ane-coffee` | `items[1].quantity` | 1 | 2 |" in markdown
    assert "| **total** | USD | 50.00 (2) | 125.00 (4) | +75.00 |" in markdown


def test_the_json_plan_has_one_shape(coffee):
    coffee.edit("abonnement.yaml", "subscriptions:\n  - id: ane-coffee", "subscriptions:\n  - id: ane-beans")  # fmt: skip
    plan = coffee.json("plan", "--as-of", "2026-11-20", "--months", "1")
    assert set(plan) == {"as_of", "until", "months", "baseline", "changes", "subscriptions",
                         "invoices"}  # fmt: skip
    assert (plan["as_of"], plan["until"], plan["months"], plan["changes"]) == (
        "2026-11-20", "2026-12-19", 1, True)  # fmt: skip
    assert plan["baseline"]["applied_on"] == "2026-11-20"
    assert plan["subscriptions"] == [
        {"id": "ane-beans", "action": "create", "declared_at": "abonnement.yaml:74:5",
         "from": "2026-12-01"},
        {"id": "ane-coffee", "action": "no_longer_declared"},
    ]  # fmt: skip
    # ane-coffee stays as it is (no --prune): both bill in the month after
    assert plan["invoices"] == {
        "subscriptions": [
            {"id": "ane-beans", "currency": "USD", "before": {"invoices": 0, "total": "0.00"},
             "after": {"invoices": 1, "total": "25.00"}, "change": "+25.00"},
            {"id": "ane-coffee", "currency": "USD", "before": {"invoices": 1, "total": "25.00"},
             "after": {"invoices": 1, "total": "25.00"}, "change": "0.00"},
        ],
        "totals": [{"currency": "USD", "before": {"invoices": 1, "total": "25.00"},
                    "after": {"invoices": 2, "total": "50.00"}, "change": "+25.00"}],
    }  # fmt: skip


def test_a_plan_that_cannot_be_applied_exits_1(coffee):
    coffee("run", "--as-of", "2026-12-01")
    coffee.edit("abonnement.yaml", "    currency: USD\n    start: 2026-12-01",
                "    currency: EUR\n    start: 2026-12-01")  # fmt: skip
    coffee.edit("abonnement.yaml", "{product: coffee-1kg, quantity: 1}",
                "{product: coffee-250g, quantity: 1}")  # fmt: skip
    result = run("--config", str(coffee.config), "--db", coffee.db_url, "plan", "--as-of",
                 "2026-12-05", "--detailed-exitcode")  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr == (
        "error: `ane-coffee` has billed in USD: its currency does not change; declare a new "
        "subscription (a new id) and remove this one\n"
    )
