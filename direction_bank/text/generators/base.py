"""The interface every sentence generator implements."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Protocol


@dataclass(frozen=True)
class Provenance:
    """Who wrote a sentence and how: stored with every sentence."""

    generator: str
    model: str | None = None
    prompt_version: str | None = None
    settings: dict = field(default_factory=dict)


class SentenceGenerator(Protocol):
    """Writes sentences about a concept, batch after batch, until asked to stop."""

    provenance: Provenance

    def batches(self, concept: str, batch_size: int, round_seed: int = 0) -> Iterator[list[str]]:
        """Yield lists of up to `batch_size` candidate sentences naming `concept`. `round_seed`
        differs from one round of a concept to the next (derived from what it holds), so a
        continuation writes new candidates while an identical rerun writes the same ones."""
        ...


def mixed_seed(*parts) -> int:
    """A 63-bit seed from several numbers (the user's seed, the round's, the call's)."""
    import hashlib

    digest = hashlib.sha256(":".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


FILE_PROVENANCE = Provenance(generator="file")
