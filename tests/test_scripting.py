"""The contract scripts and schedulers rely on: --json everywhere (errors too), exit codes,
the audit log, where the config and the files are found, init run twice."""

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import click
import pytest

from abonnement.cli import cli
from abonnement.cli.common import Exit
from tests.conftest import ROOT, run


def _leaves(group: click.Group, path: tuple = ()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _leaves(command, (*path, name))
        else:
            yield (*path, name), command


def test_every_command_takes_json():
    missing = [" ".join(path) for path, command in _leaves(cli)
               if not any("--json" in p.opts for p in command.params)]  # fmt: skip
    assert missing == []


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    directory = tmp_path / "demo"
    assert run("init", str(directory)).exit_code == 0
    return directory


def _error(result) -> dict:
    return json.loads(result.stdout)["error"]


def test_a_usage_error_under_json_is_a_json_error_with_exit_2(demo: Path):
    bad_value = run("--config", str(demo), "run", "--batch-size", "0", "--json")
    assert bad_value.exit_code == Exit.USAGE == 2
    assert _error(bad_value) == {
        "code": "usage",
        "message": "Invalid value for '--batch-size': 0 is not in the range x>=1.",
    }
    unknown = run("--config", str(demo), "subscriptions", "list", "--bogus", "--json")
    assert (unknown.exit_code, _error(unknown)["code"]) == (2, "usage")
    assert _error(unknown)["message"] == "No such option '--bogus'."
    both = run("--config", str(demo), "run", "--as-of", "2027-01-01", "--until", "2027-01-01",
               "--json")  # fmt: skip
    assert (both.exit_code, _error(both)) == (
        2,
        {"code": "usage", "message": "give --as-of or --until, not both"},
    )
    # without --json, click's own usage message on stderr
    plain = run("--config", str(demo), "run", "--batch-size", "0")
    assert (plain.exit_code, plain.stdout) == (2, "")
    assert "Error: Invalid value for '--batch-size'" in plain.stderr


def test_project_commands_answer_errors_in_json(demo: Path, tmp_path: Path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    init = run("init", str(tmp_path / "full"), "--json")
    assert (init.exit_code, _error(init)["code"]) == (1, "invalid_input")

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "abonnement.yaml").write_text("settings: {account: x, timezone: Nowhere/City}\n")
    for args in (["test"], ["validate", "--json"], ["db", "upgrade"], ["schema"]):
        result = run("--config", str(broken), *args, "--json")
        if args[0] == "validate":  # validate's own document: every problem, exit 1
            assert result.exit_code == 1
            assert json.loads(result.stdout)["valid"] is False
        elif args[0] in ("db", "schema"):  # need no config
            assert result.exit_code == 0, result.output
        else:
            assert (result.exit_code, _error(result)["code"]) == (1, "invalid_config")
            assert _error(result)["problems"][0]["file"] == str(broken / "abonnement.yaml")

    unreachable = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}"
    upgrade = run("--config", str(demo), "--db", unreachable, "db", "upgrade", "--json")
    assert (upgrade.exit_code, _error(upgrade)["code"]) == (1, "storage_error")
    rules = demo / "rules" / "pricing.rules"
    rules.write_text("discount x {\n  amount 10%\n  when line.quantity >=\n}\n")
    fmt = run("--config", str(demo), "fmt", "--check", "--json")
    assert fmt.exit_code == 1
    assert [e["line"] for e in json.loads(fmt.stdout)["errors"]] == [4]


def test_records_that_do_not_exist_exit_3_and_refusals_exit_1(demo: Path):
    missing = run("--config", str(demo), "subscriptions", "show", "nobody", "--json")
    assert (missing.exit_code, _error(missing)) == (Exit.NOT_FOUND, {
        "code": "not_found", "message": "no subscription `nobody`", "kind": "subscription",
        "id": "nobody"})  # fmt: skip
    assert run("--config", str(demo), "apply", "--as-of", "2026-11-20").exit_code == 0
    refused = run("--config", str(demo), "subscriptions", "delete", "ane-coffee", "--json")
    assert (refused.exit_code, _error(refused)["code"]) == (Exit.REFUSED, "invalid_state")


