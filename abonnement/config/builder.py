"""Building the catalog: an entry as written, and the builder that reports problems at it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from babel import Locale, UnknownLocaleError

from abonnement.config.schemas import did_you_mean, location
from abonnement.config.yamlpos import Document
from abonnement.config.yamlpos import Path as YamlPath
from abonnement.engine import catalog as c
from abonnement.engine.bounds import amount_problem
from abonnement.engine.money import Money, MoneyError, Percent, parse_money, parse_percent
from abonnement.engine.schedule import (
    AtPurchase,
    DelayDays,
    DelayMonths,
    OnDate,
    Start,
)
from abonnement.errors import Problem

if TYPE_CHECKING:
    from abonnement.config.loader import PluginNames

__all__ = ["Builder", "Entry"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One section entry as written: its file, path, raw value, and whether the schema passed."""

    doc: Document
    path: YamlPath
    value: Any
    valid: bool


class Builder:
    def __init__(self, root: Path, plugins: PluginNames):
        self.root = root
        self.plugins = plugins
        self.problems: list[Problem] = []
        self.ids: dict[str, dict[str, Entry]] = {}
        self.currencies: tuple[str, ...] = ()
        self.settings: c.Settings | None = None
        # the configured processor's answer to "can you charge this as written?"
        self.processor: str | None = None
        self.processor_check: Callable[[Money], str | None] | None = None

    # -- reporting ---------------------------------------------------------------------
    def error(self, entry: Entry, sub: tuple, message: str, hint: str | None = None) -> None:
        path = (*entry.path, *sub)
        where = location(entry.doc, path)
        self.problems.append(entry.doc.problem(path, f"{message} {where}", hint))

    def ref(self, entry: Entry, sub: tuple, section: str, ident: str | None) -> bool:
        """Check that ``ident`` names an entry of ``section``; report it at ``sub`` if not."""
        if ident is None:
            return True
        known = self.ids.get(section, {})
        if ident in known:
            return True
        noun = section.rstrip("s").replace("_", " ").replace("companie", "company")
        hint = did_you_mean(ident, list(known)) or (
            f"declare it under `{section}:`" if not known else None
        )
        self.error(entry, sub, f"unknown {noun} `{ident}`", hint)
        return False

    # -- values --------------------------------------------------------------------------
    def money(self, entry: Entry, sub: tuple, text: str) -> Money | None:
        try:
            money = parse_money(text)
        except MoneyError as exc:
            self.error(entry, sub, str(exc))
            return None
        beyond = amount_problem(money)
        if beyond:
            self.error(entry, sub, beyond, "see the bounds in docs/concepts.md")
            return None
        if self.currencies and money.currency not in self.currencies:
            hint = did_you_mean(money.currency, self.currencies) or (
                f"add {money.currency} to settings.currencies"
            )
            self.error(
                entry,
                sub,
                f"currency {money.currency} is not listed in settings.currencies "
                f"({', '.join(self.currencies)})",
                hint,
            )
            return None
        if money.amount < 0:  # as `subscriptions edit --price` refuses it
            self.error(entry, sub, f"a negative amount `{text}`: a price is never below zero",
                       "for a credit, use a discount")  # fmt: skip
        return money

    def discount(self, entry: Entry, sub: tuple, text: str) -> Percent | None:
        """A unit discount: between 0% and 100%, as `subscriptions edit --discount` says."""
        percent = parse_percent(text)
        if not 0 <= percent.value <= 100:
            self.error(entry, sub, f"a discount is between 0% and 100%, not {text}")
            return None
        return percent

    def charged(self, entry: Entry, sub: tuple, money: Money | None) -> None:
        """Report a price the configured processor cannot take. A unit price may have up to
        six decimals (the spec): what is charged is the line, rounded to the currency's minor
        unit, so that is what the processor is asked about (a KWD price whose thousandths
        Stripe cannot take is refused; a 0.0125 USD unit price is not)."""
        if money is None or self.processor_check is None:
            return
        problem = self.processor_check(money.rounded())
        if problem:
            self.error(entry, sub, problem,
                       f"write a price the `{self.processor}` processor can charge")  # fmt: skip

    def date(self, entry: Entry, sub: tuple, text: str) -> date | None:
        from abonnement.engine.bounds import day_problem

        try:
            day = date.fromisoformat(text)
        except ValueError:
            self.error(entry, sub, f"{text!r} is not a calendar date")
            return None
        problem = day_problem(day)
        if problem:
            self.error(entry, sub, problem, "see the bounds in docs/concepts.md")
            return None
        return day

    def start(self, entry: Entry, sub: tuple, raw: Any) -> Start:
        if raw is None:
            return AtPurchase()
        if isinstance(raw, dict):
            if "delay_days" in raw:
                return DelayDays(raw["delay_days"])
            return DelayMonths(raw["delay_months"])
        on = self.date(entry, sub, raw)
        return OnDate(on) if on else AtPurchase()

    @staticmethod
    def terms(raw: Any) -> c.Terms:
        return c.Terms(raw["payments"]) if isinstance(raw, dict) else c.AUTO_RENEW

    @staticmethod
    def address(raw: Any) -> c.Address | None:
        return c.Address(**raw) if isinstance(raw, dict) else None

    def language(self, entry: Entry, sub: tuple, text: str | None) -> None:
        """A language documents and messages are written in: one abonnement translates to."""
        if text is None or text in c.LANGUAGES:
            return
        hint = did_you_mean(text, list(c.LANGUAGES)) or f"supported: {', '.join(c.LANGUAGES)}"
        self.error(entry, sub, f"unsupported language `{text}`", hint)

    def locale(self, entry: Entry, sub: tuple, text: str | None) -> None:
        if text is None:
            return
        try:
            Locale.parse(text)
        except (ValueError, UnknownLocaleError):
            self.error(entry, sub, f"unknown language or locale `{text}`", "e.g. en, da, da_DK")

    # -- ids -----------------------------------------------------------------------------
    def collect_ids(self, section: str, entries: list[Entry]) -> None:
        known: dict[str, Entry] = {}
        for entry in entries:
            ident = entry.value.get("id") if isinstance(entry.value, dict) else None
            if not isinstance(ident, str):
                continue
            if ident in known:
                first = known[ident]
                m = first.doc.mark((*first.path, "id"))
                self.error(
                    entry,
                    ("id",),
                    f"duplicate id `{ident}`",
                    f"first declared at {first.doc.file}:{m.line}:{m.column}",
                )
                continue
            known[ident] = entry
        self.ids[section] = known
