"""The encoders room: the text encoders a bank has embedded with, each recorded once by the
SHA-256 of its weights (hashed once per weights file, then known by the file's signature)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from db.models import Encoder
from direction_bank.store.records import EncoderInfo

if TYPE_CHECKING:
    from db.engine import Database
    from direction_bank.text.encoder import TextEncoder


class Encoders:
    """The bank's records of text encoders."""

    def __init__(self, db: Database):
        self.db = db

    def fingerprint(self, encoder: TextEncoder) -> str:
        """The SHA-256 of the encoder's weights, reused when the bank hashed this file before."""
        def known(sig: str) -> str | None:
            with self.db.reading() as session:
                return session.scalar(
                    select(Encoder.fingerprint).where(Encoder.weights_signature == sig).limit(1)
                )

        return encoder.fingerprint(known)

    def id_of(self, encoder: TextEncoder) -> int | None:
        """The bank's id of a loaded encoder, None when it has never used it (writes nothing)."""
        with self.db.reading() as session:
            return session.scalar(select(Encoder.id).where(Encoder.fingerprint == self.fingerprint(encoder)))

    def register(self, encoder: TextEncoder) -> EncoderInfo:
        """The bank's record of a loaded encoder, created on first use (weights hashed once)."""
        signature = encoder.weights_signature()
        fingerprint = self.fingerprint(encoder)

        def record(session) -> EncoderInfo:
            row = session.scalar(select(Encoder).where(Encoder.fingerprint == fingerprint))
            if row is None:
                row = Encoder(
                    model=encoder.model,
                    encoder_class=encoder.encoder_class,
                    hidden_size=encoder.hidden_size,
                    max_length=encoder.max_length,
                    pooled_size=encoder.pooled_size or None,
                    fingerprint=fingerprint,
                    weights_signature=signature,
                )
                session.add(row)
                session.flush()
            elif signature and row.weights_signature != signature:
                row.weights_signature = signature
            return EncoderInfo.of(row)

        return self.db.write(record)

    def all(self) -> list[EncoderInfo]:
        """Every encoder the bank has seen."""
        with self.db.reading() as session:
            return [EncoderInfo.of(row) for row in session.scalars(select(Encoder).order_by(Encoder.id))]
