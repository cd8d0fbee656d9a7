"""The buyer pages' templates: Jinja2, translated with the documents' message catalogs, in
the buyer's language; money and dates in its locale."""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

import jinja2
from starlette.requests import Request

from abonnement.documents.i18n import LANGUAGES, Formatter, translations

__all__ = ["LOCALES", "environment", "language_of", "render"]

# the locale a page uses for money and dates when the buyer's own is not known
LOCALES = {"en": "en_US", "da": "da_DK", "de": "de_DE", "fr": "fr_FR", "es": "es_ES"}


@functools.cache
def environment(language: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("abonnement.server", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    return env


def language_of(request: Request, *preferred: str | None) -> str:
    """The page's language: ``?lang=``, else the first of ``preferred`` we translate (the
    contact's, the invoice's), else the browser's ``Accept-Language``, else English."""
    asked = request.query_params.get("lang")
    for candidate in (asked, *preferred):
        base = (candidate or "").replace("-", "_").split("_")[0].lower()
        if base in LANGUAGES:
            return base
    ranked = []
    for part in request.headers.get("accept-language", "").split(","):
        tag, _, q = part.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0  # a preference weight, not money
        except ValueError:
            continue
        ranked.append((weight, tag.split("-")[0].lower()))
    for _, base in sorted(ranked, key=lambda r: -r[0]):
        if base in LANGUAGES:
            return base
    return "en"


def render(template: str, language: str, locale: str | None = None, **values: Any) -> str:
    """``template`` rendered in ``language``; ``money(amount, currency)`` (or ``money(Money)``),
    ``day(date)`` and ``lang`` are there for it."""
    from abonnement.engine.money import Money

    fmt = Formatter(locale or LOCALES[language])

    def money(value: Money | Decimal, currency: str | None = None) -> str:
        if isinstance(value, Money):  # a record's amount carries its currency
            return fmt.money(value.amount, value.currency)
        return fmt.money(value, currency or "")

    page = environment(language).get_template(template)
    return page.render(money=money, day=fmt.date, lang=language, **values)
