"""What every operation works with: the config, the rules, the storage, the processor and
the plugins of one project, built once by ``app.App`` and passed in explicitly."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from abonnement.errors import AbonnementError

if TYPE_CHECKING:
    from abonnement.engine.catalog import Catalog
    from abonnement.engine.ports import Storage
    from abonnement.engine.recurring import RecurringPricing
    from abonnement.engine.subscriptions import Subscription
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
    open_storage: Callable[[], Storage] = field(repr=False)
    database_url: str = ""

    def __post_init__(self) -> None:
        from dataclasses import replace

        from abonnement.operations.buyers import Contacts

        # buyers a payment-link page stored are contacts too, for every operation
        if not isinstance(self.catalog.contacts, Contacts):
            contacts = Contacts(self.catalog.contacts, lambda: self.storage)
            self.catalog = replace(self.catalog, contacts=contacts)

    @cached_property
    def storage(self) -> Storage:
        """The project's storage plugin (``engine.ports.Storage``), opened on first use."""
        return self.open_storage()

    @cached_property
    def processor(self) -> Any:
        """The configured payment processor plugin, with its own settings block plus
        ``config_dir`` (relative paths of its settings), ``data_dir``: the folder where it
        may keep files of this database's — the SQLite database's own folder, else the config
        folder (never the working directory) — and ``storage`` (``ProcessorStore``)."""
        settings = self.catalog.settings
        cls = self.plugins.processors[settings.processor]
        own = dict(settings.plugin_settings.get(f"payments.{settings.processor}", {}))
        folder = self.storage.directory or self.config_dir
        return cls({**own, "config_dir": str(Path(self.config_dir).absolute()),
                    "data_dir": str(Path(folder).absolute()), "storage": self.storage})  # fmt: skip

    def notifiers(self) -> dict[str, Any]:
        """The configured notifiers by name, each built with its settings block and
        ``config_dir`` (relative paths). A notifier that refuses its settings (a webhook
        without its secret, a login without TLS) raises ``PluginError`` here: operations that
        send call this before they change anything."""
        settings = self.catalog.settings
        base = {"config_dir": str(self.config_dir)}
        return {
            name: self.plugins.notifiers[name](
                {**base, **settings.plugin_settings.get(f"notifications.{name}", {})}
            )
            for name in settings.notifiers
        }

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

    def scheduled(self, subs: Sequence[Subscription]) -> list[Subscription]:
        """``subs`` with their next event computed with the settings' reminder lead, as the
        billing run would (so it finds them scheduled already, with nothing to redo)."""
        from abonnement.engine.subscriptions import scheduled

        lead = self.catalog.settings.reminder_lead
        return [scheduled(s, lead) for s in subs]

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

    def buyer_link(
        self, kind: str, subject: str, on: date, days: int, nonce: str
    ) -> dict[str, str]:
        """A signed ``kind`` link (``update``: a subscription's payment method; ``pay``: an
        invoice) for ``subject``, made on ``on``, valid ``days`` days, one use per ``nonce``,
        on the server buyers reach (``settings.server.public_url``):
        ``{"token", "url", "expires_at"}``."""
        from abonnement.engine.update_links import link

        token, path, expires = link(kind, subject, on, days, self.link_secret(), nonce)  # type: ignore[arg-type]
        url = self.catalog.settings.buyer_url(path)
        return {"token": token, "url": url, "expires_at": expires.isoformat()}

    def link_secret(self, *, required: bool = True) -> str | None:
        """The secret that signs buyer links: ``ABONNEMENT_LINK_SECRET`` when set, else the
        one generated on first use and kept beside a SQLite database
        (``DATABASE.link-secret``, mode 0600), so links stay valid from one command to the
        next. Other databases (several machines share them) need the variable: without it,
        ``required`` raises, else None (failed-payment notices then carry no link). A secret
        shorter than 32 bytes is refused (``InvalidInput``)."""
        from abonnement.engine.update_links import check_secret

        secret = os.environ.get("ABONNEMENT_LINK_SECRET")
        if secret:
            check_secret(secret, "ABONNEMENT_LINK_SECRET")
            return secret
        database = self.storage.database_file
        if database is None:
            if required:
                raise AbonnementError(
                    "set ABONNEMENT_LINK_SECRET (32 bytes or more, the same on every machine) "
                    "to sign buyer links: this database keeps no secret file beside it"
                )
            return None
        return self._kept_secret

    @cached_property
    def _kept_secret(self) -> str:
        # read once per context: a run signs a link for every invoice it e-mails
        return _stored_secret(Path(f"{self.storage.database_file}.link-secret"))


def _stored_secret(path: Path) -> str:
    """The secret in ``path``, made (random, 0600) if there is none yet. Two processes that
    both find none agree on whichever was written first."""
    import secrets

    from abonnement.engine.update_links import check_secret
    from abonnement.private_files import write_private

    try:
        if not path.exists():
            write_private(path, secrets.token_urlsafe(48).encode() + b"\n", replace=False)
        secret = path.read_text().strip()
    except OSError as exc:
        raise AbonnementError(f"cannot keep the link secret in {path}: {exc.strerror}") from None
    check_secret(secret, str(path))
    return secret
