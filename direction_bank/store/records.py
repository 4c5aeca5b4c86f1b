"""The values the bank's rows hold, as plain objects: encoder records, concept summaries and
directions. Nothing here touches a database (or imports SQLAlchemy), so a read that needs no ORM
(store/quick_read.py) builds the same objects the rooms do."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from direction_bank.text.layout import sample_shape
from sd_models.family import model_kind

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class EncoderInfo:
    """A text encoder as the bank records it."""

    id: int
    model: str
    encoder_class: str
    hidden_size: int
    max_length: int
    fingerprint: str
    pooled_size: int = 0  # SDXL's pooled text embedding beside the token states; 0: none

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of one sentence's token states, [max_length, hidden_size]."""
        return (self.max_length, self.hidden_size)

    @property
    def kind(self) -> str:
        """'SDXL' or 'SD 1.x/2.x' (see sd_models.family.model_kind)."""
        return model_kind(bool(self.pooled_size))

    def describe(self) -> str:
        """The model, its kind and its embedding sizes, for messages."""
        pooled = f" + {self.pooled_size} pooled" if self.pooled_size else ""
        return f"{self.model} ({self.kind}, {self.hidden_size}-d{pooled})"

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sentence embedding as statistics and stored tensors hold it (see
        layout.sample_shape)."""
        return sample_shape(self.max_length, self.hidden_size, self.pooled_size)

    def split(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(token states [..., max_length, hidden_size], pooled [..., pooled_size] or None) of
        samples in the sample layout [..., *sample_shape]."""
        lead = samples.shape[: samples.ndim - len(self.sample_shape)]
        flat = samples.reshape(*lead, -1)
        tokens = flat[..., : self.max_length * self.hidden_size].reshape(*lead, *self.shape)
        return tokens, (flat[..., self.max_length * self.hidden_size :] if self.pooled_size else None)

    def joined(self, tokens: np.ndarray, pooled: np.ndarray | None) -> np.ndarray:
        """Token states [..., max_length, hidden_size] and pooled [..., pooled_size] (None
        without a pooled part) in the sample layout; the inverse of split."""
        import numpy as np

        if not self.pooled_size:
            return tokens
        lead = tokens.shape[:-2]
        return np.concatenate([tokens.reshape(*lead, -1), pooled.reshape(*lead, -1)], axis=-1)

    @classmethod
    def of(cls, row) -> EncoderInfo:
        """The info of an encoders row (an ORM row, or anything with its columns as attributes)."""
        return cls(
            row.id, row.model, row.encoder_class, row.hidden_size, row.max_length, row.fingerprint,
            row.pooled_size or 0,
        )

    def as_dict(self) -> dict:
        """JSON-ready description (without the database id; pooled_size only for SDXL, so SD
        files read the same in older dbanks)."""
        out = asdict(self)
        del out["id"]
        if not self.pooled_size:
            del out["pooled_size"]
        return out


