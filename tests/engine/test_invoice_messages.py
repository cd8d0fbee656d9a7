"""The messages an invoice sent for payment plans when it is issued, and whether each still has
something to say on the day it is delivered."""

from dataclasses import replace
from datetime import date

import pytest

from abonnement.engine.catalog import Settings
from abonnement.engine.notifications import Planned, invoice_planned, still_to_say
from abonnement.engine.subscriptions import sent_for_payment

SETTINGS = Settings(account="A", currencies=("USD",), default_currency="USD")
ISSUED, DUE = date(2026, 12, 1), date(2026, 12, 31)


def test_net_30_plans_the_invoice_now_the_reminder_7_days_before_the_notice_the_day_after():
    assert invoice_planned(SETTINGS, ISSUED, DUE) == [
        Planned("invoice", "contact"),
        Planned("invoice_reminder", "contact", after=date(2026, 12, 24)),
        Planned("invoice_past_due", "contact", after=date(2027, 1, 1)),
    ]


def test_terms_no_longer_than_the_lead_plan_no_reminder():
    assert [p.template for p in invoice_planned(SETTINGS, ISSUED, date(2026, 12, 8))] == [
        "invoice", "invoice_past_due"]  # fmt: skip
    assert [p.template for p in invoice_planned(SETTINGS, ISSUED, ISSUED)] == [
        "invoice", "invoice_past_due"]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "left"),
    [
        ({"invoice_email": False}, ["invoice_reminder", "invoice_past_due"]),
        ({"invoice_reminder_enabled": False}, ["invoice", "invoice_past_due"]),
        ({"past_due_notice": False}, ["invoice", "invoice_reminder"]),
        ({"invoice_reminder_days_before": 29}, ["invoice", "invoice_reminder", "invoice_past_due"]),
        ({"invoice_reminder_days_before": 30}, ["invoice", "invoice_past_due"]),
    ],
)
def test_each_message_is_a_setting(change, left):
    planned = invoice_planned(replace(SETTINGS, **change), ISSUED, DUE)
    assert [p.template for p in planned] == left


def test_only_invoices_waiting_for_the_buyer_are_sent():
    assert sent_for_payment("manual") and sent_for_payment("first_invoice")
    assert not sent_for_payment("automatic")


@pytest.mark.parametrize(
    ("template", "open_", "on", "says"),
    [
        ("invoice", True, ISSUED, True),
        ("invoice", False, ISSUED, False),  # paid before it went out
        ("invoice_reminder", True, date(2026, 12, 24), True),
        ("invoice_reminder", True, DUE, True),
        ("invoice_reminder", True, date(2027, 1, 1), False),  # past due: the notice says it
        ("invoice_reminder", False, date(2026, 12, 24), False),
        ("invoice_past_due", True, date(2027, 1, 1), True),
        ("invoice_past_due", True, DUE, False),  # made due early by hand: waits
        ("invoice_past_due", False, date(2027, 1, 1), False),
    ],
)
def test_a_message_planned_at_issue_says_something_only_while_it_is_true(template, open_, on, says):
    assert still_to_say(template, open_=open_, due=DUE, on=on) is says
