"""Automatic tax by the buyer's location (F10): the configured tax provider's rates on the
run, quote and checkout paths, asked once per invoice and once per place and category."""

import sys
from datetime import date
from decimal import Decimal
from typing import ClassVar

import pytest

from abonnement.app import App
from abonnement.engine.catalog import TaxRate
from abonnement.engine.money import Money, Percent
from abonnement.engine.pricing import LineInput
from abonnement.engine.taxes import AutomaticTax, Location, TaxLine, buyer_location
from abonnement.operations import billing, purchases, queries
from abonnement.plugins import hookimpl
from abonnement.plugins.interfaces import TaxProvider
from abonnement.plugins.manager import Plugins, build_plugin_manager
from tests.acceptance.scenario import Scenario
from tests.acceptance.test_collection_scenarios import BOB_SAVED, SAMPLER
from tests.plugins.test_plugins import install_fake_distribution

ACME_TAX = """
from decimal import Decimal

from abonnement.engine.money import Percent
from abonnement.plugins import hookimpl
from abonnement.plugins.interfaces import TaxProvider, TaxRate

CALLS = []


class AcmeTax(TaxProvider):
    name = "acme-tax"

    def rates(self, *, location, lines):
        CALLS.append((location, [line.sku for line in lines]))
        if location.country == "XX":
            raise RuntimeError("service down")
        own = self.settings.plugin_settings["taxes.acme-tax"]  # its own settings block
        rate = Percent(Decimal(own["state_rate"].rstrip("%")))
        state = TaxRate("ny-state", "New York State", "NY State tax", rate)
        return [[state] if location.region == "NY" else [] for line in lines]


@hookimpl
def abonnement_register_tax_providers(register):
    register(AcmeTax)


@hookimpl
def abonnement_settings_schemas():
    return {"taxes.acme-tax": {"type": "object", "additionalProperties": False,
                               "properties": {"state_rate": {"type": "string"}}}}
"""
ACME_SETTINGS = "  taxes:\n    provider: acme-tax\n    acme-tax: {state_rate: 7.25%}\n"

ANALYTICS = "  analytics:\n"
TABLE = """\
  taxes:
    provider: table
    table:
      - {country: CA, name: GST, rate: 5%}
      - {country: CA, region: QC, name: QST, label: TVQ, rate: 9.975%}
      - {country: US, region: NY, category: hardware, name: NY, label: Sales tax, rate: 8.875%}
"""
CLAIRE = """\
contacts:
  - id: claire
    name: Claire Roy
    email: claire@example.ca
    address: {line1: 1 rue Principale, city: Montréal, region: QC, postal_code: H2X 1Y4, country: CA}
    payment_methods:
      - {id: claire-visa, type: card, token: tok_visa}
"""


@pytest.fixture
def acme_tax(tmp_path, monkeypatch):
    site = tmp_path / "site"
    install_fake_distribution(site, "acme-tax", ACME_TAX, "acme_tax")
    monkeypatch.syspath_prepend(str(site))
    yield
    sys.modules.pop("acme_tax", None)


def _table_scenario(tmp_path, db_url, provider: str = "table", **kw) -> Scenario:
    taxes = TABLE.replace("provider: table", f"provider: {provider}")
    s = Scenario(tmp_path, db_url, replace={ANALYTICS: taxes + ANALYTICS}, **kw)
    (s.config / "claire.yaml").write_text(CLAIRE)
    return s


def test_a_third_party_providers_rate_is_on_the_invoices_of_a_run(tmp_path, db_url, acme_tax):
    s = Scenario(tmp_path, db_url, subscriptions=BOB_SAVED,
                 replace={ANALYTICS: ACME_SETTINGS + ANALYTICS})  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    run = s.cli("run", "--until", "2027-02-01")
    assert (run["invoice_count"], run["totals"]) == (3, {"USD": "80.43"})
    invoice = s.cli("invoices", "show", "INV-00001")
    (line,) = invoice["lines"]
    # 25.00 × 7.25% = 1.8125 → 1.81, half-up like a rule tax
    assert line["taxes"] == [
        {"rule": "acme-tax:ny-state", "label": "NY State tax", "rate": "7.25%", "amount": "1.81"}
    ]
    assert (invoice["tax_total"], invoice["total"], invoice["status"]) == ("1.81", "26.81",
                                                                            "paid")  # fmt: skip
    import acme_tax

    # three invoices of one buyer and one category: asked once in the run
    assert acme_tax.CALLS == [(Location("US", "NY", "10001"), ["COFFEE-1KG"])]


