"""Checking a bank (schema, counts, hashes, finite statistics; --deep re-embeds a sample),
repairing its statistics from the stored sentences, and consistent SQLite backups."""
from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from sqlalchemy import func, select

from db import migrations
from db.urls import sqlite_path
from db.models import Concept, Direction, Encoder, Moments, Sentence, SentenceEncoding, Statistics
from direction_bank.text.cleaning import content_hash
from direction_bank.errors import BankError
from direction_bank.sharing.files import MAX_ABS_VALUE
from direction_bank.store.histories import history_problems, repair_histories
from direction_bank.output_files import write_output
from direction_bank.store.stats import DamagedData
from direction_bank.store.records import EncoderInfo
from direction_bank.store.rows import lock_concept, read_statistics, write_statistics

if TYPE_CHECKING:
    from direction_bank.bank import Bank
    from direction_bank.text.encoder import TextEncoder


def _encoded_sentences(session, concept_id: int, encoder_id: int) -> list[str]:
    return list(session.scalars(
        select(Sentence.text).join(SentenceEncoding)
        .where(Sentence.concept_id == concept_id, SentenceEncoding.encoder_id == encoder_id)
        .order_by(Sentence.id)))


class CheckReport(list):
    """The problems check_bank found, one line each (an empty list: the bank is sound), and in
    `checked` how much it looked at, by what it counts."""

    def __init__(self):
        super().__init__()
        self.checked = {"schema_version": None, "sentences": 0, "statistics": 0, "directions": 0,
                        "re_embedded": 0, "compared_whole": 0, "compared_by_sample": 0, "imported_means": 0}

    def summary(self) -> str:
        """What was checked, in one line."""
        c = self.checked
        line = (f"checked schema {c['schema_version']}, {c['sentences']} sentence hashes, {c['statistics']} "
                f"statistics (concept x encoder) and {c['directions']} directions")
        if c["re_embedded"] or c["compared_whole"] or c["compared_by_sample"]:
            line += (f"; re-embedded {c['re_embedded']} sentences: {c['compared_whole']} means compared whole, "
                     f"{c['compared_by_sample']} by a sample")
        if c["imported_means"]:
            line += f"; {c['imported_means']} imported means have no sentences to re-embed"
        return line


def check_bank(bank: Bank, deep: bool = False, sample: int = 64,
               load_encoder: Callable[[EncoderInfo], TextEncoder] | None = None, seed: int = 0) -> CheckReport:
    """Every problem found, one line each (an empty list: the bank is sound), and what was
    checked. With `deep`, up to `sample` sentences per concept are embedded again: all of them
    are compared with the stored mean exactly (atol 1e-4) when the sample is the whole concept,
    else by a 6-sigma test."""
    import numpy as np

    from direction_bank.store.stats import RunningStats, blob_to_tensor

    problems = CheckReport()
    checked = problems.checked
    version = bank.db.schema_version()
    checked["schema_version"] = version
    if version != migrations.HEAD:
        problems.append(f"schema version {version}, expected {migrations.HEAD}")
    rng = random.Random(seed)
    encoders = {}
    with bank.db.reading() as session:
        for sentence_id, text, stored in session.execute(select(Sentence.id, Sentence.text, Sentence.content_hash)):
            checked["sentences"] += 1
            if content_hash(text) != stored:
                problems.append(f"sentence #{sentence_id}: content hash does not match its text")
        rows = session.execute(select(Concept, Statistics).join(Statistics)).all()
        for concept, stats_row in rows:
            info = encoders.setdefault(stats_row.encoder_id, EncoderInfo.of(session.get(Encoder, stats_row.encoder_id)))
            where = f"{concept.name} ({info.model})"
            checked["statistics"] += 1
            if session.get(Moments, (concept.id, info.id)) is None:
                problems.append(f"{where}: statistics without their tensors")
                continue
            try:
                stats = read_statistics(session, concept.id, info)
            except DamagedData:  # one bad row never stops the others from being checked
                problems.append(f"{where}: stored statistics of the wrong size for {list(info.sample_shape)}")
                continue
            encoded = session.scalar(
                select(func.count()).select_from(SentenceEncoding).join(Sentence)
                .where(Sentence.concept_id == concept.id, SentenceEncoding.encoder_id == info.id))
            if stats.count != encoded and not (concept.origin and stats.count >= encoded):
                problems.append(f"{where}: statistics count {stats.count}, but {encoded} sentences are in them")
            if not (np.isfinite(stats.mean).all() and np.isfinite(stats.m2).all()) or (stats.m2 < 0).any():
                problems.append(f"{where}: statistics hold NaN, infinite or negative values")
                continue
            if (np.abs(stats.mean) > MAX_ABS_VALUE).any():
                problems.append(f"{where}: the mean holds values past {MAX_ABS_VALUE:g}: not an embedding mean")
            norm = float(np.linalg.norm(stats.mean))
            if not abs(norm - stats_row.mean_norm) <= 1e-3 * max(1.0, norm):  # also catches a NaN norm
                problems.append(f"{where}: stored mean norm does not match the mean")
            if deep and concept.origin:
                checked["imported_means"] += 1
            if deep and encoded and not concept.origin:
                texts = _encoded_sentences(session, concept.id, info.id)
                chosen = texts if len(texts) <= sample else rng.sample(texts, sample)
                fresh = RunningStats.of(load_encoder(info).embed(chosen))
                checked["re_embedded"] += len(chosen)
                checked["compared_whole" if len(chosen) == len(texts) else "compared_by_sample"] += 1
                if len(chosen) == len(texts):
                    if not np.allclose(fresh.mean, stats.mean, atol=1e-4):
                        problems.append(f"{where}: re-embedded sentences do not give the stored mean")
                else:
                    error = np.sqrt(stats.variance() / len(chosen)) + 1e-4
                    if (np.abs(fresh.mean - stats.mean) > 6 * error).any():
                        problems.append(f"{where}: a re-embedded sample is far from the stored mean")
        for name, blob, encoder_id in session.execute(select(Direction.name, Direction.tensor, Direction.encoder_id)):
            info = encoders.get(encoder_id) or EncoderInfo.of(session.get(Encoder, encoder_id))
            checked["directions"] += 1
            try:
                tensor = blob_to_tensor(blob, info.sample_shape)
            except DamagedData:
                problems.append(f"direction {name}: tensor of the wrong size for {list(info.sample_shape)}")
                continue
            if not np.isfinite(tensor).all():
                problems.append(f"direction {name}: NaN or infinite values")
            elif (np.abs(tensor) > 2 * MAX_ABS_VALUE).any():
                problems.append(f"direction {name}: values past {2 * MAX_ABS_VALUE:g}: not a difference of means")
        problems.extend(history_problems(session))
    return problems


