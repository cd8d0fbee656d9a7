"""Mistakes users make (and attacks), each a clean error at the right line: exit 1, no traceback.

Every case edits the spec's full example in one place; the expected line is where the edit is.
"""

import json
import time
from pathlib import Path

import pytest

from tests.conftest import run

# (id, text to replace, replacement, message fragment, marker on the reported line or None)
CASES = [
    (
        "unknown-key",
        "country: DK}",
        "contry: DK}",
        "unknown key `contry`",
        "did you mean `country`",
    ),
    ("money-as-float", 'price: "25.00 USD"', "price: 25.00", "money is never a YAML number", None),
    ("money-without-currency", 'price: "89.00 USD"', 'price: "89.00"', "expected money", None),
    ("currency-not-listed", 'price: "89.00 USD"', 'price: "89.00 GBP"', "GBP is not listed", None),
    (
        "unknown-frequency",
        "frequency: biweekly",
        "frequency: biweekyl",
        "did you mean `biweekly`",
        None,
    ),
    (
        "unknown-section",
        "tax_rates:\n",
        "tax_rate:\n",
        "unknown section `tax_rate`",
        "did you mean",
    ),
    (
        "unknown-product",
        "{product: grinder,",
        "{product: grindr,",
        "unknown product `grindr`",
        None,
    ),
    (
        "unknown-deal-contact",
        "contact: ane, company: acme}",
        "contact: anne, company: acme}",
        "unknown contact `anne`",
        None,
    ),
    (
        "unknown-company",
        "email: ane@example.dk\n    company: acme",
        "email: ane@example.dk\n    company: acmee",
        "unknown company `acmee`",
        "company: acmee",
    ),
    ("unknown-link-deal", "deals: [deal-42]", "deals: [deal-24]", "unknown deal `deal-24`", None),
    (
        "unknown-tax-rate",
        "tax_rate: dk-vat}",
        "tax_rate: dk-moms}",
        "unknown tax rate `dk-moms`",
        None,
    ),
    (
        "unknown-payment-method",
        "payment_method: ane-visa",
        "payment_method: ane-amex",
        "no payment method `ane-amex`",
        None,
    ),
    (
        "tiers-descending",
        '{up_to: 4999, unit_price: "0.08 USD"}',
        '{up_to: 500, unit_price: "0.08 USD"}',
        "tiers must ascend",
        None,
    ),
    (
        "last-tier-bounded",
        '{unit_price: "0.06 USD"}',
        '{up_to: 9999, unit_price: "0.06 USD"}',
        "the last tier must not have `up_to`",
        None,
    ),
    (
        "enum-property-value",
        "properties: {roast: dark}",
        "properties: {roast: burnt}",
        "`burnt` is not a value of property `roast`",
        None,
    ),
    (
        "unknown-property",
        "properties: {roast: dark}",
        "properties: {roast: dark, grind: fine}",
        "unknown custom property `grind`",
        None,
    ),
    (
        "property-default-not-a-value",
        "default: medium",
        "default: extra",
        "`extra` is not a value",
        None,
    ),
    (
        "two-frequencies",
        'unit_price: "99.00 USD", frequency: monthly',
        'unit_price: "99.00 USD", frequency: annually',
        "items have different frequencies",
        "    items:\n      - {product: storage",
    ),
    (
        "one-time-item-in-subscription",
        "      - {product: coffee-1kg, quantity: 1}\n    collection:",
        "      - {product: grinder, quantity: 1}\n    collection:",
        "a subscription item must recur",
        "{product: grinder, quantity: 1}\n    collection:",
    ),
    (
        "duplicate-id",
        "id: coffee-500g",
        "id: coffee-1kg",
        "duplicate id `coffee-1kg`",
        "id: coffee-1kg\n    sku: COFFEE-500G",
    ),
    (
        "bad-start-date",
        "start: 2026-12-01                   # a date",
        "start: 2026-13-01                   # a date",
        "expected a start",
        None,
    ),
    (
        "relative-declared-start",
        "start: 2026-12-01                   # a date",
        "start: {delay_months: 1}            # a date",
        "a declared subscription starts on a date, not {delay_months: 1}",
        None,
    ),
    (
        "zero-quantity",
        "{product: storage, quantity: 6000}",
        "{product: storage, quantity: 0}",
        "less than the minimum of 1",
        None,
    ),
    (
        "quantity-as-text",
        "{product: storage, quantity: 6000}",
        '{product: storage, quantity: "lots"}',
        "expected a whole quantity",
        None,
    ),
    (
        "payment-terms",
        "payment_terms: net_30               #",
        "payment_terms: net30               #",
        "expected payment terms",
        None,
    ),
    (
        "unregistered-processor",
        "processor: test",
        "processor: tset",
        "no processor plugin named `tset`",
        "did you mean `test`",
    ),
    (
        "unregistered-notifier",
        "notifiers: [mailbox]",
        "notifiers: [mailbx]",
        "no notifier plugin named `mailbx`",
        None,
    ),
    (
        "default-currency",
        "default_currency: USD",
        "default_currency: GBP",
        "GBP is not in settings.currencies",
        None,
    ),
    (
        "unknown-currency-code",
        "currencies: [USD, EUR, DKK, JPY]",
        "currencies: [USD, EUR, DKK, JPY, XXY]",
        "unknown currency `XXY`",
        None,
    ),
    (
        "time-zone",
        "timezone: America/New_York",
        "timezone: America/New_Yrok",
        "unknown time zone",
        None,
    ),
    ("locale", "locale: da_DK}", "locale: xx_XX}", "unknown language or locale `xx_XX`", None),
    (
        "number-format",
        'number_format: "INV-{seq:05d}"',
        'number_format: "INV-{sequence:05d}"',
        "bad invoice number format",
        None,
    ),
    (
        "retry-days-order",
        "days_after_failure: [1, 3, 5, 7]",
        "days_after_failure: [1, 5, 3]",
        "strictly increasing",
        None,
    ),
    (
        "enum-typo",
        "after_final_failure: keep_unpaid",
        "after_final_failure: keep_unpiad",
        "did you mean `keep_unpaid`",
        None,
    ),
    (
        "rule-glob",
        'rules: ["rules/*.rules"]',
        'rules: ["rule/*.rules"]',
        "no rule file matches `rule/*.rules`",
        None,
    ),
    ("email", "email: bob@example.com", "email: bob-at-example.com", "expected an e-mail", None),
    ("yaml-syntax", "name: Bob Smith", "name: [Bob Smith", "invalid YAML", "email: bob@"),
    (
        "duplicate-key",
        "    sku: GRINDER",
        "    sku: GRINDER\n    sku: GRINDER2",
        "duplicate key `sku`",
        "sku: GRINDER2",
    ),
    ("tab-indent", "    sku: COFFEE-500G", "\tsku: COFFEE-500G", "invalid YAML", None),
    (
        "missing-required",
        "    name: Burr grinder\n",
        "",
        "missing required key `name`",
        "id: grinder",
    ),
    (
        "tiers-on-flat",
        "    pricing: volume ",
        "    # pricing: volume ",
        "`tiers` need pricing volume",
        "    tiers:",
    ),
    ("percent-as-number", "rate: 25%}", "rate: 25}", "expected a percentage", None),
    (
        "custom-item-without-price",
        '{name: Premium support, unit_price: "99.00 USD",',
        "{name: Premium support,",
        "expected an item with `product`",
        None,
    ),
    (
        "price-in-wrong-currency",
        'EUR: "11.50 EUR"}',
        'EUR: "11.50 USD"}',
        "the EUR price is in USD",
        None,
    ),
    (
        "product-without-currency",
        "currency: USD\n    start: 2026-12-01\n    items:\n      - {product: coffee-1kg",
        "currency: EUR\n    start: 2026-12-01\n    items:\n      - {product: coffee-1kg",
        "has no EUR price",
        "- {product: coffee-1kg, quantity: 1}\n    collection",
    ),
    (
        "method-not-accepted",
        "    accepted_methods: [card]\n",
        "    accepted_methods: [sepa]\n",
        "payment type `sepa` is not accepted",
        None,
    ),
    (
        "too-many-decimals",
        'unit_price: "0.10 USD"',
        'unit_price: "0.1234567 USD"',
        "expected money",
        None,
    ),
    (
        "yes-is-not-a-boolean",
        "save_payment_method: true",
        "save_payment_method: yes",
        "expected a boolean",
        None,
    ),
    (
        "yaml-tag",
        "name: Ane Jensen",
        "name: !!python/object/apply:os.system [echo hi]",
        "YAML tag",
        None,
    ),
    ("unknown-alias", "name: Ane Jensen", "name: *nobody", "undefined alias", None),
    (
        "billing-contact",
        "billing_contact: ane",
        "billing_contact: ann",
        "unknown contact `ann`",
        "did you mean `ane`",
    ),
    # as `subscriptions edit` refuses them: prices below zero, discounts outside 0–100%
    ("negative-price", 'price: "89.00 USD"', 'price: "-89.00 USD"',
     "a negative amount `-89.00 USD`: a price is never below zero", None),
    ("negative-tier-price", '{up_to: 999, unit_price: "0.10 USD"}',
     '{up_to: 999, unit_price: "-0.10 USD"}', "a negative amount `-0.10 USD`", None),
    ("negative-unit-price", 'unit_price: "99.00 USD"', 'unit_price: "-99.00 USD"',
     "a negative amount `-99.00 USD`", None),
    ("discount-over-100", "unit_discount: 10%", "unit_discount: 110%",
     "a discount is between 0% and 100%, not 110%", None),
    ("link-discount-over-100", "      - {product: coffee-1kg, quantity: 1}\n\nsubscriptions:",
     "      - {product: coffee-1kg, quantity: 1, unit_discount: 100.5%}\n\nsubscriptions:",
     "a discount is between 0% and 100%, not 100.5%", "unit_discount: 100.5%"),
]  # fmt: skip


