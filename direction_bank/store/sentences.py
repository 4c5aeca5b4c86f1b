"""The sentences room: sentences in (given, or generated until a concept holds enough), cleaned,
embedded and stored with the concept's running statistics, one transaction per batch, so an
interrupted run loses at most the batch in flight; and one sentence out again."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

from sqlalchemy import select

from db.models import Concept, Encoder, Sentence, SentenceEncoding
from direction_bank.errors import BankError, EncoderMismatch
from direction_bank.names import check_name
from direction_bank.progress import progress_bar, progress_counter
from direction_bank.store.concepts import SentenceRecord
from direction_bank.store.records import EncoderInfo
from direction_bank.store.rows import concept_id, lock_concept, read_statistics, write_statistics
from direction_bank.text.cleaning import (
    SentenceCleaner, concept_pattern, content_hash, has_control_characters, normalise, tried_so_far,
)
from direction_bank.text.encoder import DEFAULT_BATCH_SIZE
from direction_bank.text.generators.base import FILE_PROVENANCE, Provenance, SentenceGenerator

# numpy (and the modules built on it) is imported inside the methods that compute, so that
# listing commands start without it.
if TYPE_CHECKING:
    import numpy as np

    from db.engine import Database
    from direction_bank.store.concepts import Concepts
    from direction_bank.store.encoders import Encoders
    from direction_bank.text.encoder import TextEncoder

SLOW_BATCH_S = 5.0  # a first batch this slow (a local LLM on a CPU) is followed by the rate and time left


def first_batch_rate(kept: int, tried: int, seconds: float, left: int) -> str:
    """The line said after a fill's first batch: its rate, and the time the rest will take at it."""
    from direction_bank.progress import duration_text, rate_text

    rate = kept / seconds if seconds > 0 else float("inf")
    if kept == 0:
        return (f"first batch: {tried} tried in {duration_text(seconds)}, none kept yet; "
                f"{left} more sentences will take longer than {duration_text(seconds)}")
    return (f"first batch: {kept} kept of {tried} tried in {duration_text(seconds)}, about {rate_text(rate)} kept/s; "
            f"{left} more sentences ≈ {duration_text(left / rate)} at that rate")


