"""The directions room: directions made from concepts (difference of means, or counterfactual
pairs), composed from saved ones, and kept under names with every version, the tunings measured
on each, renames and removal to the trash."""
from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from db.models import Concept, Direction, Encoder, Statistics
from direction_bank.errors import BankError, DirectionChanged, EncoderMismatch, NameTaken, UnknownDirection, UnknownVersion
from direction_bank.names import check_direction_name, check_name
from direction_bank.progress import progress_bar
from direction_bank.store import queries
from direction_bank.store.records import DirectionResult, EncoderInfo
from direction_bank.store.rows import (
    add_direction, latest_direction_version, lock_direction_names, unknown_direction,
)
from direction_bank.text.encoder import DEFAULT_BATCH_SIZE
from direction_bank.text.cleaning import swap_concept

if TYPE_CHECKING:
    from db.engine import Database
    from direction_bank.store.concepts import Concepts
    from direction_bank.store.encoders import Encoders
    from direction_bank.text.encoder import TextEncoder


def direction_name_taken(name: str) -> NameTaken:
    """The refusal of a direction name in use (the caller did not ask for a new version)."""
    return NameTaken(f"a direction named {name!r} exists; --overwrite stores this one as its next version "
                     f"and keeps the old one (dbank direction history {name})")


def _reference(direction: DirectionResult) -> str:
    """How a recipe names a saved direction: 'NAME@VERSION', which stays true after the name
    gets newer versions."""
    return f"{direction.name}@{direction.version}" if direction.version else direction.name


def _direction_row(session, reference: str) -> Direction:
    """The row of a saved direction: 'NAME' (its current version) or 'NAME@N' (version N)."""
    name, version = check_name(reference, "direction"), None
    match = re.fullmatch(r"(.+)@(\d{1,9})", name)
    query = select(Direction)
    if match and session.scalar(select(Direction.id).where(Direction.name == match[1]).limit(1)):
        name, version = match[1], int(match[2])
        query = query.where(Direction.name == name, Direction.version == version)
    else:
        query = query.where(Direction.name == name).order_by(Direction.version.desc()).limit(1)
    row = session.scalar(query)
    if row is None:
        if version is not None:
            raise UnknownVersion(f"direction {name!r} has no version {version} (dbank direction history {name})")
        raise unknown_direction(session, reference)
    return row


def _counts_now(session, source: str | None, target: str | None, encoder_id: int) -> dict:
    """How many sentences the source's and target's statistics under an encoder hold now
    (None: none), by role; {} for a direction made from no concepts."""
    return {role: session.scalar(select(Statistics.count).join(Concept).where(
                Concept.name == concept, Statistics.encoder_id == encoder_id))
            for role, concept in (("source", source), ("target", target)) if concept}


