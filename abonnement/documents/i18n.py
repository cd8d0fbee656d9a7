"""Translations and locale-aware formatting for documents and messages.

Message catalogs ship as ``.po`` files in the package and are compiled in memory on first use
(no build step, so an editable install and a wheel behave alike). Dates, numbers and money are
formatted by babel from CLDR data, except the currency's sign, which is ours (see
``Formatter.money``): CLDR's symbols change between releases (CLDR 47 turned ``25,00 US$``
into ``25,00 USD`` in ``da_DK``), and an invoice must not change with a library upgrade.
"""

from __future__ import annotations

import functools
import gettext
import io
import re
from datetime import date
from decimal import Decimal
from importlib import resources

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import (
    NumberPattern,
    format_decimal,
    format_percent,
    get_territory_currencies,
    parse_pattern,
)
from babel.support import Translations

from abonnement.engine.catalog import Address
from abonnement.engine.money import minor_unit

__all__ = [
    "LANGUAGES",
    "LOCAL_SYMBOLS",
    "Formatter",
    "address_lines",
    "translations",
]

LANGUAGES = ("en", "da", "de", "fr", "es")  # English is the source language: no catalog

# The sign a currency is written with in its own country (the locale's territory): "$" in
# en_US, "kr." in da_DK, "€" in de_DE. Anywhere else — and for a currency not listed — the
# ISO 4217 code is written ("25,00 USD" in da_DK, "EUR 1,234.50" in en_US): unambiguous for
# the customer's bookkeeping (a "$" in Denmark or a "kr" in Germany is not) and fixed by us,
# not by the CLDR release babel ships.
LOCAL_SYMBOLS = {
    "USD": "$", "CAD": "$", "AUD": "$", "NZD": "$", "MXN": "$", "EUR": "€", "GBP": "£",
    "DKK": "kr.", "SEK": "kr", "NOK": "kr", "ISK": "kr", "CHF": "CHF", "JPY": "¥", "CNY": "¥",
    "INR": "₹", "BRL": "R$", "PLN": "zł", "CZK": "Kč", "KRW": "₩",
}  # fmt: skip

# Countries that write the postal code after the city (and region) on the same line; the rest
# of the world we print for writes it first ("1165 København").
_CITY_FIRST = frozenset({"US", "CA", "AU", "GB", "IE", "NZ", "JP", "CN", "IN", "BR", "MX"})


@functools.cache
def translations(language: str) -> gettext.NullTranslations:
    """The message catalog for ``language`` (``da`` or ``da_DK``); English when there is none."""
    base = language.replace("-", "_").split("_")[0]
    po = resources.files("abonnement.documents") / "locale" / base / "LC_MESSAGES" / "abonnement.po"
    if not po.is_file():
        return gettext.NullTranslations()
    with po.open("rb") as source:
        catalog = read_po(source, locale=base)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


class Formatter:
    """Dates, amounts and rates for one locale; an unknown locale falls back to ``en_US``."""

    def __init__(self, locale: str):
        try:
            self.locale = Locale.parse(locale.replace("-", "_"))
        except (UnknownLocaleError, ValueError):
            self.locale = Locale.parse("en_US")

    def money(self, amount: Decimal, currency: str) -> str:
        """``amount`` in the locale's number format and currency pattern, with our sign for
        ``currency`` (``LOCAL_SYMBOLS`` in its own country, else the ISO code): ``25,00 USD``
        and ``25,00 kr.`` in ``da_DK``, ``$25.00`` and ``EUR 1,234.50`` in ``en_US``."""
        pattern = _money_pattern(self.locale.currency_formats["standard"].pattern,
                                 minor_unit(currency))  # fmt: skip
        text = pattern.apply(amount, self.locale, currency=currency, currency_digits=False)
        sign = self._sign(currency)
        text = text.replace(currency, sign, 1)
        if not sign[-1].isalpha() and sign[-1] != ".":
            return text
        # CLDR's currency spacing: a sign ending in a letter stays apart from the digits that
        # follow it ("EUR 1,234.50", not "EUR1,234.50")
        return re.sub(rf"^(\D*?{re.escape(sign)})(?=\d)", "\\1\xa0", text)

    def _sign(self, currency: str) -> str:
        territory = self.locale.territory
        home = territory and currency in get_territory_currencies(territory)
        return LOCAL_SYMBOLS.get(currency, currency) if home else currency

    def date(self, day: date | None) -> str:
        return format_date(day, format="long", locale=self.locale) if day else ""

    def number(self, value: int | Decimal) -> str:
        return format_decimal(value, locale=self.locale)

    def percent(self, rate: Decimal) -> str:
        """``rate`` in percent (``25`` → ``25 %`` in Danish)."""
        return format_percent(rate / 100, locale=self.locale, decimal_quantization=False)

    def country(self, code: str) -> str:
        return self.locale.territories.get(code, code)


def address_lines(address: Address | None, fmt: Formatter) -> list[str]:
    """The lines of a postal address as its country writes them, the country named in the
    document's language."""
    if address is None:
        return []
    lines = [line for line in (address.line1, address.line2) if line]
    region = " ".join(p for p in (address.region, address.postal_code) if p)
    if address.country in _CITY_FIRST:
        place = ", ".join(p for p in (address.city, region) if p)
    else:
        place = " ".join(p for p in (address.postal_code, address.city) if p)
        if address.region:
            place = f"{place}, {address.region}" if place else address.region
    if place:
        lines.append(place)
    lines.append(fmt.country(address.country))
    return lines


@functools.lru_cache(maxsize=64)
def _money_pattern(standard: str, digits: int) -> NumberPattern:
    """The locale's currency pattern with the ISO code (``¤¤``) and ISO 4217's ``digits``
    decimals — CLDR's own digits are a display habit (it shows HUF without decimals) that
    would hide what the invoice counts."""
    pattern = parse_pattern(standard.replace("¤", "¤¤"))
    pattern.frac_prec = (digits, digits)
    return pattern
