"""SQLAlchemy 2 ORM tables of a bank: encoders, concepts, sentences, statistics, directions."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """The current time in UTC, for created/updated columns."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of every bank table."""


class Encoder(Base):
    """A text encoder whose embeddings the bank holds, identified by its weight fingerprint."""

    __tablename__ = "encoders"

    id: Mapped[int] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(1024))
    encoder_class: Mapped[str] = mapped_column(String(128))
    hidden_size: Mapped[int] = mapped_column(Integer)
    max_length: Mapped[int] = mapped_column(Integer)
    # SDXL: the size of the pooled embedding kept beside the token states; None for SD 1.x/2.x
    pooled_size: Mapped[int | None] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    # path:size:mtime of the weights file the fingerprint was hashed from, so it is hashed once
    weights_signature: Mapped[str | None] = mapped_column(String(2048), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Concept(Base):
    """A named concept ("horse") whose sentences the bank embeds."""

    __tablename__ = "concepts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # where statistics without sentences came from (an imported pix2pix-zero mean), else None
    origin: Mapped[str | None] = mapped_column(String(1024))
    # set while the concept lies in the trash (its name is then the trash's reserved name)
    trash_id: Mapped[int | None] = mapped_column(ForeignKey("trash.id"), index=True)

    sentences: Mapped[list[Sentence]] = relationship(
        back_populates="concept", cascade="all, delete-orphan", passive_deletes=True
    )


class Sentence(Base):
    """One sentence about a concept, with where it came from."""

    __tablename__ = "sentences"
    __table_args__ = (UniqueConstraint("concept_id", "content_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    concept_id: Mapped[int] = mapped_column(ForeignKey("concepts.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    generator: Mapped[str] = mapped_column(String(64))
    generator_model: Mapped[str | None] = mapped_column(String(1024))
    prompt_version: Mapped[str | None] = mapped_column(String(64))
    settings: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    concept: Mapped[Concept] = relationship(back_populates="sentences")


class SentenceEncoding(Base):
    """Marks that a sentence's embedding under an encoder is inside that encoder's statistics."""

    __tablename__ = "sentence_encodings"

    sentence_id: Mapped[int] = mapped_column(
        ForeignKey("sentences.id", ondelete="CASCADE"), primary_key=True
    )
    encoder_id: Mapped[int] = mapped_column(
        ForeignKey("encoders.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Statistics(Base):
    """Running count, mean and second moment of a concept's embeddings under one encoder."""

    __tablename__ = "statistics"

    concept_id: Mapped[int] = mapped_column(
        ForeignKey("concepts.id", ondelete="CASCADE"), primary_key=True
    )
    encoder_id: Mapped[int] = mapped_column(
        ForeignKey("encoders.id", ondelete="CASCADE"), primary_key=True
    )
    count: Mapped[int] = mapped_column(Integer)
    mean_norm: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class Moments(Base):
    """The tensors behind a Statistics row, in a table of their own so that listing concepts
    never pages through half a megabyte per concept."""

    __tablename__ = "moments"

    concept_id: Mapped[int] = mapped_column(
        ForeignKey("concepts.id", ondelete="CASCADE"), primary_key=True
    )
    encoder_id: Mapped[int] = mapped_column(
        ForeignKey("encoders.id", ondelete="CASCADE"), primary_key=True
    )
    # float32 little-endian, the encoder's sample layout (storage.EncoderInfo.sample_shape):
    # the mean and the sum of squared deviations
    mean: Mapped[bytes] = mapped_column(LargeBinary)
    m2: Mapped[bytes] = mapped_column(LargeBinary)


class Direction(Base):
    """One version of a named edit direction (a snapshot: later sentences do not change it).
    A name's versions count up from 1; the highest is the current one, and none is ever
    replaced."""

    __tablename__ = "directions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_directions_name_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(256), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    encoder_id: Mapped[int] = mapped_column(ForeignKey("encoders.id"))
    source: Mapped[str | None] = mapped_column(String(256))
    target: Mapped[str | None] = mapped_column(String(256))
    source_count: Mapped[int | None] = mapped_column(Integer)
    target_count: Mapped[int | None] = mapped_column(Integer)
    norm: Mapped[float] = mapped_column(Float)
    # signal-to-noise of a difference of means, when the statistics allowed computing it
    snr: Mapped[float | None] = mapped_column(Float)
    # how it was made: {"diff": ...}, {"sum": [[name, weight], ...]} or {"file": ...}
    recipe: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # float32 little-endian, the encoder's sample layout: the token states, then any pooled part
    tensor: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    # SHA-256 of `tensor`, so versions can be told apart (and damage found) without loading it
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    # set while the name lies in the trash (its name is then the trash's reserved name)
    trash_id: Mapped[int | None] = mapped_column(ForeignKey("trash.id"), index=True)
    # every tuning of this version (dbank tune: the chosen scale and guidance, scores, rule), newest last
    tuning: Mapped[list | None] = mapped_column(JSON)


class TrashEntry(Base):
    """Something removed, kept until the trash is emptied: a concept or a direction (their rows
    stay where they were, renamed out of the way and marked with this entry), or a sentence
    (its row, the embeddings it had and the statistics before its removal, held here)."""

    __tablename__ = "trash"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # concept, direction, sentence
    name: Mapped[str] = mapped_column(String(256), index=True)  # the name it had
    concept: Mapped[str | None] = mapped_column(String(256))  # a sentence's concept
    trashed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # what a listing shows (sentence counts, versions, a sentence's text and provenance)
    detail: Mapped[dict | None] = mapped_column(JSON)
    # a sentence's embeddings and the statistics before its removal (safetensors bytes)
    payload: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)


class ImportedFile(Base):
    """A file already imported (by the SHA-256 of its bytes), so importing it again is a no-op."""

    __tablename__ = "imported_files"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(256))
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class QueueItem(Base):
    """A concept to fill to a target, claimed by one worker at a time under an expiring lease."""

    __tablename__ = "queue"

    id: Mapped[int] = mapped_column(primary_key=True)
    concept: Mapped[str] = mapped_column(String(256), unique=True)
    target: Mapped[int] = mapped_column(Integer)
    # pending, running, done (target reached), short (the generator ran out first)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    worker: Mapped[str | None] = mapped_column(String(256))
    lease_expires: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sentence_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