@dataclass(frozen=True)
class DirectionResult:
    """A direction [1, max_length, D] (target mean minus source mean) and where it came from;
    for SDXL also its pooled part [1, pooled_size]."""

    tensor: np.ndarray
    encoder: EncoderInfo
    source: str | None = None
    target: str | None = None
    source_count: int | None = None
    target_count: int | None = None
    name: str | None = None
    confidence: dict | None = None
    recipe: dict | None = None
    pooled: np.ndarray | None = None
    version: int | None = None  # a saved direction's version of its name (1, 2, ...)
    counts_now: dict | None = None  # a saved one: sentences its concepts hold now, by role
    tuning: dict | None = None  # its newest tuning (dbank tune): the scale and xa_guidance edits use
    unchanged: bool = False  # Directions.save stored nothing: the name's current version is this very direction

    @property
    def concepts_changed(self) -> bool:
        """Whether a saved direction's concepts hold other sentence counts than it was made from."""
        made = {"source": self.source_count, "target": self.target_count}
        return any(count != made[role] for role, count in (self.counts_now or {}).items())

    @classmethod
    def of_sample(cls, sample: np.ndarray, encoder: EncoderInfo, *args, **kwargs) -> DirectionResult:
        """A direction from a difference in the encoder's sample layout (see EncoderInfo.split)."""
        import numpy as np

        tokens, pooled = encoder.split(np.asarray(sample, np.float32))
        return cls(tokens[None], encoder, *args, pooled=None if pooled is None else pooled[None], **kwargs)

    def sample(self) -> np.ndarray:
        """The direction in its encoder's sample layout, as the bank stores it."""
        return self.encoder.joined(self.tensor[0], None if self.pooled is None else self.pooled[0])

    def blob(self) -> bytes:
        """The direction's bytes as its row stores them (float32, the sample layout)."""
        from direction_bank.store.stats import tensor_to_blob

        return tensor_to_blob(self.sample())

    @property
    def fingerprint(self) -> str:
        """SHA-256 of blob(): tells versions of a name apart (and finds damage) unloaded."""
        import hashlib

        return hashlib.sha256(self.blob()).hexdigest()

    @property
    def norm(self) -> float:
        """Frobenius norm of the direction (both parts, for SDXL)."""
        import numpy as np

        return float(np.linalg.norm(self.sample()))

    def token_norms(self) -> np.ndarray:
        """The norm at each token position [max_length]: which tokens carry the change."""
        import numpy as np

        return np.linalg.norm(self.tensor[0].astype(np.float64), axis=-1)

    def plot_title(self) -> str:
        """A one-line title for pictures of this direction."""
        joins = f"{self.source} -> {self.target}" if self.source else "composed"
        return f"{self.name or 'unsaved'}: {joins}, norm {self.norm:.3f}"

    def _why_no_confidence(self) -> str:
        recipe = self.recipe or {}
        if "sum" in recipe:
            return "a composed direction is a weighted sum of directions, with no sentence statistics of its own"
        if "file" in recipe:
            return "its file carries no signal-to-noise (a pix2pix-zero mean, or statistics without spread)"
        if "paired" in recipe:
            return "it needs at least two sentence pairs"
        return "it needs two sentences or more on each side, with spread recorded"

    def summary_lines(self):
        """Text lines describing the direction: what it joins, its size, confidence and recipe."""
        shape = "x".join(str(n) for n in self.tensor.shape)
        if self.pooled is not None:
            shape += " + pooled " + "x".join(str(n) for n in self.pooled.shape)
        label = f"{self.name}: " if self.name else ""
        if self.name and self.version:
            label = f"{self.name} (version {self.version}): "
        if self.source or self.target:
            label += f"{self.source} -> {self.target}, "
        yield f"{label}shape {shape}, norm {self.norm:.4f}"
        confidence = self.confidence
        if confidence:
            line = f"  signal-to-noise {confidence['snr']:.2f}"
            more = confidence.get("more_sentences_to_halve_noise")
            if more:
                line += "; to halve the noise add " + ", ".join(
                    f"{n} pairs" if side == "pairs" else f"{n} {side} sentences" for side, n in more.items())
            yield line
        else:
            yield f"  signal-to-noise unknown: {self._why_no_confidence()}"
        if self.recipe and ("sum" in self.recipe or "hub" in self.recipe):  # how it was made, where not A -> B
            yield "  " + describe_recipe(self.recipe, self.source, self.target)
        if self.concepts_changed:
            now = self.counts_now
            yield (f"  made from {self.source_count}/{self.target_count} sentences; {self.source}/{self.target} "
                   f"hold {now.get('source')}/{now.get('target')} now: dbank diff {self.source} {self.target} "
                   f"--save {self.name} --overwrite brings it up to date")
        if self.tuning:
            yield "  " + describe_tuning(self.tuning)

    def saved_line(self) -> str:
        """What saving it did: 'saved as NAME, version N', or that nothing was stored because the
        name's current version is this very direction."""
        if self.unchanged:
            return f"unchanged: no new version ({self.name}, version {self.version}, is this very direction)"
        return f"saved as {self.name}, version {self.version}"

    def as_dict(self) -> dict:
        """JSON-ready summary (without the tensor)."""
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "target": self.target,
            "shape": list(self.tensor.shape),
            **({"pooled_shape": list(self.pooled.shape)} if self.pooled is not None else {}),
            "norm": self.norm,
            "source_count": self.source_count,
            "target_count": self.target_count,
            "confidence": self.confidence,
            "recipe": self.recipe,
            "tuning": self.tuning,
            **({"unchanged": True} if self.unchanged else {}),
            "encoder": self.encoder.as_dict(),
            **({"source_count_now": self.counts_now.get("source"), "target_count_now": self.counts_now.get("target"),
                "concepts_changed": self.concepts_changed} if self.counts_now else {}),
        }


def describe_tuning(tuning: dict) -> str:
    """A tuning in words: the settings edits use and the scores that chose them."""
    line = f"tuned: scale {tuning['scale']:g}, xa-guidance {tuning['xa_guidance']:g} (edits use these unless given)"
    scores, photos = tuning.get("scores") or {}, tuning.get("photos")
    if scores.get("clip_directional_similarity") is not None and scores.get("structure_distance") is not None:
        line += (f"; CLIP directional similarity {scores['clip_directional_similarity']:.3f}, structure distance "
                 f"{scores['structure_distance']:.3f}")
        if tuning.get("reconstruction_structure_distance") is not None and tuning.get("margin") is not None:
            line += (f" (reconstruction {tuning['reconstruction_structure_distance']:.3f} + margin "
                     f"{tuning['margin']:g})")
    if photos:
        line += f" over {photos} photo{'s' if photos != 1 else ''}"
    return line


def hub_url(hub: dict) -> str:
    """hf://OWNER/REPO@COMMIT/PATH of an import's Hub provenance (sharing.hub.fetch)."""
    revision = f"@{hub['revision']}" if hub.get("revision") else ""
    return f"hf://{hub['hub']}{revision}/{hub['path']}"


def describe_recipe(recipe: dict | None, source: str | None, target: str | None) -> str:
    """How a direction was made, in words: 'A -> B', 'sum of 1 x a + 0.5 x b', 'from file F',
    with '(restored from version N)' where it was restored."""
    made = recipe or {}
    how = ("sum of " + " + ".join(f"{w:g} x {n}" for n, w in made["sum"]) if "sum" in made
           else f"from {hub_url(made['hub'])} (sha256 {made['sha256'][:12]})" if "hub" in made
           else f"from file {made['file']}" if "file" in made
           else f"{source} -> {target}" if source else "composed")
    if "restored_from" in made:
        how += f" (restored from version {made['restored_from']})"
    return how


@dataclass(frozen=True)
class ConceptSummary:
    """A concept with its sentence count and the encoders whose statistics it has."""

    name: str
    sentence_count: int
    encoders: list[dict]

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return {"name": self.name, "sentence_count": self.sentence_count, "encoders": self.encoders}