def _line_of(text: str, marker: str) -> int:
    assert text.count(marker) == 1, f"marker {marker!r} is not unique"
    return text.count("\n", 0, text.index(marker)) + 1


@pytest.mark.parametrize(
    ("old", "new", "fragment", "marker"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_mistake_is_reported_at_its_line(spec_config: Path, old, new, fragment, marker):
    path = spec_config / "abonnement.yaml"
    text = path.read_text()
    assert old in text, f"test case does not apply: {old!r}"
    mutated = text.replace(old, new, 1)
    path.write_text(mutated)
    if marker is None or marker.startswith("did you mean"):
        hint, marker = marker, new if new.strip() else old
    else:
        hint = None
    line = _line_of(mutated, marker)
    result = run("--config", str(spec_config), "validate")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = result.stderr.splitlines()
    matching = [e for e in errors if fragment in e]
    assert matching, result.stderr
    assert any(e.startswith(f"{path}:{line}:") for e in matching), (line, result.stderr)
    if hint:
        assert any(hint in e for e in matching)


def test_every_case_is_a_distinct_mistake():
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)
    assert len({(c[1], c[2]) for c in CASES}) == len(CASES)


def test_all_problems_of_a_config_are_reported_in_one_pass(spec_config: Path):
    path = spec_config / "abonnement.yaml"
    text = path.read_text()
    for old, new in [
        ("country: DK}", "contry: DK}"),
        ("processor: test", "processor: tset"),
        ("{product: grinder,", "{product: grindr,"),
    ]:
        text = text.replace(old, new, 1)
    path.write_text(text)
    result = run("--config", str(spec_config), "validate", "--format", "json")
    assert result.exit_code == 1
    import json

    errors = json.loads(result.stdout)["errors"]
    messages = " | ".join(e["message"] for e in errors)
    assert "unknown key `contry`" in messages
    assert "no processor plugin named `tset`" in messages
    assert "unknown product `grindr`" in messages
    assert all(set(e) == {"file", "line", "column", "message", "hint", "severity"} for e in errors)
    assert {e["severity"] for e in errors} == {"error"}


def _validate_file(tmp_path: Path, content: bytes, name: str = "abonnement.yaml"):
    (tmp_path / "cfg").mkdir(exist_ok=True)
    (tmp_path / "cfg" / name).write_bytes(content)
    started = time.perf_counter()
    result = run("--config", str(tmp_path / "cfg"), "validate")
    elapsed = time.perf_counter() - started
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert elapsed < 1.0, f"took {elapsed:.2f}s"
    return result.stderr


BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(9)
)


