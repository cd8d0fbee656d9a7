"""abonnement: recurring billing as code.

The Python API is the CLI's: open a project (a config directory and a database URL), then call
the operations in ``abonnement.operations`` with it — the same functions the CLI and the server
call, with the same policies (a run applies the declared subscriptions first; every change
delivers what it set off). See docs/python.md.

    from datetime import date
    import abonnement
    from abonnement.operations import billing

    with abonnement.open_project("demo") as project:  # the database: demo/abonnement.db
        result = billing.run(project, date(2027, 1, 1), apply_on=date(2026, 12, 1))
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from abonnement.operations.context import Context
    from abonnement.plugins.manager import Plugins

__all__ = ["CONFIG_FILE", "DATABASE_FILE", "default_database_url", "open_project"]

CONFIG_FILE = "abonnement.yaml"  # marks a config directory (found upward from the cwd)
DATABASE_FILE = "abonnement.db"  # the default SQLite database, in the config directory

# a library configures no logging; the command line does (abonnement/cli/logs.py)
logging.getLogger(__name__).addHandler(logging.NullHandler())


def default_database_url(config_dir: str | Path) -> str:
    """The database a project uses when none is named: ``abonnement.db`` in its config
    directory, so every command run on that config — from any working directory — finds it."""
    return f"sqlite:///{Path(config_dir) / DATABASE_FILE}"


def open_project(
    config_dir: str | Path,
    database_url: str | None = None,
    *,
    plugins: Plugins | None = None,
) -> Context:
    """The ``Context`` every operation takes, for the config in ``config_dir`` and the database
    at ``database_url`` (SQLite file or PostgreSQL URL; a new SQLite file is created and
    migrated; None: ``abonnement.db`` in ``config_dir``). ``plugins``: a ``Plugins`` of your
    own (default: the installed ones).

    Loads and checks the config at once: raises ``abonnement.errors.ConfigError`` listing every
    problem. The database opens on first use; close it with ``close()`` or a ``with`` block."""
    from abonnement.app import App

    return App(Path(config_dir), database_url, _plugins=plugins).context
