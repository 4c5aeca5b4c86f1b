"""Bank: the Python API over a bank database; the CLI is a thin face over it.

A sentence flows generator -> cleaning -> encoder -> stats -> db, one transaction per batch, so an
interrupted run loses at most the batch in flight. A direction flows db -> stats -> caller.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from sqlalchemy import func, select
from sqlalchemy.exc import NoSuchModuleError

from db.engine import BankUnavailable, Database, NoDatabase, database_url
from db.models import (
    Concept,
    Direction,
    Encoder,
    Moments,
    Sentence,
    SentenceEncoding,
    Statistics,
)
from direction_bank.cleaning import (
    SentenceCleaner,
    concept_pattern,
    content_hash,
    has_control_characters,
    normalise,
    swap_concept,
)
from direction_bank.errors import (
    BankError,
    DirectionChanged,
    EncoderMismatch,
    NameTaken,
    UnknownConcept,
    UnknownDirection,
    UnknownVersion,
    first_line,
)
from direction_bank.generators.base import (
    FILE_PROVENANCE,
    Provenance,
    SentenceGenerator,
)
from direction_bank.names import check_direction_name, check_name
from direction_bank.progress import progress_bar, progress_counter
from direction_bank.storage import (
    DirectionResult,
    EncoderInfo,
    add_direction,
    latest_direction_version,
    lock_concept,
    lock_direction_names,
    read_statistics,
    write_statistics,
)

# numpy (and the modules built on it) is imported inside the methods that compute, so that
# listing commands start without it: `dbank concepts` must answer in under half a second.
if TYPE_CHECKING:
    import numpy as np

    from direction_bank.encoder import TextEncoder
    from direction_bank.stats import RunningStats

DEFAULT_BATCH_SIZE = 64


def round_seed(concept: str, stored_hashes) -> int:
    """The seed of a generation round: 0 for an empty concept, else derived from the sentences
    it holds, so a continuation samples new candidates and an identical rerun the same ones."""
    import hashlib

    if not stored_hashes:
        return 0
    digest = hashlib.sha256("\n".join([concept, *sorted(stored_hashes)]).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


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
    import re

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
        raise UnknownDirection(f"no direction named {reference!r} in the bank")
    return row


def default_database() -> Path:
    """The bank file used when none is named: bank.db in the user data directory."""
    import platformdirs

    return platformdirs.user_data_path("dbank") / "bank.db"


@dataclass
class AddReport:
    """What an add did: sentences added, skipped as duplicates, backfilled, truncated, and for
    generated ones the candidates tried, why the dropped ones went, and the LLM token usage."""

    concept: str
    added: int = 0
    skipped: int = 0
    backfilled: int = 0
    refused: int = 0  # lines holding control characters, never stored
    off_concept: int = 0  # given lines that do not name the concept (stored unless required)
    truncated: list[str] = field(default_factory=list)
    sentence_count: int = 0
    target: int | None = None
    tried: int = 0
    dropped: dict = field(default_factory=dict)
    usage: dict | None = None

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class ConceptSummary:
    """A concept with its sentence count and the encoders whose statistics it has."""

    name: str
    sentence_count: int
    encoders: list[dict]

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return {"name": self.name, "sentence_count": self.sentence_count, "encoders": self.encoders}


@dataclass(frozen=True)
class SentenceRecord:
    """A stored sentence and its provenance."""

    id: int
    text: str
    generator: str
    generator_model: str | None
    created_at: str

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


class Bank:
    """A bank of concepts (sentences and embedding statistics) and named directions."""

    def __init__(
        self,
        database: str | os.PathLike | None = None,
        *,
        create: bool = True,
        read_only: bool = False,
        busy_timeout_s: float | None = None,
    ):
        """Open the bank at a path or SQLAlchemy URL (default: the user data directory).

        With create=False a missing bank is an error and no file is made; read_only also never
        writes to the file (another program's database is refused either way, untouched)."""
        url = database_url(database if database is not None else default_database())
        try:
            self.db = Database(url, create=create, read_only=read_only, busy_timeout_s=busy_timeout_s)
        except (ModuleNotFoundError, NoSuchModuleError) as error:  # mysql://, a driver not installed
            raise BankError(f"cannot open {url.split('://')[0]}:// banks here ({first_line(error)}); dbank "
                            "keeps banks in SQLite (a path) or PostgreSQL (pip install -e '.[postgres]')") from None
        except NoDatabase as error:
            raise BankError(f"{error} (add a concept first: dbank add-concept NAME)") from None
        except BankUnavailable as error:
            raise BankError(str(error)) from None

    def close(self) -> None:
        """Release the database connections."""
        self.db.dispose()

    def __enter__(self) -> Bank:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- encoders -------------------------------------------------------------------------

    def _fingerprint(self, encoder: TextEncoder) -> str:
        """The SHA-256 of the encoder's weights, reused when the bank hashed this file before."""
        def known(sig: str) -> str | None:
            with self.db.reading() as session:
                return session.scalar(
                    select(Encoder.fingerprint).where(Encoder.weights_signature == sig).limit(1)
                )

        return encoder.fingerprint(known)

    def encoder_id(self, encoder: TextEncoder) -> int | None:
        """The bank's id of a loaded encoder, None when it has never used it (writes nothing)."""
        with self.db.reading() as session:
            return session.scalar(select(Encoder.id).where(Encoder.fingerprint == self._fingerprint(encoder)))

    def register_encoder(self, encoder: TextEncoder) -> EncoderInfo:
        """The bank's record of a loaded encoder, created on first use (weights hashed once)."""
        signature = encoder.weights_signature()
        fingerprint = self._fingerprint(encoder)

        def record(session) -> EncoderInfo:
            row = session.scalar(select(Encoder).where(Encoder.fingerprint == fingerprint))
            if row is None:
                row = Encoder(
                    model=encoder.model,
                    encoder_class=encoder.encoder_class,
                    hidden_size=encoder.hidden_size,
                    max_length=encoder.max_length,
                    pooled_size=encoder.pooled_size or None,
                    fingerprint=fingerprint,
                    weights_signature=signature,
                )
                session.add(row)
                session.flush()
            elif signature and row.weights_signature != signature:
                row.weights_signature = signature
            return EncoderInfo.of(row)

        return self.db.write(record)

    def encoders(self) -> list[EncoderInfo]:
        """Every encoder the bank has seen."""
        with self.db.reading() as session:
            return [EncoderInfo.of(row) for row in session.scalars(select(Encoder).order_by(Encoder.id))]

    # -- adding ---------------------------------------------------------------------------

    def add_sentences(
        self,
        concept: str,
        sentences: Iterable[str],
        encoder: TextEncoder,
        provenance: Provenance = FILE_PROVENANCE,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool = False,
        require_concept: bool = False,
    ) -> AddReport:
        """Embed and store the sentences not yet stored for the concept (by content hash). Lines
        that do not name the concept are counted in `off_concept`, and with `require_concept`
        not stored."""
        concept = check_name(concept)
        info = self.register_encoder(encoder)
        report = AddReport(concept)
        stored = self._stored_hashes(concept)
        names_it = concept_pattern(concept)
        new_texts, new_hashes = [], []
        for text in sentences:
            text = normalise(text)
            if not text:
                continue
            if has_control_characters(text):
                report.refused += 1
                continue
            if not names_it.search(text):
                report.off_concept += 1
                if require_concept:
                    continue
            key = content_hash(text)
            if key in stored:
                report.skipped += 1
                continue
            stored.add(key)
            new_texts.append(text)
            new_hashes.append(key)
        self._backfill(concept, encoder, info, batch_size, report, progress)
        batches = range(0, len(new_texts), batch_size)
        for start in progress_bar(batches, enabled=progress, desc="adding", unit="batch"):
            texts = new_texts[start : start + batch_size]
            hashes = new_hashes[start : start + batch_size]
            self._embed_and_store(concept, texts, hashes, encoder, info, provenance, report)
        report.sentence_count = self.sentence_count(concept)
        return report

    def fill_concept(
        self,
        concept: str,
        generator: SentenceGenerator,
        target: int,
        encoder: TextEncoder,
        batch_size: int = DEFAULT_BATCH_SIZE,
        cleaner: SentenceCleaner | None = None,
        max_candidates: int | None = None,
        max_idle_rounds: int = 5,
        progress: bool = False,
        on_batch: Callable[[int], None] | None = None,
    ) -> AddReport:
        """Generate, clean, embed and store sentences until the concept holds `target` of them,
        the generator runs dry, `max_candidates` (default 10x target) were tried, or
        `max_idle_rounds` generator batches in a row gave nothing usable (not even a repeat).
        Each batch commits on its own, so an interrupted run loses at most one batch and a rerun
        continues; `on_batch(sentences stored)` is called after each (a worker renews its lease)."""
        concept = check_name(concept)
        info = self.register_encoder(encoder)
        report = AddReport(concept, target=target)
        self._backfill(concept, encoder, info, batch_size, report, progress)
        cleaner = cleaner or SentenceCleaner(encoder.token_counts, info.max_length)
        stored = self._stored_hashes(concept)
        budget = max_candidates if max_candidates is not None else max(10 * target, 100)
        tried = idle = 0
        if len(stored) < target:
            cleaner.remember(self._stored_texts(concept))
            bar = progress_counter(target, len(stored), enabled=progress, desc="sentences kept",
                                   unit="sent")
            for candidates in generator.batches(concept, batch_size, round_seed(concept, stored)):
                tried += len(candidates)
                repeats = cleaner.report.dropped["duplicate"]
                texts = cleaner.clean(candidates, concept, stored)[: target - len(stored)]
                repeats = cleaner.report.dropped["duplicate"] - repeats
                for start in range(0, len(texts), batch_size):
                    chunk = texts[start : start + batch_size]
                    hashes = [content_hash(text) for text in chunk]
                    self._embed_and_store(
                        concept, chunk, hashes, encoder, info, generator.provenance, report
                    )
                    stored.update(hashes)
                    bar.update(len(chunk))
                    if on_batch is not None:
                        on_batch(len(stored))
                # a resumed run first meets what it stored before: that is not idling
                idle = 0 if texts or repeats else idle + 1
                if len(stored) >= target or tried >= budget or idle >= max_idle_rounds:
                    break
            bar.close()
        report.tried = tried
        report.dropped = dict(cleaner.report.dropped)
        report.usage = getattr(generator, "usage", None)
        report.sentence_count = self.sentence_count(concept)
        return report

    def _backfill(self, concept, encoder, info, batch_size, report, progress) -> None:
        """Embed the concept's stored sentences that this encoder's statistics lack."""
        with self.db.reading() as session:
            rows = session.execute(
                select(Sentence.id, Sentence.text)
                .join(Concept)
                .where(Concept.name == concept)
                .where(
                    ~select(SentenceEncoding.sentence_id)
                    .where(SentenceEncoding.sentence_id == Sentence.id)
                    .where(SentenceEncoding.encoder_id == info.id)
                    .exists()
                )
                .order_by(Sentence.id)
            ).all()
        batches = range(0, len(rows), batch_size)
        for start in progress_bar(batches, enabled=progress, desc="backfilling", unit="batch"):
            batch = rows[start : start + batch_size]
            embeddings = encoder.embed([text for _, text in batch], batch_size)

            def store(session, batch=batch, embeddings=embeddings) -> int:
                concept_row = lock_concept(session, concept)
                done = set(
                    session.scalars(
                        select(SentenceEncoding.sentence_id).where(
                            SentenceEncoding.encoder_id == info.id,
                            SentenceEncoding.sentence_id.in_([sid for sid, _ in batch]),
                        )
                    )
                )
                keep = [i for i, (sid, _) in enumerate(batch) if sid not in done]
                session.add_all(
                    SentenceEncoding(sentence_id=batch[i][0], encoder_id=info.id) for i in keep
                )
                self._merge_statistics(session, concept_row.id, info, embeddings[keep])
                return len(keep)

            report.backfilled += self.db.write(store)

    def _embed_and_store(self, concept, texts, hashes, encoder, info, provenance, report) -> None:
        """Embed one batch of new sentences and store them with the statistics, atomically."""
        counts = encoder.token_counts(texts)
        report.truncated.extend(t for t, n in zip(texts, counts) if n > info.max_length)
        embeddings = encoder.embed(texts, len(texts))

        def store(session) -> int:
            concept_row = lock_concept(session, concept, create=True)
            # another writer may have stored some of these since we looked
            taken = set(
                session.scalars(
                    select(Sentence.content_hash).where(
                        Sentence.concept_id == concept_row.id, Sentence.content_hash.in_(hashes)
                    )
                )
            )
            keep = [i for i, key in enumerate(hashes) if key not in taken]
            rows = [
                Sentence(
                    concept_id=concept_row.id,
                    text=texts[i],
                    content_hash=hashes[i],
                    generator=provenance.generator,
                    generator_model=provenance.model,
                    prompt_version=provenance.prompt_version,
                    settings=provenance.settings or None,
                )
                for i in keep
            ]
            session.add_all(rows)
            session.flush()
            session.add_all(SentenceEncoding(sentence_id=row.id, encoder_id=info.id) for row in rows)
            self._merge_statistics(session, concept_row.id, info, embeddings[keep])
            return len(keep)

        added = self.db.write(store)
        report.added += added
        report.skipped += len(texts) - added

    @staticmethod
    def _merge_statistics(session, concept_id: int, info: EncoderInfo, embeddings: np.ndarray) -> None:
        from direction_bank.stats import RunningStats

        if len(embeddings) == 0:
            return
        current = read_statistics(session, concept_id, info) or RunningStats.empty(info.sample_shape)
        write_statistics(session, concept_id, info, current.add(embeddings))

    # -- reading --------------------------------------------------------------------------

    def _stored_hashes(self, concept: str) -> set[str]:
        with self.db.reading() as session:
            return set(
                session.scalars(
                    select(Sentence.content_hash).join(Concept).where(Concept.name == concept)
                )
            )

    def _stored_texts(self, concept: str) -> list[str]:
        with self.db.reading() as session:
            return list(
                session.scalars(select(Sentence.text).join(Concept).where(Concept.name == concept))
            )

    def sentence_count(self, concept: str) -> int:
        """How many sentences the concept holds (0 for an unknown concept)."""
        with self.db.reading() as session:
            return session.scalar(
                select(func.count(Sentence.id)).join(Concept).where(Concept.name == concept)
            )

    def concepts(self) -> list[ConceptSummary]:
        """Every concept, by name, with sentence counts and per-encoder statistics counts."""
        with self.db.reading() as session:
            counts = session.execute(
                select(Concept.id, Concept.name, func.count(Sentence.id))
                .outerjoin(Sentence)
                .where(Concept.trash_id.is_(None))
                .group_by(Concept.id)
                .order_by(Concept.name)
            ).all()
            per_encoder: dict[int, list[dict]] = {}
            for concept_id, model, hidden, count in session.execute(
                select(Statistics.concept_id, Encoder.model, Encoder.hidden_size, Statistics.count)
                .join(Encoder)
            ):
                per_encoder.setdefault(concept_id, []).append(
                    {"model": model, "hidden_size": hidden, "count": count}
                )
        return [
            ConceptSummary(name, count, per_encoder.get(concept_id, []))
            for concept_id, name, count in counts
        ]

    def _concept_id(self, session, concept: str) -> int:
        concept_id = session.scalar(select(Concept.id).where(Concept.name == check_name(concept)))
        if concept_id is None:
            raise UnknownConcept(f"no concept named {concept!r} in the bank")
        return concept_id

    def describe(self, concept: str, sample: int = 5) -> dict:
        """A concept's sentence count, per-encoder statistics and a few sentences."""
        with self.db.reading() as session:
            concept_id = self._concept_id(session, concept)
            count = session.scalar(
                select(func.count(Sentence.id)).where(Sentence.concept_id == concept_id)
            )
            encoders = [
                {**EncoderInfo.of(encoder).as_dict(), "count": n, "mean_norm": norm}
                for encoder, n, norm in session.execute(
                    select(Encoder, Statistics.count, Statistics.mean_norm)
                    .join(Statistics)
                    .where(Statistics.concept_id == concept_id)
                )
            ]
            examples = session.scalars(
                select(Sentence.text)
                .where(Sentence.concept_id == concept_id)
                .order_by(Sentence.id)
                .limit(sample)
            ).all()
        return {
            "name": check_name(concept),
            "sentence_count": count,
            "encoders": encoders,
            "sentences": list(examples),
        }

    def sentences(self, concept: str) -> list[SentenceRecord]:
        """Every stored sentence of the concept, oldest first."""
        with self.db.reading() as session:
            concept_id = self._concept_id(session, concept)
            rows = session.scalars(
                select(Sentence).where(Sentence.concept_id == concept_id).order_by(Sentence.id)
            ).all()
            return [
                SentenceRecord(r.id, r.text, r.generator, r.generator_model, r.created_at.isoformat())
                for r in rows
            ]

    def statistics(self, concept: str, encoder: EncoderInfo) -> RunningStats:
        """The concept's embedding statistics under an encoder."""
        with self.db.reading() as session:
            concept_id = self._concept_id(session, concept)
            stats = read_statistics(session, concept_id, encoder)
            if stats is None:
                raise EncoderMismatch(
                    f"concept {concept!r} has no embeddings from {encoder.model!r}"
                )
            return stats

    def _encoders_of(self, session, concept: str) -> dict[int, EncoderInfo]:
        concept_id = self._concept_id(session, concept)
        rows = session.scalars(
            select(Encoder).join(Statistics).where(Statistics.concept_id == concept_id)
        ).all()
        if not rows:
            raise BankError(f"concept {concept!r} has no embedded sentences yet")
        return {row.id: EncoderInfo.of(row) for row in rows}

    def common_encoder(self, source: str, target: str, model: str | None = None,
                       preferred: str | None = None) -> EncoderInfo:
        """The encoder whose statistics both concepts have: the one named `model` (none other), or
        when several are shared the one named `preferred` (a default such as DBANK_MODEL)."""
        with self.db.reading() as session:
            a = self._encoders_of(session, source)
            b = self._encoders_of(session, target)
        common = [a[i] for i in a.keys() & b.keys()]
        if model is None and preferred is not None and len(common) > 1:
            model = preferred if any(e.model == preferred for e in common) else None
        if model is not None:
            common = [e for e in common if e.model == model]
        if len(common) == 1:
            return common[0]
        if not common:
            describe = lambda encs: ", ".join(e.describe() for e in encs.values())
            raise EncoderMismatch(
                f"{source!r} and {target!r} were embedded by different text encoders "
                f"({source}: {describe(a)}; {target}: {describe(b)}); "
                "add both concepts with the same --model"
                + (f" (none match --model {model})" if model else "")
            )
        if source == target:
            raise EncoderMismatch(f"{source!r} has statistics from several encoders; pick one with --model")
        raise EncoderMismatch(
            f"{source!r} and {target!r} share several encoders; pick one with --model"
        )

    # -- directions -----------------------------------------------------------------------

    def diff(self, source: str, target: str, model: str | None = None,
             preferred: str | None = None) -> DirectionResult:
        """The direction target mean minus source mean, [1, max_length, D] float32, with how far
        to trust it (see confidence.difference_confidence)."""

        from direction_bank.confidence import difference_confidence

        encoder = self.common_encoder(source, target, model, preferred)
        a = self.statistics(source, encoder)
        b = self.statistics(target, encoder)
        source, target = check_name(source), check_name(target)
        return DirectionResult.of_sample(
            b.mean - a.mean, encoder, source, target, a.count, b.count,
            confidence=difference_confidence(a, b),
            recipe={"diff": {"source": source, "target": target}},
        )

    def paired_diff(self, source: str, target: str, encoder: TextEncoder,
                    batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = False) -> DirectionResult:
        """The mean over counterfactual pairs of E(sentence naming target) - E(same sentence naming
        source): each concept's own sentences with the concept word swapped for the other's, so
        the direction carries the concept change, not the difference between the two contexts."""

        from direction_bank.confidence import paired_confidence
        from direction_bank.stats import RunningStats

        source, target = check_name(source), check_name(target)
        info = self.register_encoder(encoder)
        before, after = [], []
        for own, other, forward in ((source, target, True), (target, source, False)):
            for record in self.sentences(own):
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

    def similar(self, concept: str, limit: int = 10, model: str | None = None) -> list[dict]:
        """The concepts nearest to `concept`: cosine similarity of their token-averaged means,
        centred on the average over every concept of the same encoder."""
        import numpy as np

        from direction_bank.stats import DamagedData, blob_to_tensor

        encoder = self.common_encoder(concept, concept, model)
        names, vectors = [], []
        with self.db.reading() as session:
            for name, mean in session.execute(
                select(Concept.name, Moments.mean)
                .join(Moments, Moments.concept_id == Concept.id)
                .where(Moments.encoder_id == encoder.id, Concept.trash_id.is_(None))
            ):
                try:
                    tokens, _ = encoder.split(blob_to_tensor(mean, encoder.sample_shape))
                    vector = tokens[1:].astype(np.float64).mean(axis=0)
                except DamagedData:
                    vector = None
                if vector is not None and np.isfinite(vector).all():  # damaged rows: `dbank check` lists them
                    names.append(name)
                    vectors.append(vector)
        if check_name(concept) not in names:
            raise DamagedData(f"the statistics of {concept!r} are damaged; run dbank check")
        matrix = np.stack(vectors)
        matrix -= matrix.mean(axis=0)
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        similarity = matrix @ matrix[names.index(check_name(concept))]
        order = [i for i in np.argsort(-similarity) if names[i] != check_name(concept)]
        return [{"name": names[i], "similarity": float(similarity[i])} for i in order[:limit]]

    def save_direction(self, name: str, direction: DirectionResult, overwrite: bool = False) -> DirectionResult:
        """Store the direction under a name. A name in use is refused unless `overwrite`, which
        stores it as the name's next version and keeps every earlier one (see direction_history);
        saving the current version's very tensor and recipe again stores nothing."""
        name = check_direction_name(name)

        def store(session) -> int:
            latest = latest_direction_version(session, name)
            if latest and not overwrite:
                raise direction_name_taken(name)
            if latest:
                current = session.scalar(select(Direction).where(Direction.name == name,
                                                                 Direction.version == latest))
                if (current.fingerprint == direction.fingerprint and current.recipe == direction.recipe
                        and current.encoder_id == direction.encoder.id):
                    return latest
            return add_direction(session, name, direction, latest + 1)

        return replace(direction, name=name, version=self.db.write(store))

    def direction(self, name: str) -> DirectionResult:
        """A saved direction by name: its current version, or version N as 'NAME@N'."""
        from direction_bank.confidence import halving_estimate
        from direction_bank.stats import blob_to_tensor

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
                counts_now=self._counts_now(session, row.source, row.target, row.encoder_id),
                tuning=(row.tuning or [None])[-1],
            )

    def add_tuning(self, direction: DirectionResult, tuning: dict) -> dict:
        """Keep `tuning` (dbank tune's chosen scale and xa_guidance, with its scores and rule) on
        the very version of a saved direction it measured, after that version's earlier tunings
        (the newest is the one edits use). The version must still hold the measured tensor (by
        fingerprint): else DirectionChanged and nothing is stored. Returns it as stored (checked;
        see file_metadata.Tuning), with the version and fingerprint it was measured on."""
        from direction_bank.file_metadata import checked_tuning

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

    def directions(self) -> list[dict]:
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
                now = self._counts_now(session, s, t, encoder_id)
                made = {"source": source_count, "target": target_count}
                listed.append({"name": n, "version": v, "source": s, "target": t, "norm": norm, "snr": snr,
                               "model": m, "concepts_changed": any(now[r] != made[r] for r in now)})
        return listed

    def direction_history(self, name: str) -> list[dict]:
        """Every version of a direction name, oldest first: when, recipe, norm, fingerprint, and
        for a direction made from concepts the sentence counts it was made from against what
        those concepts hold now (`concepts_changed`)."""
        name = check_name(name, "direction")
        with self.db.reading() as session:
            rows = session.scalars(select(Direction).where(Direction.name == name).order_by(Direction.version)).all()
            if not rows:
                raise UnknownDirection(f"no direction named {name!r} in the bank")
            history = []
            for row in rows:
                now = self._counts_now(session, row.source, row.target, row.encoder_id)
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
        import re

        name = re.sub(r"@\d+$", "", name)
        versions = self.direction_history(name)
        matching = [v for v in versions if fingerprint is None or v["fingerprint"] == fingerprint]
        if not matching:
            raise UnknownDirection(f"no version of the direction {name!r} in the bank is the one the edit used "
                                   f"(fingerprint {fingerprint[:12]}); import that direction first")
        newest = matching[-1]
        return (name, True) if newest["current"] else (f"{name}@{newest['version']}", False)

    @staticmethod
    def _counts_now(session, source: str | None, target: str | None, encoder_id: int) -> dict:
        """How many sentences the source's and target's statistics under an encoder hold now
        (None: none), by role; {} for a direction made from no concepts."""
        return {role: session.scalar(select(Statistics.count).join(Concept).where(
                    Concept.name == concept, Statistics.encoder_id == encoder_id))
                for role, concept in (("source", source), ("target", target)) if concept}

    def restore_direction_version(self, name: str, version: int) -> DirectionResult:
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
        return self.direction(name)

    def compose_direction(self, name: str, parts: list[tuple[str, float]], overwrite: bool = False) -> DirectionResult:
        """Store sum(weight * direction) of saved directions (all from one encoder, each by name
        or 'NAME@VERSION') as `name` (a name in use: see save_direction)."""
        import numpy as np

        check_direction_name(name)
        if not parts:
            raise BankError("name at least one direction to add")
        loaded = [(self.direction(part), weight) for part, weight in parts]
        encoder = loaded[0][0].encoder
        for direction, _ in loaded:
            if direction.encoder.id != encoder.id:
                raise EncoderMismatch(
                    f"{direction.name!r} comes from {direction.encoder.describe()}, "
                    f"{loaded[0][0].name!r} from {encoder.describe()}: they cannot be added"
                )
        total = sum(weight * d.sample().astype(np.float64) for d, weight in loaded)
        recipe = {"sum": [[_reference(d), weight] for d, weight in loaded]}
        return self.save_direction(name, DirectionResult.of_sample(total, encoder, recipe=recipe), overwrite)

    def rename_direction(self, old: str, new: str) -> int:
        """Give every version of the direction named exactly `old` the name `new` (see
        histories.rename_direction); returns the versions renamed."""
        from direction_bank.histories import rename_direction

        return self.db.write(lambda session: rename_direction(session, old, new))

    def remove_direction(self, name: str) -> int:
        """Move a saved direction, every version of it, to the trash; returns the versions moved."""
        from direction_bank.trash import trash_direction

        return self.db.write(lambda session: trash_direction(session, check_name(name, "direction")))

    # -- sharing --------------------------------------------------------------------------

    def export_direction(self, direction: str | DirectionResult, path: str | os.PathLike,
                         overwrite: bool = False, names_only: bool = False) -> dict:
        """Write a saved direction (by name) or a fresh one to a dbank file; returns its metadata.
        An existing file is replaced only with `overwrite` (see output_files.write_output); with
        `names_only` models are named without their folders (a server's download)."""
        from direction_bank.sharing import export_direction

        if isinstance(direction, str):
            direction = self.direction(direction)
        return export_direction(self, direction, path, overwrite, names_only)

    def export_concept(self, concept: str, path: str | os.PathLike, model: str | None = None,
                       overwrite: bool = False, names_only: bool = False) -> dict:
        """Write a concept bundle (statistics and sentences) for another bank to import and extend."""
        from direction_bank.sharing import export_concept

        return export_concept(self, concept, self.common_encoder(concept, concept, model), path, overwrite,
                              names_only)

    def import_file(self, file, encoder: TextEncoder, name: str | None = None,
                    strict: bool = False, count: int | None = None, overwrite: bool = False):
        """Import a dbank direction or concept file, or a pix2pix-zero concept mean (.pt), given
        as a path or an already validated files.SharedFile, checked against `encoder`; returns
        an ImportReport. A name in use is refused unless `overwrite` (see sharing.import_file)."""
        from direction_bank.files import SharedFile, read_shared_file
        from direction_bank.sharing import PIX2PIX_ZERO_SENTENCES, import_file

        shared = file if isinstance(file, SharedFile) else read_shared_file(file)
        return import_file(self, shared, self.register_encoder(encoder), name, strict,
                           count or PIX2PIX_ZERO_SENTENCES, overwrite)

    def name_in_use(self, kind: str, name: str) -> bool:
        """Whether a direction (kind 'direction') or a concept (any other kind) has this name."""
        from direction_bank.sharing import name_in_use

        return name_in_use(self, kind, check_name(name, kind))

    def lookalike(self, kind: str, name: str) -> str | None:
        """A direction (kind 'direction') or concept name in the bank that `name` differs from
        only by look-alike characters ('hоrse' with a Cyrillic о against 'horse'), or None."""
        from direction_bank.names import lookalike

        table = Direction if kind == "direction" else Concept
        with self.db.reading() as session:
            names = session.scalars(select(table.name).where(table.trash_id.is_(None)).distinct()).all()
        return lookalike(check_name(name, kind), names)

    def earlier_import(self, shared, name: str | None = None) -> str | None:
        """The name a shared file (same bytes) was imported under and still holds, unless `name`
        asks for another one (importing it again is then a no-op); else None."""
        from direction_bank.sharing import earlier_import

        return earlier_import(self, shared, name)

    # -- removing -------------------------------------------------------------------------

    def remove_concept(self, concept: str) -> int:
        """Move a concept (sentences and statistics) to the trash; returns its sentence count."""
        from direction_bank.trash import trash_concept

        return self.db.write(lambda session: trash_concept(session, check_name(concept)))

    def remove_sentence(
        self,
        concept: str,
        load_encoder: Callable[[EncoderInfo], TextEncoder],
        text: str | None = None,
        sentence_id: int | None = None,
    ) -> SentenceRecord:
        """Move one sentence to the trash and take its embedding out of every encoder's
        statistics (re-embedding it with each encoder, so no other sentence is needed). Under
        any interleaving of writers it is taken out once: a second remover is told it is gone."""
        from direction_bank.trash import trash_sentence

        concept = check_name(concept)
        embeddings: dict[int, np.ndarray] = {}
        while True:
            record, infos = self._sentence_and_encoders(concept, text, sentence_id)
            for info in infos:
                if info.id in embeddings:
                    continue
                encoder = load_encoder(info)
                if self.register_encoder(encoder).id != info.id:
                    raise EncoderMismatch(
                        f"the weights at {info.model!r} are no longer the ones this bank embedded "
                        "with; cannot take the sentence out of those statistics"
                    )
                embeddings[info.id] = encoder.embed([record.text])
            removed = self.db.write(lambda session: trash_sentence(session, concept, record.id, embeddings))
            if removed is not None:  # else another encoder embedded it meanwhile: embed with that one too
                return record

    def _sentence_and_encoders(self, concept: str, text: str | None,
                               sentence_id: int | None) -> tuple[SentenceRecord, list[EncoderInfo]]:
        """A stored sentence (by id or text) and the encoders whose statistics hold it."""
        with self.db.reading() as session:
            concept_id = self._concept_id(session, concept)
            query = select(Sentence).where(Sentence.concept_id == concept_id)
            if sentence_id is not None:
                query = query.where(Sentence.id == sentence_id)
            else:
                query = query.where(Sentence.content_hash == content_hash(text or ""))
            row = session.scalar(query)
            if row is None:
                what = f"#{sentence_id}" if sentence_id is not None else repr(text)
                raise BankError(f"concept {concept!r} has no sentence {what} (already removed? see dbank trash)")
            record = SentenceRecord(
                row.id, row.text, row.generator, row.generator_model, row.created_at.isoformat()
            )
            encoders = session.scalars(
                select(Encoder).join(SentenceEncoding).where(SentenceEncoding.sentence_id == row.id)
            ).all()
            return record, [EncoderInfo.of(e) for e in encoders]

    # -- the trash ------------------------------------------------------------------------

    def trash(self) -> list[dict]:
        """What the trash holds, newest first (see trash.list_trash)."""
        from direction_bank.trash import list_trash

        with self.db.reading() as session:
            return list_trash(session)

    def restore(self, name: str | None = None, entry_id: int | None = None, as_name: str | None = None) -> dict:
        """Put back from the trash the newest concept or direction named `name`, or the entry
        `entry_id` (any kind, sentences too), under `as_name` if given; returns what came back."""
        from direction_bank.trash import find_entry, restore_entry

        if (name is None) == (entry_id is None):
            raise BankError("name what to restore, or give its trash id (one of the two)")
        return self.db.write(lambda session: restore_entry(session, find_entry(session, name, entry_id), as_name))

    def empty_trash(self, older_than_days: float | None = None) -> int:
        """Delete for good what the trash holds (only entries older than `older_than_days` when
        given); returns how many entries went."""
        from datetime import timedelta

        from direction_bank.trash import empty_trash

        older = None if older_than_days is None else timedelta(days=older_than_days)
        return self.db.write(lambda session: empty_trash(session, older))
