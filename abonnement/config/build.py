"""Schema-valid YAML → the typed ``Catalog``, with the checks a schema cannot express:
references between sections, currencies the settings list, tier order, one frequency per
declared subscription, custom-property values, names of installed plugins."""

from __future__ import annotations

import glob
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from abonnement.config.builder import Builder, Entry
from abonnement.config.schemas import did_you_mean
from abonnement.config.settings import build_settings, declared_property_problem
from abonnement.engine import catalog as c
from abonnement.engine.money import Money, parse_percent
from abonnement.engine.schedule import Frequency
from abonnement.errors import Problem

if TYPE_CHECKING:
    from abonnement.config.loader import PluginNames

__all__ = ["Entry", "build_catalog", "item_frequency"]


def _tiers(b: Builder, entry: Entry, raw: dict, pricing: c.PricingModel) -> tuple[c.Tier, ...]:
    tiers: list[c.Tier] = []
    field = "price" if pricing is c.PricingModel.STAIRSTEP else "unit_price"
    previous = 0
    currency = None
    for i, t in enumerate(raw.get("tiers", ())):
        sub = ("tiers", i)
        if field not in t:
            b.error(entry, sub, f"a {pricing.value} tier needs `{field}`")
            continue
        money = b.money(entry, (*sub, field), t[field])
        up_to = t.get("up_to")
        last = i == len(raw["tiers"]) - 1
        if up_to is None and not last:
            b.error(entry, sub, "only the last tier may leave out `up_to`")
        elif up_to is not None and last:
            b.error(
                entry,
                (*sub, "up_to"),
                "the last tier must not have `up_to`",
                "it holds every quantity above the previous tier",
            )
        elif up_to is not None and up_to <= previous:
            b.error(entry, (*sub, "up_to"), f"tiers must ascend: {up_to} follows {previous}")
        previous = up_to or previous
        if money and currency and money.currency != currency:
            b.error(entry, (*sub, field), f"tier in {money.currency}, earlier tiers in {currency}")
        currency = currency or (money.currency if money else None)
        if money and pricing is c.PricingModel.STAIRSTEP:
            b.charged(entry, (*sub, field), money)  # a stair's price is charged as written
        if money:
            tiers.append(c.Tier(up_to, **{field: money}))
    return tuple(tiers)


def _build_product(b: Builder, entry: Entry) -> c.Product:
    raw = entry.value
    pricing = c.PricingModel(raw.get("pricing", "flat"))
    prices: dict[str, Money] = {}
    has_price = "price" in raw or "prices" in raw
    if "price" in raw and "prices" in raw:
        b.error(entry, ("prices",), "give `price` or `prices`, not both")
    if pricing is c.PricingModel.FLAT:
        if "tiers" in raw:
            b.error(entry, ("tiers",), "`tiers` need pricing volume, graduated or stairstep")
        if not has_price:
            b.error(
                entry,
                (),
                "a flat-priced product needs `price` or `prices`",
                'e.g. price: "25.00 USD"',
            )
    elif "tiers" not in raw:
        b.error(entry, ("pricing",), f"{pricing.value} pricing needs `tiers`")
    elif has_price:
        b.error(
            entry,
            ("price" if "price" in raw else "prices",),
            f"{pricing.value} pricing takes its prices from `tiers`",
        )
    if "price" in raw:
        money = b.money(entry, ("price",), raw["price"])
        b.charged(entry, ("price",), money)
        if money:
            prices[money.currency] = money
    for code, text in raw.get("prices", {}).items():
        money = b.money(entry, ("prices", code), text)
        b.charged(entry, ("prices", code), money)
        if money and money.currency != code:
            b.error(entry, ("prices", code), f"the {code} price is in {money.currency}")
        elif money:
            prices[code] = money
    tiers = _tiers(b, entry, raw, pricing) if pricing is not c.PricingModel.FLAT else ()
    b.ref(entry, ("tax_rate",), "tax_rates", raw.get("tax_rate"))
    return c.Product(
        id=raw["id"],
        name=raw["name"],
        sku=raw.get("sku", raw["id"]),
        prices=c.frozen_map(prices),
        frequency=Frequency.parse(raw["frequency"]) if "frequency" in raw else None,
        pricing=pricing,
        tiers=tiers,
        description=raw.get("description"),
        category=raw.get("category"),
        taxable=raw.get("taxable", True),
        tax_rate=raw.get("tax_rate"),
        tax_behavior=raw.get("tax_behavior", "exclusive"),
        properties=c.frozen_map(raw.get("properties")),
    )


