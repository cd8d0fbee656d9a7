"""The composition root: plugins + config + storage → the operations commands call.

Used alike by the CLI, the tests and Python callers; nothing here is global. Heavy modules
(schemas, parsers, SQLAlchemy) load on first use so `abonnement --help` starts at once. This
is the only place that reads the wall clock (``today``), in the account's time zone; every
operation takes its date as an argument.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from abonnement.errors import AbonnementError

if TYPE_CHECKING:
    from abonnement.config.loader import Config
    from abonnement.engine.billing_run import RunSummary
    from abonnement.engine.catalog import Catalog
    from abonnement.engine.purchase import Summary
    from abonnement.plugins.manager import Plugins
    from abonnement.rules.ruleset import RuleSet

__all__ = ["DEFAULT_DATABASE_URL", "App"]

DEFAULT_DATABASE_URL = "sqlite:///abonnement.db"


@dataclass
class App:
    """One config directory and one database, with the plugins loaded once."""

    config_dir: Path
    database_url: str = DEFAULT_DATABASE_URL
    _plugins: Plugins | None = field(default=None, repr=False)

    @cached_property
    def plugins(self) -> Plugins:
        from abonnement.plugins.manager import Plugins

        return self._plugins or Plugins.load()

    @cached_property
    def config(self) -> Config:
        """The validated config and its rules; raises ``ConfigError`` with every problem."""
        from abonnement.config.loader import load

        return load(self.config_dir, self.plugins.names())

    @property
    def catalog(self) -> Catalog:
        return self.config.catalog

    @property
    def rules(self) -> RuleSet:
        return self.config.rules

    @cached_property
    def storage(self) -> Any:
        return self.plugins.open_storage(self.database_url)

    @cached_property
    def processor(self) -> Any:
        """The configured payment processor plugin, with its own settings block."""
        settings = self.catalog.settings
        cls = self.plugins.processors[settings.processor]
        return cls(dict(settings.plugin_settings.get(f"payments.{settings.processor}", {})))

    def today(self) -> date:
        """Today in the account's time zone (UTC before the config is read)."""
        return datetime.now(ZoneInfo(self.catalog.settings.timezone)).date()

    # -- operations ---------------------------------------------------------------------------
    def apply(self, as_of: date) -> dict[str, list[str]]:
        """Create or update the declared subscriptions (by id); running it twice changes nothing."""
        from abonnement.engine.events import Event
        from abonnement.engine.purchase import from_declared

        catalog = self.catalog
        wanted = [from_declared(d, catalog, as_of) for d in catalog.subscriptions.values()]
        store = self.storage
        existing = {s.id: s for s in store.subscriptions()} if wanted else {}
        created = [replace(s, event_seq=1) for s in wanted if s.id not in existing]
        changed = []
        for sub in wanted:
            old = existing.get(sub.id)
            if old is not None and _definition(old) != _definition(sub):
                # the definition changes from the next cycle; billing state stays as it is
                changed.append(replace(
                    old, items=sub.items, properties=sub.properties, owner=sub.owner,
                    payment_method_id=sub.payment_method_id, event_seq=old.event_seq + 1,
                ))  # fmt: skip
        store.insert_subscriptions(
            created, "declared",
            [Event("subscription.created", s.id, as_of, {}, seq=1) for s in created],
        )  # fmt: skip
        store.replace_items(
            changed, [Event("subscription.changed", s.id, as_of, {}, seq=s.event_seq)
                      for s in changed],
        )  # fmt: skip
        changed_ids = {s.id for s in changed}
        return {
            "created": [s.id for s in created],
            "updated": sorted(changed_ids),
            "unchanged": [s.id for s in wanted if s.id in existing and s.id not in changed_ids],
        }

    def run(
        self,
        until: date,
        *,
        dry_run: bool = False,
        batch_size: int = 500,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[RunSummary, list[dict[str, Any]]]:
        """The billing run up to ``until``; with ``dry_run`` the same run, rolled back.
        Returns the summary and, for a dry run, every invoice it would have issued."""
        from abonnement.engine.billing_run import run_billing

        store = self.storage
        args = (store, self.catalog, self.rules.pricing, until)
        options = {"batch_size": batch_size, "progress": progress,
                   "with_mrr": self.rules.reads("subscription", "mrr"),
                   "processor": self.processor}  # fmt: skip
        if not dry_run:
            return run_billing(*args, **options), []
        with store.dry_run():
            summary = run_billing(*args, keep_invoices=True, **options)
            invoices = [store.invoice(number) for number, _ in summary.invoices]
        return summary, invoices

    def quote(
        self,
        contact_id: str,
        items: Sequence[tuple[str, int]],
        purchase: date,
        *,
        start: date | None = None,
        payments: int | None = None,
    ) -> Summary:
        """The summary of ``contact_id`` buying ``items`` (product id, quantity) on ``purchase``."""
        from abonnement.engine.billing_run import contact_records
        from abonnement.engine.catalog import ItemSpec, Terms
        from abonnement.engine.items import resolve_item
        from abonnement.engine.purchase import summarize
        from abonnement.engine.schedule import OnDate

        catalog = self.catalog
        if contact_id not in catalog.contacts:
            raise AbonnementError(f"unknown contact `{contact_id}`")
        currency = catalog.settings.default_currency
        resolved = []
        for product_id, quantity in items:
            if product_id not in catalog.products:
                raise AbonnementError(f"unknown product `{product_id}`")
            resolved.append(resolve_item(
                ItemSpec(product=product_id, quantity=quantity), catalog, currency,
                terms=Terms(payments) if payments else None,
                start=OnDate(start) if start else None,
            ))  # fmt: skip
        if not resolved:
            raise AbonnementError("a quote needs at least one --item")
        ctx = {**contact_records(catalog, contact_id), "today": purchase}
        return summarize(resolved, purchase, ctx, self.rules.pricing, catalog.settings,
                         catalog.tax_rates)  # fmt: skip


def _definition(sub: Any) -> tuple:
    return (sub.items, dict(sub.properties), sub.owner, sub.payment_method_id)
