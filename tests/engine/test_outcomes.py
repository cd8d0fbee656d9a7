"""What a payment or a purchase records (engine/outcomes.py): every subscription status
against every kind of outcome, the invoice's change, dues cleared, payments by hand, and a
purchase's events."""

from datetime import date
from decimal import Decimal

import pytest

from abonnement.engine.collection import Attempt, ChargeResult, Outcome
from abonnement.engine.invoicing import InvoiceDraft
from abonnement.engine.items import Item
from abonnement.engine.money import Money
from abonnement.engine.outcomes import (
    InvoiceChange,
    Standing,
    after_dues,
    after_payment,
    charged_now,
    first_attempts,
    paid_by_hand,
    purchased,
    reads_failing,
    recorded,
)
from abonnement.engine.pricing import LineInput, price_invoice
from abonnement.engine.schedule import Frequency
from abonnement.engine.subscriptions import Subscription
from abonnement.errors import InvalidState

DAY = date(2026, 12, 1)
RETRY_ON = date(2026, 12, 4)
CHECK_ON = date(2026, 12, 5)
USD = "USD"
OUTCOMES = {
    "succeeded": Outcome("succeeded", True, "active", None, None),
    "processing": Outcome("processing", False, None, None, CHECK_ON),
    "retried": Outcome("failed", False, "unpaid", RETRY_ON, None),
    "final_unpaid": Outcome("failed", False, "unpaid", None, None, final=True),
    "final_cancel": Outcome("failed", False, "canceled", None, None, final=True),
}
# status before → status after each outcome (no other invoice of the subscription failing)
STATUS_TABLE = """
scheduled  scheduled  scheduled  scheduled  scheduled  scheduled
active     active     active     unpaid     unpaid     canceled
past_due   past_due   past_due   unpaid     unpaid     canceled
unpaid     active     unpaid     unpaid     unpaid     canceled
paused     paused     paused     paused     paused     paused
canceled   canceled   canceled   canceled   canceled   canceled
expired    expired    expired    expired    expired    expired
"""
# what each outcome says before any status change
SAID = {
    "succeeded": ["payment.succeeded", "invoice.paid"],
    "processing": [],
    "retried": ["payment.failed"],
    "final_unpaid": ["payment.failed"],
    "final_cancel": ["payment.failed"],
}
CASES = [
    (before, kind, after)
    for row in STATUS_TABLE.split("\n")
    if row
    for before, *afters in [row.split()]
    for kind, after in zip(OUTCOMES, afters, strict=True)
]


def _attempt(number="INV-1", *, manual=False, first_failure_on=None):
    return Attempt(number, "s1", 2, Money(Decimal("25.00"), USD), "tok", "card", DAY,
                   first_failure_on=first_failure_on, manual=manual)  # fmt: skip


@pytest.mark.parametrize("before, kind, after", CASES)
def test_every_status_against_every_outcome(before, kind, after):
    standing = Standing("s1", before, 7, None)
    moved, events = after_payment(standing, _attempt(), OUTCOMES[kind], DAY)
    said = {"invoice": "INV-1", "attempt": 2, "method": "card"}
    # a payment event also says what it took and whether that paid the invoice
    took = {**said, "amount": "25.00", "pays_invoice": OUTCOMES[kind].invoice_paid}
    expected = [(name, took if name.startswith("payment.") else said) for name in SAID[kind]]
    if after != before:
        expected.append(("subscription.status_changed",
                         {"previous_status": before, "status": after}))  # fmt: skip
    assert (moved.status, [(e.type, dict(e.payload)) for e in events]) == (after, expected)
    assert [(e.subject_id, e.on, e.seq) for e in events] == [
        ("s1", DAY, 8 + i) for i in range(len(expected))]  # fmt: skip
    assert moved.event_seq == 7 + len(expected)
    assert moved.canceled_on == (DAY if after == "canceled" != before else None)


@pytest.mark.parametrize("failing, after", [
    (frozenset(), "active"),
    (frozenset({"INV-1"}), "active"),  # the invoice paid now was the only one failing
    (frozenset({"INV-0"}), "unpaid"),
    (frozenset({"INV-0", "INV-1"}), "unpaid"),
])  # fmt: skip
def test_a_paid_invoice_makes_an_unpaid_subscription_active_only_if_nothing_else_fails(
    failing, after
):
    moved, _ = after_payment(Standing("s1", "unpaid", 0, None, failing), _attempt(),
                             OUTCOMES["succeeded"], DAY)  # fmt: skip
    assert (moved.status, moved.failing) == (after, failing - {"INV-1"})


@pytest.mark.parametrize("status, reads", [
    ("scheduled", False), ("active", False), ("past_due", False), ("unpaid", True),
    ("paused", False), ("canceled", False), ("expired", False),
])  # fmt: skip
def test_only_an_unpaid_subscription_needs_its_failing_invoices_read(status, reads):
    assert reads_failing(status) is reads


