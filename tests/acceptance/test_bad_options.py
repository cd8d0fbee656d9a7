"""Money options take positive amounts in the currency's precision; config paths stay inside
the config directory unless written absolute."""

import pytest

from abonnement.engine.money import positive_amount
from abonnement.errors import InvalidInput, PluginError
from abonnement.plugins.notifiers.mailbox import MailboxNotifier
from abonnement.plugins.processors import test as test_processor
from tests.acceptance.scenario import Scenario
from tests.acceptance.test_collection_scenarios import BOB_SAVED, _s7
from tests.acceptance.test_notification_scenarios import MAILBOX
from tests.conftest import run


def _refused(s: Scenario, *args: str) -> str:
    result = run("--config", str(s.config), "--db", s.db_url, *args)
    assert result.exit_code == 1, result.output
    return result.stderr.strip()


NOT_POSITIVE = "is not a positive amount (e.g. 12.50)"


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("-5", f"error: --amount: '-5' {NOT_POSITIVE}"),
        ("0", "error: --amount: the amount must be greater than zero"),
        ("0.00", "error: --amount: the amount must be greater than zero"),
        ("1.005", "error: --amount: 1.005 has more decimals than USD has (2)"),
        ("NaN", f"error: --amount: 'NaN' {NOT_POSITIVE}"),
        ("Infinity", f"error: --amount: 'Infinity' {NOT_POSITIVE}"),
        ("1e3", f"error: --amount: '1e3' {NOT_POSITIVE}"),
        ("5 USD", f"error: --amount: '5 USD' {NOT_POSITIVE}"),
        ("+5", f"error: --amount: '+5' {NOT_POSITIVE}"),
        ("1,50", f"error: --amount: '1,50' {NOT_POSITIVE}"),
        ("", f"error: --amount: '' {NOT_POSITIVE}"),
        (
            "99999999999999999999",
            "error: --amount: 99999999999999999999 is beyond the largest "
            "amount abonnement takes (1,000,000,000,000 USD)",
        ),
        (
            "1000000000000.01",
            "error: --amount: 1000000000000.01 is beyond the largest amount "
            "abonnement takes (1,000,000,000,000 USD)",
        ),
        ("25.01", "error: --amount: at most 25.00 USD is due on invoice INV-00001"),
        # digits of other scripts: Python's int(), Decimal() and \d take them, we do not
        ("\u0665", f"error: --amount: '\u0665' {NOT_POSITIVE}"),  # Arabic-Indic five
        ("\uff15.00", f"error: --amount: '\uff15.00' {NOT_POSITIVE}"),  # fullwidth five
    ],
)
def test_invoices_pay_takes_only_a_positive_amount_in_cents(tmp_path, amount, message):
    s = _s7(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", "tok_insufficient_funds")
    assert _refused(s, "invoices", "pay", "INV-00001", "--amount", amount) == message
    (invoice,) = s.invoices()
    assert (invoice["status"], invoice["amount_paid"]) == ("open", "0.00")


def test_a_valid_partial_payment_is_still_taken(tmp_path, db_url):
    s = _s7(tmp_path, db_url, "tok_insufficient_funds")
    paid = s.cli("invoices", "pay", "INV-00001", "--amount", "10.50", "--as-of", "2026-12-10")
    assert (paid["status"], paid["amount_paid"]) == ("open", "10.50")


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("-1", f"error: --amount: '-1' {NOT_POSITIVE}"),
        ("0.001", "error: --amount: 0.001 has more decimals than USD has (2)"),
        ("NaN", f"error: --amount: 'NaN' {NOT_POSITIVE}"),
        ("26.00", "error: at most 25.00 can be refunded for payment 1"),
    ],
)
def test_payments_refund_takes_only_a_positive_amount_in_cents(tmp_path, amount, message):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", subscriptions=BOB_SAVED)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")
    assert _refused(s, "payments", "refund", "1", "--amount", amount,
                    "--as-of", "2026-12-02") == message  # fmt: skip
    assert [p["status"] for p in s.payments()] == ["succeeded"]


@pytest.mark.parametrize(
    ("price", "message"),
    [
        ("1=-5.00 USD", "error: --price: a unit price is not negative; for a credit, use a discount"),
        ("1=abc", "error: --price: 'abc' is not money; write it as '25.00 USD'"),
        ("1=1.0000001 USD", "error: --price: '1.0000001 USD' has more than 6 decimals"),
        ("1=NaN USD", "error: --price: 'NaN USD' is not money; write it as '25.00 USD'"),
    ],
)  # fmt: skip
def test_subscriptions_edit_price_names_the_option(tmp_path, price, message):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}")
    s.cli("subscriptions", "create", "--id", "bob-1", "--contact", "bob", "--item", "coffee-1kg",
          "--start", "2027-01-01", "--as-of", "2026-12-01")  # fmt: skip
    assert _refused(s, "subscriptions", "edit", "bob-1", "--price", price,
                    "--as-of", "2026-12-01") == message  # fmt: skip


@pytest.mark.parametrize("currency, text, expected", [
    ("USD", "12.50", "12.50"), ("JPY", "1200", "1200"), ("KWD", "1.125", "1.125"),
])  # fmt: skip
def test_positive_amounts_in_the_currency_precision(currency, text, expected):
    assert str(positive_amount(text, currency, "--amount")) == expected


def test_an_amount_finer_than_the_currency_is_refused_for_yen():
    with pytest.raises(InvalidInput, match=r"^--amount: 1200.5 has more decimals than JPY has"):
        positive_amount("1200.5", "JPY", "--amount")