def repair_direction_histories(bank: Bank) -> list[str]:
    """Mend split and orphaned direction histories without losing a version (see
    histories.repair_histories); returns what was done."""
    return bank.db.write(repair_histories)


def repair_statistics(bank: Bank, load_encoder: Callable[[EncoderInfo], TextEncoder],
                      batch_size: int = 64) -> list[str]:
    """Recompute every concept's statistics from its stored sentences (re-embedding them with each
    encoder that had statistics); returns what was rebuilt. Imported means without sentences are
    left alone."""
    from direction_bank.store.stats import RunningStats

    with bank.db.reading() as session:
        pairs = [(c.name, c.id, EncoderInfo.of(e)) for c, e in session.execute(
            select(Concept, Encoder).join(Statistics, Statistics.concept_id == Concept.id)
            .join(Encoder, Encoder.id == Statistics.encoder_id).where(Concept.origin.is_(None)))]
    rebuilt = []
    for name, concept_id, info in pairs:
        encoder = load_encoder(info)

        def rebuild(session, name=name, concept_id=concept_id, info=info, encoder=encoder) -> int:
            lock_concept(session, name)
            rows = session.execute(select(Sentence.id, Sentence.text).where(Sentence.concept_id == concept_id)
                                   .order_by(Sentence.id)).all()
            stats = RunningStats.empty(info.sample_shape)
            for start in range(0, len(rows), batch_size):
                stats = stats.add(encoder.embed([t for _, t in rows[start:start + batch_size]], batch_size))
            session.execute(SentenceEncoding.__table__.delete().where(
                SentenceEncoding.encoder_id == info.id,
                SentenceEncoding.sentence_id.in_(select(Sentence.id).where(Sentence.concept_id == concept_id))))
            session.add_all(SentenceEncoding(sentence_id=sid, encoder_id=info.id) for sid, _ in rows)
            write_statistics(session, concept_id, info, stats)
            return len(rows)

        count = bank.db.write(rebuild)
        rebuilt.append(f"{name} ({info.model}): statistics rebuilt from {count} sentences")
    return rebuilt


def backup_bank(bank: Bank, destination: str | Path, overwrite: bool = False) -> Path:
    """A consistent copy of a SQLite bank, safe while other processes write to it, written
    atomically (see output_files.write_output)."""
    import sqlite3

    source = sqlite_path(bank.db.url)
    if source is None:
        raise BankError("backup copies SQLite banks; for PostgreSQL use pg_dump")
    target = Path(destination).expanduser()
    own = [source, source.with_name(source.name + "-wal"), source.with_name(source.name + "-shm")]
    if any(target.resolve() == path.resolve() or (target.exists() and path.exists() and target.samefile(path))
           for path in own):
        raise BankError(f"{destination} is the bank itself; back it up to another file")

    def copy_to(temporary: Path) -> None:
        live, copy = sqlite3.connect(source, timeout=60), sqlite3.connect(temporary)
        try:
            live.backup(copy)
        finally:
            copy.close()
            live.close()

    return write_output(destination, copy_to, overwrite)
