"""Bank: the Python API over a bank database, a small facade over rooms with one job each
(store/): encoders, concepts (read), sentences (in and out), directions (with versions and
tunings), the trash; and sharing (sharing/transfer.py). The CLI and the studio are faces over it.

A sentence flows generator -> cleaning -> encoder -> stats -> db, one transaction per batch, so an
interrupted run loses at most the batch in flight. A direction flows db -> stats -> caller.
"""
from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

from db.engine import Database, NoDatabase
from db.urls import BankUnavailable, database_url, default_database
from direction_bank.errors import BankError, first_line
from direction_bank.names import check_name
from direction_bank.store.concepts import Concepts
from direction_bank.store.directions import Directions
from direction_bank.store.encoders import Encoders
from direction_bank.store.sentences import Sentences
from direction_bank.store.trash import Trash

if TYPE_CHECKING:
    from direction_bank.store.records import DirectionResult
    from direction_bank.text.encoder import TextEncoder


def _through(room: str, method):
    """A Bank method that is `method` of the room held in attribute `room` (same signature and
    docstring, so help() and the API reference read as before)."""
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        return method(getattr(self, room), *args, **kwargs)

    return call


class Bank:
    """A bank of concepts (sentences and embedding statistics) and named directions.

    Each room is an attribute, usable alone: `encoder_records`, `concept_room`, `sentence_room`,
    `direction_room`, `trash_room`; the methods below are theirs."""

    def __init__(
        self,
        database: str | os.PathLike | None = None,
        *,
        create: bool = True,
        read_only: bool = False,
        busy_timeout_s: float | None = None,
    ):
        """Open the bank at a path or SQLAlchemy URL (default: the user data directory).

        With create=False a missing bank is an error and no file is made; read_only also never
        writes to the file (another program's database is refused either way, untouched)."""
        from sqlalchemy.exc import NoSuchModuleError

        url = database_url(database if database is not None else default_database())
        try:
            self.db = Database(url, create=create, read_only=read_only, busy_timeout_s=busy_timeout_s)
        except (ModuleNotFoundError, NoSuchModuleError) as error:  # mysql://, a driver not installed
            raise BankError(f"cannot open {url.split('://')[0]}:// banks here ({first_line(error)}); dbank "
                            "keeps banks in SQLite (a path) or PostgreSQL (pip install -e '.[postgres]')") from None
        except NoDatabase as error:
            raise BankError(f"{error} (add a concept first: dbank add-concept NAME)") from None
        except BankUnavailable as error:
            raise BankError(str(error)) from None
        self.encoder_records = Encoders(self.db)
        self.concept_room = Concepts(self.db)
        self.sentence_room = Sentences(self.db, self.encoder_records, self.concept_room)
        self.direction_room = Directions(self.db, self.encoder_records, self.concept_room)
        self.trash_room = Trash(self.db)

    def close(self) -> None:
        """Release the database connections."""
        self.db.dispose()

    def __enter__(self) -> Bank:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # encoders
    encoder_id = _through("encoder_records", Encoders.id_of)
    register_encoder = _through("encoder_records", Encoders.register)
    encoders = _through("encoder_records", Encoders.all)

    # concepts and their sentences
    add_sentences = _through("sentence_room", Sentences.add)
    fill_concept = _through("sentence_room", Sentences.fill)
    remove_sentence = _through("sentence_room", Sentences.remove)
    sentence_count = _through("concept_room", Concepts.sentence_count)
    concepts = _through("concept_room", Concepts.summaries)
    describe = _through("concept_room", Concepts.describe)
    sentences = _through("concept_room", Concepts.sentences)
    statistics = _through("concept_room", Concepts.statistics)
    common_encoder = _through("concept_room", Concepts.common_encoder)
    similar = _through("concept_room", Concepts.similar)
    remove_concept = _through("concept_room", Concepts.remove)

    # directions
    diff = _through("direction_room", Directions.diff)
    paired_diff = _through("direction_room", Directions.paired_diff)
    save_direction = _through("direction_room", Directions.save)
    direction = _through("direction_room", Directions.get)
    add_tuning = _through("direction_room", Directions.add_tuning)
    directions = _through("direction_room", Directions.listing)
    direction_history = _through("direction_room", Directions.history)
    version_with_fingerprint = _through("direction_room", Directions.version_with_fingerprint)
    restore_direction_version = _through("direction_room", Directions.restore_version)
    compose_direction = _through("direction_room", Directions.compose)
    rename_direction = _through("direction_room", Directions.rename)
    remove_direction = _through("direction_room", Directions.remove)

    # the trash
    trash = _through("trash_room", Trash.listing)
    restore = _through("trash_room", Trash.restore)
    empty_trash = _through("trash_room", Trash.empty)

    # sharing, and the names in use

    def export_direction(self, direction: str | DirectionResult, path: str | os.PathLike,
                         overwrite: bool = False, names_only: bool = False) -> dict:
        """Write a saved direction (by name) or a fresh one to a dbank file; returns its metadata.
        An existing file is replaced only with `overwrite` (see output_files.write_output); with
        `names_only` models are named without their folders (a server's download)."""
        from direction_bank.sharing.transfer import export_direction

        if isinstance(direction, str):
            direction = self.direction(direction)
        return export_direction(self.db, direction, path, overwrite, names_only)

    def export_concept(self, concept: str, path: str | os.PathLike, model: str | None = None,
                       overwrite: bool = False, names_only: bool = False) -> dict:
        """Write a concept bundle (statistics and sentences) for another bank to import and extend."""
        from direction_bank.sharing.transfer import export_concept

        return export_concept(self.db, concept, self.common_encoder(concept, concept, model), path, overwrite,
                              names_only)

    def import_file(self, file, encoder: TextEncoder, name: str | None = None,
                    strict: bool = False, count: int | None = None, overwrite: bool = False):
        """Import a dbank direction or concept file, or a pix2pix-zero concept mean (.pt), given
        as a path or an already validated files.SharedFile, checked against `encoder`; returns
        an ImportReport. A name in use is refused unless `overwrite` (see transfer.import_file)."""
        from direction_bank.sharing.files import SharedFile, read_shared_file
        from direction_bank.sharing.transfer import PIX2PIX_ZERO_SENTENCES, import_file

        shared = file if isinstance(file, SharedFile) else read_shared_file(file)
        return import_file(self.db, shared, self.register_encoder(encoder), name, strict,
                           count or PIX2PIX_ZERO_SENTENCES, overwrite)

    def import_files(self, shared_files: list, encoder: TextEncoder, strict: bool = False, count: int | None = None,
                     overwrite: bool = False, skip_bad: bool = False, unreadable: tuple[str, ...] = ()):
        """Import several validated files.SharedFile (a Hub repo's) under their own names, all or
        nothing unless `skip_bad` (see transfer.import_files); (reports, lines of those left out)."""
        from direction_bank.sharing.transfer import PIX2PIX_ZERO_SENTENCES, import_files

        return import_files(self.db, shared_files, self.register_encoder(encoder), strict,
                            count or PIX2PIX_ZERO_SENTENCES, overwrite, skip_bad, unreadable)

    def earlier_import(self, shared, name: str | None = None) -> str | None:
        """The name a shared file (same bytes) was imported under and still holds, unless `name`
        asks for another one (importing it again is then a no-op); else None."""
        from direction_bank.sharing.transfer import earlier_import

        return earlier_import(self.db, shared, name)

    def name_in_use(self, kind: str, name: str) -> bool:
        """Whether a direction (kind 'direction') or a concept (any other kind) has this name."""
        from direction_bank.store.rows import name_in_use

        with self.db.reading() as session:
            return name_in_use(session, kind, check_name(name, kind))

    def unknown_name(self, name: str) -> BankError:
        """The one-line error for a name no concept or direction has, with the nearest names of
        both that the bank holds."""
        from direction_bank.names import did_you_mean
        from direction_bank.store.rows import live_names

        with self.db.reading() as session:
            known = live_names(session, "concept") + live_names(session, "direction")
        return BankError(f"no concept or direction named {name!r} in the bank{did_you_mean(name, known)}")

    def lookalike(self, kind: str, name: str) -> str | None:
        """A direction (kind 'direction') or concept name in the bank that `name` differs from
        only by look-alike characters ('hоrse' with a Cyrillic о against 'horse'), or None."""
        from direction_bank.names import lookalike
        from direction_bank.store.rows import live_names

        with self.db.reading() as session:
            names = live_names(session, kind)
        return lookalike(check_name(name, kind), names)
