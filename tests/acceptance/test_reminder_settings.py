"""Reminder settings changed between two runs (S10): the next run follows the settings of the
day, never what an earlier run stored with others, and never bills past its ``--until``.

Bob's coffee is billed on the 1st of each month from 2026-12-01; with reminders on (14 days)
the reminder for 2027-01-01 is due on 2026-12-18.
"""

import pytest

from tests.acceptance.scenario import Scenario
from tests.acceptance.test_collection_scenarios import BOB_SAVED

ON = "reminder: {enabled: true, days_before: 14}"
OFF = "reminder: {enabled: false, days_before: 14}"


def reminders(s: Scenario, enabled: bool) -> None:
    config = s.config / "abonnement.yaml"
    text = config.read_text()
    assert ON in text or OFF in text
    config.write_text(text.replace(OFF, ON) if enabled else text.replace(ON, OFF))


def billed(s: Scenario) -> list[tuple[str, str]]:
    return [(i["number"], i["issue_date"]) for i in s.invoices("bob-coffee")]


def reminded(s: Scenario) -> list[tuple[str, str]]:
    return [(h["date"], h["payment_date"]) for h in s.subscription("bob-coffee")["history"]
            if h["type"] == "reminder.due"]  # fmt: skip


@pytest.fixture
def s(tmp_path, db_url) -> Scenario:
    scenario = Scenario(tmp_path, db_url, subscriptions=BOB_SAVED)
    scenario.cli("apply", "--as-of", "2026-12-01")
    return scenario


def test_reminders_turned_off_after_the_reminder_was_sent_bill_on_the_payment_date(s):
    s.cli("run", "--until", "2026-12-22")  # 10 days before the payment: reminded, not billed
    assert (billed(s), reminded(s)) == ([("INV-00001", "2026-12-01")],
                                        [("2026-12-18", "2027-01-01")])  # fmt: skip
    reminders(s, False)
    again = s.cli("run", "--until", "2026-12-22")
    assert again["invoice_count"] == 0
    assert (billed(s), reminded(s)) == ([("INV-00001", "2026-12-01")],
                                        [("2026-12-18", "2027-01-01")])  # fmt: skip
    s.cli("run", "--until", "2027-01-01")
    assert billed(s) == [("INV-00001", "2026-12-01"), ("INV-00002", "2027-01-01")]


def test_reminders_turned_off_before_the_reminder_date_never_bill_past_until(s):
    # Stored with reminders on, the next event is the reminder (2026-12-18); with them off the
    # next event is the payment (2027-01-01), after this run's --until.
    s.cli("run", "--until", "2026-12-15")
    reminders(s, False)
    again = s.cli("run", "--until", "2026-12-22")
    assert again["invoice_count"] == 0
    assert (billed(s), reminded(s)) == ([("INV-00001", "2026-12-01")], [])
    history = s.subscription("bob-coffee")["history"]
    assert max(h["date"] for h in history) == "2026-12-01"  # nothing dated after --until
    s.cli("run", "--until", "2027-01-01")
    assert (billed(s), reminded(s)) == (
        [("INV-00001", "2026-12-01"), ("INV-00002", "2027-01-01")], [])  # fmt: skip


def test_reminders_turned_on_send_the_reminder_due_before_until(s):
    reminders(s, False)
    s.cli("run", "--until", "2026-12-22")
    assert (billed(s), reminded(s)) == ([("INV-00001", "2026-12-01")], [])
    reminders(s, True)
    again = s.cli("run", "--until", "2026-12-22")
    assert again["invoice_count"] == 0
    assert (billed(s), reminded(s)) == ([("INV-00001", "2026-12-01")],
                                        [("2026-12-18", "2027-01-01")])  # fmt: skip
    s.cli("run", "--until", "2027-01-01")
    assert billed(s) == [("INV-00001", "2026-12-01"), ("INV-00002", "2027-01-01")]
    assert reminded(s) == [("2026-12-18", "2027-01-01")]  # once
