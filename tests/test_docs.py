"""The docs stay true: the config reference matches the schemas, every hook is documented."""

import inspect
import re

from abonnement.config.reference import render_reference
from abonnement.plugins import hookspecs
from tests.conftest import ROOT


def test_the_config_reference_is_generated_from_the_schemas():
    on_disk = (ROOT / "docs" / "config.md").read_text()
    assert on_disk == render_reference(), (
        "docs/config.md is stale: python -m abonnement.config.reference > docs/config.md"
    )


def _hooks() -> list[str]:
    return [
        n
        for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
        if n.startswith("abonnement_")
    ]


def test_every_hook_has_a_docstring_and_a_section_in_the_plugin_guide():
    guide = (ROOT / "docs" / "plugins.md").read_text()
    documented = set(re.findall(r"^### `(abonnement_\w+)\(", guide, re.M))
    assert documented == set(_hooks())
    for name in _hooks():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "Called" in doc or "Stops at the first" in doc, f"{name}: say when it is called"


def test_the_hook_families_of_the_design_are_all_there():
    assert set(_hooks()) >= {
        "abonnement_register_processors", "abonnement_register_notifiers",
        "abonnement_open_storage", "abonnement_register_tax_providers",
        "abonnement_register_rule_functions", "abonnement_on_event",
        "abonnement_settings_schemas",
    }  # fmt: skip


def _rule_env():
    from decimal import Decimal

    from abonnement.engine.money import Percent
    from abonnement.rules.types import RuleEnv

    env = RuleEnv(currencies=("USD", "EUR"), tax_rates={"ny-sales": True}, teams=("billing",))
    return env, {"ny-sales": Percent(Decimal("8.875"))}


def test_every_rules_example_in_the_language_reference_is_valid():
    from abonnement.rules.ruleset import build_ruleset

    text = (ROOT / "docs" / "rules.md").read_text()
    examples = re.findall(r"```rules\n(.*?)```", text, re.S)
    assert len(examples) >= 5
    env, rates = _rule_env()
    for example in examples:
        _, problems = build_ruleset([("docs/rules.md", example)], env, rates)
        assert problems == [], [str(p) for p in problems]


def test_the_expression_table_of_the_language_reference_holds():
    from datetime import date

    from abonnement.engine.money import parse_money
    from abonnement.rules.ruleset import build_ruleset

    text = (ROOT / "docs" / "rules.md").read_text()
    rows = re.findall(r"^\| `(.+)` \| (true|false) \|$", text, re.M)
    assert len(rows) >= 12
    env, rates = _rule_env()
    source = "\n".join(f"tax t{i} {{ rate 1% when {expr} }}" for i, (expr, _) in enumerate(rows))
    rules, problems = build_ruleset([("docs/rules.md", source)], env, rates)
    assert problems == [], [str(p) for p in problems]
    ctx = {
        "customer": {"country": "DK"},
        "line": {"quantity": 3, "sku": "COFFEE-1KG", "amount": parse_money("75.00 USD"),
                 "taxable": True},
        "subscription": {"start_date": date(2026, 12, 1)},
        "today": date(2026, 12, 15),
    }  # fmt: skip
    for rule, (expr, expected) in zip(rules.pricing, rows, strict=True):
        assert bool(rule.when(ctx)) is (expected == "true"), expr
