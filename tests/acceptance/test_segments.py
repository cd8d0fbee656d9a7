"""Segments (F27) through the CLI: the spec's renewals_soon, and a segment of contacts."""

from tests.acceptance.scenario import Scenario
from tests.acceptance.test_billing_scenarios import S9
from tests.conftest import run

RULES = """\
segment renewals_soon {
  of subscriptions
  where subscription.end_date is set and subscription.end_date <= today() + 30 days
}

segment danes {
  of contacts
  where customer.country == "DK"
}
"""
COFFEE = """\
  - id: ane-coffee
    contact: ane
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 1}]
    collection: {mode: automatic, method: saved, payment_method: ane-visa}
"""


def test_renewals_soon_holds_fixed_terms_ending_within_30_days(tmp_path, db_url):
    s = Scenario(tmp_path, db_url, rules=RULES, subscriptions=S9 + COFFEE)
    s.cli("apply", "--as-of", "2026-12-01")
    # acme-storage: 12 payments from 2026-12-01, so it ends on 2027-12-01
    assert s.cli("segments", "show", "renewals_soon", "--as-of", "2027-10-31")["members"] == []
    soon = s.cli("segments", "show", "renewals_soon", "--as-of", "2027-11-01")
    assert soon == {"segment": "renewals_soon", "of": "subscriptions", "as_of": "2027-11-01",
                    "members": ["acme-storage"]}  # fmt: skip
    listed = s.cli("subscriptions", "list", "--segment", "renewals_soon", "--as-of", "2027-11-15")
    assert [r["id"] for r in listed] == ["acme-storage"]
    assert s.cli("segments", "show", "danes")["members"] == ["ane"]


def test_an_unknown_segment_is_a_clean_error(tmp_path):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", rules=RULES)
    result = run("--config", str(s.config), "--db", s.db_url, "segments", "show", "renewal_soon")
    assert result.exit_code == 3
    assert "no segment `renewal_soon`" in result.stderr and "renewals_soon" in result.stderr
    wrong = run("--config", str(s.config), "--db", s.db_url, "subscriptions", "list",
                "--segment", "danes")  # fmt: skip
    assert wrong.exit_code == 1 and "is of contacts" in wrong.stderr
