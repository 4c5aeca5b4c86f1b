"""Moving directions and concepts between banks: export to dbank files, import dbank files and
pix2pix-zero concept means, checked against the bank's text encoder before anything is stored."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select

from db.models import Concept, ImportedFile, Sentence, SentenceEncoding
from direction_bank.text.cleaning import content_hash, has_control_characters
from direction_bank.errors import BankError, NameTaken
from direction_bank.sharing.files import POOLED, FileRejected, SharedFile, check_values, write_shared_file
from direction_bank.names import check_direction_name, check_name
from direction_bank.store.stats import RunningStats
from direction_bank.store.records import DirectionResult, EncoderInfo, hub_url
from direction_bank.store.rows import (
    add_direction, concept_id, latest_direction_version, name_in_use, read_statistics,
    write_statistics,
)
from direction_bank.store.trash import trash_concept

if TYPE_CHECKING:
    from db.engine import Database

# pix2pix-zero averaged about this many sentences per concept mean; its files do not say
PIX2PIX_ZERO_SENTENCES = 1000


@dataclass
class ImportReport:
    """What an import did: the kind and name stored, or that the file was imported before."""

    path: str
    kind: str
    name: str
    already_imported: bool = False
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return dict(self.__dict__)

    def summary(self, file: str) -> str:
        """One line for a person: what was stored from `file` (as the user named it)."""
        if self.already_imported:
            return f"{file} was imported before, as {self.kind} {self.name}; nothing to do"
        return f"imported {self.kind} {self.name} from {file}"


def _generators(session, concept_names: list[str]) -> list[dict]:
    rows = session.execute(
        select(Sentence.generator, Sentence.generator_model, Sentence.prompt_version)
        .join(Concept)
        .where(Concept.name.in_(concept_names))
        .distinct()
    ).all()
    return [{"generator": g, "model": m, "prompt_version": p} for g, m, p in rows]


def model_name(model: str | None) -> str | None:
    """A model as a file offered to strangers names it: a local folder or file by its own name
    (no server path), a hub id as it is."""
    if not model:
        return model
    path = Path(model)
    return path.name if path.is_absolute() or path.exists() else model


def _named(meta: dict) -> dict:
    """File metadata with every model named by model_name (the encoder, the base model, the
    sentence writers), for a download from a server."""
    meta = {**meta, "base_model": model_name(meta["base_model"]),
            "encoder": {**meta["encoder"], "model": model_name(meta["encoder"]["model"])},
            "generators": [{**g, "model": model_name(g["model"])} for g in meta.get("generators") or []]}
    if "sentences" in meta:
        meta["sentences"] = [{**s, "generator_model": model_name(s["generator_model"])} for s in meta["sentences"]]
    return meta


def export_direction(db: Database, direction: DirectionResult, path: str | os.PathLike,
                     overwrite: bool = False, names_only: bool = False) -> dict:
    """Write a direction (saved or fresh from diff) to a dbank file; returns its metadata.
    The source and target means travel too when the bank still holds them unchanged. An SDXL
    direction carries each tensor's pooled part beside it (`direction_pooled`, ...). With
    `names_only` the metadata names models without their folders (see _named)."""
    tensors = _with_pooled("direction", direction.tensor, direction.pooled)
    with db.reading() as session:
        concepts = {}
        for role, name, count in (("source", direction.source, direction.source_count),
                                  ("target", direction.target, direction.target_count)):
            found = session.scalar(select(Concept.id).where(Concept.name == name)) if name else None
            stats = read_statistics(session, found, direction.encoder) if found else None
            if stats is not None and stats.count == count:
                tensors.update(_with_pooled(f"{role}_mean", *direction.encoder.split(stats.mean)))
            concepts[role] = {"name": name, "sentence_count": count} if name else None
        generators = _generators(session, [c["name"] for c in concepts.values() if c])
    meta = {
        "name": direction.name,
        **concepts,
        "recipe": direction.recipe,
        "confidence": direction.confidence,
        "tuning": direction.tuning,
        "generators": generators,
        "base_model": direction.encoder.model,
        "encoder": direction.encoder.as_dict(),
        "shape": list(direction.tensor.shape),
        "dtype": "float32",
    }
    return write_shared_file(path, "direction", tensors, overwrite=overwrite, meta=_named(meta) if names_only else meta)


def export_concept(db: Database, concept: str, encoder: EncoderInfo, path: str | os.PathLike,
                   overwrite: bool = False, names_only: bool = False) -> dict:
    """Write a concept bundle: its statistics under `encoder` and the sentences inside them
    (with `names_only`, models named without their folders)."""
    with db.reading() as session:
        found = concept_id(session, concept)
        origin = session.get(Concept, found).origin
        stats = read_statistics(session, found, encoder)
        if stats is None:
            raise BankError(f"concept {concept!r} has no embeddings from {encoder.model!r}")
        rows = session.scalars(
            select(Sentence)
            .join(SentenceEncoding)
            .where(Sentence.concept_id == found, SentenceEncoding.encoder_id == encoder.id)
            .order_by(Sentence.id)
        ).all()
        sentences = [
            {"text": r.text, "generator": r.generator, "generator_model": r.generator_model,
             "prompt_version": r.prompt_version, "settings": r.settings,
             "created_at": r.created_at.isoformat()}
            for r in rows
        ]
        generators = _generators(session, [concept])
    tensors = {**_with_pooled("mean", *encoder.split(stats.mean)), **_with_pooled("m2", *encoder.split(stats.m2))}
    meta = {
        "name": concept,
        "origin": origin,
        "count": stats.count,
        "sentence_count": len(sentences),
        "generators": generators,
        "base_model": encoder.model,
        "encoder": encoder.as_dict(),
        "sentences": sentences,
    }
    return write_shared_file(path, "concept", tensors, overwrite=overwrite, meta=_named(meta) if names_only else meta)


def _with_pooled(name: str, tokens: np.ndarray, pooled: np.ndarray | None) -> dict[str, np.ndarray]:
    """{name: tokens} and, for SDXL, {name_pooled: pooled}."""
    return {name: tokens} if pooled is None else {name: tokens, name + POOLED: pooled}


def _sample(shared: SharedFile, name: str, encoder: EncoderInfo) -> np.ndarray:
    """A file's tensor with its pooled part, in the encoder's sample layout (float64)."""
    tensors = shared.tensors
    return encoder.joined(tensors[name], tensors.get(name + POOLED)).astype(np.float64)


def _check_encoder(shared: SharedFile, encoder: EncoderInfo, strict: bool, report: ImportReport) -> None:
    """Refuse a file made for the other kind of model (SDXL or SD 1.x/2.x) or whose tensors do
    not have exactly the shapes of `encoder`'s embeddings; warn (or with `strict` refuse) when
    it was made with other weights."""
    if bool(shared.pooled_size) != bool(encoder.pooled_size):
        raise BankError(
            f"{shared.path.name} was made for {shared.model_kind}, but {encoder.describe()} is "
            f"{encoder.kind}: SDXL and SD 1.x/2.x embeddings never mix; import it into a bank with "
            f"--model set to {'an SDXL' if shared.pooled_size else 'an SD 1.x/2.x'} model"
        )
    if shared.hidden_size != encoder.hidden_size:
        raise BankError(
            f"{shared.path.name} was made with a {shared.hidden_size}-d text encoder, but "
            f"{encoder.model!r} is {encoder.hidden_size}-d; import it into a bank for that model"
        )
    for name, tensor in shared.tensors.items():
        expected = (encoder.pooled_size,) if name.endswith(POOLED) else encoder.shape
        expected = (1, *expected) if name.startswith("direction") else expected
        if tensor.shape != expected:
            raise FileRejected(
                f"{shared.path.name}: tensor {name!r} has shape {list(tensor.shape)}, but {encoder.model!r} "
                f"embeds sentences as {list(expected)}"
            )
    made_with = shared.meta.get("encoder")
    if made_with is None:
        report.warnings.append(
            f"{shared.path.name} does not say which text encoder made it; taken to be {encoder.model!r}"
        )
    elif made_with["fingerprint"] != encoder.fingerprint:
        message = (f"{shared.path.name} was made with other text-encoder weights "
                   f"({made_with['model']!r}, {made_with['fingerprint'][:12]}) than "
                   f"{encoder.model!r} ({encoder.fingerprint[:12]})")
        if strict:
            raise BankError(message)
        report.warnings.append(message)


def import_name(shared: SharedFile, name: str | None = None) -> str:
    """The name a file is imported under: `name`, else the name in its metadata, else its stem;
    checked by the rule of its kind (check_direction_name, check_name), one line if refused."""
    if shared.kind != "direction":
        return check_name(name or shared.meta.get("name") or shared.path.stem)
    try:
        return check_direction_name(name or shared.meta.get("name") or shared.path.stem)
    except BankError as error:
        raise BankError(f"{error}{'' if name else f' (the name {shared.path.name} gives itself: pass --name)'}") from None


def import_file(db: Database, shared: SharedFile, encoder: EncoderInfo, name: str | None = None,
                strict: bool = False, count: int = PIX2PIX_ZERO_SENTENCES, overwrite: bool = False) -> ImportReport:
    """Store a validated file as a direction or concept under `encoder`, all or nothing.
    A file imported before (same bytes, same name) is a no-op. A name in use is refused unless
    `overwrite`: a direction then becomes the name's next version, a concept's old holder goes
    to the trash; nothing is lost either way."""
    report = ImportReport(str(shared.path), shared.kind, import_name(shared, name))
    earlier = earlier_import(db, shared, name)
    if earlier is not None:
        report.name, report.already_imported = earlier, True
        return report
    _check_encoder(shared, encoder, strict, report)
    db.write(lambda session: _store(session, shared, encoder, report, count, overwrite))
    return report


def import_files(db: Database, shared_files: list[SharedFile], encoder: EncoderInfo, strict: bool = False,
                 count: int = PIX2PIX_ZERO_SENTENCES, overwrite: bool = False, skip_bad: bool = False,
                 unreadable: tuple[str, ...] = ()) -> tuple[list[ImportReport], list[str]]:
    """Several validated files (a Hub repo's) under their own names, all or nothing: each is
    checked (the encoder, its name in the bank and among the others) before one transaction
    stores them all. A refused file (or one of `unreadable`, the lines of files that could not
    be read) refuses the whole import in one line naming it, unless `skip_bad`, which leaves it
    out. Returns (a report per file stored or imported before, a line per file left out)."""
    from direction_bank.errors import first_line

    accepted, refused, names = [], list(unreadable), set()
    for shared in shared_files:
        where = shared.hub["path"] if shared.hub else shared.path.name
        try:
            report = ImportReport(str(shared.path), shared.kind, import_name(shared))
            earlier = earlier_import(db, shared)
            if earlier is not None:
                report.name, report.already_imported = earlier, True
            else:
                _check_encoder(shared, encoder, strict, report)
                if (shared.kind, report.name) in names:
                    raise NameTaken(f"another file here is also named {report.name!r}")
                with db.reading() as session:
                    if not overwrite and name_in_use(session, shared.kind, report.name):
                        raise NameTaken(f"a {shared.kind} named {report.name!r} exists (--overwrite stores "
                                        "over it; nothing is lost)")
            names.add((shared.kind, report.name))
            accepted.append((shared, report))
        except BankError as error:
            refused.append(f"{where}: {first_line(error)}")
    if refused and not skip_bad:
        others = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        raise BankError(f"{len(refused)} of {len(shared_files) + len(unreadable)} files refused, nothing stored: "
                        f"{refused[0]}{others}; "
                        "--skip-bad imports the others")

    def store(session) -> None:
        for shared, report in accepted:
            if not report.already_imported:
                _store(session, shared, encoder, report, count, overwrite)

    db.write(store)
    return [report for _, report in accepted], refused


def _store(session, shared: SharedFile, encoder: EncoderInfo, report: ImportReport, count: int,
           overwrite: bool) -> None:
    """One checked file stored as its kind, and remembered as imported (by its bytes)."""
    if shared.kind == "direction":
        _store_direction(session, shared, encoder, report, overwrite)
    else:
        _store_concept(session, shared, encoder, report, count, overwrite)
    session.merge(ImportedFile(sha256=shared.sha256, kind=shared.kind, name=report.name))


def earlier_import(db: Database, shared: SharedFile, name: str | None = None) -> str | None:
    """The name a file (same bytes) was imported under, when that is still in the bank and
    `name` asks for no other one; else None."""
    with db.reading() as session:
        earlier = session.get(ImportedFile, shared.sha256)
        # a file whose import was removed since is imported again
        if earlier is None or (name is not None and check_name(name) != earlier.name):
            return None
        return earlier.name if name_in_use(session, shared.kind, earlier.name) else None


def _store_direction(session, shared: SharedFile, encoder: EncoderInfo, report: ImportReport, overwrite: bool) -> None:
    latest = latest_direction_version(session, report.name)
    if latest and not overwrite:
        raise NameTaken(f"a direction named {report.name!r} exists; pass --name, or --overwrite to store "
                        f"this one as version {latest + 1} (the old one is kept)")
    meta = shared.meta
    source, target = meta.get("source") or {}, meta.get("target") or {}
    for joined in (source, target):
        if joined.get("name") is not None:
            check_name(joined["name"])
    add_direction(session, report.name, DirectionResult(
        shared.tensors["direction"], encoder, source.get("name"), target.get("name"),
        source.get("sentence_count"), target.get("sentence_count"), report.name,
        meta.get("confidence"), {"file": shared.path.name, "sha256": shared.sha256, "made_from": meta.get("recipe"),
                                 **({"hub": shared.hub} if shared.hub else {})},
        shared.tensors.get("direction" + POOLED), tuning=meta.get("tuning"),
    ), latest + 1)


def _store_concept(session, shared: SharedFile, encoder: EncoderInfo, report: ImportReport, count: int,
                   overwrite: bool) -> None:
    path = shared.path
    if session.scalar(select(Concept.id).where(Concept.name == report.name)):
        if not overwrite:
            raise NameTaken(f"a concept named {report.name!r} exists; pass --name, or --overwrite to move "
                            "that one to the trash first")
        trash_concept(session, report.name)
        report.warnings.append(f"the concept {report.name!r} that was in the bank is in the trash now "
                               f"(dbank restore {report.name} --as NAME brings it back)")
    if shared.kind == "concept":
        sentences = shared.meta.get("sentences") or []
        stats_count, origin = shared.meta.get("count"), shared.meta.get("origin")
        if shared.hub:
            origin = f"{hub_url(shared.hub)} (sha256 {shared.sha256[:12]})" + (f"; {origin}" if origin else "")
        if not isinstance(stats_count, int) or stats_count < max(len(sentences), 1):
            raise BankError(f"{path.name}: count {stats_count!r} does not fit its sentences")
        if any(has_control_characters(s["text"]) for s in sentences):
            raise FileRejected(f"{path.name}: a sentence holds control characters")
        if len({content_hash(s["text"]) for s in sentences}) != len(sentences):
            raise BankError(f"{path.name}: the bundle repeats a sentence")
        m2 = _sample(shared, "m2", encoder)
    else:
        sentences, stats_count = [], count
        origin = f"pix2pix-zero file {path.name} ({shared.meta['dtype']})"
        m2 = np.zeros_like(shared.tensors["mean"])
    check_values(path, "m2", m2 / stats_count, variance=True)
    concept = Concept(name=report.name, origin=origin)
    session.add(concept)
    session.flush()
    rows = [
        Sentence(concept_id=concept.id, text=s["text"], content_hash=content_hash(s["text"]),
                 generator=s.get("generator") or "import", generator_model=s.get("generator_model"),
                 prompt_version=s.get("prompt_version"), settings=s.get("settings"))
        for s in sentences
    ]
    session.add_all(rows)
    session.flush()
    session.add_all(SentenceEncoding(sentence_id=r.id, encoder_id=encoder.id) for r in rows)
    write_statistics(session, concept.id, encoder, RunningStats(
        stats_count, _sample(shared, "mean", encoder), m2.astype(np.float64)))
