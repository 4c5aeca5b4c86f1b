"""The concepts room: what a bank's concepts hold (sentences, per-encoder statistics) and how they
relate (the encoder two concepts share, look-alike concepts), read only; and moving a concept to
the trash. Sentences come in through the sentences room."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from db.models import Concept, Encoder, Moments, Sentence, Statistics
from direction_bank.errors import BankError, EncoderMismatch
from direction_bank.names import check_name
from direction_bank.store.records import ConceptSummary, EncoderInfo
from direction_bank.store import queries
from direction_bank.store.rows import concept_id, read_statistics, session_run

if TYPE_CHECKING:
    from db.engine import Database
    from direction_bank.store.stats import RunningStats


@dataclass(frozen=True)
class SentenceRecord:
    """A stored sentence and its provenance."""

    id: int
    text: str
    generator: str
    generator_model: str | None
    created_at: str

    @classmethod
    def of(cls, row: Sentence) -> SentenceRecord:
        """The record of a sentence row."""
        return cls(row.id, row.text, row.generator, row.generator_model, row.created_at.isoformat())

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


class Concepts:
    """A bank's concepts, read."""

    def __init__(self, db: Database):
        self.db = db

    def stored_hashes(self, concept: str) -> set[str]:
        """The content hashes of the concept's sentences (empty for an unknown concept)."""
        with self.db.reading() as session:
            return set(session.scalars(select(Sentence.content_hash).join(Concept).where(Concept.name == concept)))

    def stored_texts(self, concept: str) -> list[str]:
        """The concept's sentences (empty for an unknown concept)."""
        with self.db.reading() as session:
            return list(session.scalars(select(Sentence.text).join(Concept).where(Concept.name == concept)))

    def sentence_count(self, concept: str) -> int:
        """How many sentences the concept holds (0 for an unknown concept)."""
        with self.db.reading() as session:
            return session.scalar(
                select(func.count(Sentence.id)).join(Concept).where(Concept.name == concept)
            )

    def summaries(self) -> list[ConceptSummary]:
        """Every concept, by name, with sentence counts and per-encoder statistics counts."""
        with self.db.reading() as session:
            return queries.summaries(session_run(session))

    def describe(self, concept: str, sample: int = 5) -> dict:
        """A concept's sentence count, per-encoder statistics and a few sentences."""
        with self.db.reading() as session:
            found = concept_id(session, concept)
            count = session.scalar(select(func.count(Sentence.id)).where(Sentence.concept_id == found))
            encoders = [
                {**EncoderInfo.of(encoder).as_dict(), "count": n, "mean_norm": norm}
                for encoder, n, norm in session.execute(
                    select(Encoder, Statistics.count, Statistics.mean_norm)
                    .join(Statistics)
                    .where(Statistics.concept_id == found)
                )
            ]
            examples = session.scalars(
                select(Sentence.text).where(Sentence.concept_id == found).order_by(Sentence.id).limit(sample)
            ).all()
        return {"name": check_name(concept), "sentence_count": count, "encoders": encoders,
                "sentences": list(examples)}

    def sentences(self, concept: str) -> list[SentenceRecord]:
        """Every stored sentence of the concept, oldest first."""
        with self.db.reading() as session:
            found = concept_id(session, concept)
            rows = session.scalars(select(Sentence).where(Sentence.concept_id == found).order_by(Sentence.id))
            return [SentenceRecord.of(row) for row in rows]

    def statistics(self, concept: str, encoder: EncoderInfo) -> RunningStats:
        """The concept's embedding statistics under an encoder."""
        with self.db.reading() as session:
            stats = read_statistics(session, concept_id(session, concept), encoder)
            if stats is None:
                raise EncoderMismatch(f"concept {concept!r} has no embeddings from {encoder.model!r}")
            return stats

    @staticmethod
    def _encoders_of(session, concept: str) -> dict[int, EncoderInfo]:
        found = queries.encoders_of(session_run(session), concept_id(session, concept))
        if not found:
            raise BankError(f"concept {concept!r} has no embedded sentences yet")
        return found

    def common_encoder(self, source: str, target: str, model: str | None = None,
                       preferred: str | None = None) -> EncoderInfo:
        """The encoder whose statistics both concepts have: the one named `model` (none other), or
        when several are shared the one named `preferred` (a default such as DBANK_MODEL)."""
        with self.db.reading() as session:
            a = self._encoders_of(session, source)
            b = self._encoders_of(session, target)
        return queries.common_encoder(a, b, source, target, model, preferred)

    def similar(self, concept: str, limit: int = 10, model: str | None = None) -> list[dict]:
        """The concepts nearest to `concept`: cosine similarity of their token-averaged means,
        centred on the average over every concept of the same encoder."""
        import numpy as np

        from direction_bank.store.stats import DamagedData, blob_to_tensor

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

    def remove(self, concept: str) -> int:
        """Move a concept (sentences and statistics) to the trash; returns its sentence count."""
        from direction_bank.store.trash import trash_concept

        return self.db.write(lambda session: trash_concept(session, check_name(concept)))