def _build_items(
    b: Builder, entry: Entry, products: Mapping[str, c.Product], currency: str | None
) -> tuple[c.ItemSpec, ...]:
    items = []
    for i, raw in enumerate(entry.value["items"]):
        sub = ("items", i)
        product_id = raw.get("product")
        product = products.get(product_id) if product_id else None
        if product_id and not b.ref(entry, (*sub, "product"), "products", product_id):
            continue
        unit_price = (
            b.money(entry, (*sub, "unit_price"), raw["unit_price"])
            if ("unit_price" in raw)
            else None
        )
        b.charged(entry, (*sub, "unit_price"), unit_price)
        if currency and unit_price and unit_price.currency != currency:
            b.error(
                entry,
                (*sub, "unit_price"),
                f"price in {unit_price.currency}, but the currency here is {currency}",
            )
        if currency and product and not unit_price and currency not in product.currencies:
            have = ", ".join(sorted(product.currencies)) or "none"
            b.error(
                entry,
                (*sub, "product"),
                f"product `{product.id}` has no {currency} price (it has: {have})",
            )
        b.ref(entry, (*sub, "tax_rate"), "tax_rates", raw.get("tax_rate"))
        _line_bounds(b, entry, sub, raw, product, unit_price, currency)
        items.append(
            c.ItemSpec(
                product=product_id,
                name=raw.get("name"),
                sku=raw.get("sku"),
                description=raw.get("description"),
                quantity=raw.get("quantity", 1),
                unit_price=unit_price,
                unit_discount=b.discount(entry, (*sub, "unit_discount"), raw["unit_discount"])
                if "unit_discount" in raw
                else None,
                frequency=Frequency.parse(raw["frequency"]) if "frequency" in raw else None,
                tax_rate=raw.get("tax_rate"),
                taxable=raw.get("taxable"),
                category=raw.get("category"),
                start=b.start(entry, (*sub, "start"), raw["start"]) if "start" in raw else None,
                terms=b.terms(raw["terms"]) if "terms" in raw else None,
            )
        )
    return tuple(items)


def _line_bounds(b: Builder, entry: Entry, sub: tuple, raw: dict, product: c.Product | None,
                 unit_price: Money | None, currency: str | None) -> None:  # fmt: skip
    """Report a line whose amount at its quantity is beyond ``engine.bounds`` (the quantity
    and each price are bounded on their own already)."""
    from abonnement.engine.bounds import amount_problem
    from abonnement.engine.pricing import tiered_amount

    quantity = raw.get("quantity", 1)
    if unit_price is not None:
        amounts = [unit_price * quantity]
    elif product is not None and product.pricing is c.PricingModel.FLAT:
        amounts = [price * quantity for code, price in sorted(product.prices.items())
                   if currency is None or code == currency]  # fmt: skip
    elif product is not None and product.tiers:
        codes = {(t.unit_price or t.price).currency for t in product.tiers}  # type: ignore[union-attr]
        amounts = [tiered_amount(product.pricing, product.tiers, quantity, code)
                   for code in sorted(codes)]  # fmt: skip
    else:
        return
    for amount in amounts:
        each = unit_price if unit_price is not None else f"`{product.id}`"  # type: ignore[union-attr]
        problem = amount_problem(amount, "a line", f"{quantity:,} × {each}")
        if problem:
            where = (*sub, "quantity") if "quantity" in raw else sub
            b.error(entry, where, problem, "see the bounds in docs/concepts.md")
            return


def item_frequency(item: c.ItemSpec, products: Mapping[str, c.Product]) -> Frequency | None:
    if item.frequency is not None:
        return item.frequency
    product = products.get(item.product) if item.product else None
    return product.frequency if product else None


def _currency(b: Builder, entry: Entry) -> str | None:
    currency = entry.value.get("currency")
    if currency is None:
        return b.settings.default_currency if b.settings else None
    if b.currencies and currency not in b.currencies:
        b.error(
            entry,
            ("currency",),
            f"currency {currency} is not listed in settings.currencies",
            did_you_mean(currency, b.currencies),
        )
        return None
    return currency