def test_the_invoice_document_prints_the_providers_label(tmp_path, acme_tax):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", subscriptions=BOB_SAVED,
                 replace={ANALYTICS: ACME_SETTINGS + ANALYTICS})  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")
    html = queries.render_invoice(App(s.config, s.db_url).context, "INV-00001").decode()
    assert "NY State tax" in html and "acme-tax" not in html


def test_the_table_provider_on_a_quote(tmp_path, db_url):
    s = _table_scenario(tmp_path, db_url)
    quote = s.cli("quote", "--contact", "claire", "--item", "coffee-1kg", "--item", "grinder",
                  "--as-of", "2026-12-01")  # fmt: skip
    # coffee 25.00: GST 1.25, QST 2.49375 → 2.49; grinder 89.00: GST 4.45, QST 8.87775 → 8.88
    assert quote["due_now"] == {"subtotal": "114.00", "discount_total": "0.00",
                                "fee_total": "0.00", "tax_total": "17.07", "total": "131.07"}  # fmt: skip
    assert quote["future_payments"] == [{"frequency": "monthly", "amount": "28.74", "count": None}]
    # in New York only hardware is taxed
    bob = s.cli("quote", "--contact", "bob", "--item", "coffee-1kg", "--item", "grinder",
                "--as-of", "2026-12-01")  # fmt: skip
    assert (bob["due_now"]["tax_total"], bob["due_now"]["total"]) == ("7.90", "121.90")


def test_the_table_provider_on_a_checkout(tmp_path, db_url):
    s = _table_scenario(tmp_path, db_url)
    (s.config / "links.yaml").write_text("payment_links:\n" + SAMPLER)
    bought = s.cli("checkout", "sampler", "--contact", "claire", "--card", "tok_visa",
                   "--as-of", "2026-12-01")  # fmt: skip
    assert (bought["total"], bought["payment"]) == ("63.82", "succeeded")
    invoice = s.cli("invoices", "show", bought["invoice"])
    taxes = {line["sku"]: line["taxes"] for line in invoice["lines"]}
    assert taxes["COFFEE-250G"] == [
        {"rule": "table:GST", "label": "GST", "rate": "5%", "amount": "0.63"},  # 0.625 → 0.63
        {
            "rule": "table:QST",
            "label": "TVQ",
            "rate": "9.975%",
            "amount": "1.25",
        },  # 1.246875 → 1.25
    ]
    assert invoice["tax_total"] == "8.32"
    assert [amount for _, amount, _ in s.charges()] == ["63.82"]  # what the card was charged


def test_the_table_provider_on_a_billing_run(tmp_path, db_url):
    s = _table_scenario(tmp_path, db_url, subscriptions="""\
  - id: claire-coffee
    contact: claire
    start: 2026-12-01
    items: [{product: coffee-1kg, quantity: 1, unit_discount: 10%}]
    collection: {mode: automatic, method: saved, payment_method: claire-visa}
""")  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2027-01-01")
    # on the discounted 22.50: GST 1.125 → 1.13, QST 2.244375 → 2.24
    assert [(i["issue_date"], i["total"]) for i in s.invoices("claire-coffee")] == [
        ("2026-12-01", "25.87"), ("2027-01-01", "25.87"),
    ]  # fmt: skip
    (line,) = s.cli("invoices", "show", "INV-00001")["lines"]
    assert [(t["rule"], t["amount"]) for t in line["taxes"]] == [("table:GST", "1.13"),
                                                                 ("table:QST", "2.24")]  # fmt: skip


class _Counting(TaxProvider):
    name = "counting"
    calls: ClassVar[list] = []

    def rates(self, *, location, lines):
        _Counting.calls.append((location.country, [line.category for line in lines]))
        ten = TaxRate("t", "Ten", "Ten", Percent(Decimal(10)))
        return [[ten] for _ in lines]


class _CountingPlugin:
    @staticmethod
    @hookimpl
    def abonnement_register_tax_providers(register):
        register(_Counting)


