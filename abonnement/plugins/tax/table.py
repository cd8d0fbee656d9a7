"""The built-in `table` tax provider: rates by country and region from ``settings.taxes.table``.

Registered through ``abonnement_register_tax_providers`` like any third-party provider.
"""

from __future__ import annotations

from collections.abc import Sequence

from abonnement.engine.catalog import RegionalRate, Settings, TaxRate
from abonnement.engine.taxes import Location, TaxLine
from abonnement.plugins import hookimpl
from abonnement.plugins.interfaces import Registry, TaxProvider

__all__ = ["TableTaxProvider"]


class TableTaxProvider(TaxProvider):
    """Every row of the buyer's country applies whose region is unset or the buyer's, and
    whose category is unset or the line's: a country's tax and a region's add up (Canada's
    GST and Quebec's QST)."""

    name = "table"

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self.by_country: dict[str, list[RegionalRate]] = {}
        for row in settings.tax_table:
            self.by_country.setdefault(row.country, []).append(row)

    def rates(self, *, location: Location, lines: Sequence[TaxLine]) -> list[list[TaxRate]]:
        """The table's rates for each line sold to ``location``."""
        here = [
            row
            for row in self.by_country.get(location.country, ())
            if row.region is None or row.region == location.region
        ]
        return [
            [row.rate for row in here if row.category is None or row.category == line.category]
            for line in lines
        ]


@hookimpl
def abonnement_register_tax_providers(register: Registry[type[TaxProvider]]) -> None:
    register(TableTaxProvider)
