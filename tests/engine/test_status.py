"""The status enums and their transition table: every legal move, and a set of illegal ones
with the message that refuses them."""

from itertools import product

import pytest

from abonnement.engine.status import (
    TRANSITIONS,
    DeliveryStatus,
    InvoiceStatus,
    PaymentStatus,
    SubscriptionStatus,
    allows,
    check_transition,
)
from abonnement.errors import InvalidState

S, INV, P, D = SubscriptionStatus, InvoiceStatus, PaymentStatus, DeliveryStatus

LEGAL = [
    (S.SCHEDULED, S.ACTIVE),
    (S.SCHEDULED, S.CANCELED),
    (S.ACTIVE, S.PAST_DUE),
    (S.ACTIVE, S.UNPAID),
    (S.ACTIVE, S.PAUSED),
    (S.ACTIVE, S.CANCELED),
    (S.ACTIVE, S.EXPIRED),
    (S.PAST_DUE, S.ACTIVE),
    (S.PAST_DUE, S.UNPAID),
    (S.PAST_DUE, S.PAUSED),
    (S.PAST_DUE, S.CANCELED),
    (S.PAST_DUE, S.EXPIRED),
    (S.UNPAID, S.ACTIVE),
    (S.UNPAID, S.PAUSED),
    (S.UNPAID, S.CANCELED),
    (S.PAUSED, S.ACTIVE),
    (S.PAUSED, S.CANCELED),
    (INV.DRAFT, INV.OPEN),
    (INV.DRAFT, INV.VOID),
    (INV.OPEN, INV.PAID),
    (INV.OPEN, INV.VOID),
    (INV.OPEN, INV.UNCOLLECTIBLE),
    (INV.UNCOLLECTIBLE, INV.VOID),
    (P.PENDING, P.PROCESSING),
    (P.PENDING, P.SUCCEEDED),
    (P.PENDING, P.FAILED),
    (P.PROCESSING, P.SUCCEEDED),
    (P.PROCESSING, P.FAILED),
    (D.PENDING, D.SENT),
    (D.PENDING, D.FAILED),
    (D.PENDING, D.SKIPPED),
]

ILLEGAL = [
    (
        S.SCHEDULED,
        S.PAUSED,
        "a subscription cannot go from `scheduled` to `paused`; it may become active, canceled",
    ),
    (S.SCHEDULED, S.EXPIRED, "it may become active, canceled"),
    (
        S.CANCELED,
        S.ACTIVE,
        "a subscription cannot go from `canceled` to `active`; `canceled` is final",
    ),
    (S.EXPIRED, S.CANCELED, "`expired` is final"),
    (S.PAUSED, S.PAST_DUE, "it may become active, canceled"),
    (S.UNPAID, S.EXPIRED, "it may become active, canceled, paused"),
    (S.ACTIVE, S.SCHEDULED, "cannot go from `active` to `scheduled`"),
    (S.ACTIVE, S.ACTIVE, "cannot go from `active` to `active`"),
    (INV.PAID, INV.OPEN, "an invoice cannot go from `paid` to `open`; `paid` is final"),
    (INV.VOID, INV.PAID, "`void` is final"),
    (INV.UNCOLLECTIBLE, INV.PAID, "it may become void"),
    (INV.OPEN, INV.DRAFT, "it may become paid, uncollectible, void"),
    (INV.DRAFT, INV.PAID, "it may become open, void"),
    (P.SUCCEEDED, P.FAILED, "a payment cannot go from `succeeded` to `failed`"),
    (P.FAILED, P.SUCCEEDED, "`failed` is final"),
    (P.PROCESSING, P.PENDING, "it may become failed, succeeded"),
    (P.SUCCEEDED, P.REFUNDED, "`succeeded` is final"),
    (P.PENDING, P.REFUNDED, "it may become failed, processing, succeeded"),
    (D.SENT, D.PENDING, "a delivery cannot go from `sent` to `pending`; `sent` is final"),
    (D.FAILED, D.SENT, "`failed` is final"),
    (D.SKIPPED, D.PENDING, "`skipped` is final"),
]


def test_the_table_lists_exactly_the_legal_moves():
    table = {(old, new) for kind in TRANSITIONS.values() for old, news in kind.items()
             for new in news}  # fmt: skip
    assert table == set(LEGAL)
    # every status of every kind has a row, final ones an empty one
    assert {kind: set(rows) for kind, rows in TRANSITIONS.items()} == {
        kind: set(kind) for kind in (S, INV, P, D)
    }


@pytest.mark.parametrize("old, new", LEGAL)
def test_a_legal_move_passes(old, new):
    assert allows(old, new)
    check_transition(old, new)
    check_transition(str(old), new)  # the stored text on one side is enough
    check_transition(old, str(new))


@pytest.mark.parametrize("old, new, message", ILLEGAL)
def test_an_illegal_move_is_refused_with_what_may_follow(old, new, message):
    assert not allows(old, new)
    with pytest.raises(InvalidState) as refused:
        check_transition(old, new)
    assert message in str(refused.value)
    assert refused.value.code == "invalid_state"


@pytest.mark.parametrize("kind", [S, INV, P, D])
def test_every_move_not_in_the_table_is_refused(kind):
    legal = set(LEGAL)
    for old, new in product(kind, kind):
        assert allows(old, new) == ((old, new) in legal), (old, new)


def test_a_status_of_another_kind_or_no_status_at_all_is_refused():
    # "pending" is a payment and a delivery status: the enum member decides which
    assert allows(P.PENDING, "succeeded") and not allows(D.PENDING, "succeeded")
    with pytest.raises(InvalidState, match="`bogus` is not a payment status"):
        check_transition("bogus", P.FAILED)
    with pytest.raises(InvalidState, match="cannot go from `open` to `sent`"):
        check_transition(INV.OPEN, "sent")
    with pytest.raises(TypeError):
        check_transition("open", "paid")  # two texts: which kind is it?


def test_members_are_their_stored_text():
    assert S.PAST_DUE == "past_due" and f"{S.PAST_DUE}" == "past_due" and str(INV.VOID) == "void"
    assert {"status": P.SUCCEEDED} == {"status": "succeeded"}
