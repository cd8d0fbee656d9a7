"""The settings section → ``Settings``, and typed custom properties."""

from __future__ import annotations

import base64
import re
import string
import zoneinfo
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from abonnement.config.builder import Builder, Entry
from abonnement.config.schemas import did_you_mean, location
from abonnement.engine import catalog as c
from abonnement.engine.money import Money, MoneyError, parse_percent

__all__ = ["build_settings", "declared_property_problem", "property_value_problem"]


def build_settings(b: Builder, entry: Entry) -> c.Settings | None:
    raw = entry.value
    currencies = tuple(raw["currencies"])
    for i, code in enumerate(currencies):
        try:
            Money.zero(code)
        except MoneyError:
            b.error(entry, ("currencies", i), f"unknown currency `{code}`", "use ISO 4217 codes")
    b.currencies = currencies
    default_currency = raw.get("default_currency", currencies[0])
    if default_currency not in currencies:
        b.error(entry, ("default_currency",), f"{default_currency} is not in settings.currencies")
    timezone = raw.get("timezone", "UTC")
    try:
        # a time zone's name is short; a long one with many `/` sends zoneinfo's lookup of
        # the tzdata package into a RecursionError
        if not isinstance(timezone, str) or len(timezone) > 64:
            raise ValueError(timezone)
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        b.error(entry, ("timezone",), f"unknown time zone `{timezone}`", "e.g. Europe/Copenhagen")
    inv = raw.get("invoices", {})
    number_format = inv.get("number_format", "INV-{seq:05d}")
    # numbers are stored in 50 characters; a format that stops working as the sequence grows
    # (`{seq:c}` past U+10FFFF) is refused now, not at the billion-and-first invoice
    if not _one_field(number_format, "seq", 1, 999_999_999, longest=50):
        b.error(
            entry,
            ("invoices", "number_format"),
            f"bad invoice number format {number_format!r}",
            "use exactly one {seq} field, e.g. INV-{seq:05d}, and at most 50 characters",
        )
    credit_note_format = inv.get("credit_note_format", "CN-{seq:04d}")
    if not _one_field(credit_note_format, "seq", 1):
        b.error(
            entry,
            ("invoices", "credit_note_format"),
            f"bad credit note number format {credit_note_format!r}",
            "use exactly one {seq} field, e.g. CN-{seq:04d}",
        )
    pay_url = inv.get("pay_url")
    if pay_url is not None and not _one_field(pay_url, "number", "INV-1"):
        b.error(
            entry,
            ("invoices", "pay_url"),
            f"bad pay URL {pay_url!r}",
            "use exactly one {number} field, e.g. https://pay.example.com/{number}",
        )
    b.language(entry, ("invoices", "language"), inv.get("language"))
    b.locale(entry, ("invoices", "locale"), inv.get("locale"))
    invoices = c.InvoiceSettings(
        number_format=number_format,
        comments=inv.get("comments"),
        language=inv.get("language", "en"),
        locale=inv.get("locale", "en_US"),
        payment_terms=inv.get("payment_terms", "due_on_receipt"),
        tax_ids=tuple(inv.get("tax_ids", ())),
        pay_url=pay_url,
        credit_note_format=credit_note_format,
    )
    pay = raw.get("payments", {})
    processor = pay.get("processor", "test")
    if b.plugins.processors and processor not in b.plugins.processors:
        names = sorted(b.plugins.processors)
        b.error(
            entry,
            ("payments", "processor"),
            f"no processor plugin named `{processor}`",
            did_you_mean(processor, names) or f"installed: {', '.join(names)}",
        )
    b.processor, b.processor_check = processor, b.plugins.representable.get(processor)
    minimum: dict[str, Money] = {}
    for code, text in pay.get("minimum_charge", {}).items():
        money = b.money(entry, ("payments", "minimum_charge", code), text)
        b.charged(entry, ("payments", "minimum_charge", code), money)
        if money and money.currency != code:
            b.error(
                entry,
                ("payments", "minimum_charge", code),
                f"minimum charge for {code} is in {money.currency}",
            )
        elif money:
            minimum[code] = money
    retries = pay.get("retries", {})
    days = tuple(retries.get("days_after_failure", (1, 3, 5, 7)))
    if list(days) != sorted(set(days)):
        b.error(
            entry,
            ("payments", "retries", "days_after_failure"),
            "retry days must be strictly increasing",
            "e.g. [1, 3, 5, 7]",
        )
    notes = raw.get("notifications", {})
    notifiers = tuple(notes.get("notifiers", ("mailbox",)))
    for i, name in enumerate(notifiers):
        if b.plugins.notifiers and name not in b.plugins.notifiers:
            names = sorted(b.plugins.notifiers)
            b.error(
                entry,
                ("notifications", "notifiers", i),
                f"no notifier plugin named `{name}`",
                did_you_mean(name, names) or f"installed: {', '.join(names)}",
            )
    reminder = notes.get("reminder", {})
    invoice_mail = notes.get("invoice", {})
    invoice_reminder = notes.get("invoice_reminder", {})
    subs = raw.get("subscriptions", {})
    properties = tuple(
        _custom_property(b, entry, i, p) for i, p in enumerate(subs.get("custom_properties", ()))
    )
    analytics = raw.get("analytics", {})
    factor = analytics.get("weekly_mrr_factor", "52/12")
    tax_provider, tax_table = _taxes(b, entry, raw.get("taxes", {}))
    plugin_settings = {
        dotted: raw.get(dotted.split(".")[0], {}).get(dotted.split(".")[1], {})
        for dotted in b.plugins.settings_schemas
    }
    for name in notifiers:
        check = b.plugins.notifier_problems.get(name)
        block = plugin_settings.get(f"notifications.{name}", {})
        for message in check(block) if check else ():
            b.error(entry, ("notifications", name), f"the {name} notifier: {message}")
    hooks = raw.get("webhooks")
    endpoints = tuple(
        c.WebhookEndpoint(e["url"], tuple(e.get("events", ("*",))))
        for e in (hooks or {}).get("endpoints", ())
    )
    # What goes out is signed or not sent, and a deployment that forgot the secret must not
    # start; but the secret is the environment's, not the config's: `validate` (a CI job has
    # no secrets) only notes it, a command that delivers refuses (``signing.require_secret``).
    signed = [("webhooks",)] if hooks else []
    if "webhook" in notifiers:
        signed.append(("notifications", "notifiers", notifiers.index("webhook")))
    signed_at = []
    for sub in signed:
        path = (*entry.path, *sub)
        mark = entry.doc.problem(path, "")
        signed_at.append((mark.file, mark.line, mark.column, location(entry.doc, path)))
    return c.Settings(
        account=raw["account"],
        currencies=currencies,
        default_currency=default_currency,
        timezone=timezone,
        rounding=raw.get("rounding", "half_up"),
        rules=tuple(raw.get("rules", ())),
        invoices=invoices,
        processor=processor,
        accepted_methods=tuple(pay.get("accepted_methods", ("card",))),
        minimum_charge=c.frozen_map(minimum),
        retry_days=days,
        after_final_failure=retries.get("after_final_failure", "keep_unpaid"),
        manual_retry_limit=retries.get("manual_limit", 3),
        update_link_days=pay.get("update_link_days", 14),
        notifiers=notifiers,
        signed_at=tuple(signed_at),
        sender=notes.get("sender"),
        admins=tuple(notes.get("admins", ())),
        teams=c.frozen_map({k: tuple(v) for k, v in notes.get("teams", {}).items()}),
        notify_first_payment=notes.get("first_payment", True),
        notify_payment_succeeded=notes.get("payment_succeeded", True),
        notify_payment_failed=notes.get("payment_failed", True),
        reminder_enabled=reminder.get("enabled", True),
        reminder_days_before=reminder.get("days_before", 14),
        invoice_email=invoice_mail.get("enabled", True),
        invoice_attach_pdf=invoice_mail.get("attach_pdf", False),
        invoice_reminder_enabled=invoice_reminder.get("enabled", True),
        invoice_reminder_days_before=invoice_reminder.get("days_before", 7),
        past_due_notice=notes.get("past_due", {}).get("enabled", True),
        edit_freeze_days=subs.get("edit_freeze_days", 2),
        allow_invoice_creation_off=subs.get("allow_invoice_creation_off", True),
        proration=subs.get("proration", False),
        custom_properties=properties,
        weekly_mrr_factor=Decimal(52) / 12 if factor == "52/12" else Decimal(factor),
        discounts_reduce_mrr=analytics.get("discounts_reduce_mrr", False),
        plugin_settings=c.frozen_map({k: c.frozen_map(v) for k, v in plugin_settings.items()}),
        tax_provider=tax_provider,
        tax_table=tax_table,
        public_url=raw.get("server", {}).get("public_url", c.DEFAULT_PUBLIC_URL),
        account_logo=raw.get("account_logo"),
        webhooks=endpoints,
        webhook_timeout=float((hooks or {}).get("timeout", 5)),
        webhook_retries=int((hooks or {}).get("retries", 2)),
        account_logo_data=_logo(b, entry, raw.get("account_logo")),
        account_address=b.address(raw.get("account_address")),
    )


