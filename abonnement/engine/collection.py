"""Collecting payments: what a processor must do, and what each outcome means (dunning).

Pure rules about money movement. The billing run writes a *pending* attempt row (with its
idempotency key ``instance/invoice/attempt-n``) and commits it before it calls the processor;
a rerun asks the processor about pending attempts by key, so a crash between charging and
committing never charges twice. The database's instance id in the key keeps two databases
(a staging copy, a second account) from ever sending one processor the same key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Protocol

from abonnement.engine.money import Money
from abonnement.engine.status import PaymentStatus, SubscriptionStatus, check_transition
from abonnement.errors import ProcessorTimeout

__all__ = [
    "BANK_DEBITS",
    "NOT_ACCEPTED",
    "Attempt",
    "ChargeResult",
    "Outcome",
    "ProcessorPort",
    "ProcessorTimeout",
    "attempt_key",
    "first_attempt",
    "judge",
    "refused_method",
    "subscription_after",
]

BANK_DEBITS = ("ach", "sepa", "bacs", "pads")
# what a failed charge moves to unpaid (or canceled): a live subscription, not a paused one
_LIVE = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE, SubscriptionStatus.UNPAID)


@dataclass(frozen=True, slots=True)
class ChargeResult:
    """Outcome of one charge: ``succeeded``, ``processing`` (a bank debit on its way) or
    ``failed``; ``retryable`` marks a soft decline; ``settles_on`` when a debit is expected
    to settle (poll then)."""

    status: str  # a PaymentStatus (a processor plugin may give its text)
    reference: str | None = None
    failure_code: str | None = None
    retryable: bool = False
    settles_on: date | None = None


class ProcessorPort(Protocol):
    """What collection needs from a payment processor plugin."""

    def charge(self, *, amount: Money, token: str, idempotency_key: str, on: date) -> ChargeResult:
        """Charge ``amount`` to the saved method ``token``; the same key never charges twice."""

    def lookup(self, *, idempotency_key: str, on: date) -> ChargeResult | None:
        """The outcome of an earlier charge with this key (settled as of ``on``), or None."""


NOT_ACCEPTED = "method_not_accepted"


def refused_method(method_type: str, accepted: Sequence[str]) -> ChargeResult | None:
    """A charge with a method type the account (or the subscription) does not accept is
    not attempted: a hard failure, ``method_not_accepted``, never retried. None when the
    method is accepted."""
    if method_type in accepted:
        return None
    return ChargeResult(PaymentStatus.FAILED, failure_code=NOT_ACCEPTED)


def attempt_key(invoice_number: str, attempt: int, instance: str = "") -> str:
    """The idempotency key of try ``attempt`` at an invoice: ``instance/INV-00001/attempt-1``
    (``instance``: the database's id; without one, the key of attempts stored before 0007)."""
    key = f"{invoice_number}/attempt-{attempt}"
    return f"{instance}/{key}" if instance else key


@dataclass(frozen=True)
class Outcome:
    """What an attempt's result does to its invoice and subscription."""

    payment_status: PaymentStatus  # succeeded | processing | failed
    invoice_paid: bool
    subscription_status: SubscriptionStatus | None  # where it goes, or None to leave it
    next_retry_on: date | None  # the next automatic retry, if any
    check_on: date | None  # when to ask about a processing debit again
    final: bool = False  # the last automatic try failed


def judge(
    result: ChargeResult,
    *,
    on: date,
    method_type: str,
    retries_done: int,
    first_failure_on: date | None,
    retry_days: tuple[int, ...],
    after_final_failure: str,
    automatic: bool = True,
    current: PaymentStatus = PaymentStatus.PENDING,
) -> Outcome:
    """The consequences of ``result`` for an automatic charge on ``on`` (F15, F16).

    Soft card declines are retried ``retry_days`` after the first failure; hard declines and
    bank debits are not retried; after the final failure the subscription stays ``unpaid`` or
    is cancelled, as settings say. ``current`` is the attempt's status now (pending, or
    processing for a bank debit asked about again); the move must be a legal one.
    """
    outcome = _judge(result, on, method_type, retries_done, first_failure_on, retry_days,
                     after_final_failure, automatic)  # fmt: skip
    if outcome.payment_status != current:  # a debit still processing stays as it is
        check_transition(current, outcome.payment_status)
    return outcome


def _judge(result: ChargeResult, on: date, method_type: str, retries_done: int,
           first_failure_on: date | None, retry_days: tuple[int, ...], after_final_failure: str,
           automatic: bool) -> Outcome:  # fmt: skip
    if result.status == PaymentStatus.SUCCEEDED:
        return Outcome(PaymentStatus.SUCCEEDED, True, SubscriptionStatus.ACTIVE, None, None)
    if result.status == PaymentStatus.PROCESSING:
        check = result.settles_on or on + timedelta(days=1)
        return Outcome(PaymentStatus.PROCESSING, False, None, None, check)
    # anything else a processor says is a failure
    if not automatic:
        # a payment made by hand (an invoice paid on its page or by a command): whoever made it
        # sees the decline; the invoice stays open and the subscription as it was (``unpaid``
        # is an automatic charge that failed, F19)
        return Outcome(PaymentStatus.FAILED, False, None, None, None)
    first = first_failure_on or on
    can_retry = automatic and result.retryable and method_type not in BANK_DEBITS
    if can_retry and retries_done < len(retry_days):
        return Outcome(PaymentStatus.FAILED, False, SubscriptionStatus.UNPAID,
                       first + timedelta(days=retry_days[retries_done]), None)  # fmt: skip
    final_status = (SubscriptionStatus.CANCELED if after_final_failure == "cancel"
                    else SubscriptionStatus.UNPAID)  # fmt: skip
    return Outcome(PaymentStatus.FAILED, False, final_status, None, None, final=True)


def subscription_after(
    current: SubscriptionStatus, outcome: Outcome, *, still_failing: bool = False
) -> SubscriptionStatus:
    """A subscription's status once ``outcome`` is recorded. A success makes an ``unpaid``
    one active unless another of its invoices is still failing (``still_failing``); a
    failure makes a live one ``unpaid`` (or ``canceled`` after the final try); otherwise
    (scheduled, paused, canceled, expired) the status stays. A past-due subscription (a
    manual invoice overdue) stays past due when an automatic charge succeeds: only paying
    the overdue invoice clears it."""
    target = outcome.subscription_status
    if target is None or target == current:
        return current
    if target == SubscriptionStatus.ACTIVE:
        if current != SubscriptionStatus.UNPAID or still_failing:
            return current
    elif current not in _LIVE:
        return current
    check_transition(current, target)
    return target


@dataclass(frozen=True)
class Attempt:
    """One try to collect an invoice (or to learn how an earlier try ended)."""

    invoice_number: str
    subscription_id: str | None
    attempt: int
    amount: Money
    token: str
    method_type: str
    on: date
    retry_index: int = 0  # 0: the first automatic try; k: the k-th automatic retry
    first_failure_on: date | None = None
    manual: bool = False
    status: PaymentStatus = PaymentStatus.PENDING  # processing: a bank debit asked about again
    instance: str = ""  # the database's instance id, which a new key starts with
    stored_key: str | None = None  # the key a stored attempt was sent with (kept as it was)

    @property
    def key(self) -> str:
        """The idempotency key sent to the processor (see ``attempt_key``)."""
        return self.stored_key or attempt_key(self.invoice_number, self.attempt, self.instance)


def first_attempt(number: str, sub_id: str, amount: Money, token: str, method_type: str | None,
                  on: date, instance: str = "") -> Attempt:  # fmt: skip
    """The automatic charge of a newly issued invoice (a billing run makes it right away);
    ``instance``: the database's id, for its key."""
    return Attempt(number, sub_id, 1, amount.rounded(), token, method_type or "card", on,
                   instance=instance)  # fmt: skip
