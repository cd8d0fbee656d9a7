"""Both back ends mean the same; no input makes the rule pipeline crash."""

import contextlib
import string
from datetime import date
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from abonnement.engine.money import Money, Percent
from abonnement.errors import AbonnementError
from abonnement.rules.compiler import Compiler, compile_closure, compile_source
from abonnement.rules.ruleset import build_ruleset
from tests.rules.test_rule_errors import ENV, RATES

SPEC_RULES = (
    Path(__file__).parents[2] / "examples" / "spec" / "rules" / "pricing.rules"
).read_text()

EXPRESSIONS = [
    'customer.country == "DK" and line.quantity >= 3 and line.frequency in ["monthly", "quarterly"]',
    'customer.country != "DK" or not customer.tax_exempt',
    "line.amount > 10.00 USD and line.amount <= 100.00 USD",
    "line.unit_discount >= 10%",
    "subscription.start_date >= 2026-12-01 and subscription.start_date < 2027-01-01",
    "subscription.end_date is set and subscription.end_date <= today() + 30 days",
    "subscription.end_date is not set or subscription.payments_made == none",
    'line.sku startswith "COFFEE-" and line.sku endswith "KG"',
    'line.name contains "cup" or line.sku matches "^[A-Z]+-[0-9]+"',
    "line.quantity * 2 - 1 > line.quantity + 1",
    "line.quantity / 2 >= 1.5",
    "line.amount - 5.00 USD > 0.00 USD or line.amount * 2 < 1.00 USD",
    'lower(customer.country) == "dk" or upper(customer.region) in ["NY", "CA"]',
    "days_between(subscription.start_date, today()) > 30",
    "max(line.quantity, 3) == 3 and min(line.amount, 5.00 USD) < 5.00 USD",
    "round(line.quantity / 3) == 1",
    'line.sku not in ["A", "B"] and customer.region != "NY"',
    "-line.quantity < 0 and line.taxable",
    "subscription.mrr >= 100.00 EUR",
]

maybe = lambda s: st.one_of(st.none(), s)  # noqa: E731
money = st.builds(
    Money,
    st.decimals(min_value=-1000, max_value=1000, places=2),
    st.sampled_from(["USD", "EUR"]),
)
dates = st.dates(min_value=date(2026, 1, 1), max_value=date(2028, 12, 31))
text = st.text(alphabet=string.ascii_letters + "-", max_size=8) | st.sampled_from(
    ["DK", "NY", "COFFEE-1KG", "monthly", "quarterly", "cup"]
)


def record(fields):
    return st.fixed_dictionaries({}, optional={k: maybe(v) for k, v in fields.items()})


contexts = st.fixed_dictionaries(
    {
        "customer": record({"country": text, "region": text, "tax_exempt": st.booleans()}),
        "line": record({
            "quantity": st.integers(-5, 50), "sku": text, "name": text, "frequency": text,
            "amount": money, "taxable": st.booleans(),
            "unit_discount": st.builds(Percent, st.decimals(0, 100, places=1)),
        }),
        "subscription": record({
            "start_date": dates, "end_date": dates, "payments_made": st.integers(0, 5),
            "mrr": money,
        }),
        "today": dates,
    }
)  # fmt: skip


def _compiled():
    blocks = "\n".join(f"tax t{i} {{ rate 1% when {expr} }}" for i, expr in enumerate(EXPRESSIONS))
    rules, problems = build_ruleset([("x.rules", blocks)], ENV, RATES)
    assert problems == [], [str(p) for p in problems]
    compiler = rules.compiler
    nodes = [r.block.get("when").value for r in rules.pricing]
    return nodes, compile_source(nodes, compiler), [compile_closure(n, compiler) for n in nodes]


NODES, FAST, ORACLE = _compiled()


@settings(max_examples=400)
@given(ctx=contexts)
def test_source_and_closure_back_ends_agree(ctx):
    for expr, fast, oracle in zip(EXPRESSIONS, FAST, ORACLE, strict=True):
        assert bool(fast(ctx)) == bool(oracle(ctx)), expr


def test_the_spec_rules_agree_on_a_known_context():
    rules, _ = build_ruleset([("p.rules", SPEC_RULES)], ENV, RATES)
    ctx = {"customer": {"country": "DK"}, "line": {"quantity": 3, "sku": "COFFEE-1KG"}}
    fired = [r.name for r in rules.pricing if r.when(ctx)]
    assert fired == ["dk_vat", "bulk_coffee"]
    closure = Compiler(rules.compiler.types, RATES)
    assert [
        r.name for r in rules.pricing if compile_closure(r.block.get("when").value, closure)(ctx)
    ] == fired


def test_missing_fields_are_none_and_comparisons_with_none_are_false():
    (fn,) = compile_source([NODES[0]], _types())
    assert fn({}) is False
    assert fn({"customer": None, "line": {"quantity": None}}) is False


def _types():
    rules, _ = build_ruleset(
        [("x.rules", f"tax t {{ rate 1% when {EXPRESSIONS[0]} }}")], ENV, RATES
    )
    return rules.compiler


def _safe(text: str) -> None:
    with contextlib.suppress(AbonnementError):
        build_ruleset([("fuzz.rules", text)], ENV, RATES)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(data):
    _safe(data.decode("utf-8", errors="replace"))


TOKENS = ["tax", "fee", "{", "}", "(", ")", "[", "]", "when", "and", "or", "not", "==", ">=",
          "line.quantity", '"DK"', "25%", "5.00 USD", "2026-12-01", "30 days", "do", "notify",
          ",", ":", "once", "for", "3", "payments", "is", "set", "in", "#", "\n", "-", "*"]  # fmt: skip


@settings(max_examples=300)
@given(st.data())
def test_mutated_rule_files_never_crash(data):
    text = SPEC_RULES
    for _ in range(data.draw(st.integers(1, 5))):
        at = data.draw(st.integers(0, len(text)))
        kind = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        token = data.draw(st.sampled_from(TOKENS))
        width = data.draw(st.integers(0, 12))
        if kind == "insert":
            text = text[:at] + token + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + width :]
        else:
            text = text[:at] + token + text[at + width :]
    _safe(text)


def test_explain_reports_every_sub_expression():
    from abonnement.rules.fmt import unparse

    rules, _ = build_ruleset([("p.rules", SPEC_RULES)], ENV, RATES)
    block = rules.pricing[0].block
    ctx = {"customer": {"country": "DK"}}
    trace = [(unparse(node), value) for node, value in rules.explain(block.get("when").value, ctx)]
    assert trace == [
        ("customer.country", "DK"),
        ('"DK"', "DK"),
        ('customer.country == "DK"', True),
        ("customer.tax_exempt", False),
        ("not customer.tax_exempt", True),
        ('customer.country == "DK" and not customer.tax_exempt', True),
    ]
