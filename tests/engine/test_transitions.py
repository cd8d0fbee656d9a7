"""The engine checks every change of status against the transition table where it makes it:
subscription lifecycle and billing steps, payment outcomes, invoices paid."""

from datetime import date
from decimal import Decimal

import pytest

from abonnement.engine.collection import ChargeResult, Outcome, judge, subscription_after
from abonnement.engine.invoicing import payment_received
from abonnement.engine.items import Item
from abonnement.engine.money import Money
from abonnement.engine.outcomes import Standing, after_dues
from abonnement.engine.schedule import Frequency
from abonnement.engine.status import InvoiceStatus, PaymentStatus, SubscriptionStatus
from abonnement.engine.subscriptions import (
    Subscription,
    cancel,
    pause,
    resume,
    scheduled,
    step,
)
from abonnement.errors import InvalidState

S, INV, P = SubscriptionStatus, InvoiceStatus, PaymentStatus

MONTHLY = Frequency.parse("monthly")


def _sub(status: SubscriptionStatus, **fields) -> Subscription:
    item = Item("Coffee", 1, Money(Decimal("20.00"), "USD"), frequency=MONTHLY)
    return Subscription("beans", "ada", "USD", MONTHLY, date(2027, 1, 1), (item,), status=status,
                        **fields)  # fmt: skip


def test_a_scheduled_subscription_steps_to_active_then_past_due_with_the_moves_recorded():
    sub = _sub(S.SCHEDULED)
    started = step(sub)
    assert started.subscription.status is S.ACTIVE
    assert [dict(e.payload) for e in started.events if e.type == "subscription.status_changed"] \
        == [{"previous_status": "scheduled", "status": "active"}]  # fmt: skip
    overdue = step(_sub(S.ACTIVE, next_index=1, open_due_on=date(2027, 1, 10)))
    assert overdue.subscription.status is S.PAST_DUE


def test_a_step_does_nothing_dated_after_the_day_the_run_is_at():
    # claimed on 2027-01-18 by a date stored with a 14-day reminder lead; reminders are off now
    sub = scheduled(_sub(S.ACTIVE, next_index=1), 0)
    assert sub.next_event_on == date(2027, 2, 1)
    waiting = step(sub, date(2027, 1, 18))
    assert (waiting.subscription, waiting.periods, waiting.events) == (sub, (), ())
    billed = step(sub, date(2027, 2, 1))
    assert [p.start for p in billed.periods] == [date(2027, 2, 1)]


def test_the_reminder_lead_the_engine_stamps_decides_the_next_event():
    sub = _sub(S.ACTIVE, next_index=1)
    assert scheduled(sub, 14).next_event_on == date(2027, 1, 18)
    assert scheduled(sub, 0).next_event_on == date(2027, 2, 1)
    reminded = step(scheduled(sub, 14), date(2027, 1, 18))
    assert [e.type for e in reminded.events] == ["reminder.due"]
    assert reminded.subscription.next_event_on == date(2027, 2, 1)


def test_step_refuses_a_move_the_table_does_not_allow(monkeypatch):
    # a corrupt table (or a new branch in step) cannot move a subscription silently
    import abonnement.engine.status as status

    rows = dict(status.TRANSITIONS[S])
    rows[S.SCHEDULED] = frozenset({S.CANCELED})
    monkeypatch.setattr(status, "TRANSITIONS", {**status.TRANSITIONS, S: rows})
    with pytest.raises(InvalidState, match="cannot go from `scheduled` to `active`"):
        step(_sub(S.SCHEDULED))


@pytest.mark.parametrize("status", [S.SCHEDULED, S.PAUSED, S.CANCELED, S.EXPIRED])
def test_only_a_live_subscription_pauses(status):
    with pytest.raises(InvalidState, match=f"is {status}; only a live one pauses"):
        pause(_sub(status), date(2027, 2, 1))


@pytest.mark.parametrize("status", [S.ACTIVE, S.PAST_DUE, S.UNPAID])
def test_a_live_subscription_pauses(status):
    assert pause(_sub(status), date(2027, 2, 1)).subscription.status is S.PAUSED


@pytest.mark.parametrize("status", [S.CANCELED, S.EXPIRED])
def test_a_finished_subscription_is_not_canceled_again(status):
    with pytest.raises(InvalidState, match=f"is already {status}"):
        cancel(_sub(status), date(2027, 2, 1))


def test_resume_needs_a_paused_subscription():
    with pytest.raises(InvalidState, match="is active, not paused"):
        resume(_sub(S.ACTIVE), date(2027, 2, 1))
    resumed = resume(_sub(S.PAUSED, next_index=1), date(2027, 3, 15))
    assert (resumed.subscription.status, resumed.subscription.next_index) == (S.ACTIVE, 3)


