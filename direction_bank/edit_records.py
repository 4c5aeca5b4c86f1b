"""Edit records: the JSON file written beside an image's edits (STEM.record-HASH.json) saying what
each picture is: the input photo, the caption, the model and settings, and per edit its
direction, the concepts it goes from and to, its scale and guidance, and whether it is a
baseline. `dbank eval` scores a folder from these records alone."""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from direction_bank.errors import BankError

RECORD_FORMAT = "dbank-edit-record"
RECORD_VERSION = 1
MAX_RECORD_BYTES = 4_000_000  # a record lists an image's edits: kilobytes, not megabytes


@dataclass
class EditEntry:
    """One edited picture: its file (in the record's folder), the direction's label, concepts and
    settings; `baseline` is None for a bank direction, 'word-swap' for the two-prompt one."""

    label: str
    file: str
    direction: str
    source: str | None
    target: str | None
    scale: float
    xa_guidance: float
    baseline: str | None = None
    fingerprint: str | None = None  # SHA-256 of the direction as the bank stores it (before the scale)


@dataclass
class EditRecord:
    """An image's edits and how they were made (see the module docstring)."""

    input: str
    caption: str
    model: str
    size: int
    seed: int
    steps: int
    guidance_scale: float
    regularised: bool
    reconstruction: str
    edits: list[EditEntry]
    masks: dict[str, str] = field(default_factory=dict)  # caption word -> grey attention map file
    folder: Path | None = None  # where the record was read from (not stored)

    def as_json(self) -> str:
        """The record's file contents."""
        data = {key: value for key, value in asdict(self).items() if key != "folder"}
        return json.dumps({"format": RECORD_FORMAT, "version": RECORD_VERSION, **data}, indent=2)

    def path_of(self, name: str) -> Path:
        """A file the record names, in the record's folder."""
        return (self.folder or Path(".")) / name


def record_path(folder: Path, stem: str, labels: list[str], settings: dict) -> Path:
    """STEM.record-HASH.json: one per image and run, named after what the run made, so two runs
    into one folder (other directions, other settings) keep their own records."""
    key = json.dumps([labels, settings], sort_keys=True)
    return folder / f"{stem}.record-{hashlib.sha256(key.encode()).hexdigest()[:10]}.json"


def _entry(data, where: str) -> EditEntry:
    if not isinstance(data, dict):
        raise BankError(f"{where}: an edit is not a JSON object")
    try:
        entry = EditEntry(**{key: data.get(key) for key in EditEntry.__dataclass_fields__})
    except TypeError as error:
        raise BankError(f"{where}: {error}") from None
    for key in ("label", "file", "direction"):
        if not isinstance(getattr(entry, key), str) or not getattr(entry, key):
            raise BankError(f"{where}: the edit's {key} is not a name")
    for key in ("scale", "xa_guidance"):
        value = getattr(entry, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BankError(f"{where}: the edit's {key} is not a finite number")
    if Path(entry.file).name != entry.file:
        raise BankError(f"{where}: the edit's file {entry.file!r} is not a name in the record's folder")
    return entry


def read_record(path: Path) -> EditRecord:
    """A record file, checked (one line naming the file and the fault otherwise); files it names
    must lie in its own folder."""
    path = Path(path)
    if not path.is_file():
        raise BankError(f"{path}: not a regular file")
    if path.stat().st_size > MAX_RECORD_BYTES:
        raise BankError(f"{path}: over {MAX_RECORD_BYTES // 1_000_000} MB; not an edit record")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BankError(f"{path}: not JSON ({error})") from None
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        raise BankError(f"{path}: not a dbank edit record")
    if data.get("version") != RECORD_VERSION:
        raise BankError(f"{path}: edit record version {data.get('version')!r}; this dbank reads {RECORD_VERSION}")
    edits = data.get("edits")
    if not isinstance(edits, list):
        raise BankError(f"{path}: no list of edits")
    masks = data.get("masks") or {}
    if not isinstance(masks, dict) or not all(isinstance(v, str) and Path(v).name == v for v in masks.values()):
        raise BankError(f"{path}: masks must map words to file names in the record's folder")
    fields = {key: data.get(key) for key in EditRecord.__dataclass_fields__ if key not in ("edits", "masks", "folder")}
    if not isinstance(fields["input"], str) or not isinstance(fields["caption"], str):
        raise BankError(f"{path}: no input image or caption")
    if not isinstance(fields["reconstruction"], str) or Path(fields["reconstruction"]).name != fields["reconstruction"]:
        raise BankError(f"{path}: the reconstruction is not a file name in the record's folder")
    return EditRecord(**fields, edits=[_entry(e, str(path)) for e in edits], masks=masks, folder=path.parent)


def records_in(folder: str | Path) -> tuple[list[EditRecord], list[str]]:
    """(records, one line per file that is not a readable record) of an edit output folder;
    a folder with no records at all is one line."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BankError(f"{folder}: not a folder")
    paths = sorted(folder.glob("*.record-*.json"))
    if not paths:
        raise BankError(f"{folder}: no edit records (STEM.record-*.json, which dbank edit writes beside its "
                        "pictures); edit into it first, or give images with --direction")
    records, errors = [], []
    for path in paths:
        try:
            records.append(read_record(path))
        except BankError as error:
            errors.append(str(error))
    return records, errors


PARAMETERS_FORMAT = "dbank-parameters"


def parameters_of(record: EditRecord, entry: EditEntry) -> str:
    """The 'parameters' text chunk of one edit's PNG: everything its record says about it (the
    input, caption, model and settings, and this edit's direction, fingerprint, scale and
    guidance) and the dbank that made it, as JSON."""
    from direction_bank import __version__

    data = {key: value for key, value in asdict(record).items() if key not in ("folder", "edits", "masks")}
    return json.dumps({"format": PARAMETERS_FORMAT, "version": RECORD_VERSION, "dbank": __version__, **data,
                       "input": Path(record.input).name, "edit": asdict(entry)}, sort_keys=True)


def read_parameters(path: str | Path) -> tuple[dict, EditEntry]:
    """(the settings, the edit) a dbank edit's PNG carries in its 'parameters' chunk; one line
    naming the file when it is not such a picture."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as picture:
            text = getattr(picture, "text", {}).get("parameters")
    except FileNotFoundError:
        raise BankError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError) as error:
        raise BankError(f"{path}: not an image ({error})") from None
    try:
        data = json.loads(text) if text else None
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or data.get("format") != PARAMETERS_FORMAT:
        raise BankError(f"{path}: carries no dbank edit settings (a PNG that dbank edit wrote does)")
    entry = _entry(data.get("edit"), str(path))
    for key, kind in (("caption", str), ("model", str), ("size", int), ("seed", int), ("steps", int),
                      ("guidance_scale", (int, float))):
        if isinstance(data.get(key), bool) or not isinstance(data.get(key), kind):
            raise BankError(f"{path}: its settings' {key} is not {'text' if kind is str else 'a number'}")
    return data, entry
