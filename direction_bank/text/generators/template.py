"""A deterministic, offline sentence writer: subject x action x place x style templates."""
from __future__ import annotations

import random
from typing import Iterator

from direction_bank.text.generators.base import Provenance

ADJECTIVES = ["", "small", "large", "young", "old", "beautiful", "lone", "curious", "sleepy", "wet"]
ACTIONS = [
    "standing", "sitting", "walking", "running", "resting", "looking at the camera",
    "seen from the side", "seen from behind", "in the sunlight", "in the shade",
    "next to a tree", "near a fence",
]
PLACES = [
    "in a field", "on a beach", "in a forest", "on a city street", "in a park", "in the snow",
    "in a living room", "on a mountain trail", "by a river", "in a garden", "at night",
    "at sunset",
]
STYLES = [
    "a photo of", "a close-up photo of", "a blurry photo of", "a bright photo of",
    "a dark photo of", "a black and white photo of", "a painting of", "a sketch of",
    "a cropped photo of", "a high-resolution photo of",
]


def _with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


class TemplateGenerator:
    """Writes every combination of style, adjective, action and place once, in a seeded order."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.provenance = Provenance(
            generator="template", model=None, prompt_version="template-v1", settings={"seed": seed}
        )

    def sentences(self, concept: str, round_seed: int = 0) -> list[str]:
        """All sentences the templates can write about the concept, in the seeded order (a
        continuation, with another `round_seed`, meets them in another order)."""
        combos = [
            (style, adjective, action, place)
            for style in STYLES
            for adjective in ADJECTIVES
            for action in ACTIONS
            for place in PLACES
        ]
        random.Random(self.seed if not round_seed else f"{self.seed}:{round_seed}").shuffle(combos)
        out = []
        for style, adjective, action, place in combos:
            subject = _with_article(f"{adjective} {concept}".strip())
            out.append(f"{style} {subject} {action} {place}")
        return out

    def batches(self, concept: str, batch_size: int, round_seed: int = 0) -> Iterator[list[str]]:
        """Yield the template sentences in batches, then stop."""
        sentences = self.sentences(concept, round_seed)
        for start in range(0, len(sentences), batch_size):
            yield sentences[start : start + batch_size]
