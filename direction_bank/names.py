"""Names of concepts and directions (one rule on every engine), and the file names made from
them, which never collide and never leave the folder they are written to."""
from __future__ import annotations

import hashlib
import re
import unicodedata

from direction_bank.text.cleaning import normalise
from direction_bank.errors import BankError

MAX_NAME_LENGTH = 200  # characters; the columns hold 256 on every engine
# control (including ANSI escapes and NUL), format (invisible), surrogate (undecodable bytes),
# private-use and unassigned characters
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}
_UNSAFE_IN_FILE_NAMES = re.compile(r"[^A-Za-z0-9._-]+")
# 'NAME@N' names version N of a direction, so no direction name may end so (see check_direction_name)
VERSION_SUFFIX = re.compile(r"@\d+$")


def check_name(name: str, what: str = "concept") -> str:
    """The name normalised (NFKC, spaces collapsed), or a one-line error when it is empty, longer
    than MAX_NAME_LENGTH or holds control or invisible characters."""
    if not isinstance(name, str):
        raise BankError(f"a {what} name must be text, not {type(name).__name__}")
    normalised = normalise(name)
    if not normalised:
        raise BankError(f"a {what} name cannot be empty")
    if len(normalised) > MAX_NAME_LENGTH:
        raise BankError(f"a {what} name may have at most {MAX_NAME_LENGTH} characters, not {len(normalised)}")
    bad = next((c for c in normalised if unicodedata.category(c) in _REFUSED_CATEGORIES), None)
    if bad is not None:
        raise BankError(
            f"a {what} name cannot hold control or invisible characters (found U+{ord(bad):04X})"
        )
    return normalised


def check_direction_name(name: str) -> str:
    """A name a direction may be stored under: check_name's rule, and not ending in '@' and
    digits, which would read as a version reference ('h2z@1' is version 1 of 'h2z'). Every door
    that names a direction (save, compose, import, restore, rename; CLI, studio, file metadata)
    calls this; `dbank check` lists older names that break it."""
    name = check_name(name, "direction")
    if VERSION_SUFFIX.search(name):
        raise BankError(f"a direction name cannot end in @NUMBER ({name!r}): that names a version; "
                        "choose another name")
    return name


def file_label(name: str, reserved: tuple[str, ...] = (), part: bool = False) -> str:
    """A file-name part for `name`: the name itself when it is plain (letters, digits, '.', '_',
    '-', not starting with '.') and not `reserved` (nor 'attention-...'); otherwise a plain
    version of it with '~' and a hash of the name, so two names never share a file name. A
    `part` of a dotted name (STEM.DIRECTION.png) is plain only without dots, so the parts of
    two such names can never shift into each other (x + y.z against x.y + z)."""
    plain = _UNSAFE_IN_FILE_NAMES.sub("-", name).strip("-.")[:80] or "x"
    if (plain == name and name not in reserved and not name.startswith("attention-")
            and not (part and "." in name)):
        return name
    return f"{plain}~{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def lookalike_skeleton(name: str) -> str:
    """The name with every character that looks like a Latin one (Cyrillic а, Greek ο, ...)
    replaced by it (Unicode's confusables, through confusable_homoglyphs)."""
    from confusable_homoglyphs import confusables

    swaps = {}
    for found in confusables.is_confusable(name, greedy=True, preferred_aliases=["latin"]) or []:
        if found["homoglyphs"]:
            swaps[found["character"]] = found["homoglyphs"][0]["c"]
    return "".join(swaps.get(character, character) for character in name)


def lookalike(name: str, existing) -> str | None:
    """An existing name that `name` differs from only by look-alike characters, or None."""
    plain = name.isascii()
    candidates = [other for other in existing if other != name and not (plain and other.isascii())]
    if not candidates:
        return None
    skeleton = lookalike_skeleton(name)
    return next((other for other in candidates if lookalike_skeleton(other) == skeleton), None)


def did_you_mean(name: str, known) -> str:
    """'; did you mean 'horse'?' naming the known names closest to a mistyped `name`, or '' when
    none is close: difflib's ratio of at least 0.6, and within 0.1 of the closest (so
    'hrose2zebra' gets 'horse2zebra', not 'zebra' too), at most three."""
    import difflib

    close = difflib.get_close_matches(name, set(known), n=3, cutoff=0.6)
    ratios = [difflib.SequenceMatcher(None, name, candidate).ratio() for candidate in close]
    close = [candidate for candidate, ratio in zip(close, ratios) if ratio >= ratios[0] - 0.1]
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