# what a logo file may be, told by its first bytes (not its name): PNG, JPEG, or SVG text
_LOGO_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".svg": "image/svg+xml"}  # fmt: skip
_LOGO_LIMIT = 1_000_000  # bytes: a logo, not a poster (it is embedded in every document)


def _logo(b: Builder, entry: Entry, value: str | None) -> str | None:
    """``settings.account_logo`` as a ``data:`` URI when it names a file of the config
    directory (None for a URL or nothing); a missing, unreadable, oversized or mislabelled
    file, or one outside the directory, is a problem at the setting."""
    if not value or value.startswith(("https://", "http://")):
        return None
    where = ("account_logo",)
    root = b.root.resolve()
    path = (root / value).resolve()
    kind = _LOGO_TYPES.get(path.suffix.lower())
    if kind is None:
        hint = "name a .png, .jpg, .jpeg or .svg file of the config directory, or an https:// URL"
        b.error(entry, where, f"the logo `{value}` is not a PNG, JPEG or SVG file", hint)
        return None
    if not path.is_relative_to(root):
        b.error(entry, where, f"the logo `{value}` is outside the config directory",
                "keep it in the config directory, with a path relative to it")  # fmt: skip
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        b.error(entry, where, f"cannot read the logo `{value}`: {exc.strerror}",
                "a path relative to the config directory, e.g. assets/logo.png")  # fmt: skip
        return None
    if len(data) > _LOGO_LIMIT:
        b.error(entry, where, f"the logo `{value}` is {len(data)} bytes, more than 1 MB")
        return None
    head = data[:512].lstrip()
    looks = {"image/png": data.startswith(b"\x89PNG\r\n\x1a\n"),
             "image/jpeg": data.startswith(b"\xff\xd8\xff"),
             "image/svg+xml": b"<svg" in data[:4096] and head.startswith(b"<")}[kind]  # fmt: skip
    if not looks:
        shown = {"image/png": "PNG", "image/jpeg": "JPEG", "image/svg+xml": "SVG"}[kind]
        b.error(entry, where, f"the logo `{value}` is not a valid {shown} image")
        return None
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