def test_a_run_that_gives_up_a_delivery_exits_4(demo: Path):
    # the mailbox cannot write (a file is where its directory should be): every delivery
    # fails, is retried on later runs, and is given up on the eighth try
    (demo / "outbox").write_text("not a directory")
    assert run("--config", str(demo), "apply", "--as-of", "2026-11-20").exit_code == 0
    codes = []
    for week in range(12):  # a weekly run tries each failed delivery once more
        on = (date(2026, 12, 1) + timedelta(weeks=week)).isoformat()
        result = run("--config", str(demo), "run", "--until", on, "--json")
        codes.append(result.exit_code)
        if result.exit_code:
            break
    assert codes == [0] * 7 + [Exit.PARTIAL], codes
    payload = json.loads(result.stdout)
    assert payload["notifications"]["failed"] >= 1
    assert payload["failures"] == {"subscriptions": 0,
                                   "deliveries": payload["notifications"]["failed"]}  # fmt: skip
    assert payload["failed"] == []  # every subscription was billed
    text = run("--config", str(demo), "run", "--until", on)
    assert text.exit_code == 0  # given up already: nothing more failed in this run


def test_a_run_with_subscriptions_it_could_not_bill_exits_4(demo: Path):
    # a stored quantity no invoice can hold: the run sets the subscription aside
    assert run("--config", str(demo), "apply", "--as-of", "2026-11-20").exit_code == 0
    created = run("--config", str(demo), "subscriptions", "create", "--id", "bob-coffee",
                  "--contact", "bob", "--item", "coffee-1kg", "--as-of", "2026-11-20",
                  "--start", "2026-12-01")  # fmt: skip
    assert created.exit_code == 0, created.output
    from abonnement.plugins.storage.sql import SqlStorage

    with SqlStorage(f"sqlite:///{demo / 'abonnement.db'}").engine.begin() as conn:
        conn.exec_driver_sql("UPDATE subscription_items SET quantity = 1000000000000 "
                             "WHERE subscription_id = 'bob-coffee'")  # fmt: skip
    result = run("--config", str(demo), "run", "--until", "2026-12-01", "--json")
    assert result.exit_code == Exit.PARTIAL
    payload = json.loads(result.stdout)
    assert payload["failures"] == {"subscriptions": 1, "deliveries": 0}
    assert [f["id"] for f in payload["failed"]] == ["bob-coffee"]
    assert payload["invoice_count"] == 1  # ane-coffee's
    text = run("--config", str(demo), "-q", "run", "--until", "2026-12-01")
    assert text.exit_code == 4
    assert text.stderr.startswith("1 subscription not billed (set aside; the next run tries")


def _log(result) -> list[dict]:
    return [json.loads(line) for line in result.stderr.splitlines()]


def test_a_run_leaves_an_audit_trail_and_no_secrets(demo: Path):
    run("--config", str(demo), "apply", "--as-of", "2026-11-20")
    result = run("--config", str(demo), "--log-format", "json", "run", "--until", "2027-01-01")
    assert result.exit_code == 0, result.stderr
    entries = _log(result)
    audit = [(e["logger"], e["message"]) for e in entries]
    assert ("abonnement.operations.delivery", "payment.succeeded ane-coffee") in audit
    assert ("abonnement.operations.billing", "billing run up to 2027-01-01: 2 invoices "
            "(50.00 USD)") in audit  # fmt: skip
    paid = [e for e in entries if e["message"] == "payment.succeeded ane-coffee"]
    assert [(e["invoice"], e["attempt"], e["level"]) for e in paid] == [
        ("INV-00001", 1, "info"), ("INV-00002", 1, "info")]  # fmt: skip
    assert {e["logger"].rsplit(".", 1)[0] for e in entries} == {"abonnement.operations"}
    assert "tok_visa" not in result.stderr
    quiet = run("--config", str(demo), "-q", "run", "--until", "2027-02-01")
    assert (quiet.exit_code, quiet.stderr) == (0, "")
    text = run("--config", str(demo), "run", "--until", "2027-03-01")
    assert " INFO abonnement.operations.delivery: payment.succeeded ane-coffee " in text.stderr


def test_an_error_under_json_logs_is_a_json_log_entry(tmp_path: Path):
    result = run("--config", str(tmp_path), "--log-format", "json", "subscriptions", "list")
    assert result.exit_code == 1
    (entry,) = _log(result)
    assert (entry["level"], entry["code"]) == ("error", "invalid_config")


