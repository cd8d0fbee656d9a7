"""Project-level operations that need no config (a new project, the database schema)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from abonnement.errors import InvalidInput

if TYPE_CHECKING:
    from abonnement.plugins.manager import Plugins

__all__ = ["EXAMPLES", "init", "upgrade_database"]

EXAMPLES = Path(__file__).parents[1] / "examples"


def init(directory: Path, example: str = "coffee") -> Path:
    """Write the ``example`` config into ``directory`` (new or empty); returns it."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise InvalidInput(f"{directory} exists and is not empty; pick a new directory")
    if not (EXAMPLES / example).is_dir():
        raise InvalidInput(f"no example `{example}`")
    shutil.copytree(EXAMPLES / example, directory, dirs_exist_ok=True)
    return directory


def upgrade_database(plugins: Plugins, database_url: str) -> str:
    """Apply every pending migration to ``database_url`` through its storage plugin
    (``abonnement_open_storage`` with ``migrate=False``); returns the revision now current."""
    store = plugins.open_storage(database_url, migrate=False)
    try:
        return store.upgrade()
    finally:
        store.close()