def _build_subscription(
    b: Builder,
    entry: Entry,
    products: Mapping[str, c.Product],
    contacts: Mapping[str, c.Contact],
    settings: c.Settings | None,
) -> c.DeclaredSubscription:
    raw = entry.value
    currency = _currency(b, entry)
    b.ref(entry, ("contact",), "contacts", raw["contact"])
    b.ref(entry, ("company",), "companies", raw.get("company"))
    b.ref(entry, ("billing_contact",), "contacts", raw.get("billing_contact"))
    for i, deal in enumerate(raw.get("deals", ())):
        b.ref(entry, ("deals", i), "deals", deal)
    contact = contacts.get(raw["contact"])
    company = raw.get("company") or (contact.company if contact else None)
    if raw.get("billing_address") == "same_as_company" and not company:
        b.error(
            entry,
            ("billing_address",),
            "billing address same_as_company needs a company",
            "add `company:` to the subscription or its contact",
        )
    items = _build_items(b, entry, products, currency)
    frequencies = {item_frequency(item, products) for item in items}
    if None in frequencies:
        i = next(i for i, item in enumerate(items) if item_frequency(item, products) is None)
        b.error(
            entry,
            ("items", i),
            "a subscription item must recur",
            "give it a `frequency`, or sell it one-time through a quote or payment link",
        )
    elif len(frequencies) > 1:
        names = ", ".join(sorted(f.name for f in frequencies if f))
        b.error(
            entry,
            ("items",),
            f"items have different frequencies ({names})",
            "a subscription bills one frequency; declare one subscription per frequency",
        )
    payments = raw["terms"].get("payments") if isinstance(raw.get("terms"), dict) else None
    if isinstance(payments, int) and len(frequencies) == 1 and None not in frequencies:
        from abonnement.engine.bounds import payments_problem

        problem = payments_problem(payments, next(iter(frequencies)))
        if problem:
            b.error(entry, ("terms", "payments"), problem, "see the bounds in docs/concepts.md")
    coll = raw.get("collection", {})
    collection = c.Collection(
        mode=coll.get("mode", "manual"),
        method=coll.get("method", "saved"),
        payment_method=coll.get("payment_method"),
        payment_terms=coll.get("payment_terms"),
        accept_online=coll.get("accept_online", True),
        accepted_methods=tuple(coll.get("accepted_methods", ())),
    )
    if collection.mode == "automatic" and collection.method == "saved":
        owners = [contacts.get(raw["contact"]), contacts.get(raw.get("billing_contact") or "")]
        methods = {pm.id: pm for who in owners if who for pm in who.payment_methods}
        if collection.payment_method is None:
            b.error(
                entry,
                ("collection",),
                "automatic collection with a saved method needs `payment_method`",
                "or use method: first_invoice",
            )
        elif collection.payment_method not in methods and contact:
            b.error(
                entry,
                ("collection", "payment_method"),
                f"contact `{contact.id}` has no payment method `{collection.payment_method}`",
                did_you_mean(collection.payment_method, list(methods)),
            )
    props = dict(raw.get("properties", {}))
    for name, value in props.items() if settings else ():
        problem = declared_property_problem(settings, name, value)  # type: ignore[arg-type]
        if problem:
            b.error(entry, ("properties", name), *problem)
    # Only what is written here: the settings' defaults fill in when the subscription is
    # created, and a later apply overrides what the config says, not what a trigger set.
    _relative_starts(b, entry)
    if raw.get("prorate") and settings and not settings.proration:
        b.error(entry, ("prorate",), "proration is off",
                "turn on settings.subscriptions.proration, or remove `prorate`")  # fmt: skip
    if (
        not raw.get("invoice_creation", True)
        and settings
        and not settings.allow_invoice_creation_off
    ):
        b.error(
            entry,
            ("invoice_creation",),
            "invoice creation cannot be turned off",
            "settings.subscriptions.allow_invoice_creation_off is false",
        )
    inv = raw.get("invoice", {})
    b.language(entry, ("invoice", "language"), inv.get("language"))
    b.locale(entry, ("invoice", "locale"), inv.get("locale"))
    address = raw.get("billing_address")
    return c.DeclaredSubscription(
        id=raw["id"],
        contact=raw["contact"],
        currency=currency or "",
        items=items,
        company=company,
        billing_contact=raw.get("billing_contact"),
        billing_address=address if isinstance(address, str) else b.address(address),
        deals=tuple(raw.get("deals", ())),
        start=b.start(entry, ("start",), raw.get("start")),
        terms=b.terms(raw.get("terms")),
        owner=raw.get("owner"),
        invoice_creation=raw.get("invoice_creation", True),
        collection=collection,
        invoice=c.frozen_map({k: tuple(v) if isinstance(v, list) else v for k, v in inv.items()}),
        properties=c.frozen_map(props),
        prorate=raw.get("prorate", False),
    )