class Directions:
    """A bank's directions: made, saved with their versions and tunings, read, removed."""

    def __init__(self, db: Database, encoders: Encoders, concepts: Concepts):
        self.db = db
        self.encoders = encoders
        self.concepts = concepts

    def diff(self, source: str, target: str, model: str | None = None,
             preferred: str | None = None) -> DirectionResult:
        """The direction target mean minus source mean, [1, max_length, D] float32, with how far
        to trust it (see confidence.difference_confidence)."""
        encoder = self.concepts.common_encoder(source, target, model, preferred)
        a = self.concepts.statistics(source, encoder)
        b = self.concepts.statistics(target, encoder)
        return queries.difference(check_name(source), check_name(target), encoder, a, b)

    def paired_diff(self, source: str, target: str, encoder: TextEncoder,
                    batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = False) -> DirectionResult:
        """The mean over counterfactual pairs of E(sentence naming target) - E(same sentence naming
        source): each concept's own sentences with the concept word swapped for the other's, so
        the direction carries the concept change, not the difference between the two contexts."""
        from direction_bank.store.confidence import paired_confidence
        from direction_bank.store.stats import RunningStats

        source, target = check_name(source), check_name(target)
        info = self.encoders.register(encoder)
        before, after = [], []
        for own, other, forward in ((source, target, True), (target, source, False)):
            for record in self.concepts.sentences(own):
                swapped = swap_concept(record.text, own, other)
                if swapped is not None:
                    before.append(record.text if forward else swapped)
                    after.append(swapped if forward else record.text)
        if not before:
            raise BankError(f"no sentence of {source!r} or {target!r} names its concept; cannot pair them")
        stats = RunningStats.empty(info.sample_shape)
        batches = range(0, len(before), batch_size)
        for start in progress_bar(batches, enabled=progress, desc="pairing", unit="batch"):
            end = start + batch_size
            stats = stats.add(encoder.embed(after[start:end], batch_size)
                              - encoder.embed(before[start:end], batch_size))
        return DirectionResult.of_sample(
            stats.mean, info, source, target, stats.count, stats.count,
            confidence=paired_confidence(stats),
            recipe={"paired": {"source": source, "target": target, "pairs": stats.count}},
        )

    def save(self, name: str, direction: DirectionResult, overwrite: bool = False) -> DirectionResult:
        """Store the direction under a name. A name in use is refused unless `overwrite`, which
        stores it as the name's next version and keeps every earlier one (see history);
        saving the current version's very tensor and recipe again stores nothing."""
        name = check_direction_name(name)

        def store(session) -> tuple[int, bool]:
            latest = latest_direction_version(session, name)
            if latest and not overwrite:
                raise direction_name_taken(name)
            if latest:
                current = session.scalar(select(Direction).where(Direction.name == name,
                                                                 Direction.version == latest))
                if (current.fingerprint == direction.fingerprint and current.recipe == direction.recipe
                        and current.encoder_id == direction.encoder.id):
                    return latest, True
            return add_direction(session, name, direction, latest + 1), False

        version, unchanged = self.db.write(store)
        return replace(direction, name=name, version=version, unchanged=unchanged)

    def get(self, name: str) -> DirectionResult:
        """A saved direction by name: its current version, or version N as 'NAME@N'."""
        from direction_bank.store.confidence import halving_estimate
        from direction_bank.store.stats import blob_to_tensor

        with self.db.reading() as session:
            row = _direction_row(session, name)
            encoder = EncoderInfo.of(session.get(Encoder, row.encoder_id))
            sample = blob_to_tensor(row.tensor, encoder.sample_shape)
            confidence = None
            if row.snr is not None:
                confidence = {"snr": row.snr, "noise_norm": row.norm / row.snr if row.snr else None,
                              **halving_estimate(row.source_count, row.target_count)}
            return DirectionResult.of_sample(
                sample, encoder, row.source, row.target, row.source_count, row.target_count,
                row.name, confidence, row.recipe, version=row.version,
                counts_now=_counts_now(session, row.source, row.target, row.encoder_id),
                tuning=(row.tuning or [None])[-1],
            )

    def add_tuning(self, direction: DirectionResult, tuning: dict) -> dict:
        """Keep `tuning` (dbank tune's chosen scale and xa_guidance, with its scores and rule) on
        the very version of a saved direction it measured, after that version's earlier tunings
        (the newest is the one edits use). The version must still hold the measured tensor (by
        fingerprint): else DirectionChanged and nothing is stored. Returns it as stored (checked;
        see file_metadata.Tuning), with the version and fingerprint it was measured on."""
        from direction_bank.sharing.file_metadata import checked_tuning

        tuning = checked_tuning({**tuning, "version": direction.version, "fingerprint": direction.fingerprint})

        def store(session) -> None:
            lock_direction_names(session, direction.name)
            row = session.scalar(select(Direction).where(Direction.name == direction.name,
                                                         Direction.version == direction.version))
            if row is None or row.fingerprint != direction.fingerprint:
                raise DirectionChanged(
                    f"the direction {direction.name!r} changed while it was tuned (version {direction.version} "
                    f"{'is gone' if row is None else 'now holds another tensor'}); nothing stored: tune it again")
            row.tuning = [*(row.tuning or []), tuning]

        self.db.write(store)
        return tuning

    def listing(self) -> list[dict]:
        """Every saved direction (its current version): name, version, source, target, norm,
        signal-to-noise, encoder model."""
        latest = (select(Direction.name, func.max(Direction.version).label("version"))
                  .where(Direction.trash_id.is_(None)).group_by(Direction.name).subquery())
        with self.db.reading() as session:
            rows = session.execute(
                select(Direction.name, Direction.version, Direction.source, Direction.target, Direction.norm,
                       Direction.snr, Encoder.model, Direction.encoder_id, Direction.source_count,
                       Direction.target_count)
                .join(latest, (Direction.name == latest.c.name) & (Direction.version == latest.c.version))
                .join(Encoder)
                .order_by(Direction.name)
            ).all()
            listed = []
            for n, v, s, t, norm, snr, m, encoder_id, source_count, target_count in rows:
                now = _counts_now(session, s, t, encoder_id)
                made = {"source": source_count, "target": target_count}
                listed.append({"name": n, "version": v, "source": s, "target": t, "norm": norm, "snr": snr,
                               "model": m, "concepts_changed": any(now[r] != made[r] for r in now)})
        return listed

    def history(self, name: str) -> list[dict]:
        """Every version of a direction name, oldest first: when, recipe, norm, fingerprint, and
        for a direction made from concepts the sentence counts it was made from against what
        those concepts hold now (`concepts_changed`)."""
        name = check_name(name, "direction")
        with self.db.reading() as session:
            rows = session.scalars(select(Direction).where(Direction.name == name).order_by(Direction.version)).all()
            if not rows:
                raise unknown_direction(session, name)
            history = []
            for row in rows:
                now = _counts_now(session, row.source, row.target, row.encoder_id)
                made = {"source": row.source_count, "target": row.target_count}
                history.append({
                    "version": row.version, "current": row is rows[-1], "created_at": row.created_at.isoformat(),
                    "source": row.source, "target": row.target, "recipe": row.recipe, "norm": row.norm,
                    "snr": row.snr, "fingerprint": row.fingerprint,
                    "source_count": row.source_count, "target_count": row.target_count, "tuning": row.tuning or [],
                    "source_count_now": now.get("source"), "target_count_now": now.get("target"),
                    "concepts_changed": any(now[role] != made[role] for role in now),
                })
        return history

    def version_with_fingerprint(self, name: str, fingerprint: str | None) -> tuple[str, bool]:
        """('NAME' or 'NAME@N', whether that is the current version): the newest version of a
        direction whose tensor has `fingerprint` (any version when None). UnknownDirection in
        one line when no version has it. A NAME@N (an edit made with an older version) looks
        among all versions of NAME."""
        name = re.sub(r"@\d+$", "", name)
        versions = self.history(name)
        matching = [v for v in versions if fingerprint is None or v["fingerprint"] == fingerprint]
        if not matching:
            raise UnknownDirection(f"no version of the direction {name!r} in the bank is the one the edit used "
                                   f"(fingerprint {fingerprint[:12]}); import that direction first")
        newest = matching[-1]
        return (name, True) if newest["current"] else (f"{name}@{newest['version']}", False)

    def restore_version(self, name: str, version: int) -> DirectionResult:
        """Make version `version` of a direction its current one again, by storing it as the
        next version (nothing is replaced; the history shows where it came from)."""
        name = check_name(name, "direction")

        def store(session) -> int:
            latest = latest_direction_version(session, name)
            old = _direction_row(session, f"{name}@{version}")
            if latest == version:
                return latest
            session.add(Direction(
                name=name, version=latest + 1, encoder_id=old.encoder_id, source=old.source, target=old.target,
                source_count=old.source_count, target_count=old.target_count, norm=old.norm, snr=old.snr,
                recipe={**(old.recipe or {}), "restored_from": version}, tensor=old.tensor,
                fingerprint=old.fingerprint, tuning=old.tuning,  # the same tensor: its tunings hold
            ))
            return latest + 1

        self.db.write(store)
        return self.get(name)

    def compose(self, name: str, parts: list[tuple[str, float]], overwrite: bool = False) -> DirectionResult:
        """Store sum(weight * direction) of saved directions (all from one encoder, each by name
        or 'NAME@VERSION') as `name` (a name in use: see save)."""
        import numpy as np

        check_direction_name(name)
        if not parts:
            raise BankError("name at least one direction to add")
        loaded = [(self.get(part), weight) for part, weight in parts]
        encoder = loaded[0][0].encoder
        for direction, _ in loaded:
            if direction.encoder.id != encoder.id:
                raise EncoderMismatch(
                    f"{direction.name!r} comes from {direction.encoder.describe()}, "
                    f"{loaded[0][0].name!r} from {encoder.describe()}: they cannot be added"
                )
        total = sum(weight * d.sample().astype(np.float64) for d, weight in loaded)
        recipe = {"sum": [[_reference(d), weight] for d, weight in loaded]}
        return self.save(name, DirectionResult.of_sample(total, encoder, recipe=recipe), overwrite)

    def rename(self, old: str, new: str) -> int:
        """Give every version of the direction named exactly `old` the name `new` (see
        histories.rename_direction); returns the versions renamed."""
        from direction_bank.store.histories import rename_direction

        return self.db.write(lambda session: rename_direction(session, old, new))

    def remove(self, name: str) -> int:
        """Move a saved direction, every version of it, to the trash; returns the versions moved."""
        from direction_bank.store.trash import trash_direction

        return self.db.write(lambda session: trash_direction(session, check_name(name, "direction")))
