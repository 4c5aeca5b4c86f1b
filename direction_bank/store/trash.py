"""The trash: removed concepts, directions and sentences, kept until the trash is emptied and
put back exactly on restore. Every function here runs inside the caller's write transaction.

A concept or a direction keeps its rows where they were, renamed to a name no user can type
(storage.trash_name) and marked with its trash entry, so its statistics come back bit for bit.
A sentence leaves its concept (statistics always exclude trashed sentences); its entry holds the
row, its embedding under each encoder and the statistics before the removal, so a restore writes
those very bytes back when nothing changed since, and otherwise adds the embedding back."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select, update

from db.models import Concept, Direction, Encoder, Moments, Sentence, SentenceEncoding, Statistics, TrashEntry
from direction_bank.errors import BankError, NameTaken
from direction_bank.names import check_direction_name, check_name
from direction_bank.store.records import EncoderInfo
from direction_bank.store.rows import (
    lock_concept, lock_direction_names, read_statistics, trash_name, unknown_concept, unknown_direction,
    write_statistics,
)

EMPTY = "empty"  # the digest of statistics that hold nothing (no row)

if TYPE_CHECKING:
    from db.engine import Database


class NotInTrash(BankError):
    """A restore of something the trash does not hold."""


def statistics_digest(session, concept_id: int, encoder_id: int) -> str:
    """SHA-256 of a concept's stored statistics under an encoder (count and both tensors'
    bytes), or EMPTY: tells whether they changed between a removal and a restore."""
    row = session.get(Statistics, (concept_id, encoder_id))
    moments = session.get(Moments, (concept_id, encoder_id))
    if row is None or moments is None:
        return EMPTY
    digest = hashlib.sha256(str(row.count).encode())
    digest.update(moments.mean)
    digest.update(moments.m2)
    return digest.hexdigest()


def _new_entry(session, kind: str, name: str, detail: dict, concept: str | None = None,
               payload: bytes | None = None) -> TrashEntry:
    entry = TrashEntry(kind=kind, name=name, concept=concept, detail=detail, payload=payload,
                       trashed_at=datetime.now(timezone.utc))
    session.add(entry)
    session.flush()
    return entry


def trash_concept(session, name: str) -> int:
    """Move a concept (sentences, statistics under every encoder) to the trash; returns how
    many sentences it holds."""
    row = lock_concept(session, name)
    if row is None:
        raise unknown_concept(session, name)
    count = session.scalar(select(func.count(Sentence.id)).where(Sentence.concept_id == row.id))
    encoders = session.scalar(select(func.count()).select_from(Statistics).where(Statistics.concept_id == row.id))
    entry = _new_entry(session, "concept", name, {"sentences": count, "encoders": encoders})
    row.name, row.trash_id = trash_name(entry.id), entry.id
    return count


def trash_direction(session, name: str) -> int:
    """Move a direction name, every version of it, to the trash; returns the versions moved."""
    lock_direction_names(session, name)
    rows = session.scalars(select(Direction).where(Direction.name == name).order_by(Direction.version)).all()
    if not rows:
        raise unknown_direction(session, name)
    latest = rows[-1]
    entry = _new_entry(session, "direction", name, {
        "versions": len(rows), "source": latest.source, "target": latest.target, "norm": latest.norm})
    for row in rows:
        row.name, row.trash_id = trash_name(entry.id), entry.id
    return len(rows)


def trash_sentence(session, concept: str, sentence_id: int, embeddings: dict) -> dict | None:
    """Move one sentence of `concept` to the trash, taking its embedding (`embeddings`:
    encoder id -> [1, *sample_shape]) out of each encoder's statistics that hold it. Returns
    the sentence as a dict; None when it is in the statistics of an encoder missing from
    `embeddings` (embed with that one too and call again). A sentence another writer removed
    first is a one-line error, and changes nothing."""
    import numpy as np
    from safetensors.numpy import save

    concept_row = lock_concept(session, concept)
    if concept_row is None:
        raise unknown_concept(session, concept)
    row = session.get(Sentence, sentence_id)
    if row is None or row.concept_id != concept_row.id:
        raise BankError(f"concept {concept!r} has no sentence #{sentence_id} (already removed? see dbank trash)")
    encoder_ids = sorted(session.scalars(
        select(SentenceEncoding.encoder_id).where(SentenceEncoding.sentence_id == row.id)))
    if any(encoder_id not in embeddings for encoder_id in encoder_ids):
        return None
    tensors, encoders = {}, {}
    for encoder_id in encoder_ids:
        info = _info(session, encoder_id)
        before = read_statistics(session, concept_row.id, info)
        moments = session.get(Moments, (concept_row.id, encoder_id))
        tensors[f"{encoder_id}/embedding"] = np.asarray(embeddings[encoder_id], np.float32).reshape(info.sample_shape)
        # the stored bytes themselves, so a restore can write back exactly these
        tensors[f"{encoder_id}/mean_before"] = np.frombuffer(moments.mean, np.uint8).copy()
        tensors[f"{encoder_id}/m2_before"] = np.frombuffer(moments.m2, np.uint8).copy()
        write_statistics(session, concept_row.id, info, before.remove(embeddings[encoder_id]))
        encoders[str(encoder_id)] = {"count_before": before.count,
                                     "after": statistics_digest(session, concept_row.id, encoder_id)}
    sentence = {"id": row.id, "text": row.text, "content_hash": row.content_hash, "generator": row.generator,
                "generator_model": row.generator_model, "prompt_version": row.prompt_version,
                "settings": row.settings, "created_at": row.created_at.isoformat()}
    _new_entry(session, "sentence", concept, {"sentence": sentence, "encoders": encoders}, concept=concept,
               payload=save(tensors) if tensors else None)
    session.execute(delete(SentenceEncoding).where(SentenceEncoding.sentence_id == row.id))
    session.execute(delete(Sentence).where(Sentence.id == row.id))
    return sentence


def _info(session, encoder_id: int) -> EncoderInfo:
    return EncoderInfo.of(session.get(Encoder, encoder_id))


def _flush_stale(session) -> None:
    """Make the ORM see rows written with core statements in this transaction."""
    session.flush()
    session.expire_all()


def list_trash(session) -> list[dict]:
    """What the trash holds, newest first: id, kind, name, concept, when, and detail."""
    rows = session.scalars(select(TrashEntry).order_by(TrashEntry.trashed_at.desc(), TrashEntry.id.desc())).all()
    return [{"id": r.id, "kind": r.kind, "name": r.name, "concept": r.concept,
             "trashed_at": r.trashed_at.isoformat(), "detail": r.detail} for r in rows]


def find_entry(session, name: str | None = None, entry_id: int | None = None) -> TrashEntry:
    """The trash entry with `entry_id`, or the newest concept or direction entry named `name`,
    locked for this transaction on PostgreSQL (two restores of one entry take turns)."""
    query = select(TrashEntry).with_for_update()
    if entry_id is not None:
        query = query.where(TrashEntry.id == entry_id)
    else:
        query = (query.where(TrashEntry.name == check_name(name), TrashEntry.kind.in_(["concept", "direction"]))
                 .order_by(TrashEntry.trashed_at.desc(), TrashEntry.id.desc()).limit(1))
    entry = session.scalar(query)
    if entry is None:
        what = f"#{entry_id}" if entry_id is not None else f"named {name!r}"
        raise NotInTrash(f"nothing {what} in the trash (dbank trash lists it)")
    return entry


def restore_entry(session, entry: TrashEntry, as_name: str | None = None) -> dict:
    """Put a trash entry back where it was (a concept or direction under `as_name` if given);
    returns what was restored. A name now in use is refused; nothing changes."""
    kind = entry.kind
    name = check_name(as_name, kind if kind != "sentence" else "concept") if as_name else entry.name
    if kind == "direction":
        name = _restorable_direction_name(name, as_name)
        lock_direction_names(session, name)
    result = {"id": entry.id, "kind": kind, "name": name}
    if kind == "concept":
        if session.scalar(select(Concept.id).where(Concept.name == name)) is not None:
            raise NameTaken(f"a concept named {name!r} exists now; restore this one under another name "
                            "with --as NAME, or remove that one first")
        session.execute(update(Concept).where(Concept.trash_id == entry.id).values(name=name, trash_id=None))
    elif kind == "direction":
        if session.scalar(select(Direction.id).where(Direction.name == name).limit(1)) is not None:
            raise NameTaken(f"a direction named {name!r} exists now; restore this one under another name "
                            "with --as NAME, or remove that one first")
        session.execute(update(Direction).where(Direction.trash_id == entry.id).values(name=name, trash_id=None))
    else:
        if as_name:
            raise BankError("a sentence goes back to its own concept; --as renames concepts and directions")
        result.update(_restore_sentence(session, entry))
    _flush_stale(session)
    session.delete(entry)
    return result


def _restorable_direction_name(name: str, as_name: str | None) -> str:
    """The name a direction comes back under, by check_direction_name: a name from before that
    rule ('h2z@1', which would read as version 1 of 'h2z') comes back only under another one."""
    try:
        return check_direction_name(name)
    except BankError as error:
        if as_name:
            raise
        raise BankError(f"{error} (restore it with --as NAME)") from None


def _restore_sentence(session, entry: TrashEntry) -> dict:
    """Put a trashed sentence back into its concept and into the statistics it left: the very
    bytes from before its removal when they have not changed since, else its embedding added."""
    from safetensors.numpy import load

    from direction_bank.store.stats import RunningStats

    sentence = entry.detail["sentence"]
    concept = lock_concept(session, entry.concept)
    if concept is None:
        raise NotInTrash(f"concept {entry.concept!r} is not in the bank; restore it first (dbank restore {entry.concept})")
    again = session.scalar(select(Sentence.id).where(Sentence.concept_id == concept.id,
                                                     Sentence.content_hash == sentence["content_hash"]))
    if again is not None:  # added again since: its statistics already hold it
        return {"sentence_id": again, "text": sentence["text"], "already_there": True}
    free = session.get(Sentence, sentence["id"]) is None
    row = Sentence(id=sentence["id"] if free else None, concept_id=concept.id, text=sentence["text"],
                   content_hash=sentence["content_hash"], generator=sentence["generator"],
                   generator_model=sentence["generator_model"], prompt_version=sentence["prompt_version"],
                   settings=sentence["settings"], created_at=datetime.fromisoformat(sentence["created_at"]))
    session.add(row)
    session.flush()
    tensors = load(entry.payload) if entry.payload else {}
    exact = True
    for encoder_id, detail in entry.detail["encoders"].items():
        info = _info(session, int(encoder_id))
        if statistics_digest(session, concept.id, info.id) == detail["after"]:
            stats = RunningStats.from_blobs(detail["count_before"], tensors[f"{encoder_id}/mean_before"].tobytes(),
                                            tensors[f"{encoder_id}/m2_before"].tobytes(), info.sample_shape)
        else:
            exact = False
            current = read_statistics(session, concept.id, info) or RunningStats.empty(info.sample_shape)
            stats = current.add(tensors[f"{encoder_id}/embedding"][None])
        write_statistics(session, concept.id, info, stats)
        session.add(SentenceEncoding(sentence_id=row.id, encoder_id=info.id))
    return {"sentence_id": row.id, "text": row.text, "already_there": False, "statistics_exact": exact}


def empty_trash(session, older_than: timedelta | None = None) -> int:
    """Delete for good what the trash holds (only what went in longer ago than `older_than`);
    returns the entries deleted."""
    query = select(TrashEntry.id)
    if older_than is not None:
        try:
            cutoff = datetime.now(timezone.utc) - older_than
        except OverflowError:  # before the year 1: nothing went in that long ago
            return 0
        query = query.where(TrashEntry.trashed_at < cutoff)
    ids = list(session.scalars(query.with_for_update()))
    if ids:
        session.execute(delete(Concept).where(Concept.trash_id.in_(ids)))
        session.execute(delete(Direction).where(Direction.trash_id.in_(ids)))
        session.execute(delete(TrashEntry).where(TrashEntry.id.in_(ids)))
    return len(ids)


class Trash:
    """The trash room: what it holds, putting things back, emptying it."""

    def __init__(self, db: Database):
        self.db = db

    def listing(self) -> list[dict]:
        """What the trash holds, newest first (see list_trash)."""
        with self.db.reading() as session:
            return list_trash(session)

    def restore(self, name: str | None = None, entry_id: int | None = None, as_name: str | None = None) -> dict:
        """Put back from the trash the newest concept or direction named `name`, or the entry
        `entry_id` (any kind, sentences too), under `as_name` if given; returns what came back."""
        if (name is None) == (entry_id is None):
            raise BankError("name what to restore, or give its trash id (one of the two)")
        return self.db.write(lambda session: restore_entry(session, find_entry(session, name, entry_id), as_name))

    def empty(self, older_than_days: float | None = None) -> int:
        """Delete for good what the trash holds (only entries older than `older_than_days` when
        given); returns how many entries went."""
        older = None if older_than_days is None else timedelta(days=older_than_days)
        return self.db.write(lambda session: empty_trash(session, older))
