"""Automatic tax by the buyer's location (F10): where the buyer is, and a tax provider's rates
for an invoice's lines, asked once per invoice and remembered for the run.

Pure: the provider arrives as a callable (the application layer builds it from the plugin), so
the engine never knows what answers it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from abonnement.engine.catalog import TaxRate
from abonnement.engine.money import Money

__all__ = ["AskRates", "AutomaticTax", "Location", "TaxLine", "buyer_location"]


@dataclass(frozen=True, slots=True)
class Location:
    """Where a sale is taxed: the buyer's billing address, as far as taxes care."""

    country: str
    region: str | None = None
    postal_code: str | None = None


@dataclass(frozen=True, slots=True)
class TaxLine:
    """What a tax provider is told of one taxable line."""

    category: str | None  # the product's category: its tax category
    description: str
    sku: str | None
    amount: Money  # unit price × quantity, before discounts


# (location, the invoice's taxable lines) → per line, in order, the rates that apply to it
AskRates = Callable[[Location, Sequence[TaxLine]], Sequence[Sequence[TaxRate]]]


def buyer_location(
    records: Mapping[str, Any], billing_address: Mapping[str, Any] | str | None = None
) -> Location | None:
    """Where the buyer of an invoice is taxed, or None when no tax is asked for: a tax-exempt
    customer, or no country anywhere. The subscription's own billing address first (an
    address, or ``same_as_company``), else the customer's address, else the company's — the
    address the invoice is sent to."""
    customer = records.get("customer") or {}
    if customer.get("tax_exempt"):
        return None
    company = records.get("company") or {}
    if isinstance(billing_address, Mapping):
        place: Mapping[str, Any] = billing_address
    elif billing_address == "same_as_company":
        place = company
    else:
        place = customer if customer.get("country") else company
    country = place.get("country")
    if not country:
        return None
    return Location(country, place.get("region"), place.get("postal_code"))


class AutomaticTax:
    """A tax provider's rates over one run (a billing run, a quote, a checkout).

    Rates depend on the location and the line's tax category only, so each pair is asked once
    per run; an invoice whose lines bring pairs not asked yet makes one call with those lines.
    Each rate comes back renamed ``PROVIDER:ID`` so an invoice says which provider made it."""

    def __init__(self, provider: str, ask: AskRates):
        self.provider = provider
        self._ask = ask
        self._known: dict[tuple[Location, str | None], tuple[TaxRate, ...]] = {}

    def line_taxes(
        self, location: Location | None, lines: Sequence[Any]
    ) -> tuple[tuple[TaxRate, ...], ...] | None:
        """For each of ``lines`` (``pricing.LineInput``), the provider's rates that apply to
        it; None when the buyer is not taxed (no location). Lines that are not taxable or that
        name their own tax rate get none."""
        if location is None:
            return None
        wanted = [_taxed(line) for line in lines]
        asked = [
            (line, category)
            for line, category in zip(lines, wanted, strict=True)
            if category is not _UNTAXED and (location, category) not in self._known
        ]
        if asked:  # one call for the invoice, its lines in order
            answers = self._ask(location, [_tax_line(line) for line, _ in asked])
            for (_, category), rates in zip(asked, answers, strict=True):
                key = (location, category)
                if key not in self._known:  # a category's first line speaks for it
                    self._known[key] = tuple(self._named(r) for r in rates if r.active)
        return tuple(
            () if category is _UNTAXED else self._known[(location, category)] for category in wanted
        )

    def _named(self, rate: TaxRate) -> TaxRate:
        return TaxRate(f"{self.provider}:{rate.id}", rate.name, rate.label, rate.rate, rate.active)


_UNTAXED = object()


def _taxed(line: Any) -> Any:
    """The line's tax category, or ``_UNTAXED`` when the provider has nothing to say of it."""
    if not line.fields.get("taxable", True) or line.tax_rate is not None:
        return _UNTAXED
    return line.fields.get("category")


def _tax_line(line: Any) -> TaxLine:
    return TaxLine(line.fields.get("category"), line.description, line.sku, line.amount)
