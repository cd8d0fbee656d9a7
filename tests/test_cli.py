"""The command line: init, validate formats, plugins, exit codes."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, run, run_json


def test_init_then_validate_works(tmp_path: Path):
    demo = tmp_path / "demo"
    result = run("init", str(demo))
    assert result.exit_code == 0, result.stderr
    assert (demo / "abonnement.yaml").is_file() and (demo / "rules" / "pricing.rules").is_file()
    result = run("--config", str(demo), "validate")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"{demo}: valid (products: 4, contacts: 2, payment_links: 2")
    assert result.stderr == ""


def test_the_seed_has_the_three_coffee_products_of_the_spec(tmp_path: Path):
    from abonnement.config.loader import load_config
    from abonnement.plugins.manager import Plugins

    run("init", str(tmp_path / "demo"))
    catalog = load_config(tmp_path / "demo", Plugins.load().names())
    summary = {
        p.id: (str(p.prices.get("USD")), p.frequency and p.frequency.name)
        for p in catalog.products.values()
    }
    assert summary == {
        "coffee-1kg": ("25.00 USD", "monthly"),
        "coffee-500g": ("18.00 USD", "biweekly"),
        "coffee-250g": ("12.50 USD", "monthly"),
        "grinder": ("89.00 USD", None),
    }
    assert [i.product for i in catalog.payment_links["coffee-sampler"].items] == [
        "coffee-1kg", "coffee-500g", "coffee-250g",
    ]  # fmt: skip


def test_init_refuses_a_non_empty_directory(tmp_path: Path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    result = run("init", str(tmp_path / "x"))
    assert result.exit_code == 1
    assert "exists and is not empty" in result.stderr
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"


def test_validate_json_is_one_document(spec_config: Path):
    payload = run_json("--config", str(spec_config), "validate", "--format", "json")
    assert (payload["valid"], payload["errors"]) == (True, [])
    # the spec's example taxes Premium support twice (its own dk-vat and dk_vat): a warning
    assert [w["line"] for w in payload["warnings"]] == [5]


def test_validate_github_annotates_the_file(spec_config: Path):
    path = spec_config / "abonnement.yaml"
    path.write_text(path.read_text().replace("frequency: biweekly", "frequency: biweekyl"))
    result = run("--config", str(spec_config), "validate", "--format", "github")
    assert result.exit_code == 1
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"::error file={path},line=56,col=16::expected a frequency")
    assert line.endswith("(did you mean `biweekly`?)")


def test_config_comes_from_the_environment(spec_config: Path):
    result = run("validate", env={"ABONNEMENT_CONFIG": str(spec_config)})
    assert result.exit_code == 0, result.stderr


def test_a_usage_error_exits_2():
    assert run("validate", "--format", "yaml").exit_code == 2
    assert run("no-such-command").exit_code == 2


def test_plugins_json():
    payload = run_json("plugins", "--json")
    names = {row["name"] for row in payload["plugins"]}
    assert "abonnement.plugins.processors.test" in names


def test_python_dash_m_runs_the_cli(tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "abonnement",
            "--config",
            str(ROOT / "examples" / "spec"),
            "validate",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["valid"] is True


def test_a_user_error_in_a_real_process_has_no_traceback(tmp_path: Path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.yaml").write_text("settings: [oops\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "abonnement", "--config", str(tmp_path / "c"), "validate"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"{tmp_path / 'c' / 'a.yaml'}:2:1: error: invalid YAML")


def test_an_item_quantity_of_zero_is_a_usage_error(spec_config: Path):
    for args in (["quote", "--contact", "bob"], ["subscriptions", "create", "--id", "x",
                                                 "--contact", "bob"]):  # fmt: skip
        result = run("--config", str(spec_config), *args, "--item", "coffee-1kg:0")
        assert result.exit_code == 2
        assert "expected PRODUCT or PRODUCT:QUANTITY (≥ 1)" in result.output


def test_errors_are_json_on_stdout_with_a_stable_code_under_json(spec_config: Path, tmp_path):
    db = f"sqlite:///{tmp_path / 'a.db'}"
    result = run("--config", str(spec_config), "--db", db, "invoices", "show", "INV-9", "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout) == {"error": {
        "code": "not_found", "message": "no invoice `INV-9`", "kind": "invoice", "id": "INV-9",
    }}  # fmt: skip
    refused = run("--config", str(spec_config), "--db", db, "quote", "--contact", "bob",
                  "--item", "grinder:1", "--item", "nope", "--json")  # fmt: skip
    assert refused.exit_code == 3
    assert json.loads(refused.stdout)["error"]["code"] == "not_found"
    plain = run("--config", str(spec_config), "--db", db, "invoices", "show", "INV-9")
    assert (plain.exit_code, plain.stdout, plain.stderr) == (3, "", "error: no invoice `INV-9`\n")