def _relative_starts(b: Builder, entry: Entry) -> None:
    """A declared subscription starts on a date: a delay only means something counted from
    a moment of purchase, and the config must mean the same on every day it is applied."""
    hint = ("relative starts are for purchases (payment links, quotes, `subscriptions "
            "create`); write the date, e.g. start: 2026-12-01")  # fmt: skip
    starts = [(("start",), entry.value.get("start"))] + [
        (("items", i, "start"), item.get("start"))
        for i, item in enumerate(entry.value["items"]) if isinstance(item, dict)
    ]  # fmt: skip
    for path, start in starts:
        if isinstance(start, dict):
            (kind, count), *_ = start.items()
            b.error(entry, path, f"a declared subscription starts on a date, not "
                                 f"{{{kind}: {count}}}", hint)  # fmt: skip


def declared_positions(root: Path, entries: list[Entry]) -> dict[str, str]:
    """``FILE:LINE:COLUMN`` of each declared subscription (``FILE`` relative to ``root``),
    for the messages that send a user to the config."""
    out = {}
    names: dict[str, str] = {}  # file → its name relative to root, resolved once per file
    resolved_root = root.resolve()
    for entry in entries:
        ident = entry.value.get("id") if isinstance(entry.value, dict) else None
        if not isinstance(ident, str) or ident in out:
            continue
        mark = entry.doc.mark(entry.path)
        file = entry.doc.file
        name = names.get(file)
        if name is None:
            try:
                name = Path(file).resolve().relative_to(resolved_root).as_posix()
            except ValueError:
                name = file
            names[file] = name
        out[ident] = f"{name}:{mark.line}:{mark.column}"
    return out