@pytest.mark.parametrize(
    ("content", "fragment", "line"),
    [
        (BILLION_LAUGHS.encode(), "document expands to more than", 6),
        (b"a: " + b"[" * 20000 + b"]" * 20000, "nesting", 1),
        (b"- " * 20000 + b"x\n", "nesting", 1),
        (b"- " * 100 + b"x\n", "nesting deeper than 64 levels", 1),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file", 1),
        ("settings:\n  account: K\xf8benhavn ApS\n".encode("latin-1"), "not UTF-8", 2),
        (b"- just\n- a list\n", "must be a mapping of sections", 1),
        (b"just a string\n", "must be a mapping of sections", 1),
        (b"a: 1\n---\nb: 2\n", "more than one YAML document", 2),
        (
            b"settings: {account: X, currencies: [USD]}\n? [complex, key]\n: value\n",
            "mapping keys must be plain scalars",
            2,
        ),
    ],
    ids=[
        "billion-laughs",
        "deep-flow-nesting",
        "deep-block-nesting",
        "nesting-over-our-cap",
        "binary",
        "latin-1",
        "top-level-list",
        "top-level-scalar",
        "two-documents",
        "complex-key",
    ],
)
def test_hostile_files_fail_fast_and_cleanly(tmp_path, content, fragment, line):
    stderr = _validate_file(tmp_path, content)
    assert fragment in stderr
    assert f"abonnement.yaml:{line}:" in stderr


