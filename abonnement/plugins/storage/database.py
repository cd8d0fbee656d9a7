"""One database and its transactions: what every repository of the SQL storage shares.

``Database`` owns the SQLAlchemy engine, the hot path's ``Codec`` (compiled statements, value
encodings) and the connection a dry run or a charge holds open. A repository asks it for a
transaction (``tx``) and never opens one of its own, so a dry run or ``holding`` block makes
every write inside a savepoint of one transaction.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock, Timeout
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from abonnement.errors import Busy, StorageError
from abonnement.plugins.storage import meta
from abonnement.plugins.storage.rows import Codec
from abonnement.private_files import create_private

__all__ = ["LOCK_WAIT", "MIGRATIONS", "Database", "alembic_config", "lock_wait", "same"]

MIGRATIONS = Path(__file__).parent / "migrations"
LOCK_WAIT = 60.0  # seconds, unless ``ABONNEMENT_LOCK_TIMEOUT`` says otherwise


def lock_wait() -> float:
    """How long a process waits for a lock another one holds (a run on SQLite, an apply,
    migrations) before it says so: ``ABONNEMENT_LOCK_TIMEOUT`` seconds, else ``LOCK_WAIT``."""
    text = os.environ.get("ABONNEMENT_LOCK_TIMEOUT", "").strip()
    if not text:
        return LOCK_WAIT
    try:
        wait = float(text)
    except ValueError:
        wait = -1.0
    if not 0 <= wait < 1e9:  # also NaN
        raise StorageError(f"ABONNEMENT_LOCK_TIMEOUT must be a number of seconds, not {text!r}")
    return wait


def alembic_config(connection: Connection) -> AlembicConfig:
    """Alembic's configuration for the shipped migrations, running on ``connection``."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _sqlite_begin(conn: Connection) -> None:
    # ``Database.tx``: the write lock now, not at the first write (when a deferred
    # transaction that has read already fails at once instead of waiting for it)
    immediate = conn.get_execution_options().get("sqlite_immediate")
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


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
        in_memory = self.sqlite and parsed.database in (None, "", ":memory:")
        # the database file itself, when there is one: buyer links' generated secret sits
        # beside it (``Context.link_secret``)
        self.database_file = (
            Path(parsed.database).resolve() if self.sqlite and not in_memory else None
        )
        # held while charging or reconciling (``holding``): SQLite has no row locks to hold
        self.charge_lock = Path(f"{parsed.database}-charging") if self.database_file else None
        # where a processor may keep files of this database's (the test processor's ledger)
        self.directory = self.charge_lock.parent.absolute() if self.charge_lock else None
        self._instance: str | None = None
        self.held: Connection | None = None  # set while a dry run or a charge holds one
        try:
            if self.database_file is not None and not self.database_file.parent.is_dir():
                # checked first: the lock file would make the missing folders
                raise FileNotFoundError(2, "No such file or directory")
            if self.database_file is not None and not self.database_file.exists():
                # created whole or not at all: a kill mid-creation leaves no file behind
                # (and a second first use waits for the first, then finds it made)
                with self.exclusive("migrating"):
                    if not self.database_file.exists():
                        self._create_file(migrated=migrate)
        except OSError as exc:
            raise StorageError(f"cannot create {self.database_file}: {exc.strerror}") from None
        try:
            self.engine = self._engine(url)
            self.codec = Codec(self.engine.dialect, self.sqlite)
            if in_memory and migrate:
                self.upgrade()
            elif migrate:
                self.check_current()
        except OperationalError as exc:
            raise StorageError(f"cannot open the database {parsed!r}: {exc.orig}") from None

    def _engine(self, url: str) -> Engine:
        engine = create_engine(url)
        if self.sqlite:
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        return engine

    def _create_file(self, *, migrated: bool = True) -> None:
        """A new SQLite file, made under a temporary name (customers' data: readable by its
        owner only; SQLite gives its -wal and -shm files the database's own mode), migrated
        there and then moved into place, so no process ever sees it half made."""
        target = self.database_file
        assert target is not None
        temporary = target.with_name(f".{target.name}.{os.getpid()}.creating")
        try:
            temporary.unlink(missing_ok=True)
            create_private(temporary)
            if migrated:
                engine = self._engine(f"sqlite:///{temporary}")
                try:
                    with engine.begin() as conn:
                        command.upgrade(alembic_config(conn), "head")
                finally:
                    engine.dispose()  # the last connection checkpoints the WAL into the file
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    # -- schema ----------------------------------------------------------------------------
    def upgrade(self) -> str:
        """Apply every pending migration, holding the migrations' lock (two first uses wait
        for each other); returns the revision now current. Raises ``StorageError`` when the
        database cannot be reached, ``Busy`` when another process migrates it for longer than
        ``lock_wait()``."""
        try:
            with self.exclusive("migrating"), self.engine.begin() as conn:
                command.upgrade(alembic_config(conn), "head")
                return MigrationContext.configure(conn).get_current_revision() or ""
        except OperationalError as exc:  # the URL's repr hides a password
            raise StorageError(f"cannot open the database {make_url(self.url)!r}: "
                               f"{exc.orig}") from None  # fmt: skip

    def check_current(self) -> None:
        """``StorageError`` unless the database is at the newest migration. A database behind
        it is read again once the migrations' lock is free: another process may be migrating
        it this moment."""
        current, head = self._revisions()
        if current != head:
            with self.exclusive("migrating"):
                current, head = self._revisions()
                if current is None and self.sqlite and self._empty():
                    # a file some older kill left made but never migrated: nothing to lose
                    with self.engine.begin() as conn:
                        command.upgrade(alembic_config(conn), "head")
                    current, head = self._revisions()
        if current != head:
            raise StorageError(
                f"the database is at migration {current or 'none'}, abonnement needs {head}; "
                "run `abonnement db upgrade`"
            )

    def _empty(self) -> bool:
        with self.engine.connect() as conn:
            return not inspect(conn).get_table_names()

    def _revisions(self) -> tuple[str | None, str | None]:
        with self.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            head = ScriptDirectory.from_config(alembic_config(conn)).get_current_head()
        return current, head

    def close(self) -> None:
        self.engine.dispose()

    # -- locks -----------------------------------------------------------------------------
    @contextmanager
    def exclusive(self, name: str, wait: float | None = None) -> Iterator[None]:
        """Held by one process at a time per database and ``name`` (a run on SQLite, an
        apply, migrations); another waits up to ``wait`` seconds (default ``lock_wait()``),
        then ``Busy``. On SQLite a lock file beside the database (``FILE-NAME``); on
        PostgreSQL a session advisory lock keyed by the schema and ``name``. Either goes with
        its holder, even a killed one."""
        wait = lock_wait() if wait is None else wait
        if self.sqlite:
            if self.database_file is None:  # in memory: one process
                yield
                return
            lock = FileLock(f"{self.database_file}-{name}", timeout=wait)
            try:
                lock.acquire()
            except Timeout:
                raise _busy(name, wait) from None
            try:
                yield
            finally:
                lock.release()
            return
        with self.engine.connect() as conn:
            key = conn.execute(text("SELECT hashtext(current_schema() || :name)"),
                               {"name": f"/abonnement/{name}"}).scalar_one()  # fmt: skip
            conn.commit()
            deadline = time.monotonic() + wait
            while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                   {"k": key}).scalar_one():  # fmt: skip
                conn.commit()
                if time.monotonic() >= deadline:
                    raise _busy(name, wait)
                time.sleep(0.05)
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()

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
        held one inside ``dry_run`` or ``holding``. On SQLite it takes the write lock at once
        (``BEGIN IMMEDIATE``): what it reads stays true until it commits (the serialization
        PostgreSQL gets from ``FOR UPDATE``), and a transaction that read first never fails
        at its first write because another process wrote meanwhile. Waiting longer than
        SQLite's busy timeout for the write lock is ``Busy``, not a driver error."""
        if self.held is not None:
            with self.held.begin_nested():
                yield self.held
            return
        with _unlocked(self.sqlite), self.engine.connect() as conn:
            if self.sqlite:
                conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                yield conn

    @contextmanager
    def dry_run(self) -> Iterator[None]:
        """Everything inside runs for real, in one transaction that is rolled back (on SQLite
        it holds the write lock throughout, as its first write would)."""
        with _unlocked(self.sqlite), self.engine.connect() as conn:
            if self.sqlite:
                conn.execution_options(sqlite_immediate=True)
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
def _unlocked(sqlite: bool) -> Iterator[None]:
    """SQLite's "database is locked" (another process held the write lock longer than the
    busy timeout) as ``Busy``: a message, never a driver traceback."""
    try:
        yield
    except OperationalError as exc:
        if sqlite and "database is locked" in str(exc.orig):
            raise Busy("the database is busy: another process has held its write lock too "
                       "long; try again when it has finished") from None  # fmt: skip
        raise


@contextmanager
def same(conn: Connection) -> Iterator[Connection]:
    """``conn`` as a context: a caller's transaction, used as it is."""
    yield conn


@contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    """Held by one process at a time; another waits. An OS lock (``flock`` on POSIX,
    ``msvcrt`` on Windows): it goes with its holder, even a killed one."""
    if path is None:  # an in-memory database: one process
        yield
        return
    with FileLock(path):
        yield


def _busy(name: str, wait: float) -> Busy:
    what = {"run": "another run holds the database",
            "migrating": "another process is migrating the database",
            "applying": "another apply or run is applying the declared subscriptions"}  # fmt: skip
    return Busy(
        f"{what.get(name, f'another process holds the {name} lock')}; waited "
        f"{wait:g} s (ABONNEMENT_LOCK_TIMEOUT), try again when it has finished"
    )