def build_catalog(
    root: Path, entries: dict[str, list[Entry]], version: str, plugins: PluginNames
) -> tuple[c.Catalog | None, list[Problem]]:
    """Build the catalog from every section's entries; problems are collected, not raised."""
    b = Builder(root, plugins)
    for section, section_entries in entries.items():
        if section != "settings":
            b.collect_ids(section, section_entries)
    settings = None
    for entry in entries["settings"][:1]:
        if entry.valid:
            settings = b.settings = build_settings(b, entry)

    def valid(section: str) -> list[Entry]:
        known = b.ids.get(section, {})
        return [e for e in entries[section] if e.valid and known.get(e.value["id"]) is e]

    tax_rates = {
        e.value["id"]: c.TaxRate(
            id=e.value["id"],
            name=e.value["name"],
            label=e.value.get("label", e.value["name"]),
            rate=parse_percent(e.value["rate"]),
            active=e.value.get("active", True),
        )
        for e in valid("tax_rates")
    }
    products = {e.value["id"]: _build_product(b, e) for e in valid("products")}
    companies = {
        e.value["id"]: c.Company(
            id=e.value["id"],
            name=e.value["name"],
            address=b.address(e.value.get("address")),
            domain=e.value.get("domain"),
            tax_id=e.value.get("tax_id"),
            properties=c.frozen_map(e.value.get("properties")),
        )
        for e in valid("companies")
    }
    contacts = {}
    method_ids: dict[str, Entry] = {}
    for e in valid("contacts"):
        raw = e.value
        b.ref(e, ("company",), "companies", raw.get("company"))
        b.language(e, ("language",), raw.get("language"))
        b.locale(e, ("locale",), raw.get("locale"))
        methods = []
        for i, pm in enumerate(raw.get("payment_methods", ())):
            if pm["id"] in method_ids:
                b.error(
                    e, ("payment_methods", i, "id"), f"duplicate payment method id `{pm['id']}`"
                )
            method_ids[pm["id"]] = e
            saved_on = (
                b.date(e, ("payment_methods", i, "saved_on"), pm["saved_on"])
                if ("saved_on" in pm)
                else None
            )
            methods.append(c.PaymentMethod(pm["id"], pm["type"], pm["token"], saved_on))
        contacts[raw["id"]] = c.Contact(
            id=raw["id"],
            name=raw["name"],
            email=raw["email"],
            company=raw.get("company"),
            address=b.address(raw.get("address")),
            tax_exempt=raw.get("tax_exempt", False),
            language=raw.get("language"),
            locale=raw.get("locale"),
            payment_methods=tuple(methods),
            properties=c.frozen_map(raw.get("properties")),
        )
    deals = {}
    for e in valid("deals"):
        raw = e.value
        b.ref(e, ("contact",), "contacts", raw.get("contact"))
        b.ref(e, ("company",), "companies", raw.get("company"))
        deals[raw["id"]] = c.Deal(
            id=raw["id"],
            name=raw["name"],
            contact=raw.get("contact"),
            company=raw.get("company"),
            stage=raw.get("stage"),
            items=_build_items(b, e, products, None) if "items" in raw else (),
            properties=c.frozen_map(raw.get("properties")),
        )
    quotes = {}
    for e in valid("quotes"):
        raw = e.value
        b.ref(e, ("contact",), "contacts", raw["contact"])
        b.ref(e, ("deal",), "deals", raw.get("deal"))
        b.ref(e, ("company",), "companies", raw.get("company"))
        quotes[raw["id"]] = c.Quote(
            id=raw["id"],
            contact=raw["contact"],
            items=_build_items(b, e, products, _currency(b, e)),
            deal=raw.get("deal"),
            company=raw.get("company"),
            status=raw.get("status", "draft"),
            currency=raw.get("currency"),
            expires_on=b.date(e, ("expires_on",), raw["expires_on"])
            if "expires_on" in raw
            else None,
        )
    links = {}
    for e in valid("payment_links"):
        raw = e.value
        for i, deal in enumerate(raw.get("deals", ())):
            b.ref(e, ("deals", i), "deals", deal)
        if settings:
            for i, method in enumerate(raw.get("accepted_methods", ())):
                if method not in settings.accepted_methods:
                    b.error(
                        e,
                        ("accepted_methods", i),
                        f"payment type `{method}` is not accepted by the account",
                        "add it to settings.payments.accepted_methods",
                    )
        links[raw["id"]] = c.PaymentLink(
            id=raw["id"],
            name=raw["name"],
            items=_build_items(b, e, products, _currency(b, e)),
            button_text=raw.get("button_text"),
            currency=raw.get("currency"),
            accepted_methods=tuple(raw.get("accepted_methods", ())),
            save_payment_method=raw.get("save_payment_method", True),
            deals=tuple(raw.get("deals", ())),
            collect_billing_address=raw.get("collect_billing_address", False),
            collect_shipping_address=raw.get("collect_shipping_address", False),
        )
    subscriptions = {
        e.value["id"]: _build_subscription(b, e, products, contacts, settings)
        for e in valid("subscriptions")
    }
    rule_files = _rule_files(b, entries["settings"][:1], settings)
    if settings is None:
        return None, b.problems
    catalog = c.Catalog(
        settings=settings,
        version=version,
        tax_rates=c.frozen_map(tax_rates),
        products=c.frozen_map(products),
        companies=c.frozen_map(companies),
        contacts=c.frozen_map(contacts),
        deals=c.frozen_map(deals),
        quotes=c.frozen_map(quotes),
        payment_links=c.frozen_map(links),
        subscriptions=c.frozen_map(subscriptions),
        rule_files=rule_files,
        declared_at=c.frozen_map(declared_positions(root, entries["subscriptions"])),
    )
    return catalog, b.problems


def _rule_files(b: Builder, entries: list[Entry], settings: c.Settings | None) -> tuple[str, ...]:
    if not settings or not entries:
        return ()
    found: list[str] = []
    root = b.root.resolve()
    for i, pattern in enumerate(settings.rules):
        if Path(pattern).is_absolute():  # written on purpose: it may be anywhere
            matches = sorted(p for p in map(Path, glob.glob(pattern)) if p.is_file())
        else:
            try:
                matches = sorted(p for p in b.root.glob(pattern) if p.is_file())
            except ValueError as exc:  # an empty or malformed pattern
                b.error(entries[0], ("rules", i), f"bad rule file pattern `{pattern}`: {exc}")
                continue
            outside = [p for p in matches if not p.resolve().is_relative_to(root)]
            if outside:
                b.error(
                    entries[0],
                    ("rules", i),
                    f"`{pattern}` reaches outside the config directory ({outside[0]})",
                    "relative paths stay inside it; write an absolute path if you mean it",
                )
                continue
        if not matches:
            b.error(
                entries[0],
                ("rules", i),
                f"no rule file matches `{pattern}`",
                f"globs are relative to the config directory {b.root}",
            )
        found.extend(str(p) for p in matches if str(p) not in found)
    return tuple(found)