def test_an_automatic_failure_counts_the_invoice_failing_and_a_later_success_in_the_batch_sees_it():
    standing = Standing("s1", "active", 0, None)
    standing, _ = after_payment(standing, _attempt("INV-1"), OUTCOMES["retried"], DAY)
    assert (standing.status, standing.failing) == ("unpaid", frozenset({"INV-1"}))
    standing, _ = after_payment(standing, _attempt("INV-2"), OUTCOMES["succeeded"], DAY)
    assert (standing.status, standing.failing) == ("unpaid", frozenset({"INV-1"}))
    manual, _ = after_payment(Standing("s1", "active", 0, None), _attempt("INV-3", manual=True),
                              OUTCOMES["final_unpaid"], DAY)  # fmt: skip
    assert manual.failing == frozenset()  # a manual try sets no first failure date


@pytest.mark.parametrize("kind, manual, payment, change", [
    ("succeeded", False, "succeeded", InvoiceChange("paid")),
    ("succeeded", True, "succeeded", InvoiceChange("paid")),
    ("processing", False, "processing", InvoiceChange("parked")),
    ("processing", True, "processing", InvoiceChange("parked")),
    ("retried", False, "failed", InvoiceChange("retry", RETRY_ON, date(2026, 11, 28))),
    ("final_unpaid", False, "failed", InvoiceChange("retry", None, date(2026, 11, 28))),
    ("final_cancel", False, "failed", InvoiceChange("retry", None, date(2026, 11, 28))),
    ("final_unpaid", True, "failed", InvoiceChange("kept")),
])  # fmt: skip
def test_what_an_outcome_does_to_its_payment_row_and_invoice(kind, manual, payment, change):
    attempt = _attempt(manual=manual, first_failure_on=date(2026, 11, 28))
    result = ChargeResult(payment, "ch_1", "card_declined" if payment == "failed" else None)
    done = recorded(attempt, result, OUTCOMES[kind], None, DAY)
    assert (done.payment_status, done.failure_code, done.reference, done.check_on,
            done.invoice, done.standing, done.events) == (
        payment, result.failure_code, "ch_1", OUTCOMES[kind].check_on, change, None, ())  # fmt: skip


def test_a_first_failure_starts_counting_on_the_attempt_day():
    done = recorded(_attempt(), ChargeResult("failed", None, "insufficient_funds", True),
                    OUTCOMES["retried"], Standing("s1", "active", 3, None), DAY)  # fmt: skip
    assert done.invoice == InvoiceChange("retry", RETRY_ON, DAY)
    assert [e.type for e in done.events] == ["payment.failed", "subscription.status_changed"]


def test_an_attempt_the_processor_never_saw_is_charged_again_and_says_nothing():
    standing = Standing("s1", "active", 3, None)
    done = recorded(_attempt(), None, None, standing, date(2026, 12, 9))
    assert (done.payment_status, done.failure_code, done.invoice, done.standing, done.events) == (
        "failed", "not_sent", InvoiceChange("unsent", DAY), standing, ())  # fmt: skip


@pytest.mark.parametrize("status, oldest, after", [
    ("past_due", None, "active"),
    ("past_due", date(2026, 12, 1), "active"),  # due today is not overdue
    ("past_due", date(2026, 11, 30), "past_due"),
    ("active", None, "active"),
    ("unpaid", None, "unpaid"),
    ("paused", None, "paused"),
])  # fmt: skip
def test_a_past_due_subscription_is_active_once_nothing_open_is_overdue(status, oldest, after):
    standing, events = after_dues(Standing("s1", status, 4, None), oldest, DAY)
    said = [(e.type, dict(e.payload), e.seq) for e in events]
    changed = [("subscription.status_changed", {"previous_status": status, "status": after}, 5)]
    assert (standing.status, said) == (after, changed if after != status else [])


@pytest.mark.parametrize("paid_so_far, amount, status, outcome", [
    ("0", "25.00", "paid", Outcome("succeeded", True, "active", None, None)),
    ("10.00", "15.00", "paid", Outcome("succeeded", True, "active", None, None)),
    ("0", "30.00", "paid", Outcome("succeeded", True, "active", None, None)),
    ("0", "10.00", "open", Outcome("succeeded", False, None, None, None)),
])  # fmt: skip
def test_a_payment_by_hand_pays_the_invoice_once_it_reaches_the_total(
    paid_so_far, amount, status, outcome
):
    assert paid_by_hand("INV-1", "open", Decimal(paid_so_far), Decimal("25.00"),
                        Decimal(amount)) == (status, outcome)  # fmt: skip


@pytest.mark.parametrize("settled", ["paid", "void", "uncollectible"])
def test_a_settled_invoice_takes_no_payment(settled):
    with pytest.raises(InvalidState, match=f"invoice INV-1 is {settled}"):
        paid_by_hand("INV-1", settled, Decimal(0), Decimal("25.00"), Decimal("25.00"))


MONTHLY = Frequency.parse("monthly")


def _sub(sub_id, status="active", token="tok_visa"):
    item = Item("Coffee", 1, Money(Decimal("25.00"), USD), frequency=MONTHLY)
    return Subscription(sub_id, "bob", USD, MONTHLY, DAY, (item,), status=status,
                        next_index=1 if status == "active" else 0, payment_token=token,
                        payment_type="card")  # fmt: skip


