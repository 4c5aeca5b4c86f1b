"""Values the bank reads from and writes to its rows: encoder records, directions, and a
concept's statistics. The Bank, sharing and integrity checks all build on these."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select, text

from db.models import Concept, Direction, Encoder, Moments, Statistics
from direction_bank.errors import UnknownConcept, UnknownDirection
from direction_bank.names import check_name, did_you_mean
from direction_bank.text.layout import sample_shape
from sd_models.family import model_kind

if TYPE_CHECKING:
    import numpy as np

    from direction_bank.store.stats import RunningStats


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
    def of(cls, row: Encoder) -> EncoderInfo:
        """The info of an encoders row."""
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
        if self.recipe and "sum" in self.recipe:
            yield "  " + describe_recipe(self.recipe, self.source, self.target)
        if self.concepts_changed:
            now = self.counts_now
            yield (f"  made from {self.source_count}/{self.target_count} sentences; {self.source}/{self.target} "
                   f"hold {now.get('source')}/{now.get('target')} now: dbank diff {self.source} {self.target} "
                   f"--save {self.name} --overwrite brings it up to date")
        if self.tuning:
            yield "  " + describe_tuning(self.tuning)

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


def describe_recipe(recipe: dict | None, source: str | None, target: str | None) -> str:
    """How a direction was made, in words: 'A -> B', 'sum of 1 x a + 0.5 x b', 'from file F',
    with '(restored from version N)' where it was restored."""
    made = recipe or {}
    how = ("sum of " + " + ".join(f"{w:g} x {n}" for n, w in made["sum"]) if "sum" in made
           else f"from file {made['file']}" if "file" in made
           else f"{source} -> {target}" if source else "composed")
    if "restored_from" in made:
        how += f" (restored from version {made['restored_from']})"
    return how


# Rows in the trash are renamed to this prefix and their trash entry's id: names never hold
# control characters (names.check_name), so no lookup by a user's name can reach them.
TRASH_NAME_PREFIX = "\x1ftrash/"


def trash_name(entry_id: int) -> str:
    """The name a concept's or direction's rows carry while trash entry `entry_id` holds them."""
    return f"{TRASH_NAME_PREFIX}{entry_id}"


def lock_direction_names(session, *names: str) -> None:
    """Make every writer of these direction names take turns, for the rest of the transaction.
    SQLite's write transaction already excludes other writers. PostgreSQL locks rows, not
    names: a remover's row locks miss the version a racing saver is inserting, which left a new
    version live while the older ones went to the trash. So each name takes a transaction-level
    advisory lock (names in sorted order, so two writers of two names cannot deadlock); every
    statement after it sees what the previous holder committed."""
    import hashlib

    if session.get_bind().dialect.name != "postgresql":
        return
    for name in sorted(set(names)):
        digest = hashlib.sha256(b"dbank direction name\0" + name.encode("utf-8", "surrogatepass")).digest()
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                        {"key": int.from_bytes(digest[:8], "big", signed=True)})


def latest_direction_version(session, name: str) -> int:
    """The highest version stored under a direction name (0: none), the name locked first
    (lock_direction_names) so two writers of one name take turns."""
    lock_direction_names(session, name)
    return session.scalar(select(func.max(Direction.version)).where(Direction.name == name)) or 0


def add_direction(session, name: str, direction: DirectionResult, version: int = 1) -> int:
    """Store a direction as `version` of `name`; returns the version."""
    session.add(
        Direction(
            name=name,
            version=version,
            fingerprint=direction.fingerprint,
            encoder_id=direction.encoder.id,
            source=direction.source,
            target=direction.target,
            source_count=direction.source_count,
            target_count=direction.target_count,
            norm=direction.norm,
            snr=(direction.confidence or {}).get("snr"),
            recipe=direction.recipe,
            tensor=direction.blob(),
            tuning=[direction.tuning] if direction.tuning else None,
        )
    )
    return version


def concept_id(session, concept: str) -> int:
    """The id of a concept by name; UnknownConcept in one line when the bank has none."""
    found = session.scalar(select(Concept.id).where(Concept.name == check_name(concept)))
    if found is None:
        raise unknown_concept(session, concept)
    return found


def unknown_concept(session, name: str) -> UnknownConcept:
    """The one-line error for a concept the bank does not hold, with the nearest names it does."""
    nearest = did_you_mean(name, live_names(session, "concept"))
    return UnknownConcept(f"no concept named {name!r} in the bank{nearest}")


def unknown_direction(session, name: str) -> UnknownDirection:
    """The one-line error for a direction the bank does not hold, with the nearest names it does."""
    nearest = did_you_mean(name, live_names(session, "direction"))
    return UnknownDirection(f"no direction named {name!r} in the bank{nearest}")


def name_in_use(session, kind: str, name: str) -> bool:
    """Whether a direction (kind 'direction') or concept of this name is in the bank (any version,
    trashed ones too: a name that holds history)."""
    table = Direction if kind == "direction" else Concept
    return session.scalar(select(table.id).where(table.name == name).limit(1)) is not None


def live_names(session, kind: str) -> list[str]:
    """The names of the live (not trashed) directions (kind 'direction') or concepts."""
    table = Direction if kind == "direction" else Concept
    return list(session.scalars(select(table.name).where(table.trash_id.is_(None)).distinct()))


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
    from direction_bank.store.stats import RunningStats

    row = session.get(Statistics, (concept_id, info.id))
    if row is None:
        return None
    moments = session.get(Moments, (concept_id, info.id))
    return RunningStats.from_blobs(row.count, moments.mean, moments.m2, info.sample_shape)


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
