"""The SQL of the reads a person waits on (listing concepts, a concept's encoders and statistics),
as plain statements with :named parameters, and the values made of their rows. Both the rooms,
through an ORM session, and quick_read.py, through the standard library's sqlite3, run these
same statements (`Run`: SQL and parameters in, rows out), so the two ways cannot drift."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

from direction_bank.errors import EncoderMismatch
from direction_bank.store.records import ConceptSummary, DirectionResult, EncoderInfo

if TYPE_CHECKING:
    from direction_bank.store.stats import RunningStats

Run = Callable[[str, dict], Sequence[tuple]]

_CONCEPT_ID = "SELECT id FROM concepts WHERE name = :name"
_SENTENCE_COUNTS = """
SELECT c.id, c.name, COUNT(s.id) FROM concepts c LEFT JOIN sentences s ON s.concept_id = c.id
WHERE c.trash_id IS NULL GROUP BY c.id, c.name ORDER BY c.name
"""
_STATISTICS_COUNTS = """
SELECT st.concept_id, e.model, e.hidden_size, st.count FROM statistics st JOIN encoders e ON e.id = st.encoder_id
ORDER BY st.concept_id, e.id
"""
_ENCODERS_OF = """
SELECT e.id, e.model, e.encoder_class, e.hidden_size, e.max_length, e.fingerprint, e.pooled_size
FROM encoders e JOIN statistics st ON st.encoder_id = e.id WHERE st.concept_id = :concept ORDER BY e.id
"""
_MOMENTS = """
SELECT st.count, m.mean, m.m2 FROM statistics st
JOIN moments m ON m.concept_id = st.concept_id AND m.encoder_id = st.encoder_id
WHERE st.concept_id = :concept AND st.encoder_id = :encoder
"""


def concept_id(run: Run, name: str) -> int | None:
    """The id of the concept stored under this (checked) name, None when there is none."""
    rows = run(_CONCEPT_ID, {"name": name})
    return rows[0][0] if rows else None


def summaries(run: Run) -> list[ConceptSummary]:
    """Every live concept, by name, with sentence counts and per-encoder statistics counts."""
    per_encoder: dict[int, list[dict]] = {}
    for concept, model, hidden, count in run(_STATISTICS_COUNTS, {}):
        per_encoder.setdefault(concept, []).append({"model": model, "hidden_size": hidden, "count": count})
    return [ConceptSummary(name, count, per_encoder.get(concept, []))
            for concept, name, count in run(_SENTENCE_COUNTS, {})]


def encoders_of(run: Run, concept: int) -> dict[int, EncoderInfo]:
    """The encoders whose statistics the concept (by id) has, by encoder id."""
    return {row[0]: EncoderInfo(*row[:6], row[6] or 0) for row in run(_ENCODERS_OF, {"concept": concept})}


def statistics(run: Run, concept: int, encoder: EncoderInfo) -> RunningStats | None:
    """A concept's (by id) statistics under an encoder; None when it has none."""
    from direction_bank.store.stats import RunningStats

    rows = run(_MOMENTS, {"concept": concept, "encoder": encoder.id})
    if not rows:
        return None
    count, mean, m2 = rows[0]
    return RunningStats.from_blobs(count, bytes(mean), bytes(m2), encoder.sample_shape)


def common_encoder(a: dict[int, EncoderInfo], b: dict[int, EncoderInfo], source: str, target: str,
                   model: str | None = None, preferred: str | None = None) -> EncoderInfo:
    """Of the encoders of `source` (a) and `target` (b), the one both have: the one named `model`
    (none other), or when several are shared the one named `preferred`; EncoderMismatch in one
    line when there is none or no way to choose."""
    common = [a[i] for i in sorted(a.keys() & b.keys())]
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
    raise EncoderMismatch(f"{source!r} and {target!r} share several encoders; pick one with --model")


def difference(source: str, target: str, encoder: EncoderInfo, a: RunningStats, b: RunningStats) -> DirectionResult:
    """The direction target mean minus source mean, [1, max_length, D] float32, with how far to
    trust it (see confidence.difference_confidence)."""
    from direction_bank.store.confidence import difference_confidence

    return DirectionResult.of_sample(
        b.mean - a.mean, encoder, source, target, a.count, b.count,
        confidence=difference_confidence(a, b),
        recipe={"diff": {"source": source, "target": target}},
    )
