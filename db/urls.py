"""Where a bank lives (a path or URL to a SQLAlchemy URL, the file behind a SQLite one), how long
to wait for it, and a read-only SQLite connection. Kept apart from engine.py so that a caller that
needs only these imports no SQLAlchemy."""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_BUSY_TIMEOUT_S = 30.0


class BankUnavailable(Exception):
    """A bank that cannot be opened as asked; the message is one line for the user."""


def busy_timeout_from_environment() -> float:
    """DBANK_BUSY_TIMEOUT in seconds (default 30), checked: a finite number from 0 to a day."""
    raw = os.environ.get("DBANK_BUSY_TIMEOUT")
    if raw is None or not raw.strip():
        return DEFAULT_BUSY_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 86_400:  # also refuses NaN
        raise BankUnavailable(f"DBANK_BUSY_TIMEOUT={raw!r}: give a number of seconds from 0 to 86400")
    return value


def default_database() -> Path:
    """The bank file used when none is named: bank.db in the user data directory."""
    import platformdirs

    return platformdirs.user_data_path("dbank") / "bank.db"


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


def connect_read_only(path: Path, busy_timeout_s: float | None = None):
    """A sqlite3 connection that cannot write to the file (SQLite's mode=ro), waiting up to
    `busy_timeout_s` for a lock (the engine sets its own on connect). A WAL bank in a
    folder nobody can write to (so no writer can exist) is opened as immutable, since SQLite
    cannot make the shared-memory file it would otherwise need."""
    import sqlite3
    from urllib.parse import quote

    uri = f"file:{quote(str(path))}?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
        if busy_timeout_s is not None:
            connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        connection.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return connection
    except sqlite3.OperationalError:
        wal = path.with_name(path.name + "-wal")
        if os.access(path.parent, os.W_OK) or (wal.exists() and wal.stat().st_size):
            raise
        return sqlite3.connect(uri + "&immutable=1", uri=True, check_same_thread=False)
