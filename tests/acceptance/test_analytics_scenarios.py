"""Reports through the CLI over a real history: MRR movements from declared changes."""

import csv
import io

from tests.acceptance.scenario import Scenario
from tests.conftest import run

TWO = """\
  - id: ane-coffee
    contact: ane
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 1}]
    collection: {mode: automatic, method: saved, payment_method: ane-visa}
  - id: bob-coffee
    contact: bob
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 2}]
    collection: {mode: automatic, method: saved, payment_method: bob-visa}
"""


def test_mrr_movements_from_new_changed_and_canceled_subscriptions(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, subscriptions=TWO)
    s.cli("apply", "--as-of", "2026-11-25")
    s.cli("run", "--until", "2027-01-05")
    # ane triples her order from the next cycle; bob cancels in February
    config = s.config / "abonnement.yaml"
    config.write_text(
        config.read_text().replace("coffee-1kg, quantity: 1}", "coffee-1kg, quantity: 3}")
    )
    assert s.cli("apply", "--as-of", "2027-01-10")["updated"] == ["ane-coffee"]
    s.cli("run", "--until", "2027-02-05")
    s.cli("subscriptions", "cancel", "bob-coffee", "--as-of", "2027-02-10")
    s.cli("run", "--until", "2027-03-01")

    report = s.cli("report", "movements", "--as-of", "2027-03-01", "--from", "2026-12-01",
                   "--to", "2027-02-01")  # fmt: skip
    assert report["series"] == [
        {"month": "2026-12", "value": {"new": "75.00", "expansion": "0.00", "contraction": "0.00",
                                       "churned": "0.00", "net": "75.00"}},
        {"month": "2027-01", "value": {"new": "0.00", "expansion": "50.00", "contraction": "0.00",
                                       "churned": "0.00", "net": "50.00"}},
        {"month": "2027-02", "value": {"new": "0.00", "expansion": "0.00", "contraction": "0.00",
                                       "churned": "50.00", "net": "-50.00"}},
    ]  # fmt: skip
    mrr = s.cli(
        "report", "mrr", "--as-of", "2027-03-01", "--from", "2026-11-01", "--to", "2027-02-01"
    )
    assert [r["value"] for r in mrr["series"]] == ["0.00", "75.00", "125.00", "75.00"]
    # the past as it was: before the change, ane's MRR was 25.00
    assert s.cli("report", "mrr", "--as-of", "2027-01-09")["value"] == "75.00"

    table = run("--config", str(s.config), "--db", s.db_url, "report", "movements", "--as-of",
                "2027-03-01", "--from", "2027-01-01", "--to", "2027-02-01", "--csv")  # fmt: skip
    assert list(csv.reader(io.StringIO(table.stdout))) == [
        ["month", "new", "expansion", "contraction", "churned", "net"],
        ["2027-01", "0.00", "50.00", "0.00", "0.00", "50.00"],
        ["2027-02", "0.00", "0.00", "0.00", "50.00", "-50.00"],
    ]


def test_a_movements_chart_is_a_png(tmp_path):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", subscriptions=TWO)
    s.cli("apply", "--as-of", "2026-11-25")
    s.cli("run", "--until", "2027-01-05")
    chart = tmp_path / "moves.png"
    result = run("--config", str(s.config), "--db", s.db_url, "report", "movements", "--as-of",
                 "2027-01-05", "--from", "2026-11-01", "--chart", str(chart))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
