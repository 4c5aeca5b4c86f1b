"""Edit records: the JSON file written beside an image's edits (STEM.record-HASH.json) saying what
each picture is: the input photo, the caption, the model and settings, and per edit its
direction, the concepts it goes from and to, its scale and guidance, and whether it is a
baseline. `dbank eval` scores a folder from these records alone."""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from direction_bank.errors import BankError

RECORD_FORMAT = "dbank-edit-record"
BASELINES = (None, "word-swap")  # an edit's baseline: None for a bank direction
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
        if not isinstance(getattr(entry, key), str) or not getattr(entry, key) or "\0" in getattr(entry, key):
            raise BankError(f"{where}: the edit's {key} is not a name")
    for key in ("source", "target"):
        value = getattr(entry, key)
        if value is not None and (not isinstance(value, str) or not value or "\0" in value):
            raise BankError(f"{where}: the edit's {key} {str(value)[:40]!r} is not a concept name")
    if entry.baseline not in BASELINES:
        raise BankError(f"{where}: the edit's baseline {str(entry.baseline)[:40]!r} is none dbank knows "
                        f"({', '.join(b for b in BASELINES if b)})")
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
    if not isinstance(masks, dict) or not all(isinstance(v, str) and "\0" not in v and Path(v).name == v
                                              for v in masks.values()):
        raise BankError(f"{path}: masks must map words to file names in the record's folder")
    fields = {key: data.get(key) for key in EditRecord.__dataclass_fields__ if key not in ("edits", "masks", "folder")}
    if not isinstance(fields["input"], str) or not isinstance(fields["caption"], str) or "\0" in fields["input"]:
        raise BankError(f"{path}: no input image or caption")
    if (not isinstance(fields["reconstruction"], str) or "\0" in fields["reconstruction"]
            or Path(fields["reconstruction"]).name != fields["reconstruction"]):
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


MAX_PARAMETERS_CHARS = 65_536  # a 'parameters' chunk is about a kilobyte
MAX_PARAMETERS_DEPTH = 6  # it nests two levels (the settings, the edit)


def _depth(value) -> int:
    """How deeply a JSON value nests (a number: 0, a list of numbers: 1), counted without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _whole_in(value, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} {value!r}: not a whole number")
    if not low <= value <= high:
        raise ValueError(f"{what} {value}: use a whole number from {low} to {high}")
    return value


def _number_in(value, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} {value!r}: not a number")
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{what} {value}: use a finite number from {low:g} to {high:g}")
    return float(value)


def _checked_settings(data: dict, entry: EditEntry) -> None:
    """The settings a PNG carries, by the bounds every face's options share (sd_models.settings);
    ValueError naming the first one out of them."""
    from sd_models.settings import SEED_RANGE, SETTING_BOUNDS, SIZE_RANGE

    for key in ("caption", "model"):
        if not isinstance(data.get(key), str) or len(data[key]) > 4096:
            raise ValueError(f"{key}: not text")
    _whole_in(data.get("seed"), "seed", *SEED_RANGE)
    _whole_in(data.get("steps"), "steps", *SETTING_BOUNDS["steps"])
    if _whole_in(data.get("size"), "size", *SIZE_RANGE) % 8:
        raise ValueError(f"size {data['size']}: use a multiple of 8 from {SIZE_RANGE[0]} to {SIZE_RANGE[1]}")
    _number_in(data.get("guidance_scale"), "guidance scale", *SETTING_BOUNDS["guidance_scale"])
    _number_in(entry.scale, "scale", *SETTING_BOUNDS["scale"])
    _number_in(entry.xa_guidance, "xa-guidance", *SETTING_BOUNDS["xa_guidance"])
    if entry.fingerprint is not None and not (isinstance(entry.fingerprint, str)
                                              and re.fullmatch(r"[0-9a-f]{64}", entry.fingerprint)):
        raise ValueError(f"fingerprint {str(entry.fingerprint)[:70]!r}: not a SHA-256")
    if not isinstance(data.get("input"), str):
        raise ValueError("input: not a file name")


def read_parameters(path: str | Path) -> tuple[dict, EditEntry]:
    """(the settings, the edit) a dbank edit's PNG carries in its 'parameters' chunk, checked
    before anything is loaded: a regular file, at most MAX_INPUT_PIXELS (as photos), a chunk of
    at most MAX_PARAMETERS_CHARS nesting at most MAX_PARAMETERS_DEPTH, each field of its type and
    within the bounds the options have. One line naming the file and the fault otherwise."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    from sd_models.settings import MAX_INPUT_PIXELS

    path = Path(path)
    if not path.exists():
        raise BankError(f"{path}: no such file")
    if not path.is_file():
        raise BankError(f"{path}: not a regular file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, in one line
            with Image.open(path) as picture:
                width, height = picture.size
                if width * height > MAX_INPUT_PIXELS:
                    raise BankError(f"{path}: {width}x{height} pixels, over the limit of "
                                    f"{MAX_INPUT_PIXELS // 1_000_000} megapixels")
                text = getattr(picture, "text", {}).get("parameters")
    except BankError:
        raise
    except Image.DecompressionBombError:
        raise BankError(f"{path}: over the limit of {MAX_INPUT_PIXELS // 1_000_000} megapixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise BankError(f"{path}: not an image, or a damaged one ({type(error).__name__})") from None
    if isinstance(text, str) and len(text) > MAX_PARAMETERS_CHARS:
        raise BankError(f"{path}: its settings chunk holds {len(text)} characters, over "
                        f"{MAX_PARAMETERS_CHARS}; not dbank's")
    try:
        data = json.loads(text) if isinstance(text, str) and text else None
    except (json.JSONDecodeError, RecursionError):
        data = None
    if not isinstance(data, dict) or data.get("format") != PARAMETERS_FORMAT:
        raise BankError(f"{path}: carries no dbank edit settings (a PNG that dbank edit wrote does)")
    if _depth(data) > MAX_PARAMETERS_DEPTH:
        raise BankError(f"{path}: its settings nest deeper than {MAX_PARAMETERS_DEPTH} levels; not dbank's")
    entry = _entry(data.get("edit"), str(path))
    try:
        _checked_settings(data, entry)
    except ValueError as error:
        raise BankError(f"{path}: its settings' {error}") from None
    return data, entry