def _taxes(
    b: Builder, entry: Entry, raw: dict[str, Any]
) -> tuple[str | None, tuple[c.RegionalRate, ...]]:
    """``settings.taxes``: the provider (a registered one) and the `table` provider's rows."""
    provider = raw.get("provider")
    names = sorted(b.plugins.tax_providers)
    if provider is not None and names and provider not in names:
        b.error(
            entry,
            ("taxes", "provider"),
            f"no tax provider plugin named `{provider}`",
            did_you_mean(provider, names) or f"installed: {', '.join(names)}",
        )
    rows: list[c.RegionalRate] = []
    seen: dict[tuple, int] = {}
    for i, row in enumerate(raw.get("table", ())):
        key = (row["country"], row.get("region"), row.get("category"), row["name"])
        if key in seen:
            b.error(
                entry,
                ("taxes", "table", i),
                f"a second `{row['name']}` rate for the same place and category",
                f"the first is taxes.table[{seen[key]}]",
            )
            continue
        seen[key] = i
        rate = c.TaxRate(row["name"], row["name"], row.get("label", row["name"]),
                         parse_percent(row["rate"]))  # fmt: skip
        rows.append(c.RegionalRate(row["country"], row.get("region"), row.get("category"), rate))
    if provider == "table" and not rows:
        b.error(
            entry,
            ("taxes", "provider"),
            "the `table` tax provider has no rates",
            "list them in settings.taxes.table, e.g. {country: DK, name: VAT, rate: 25%}",
        )
    return provider, tuple(rows)


