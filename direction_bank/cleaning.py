"""Sentence normalisation and content hashes (what makes two sentences 'the same')."""
from __future__ import annotations

import hashlib
import re
import unicodedata

_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """The sentence with Unicode normalised and runs of whitespace collapsed."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def content_hash(text: str) -> str:
    """SHA-256 of the normalised, case-folded sentence: equal for sentences that differ only in
    case, spacing or a final full stop."""
    key = normalise(text).casefold().rstrip(".!").strip()
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
