"""The studio's checks of what a visitor types or uploads: numbers within bounds, row ids, sizes,
photos, in the page's words; a bad one is a one-line FieldError naming its control."""
from __future__ import annotations

import hashlib
from contextlib import contextmanager
from pathlib import Path

from direction_bank.errors import BankError, FieldError
from sd_models.settings import SIZE_RANGE

MAX_TUNE_VALUES = 8  # scales (and guidances) one Tune click may try


@contextmanager
def replace_asked(field: str):
    """A name in use, said in the page's words: the box to tick, not the CLI's --overwrite."""
    from direction_bank.errors import NameTaken

    try:
        yield
    except NameTaken as error:
        raise BankError(f"{str(error).split(';')[0]}; tick 'replace' beside '{field}' to store this as its "
                        "next version (the old one is kept), or choose another name") from None



def file_digest(path) -> str:
    """SHA-256 of a file's bytes: the memory of recent images is keyed by content, not by path."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def opened_photo(image: str, size: int):
    """load_image of an uploaded photo; a refusal names the file as the visitor knows it, not
    the server's path of its copy."""
    from editor.pipeline import EditorError, load_image

    try:
        return load_image(image, size)
    except EditorError as error:
        raise EditorError(str(error).replace(str(image), Path(image).name)) from None


def whole(value, what: str, low: int, high: int, field: str | None = None) -> int:
    """`value` as an int in [low, high], or a one-line FieldError of `field` (`what` by default)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FieldError(field or what, f"{what} {shown_value(value)}: not a number; use a whole number from "
                                        f"{low} to {high}") from None
    if not number.is_integer() or not low <= number <= high:
        raise FieldError(field or what, f"{what} {shown_value(value)}: use a whole number from {low} to {high}")
    return int(number)


def finite(value, what: str, low: float, high: float, field: str | None = None) -> float:
    """`value` as a finite float in [low, high], or a one-line FieldError of `field`."""
    import math

    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FieldError(field or what, f"{what} {shown_value(value)}: not a number; use a number from "
                                        f"{low:g} to {high:g}") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise FieldError(field or what, f"{what} {shown_value(value)}: use a finite number from {low:g} to {high:g}")
    return number


def row_id(value, what: str, table: str) -> int:
    """A row's id as typed (or filled by clicking the row), or one line that points at the table."""
    try:
        return whole(value, what, 1, 2**63 - 1)
    except FieldError:
        raise FieldError(what, f"{what} {shown_value(value)}: not an id of the {table}; click a row there to "
                               "fill it in") from None


def shown_value(value) -> str:
    """A typed value as a message quotes it: empty says so, a long one is cut."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return "(empty)"
    return repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."


def image_size(value) -> int:
    size = whole(value, "size", *SIZE_RANGE)
    if size % 8:
        raise FieldError("size", f"size {size}: use a multiple of 8 from {SIZE_RANGE[0]} to {SIZE_RANGE[1]}")
    return size


def numbers(text, what: str, low: float, high: float) -> list[float]:
    """Comma-separated finite numbers in [low, high] (at most MAX_TUNE_VALUES), or one line."""
    parts = [part.strip() for part in str(text or "").split(",") if part.strip()]
    if not parts:
        raise BankError(f"{what}: give comma-separated numbers")
    if len(parts) > MAX_TUNE_VALUES:
        raise BankError(f"{what}: {len(parts)} values; at most {MAX_TUNE_VALUES}")
    return list(dict.fromkeys(finite(part, what, low, high) for part in parts))