def test_settings_in_two_files_is_an_error(spec_config: Path):
    (spec_config / "more.yaml").write_text("settings:\n  account: Other\n  currencies: [USD]\n")
    result = run("--config", str(spec_config), "validate")
    assert result.exit_code == 1
    assert f"{spec_config / 'more.yaml'}:1:1: error: `settings` is declared in more than one" in (
        result.stderr
    )


def test_missing_config_directory(tmp_path: Path):
    result = run("--config", str(tmp_path / "nowhere"), "validate")
    assert result.exit_code == 1
    assert "config directory not found" in result.stderr


def test_an_empty_directory_has_nothing_to_validate(tmp_path: Path):
    result = run("--config", str(tmp_path), "validate")
    assert result.exit_code == 1
    assert "no YAML files" in result.stderr


def test_a_free_custom_line_is_valid_and_bills_nothing(tmp_path: Path):
    # 0.00 is falsy: the bounds check once took it for "no price" and crashed on the product
    (tmp_path / "abonnement.yaml").write_text("""\
settings: {account: Z, currencies: [USD]}
contacts: [{id: c, name: C, email: c@example.com}]
subscriptions:
  - id: s
    contact: c
    start: 2026-12-01
    items: [{name: Free, unit_price: "0.00 USD", frequency: monthly}]
""")
    assert run("--config", str(tmp_path), "validate").exit_code == 0
    db = f"sqlite:///{tmp_path / 'a.db'}"
    done = run("--config", str(tmp_path), "--db", db, "run", "--as-of", "2026-12-01", "--json")
    assert done.exit_code == 0, done.output
    (invoice,) = json.loads(
        run("--config", str(tmp_path), "--db", db, "invoices", "list", "--json").stdout
    )
    assert (invoice["total"], invoice["status"]) == ("0.00", "paid")
