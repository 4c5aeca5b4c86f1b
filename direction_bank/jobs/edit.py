"""The edit job's application-level pieces both faces call (cli/editing.py, cli/evaluation.py
and studio/actions.py): which directions an edit uses (read from the bank or files, each with its
fingerprint and any tuned setting), their shapes checked against the model, and the record of
an edit that goes inside every picture. A face only parses its input and renders the outcome."""
from __future__ import annotations

from typing import Callable, NamedTuple

from direction_bank.errors import BankError
from direction_bank.jobs.evaluate import RECONSTRUCTION
from direction_bank.names import file_label


class Resolved(NamedTuple):
    """A direction asked for: its label, its file-name part, (tokens [1, 77, D], pooled [1, P]
    or None), and the concepts it goes from and to where known (for edit records and eval)."""

    label: str
    name: str
    parts: tuple
    source: str | None = None
    target: str | None = None
    tuning: dict | None = None  # the settings dbank tune stored for it
    scale: float = 1.0  # what its parts were multiplied by (its tuned scale, when no scale is given)
    fingerprint: str | None = None  # SHA-256 of its unscaled parts as a bank stores them


def parts_fingerprint(parts) -> str:
    """SHA-256 of a direction's (tokens [1, 77, D], pooled [1, P] or None) as the bank stores
    it (DirectionResult.fingerprint: float32 little-endian, the tokens, then any pooled part)."""
    import hashlib

    from direction_bank.stats import tensor_to_blob

    tokens, pooled = parts
    return hashlib.sha256(tensor_to_blob(tokens) + (b"" if pooled is None else tensor_to_blob(pooled))).hexdigest()


def saved_directions(bank, names) -> list[tuple[str, Callable]]:
    """[(name, load)] for directions saved in `bank` (a name or NAME@VERSION); load() reads one
    as resolve_directions takes it."""
    return [(name, lambda name=name: direction_parts(bank.direction(name))) for name in names]


def direction_parts(direction) -> tuple:
    """((tokens, pooled), source, target, tuning) of a bank's DirectionResult."""
    return (direction.tensor, direction.pooled), direction.source, direction.target, direction.tuning


def resolve_directions(wanted, strict: bool = False) -> tuple[list[Resolved], list[str]]:
    """([Resolved], errors) of [(label, load)]: the directions that could be read, before any
    model loads (`strict`: the first that cannot is raised, as it is); each file label is
    distinct and never a reserved output name."""
    resolved, errors, used = [], [], set()
    for label, load in wanted:
        try:
            parts, source, target, tuning = load()
        except BankError as error:  # reported; the other directions still run
            if strict:
                raise
            errors.append(f"{label}: {error}")
            continue
        name = file_label(label, reserved=(RECONSTRUCTION,), part=True)
        if name in used:  # the same label twice (a saved direction and a file, say)
            name = file_label(f"{label}#{len(resolved)}", part=True)
        used.add(name)
        resolved.append(Resolved(label, name, parts, source, target, tuning, fingerprint=parts_fingerprint(parts)))
    return resolved, errors


def apply_tuning(entries: list[Resolved], scale: float | None, xa_guidance: float | None):
    """(entries, settings scale, xa guidance, notes) after jobs.tune.tuned_settings: each entry's
    parts multiplied by its own scale (its tuned one when no scale is given)."""
    from direction_bank.jobs.tune import tuned_settings

    scales, scale, xa_guidance, notes = tuned_settings([(e.label, e.tuning) for e in entries], scale, xa_guidance)
    entries = [entry._replace(parts=tuple(None if part is None else own * part for part in entry.parts), scale=own)
               if own != 1.0 else entry for entry, own in zip(entries, scales)]
    return entries, scale, xa_guidance, notes


def check_shapes(editor, resolved: list[Resolved], errors: list[str] | None = None) -> list[Resolved]:
    """The directions that fit the model's text encoder; each other one is appended to `errors`
    (without a list, the first is raised)."""
    from editor.pipeline import EditorError

    fitting = []
    for entry in resolved:
        try:
            editor.check_direction(entry.label, *entry.parts)
            fitting.append(entry)
        except EditorError as error:
            if errors is None:
                raise
            errors.append(f"{entry.label}: {error}")
    return fitting


def edit_record(image: str, caption: str, model: str, size: int, seed: int, settings, regularised: bool,
                chosen: list[Resolved], files: list[str], reconstruction: str = "", masks: dict | None = None):
    """The record of one image's edits (edit_records.EditRecord): each chosen direction with the
    file it went to, its concepts, its fingerprint and the scale it was used at (the settings'
    scale times its own)."""
    from direction_bank.edit_records import EditEntry, EditRecord

    edits = [EditEntry(entry.label, file, entry.label, entry.source, entry.target, settings.scale * entry.scale,
                       settings.xa_guidance, fingerprint=entry.fingerprint) for entry, file in zip(chosen, files)]
    return EditRecord(image, caption, model, size, seed, settings.steps, settings.guidance_scale, regularised,
                      reconstruction, edits, masks or {})


def settings_inside(record, pictures) -> None:
    """Put each edit's settings inside its picture (the 'parameters' PNG chunk, as A1111 keeps
    them), in the order of the record's edits."""
    from direction_bank.edit_records import parameters_of

    for entry, picture in zip(record.edits, pictures):
        picture.info["parameters"] = parameters_of(record, entry)
