"""Rule mistakes, each reported at its file:line:col with a message a user can act on."""

from decimal import Decimal

import pytest

from abonnement.engine.money import Percent
from abonnement.rules.parser import SYNTAX_EXAMPLES, parse_rules
from abonnement.rules.ruleset import build_ruleset
from abonnement.rules.types import RuleEnv

ENV = RuleEnv(
    currencies=("USD", "EUR"),
    tax_rates={"ny-sales": True, "dk-vat": True, "old-vat": False},
    subscription_properties={"roast": "enum", "seats": "number"},
    teams=("billing",),
)
RATES = {"ny-sales": Percent(Decimal("8.875")), "dk-vat": Percent(Decimal(25))}


def problems_of(text: str) -> list:
    _, problems = build_ruleset([("shop.rules", text)], ENV, RATES)
    return problems


# (id, rule text, line, column, message fragment)
CASES = [
    # syntax
    (
        "misspelt-keyword",
        "tax t {\n  rat 25%\n}",
        2,
        3,
        "unknown keyword `rat`; did you mean `rate`?",
    ),
    ("misspelt-block-kind", "taxx t { rate 25% }", 1, 1, "did you mean `tax`?"),
    (
        "double-and",
        'tax t { rate 25% when line.sku == "A" and and line.quantity > 1 }',
        1,
        43,
        "expected an expression here",
    ),
    (
        "missing-operand",
        "tax t { rate 25% when line.quantity >= }",
        1,
        40,
        "expected an expression",
    ),
    ("unclosed-block", "tax t {\n  rate 25%\n", 2, 11, "the block is not closed"),
    ("unclosed-paren", "tax t { rate 25% when (line.quantity > 1 }", 1, 42, "expected `)`"),
    ("unclosed-list", 'tax t { rate 25% when line.sku in ["A", "B" }', 1, 45, "expected `]`"),
    ("unterminated-string", 'tax t { label "Moms }', 1, 15, "unterminated string"),
    ("label-not-string", "tax t { label Moms rate 25% }", 1, 15, "`label` takes a quoted string"),
    (
        "for-without-number",
        "discount d { amount 10% for three payments }",
        1,
        29,
        "`for` takes a number of payments",
    ),
    ("missing-brace", "tax t rate 25%", 1, 7, "expected `{` after the block name"),
    ("missing-name", "tax { rate 25% }", 1, 5, "a block needs a name"),
    ("two-values", "tax t { rate 25% 10% }", 1, 18, "an operator is missing"),
    ("is-none", "tax t { rate 25% when line.sku is none }", 1, 35, "`is` is followed by `set`"),
    (
        "bad-date",
        "discount d { amount 10% when subscription.start_date > 2026-02-30 }",
        1,
        56,
        "2026-02-30 is not a calendar date",
    ),
    (
        "bad-character",
        'tax t { rate 25% when line.quantity > 1 & line.sku == "A" }',
        1,
        41,
        "unexpected character '&'",
    ),
    (
        "too-deep",
        "tax t { rate 25% when " + "not " * 60 + "line.taxable }",
        1,
        103,
        "nested more than 40 levels",
    ),
    (
        "do-not-a-call",
        "trigger g { on subscription.created do notify }",
        1,
        47,
        "`do` takes an action",
    ),
    # types and names
    (
        "incompatible-compare",
        'tax t { rate 25% when line.quantity == "3" }',
        1,
        23,
        "cannot compare number with string",
    ),
    (
        "money-vs-number",
        "tax t { rate 25% when line.amount > 5 }",
        1,
        23,
        "cannot compare money with number",
    ),
    (
        "unknown-root",
        'tax t { rate 25% when custmer.country == "DK" }',
        1,
        23,
        "unknown field `custmer.country`; did you mean `customer.country`?",
    ),
    (
        "unknown-field",
        'tax t { rate 25% when customer.contry == "DK" }',
        1,
        23,
        "did you mean `customer.country`?",
    ),
    (
        "record-not-field",
        'tax t { rate 25% when customer == "DK" }',
        1,
        23,
        "`customer` is a record",
    ),
    (
        "line-in-trigger",
        'trigger g { on invoice.paid when line.quantity > 1 do notify(to: "admins", template: "receipt") }',
        1,
        34,
        "`line` is not available",
    ),
    (
        "line-in-invoice-scope",
        "discount d { amount 5.00 USD applies_to invoice when line.quantity > 1 }",
        1,
        54,
        "`line` is not available",
    ),
    (
        "unknown-function",
        'tax t { rate 25% when lowr(line.sku) == "a" }',
        1,
        23,
        "unknown function `lowr`; did you mean `lower`?",
    ),
    (
        "wrong-argument-type",
        'tax t { rate 25% when lower(line.quantity) == "a" }',
        1,
        23,
        "wrong arguments: lower(number)",
    ),
    (
        "unknown-tax-rate",
        'tax t { rate tax_rate("ny-sale") }',
        1,
        23,
        "unknown tax rate `ny-sale`; did you mean `ny-sales`?",
    ),
    ("inactive-tax-rate", 'tax t { rate tax_rate("old-vat") }', 1, 23, "is not active"),
    ("money-as-rate", "tax t { rate 5.00 USD }", 1, 14, "`rate` needs a percentage"),
    (
        "currency-not-listed",
        "discount d { amount 5.00 GBP }",
        1,
        21,
        "currency GBP is not listed in settings.currencies",
    ),
    (
        "percent-plus-money-in-discount",
        "discount d { amount 10% + 1.00 USD }",
        1,
        21,
        "`amount` needs a percentage (10%) or money",
    ),
    (
        "when-not-boolean",
        "tax t { rate 25% when line.quantity }",
        1,
        23,
        "`when` needs a condition (true or false), got number",
    ),
    (
        "where-not-boolean",
        "segment s { of subscriptions where subscription.end_date }",
        1,
        36,
        "`where` needs a condition",
    ),
    (
        "not-on-number",
        "tax t { rate 25% when not line.quantity }",
        1,
        23,
        "`not` needs a condition",
    ),
    (
        "and-on-string",
        "tax t { rate 25% when line.taxable and line.sku }",
        1,
        40,
        "`and` needs conditions on both sides, got string",
    ),
    (
        "in-needs-list",
        "tax t { rate 25% when line.quantity in line.name }",
        1,
        40,
        "`in` needs a list on its right, got string",
    ),
    (
        "mixed-list",
        'tax t { rate 25% when line.sku in ["A", 3] }',
        1,
        35,
        "a list mixes number and string",
    ),
    (
        "bad-regex",
        'tax t { rate 25% when line.sku matches "[A-" }',
        1,
        40,
        "invalid regular expression",
    ),
    (
        "startswith-number",
        'tax t { rate 25% when line.quantity startswith "1" }',
        1,
        23,
        "`startswith` works on strings",
    ),
    (
        "add-string-number",
        'discount d { amount 10% when line.sku + 1 == "A" }',
        1,
        30,
        "cannot add string and number",
    ),
    (
        "two-currencies",
        "discount d { amount 5.00 USD + 1.00 EUR }",
        1,
        21,
        "cannot combine USD with EUR",
    ),
    (
        "unknown-event",
        'trigger g { on subscription.create do notify(to: "contact", template: "welcome") }',
        1,
        16,
        "unknown event `subscription.create`; did you mean `subscription.created`?",
    ),
    (
        "unknown-template",
        'trigger g { on subscription.created do notify(to: "contact", template: "welcom") }',
        1,
        72,
        "unknown template `welcom`; did you mean `welcome`?",
    ),
    (
        "unknown-team",
        'trigger g { on subscription.created do notify(to: "team:sales", template: "welcome") }',
        1,
        51,
        "unknown team `sales`",
    ),
    (
        "notify-missing-template",
        'trigger g { on subscription.created do notify(to: "contact") }',
        1,
        40,
        "notify needs `template:`",
    ),
    (
        "set-wrong-type",
        "trigger g { on subscription.created do set(subscription.owner, 3) }",
        1,
        64,
        "`subscription.owner` is string, not number",
    ),
    (
        "set-unsettable",
        'trigger g { on subscription.created do set(subscription.status, "x") }',
        1,
        44,
        "set can change subscription.owner",
    ),
    (
        "unknown-action",
        'trigger g { on subscription.created do notfy(to: "contact", template: "welcome") }',
        1,
        40,
        "unknown action `notfy`; did you mean `notify`?",
    ),
    (
        "unknown-property",
        'segment s { of subscriptions where subscription.properties.roats == "dark" }',
        1,
        36,
        "unknown custom property `roats`; did you mean `roast`?",
    ),
    (
        "property-type",
        'segment s { of subscriptions where subscription.properties.seats == "two" }',
        1,
        36,
        "cannot compare number with string",
    ),
    (
        "statement-not-allowed",
        "tax t { rate 25% once }",
        1,
        18,
        "`once` is not allowed in a tax block",
    ),
    ("statement-twice", "tax t {\n  rate 25%\n  rate 10%\n}", 3, 3, "`rate` given twice"),
    ("missing-rate", 'tax t { label "VAT" }', 1, 1, "tax `t` needs `rate`"),
    (
        "once-and-for",
        "discount d { amount 10% once for 3 payments }",
        1,
        30,
        "either `once` or `for N",
    ),
    ("zero-payments", "discount d { amount 10% for 0 payments }", 1, 25, "at least 1 payment"),
    (
        "applies-to-typo",
        "discount d { amount 10% applies_to invoce }",
        1,
        25,
        "`applies_to` is line or invoice, not `invoce`; did you mean `invoice`?",
    ),
    (
        "segment-of-typo",
        'segment s { of subscription where subscription.status == "active" }',
        1,
        13,
        "did you mean `subscriptions`?",
    ),
    (
        "duplicate-block",
        "tax t { rate 25% }\nfee t { amount 1.00 USD }",
        2,
        1,
        "duplicate block name `t`",
    ),
    (
        "order-with-none",
        "tax t { rate 25% when line.quantity > none }",
        1,
        23,
        "cannot order with none",
    ),
    # amounts a block cannot mean, as `subscriptions edit` refuses them
    ("discount-over-100", "discount d {\n  amount 110%\n}", 2, 10,
     "a discount is between 0% and 100%, not 110%"),
    ("discount-negative-percent", "discount d { amount -5% }", 1, 21,
     "a discount is between 0% and 100%, not -5%"),
    ("discount-negative-money", "discount d { amount -5.00 USD applies_to invoice }", 1, 21,
     "a discount amount is never negative, not -5.00 USD"),
    ("fee-negative-money", "fee f { amount -1.00 USD }", 1, 16,
     "a fee amount is never negative, not -1.00 USD"),
    ("fee-negative-fixed-part", "fee f { amount 2.9% + -0.30 USD }", 1, 16,
     "a fee amount is never negative, not -0.30 USD"),
    ("fee-negative-percent", "fee f { amount -2.9% }", 1, 16, "a fee is at least 0%, not -2.9%"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "line", "column", "fragment"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_rule_error_names_the_place_and_the_mistake(text, line, column, fragment):
    problems = problems_of(text)
    assert problems, "expected an error"
    matching = [p for p in problems if fragment in str(p)]
    assert matching, [str(p) for p in problems]
    problem = matching[0]
    assert (problem.file, problem.line, problem.column) == ("shop.rules", line, column), str(
        problem
    )
    # the source line and a caret under the column
    source_line, caret = problem.context.splitlines()
    assert source_line.strip() == text.splitlines()[line - 1].strip()
    assert caret.index("^") - 4 == column - 1


def test_there_are_at_least_forty_distinct_rule_errors():
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("message", "example"),
    [(m, e) for m, examples in SYNTAX_EXAMPLES.items() for e in examples],
)
def test_the_syntax_error_table(message, example):
    (problem,) = parse_rules(example, "x.rules").problems
    assert problem.message == message


def test_five_thousand_nested_parentheses_parse():
    text = "tax t { rate 25% when " + "(" * 5000 + "line.taxable" + ")" * 5000 + " }"
    assert problems_of(text) == []


@pytest.mark.parametrize("amount", ["0%", "100%", "5.00 USD", "0.00 USD",
                                    "subscription.properties.seats * 1%"])  # fmt: skip
def test_a_discount_in_range_or_read_from_a_field_is_accepted(amount):
    assert problems_of(f"discount d {{ amount {amount} }}") == []


def test_every_error_of_every_file_in_one_pass():
    sources = [
        ("a.rules", 'tax a { rate 25% when line.quantity == "3" }'),
        ("b.rules", "tax b { rat 25% }"),
        ("c.rules", "fee c { amount 1.00 GBP }"),
    ]
    _, problems = build_ruleset(sources, ENV, RATES)
    assert [(p.file, p.line) for p in problems] == [("b.rules", 1), ("a.rules", 1), ("c.rules", 1)]
