"""Reading and writing the bank's rows inside a session: names, directions, and a concept's
statistics (the values themselves are in records.py). The rooms, sharing and the integrity checks
all build on these."""
from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select, text

from db.models import Concept, Direction, Moments, Statistics
from direction_bank.errors import UnknownConcept, UnknownDirection
from direction_bank.names import check_name, did_you_mean
from direction_bank.store import queries
from direction_bank.store.records import DirectionResult, EncoderInfo

if TYPE_CHECKING:
    from direction_bank.store.queries import Run
    from direction_bank.store.stats import RunningStats


# Rows in the trash are renamed to this prefix and their trash entry's id: names never hold
# control characters (names.check_name), so no lookup by a user's name can reach them.
TRASH_NAME_PREFIX = "\x1ftrash/"


def trash_name(entry_id: int) -> str:
    """The name a concept's or direction's rows carry while trash entry `entry_id` holds them."""
    return f"{TRASH_NAME_PREFIX}{entry_id}"


def lock_direction_names(session, *names: str) -> None:
    """Make every writer of these direction names take turns, for the rest of the transaction.
    SQLite's write transaction already excludes other writers. PostgreSQL locks rows, not
    names: a remover's row locks miss the version a racing saver is inserting, which left a new
    version live while the older ones went to the trash. So each name takes a transaction-level
    advisory lock (names in sorted order, so two writers of two names cannot deadlock); every
    statement after it sees what the previous holder committed."""
    import hashlib

    if session.get_bind().dialect.name != "postgresql":
        return
    for name in sorted(set(names)):
        digest = hashlib.sha256(b"dbank direction name\0" + name.encode("utf-8", "surrogatepass")).digest()
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                        {"key": int.from_bytes(digest[:8], "big", signed=True)})


def latest_direction_version(session, name: str) -> int:
    """The highest version stored under a direction name (0: none), the name locked first
    (lock_direction_names) so two writers of one name take turns."""
    lock_direction_names(session, name)
    return session.scalar(select(func.max(Direction.version)).where(Direction.name == name)) or 0


def add_direction(session, name: str, direction: DirectionResult, version: int = 1) -> int:
    """Store a direction as `version` of `name`; returns the version."""
    session.add(
        Direction(
            name=name,
            version=version,
            fingerprint=direction.fingerprint,
            encoder_id=direction.encoder.id,
            source=direction.source,
            target=direction.target,
            source_count=direction.source_count,
            target_count=direction.target_count,
            norm=direction.norm,
            snr=(direction.confidence or {}).get("snr"),
            recipe=direction.recipe,
            tensor=direction.blob(),
            tuning=[direction.tuning] if direction.tuning else None,
        )
    )
    return version


def session_run(session) -> Run:
    """The queries module's way to run its SQL, inside this session."""
    return lambda sql, params: session.execute(text(sql), params).all()


def concept_id(session, concept: str) -> int:
    """The id of a concept by name; UnknownConcept in one line when the bank has none."""
    found = queries.concept_id(session_run(session), check_name(concept))
    if found is None:
        raise unknown_concept(session, concept)
    return found


def unknown_concept(session, name: str) -> UnknownConcept:
    """The one-line error for a concept the bank does not hold, with the nearest names it does."""
    nearest = did_you_mean(name, live_names(session, "concept"))
    return UnknownConcept(f"no concept named {name!r} in the bank{nearest}")


def unknown_direction(session, name: str) -> UnknownDirection:
    """The one-line error for a direction the bank does not hold, with the nearest names it does."""
    nearest = did_you_mean(name, live_names(session, "direction"))
    return UnknownDirection(f"no direction named {name!r} in the bank{nearest}")


def name_in_use(session, kind: str, name: str) -> bool:
    """Whether a direction (kind 'direction') or concept of this name is in the bank (any version,
    trashed ones too: a name that holds history)."""
    table = Direction if kind == "direction" else Concept
    return session.scalar(select(table.id).where(table.name == name).limit(1)) is not None


def live_names(session, kind: str) -> list[str]:
    """The names of the live (not trashed) directions (kind 'direction') or concepts."""
    table = Direction if kind == "direction" else Concept
    return list(session.scalars(select(table.name).where(table.trash_id.is_(None)).distinct()))


def lock_concept(session, name: str, create: bool = False) -> Concept | None:
    """The concept's row, locked for this transaction on PostgreSQL (SQLite's write transaction
    already excludes other writers), so writers to one concept take turns; created if asked."""
    row = session.scalar(select(Concept).where(Concept.name == name).with_for_update())
    if row is None and create:
        row = Concept(name=name)
        session.add(row)
        session.flush()
    return row


def read_statistics(session, concept_id: int, info: EncoderInfo) -> RunningStats | None:
    """A concept's statistics under an encoder, inside a session; None when it has none."""
    return queries.statistics(session_run(session), concept_id, info)


def write_statistics(session, concept_id: int, info: EncoderInfo, stats: RunningStats) -> None:
    """Store (or, for empty statistics, delete) a concept's statistics under an encoder."""
    import numpy as np

    key = (concept_id, info.id)
    row, moments = session.get(Statistics, key), session.get(Moments, key)
    if stats.count == 0:
        for stale in (row, moments):
            if stale is not None:
                session.delete(stale)
        return
    mean, m2 = stats.to_blobs()
    norm = float(np.linalg.norm(stats.mean))
    if row is None:
        session.add(Statistics(concept_id=concept_id, encoder_id=info.id, count=stats.count, mean_norm=norm))
        session.add(Moments(concept_id=concept_id, encoder_id=info.id, mean=mean, m2=m2))
    else:
        row.count, row.mean_norm = stats.count, norm
        moments.mean, moments.m2 = mean, m2
