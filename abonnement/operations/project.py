"""Project-level operations that need no config (a new project, the database schema)."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from abonnement import CONFIG_FILE
from abonnement.errors import AbonnementError, InvalidInput

if TYPE_CHECKING:
    from abonnement.plugins.manager import Plugins

__all__ = ["EXAMPLES", "Initialised", "init", "upgrade_database"]

EXAMPLES = Path(__file__).parents[1] / "examples"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Initialised:
    """What ``init`` did: ``written`` False when ``directory`` already was an abonnement
    config and was left as it is; ``files`` the example's files, relative to ``directory``."""

    directory: Path
    example: str
    written: bool
    files: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "example": self.example,
                "written": self.written, "files": list(self.files)}  # fmt: skip


def init(directory: Path, example: str = "coffee", *, force: bool = False) -> Initialised:
    """Write the ``example`` config into ``directory`` (new or empty).

    A directory that already holds an ``abonnement.yaml`` is left as it is (``written``
    False), so a script that runs ``init`` before every use keeps working; ``force`` writes the
    example's files over it (other files, such as the database, stay). Raises
    ``InvalidInput`` for an unknown example, a file in the way, or a non-empty directory that
    is not a config (without ``force``); ``AbonnementError`` when the files cannot be
    written."""
    source = EXAMPLES / example
    if not source.is_dir():
        raise InvalidInput(f"no example `{example}`")
    files = tuple(sorted(str(p.relative_to(source)) for p in source.rglob("*") if p.is_file()))
    if directory.exists() and not directory.is_dir():
        raise InvalidInput(f"{directory} is a file; pick a new directory")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        if (directory / CONFIG_FILE).is_file():
            log.debug("%s is already an abonnement config; left as it is", directory)
            return Initialised(directory, example, False, files)
        raise InvalidInput(f"{directory} exists and is not empty; pick a new directory "
                           "(or --force to write the example into it)")  # fmt: skip
    try:
        shutil.copytree(source, directory, dirs_exist_ok=True)
    except OSError as exc:
        raise AbonnementError(f"cannot write {directory}: {exc.strerror or exc}") from None
    log.debug("wrote the %s example to %s", example, directory)
    return Initialised(directory, example, True, files)


def upgrade_database(plugins: Plugins, database_url: str) -> str:
    """Apply every pending migration to ``database_url`` through its storage plugin
    (``abonnement_open_storage`` with ``migrate=False``); returns the revision now current."""
    store = plugins.open_storage(database_url, migrate=False)
    try:
        revision = store.upgrade()
    finally:
        store.close()
    log.info("database at migration %s", revision)
    return revision
