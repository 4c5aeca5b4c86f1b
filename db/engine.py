"""Database URLs to engines and sessions: SQLite pragmas, write transactions, migrations on open."""
from __future__ import annotations

import os
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from db import migrations

DEFAULT_BUSY_TIMEOUT_S = 30.0
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


class NoDatabase(Exception):
    """A read-only open found no bank at the given place."""


def database_url(database: str | os.PathLike) -> str:
    """A SQLAlchemy URL for a path or URL (anything with '://' is taken as a URL)."""
    database = str(database)
    if "://" in database:
        return database
    return f"sqlite:///{Path(database).expanduser().absolute()}"


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other engines and in-memory SQLite."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    path = path.split("?", 1)[0]
    if path in ("", ":memory:"):
        return None
    return Path(path)


def _configure_sqlite(engine: Engine, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
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


class Database:
    """An open bank database: an engine whose schema is at the newest version."""

    def __init__(self, url: str, *, create: bool = True, busy_timeout_s: float | None = None):
        self.url = url
        path = sqlite_path(url)
        if path is not None and not path.exists():
            if not create:
                raise NoDatabase(f"no bank at {path}")
            path.parent.mkdir(parents=True, exist_ok=True)
        if busy_timeout_s is None:
            busy_timeout_s = float(os.environ.get("DBANK_BUSY_TIMEOUT", DEFAULT_BUSY_TIMEOUT_S))
        self.engine = create_engine(url)
        if self.engine.dialect.name == "sqlite":
            _configure_sqlite(self.engine, busy_timeout_s)
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = sessionmaker(
            self.engine.execution_options(dbank_write=True), expire_on_commit=False
        )
        self._migrate()

    def schema_version(self) -> str | None:
        """The Alembic revision the database is at, or None for an empty database."""
        with self.engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def _migrate(self) -> None:
        if self.schema_version() == migrations.HEAD:
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