_PROPERTY_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, (int, Decimal)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "date": lambda v: isinstance(v, str) and _is_date(v),
    "enum": lambda v: isinstance(v, str),
}


def _is_date(text: str) -> bool:
    from abonnement.engine.bounds import day_problem

    try:
        day = date.fromisoformat(text)
    except ValueError:
        return False
    return day_problem(day) is None  # rules shift it (`+ 30 days`): keep it in the calendar


def _custom_property(b: Builder, entry: Entry, i: int, raw: dict) -> c.CustomProperty:
    sub = ("subscriptions", "custom_properties", i)
    prop = c.CustomProperty(
        name=raw["name"],
        type=raw["type"],
        values=tuple(raw.get("values", ())),
        default=raw.get("default"),
        user_can_override=raw.get("user_can_override", True),
        label=raw.get("label"),
    )
    if prop.type == "enum" and not prop.values:
        b.error(entry, sub, f"enum property `{prop.name}` needs `values`", "e.g. values: [a, b]")
    elif prop.type != "enum" and prop.values:
        b.error(entry, (*sub, "values"), "`values` only applies to enum properties")
    if prop.default is not None:
        problem = property_value_problem(prop, prop.default)
        if problem:
            b.error(entry, (*sub, "default"), problem[0], problem[1])
    return prop


def property_value_problem(prop: c.CustomProperty, value: Any) -> tuple[str, str | None] | None:
    if not _PROPERTY_TYPES[prop.type](value):
        kind = "date from 1900-01-01 to 2099-12-31" if prop.type == "date" else prop.type
        return f"property `{prop.name}` must be a {kind}, got {value!r}", None
    if prop.type == "enum" and value not in prop.values:
        hint = did_you_mean(value, prop.values) or f"one of: {', '.join(prop.values)}"
        return f"`{value}` is not a value of property `{prop.name}`", hint
    return None


def declared_property_problem(
    settings: c.Settings, name: str, value: Any
) -> tuple[str, str | None] | None:
    """What is wrong with giving a subscription property ``name`` the value ``value`` (an
    undeclared property, a value of the wrong type, overriding a fixed one), or None."""
    by_name = {p.name: p for p in settings.custom_properties}
    prop = by_name.get(name)
    if prop is None:
        return f"unknown custom property `{name}`", (
            did_you_mean(name, list(by_name))
            or "declare it in settings.subscriptions.custom_properties"
        )
    problem = property_value_problem(prop, value)
    if problem:
        return problem
    if not prop.user_can_override and value != prop.default:
        return f"property `{name}` cannot be overridden", f"its value is always {prop.default!r}"
    return None


def _one_field(text: str, name: str, *samples: object, longest: int = 2000) -> bool:
    """Whether ``text`` formats with exactly one ``{name}`` field and nothing else, each of
    ``samples`` into at most ``longest`` characters."""
    try:
        parsed = list(string.Formatter().parse(text))
        fields = [field for _, field, _, _ in parsed if field]
        # a width of 10**9 (or one nested from the value, `{seq:{seq}}`) would build a string
        # of that size when formatted: refuse it before formatting anything
        specs = "".join(spec or "" for _, _, spec, _ in parsed)
        if "{" in specs or any(len(n) > 3 for n in re.findall(r"[0-9]+", specs)):
            return False
        formatted = [text.format(**{name: sample}) for sample in samples]
    except (ValueError, KeyError, IndexError, AttributeError, TypeError, OverflowError):
        return False
    return fields == [name] and all(len(f) <= longest for f in formatted)
