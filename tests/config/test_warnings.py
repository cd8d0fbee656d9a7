"""`validate` warns of what is valid but likely a mistake, in every format, and still exits 0:
a tax rule applying the rate items already carry as their own `tax_rate`."""

import json

from tests.conftest import run

WARNING = ("tax `dk_vat` applies the rate of tax rate `dk-vat`, which items already carry as "
           "their own tax_rate (subscription `acme-storage`): their lines are taxed twice at "
           "that rate")  # fmt: skip


def test_a_rate_applied_twice_to_a_line_is_a_warning_in_text(spec_config):
    result = run("--config", str(spec_config), "validate")
    assert result.exit_code == 0
    where = f"{spec_config}/rules/pricing.rules:5:8: warning: "
    assert result.stderr.splitlines()[0] == (
        where + WARNING + "; leave those lines out with `when`, or drop one")  # fmt: skip
    assert result.stderr.splitlines()[-1] == "1 warning"
    assert "ny_sales" not in result.stderr  # no item carries ny-sales itself
    assert ": valid (" in result.stdout


def test_a_rate_applied_twice_is_a_warning_in_json_and_github(spec_config):
    result = run("--config", str(spec_config), "validate", "--format", "json")
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    assert payload["valid"] is True and payload["errors"] == []
    assert [(w["file"], w["line"], w["column"], w["message"], w["severity"])
            for w in payload["warnings"]] == [
        (f"{spec_config}/rules/pricing.rules", 5, 8, WARNING, "warning")]  # fmt: skip
    github = run("--config", str(spec_config), "validate", "--format", "github")
    assert github.exit_code == 0
    assert github.stdout.splitlines()[0].startswith(
        f"::warning file={spec_config}/rules/pricing.rules,line=5,col=8::tax `dk_vat`")  # fmt: skip


def test_the_same_rate_written_as_a_percentage_or_by_name_is_caught(spec_config):
    rules = spec_config / "rules" / "pricing.rules"
    text = rules.read_text().replace("  rate 25%\n", '  rate tax_rate("dk-vat")\n', 1)
    rules.write_text(text)
    result = run("--config", str(spec_config), "validate", "--format", "json")
    assert [w["message"] for w in json.loads(result.stdout)["warnings"]] == [WARNING]
    rules.write_text(text.replace('  rate tax_rate("dk-vat")\n', "  rate 24%\n", 1))
    result = run("--config", str(spec_config), "validate", "--format", "json")
    assert json.loads(result.stdout)["warnings"] == []