def test_settled_dues_make_a_past_due_subscription_active_again():
    standing = Standing("s1", S.PAST_DUE, 4, None)
    cleared, events = after_dues(standing, None, date(2027, 2, 5))
    assert cleared.status is S.ACTIVE
    assert [(e.type, e.seq, dict(e.payload)) for e in events] == [
        ("subscription.status_changed", 5, {"previous_status": "past_due", "status": "active"})
    ]
    still = after_dues(standing, date(2027, 2, 1), date(2027, 2, 5))  # another one overdue
    assert still == (standing, ())


def _judge(result: ChargeResult, current: PaymentStatus = P.PENDING, **kw) -> Outcome:
    return judge(result, on=date(2027, 2, 1), method_type="card", retries_done=0,
                 first_failure_on=None, retry_days=(3, 5), after_final_failure="cancel",
                 current=current, **kw)  # fmt: skip


def test_payment_outcomes_move_the_attempt_from_pending_or_processing():
    assert _judge(ChargeResult("succeeded")).payment_status is P.SUCCEEDED
    assert _judge(ChargeResult("processing"), P.PENDING).payment_status is P.PROCESSING
    assert _judge(ChargeResult("processing"), P.PROCESSING).payment_status is P.PROCESSING
    assert _judge(ChargeResult("failed", None, "lost_card"), P.PROCESSING).payment_status \
        is P.FAILED  # fmt: skip


def test_an_attempt_already_settled_cannot_be_judged_again():
    with pytest.raises(InvalidState, match="cannot go from `succeeded` to `failed`"):
        _judge(ChargeResult("failed", None, "lost_card"), P.SUCCEEDED)


@pytest.mark.parametrize("current, result, still_failing, expected", [
    (S.UNPAID, "succeeded", False, S.ACTIVE),
    (S.UNPAID, "succeeded", True, S.UNPAID),  # another invoice is still being retried
    (S.PAST_DUE, "succeeded", False, S.PAST_DUE),  # only paying the overdue invoice clears it
    (S.ACTIVE, "succeeded", False, S.ACTIVE),
    (S.ACTIVE, "soft", False, S.UNPAID),
    (S.PAST_DUE, "soft", False, S.UNPAID),
    (S.UNPAID, "hard", False, S.CANCELED),  # the final failure, settings say cancel
    (S.PAUSED, "hard", False, S.PAUSED),  # not live: a failure leaves it
    (S.CANCELED, "succeeded", False, S.CANCELED),
    (S.EXPIRED, "soft", False, S.EXPIRED),
])  # fmt: skip
def test_a_payment_outcome_moves_a_live_subscription(current, result, still_failing, expected):
    charge = {"succeeded": ChargeResult("succeeded"),
              "soft": ChargeResult("failed", None, "card_declined", retryable=True),
              "hard": ChargeResult("failed", None, "lost_card")}[result]  # fmt: skip
    outcome = _judge(charge)
    assert subscription_after(current, outcome, still_failing=still_failing) is expected


@pytest.mark.parametrize("status, paid, expected", [
    ("open", Decimal("25.00"), INV.PAID),
    ("open", Decimal("30.00"), INV.PAID),
    ("open", Decimal("10.00"), INV.OPEN),  # a part payment leaves it open
])  # fmt: skip
def test_a_payment_received_pays_an_open_invoice_when_covered(status, paid, expected):
    assert payment_received("INV-00001", status, Decimal("25.00"), paid) is expected


@pytest.mark.parametrize("status", ["paid", "void", "uncollectible", "draft"])
def test_an_invoice_that_takes_no_payment_refuses_one(status):
    with pytest.raises(InvalidState, match=f"^invoice INV-00001 is {status}$"):
        payment_received("INV-00001", status, Decimal("25.00"), Decimal("25.00"))


@pytest.mark.parametrize("status", [S.ACTIVE, S.PAST_DUE, S.UNPAID])
def test_a_cancel_at_period_end_sets_the_end_date_and_happens_then(status):
    sub = _sub(status, next_index=1, reminder_days=14)
    scheduled = cancel(sub, date(2027, 1, 5), at_period_end=True)
    asked = scheduled.subscription
    assert (asked.status, asked.cancel_on, asked.end_date) == (status, date(2027, 2, 1),
                                                               date(2027, 2, 1))  # fmt: skip
    assert [(e.type, dict(e.payload)) for e in scheduled.events] == [
        ("subscription.cancel_scheduled", {"cancel_on": "2027-02-01"})]  # fmt: skip
    # no reminder for the payment that will not happen: the next step is the end itself
    assert asked.reminder_on is None and asked.next_event_on == date(2027, 2, 1)
    ended = step(asked)
    assert ended.subscription.status is S.CANCELED and ended.periods == ()


def test_a_fixed_term_ending_before_a_cancel_at_period_end_keeps_its_own_end():
    sub = _sub(S.ACTIVE, next_index=1, payments=1)
    assert sub.end_date == date(2027, 2, 1) and sub.next_payment_date is None