def round_seed(concept: str, stored_hashes) -> int:
    """The seed of a generation round: 0 for an empty concept, else derived from the sentences
    it holds, so a continuation samples new candidates and an identical rerun the same ones."""
    import hashlib

    if not stored_hashes:
        return 0
    digest = hashlib.sha256("\n".join([concept, *sorted(stored_hashes)]).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass
class AddReport:
    """What an add did: sentences added, skipped as duplicates, backfilled, truncated, the
    candidates (or given lines) tried, why the dropped ones went, those unused past the target,
    and the LLM token usage. tried = added + skipped + sum(dropped) + surplus."""

    concept: str
    added: int = 0
    skipped: int = 0
    backfilled: int = 0
    refused: int = 0  # lines holding control characters, never stored
    off_concept: int = 0  # given lines that do not name the concept (stored unless required)
    truncated: list[str] = field(default_factory=list)
    sentence_count: int = 0
    target: int | None = None
    tried: int = 0  # candidates (generated) or non-empty lines (given): added + skipped + dropped + surplus
    dropped: dict = field(default_factory=dict)  # reason -> count
    surplus: int = 0  # kept by the cleaner past the target, unused
    usage: dict | None = None

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


def _merge_statistics(session, concept: int, info: EncoderInfo, embeddings: np.ndarray) -> None:
    """Add a batch of embeddings to the concept's statistics under an encoder."""
    from direction_bank.store.stats import RunningStats

    if len(embeddings) == 0:
        return
    current = read_statistics(session, concept, info) or RunningStats.empty(info.sample_shape)
    write_statistics(session, concept, info, current.add(embeddings))


class Sentences:
    """Adding sentences to a bank's concepts, and taking one out."""

    def __init__(self, db: Database, encoders: Encoders, concepts: Concepts):
        self.db = db
        self.encoders = encoders
        self.concepts = concepts

    def add(
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
        info = self.encoders.register(encoder)
        report = AddReport(concept)
        stored = self.concepts.stored_hashes(concept)
        names_it = concept_pattern(concept)
        new_texts, new_hashes = [], []
        for text in sentences:
            text = normalise(text)
            if not text:
                continue
            report.tried += 1
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
        report.dropped = {"control characters": report.refused,
                          "no concept word": report.off_concept if require_concept else 0}
        self._backfill(concept, encoder, info, batch_size, report, progress)
        batches = range(0, len(new_texts), batch_size)
        for start in progress_bar(batches, enabled=progress, desc="adding", unit="batch"):
            texts = new_texts[start : start + batch_size]
            hashes = new_hashes[start : start + batch_size]
            self._embed_and_store(concept, texts, hashes, encoder, info, provenance, report)
        report.sentence_count = self.concepts.sentence_count(concept)
        return report

    def fill(
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
        info = self.encoders.register(encoder)
        report = AddReport(concept, target=target)
        self._backfill(concept, encoder, info, batch_size, report, progress)
        cleaner = cleaner or SentenceCleaner(encoder.token_counts, info.max_length)
        stored = self.concepts.stored_hashes(concept)
        budget = max_candidates if max_candidates is not None else max(10 * target, 100)
        tried = idle = 0
        if len(stored) < target:
            cleaner.remember(self.concepts.stored_texts(concept))
            bar = progress_counter(target, len(stored), enabled=progress, desc="sentences kept",
                                   unit="sent")
            try:
                started, first = time.monotonic(), len(stored)
                for candidates in generator.batches(concept, batch_size, round_seed(concept, stored)):
                    tried += len(candidates)
                    repeats = cleaner.report.dropped["duplicate"]
                    cleaned = cleaner.clean(candidates, concept, stored)
                    texts = cleaned[: target - len(stored)]
                    report.surplus += len(cleaned) - len(texts)
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
                    bar.note(tried_so_far(tried, cleaner.report.dropped))
                    if tried == len(candidates) and time.monotonic() - started >= SLOW_BATCH_S and len(stored) < target:
                        bar.say(first_batch_rate(len(stored) - first, tried, time.monotonic() - started,
                                                 target - len(stored)))
                    # a resumed run first meets what it stored before: that is not idling
                    idle = 0 if texts or repeats else idle + 1
                    if len(stored) >= target or tried >= budget or idle >= max_idle_rounds:
                        break
            finally:
                bar.close()
        report.tried = tried
        report.dropped = dict(cleaner.report.dropped)
        report.usage = getattr(generator, "usage", None)
        report.sentence_count = self.concepts.sentence_count(concept)
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
                _merge_statistics(session, concept_row.id, info, embeddings[keep])
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
            _merge_statistics(session, concept_row.id, info, embeddings[keep])
            return len(keep)

        added = self.db.write(store)
        report.added += added
        report.skipped += len(texts) - added

    def remove(
        self,
        concept: str,
        load_encoder: Callable[[EncoderInfo], TextEncoder],
        text: str | None = None,
        sentence_id: int | None = None,
    ) -> SentenceRecord:
        """Move one sentence to the trash and take its embedding out of every encoder's
        statistics (re-embedding it with each encoder, so no other sentence is needed). Under
        any interleaving of writers it is taken out once: a second remover is told it is gone."""
        from direction_bank.store.trash import trash_sentence

        concept = check_name(concept)
        embeddings: dict[int, np.ndarray] = {}
        while True:
            record, infos = self._sentence_and_encoders(concept, text, sentence_id)
            for info in infos:
                if info.id in embeddings:
                    continue
                encoder = load_encoder(info)
                if self.encoders.register(encoder).id != info.id:
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
            query = select(Sentence).where(Sentence.concept_id == concept_id(session, concept))
            if sentence_id is not None:
                query = query.where(Sentence.id == sentence_id)
            else:
                query = query.where(Sentence.content_hash == content_hash(text or ""))
            row = session.scalar(query)
            if row is None:
                what = f"#{sentence_id}" if sentence_id is not None else repr(text)
                raise BankError(f"concept {concept!r} has no sentence {what} (already removed? see dbank trash)")
            encoders = session.scalars(
                select(Encoder).join(SentenceEncoding).where(SentenceEncoding.sentence_id == row.id)
            ).all()
            return SentenceRecord.of(row), [EncoderInfo.of(e) for e in encoders]
