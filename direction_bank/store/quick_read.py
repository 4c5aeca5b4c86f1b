"""The two reads whose start-up a person waits on, `dbank concepts` and `dbank diff` without
--save, answered through the standard library's sqlite3: importing SQLAlchemy alone takes longer
than the whole command should (#35). They run the queries module's statements, as the rooms do.

Only the plain case is answered here: a SQLite bank file at the current schema, both concepts
present with one encoder to use. Anything else (PostgreSQL, an older or newer schema, an unknown
name, encoders to choose between, a damaged row, a locked file) answers None, and the caller
opens the Bank, whose rooms say what is wrong in their one wording."""
from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from typing import TYPE_CHECKING

from db.migrations import HEAD
from db.urls import (
    BankUnavailable, busy_timeout_from_environment, connect_read_only, database_url, default_database, sqlite_path,
)
from direction_bank.errors import BankError
from direction_bank.store import queries

if TYPE_CHECKING:
    from direction_bank.store.records import ConceptSummary, DirectionResult


def _connection(database: str | os.PathLike | None) -> sqlite3.Connection | None:
    """A read-only connection to a SQLite bank file (None: the default one) at the current
    schema, else None."""
    path = sqlite_path(database_url(database if database is not None else default_database()))
    if path is None or not path.is_file():
        return None
    try:
        connection = connect_read_only(path, busy_timeout_from_environment())
    except (sqlite3.Error, BankUnavailable):
        return None
    try:
        if connection.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]:
            return connection
    except sqlite3.Error:
        pass
    connection.close()
    return None


def _run(connection: sqlite3.Connection) -> queries.Run:
    return lambda sql, params: connection.execute(sql, params).fetchall()


def concept_summaries(database: str | os.PathLike | None) -> list[ConceptSummary] | None:
    """Bank.concepts() of the bank at `database`, or None where the Bank must answer."""
    connection = _connection(database)
    if connection is None:
        return None
    with closing(connection):
        try:
            return queries.summaries(_run(connection))
        except sqlite3.Error:
            return None


def difference(database: str | os.PathLike | None, source: str, target: str, model: str | None = None,
               preferred: str | None = None) -> DirectionResult | None:
    """Bank.diff(source, target, model, preferred) of the bank at `database`, or None where the
    Bank must answer (and, when something is wrong, say what)."""
    from direction_bank.names import check_name

    connection = _connection(database)
    if connection is None:
        return None
    with closing(connection):
        run = _run(connection)
        try:
            source, target = check_name(source), check_name(target)
            ids = [queries.concept_id(run, name) for name in (source, target)]
            if None in ids:
                return None
            a, b = (queries.encoders_of(run, concept) for concept in ids)
            encoder = queries.common_encoder(a, b, source, target, model, preferred)
            stats = [queries.statistics(run, concept, encoder) for concept in ids]
        except (sqlite3.Error, BankError):
            return None
    if None in stats:
        return None
    return queries.difference(source, target, encoder, *stats)
