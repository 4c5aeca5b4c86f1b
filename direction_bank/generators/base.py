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

    def batches(self, concept: str, batch_size: int) -> Iterator[list[str]]:
        """Yield lists of up to `batch_size` candidate sentences naming `concept`."""
        ...


FILE_PROVENANCE = Provenance(generator="file")
