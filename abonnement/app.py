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

from abonnement import CONFIG_FILE, default_database_url

if TYPE_CHECKING:
    from abonnement.config.loader import Config
    from abonnement.engine.catalog import Catalog
    from abonnement.engine.ports import Storage
    from abonnement.operations.context import Context
    from abonnement.plugins.manager import Plugins
    from abonnement.rules.ruleset import RuleSet

__all__ = ["App", "find_config_dir"]


def find_config_dir(start: Path) -> Path | None:
    """The nearest directory from ``start`` upward holding an ``abonnement.yaml`` (as git
    finds its repository), or None. The faces use it when no config directory is given."""
    start = start.resolve()
    for directory in (start, *start.parents):
        if (directory / CONFIG_FILE).is_file():
            return directory
    return None


@dataclass
class App:
    """One config directory and one database, with the plugins loaded once. ``database_url``
    None: the SQLite file ``abonnement.db`` in the config directory. ``found`` False: no
    config directory was given or found upward (``config_dir`` is then the current one, for
    the commands that need none, such as ``init``); loading the config says so."""

    config_dir: Path
    database_url: str | None = None
    _plugins: Plugins | None = field(default=None, repr=False)
    found: bool = True

    def __post_init__(self) -> None:
        if self.database_url is None:
            self.database_url = default_database_url(self.config_dir)

    @cached_property
    def plugins(self) -> Plugins:
        from abonnement.plugins.manager import Plugins

        return self._plugins or Plugins.load()

    @cached_property
    def config(self) -> Config:
        """The validated config and its rules; raises ``ConfigError`` with every problem."""
        from abonnement.config.cache import cache_path
        from abonnement.config.loader import load

        if not self.found:  # never every YAML file under wherever the command was typed
            from abonnement.errors import ConfigError, Problem

            where = str(self.config_dir.resolve())
            hint = ("pass --config DIR or set ABONNEMENT_CONFIG, or run the command inside a "
                    "config directory; `abonnement init DIR` writes one")  # fmt: skip
            problem = f"no {CONFIG_FILE} here or in any directory above"
            raise ConfigError([Problem(where, 1, 1, problem, hint)])
        cache = cache_path(self.config_dir, self.database_url or "")
        return load(self.config_dir, self.plugins.names(), cache=cache)

    @property
    def catalog(self) -> Catalog:
        return self.config.catalog

    @property
    def rules(self) -> RuleSet:
        return self.config.rules

    @cached_property
    def context(self) -> Context:
        """What every operation takes: config, rules, plugins, and storage and processor
        opened on first use. ``ConfigError`` when the config signs outgoing webhooks and
        ``ABONNEMENT_WEBHOOK_SIGNING_SECRET`` is unset or unusable: an operation may deliver,
        and nothing goes out unsigned."""
        from abonnement import signing

        signing.require_secret(self.catalog.settings.signed_at)
        return self.checking_context

    @cached_property
    def checking_context(self) -> Context:
        """The context without the signing secret's check, for ``validate`` alone: a CI job
        checking a config has no secrets. Nothing it is used for may deliver."""
        from abonnement.operations.context import Context

        return Context(
            config_dir=self.config_dir, catalog=self.catalog, rules=self.rules,
            plugins=self.plugins, open_storage=self._open_storage,
            database_url=self.database_url or "",
        )  # fmt: skip

    @property
    def storage(self) -> Storage:
        return self.context.storage

    def _open_storage(self) -> Storage:
        return self.plugins.open_storage(self.database_url or "")
