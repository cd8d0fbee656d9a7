"""One database and its transactions: what every repository of the SQL storage shares.

``Database`` owns the SQLAlchemy engine, the hot path's ``Codec`` (compiled statements, value
encodings) and the connection a dry run or a charge holds open. A repository asks it for a
transaction (``tx``) and never opens one of its own, so a dry run or ``holding`` block makes
every write inside a savepoint of one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: one billing process at a time is up to the user there
    fcntl = None  # type: ignore[assignment]

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from abonnement.errors import StorageError
from abonnement.plugins.storage import meta
from abonnement.plugins.storage.rows import Codec
from abonnement.private_files import create_private

__all__ = ["MIGRATIONS", "Database", "alembic_config", "same"]

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection) -> AlembicConfig:
    """Alembic's configuration for the shipped migrations, running on ``connection``."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINTs (dry runs use them): take it over
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # Takes effect on a new file only (before WAL mode, which fixes it): a billing run
    # rewrites rows all over subscriptions and three indexes; 16 KiB pages were ~10% faster
    # than the default 4 KiB
    cursor.execute("PRAGMA page_size=16384")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # pages (160 MB at 16 KiB): fewer, larger checkpoints (at 1,000 they were a third of
    # a run's commit time)
    cursor.execute("PRAGMA wal_autocheckpoint=10000")
    # a billing run reads subscriptions between its writes to five tables' indexes: with
    # the default 2 MB cache those pages were read back from the OS at every batch
    cursor.execute("PRAGMA cache_size=-65536")  # KiB: 64 MB, taken only as used
    cursor.close()


class Database:
    """A SQLite file (or memory) or a PostgreSQL database, opened by URL. A new SQLite file
    is migrated at once; any other database must be at the current migration."""

    def __init__(self, url: str, *, migrate: bool = True):
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise StorageError(f"bad database URL {url!r}: {exc}") from None
        self.url = url
        self.sqlite = parsed.get_backend_name() == "sqlite"
        fresh = self.sqlite and (
            parsed.database in (None, "", ":memory:") or not Path(parsed.database).exists()
        )
        # the database file itself, when there is one: buyer links' generated secret sits
        # beside it (``Context.link_secret``)
        self.database_file = (
            Path(parsed.database).resolve()
            if self.sqlite and parsed.database not in (None, "", ":memory:")
            else None
        )
        if fresh and self.database_file is not None:
            # customers' data: created readable by its owner only (SQLite gives its -wal and
            # -shm files the database's own mode)
            try:
                create_private(self.database_file)
            except OSError as exc:
                raise StorageError(f"cannot create {self.database_file}: {exc.strerror}") from None
        self.engine = create_engine(url)
        # held while charging or reconciling (``holding``): SQLite has no row locks to hold
        self.charge_lock = (
            Path(f"{parsed.database}-charging")
            if self.sqlite and parsed.database not in (None, "", ":memory:")
            else None
        )
        # where a processor may keep files of this database's (the test processor's ledger)
        self.directory = self.charge_lock.parent.absolute() if self.charge_lock else None
        self._instance: str | None = None
        if self.sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        self.held: Connection | None = None  # set while a dry run or a charge holds one
        self.codec = Codec(self.engine.dialect, self.sqlite)
        try:
            if fresh and migrate:
                self.upgrade()
            elif migrate:
                self.check_current()
        except OperationalError as exc:
            raise StorageError(f"cannot open the database {parsed!r}: {exc.orig}") from None

    # -- schema ----------------------------------------------------------------------------
    def upgrade(self) -> str:
        """Apply every pending migration; returns the revision now current."""
        with self.engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
            return MigrationContext.configure(conn).get_current_revision() or ""

    def check_current(self) -> None:
        """``StorageError`` unless the database is at the newest migration."""
        with self.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            head = ScriptDirectory.from_config(alembic_config(conn)).get_current_head()
        if current != head:
            raise StorageError(
                f"the database is at migration {current or 'none'}, abonnement needs {head}; "
                "run `abonnement db upgrade`"
            )

    def close(self) -> None:
        self.engine.dispose()

    def instance_id(self) -> str:
        """The random id this database was made with (``meta``, migration 0007), read once:
        every payment idempotency key starts with it."""
        if self._instance is None:
            with self.tx() as conn:
                self._instance = meta.instance_id(conn)
        return self._instance

    # -- transactions ----------------------------------------------------------------------
    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """A transaction, committed on leaving (rolled back on a raise); a savepoint of the
        held one inside ``dry_run`` or ``holding``."""
        if self.held is not None:
            with self.held.begin_nested():
                yield self.held
            return
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def dry_run(self) -> Iterator[None]:
        """Everything inside runs for real, in one transaction that is rolled back."""
        with self.engine.connect() as conn:
            outer = conn.begin()
            self.held = conn
            try:
                yield
            finally:
                self.held = None
                outer.rollback()

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Around asking the processor and recording what it said: another process's
        reconciliation must not take a live attempt for one a crash left (it would record it
        unsent, and the invoice would be charged again). On PostgreSQL, one transaction
        holding the attempt rows read inside (``still_pending``, ``pending_attempts``);
        reconciliation skips them. On SQLite a write lock held across processor calls would
        stop every other command, so a lock file next to the database is held instead: a
        second process charging or reconciling waits its turn (the lock goes with its holder,
        even a killed one)."""
        if self.held is not None:
            yield
        elif self.sqlite:
            with _file_lock(self.charge_lock):
                yield
        else:
            with self.engine.connect() as conn, conn.begin():
                self.held = conn  # every tx inside is a savepoint of this one
                try:
                    yield
                finally:
                    self.held = None


@contextmanager
def same(conn: Connection) -> Iterator[Connection]:
    """``conn`` as a context: a caller's transaction, used as it is."""
    yield conn


@contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    """Held by one process at a time; another waits."""
    if path is None or fcntl is None:  # an in-memory database: one process
        yield
        return
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released on close, or when the holder dies
        yield
