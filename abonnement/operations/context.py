"""What every operation works with: the config, the rules, the storage, the processor and
the plugins of one project, built once by ``app.App`` and passed in explicitly."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from abonnement.errors import AbonnementError

if TYPE_CHECKING:
    from abonnement.engine.catalog import Catalog
    from abonnement.engine.recurring import RecurringPricing
    from abonnement.plugins.manager import Plugins
    from abonnement.rules.ruleset import RuleSet

__all__ = ["Context"]


@dataclass(eq=False)
class Context:
    """One project's collaborators. ``storage`` and ``processor`` are opened on first use,
    so an operation that needs neither (a quote) opens no database and no processor.

    Operations read the date they are given, never the clock; ``today()`` is for the faces,
    which call it once per command when the user gave no date."""

    config_dir: Path
    catalog: Catalog
    rules: RuleSet
    plugins: Plugins
    open_storage: Callable[[], Any] = field(repr=False)
    database_url: str = ""

    def __post_init__(self) -> None:
        from dataclasses import replace

        from abonnement.operations.buyers import Contacts

        # buyers a payment-link page stored are contacts too, for every operation
        if not isinstance(self.catalog.contacts, Contacts):
            contacts = Contacts(self.catalog.contacts, lambda: self.storage)
            self.catalog = replace(self.catalog, contacts=contacts)

    @cached_property
    def storage(self) -> Any:
        """The project's storage plugin (``engine.ports.Storage``), opened on first use."""
        return self.open_storage()

    @cached_property
    def processor(self) -> Any:
        """The configured payment processor plugin, with its own settings block."""
        settings = self.catalog.settings
        cls = self.plugins.processors[settings.processor]
        return cls(dict(settings.plugin_settings.get(f"payments.{settings.processor}", {})))

    def automatic_tax(self) -> Any:
        """The configured tax provider for one run, quote or checkout (its answers are
        remembered for that run), or None when ``settings.taxes.provider`` is not set."""
        return self.plugins.automatic_tax(self.catalog.settings)

    @cached_property
    def recurring(self) -> RecurringPricing:
        """Prices what subscriptions bill every period after the discounts that recur: what
        history records for MRR, and the MRR every face shows."""
        from abonnement.engine.recurring import RecurringPricing

        return RecurringPricing.of(self.catalog, self.rules)

    @property
    def settings(self) -> Any:
        return self.catalog.settings

    def close(self) -> None:
        """Close the storage if it was opened (the context can open it again)."""
        store = self.__dict__.pop("storage", None)
        if store is not None:
            store.close()

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def today(self) -> date:
        """Today in the account's time zone: the faces' default when no date is given."""
        return datetime.now(ZoneInfo(self.catalog.settings.timezone)).date()

    def buyer_link(self, kind: str, subject: str, on: date, days: int) -> dict[str, str]:
        """A signed ``kind`` link (``update``: a subscription's payment method; ``pay``: an
        invoice) for ``subject``, made on ``on`` and valid ``days`` days, on the server buyers
        reach: ``{"token", "url", "expires_at"}``."""
        from abonnement.engine.update_links import link

        token, path, expires = link(subject, on, days, self.link_secret(), kind)  # type: ignore[arg-type]
        url = self.catalog.settings.buyer_url(path)
        return {"token": token, "url": url, "expires_at": expires.isoformat()}

    def link_secret(self, *, required: bool = True) -> str | None:
        """The secret that signs buyer links (``ABONNEMENT_LINK_SECRET``)."""
        secret = os.environ.get("ABONNEMENT_LINK_SECRET")
        if not secret and required:
            raise AbonnementError("set ABONNEMENT_LINK_SECRET to sign payment-method update links")
        return secret or None
