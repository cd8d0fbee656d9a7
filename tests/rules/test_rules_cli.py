"""Rules through the CLI: validate checks them, `abonnement test` runs the cases."""

import json
from pathlib import Path

from tests.conftest import run


def test_the_spec_rule_cases_pass(spec_config: Path):
    result = run("--config", str(spec_config), "test")
    assert result.exit_code == 0, result.output + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "3 passed, 0 failed"


def test_coverage_lists_blocks_no_case_exercised(spec_config: Path):
    result = run("--config", str(spec_config), "test", "--coverage")
    assert "not exercised: welcome, launch_promo, shipping, welcome_email" in result.stdout


def test_a_failing_case_shows_expected_and_actual(spec_config: Path):
    cases = spec_config / "pricing.test.yaml"
    cases.write_text(
        cases.read_text().replace('taxes: {dk_vat: "16.88 USD"}', 'taxes: {dk_vat: "16.87 USD"}')
    )
    result = run("--config", str(spec_config), "test")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "FAIL Danish buyers pay 25% VAT on the discounted amount"
    assert lines[1] == "  taxes: expected dk_vat 16.87 USD, got dk_vat 16.88 USD"
    assert lines[-1] == "2 passed, 1 failed"


def test_a_malformed_case_is_an_error_at_its_line(spec_config: Path):
    cases = spec_config / "pricing.test.yaml"
    cases.write_text(cases.read_text().replace("customer: {country: DK}", "customer: {contry: DK}"))
    result = run("--config", str(spec_config), "test")
    assert result.exit_code == 1
    assert (
        f"{cases}:3:16: error: unknown field `customer.contry`; did you mean `country`?"
        in result.stderr
    )


def test_validate_reports_rule_errors_with_yaml_errors_in_one_pass(spec_config: Path):
    rules = spec_config / "rules" / "pricing.rules"
    rules.write_text(rules.read_text().replace("line.quantity >= 3", 'line.quantity >= "3"'))
    config = spec_config / "abonnement.yaml"
    config.write_text(config.read_text().replace("processor: test", "processor: tset"))
    result = run("--config", str(spec_config), "validate", "--format", "json")
    assert result.exit_code == 1
    errors = json.loads(result.stdout)["errors"]
    assert [(Path(e["file"]).name, e["line"], e["column"]) for e in errors] == [
        ("abonnement.yaml", 16, 16),
        ("pricing.rules", 19, 8),
    ]
    result = run("--config", str(spec_config), "validate")
    assert f"{rules}:19:8: error: cannot compare number with string" in result.stderr
    caret = '      when line.quantity >= "3" and line.sku startswith "COFFEE-"\n           ^'
    assert caret in result.stderr