def test_one_call_per_invoice_and_none_for_a_place_and_category_already_asked(tmp_path):
    s = _table_scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", subscriptions="""\
  - id: bob-mix
    contact: bob
    start: 2026-12-01
    items:
      - {product: coffee-1kg, quantity: 1}
      - {name: Mug club, unit_price: "10.00 USD", frequency: monthly, category: merch}
      - {name: Gift wrap, unit_price: "2.00 USD", frequency: monthly, taxable: false}
    collection: {mode: automatic, method: saved, payment_method: bob-visa}
  - id: bob-small
    contact: bob
    start: 2026-12-02
    items: [{product: coffee-250g, quantity: 1}]
    collection: {mode: automatic, method: saved, payment_method: bob-visa}
  - id: claire-coffee
    contact: claire
    start: 2026-12-03
    items: [{product: coffee-1kg, quantity: 1}]
    collection: {mode: automatic, method: saved, payment_method: claire-visa}
""", provider="counting")  # fmt: skip
    pm = build_plugin_manager()
    pm.register(_CountingPlugin, name="counting-plugin")
    app = App(s.config, s.db_url, _plugins=Plugins.load(pm))
    _Counting.calls = []
    summary = billing.run(app.context, date(2027, 1, 3), apply_on=date(2026, 12, 1)).summary
    assert summary.invoice_count == 6
    # bob-mix's first invoice: one call with both taxable lines (not the gift wrap); bob-small
    # and every later invoice of bob: nothing new to ask; claire: a new place
    assert _Counting.calls == [("US", [None, "merch"]), ("CA", [None])]
    first = app.storage.invoice("INV-00001")
    assert [a.rule for a in first.adjustments] == ["counting:t", "counting:t"]
    assert (first.tax_total.format_amount(), first.total.format_amount()) == ("3.50", "40.50")
    _Counting.calls = []
    purchases.quote(app.context, "bob", [("coffee-1kg", 1)], date(2027, 1, 5))
    assert _Counting.calls == [("US", [None])]  # every run, quote or checkout asks afresh


def _lines(*specs: tuple) -> list[LineInput]:
    out = []
    for sku, category, taxable, own in specs:
        amount = Money(Decimal(10), "USD")
        fields = {"sku": sku, "category": category, "taxable": taxable}
        out.append(LineInput(sku, 1, amount, amount, sku=sku, tax_rate=own, fields=fields))
    return out


def test_automatic_tax_asks_per_invoice_only_what_it_does_not_know():
    asked = []
    gst = TaxRate("GST", "GST", "GST", Percent(Decimal(5)))

    def ask(location, lines):
        asked.append((location, lines))
        return [[gst] for _ in lines]

    taxes = AutomaticTax("table", ask)
    own = TaxRate("dk-vat", "Danish VAT", "Moms", Percent(Decimal(25)))
    here = Location("CA", "QC", "H2X 1Y4")
    first = _lines(("A", None, True, None), ("B", "books", True, None), ("C", None, False, None),
                   ("D", None, True, own))  # fmt: skip
    named = TaxRate("table:GST", "GST", "GST", Percent(Decimal(5)))
    assert taxes.line_taxes(here, first) == ((named,), (named,), (), ())
    assert asked == [(here, [TaxLine(None, "A", "A", Money(Decimal(10), "USD")),
                             TaxLine("books", "B", "B", Money(Decimal(10), "USD"))])]  # fmt: skip
    second = _lines(("E", "books", True, None), ("F", "food", True, None))
    assert taxes.line_taxes(here, second) == ((named,), (named,))
    assert [[line.sku for line in lines] for _, lines in asked] == [["A", "B"], ["F"]]
    assert taxes.line_taxes(None, second) is None  # no place to tax: nothing asked
    assert len(asked) == 2


@pytest.mark.parametrize("records, billing_address, expected", [
    ({"customer": {"country": "US", "region": "NY", "postal_code": "10001"}}, None,
     Location("US", "NY", "10001")),
    ({"customer": {"country": "US", "region": "NY"}, "company": {"country": "DK"}},
     "same_as_company", Location("DK")),
    ({"customer": {"country": "US"}}, {"country": "CA", "region": "QC", "postal_code": "H2X"},
     Location("CA", "QC", "H2X")),
    ({"customer": {"country": None}, "company": {"country": "DK", "postal_code": "1165"}}, None,
     Location("DK", None, "1165")),
    ({"customer": {"country": "US", "tax_exempt": True}}, None, None),
    ({"customer": {}}, None, None),
])  # fmt: skip
def test_the_buyers_location_is_the_address_the_invoice_goes_to(records, billing_address,
                                                                 expected):  # fmt: skip
    assert buyer_location(records, billing_address) == expected


def test_a_raising_provider_sets_the_subscription_aside_with_its_name(tmp_path, acme_tax):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", subscriptions=BOB_SAVED,
                 replace={ANALYTICS: ACME_SETTINGS + ANALYTICS,
                          'region: NY, postal_code: "10001", country: US':
                          'region: NY, postal_code: "10001", country: XX'})  # fmt: skip
    s.cli("apply", "--as-of", "2026-12-01")
    from tests.conftest import run

    result = run("--config", str(s.config), "--db", s.db_url, "run", "--until", "2026-12-01")
    assert result.exit_code == 1
    message = ("tax provider `acme-tax` (plugin `acme_tax`) failed for XX/NY/10001: "
               "RuntimeError('service down')")  # fmt: skip
    assert result.stderr == (
        "1 subscription not billed (set aside; the next run tries again):\n"
        f"  bob-coffee: {message}\n"
    )
    assert s.invoices() == []  # the batch was rolled back: nothing half-priced is stored
    history = s.subscription("bob-coffee")["history"]
    assert history[-1] == {"seq": 2, "type": "subscription.billing_failed",
                           "date": "2026-12-01", "error": message}  # fmt: skip


def test_a_provider_answering_out_of_shape_is_named():
    class Short(TaxProvider):
        name = "short"

        def rates(self, *, location, lines):
            return []

    class Plugin:
        @staticmethod
        @hookimpl
        def abonnement_register_tax_providers(register):
            register(Short)

    pm = build_plugin_manager(entry_points=False)
    pm.register(Plugin, name="short-plugin")
    from abonnement.engine.catalog import Settings
    from abonnement.errors import PluginError

    taxes = Plugins.load(pm).automatic_tax(Settings("A", ("USD",), "USD", tax_provider="short"))
    with pytest.raises(PluginError, match=r"^tax provider `short` \(plugin `short-plugin`\) "
                                          r"answered \[\] for 1 line\(s\)"):  # fmt: skip
        taxes.line_taxes(Location("US"), _lines(("A", None, True, None)))


def test_without_a_provider_nothing_is_built():
    from abonnement.engine.catalog import Settings

    plugins = Plugins.load(build_plugin_manager(entry_points=False))
    assert "table" in plugins.tax_providers
    assert plugins.automatic_tax(Settings("A", ("USD",), "USD")) is None


@pytest.mark.parametrize("taxes, expected", [
    ("  taxes: {provider: tabel}\n",
     "abonnement.yaml:39:21: error: no tax provider plugin named `tabel` in settings.taxes."
     "provider; did you mean `table`?"),
    ("  taxes:\n    provider: table\n    table:\n      - {country: CA, name: GST, rate: 5}\n",
     "abonnement.yaml:42:40: error: expected a percentage written as '15%' in "
     "settings.taxes.table[0].rate, got the number 5"),
    ("  taxes:\n    table:\n      - {country: ca, name: GST, rate: 5%}\n",
     "abonnement.yaml:41:19: error: expected an ISO 3166 country code such as DK in "
     "settings.taxes.table[0].country, got 'ca'"),
    ("  taxes:\n    table:\n      - {country: CA, name: GST, rate: 5%}\n"
     "      - {country: CA, name: GST, rate: 6%}\n",
     "abonnement.yaml:42:9: error: a second `GST` rate for the same place and category in "
     "settings.taxes.table[1]; the first is taxes.table[0]"),
    ("  taxes: {provider: table}\n",
     "abonnement.yaml:39:21: error: the `table` tax provider has no rates in "
     "settings.taxes.provider; list them in settings.taxes.table, e.g. {country: DK, name: VAT, "
     "rate: 25%}"),
])  # fmt: skip
def test_bad_tax_settings_are_reported_at_their_line(tmp_path, taxes, expected):
    from tests.conftest import run

    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", replace={ANALYTICS: taxes + ANALYTICS})
    result = run("--config", str(s.config), "validate")
    assert result.exit_code == 1
    (problem,) = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert problem.endswith(expected), problem
