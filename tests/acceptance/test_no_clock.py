"""A command given its dates reads no clock: the same config, database and arguments give
the same output and the same rows whatever day it is typed (the process clock is faked)."""

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.acceptance.scenario import Scenario
from tests.acceptance.test_declared import ANE, BOB
from tests.conftest import ROOT, SPEC

FAKE_CLOCK = ROOT / "tests" / "fixtures" / "fakeclock"  # its sitecustomize fakes the clock
RULES = (SPEC / "rules" / "pricing.rules").read_text()
# Typed on these days; none of them is a date any command is given.
DAYS = ("2026-11-03", "2027-02-20")


def cli(folder: Path, today: str, *args: str) -> tuple[int, str]:
    """``abonnement ARGS`` in a process whose clock says ``today``."""
    env = {**os.environ, "PYTHONPATH": f"{FAKE_CLOCK}{os.pathsep}{ROOT}", "FAKE_TODAY": today}
    done = subprocess.run(
        [sys.executable, "-m", "abonnement", "--config", str(folder / "config"), "--db",
         f"sqlite:///{folder / 'billing.db'}", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout


def rows(database: Path) -> dict[str, list[tuple]]:
    """Every row of every table of a SQLite file, in a stable order."""
    with sqlite3.connect(database) as db:
        tables = [name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]  # fmt: skip
        return {name: sorted(db.execute(f'SELECT * FROM "{name}"'), key=repr) for name in tables}


def outbox(folder: Path) -> dict[str, str]:
    """The messages the mailbox notifier wrote (their MIME boundaries are random)."""
    box = folder / "config" / "outbox"
    return {p.name: re.sub(r"=+\d+==", "=BOUNDARY=", p.read_text())
            for p in sorted(box.glob("*"))}  # fmt: skip


def days_of_work(folder: Path, today: str) -> list[tuple[int, str]]:
    """One story, every command dated: two runs up to a date (one dry), a config change,
    its plan, a purchase, a pause, a later run, a report and a forecast."""
    outputs = [
        cli(folder, today, "run", "--until", "2027-01-01", "--dry-run", "--json"),
        cli(folder, today, "run", "--until", "2027-01-01", "--json"),
    ]
    config = folder / "config" / "abonnement.yaml"
    config.write_text(config.read_text().replace("{product: coffee-1kg, quantity: 1}",
                                                 "{product: coffee-1kg, quantity: 3}"))  # fmt: skip
    outputs += [
        cli(folder, today, "plan", "--as-of", "2027-01-15", "--json"),
        cli(folder, today, "checkout", "coffee-monthly", "--contact", "bob", "--card",
            "tok_visa", "--as-of", "2027-01-20", "--json"),
        cli(folder, today, "subscriptions", "pause", "bob-coffee", "--as-of", "2027-02-10",
            "--json"),
        cli(folder, today, "run", "--until", "2027-03-01", "--json"),
        cli(folder, today, "report", "mrr", "--as-of", "2027-03-01", "--json"),
        cli(folder, today, "forecast", "--as-of", "2027-03-01", "--months", "2", "--json"),
    ]  # fmt: skip
    return outputs


def test_dated_commands_give_the_same_output_and_rows_on_any_day(tmp_path):
    base = tmp_path / "base"
    s = Scenario(base, f"sqlite:///{base / 'billing.db'}", subscriptions=ANE + BOB, rules=RULES)
    config = s.config / "abonnement.yaml"
    # the test processor's ledger goes next to each database (not one shared file)
    config.write_text(config.read_text().replace(f"    test: {{ledger: '{s.ledger}'}}\n", ""))
    assert cli(base, DAYS[0], "db", "upgrade")[0] == 0  # one instance id for both copies
    folders = {}
    for today in DAYS:
        folders[today] = tmp_path / today
        shutil.copytree(base, folders[today])

    outputs = {today: days_of_work(folders[today], today) for today in DAYS}

    first, second = (outputs[today] for today in DAYS)
    assert [code for code, _ in first] == [0] * len(first)
    for (_, one), (_, other) in zip(first, second, strict=True):
        assert json.loads(one) == json.loads(other)
    assert json.loads(first[1][1])["invoice_count"] == 4  # ane and bob, December and January
    a, b = (folders[today] for today in DAYS)
    assert rows(a / "billing.db") == rows(b / "billing.db")
    assert rows(a / "test-processor-ledger.db") == rows(b / "test-processor-ledger.db")
    assert len(outbox(a)) > 5 and outbox(a) == outbox(b)
    # the clock really was faked: without a date, the two processes see two days
    undated = [json.loads(cli(folders[today], today, "forecast", "--json")[1])["as_of"]
               for today in DAYS]  # fmt: skip
    assert undated[0] != undated[1] and undated[1] in ("2027-02-19", "2027-02-20")