def _draft(sub_id, collect_on):
    money = Money(Decimal("25.00"), USD)
    priced = price_invoice([LineInput("Coffee", 1, money, money)], {}, currency=USD)
    return InvoiceDraft(sub_id, "bob", USD, DAY, DAY, DAY, DAY, priced, collect_on=collect_on)


def test_the_billing_run_charges_at_once_what_is_to_collect_that_day():
    drafts = [_draft("s1", DAY), _draft("s2", None), _draft("s3", date(2026, 12, 2))]
    assert charged_now(drafts, DAY) == [True, False, False]
    assert charged_now(drafts, None) == [False, False, False]
    subs = {s.id: s for s in (_sub("s1"), _sub("s2"), _sub("s3"))}
    (attempt,) = first_attempts(["INV-1", "INV-2", "INV-3"], drafts, [True, False, False], subs,
                                DAY)  # fmt: skip
    assert (attempt.key, attempt.subscription_id, attempt.amount, attempt.token,
            attempt.method_type, attempt.on) == (
        "INV-1/attempt-1", "s1", Money(Decimal("25.00"), USD), "tok_visa", "card", DAY)  # fmt: skip


def _said(purchase):
    return [(e.subject_id, e.seq, e.type, {k: v for k, v in e.payload.items()
             if k not in ("frequency", "amount", "net")}) for e in purchase.events]  # fmt: skip


def test_a_paid_checkout_says_what_a_billing_run_says_of_a_first_charge():
    charge = Attempt("checkout/key", None, 1, Money(Decimal("50.00"), USD), "tok_visa", "card", DAY)
    bought = purchased([_sub("p-1"), _sub("p-2", status="scheduled")], "INV-9", charge,
                       ChargeResult("succeeded", "ch_1"), DAY)  # fmt: skip
    paid = {"invoice": "INV-9", "attempt": 1, "method": "card"}
    took = {**paid, "pays_invoice": True}  # (``_said`` leaves the amounts out)
    assert bought.events[4].payload["amount"] == "50.00"
    assert _said(bought) == [
        ("p-1", 1, "subscription.created", {"invoice": "INV-9"}),
        ("p-1", 2, "subscription.status_changed", {"previous_status": "scheduled",
                                                   "status": "active"}),
        ("p-1", 3, "invoice.created", {"invoice": "INV-9", "period": 0}),
        ("p-2", 1, "subscription.created", {"invoice": "INV-9"}),
        ("p-1", 4, "payment.succeeded", took),
        ("p-1", 5, "invoice.paid", paid),
    ]  # fmt: skip
    assert [(s.id, s.status, s.event_seq) for s in bought.subscriptions] == [
        ("p-1", "active", 5), ("p-2", "scheduled", 1)]  # fmt: skip
    assert (bought.invoice_status, bought.amount_paid, bought.payment_status, bought.check_on,
            bought.owners) == ("paid", Decimal("50.00"), "succeeded", None, ("p-1", "p-2"))  # fmt: skip


def test_a_checkout_by_bank_debit_waits_and_one_on_terms_records_no_payment():
    debit = Attempt("checkout/key", None, 1, Money(Decimal("25.00"), USD), "tok_ach", "ach", DAY)
    waiting = purchased([_sub("p-1")], "INV-9", debit,
                        ChargeResult("processing", "ch_1", settles_on=CHECK_ON), DAY)  # fmt: skip
    assert [e.type for e in waiting.events] == [
        "subscription.created", "subscription.status_changed", "invoice.created"]  # fmt: skip
    assert (waiting.invoice_status, waiting.amount_paid, waiting.payment_status,
            waiting.check_on) == ("open", Decimal(0), "processing", CHECK_ON)  # fmt: skip
    on_terms = purchased([_sub("s-2", status="scheduled"), _sub("s-1")], "INV-9", None, None, DAY)
    assert (on_terms.invoice_status, on_terms.payment_status, on_terms.owners) == (
        "open", None, ("s-1", "s-2"))  # fmt: skip
    assert [e.type for e in on_terms.events if e.subject_id == "s-1"] == [
        "subscription.created", "subscription.status_changed", "invoice.created"]  # fmt: skip


@pytest.mark.parametrize(
    "total, automatic, minimum, expected",
    [
        ("0.00", False, None, "nothing_owed"),
        ("0.00", True, "0.50", "nothing_owed"),
        ("0.004", True, "0.50", "nothing_owed"),  # rounds to nothing
        ("0.30", True, "0.50", "carried"),
        ("0.49", True, "0.50", "carried"),
        ("0.50", True, "0.50", None),
        ("0.30", False, "0.50", None),  # sent with its terms: no processor minimum
        ("-4.17", False, None, "carried"),  # a credit (proration) is never charged
        ("-4.17", True, "0.50", "carried"),
        ("25.00", True, "0.50", None),
    ],
)
def test_how_an_invoice_is_settled_at_issue(total, automatic, minimum, expected):
    from abonnement.engine.outcomes import settlement

    floor = Money(Decimal(minimum), "USD") if minimum else None
    assert settlement(Money(Decimal(total), "USD"), automatic=automatic, minimum=floor) == expected