def test_the_config_directory_is_found_upward(demo: Path, tmp_path: Path, monkeypatch):
    monkeypatch.delenv("ABONNEMENT_CONFIG", raising=False)
    monkeypatch.chdir(demo / "rules")
    result = run("validate")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"{demo.resolve()}: valid (")
    # the environment and --config win over the search
    other = tmp_path / "other"
    run("init", str(other))
    assert run("validate", env={"ABONNEMENT_CONFIG": str(other)}).stdout.startswith(f"{other}:")
    assert run("--config", str(other), "validate").stdout.startswith(f"{other}:")
    # nowhere: said so, and no YAML file under the current directory is read as a config
    nowhere = tmp_path / "nowhere"
    (nowhere / "x").mkdir(parents=True)
    (nowhere / "x" / "other.yaml").write_text("a: 1\n")
    monkeypatch.chdir(nowhere)
    for command in (["validate"], ["invoices", "list"]):
        result = run(*command)
        assert result.exit_code == 1
        assert result.stderr.startswith(f"{nowhere.resolve()}:1:1: error: no abonnement.yaml "
                                        "here or in any directory above; pass --config DIR")  # fmt: skip
        assert "other.yaml" not in result.stderr


def test_the_database_ledger_and_lock_live_in_the_config_directory(demo: Path, tmp_path: Path,
                                                                   monkeypatch):  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert run("--config", str(demo), "apply", "--as-of", "2026-11-20").exit_code == 0
    result = run("--config", str(demo), "run", "--until", "2026-12-01", "--json")
    assert json.loads(result.stdout)["payments"] == {"succeeded": 1}
    assert {"abonnement.db", "abonnement.db-charging", "test-processor-ledger.db"} <= {
        p.name for p in demo.iterdir()}  # fmt: skip
    assert list(elsewhere.iterdir()) == []
    # from inside the config directory, the same database
    monkeypatch.chdir(demo)
    assert [i["number"] for i in json.loads(run("invoices", "list", "--json").stdout)] == [
        "INV-00001"]  # fmt: skip


def test_init_twice_leaves_the_config_and_exits_0(demo: Path):
    config = demo / "abonnement.yaml"
    config.write_text(config.read_text() + "# mine\n")
    again = run("init", str(demo))
    assert again.exit_code == 0
    assert "already initialised" in again.stdout
    assert config.read_text().endswith("# mine\n")
    assert json.loads(run("init", str(demo), "--json").stdout)["written"] is False
    forced = run("init", str(demo), "--force", "--json")
    assert json.loads(forced.stdout)["written"] is True
    assert not config.read_text().endswith("# mine\n")


def test_the_readme_chain_runs_twice_in_a_shell(tmp_path: Path):
    chain = (ROOT / "README.md").read_text().split("```sh\n")[1].split("\n```")[0]
    chain = chain[chain.index("abonnement init") :]
    abonnement = f"{sys.executable} -m abonnement"
    command = chain.replace("abonnement --config", f"{abonnement} --config").replace(
        "abonnement init", f"{abonnement} init")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("ABONNEMENT_CONFIG", None)
    first = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True,
                           text=True)  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-1].startswith("up to 2027-12-01: issued ")
    second = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True,
                            text=True)  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[-1] == "up to 2027-12-01: issued 0 invoices (nothing)"
    assert (tmp_path / "demo" / "abonnement.db").is_file()
    assert not (tmp_path / "abonnement.db").exists()


def test_github_annotations_escape_commas_and_colons_in_properties(tmp_path: Path):
    config = tmp_path / "a,b:c"  # a name GitHub would cut at the comma and the colon
    config.mkdir()
    (config / "abonnement.yaml").write_text(
        "settings: {account: x, timezone: UTC, currencies: [USD], default_currency: USD,\n"
        "           invoices: {number_format: 'INV-{seq}'}, bogus: 1}\n"
    )
    result = run("--config", str(config), "validate", "--format", "github")
    assert result.exit_code == 1
    (line,) = result.stdout.splitlines()
    escaped = str(config / "abonnement.yaml").replace(",", "%2C").replace(":", "%3A")
    assert line.startswith(f"::error file={escaped},line=2,col="), line
    assert "::unknown key `bogus` in settings" in line


def test_github_annotation_messages_escape_percent_and_newlines(capsys):
    from abonnement.cli.common import print_problems
    from abonnement.errors import Problem

    print_problems([Problem("x.yaml", 3, 1, "100% wrong\r\nhere", "fix it")], "github")
    assert capsys.readouterr().out == (
        "::error file=x.yaml,line=3,col=1::100%25 wrong%0D%0Ahere (fix it)\n")  # fmt: skip
