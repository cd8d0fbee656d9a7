"""Listings, CSV and ``show`` output (``cli/tables.py``): aligned tables whatever the id
length, CSV a spreadsheet cannot run, records without Python reprs, ``--csv`` on every
listing."""

import csv
import io
import re
from decimal import Decimal

import click
import pytest

from abonnement.cli import cli
from abonnement.cli.tables import Column, csv_cell, csv_text, fields_text, table_text, text
from tests.acceptance.scenario import Scenario
from tests.conftest import run

COLUMNS = (Column("id"), Column("status"), Column("mrr", number=True), Column("currency"))


def test_a_table_is_as_wide_as_its_widest_cell_with_money_right_aligned():
    rows = [
        {"id": "a", "status": "active", "mrr": "5.00", "currency": "USD"},
        {"id": "a-very-long-subscription-id", "status": "canceled", "mrr": "1234.50",
         "currency": "EUR"},
    ]  # fmt: skip
    assert table_text(COLUMNS, rows) == (
        "ID                           STATUS        MRR  CURRENCY\n"
        "a                            active       5.00  USD\n"
        "a-very-long-subscription-id  canceled  1234.50  EUR"
    )


def test_an_empty_listing_is_its_header_and_wide_characters_count_twice():
    assert table_text(COLUMNS, []) == "ID  STATUS  MRR  CURRENCY"
    rows = [{"id": "東京", "status": "active", "mrr": "1.00", "currency": "JPY"},
            {"id": "tokyo-1", "status": "active", "mrr": "10.00", "currency": "JPY"}]  # fmt: skip
    assert table_text(COLUMNS, rows).splitlines()[1:] == [
        "東京     active   1.00  JPY",
        "tokyo-1  active  10.00  JPY",
    ]


@pytest.mark.parametrize("value, number, expected", [
    ("=HYPERLINK(\"http://evil\",\"x\")", False, "'=HYPERLINK(\"http://evil\",\"x\")"),
    ("-2+3", False, "'-2+3"),
    ("+1", False, "'+1"),
    ("@SUM(A1:A9)", False, "'@SUM(A1:A9)"),
    ("\tcmd", False, "'\tcmd"),
    ("\rcmd", False, "'\rcmd"),
    ("Ane Jensen", False, "Ane Jensen"),
    ("-12.50", True, "-12.50"),  # a real number in a number column stays a number
    (Decimal("-3"), True, "-3"),
    (7, True, "7"),
    ("-2+3", True, "'-2+3"),  # not a number, even in a number column
    ("-12.50", False, "'-12.50"),  # a text column: text
    (None, False, ""),
])  # fmt: skip
def test_a_csv_cell_that_starts_like_a_formula_is_text(value, number, expected):
    assert csv_cell(value, number) == expected


def test_csv_quotes_with_the_csv_module_and_reads_back():
    columns = (Column("name"), Column("amount", number=True))
    rows = [{"name": 'a, "b"\nc', "amount": "-1.00"}, {"name": "=1+1", "amount": None}]
    out = csv_text(columns, rows)
    assert out == 'name,amount\n"a, ""b""\nc",-1.00\n\'=1+1,\n'
    assert list(csv.reader(io.StringIO(out))) == [
        ["name", "amount"],
        ['a, "b"\nc', "-1.00"],
        ["'=1+1", ""],
    ]


def test_fields_and_cells_have_no_python_reprs():
    assert text(Decimal("10.50")) == "10.50"
    assert text(None) == "-"
    assert text({"roast": "dark", "size": 2}) == "roast=dark, size=2"
    assert text({"set": {"owner": "x"}, "ids": ["a", "b"]}) == "set={owner=x}, ids=[a, b]"
    assert text(True) == "yes" and text([]) == "-"
    assert fields_text([("id", "s1"), ("billing contact", None)]) == (
        "id:              s1\nbilling contact: -"
    )


# -- through the command line -------------------------------------------------------------

LISTINGS = {"forecast", "plugins", "report", "segments show"}  # listings not named `list`


def _commands(group: click.Group, prefix: str = ""):
    for name, command in group.commands.items():
        path = f"{prefix} {name}".strip()
        if isinstance(command, click.Group):
            yield from _commands(command, path)
        else:
            yield path, command


def test_every_listing_takes_csv():
    listings = [(path, command) for path, command in _commands(cli)
                if path.endswith(" list") or path in LISTINGS]  # fmt: skip
    assert {"subscriptions list", "invoices list", "payments list"} <= {p for p, _ in listings}
    missing = [path for path, command in listings
               if not any("--csv" in p.opts for p in command.params)]  # fmt: skip
    assert missing == []


EVIL = """\
  - {id: eq, name: '=HYPERLINK("http://evil.example","click")', email: eq@example.com}
  - {id: minus, name: "-2+3", email: minus@example.com}
  - {id: at, name: "@SUM(A1:A9)", email: at@example.com}
"""
EVERYONE = """\
segment everyone {
  of contacts
  where customer.email is set
}
"""
SUBS = """\
  - id: a
    contact: bob
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 1}]
  - id: a-wholesale-customer-with-a-long-subscription-id
    contact: bob
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 12}]
"""


@pytest.fixture
def shop(tmp_path):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", rules=EVERYONE, subscriptions=SUBS,
                 replace={"contacts:\n": "contacts:\n" + EVIL})  # fmt: skip
    s.cli("run", "--as-of", "2026-12-01")
    return s


def _plain(s, *args):
    result = run("--config", str(s.config), "--db", s.db_url, *args)
    assert result.exit_code == 0, result.output + result.stderr
    return result.stdout