def test_a_rule_glob_that_climbs_out_of_the_config_is_refused(tmp_path):
    s = Scenario(
        tmp_path,
        f"sqlite:///{tmp_path / 'a.db'}",
        rules="segment everything {\n  of subscriptions\n  where true\n}\n",
    )
    (tmp_path / "stolen.rules").write_text(
        "segment stolen {\n  of subscriptions\n  where true\n}\n"
    )
    text = (s.config / "abonnement.yaml").read_text()
    (s.config / "abonnement.yaml").write_text(
        text.replace('rules: ["rules/*.rules"]', 'rules: ["rules/*.rules", "../*.rules"]')
    )
    result = run("--config", str(s.config), "validate")
    assert result.exit_code == 1
    assert (
        f"error: `../*.rules` reaches outside the config directory ({s.config / '..' / 'stolen.rules'})"
        in result.stderr
    )
    assert "write an absolute path if you mean it" in result.stderr


def test_an_absolute_rule_glob_is_taken_as_written(tmp_path):
    s = Scenario(
        tmp_path,
        f"sqlite:///{tmp_path / 'a.db'}",
        rules="segment everything {\n  of subscriptions\n  where true\n}\n",
    )
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "more.rules").write_text("segment everyone {\n  of subscriptions\n  where true\n}\n")
    text = (s.config / "abonnement.yaml").read_text()
    (s.config / "abonnement.yaml").write_text(
        text.replace('rules: ["rules/*.rules"]', f'rules: ["rules/*.rules", "{shared}/*.rules"]')
    )
    result = run("--config", str(s.config), "validate")
    assert result.exit_code == 0, result.stderr
    assert "rules: 2" in result.stdout


def test_a_mailbox_outside_the_config_is_refused_unless_absolute(tmp_path):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}",
                 replace={MAILBOX: "    mailbox: {directory: ../../mail}\n"})  # fmt: skip
    result = run("--config", str(s.config), "validate")
    assert result.exit_code == 1
    assert ("error: the mailbox notifier: `directory: ../../mail` reaches outside the config "
            "directory") in result.stderr  # fmt: skip
    assert MailboxNotifier.problems({"directory": str(tmp_path / "mail")}) == []
    assert MailboxNotifier.problems({"directory": "outbox/../mail"}) == []
    with pytest.raises(PluginError):
        MailboxNotifier({"directory": "../mail"})


def test_a_ledger_that_climbs_out_is_refused(tmp_path):
    with pytest.raises(PluginError, match="climbs out of the directory it is relative to"):
        test_processor.TestProcessor({"ledger": "../ledger.db"})


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--payments", "1099511627776"), 2,
         "Invalid value for '--payments': 1099511627776 is not in the range 1<=x<=1200."),
        (("--payments", "0"), 2, "Invalid value for '--payments': 0 is not in the range 1<=x<=1200."),
        # dates end in 2099, so a start late enough to run out of calendar is a usage error
        (("--payments", "1200", "--start", "9950-01-01"), 2,
         "Invalid value for '--start': 9950-01-01 is outside 1900-01-01 to 2099-12-31"),
    ],
)  # fmt: skip
def test_a_fixed_term_no_calendar_holds_is_refused_with_nothing_written(tmp_path, args, code,
                                                                        message):  # fmt: skip
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", subscriptions=BOB_SAVED)
    result = run("--config", str(s.config), "--db", s.db_url, "subscriptions", "create",
                 "--id", "x1", "--contact", "bob", "--item", "coffee-1kg", "--as-of",
                 "2026-12-01", *args)  # fmt: skip
    assert result.exit_code == code, result.output
    assert message in result.stderr
    listed = run("--config", str(s.config), "--db", s.db_url, "subscriptions", "list", "--json")
    assert (listed.exit_code, listed.stdout.strip()) == (0, "[]")  # nothing half-written


def test_a_quote_over_more_payments_than_a_term_takes_is_a_usage_error(tmp_path):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", subscriptions=BOB_SAVED)
    result = run("--config", str(s.config), "--db", s.db_url, "quote", "--contact", "bob",
                 "--item", "coffee-1kg", "--payments", "99999999999")  # fmt: skip
    assert result.exit_code == 2
    assert "99999999999 is not in the range 1<=x<=1200" in result.stderr


def test_dates_and_payment_terms_on_the_command_line_are_bounded_like_the_config(tmp_path):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}")
    fullwidth = run("--config", str(s.config), "--db", s.db_url, "report", "mrr",
                    "--as-of", "\uff12\uff10\uff12\uff16-12-01")  # fmt: skip
    assert fullwidth.exit_code == 2
    assert "'\uff12\uff10\uff12\uff16-12-01' is not a date in YYYY-MM-DD (ASCII digits)" in (
        fullwidth.stderr)  # fmt: skip
    for terms in ("net_99999999999999999", "net_1000", "net_\u0665"):
        error = _refused(s, "subscriptions", "create", "--id", "xa", "--contact", "bob", "--item",
                         "coffee-1kg", "--payment-terms", terms, "--as-of", "2026-12-01")  # fmt: skip
        assert error == (f"error: bad payment terms `{terms}`; due_on_receipt or net_DAYS "
                         "(up to 999)")  # fmt: skip
    assert s.cli("subscriptions", "list") == []


@pytest.mark.parametrize("sub_id", ["../../x", "a" * 101, "-x", "a b", "\u0665x"])
def test_a_created_subscription_takes_an_id_as_the_config_does(tmp_path, sub_id):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}")
    error = _refused(s, "subscriptions", "create", "--id", sub_id, "--contact", "bob", "--item",
                     "coffee-1kg", "--as-of", "2026-12-01")  # fmt: skip
    assert error == (f"error: {sub_id[:40]!r} is not an id: 1 to 100 letters, digits, '-', '_' "
                     "or '.', starting with a letter or digit")  # fmt: skip
    assert s.cli("subscriptions", "list") == []
