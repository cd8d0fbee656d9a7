"""The composition root: plugins + config (+ storage, later) → what commands work with.

Used alike by the CLI, the tests and Python callers; nothing here is global. Heavy modules
(schemas, parsers, plugins) load on first use so `abonnement --help` starts at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from abonnement.config.loader import Config
    from abonnement.engine.catalog import Catalog
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