def test_subscriptions_list_aligns_long_and_short_ids(shop):
    assert _plain(shop, "subscriptions", "list") == (
        "ID                                                STATUS  CONTACT  FREQUENCY"
        "  NEXT PAYMENT     MRR  CURRENCY\n"
        "a                                                 active  bob      monthly  "
        "  2027-01-01     25.00  USD\n"
        "a-wholesale-customer-with-a-long-subscription-id  active  bob      monthly  "
        "  2027-01-01    300.00  USD\n"
    )
    assert _plain(shop, "subscriptions", "list", "--csv") == (
        "id,status,contact_id,frequency,next_payment_date,mrr,currency\n"
        "a,active,bob,monthly,2027-01-01,25.00,USD\n"
        "a-wholesale-customer-with-a-long-subscription-id,active,bob,monthly,2027-01-01,"
        "300.00,USD\n"
    )


def test_invoices_list_is_a_table_and_csv(shop):
    assert _plain(shop, "invoices", "list") == (
        "NUMBER     ISSUED      DUE         STATUS   TOTAL  AMOUNT DUE  CURRENCY  SUBSCRIPTION\n"
        "INV-00001  2026-12-01  2026-12-31  open     25.00       25.00  USD       a\n"
        "INV-00002  2026-12-01  2026-12-31  open    300.00      300.00  USD       "
        "a-wholesale-customer-with-a-long-subscription-id\n"
    )
    rows = list(csv.DictReader(io.StringIO(_plain(shop, "invoices", "list", "--csv"))))
    assert [(r["number"], r["total"], r["subscription_id"]) for r in rows] == [
        ("INV-00001", "25.00", "a"),
        ("INV-00002", "300.00", "a-wholesale-customer-with-a-long-subscription-id"),
    ]


def test_csv_of_contacts_named_like_formulas_opens_as_text(shop):
    out = _plain(shop, "segments", "show", "everyone", "--as-of", "2026-12-01", "--csv")
    assert list(csv.reader(io.StringIO(out))) == [
        ["id", "name", "email", "company"],
        ["eq", '\'=HYPERLINK("http://evil.example","click")', "eq@example.com", ""],
        ["minus", "'-2+3", "minus@example.com", ""],
        ["at", "'@SUM(A1:A9)", "at@example.com", ""],
        ["ane", "Ane Jensen", "ane@example.dk", "acme"],
        ["bob", "Bob Smith", "bob@example.com", ""],
    ]
    table = _plain(shop, "segments", "show", "everyone", "--as-of", "2026-12-01")
    assert table.splitlines()[:4] == [
        "everyone (contacts, 2026-12-01): 5",
        "ID     NAME                                       EMAIL              COMPANY",
        'eq     =HYPERLINK("http://evil.example","click")  eq@example.com     -',
        "minus  -2+3                                       minus@example.com  -",
    ]


_REPR = re.compile(r"Decimal\(|\{'|'\}|\bNone\b|\[\]|\{\}|Money\(|datetime\.")


def test_show_commands_print_labelled_fields_and_tables_without_reprs(shop):
    shown = _plain(shop, "subscriptions", "show", "a")
    assert not _REPR.search(shown), shown
    lines = shown.splitlines()
    assert lines[:4] == ["subscription:    a", "status:          active", "contact:         bob",
                         "company:         -"]  # fmt: skip
    assert "payment method:  manual (net 30)" in lines  # the account's default terms
    assert "mrr:             25.00 USD" in lines
    assert lines[lines.index("items:") + 1 : lines.index("items:") + 3] == [
        "LINE  SKU         NAME                                   QUANTITY  UNIT PRICE  DISCOUNT",
        "   1  COFFEE-1KG  Just one more cup - 1 KG Subscription         1       25.00         -",
    ]
    invoice = _plain(shop, "invoices", "show", "INV-00001", "--explain")
    assert not _REPR.search(invoice), invoice
    lines = invoice.splitlines()
    assert lines[:3] == ["invoice:      INV-00001", "status:       open", "subscription: a"]
    assert lines[lines.index("lines:") + 1 :][:2] == [
        "LINE  DESCRIPTION                            QUANTITY  UNIT PRICE  AMOUNT",
        "   1  Just one more cup - 1 KG Subscription         1       25.00   25.00",
    ]
    assert lines[-3:] == ["total       25.00", "paid         0.00", "amount due  25.00"]


def test_the_payment_method_is_named_never_its_token(tmp_path):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", subscriptions="""\
  - id: card
    contact: bob
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 1}]
    collection: {mode: automatic, method: saved, payment_method: bob-visa}
  - id: net30
    contact: bob
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 1}]
    collection: {mode: manual, payment_terms: net_30}
  - id: unpaid
    contact: bob
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 1}]
    collection: {mode: automatic, method: first_invoice}
""")  # fmt: skip
    s.cli("apply", "--as-of", "2026-11-01")
    method = {sub: [line for line in _plain(s, "subscriptions", "show", sub).splitlines()
                    if line.startswith("payment method:")] for sub in ("card", "net30", "unpaid")}  # fmt: skip
    assert method == {"card": ["payment method:  card bob-visa"],
                      "net30": ["payment method:  manual (net 30)"],
                      "unpaid": ["payment method:  none"]}  # fmt: skip
    assert s.subscription("card")["payment_method"] == {"id": "bob-visa", "type": "card"}
    assert "tok_visa" not in _plain(s, "subscriptions", "show", "card")
