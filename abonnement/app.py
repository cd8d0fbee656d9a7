"""The composition root: plugins + config + storage → the ``Context`` operations take.

Used alike by the CLI, the server, the tests and Python callers; nothing here is global.
Heavy modules (schemas, parsers, SQLAlchemy) load on first use so `abonnement --help` starts
at once. The config is loaded on first use, the database opened on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from abonnement import DEFAULT_DATABASE_URL

if TYPE_CHECKING:
    from abonnement.config.loader import Config
    from abonnement.engine.catalog import Catalog
    from abonnement.engine.ports import Storage
    from abonnement.operations.context import Context
    from abonnement.plugins.manager import Plugins
    from abonnement.rules.ruleset import RuleSet

__all__ = ["DEFAULT_DATABASE_URL", "App"]


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
    def context(self) -> Context:
        """What every operation takes: config, rules, plugins, and storage and processor
        opened on first use."""
        from abonnement.operations.context import Context

        return Context(
            config_dir=self.config_dir, catalog=self.catalog, rules=self.rules,
            plugins=self.plugins, open_storage=self._open_storage,
            database_url=self.database_url,
        )  # fmt: skip

    @property
    def storage(self) -> Storage:
        return self.context.storage

    def _open_storage(self) -> Storage:
        return self.plugins.open_storage(self.database_url)
