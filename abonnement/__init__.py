"""abonnement: recurring billing as code.

The Python API is the CLI's: open a project (a config directory and a database URL), then call
the operations in ``abonnement.operations`` with it — the same functions the CLI and the server
call, with the same policies (a run applies the declared subscriptions first; every change
delivers what it set off). See docs/python.md.

    from datetime import date
    import abonnement
    from abonnement.operations import billing

    with abonnement.open_project("demo", "sqlite:///abonnement.db") as project:
        result = billing.run(project, date(2027, 1, 1), apply_on=date(2026, 12, 1))
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from abonnement.operations.context import Context
    from abonnement.plugins.manager import Plugins

__all__ = ["DEFAULT_DATABASE_URL", "open_project"]

DEFAULT_DATABASE_URL = "sqlite:///abonnement.db"


def open_project(
    config_dir: str | Path,
    database_url: str = DEFAULT_DATABASE_URL,
    *,
    plugins: Plugins | None = None,
) -> Context:
    """The ``Context`` every operation takes, for the config in ``config_dir`` and the database
    at ``database_url`` (SQLite file or PostgreSQL URL; a new SQLite file is created and
    migrated). ``plugins``: a ``Plugins`` of your own (default: the installed ones).

    Loads and checks the config at once: raises ``abonnement.errors.ConfigError`` listing every
    problem. The database opens on first use; close it with ``close()`` or a ``with`` block."""
    from abonnement.app import App

    return App(Path(config_dir), database_url, _plugins=plugins).context
