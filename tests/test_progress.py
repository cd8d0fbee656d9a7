"""Progress: the long operations say how far they got (``progress(done, total)``), and the
command line draws a bar on standard error only for a terminal — never with ``--json`` or
``-q``, never into a pipe or a file."""

import os
import pty
import subprocess
import sys

import pytest

from abonnement.app import App
from abonnement.cli.progress import Bar
from abonnement.operations import billing, declared, plan, queries
from tests.acceptance.scenario import Scenario
from tests.conftest import ROOT, run

SUBS = """\
  - id: a
    contact: bob
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 1}]
  - id: b
    contact: bob
    start: 2027-01-15
    items: [{product: coffee-1kg, quantity: 2}]
"""


@pytest.fixture
def shop(tmp_path):
    return Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", subscriptions=SUBS)


def _context(s):
    return App(s.config, s.db_url).context


def _check(calls):
    """Every report is sane: done never goes back, never passes total; the last is whole."""
    assert calls, "no progress reported"
    dones = [done for done, _ in calls]
    assert dones == sorted(dones)
    assert all(total is None or done <= total for done, total in calls), calls
    return calls[-1]


def test_a_run_reports_the_subscriptions_it_billed_and_ends_whole(shop):
    from datetime import date

    calls = []
    result = billing.run(_context(shop), date(2027, 3, 31), apply_on=date(2026, 12, 1),
                         progress=lambda done, total: calls.append((done, total)))  # fmt: skip
    assert result.summary.invoice_count == 7  # a: Dec 1 – Mar 1; b: Jan 15 – Mar 15
    last = _check(calls)
    assert last[0] == last[1] == result.summary.subscriptions
    assert calls[0] == (0, 0)  # before the apply, nothing is due yet


def test_apply_forecast_plan_and_report_report_progress(shop):
    from datetime import date

    ctx = _context(shop)
    applied = []
    declared.apply(ctx, date(2026, 12, 1), progress=lambda d, t: applied.append((d, t)))
    assert applied == [(0, 2), (1, 2), (2, 2)]  # one per declaration
    forecast = []
    billing.forecast(ctx, date(2026, 12, 1), 3, progress=lambda d, t: forecast.append((d, t)))
    assert _check(forecast)[0] == _check(forecast)[1] > 0
    planned = []
    plan.plan(ctx, date(2026, 12, 1), 3, progress=lambda d, t: planned.append((d, t)))
    done, total = _check(planned)
    assert done == total > forecast[-1][0]  # two runs: before and after
    read = []
    queries.report(ctx, "mrr", date(2027, 1, 31), months=[date(2026, 12, 1)],
                   progress=lambda d, t: read.append((d, t)))  # fmt: skip
    assert read == [(0, None), (1, None), (2, None)]  # streamed: no total


def test_the_bar_draws_in_place_and_says_how_far():
    class Stream:
        def __init__(self):
            self.text = ""

        def write(self, s):
            self.text += s

        def flush(self):
            pass

    stream = Stream()
    bar = Bar("billing", stream)  # type: ignore[arg-type]
    bar(5, 10)
    assert stream.text == "\rbilling [###############---------------]  50% 5/10\x1b[K"
    assert Bar("report", stream, "subscriptions read").text() == "report 0 subscriptions read"
    bar.clear()
    assert stream.text.endswith("\r\x1b[K") and not bar.visible


def _on_a_terminal(s, *args: str) -> tuple[str, str]:
    """Run the command with standard error on a pseudo-terminal: (what the terminal got,
    standard output)."""
    main, side = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "abonnement", "--config", str(s.config), "--db", s.db_url, *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=side, env=env,
    )  # fmt: skip
    os.close(side)
    seen = b""
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # the other side closed: the process is done
            break
        if not data:
            break
        seen += data
    out = process.stdout.read().decode()  # type: ignore[union-attr]
    assert process.wait() == 0, seen
    os.close(main)
    return seen.decode(), out


def test_a_terminal_sees_the_bar_and_standard_output_does_not(shop):
    terminal, out = _on_a_terminal(shop, "run", "--as-of", "2027-03-31")
    assert "\rbilling [" in terminal and "100%" in terminal
    assert terminal.count("\r\x1b[K") >= 1  # erased before the log lines and at the end
    assert out.startswith("up to 2027-03-31: issued ")
    assert "billing [" not in out


@pytest.mark.parametrize("flags", [["-q"], ["--log-format", "json"]])
def test_quiet_or_json_logs_draw_no_bar_even_on_a_terminal(shop, flags):
    terminal, _ = _on_a_terminal(shop, *flags, "run", "--as-of", "2027-03-31")
    assert "billing [" not in terminal


def test_json_draws_no_bar_even_on_a_terminal(shop):
    terminal, out = _on_a_terminal(shop, "forecast", "--as-of", "2026-12-01", "--json")
    assert "forecasting [" not in terminal and out.startswith("{")


def test_no_bar_into_a_pipe(shop):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "abonnement", "--config", str(shop.config), "--db", shop.db_url,
         "run", "--as-of", "2027-03-31"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "billing [" not in done.stderr and "\r" not in done.stderr
    inside = run("--config", str(shop.config), "--db", shop.db_url, "forecast", "--as-of",
                 "2027-03-31")  # fmt: skip
    assert "forecasting" not in inside.stderr
