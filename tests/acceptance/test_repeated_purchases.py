"""A purchase is recorded once, whatever it buys: the same payment link bought by the same
contact on the same day, or the same quote or deal converted again, is refused with the
invoice that records it — for one-time items alone as for subscriptions, with a card or
without, through the CLI and through a page's buyer (``purchases.buy``)."""

import json
from datetime import date

import pytest

from tests.acceptance.scenario import Scenario
from tests.acceptance.test_edits import cli_error

ONE_TIME = """\
payment_links:
  - id: grinder-only
    name: A grinder
    accepted_methods: [card]
    items:
      - {product: grinder, quantity: 1}
quotes:
  - id: q-grinder
    contact: bob
    status: published
    items:
      - {product: grinder, quantity: 2}
deals:
  - id: d-grinder
    name: Two grinders
    contact: ane
    items:
      - {product: grinder, quantity: 2}
"""
REPEAT = "already done: invoice INV-00001 records this purchase"


def _invoices(s: Scenario) -> list[tuple[str, str, str]]:
    return [(i["number"], i["total"], i["status"]) for i in s.invoices()]


@pytest.mark.parametrize("card", [["--card", "tok_visa"], []], ids=["card", "no-card"])
def test_a_one_time_link_bought_twice_on_a_day_is_one_purchase(tmp_path, db_url, card):
    s = Scenario(tmp_path, db_url)
    (s.config / "one-time.yaml").write_text(ONE_TIME)
    args = ["checkout", "grinder-only", "--contact", "bob", *card, "--as-of", "2026-12-06"]
    if not card:  # a link takes a card: without one, the checkout is refused outright
        assert "checkout needs --card" in cli_error(s, *args)
        assert _invoices(s) == []
        return
    first = s.cli(*args)
    assert (first["invoice"], first["total"], first["subscriptions"]) == ("INV-00001", "89.00", [])
    error = cli_error(s, *args)
    assert REPEAT in error and "one contact on one day is one purchase" in error
    assert _invoices(s) == [("INV-00001", "89.00", "paid")]
    assert [c[1:3] for c in s.charges()] == [("89.00", "succeeded")]
    later = s.cli(*args[:-1], "2026-12-07")  # another day: another purchase
    assert later["invoice"] == "INV-00002"


@pytest.mark.parametrize("kind,record,total", [("quote", "q-grinder", "178.00"),
                                               ("deal", "d-grinder", "178.00")])  # fmt: skip
@pytest.mark.parametrize("card", [["--card", "tok_visa"], []], ids=["card", "no-card"])
def test_a_one_time_quote_or_deal_converts_once(tmp_path, db_url, kind, record, total, card):
    s = Scenario(tmp_path, db_url)
    (s.config / "one-time.yaml").write_text(ONE_TIME)
    first = s.cli("convert", kind, record, *card, "--as-of", "2026-12-06")
    assert (first["invoice"], first["total"]) == ("INV-00001", total)
    for day in ("2026-12-06", "2026-12-20"):  # never again, whatever the day
        error = cli_error(s, "convert", kind, record, *card, "--as-of", day)
        assert REPEAT in error and "a quote or deal converts once" in error
    status = "paid" if card else "open"
    assert _invoices(s) == [("INV-00001", total, status)]
    assert len(s.charges()) == (1 if card else 0)


def test_a_page_buyer_repeating_a_one_time_purchase_is_refused(tmp_path, db_url):
    from abonnement import open_project
    from abonnement.errors import AlreadyExists
    from abonnement.operations import purchases
    from abonnement.operations.buyers import Buyer

    s = Scenario(tmp_path, db_url)
    (s.config / "one-time.yaml").write_text(ONE_TIME)
    ctx = open_project(s.config, s.db_url)
    buyer = Buyer("Carla Test", "carla@example.com")
    day = date(2026, 12, 6)
    bought = purchases.buy(ctx, "grinder-only", buyer, day, card="tok_visa")
    assert bought["invoice"] == "INV-00001"
    with pytest.raises(AlreadyExists, match=REPEAT):
        purchases.buy(ctx, "grinder-only", buyer, day, card="tok_visa")
    assert json.loads(json.dumps(_invoices(s))) == [["INV-00001", "89.00", "paid"]]
    assert len(s.charges()) == 1
