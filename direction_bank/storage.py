"""Values the bank reads from and writes to its rows: encoder records, directions, and a
concept's statistics. The Bank, sharing and integrity checks all build on these."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from db.models import Concept, Direction, Encoder, Moments, Statistics

if TYPE_CHECKING:
    import numpy as np

    from direction_bank.stats import RunningStats


@dataclass(frozen=True)
class EncoderInfo:
    """A text encoder as the bank records it."""

    id: int
    model: str
    encoder_class: str
    hidden_size: int
    max_length: int
    fingerprint: str

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of one sentence embedding, [max_length, hidden_size]."""
        return (self.max_length, self.hidden_size)

    @classmethod
    def of(cls, row: Encoder) -> EncoderInfo:
        """The info of an encoders row."""
        return cls(
            row.id, row.model, row.encoder_class, row.hidden_size, row.max_length, row.fingerprint
        )

    def as_dict(self) -> dict:
        """JSON-ready description (without the database id)."""
        out = asdict(self)
        del out["id"]
        return out


@dataclass(frozen=True)
class DirectionResult:
    """A direction [1, max_length, D] (target mean minus source mean) and where it came from."""

    tensor: np.ndarray
    encoder: EncoderInfo
    source: str | None = None
    target: str | None = None
    source_count: int | None = None
    target_count: int | None = None
    name: str | None = None
    confidence: dict | None = None
    recipe: dict | None = None

    @property
    def norm(self) -> float:
        """Frobenius norm of the direction."""
        import numpy as np

        return float(np.linalg.norm(self.tensor))

    def token_norms(self) -> np.ndarray:
        """The norm at each token position [max_length]: which tokens carry the change."""
        import numpy as np

        return np.linalg.norm(self.tensor[0].astype(np.float64), axis=-1)

    def plot_title(self) -> str:
        """A one-line title for pictures of this direction."""
        joins = f"{self.source} -> {self.target}" if self.source else "composed"
        return f"{self.name or 'unsaved'}: {joins}, norm {self.norm:.3f}"

    def summary_lines(self):
        """Text lines describing the direction: what it joins, its size, confidence and recipe."""
        shape = "x".join(str(n) for n in self.tensor.shape)
        label = f"{self.name}: " if self.name else ""
        if self.source or self.target:
            label += f"{self.source} -> {self.target}, "
        yield f"{label}shape {shape}, norm {self.norm:.4f}"
        confidence = self.confidence
        if confidence:
            line = f"  signal-to-noise {confidence['snr']:.2f}"
            more = confidence.get("more_sentences_to_halve_noise")
            if more:
                line += "; to halve the noise add " + ", ".join(f"{n} {side}" for side, n in more.items())
            yield line
        else:
            yield "  signal-to-noise unknown (the statistics hold too little spread to tell)"
        if self.recipe and "sum" in self.recipe:
            yield "  sum of " + " + ".join(f"{w:g} x {n}" for n, w in self.recipe["sum"])

    def as_dict(self) -> dict:
        """JSON-ready summary (without the tensor)."""
        return {
            "name": self.name,
            "source": self.source,
            "target": self.target,
            "shape": list(self.tensor.shape),
            "norm": self.norm,
            "source_count": self.source_count,
            "target_count": self.target_count,
            "confidence": self.confidence,
            "recipe": self.recipe,
            "encoder": self.encoder.as_dict(),
        }


def add_direction(session, name: str, direction: DirectionResult) -> None:
    from direction_bank.stats import tensor_to_blob

    session.add(
        Direction(
            name=name,
            encoder_id=direction.encoder.id,
            source=direction.source,
            target=direction.target,
            source_count=direction.source_count,
            target_count=direction.target_count,
            norm=direction.norm,
            snr=(direction.confidence or {}).get("snr"),
            recipe=direction.recipe,
            tensor=tensor_to_blob(direction.tensor),
        )
    )



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
    from direction_bank.stats import RunningStats

    row = session.get(Statistics, (concept_id, info.id))
    if row is None:
        return None
    moments = session.get(Moments, (concept_id, info.id))
    return RunningStats.from_blobs(row.count, moments.mean, moments.m2, info.shape)


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
