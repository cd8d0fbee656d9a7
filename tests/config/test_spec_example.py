"""The whole YAML example of the spec's config.md loads exactly as written."""

from datetime import date
from decimal import Decimal
from pathlib import Path

from abonnement.config.loader import load_config
from abonnement.engine.catalog import PricingModel, Terms
from abonnement.engine.money import Money, Percent
from abonnement.engine.schedule import Frequency, OnDate
from abonnement.plugins.manager import Plugins

SPEC = Path(__file__).parents[2] / "examples" / "spec"


def test_the_spec_example_loads_with_every_section():
    catalog = load_config(SPEC, Plugins.load().names())
    assert catalog.counts() == {
        "products": 5, "tax_rates": 2, "companies": 1, "contacts": 2, "deals": 1,
        "quotes": 1, "payment_links": 1, "subscriptions": 2,
    }  # fmt: skip
    s = catalog.settings
    assert s.currencies == ("USD", "EUR", "DKK", "JPY")
    assert s.invoices.number_format == "INV-{seq:05d}"
    assert s.invoices.payment_terms == "net_30"
    assert s.minimum_charge["EUR"] == Money(Decimal("1.00"), "EUR")
    assert s.minimum_charge_for("GBP") == Money(Decimal("0.60"), "GBP")
    assert s.retry_days == (1, 3, 5, 7)
    assert s.teams["billing"] == ("billing@example.com", "ops@example.com")
    assert s.reminder_days_before == 14
    assert s.weekly_mrr_factor == Decimal(52) / 12
    assert s.plugin_settings["notifications.mailbox"]["directory"] == "outbox"
    assert s.custom_properties[0].values == ("light", "medium", "dark")
    assert catalog.rule_files == (str(SPEC / "rules" / "pricing.rules"),)


def test_products_are_typed():
    catalog = load_config(SPEC, Plugins.load().names())
    coffee = catalog.products["coffee-250g"]
    assert coffee.prices == {
        "USD": Money(Decimal("12.50"), "USD"),
        "EUR": Money(Decimal("11.50"), "EUR"),
    }
    assert coffee.frequency == Frequency.parse("monthly")
    assert catalog.products["grinder"].frequency is None
    storage = catalog.products["storage"]
    assert storage.pricing is PricingModel.VOLUME
    assert [t.up_to for t in storage.tiers] == [999, 4999, None]
    assert storage.tiers[2].unit_price == Money(Decimal("0.06"), "USD")
    assert catalog.tax_rates["ny-sales"].rate == Percent(Decimal("8.875"))


def test_declared_subscriptions_are_typed():
    catalog = load_config(SPEC, Plugins.load().names())
    sub = catalog.subscriptions["acme-storage"]
    assert sub.start == OnDate(date(2026, 12, 1))
    assert sub.terms == Terms(12)
    assert sub.company == "acme" and sub.billing_address == "same_as_company"
    support = sub.items[1]
    assert support.unit_price == Money(Decimal("99.00"), "USD")
    assert support.unit_discount == Percent(Decimal("10"))
    assert support.tax_rate == "dk-vat"
    assert sub.collection.payment_terms == "net_30"
    assert sub.invoice["locale"] == "da_DK"
    assert sub.properties == {"roast": "dark"}
    coffee = catalog.subscriptions["ane-coffee"]
    assert coffee.terms.auto_renew and coffee.collection.payment_method == "ane-visa"
    # as written: the settings' default (roast: medium) fills in when it is created, so a
    # later apply never overrides what a trigger set with the default
    assert coffee.properties == {}


def test_the_version_changes_with_the_files(tmp_path):
    import shutil

    shutil.copytree(SPEC, tmp_path / "c")
    first = load_config(tmp_path / "c", Plugins.load().names()).version
    assert load_config(tmp_path / "c", Plugins.load().names()).version == first
    path = tmp_path / "c" / "abonnement.yaml"
    path.write_text(path.read_text().replace("Thank you", "Thanks"))
    assert load_config(tmp_path / "c", Plugins.load().names()).version != first
