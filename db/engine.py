"""Database URLs to engines and sessions: SQLite pragmas, write transactions, migrations on open."""
from __future__ import annotations

import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from db import migrations
from db.urls import BankUnavailable, busy_timeout_from_environment, connect_read_only, sqlite_path

WRITE_ATTEMPTS = 8
T = TypeVar("T")
# PostgreSQL: serialization failure, deadlock, unique violation (a concurrent writer inserted the
# same row first; the retried transaction sees it)
_RETRYABLE_SQLSTATES = {"40001", "40P01", "23505"}


def is_transient(error: DBAPIError) -> bool:
    """Whether a failed write transaction may succeed when run again (contention, not a bug)."""
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate in _RETRYABLE_SQLSTATES:
        return True
    message = str(error.orig).lower()
    return "database is locked" in message or "database is busy" in message


class NoDatabase(BankUnavailable):
    """An open that may not create found no bank at the given place."""


class NotABank(BankUnavailable):
    """A database that holds something other than a dbank bank (left untouched)."""


class NewerBank(BankUnavailable):
    """A bank whose schema version this dbank does not know (made by a newer dbank)."""


def _configure_sqlite(engine: Engine, busy_timeout_s: float, read_only: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        if not read_only:  # switching to WAL writes to the file
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        # A write transaction takes the write lock up front: a deferred one that reads, then
        # writes, fails at once (SQLITE_BUSY) when another writer got there between.
        write = connection.get_execution_options().get("dbank_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _read_only_sqlite_engine(path: Path) -> Engine:
    """An engine whose connections cannot write to the file (see urls.connect_read_only)."""
    # a file, not memory: a pool of connections like a file URL gets (not one per thread)
    return create_engine("sqlite://", creator=lambda: connect_read_only(path), poolclass=QueuePool)


class Database:
    """An open bank database: an engine whose schema is at the newest version.

    A database that holds other tables (another program's file) is refused and never touched; a
    read-only open never writes to the file, and never creates one."""

    def __init__(self, url: str, *, create: bool = True, read_only: bool = False,
                 busy_timeout_s: float | None = None):
        self.url = url
        self.read_only = read_only
        path = sqlite_path(url)
        if path is not None and not path.exists():
            if read_only or not create:
                raise NoDatabase(f"no bank at {path}")
            path.parent.mkdir(parents=True, exist_ok=True)
        if path is not None and path.exists() and not path.is_file():
            raise NotABank(f"{path} is not a file")
        if busy_timeout_s is None:
            busy_timeout_s = busy_timeout_from_environment()
        self._where = str(path) if path is not None else "the database"
        if path is not None and not read_only and path.exists() and path.stat().st_size:
            # look before the writable engine switches the file to WAL: it may be another program's
            looking = _read_only_sqlite_engine(path)
            try:
                self._check_schema(looking, create)
            finally:
                looking.dispose()
        self.engine = _read_only_sqlite_engine(path) if read_only and path else create_engine(url)
        if self.engine.dialect.name == "sqlite":
            _configure_sqlite(self.engine, busy_timeout_s, read_only)
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = sessionmaker(
            self.engine.execution_options(dbank_write=True), expire_on_commit=False
        )
        self._open_schema(create and not read_only)

    def schema_version(self) -> str | None:
        """The Alembic revision the database is at, or None for an empty database."""
        with self.engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def _check_schema(self, engine: Engine, create: bool) -> str | None:
        """The schema version of a dbank bank (None for an empty database, when creating);
        NotABank, NewerBank or NoDatabase for anything else, which is left untouched."""
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            version = None
            if "alembic_version" in tables:
                version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        if not tables and not create:
            raise NoDatabase(f"{self._where} holds no bank yet")
        if tables and version not in migrations.REVISIONS:
            if version is not None and {"concepts", "encoders"} <= tables:
                raise NewerBank(
                    f"{self._where} was made by a newer dbank (schema version {version}; this dbank "
                    f"knows up to {migrations.HEAD}); upgrade dbank"
                )
            raise NotABank(f"{self._where} is not a dbank bank (it holds other tables); left untouched")
        return version

    def _open_schema(self, create: bool) -> None:
        """Check that this is a dbank bank of a known version, bringing an older one up to date
        (an empty database too, when creating); anything else is refused untouched."""
        if self._check_schema(self.engine, create) == migrations.HEAD:
            return
        if self.read_only:  # an older bank of ours: upgrading it is part of opening it
            writable = create_engine(self.url)
            try:
                with writable.begin() as connection:
                    migrations.upgrade(connection)
            finally:
                writable.dispose()
            return
        with self.engine.execution_options(dbank_write=True).begin() as connection:
            migrations.upgrade(connection)

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads; nothing it does is committed."""
        with self._reader() as session:
            yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session whose work commits as one transaction (holding the write lock on SQLite)."""
        with self._writer.begin() as session:
            yield session

    def write(self, work: Callable[[Session], T], attempts: int = WRITE_ATTEMPTS) -> T:
        """Run `work(session)` in a write transaction, running it again (with jittered
        exponential backoff) when it failed only because of other writers."""
        for attempt in range(attempts):
            try:
                with self.writing() as session:
                    return work(session)
            except DBAPIError as error:
                if attempt == attempts - 1 or not is_transient(error):
                    raise
                time.sleep(min(2.0, 0.02 * 2**attempt) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
