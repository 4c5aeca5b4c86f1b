"""Edit by a word (#32): a target word ("zebra"), and a source word or the concept the caption
names. Both faces call this (`dbank edit --to zebra [--from horse]`, the studio's word boxes).

Which direction a pair of words gets, best first:
1. a saved direction from the source concept to the target concept (the one made with the
   editing model's encoder first, then by name);
2. the mean difference of the two concepts, when the bank holds both (as `dbank diff`);
3. the word-swap direction, 'a photo of a TARGET' minus 'a photo of a SOURCE' through the model's
   own text encoder (jobs.evaluate.word_swap_direction), labelled 'word-swap' in the gallery,
   the record and the PNG settings, so nobody takes it for a bank direction.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from direction_bank.errors import BankError
from direction_bank.jobs.edit import Resolved, direction_parts, parts_fingerprint, resolve_directions
from direction_bank.jobs.evaluate import WORD_SWAP, class_prompt
from direction_bank.names import check_name, file_label

SAVED, CONCEPTS = "saved direction", "the bank's concepts"


@dataclass(frozen=True)
class WordChoice:
    """How a source and target word are edited: `how` is SAVED, CONCEPTS or WORD_SWAP; `name` the
    saved direction's name; `missing` the words the bank holds no concept for."""

    source: str
    target: str
    how: str
    name: str | None = None
    missing: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The label its edit carries in the gallery, the file name and the record."""
        if self.how == SAVED:
            return self.name
        if self.how == CONCEPTS:
            return f"{self.source}2{self.target}"
        return f"{WORD_SWAP} {self.source}->{self.target}"

    def line(self) -> str:
        """What was used, in one line for the person who asked."""
        joins = f"{self.source} -> {self.target}"
        if self.how == SAVED:
            return f"{joins}: the saved direction {self.name}"
        if self.how == CONCEPTS:
            return f"{joins}: the bank's concepts (mean of {self.target}'s sentences minus mean of {self.source}'s)"
        missing = " and ".join(repr(word) for word in self.missing)
        build = "; ".join(f"dbank add-concept {word}" for word in self.missing)
        return (f"{joins}: word-swap ({class_prompt(self.target)!r} minus {class_prompt(self.source)!r}), since the "
                f"bank holds no concept {missing} ({build} builds {'it' if len(self.missing) == 1 else 'them'})")

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return {"source": self.source, "target": self.target, "how": self.how, "direction": self.label,
                "missing": list(self.missing)}


def check_word(word: str, role: str) -> str:
    """A word to edit by: a concept name (names.check_name), one line when it cannot be one."""
    try:
        return check_name(word)
    except BankError as error:
        raise BankError(f"--{role} {word!r}: {error}") from None


def concept_in_caption(caption: str, concepts: list[str]) -> str | None:
    """The concept the caption names (a whole word or phrase, any case): the longest one ('sports
    car' before 'car'), then the first in the caption; None when it names none."""
    found = []
    for concept in concepts:
        match = re.search(rf"(?<!\w){re.escape(concept)}(?!\w)", caption, re.IGNORECASE)
        if match:
            found.append((-len(concept), match.start(), concept))
    return min(found)[2] if found else None


def choose(source: str, target: str, concepts: list[str], saved: list[dict], model: str | None = None) -> WordChoice:
    """How to edit from `source` to `target` (see the module docstring), given the bank's concept
    names and its saved directions (Bank.directions() rows). A word that is a concept's name in
    another case is that concept ('Horse' is the bank's 'horse')."""
    spelled = {concept.casefold(): concept for concept in reversed(concepts)}
    source, target = (spelled.get(word.casefold(), word) for word in (source, target))
    matching = [row for row in saved if (row["source"], row["target"]) == (source, target)]
    if matching:
        best = min(matching, key=lambda row: (row["model"] != model, row["name"]))
        return WordChoice(source, target, SAVED, best["name"])
    missing = tuple(word for word in dict.fromkeys((source, target)) if word not in concepts)
    if source == target:
        raise BankError(f"--from and --to are both {source!r}: there is nothing to change")
    if not missing:
        return WordChoice(source, target, CONCEPTS)
    return WordChoice(source, target, WORD_SWAP, missing=missing)


def word_directions(choices: list[WordChoice], bank, encoder_loader,
                    strict: bool = False) -> tuple[list[Resolved], list[str]]:
    """([Resolved], errors) of the choices, as jobs.edit.resolve_directions gives them (`strict`:
    the first that cannot be read is raised): saved ones and concept differences read from
    `bank`; word-swap ones embedded by encoder_loader() (the model's text encoder, loaded once,
    only when one is needed)."""
    from direction_bank.jobs.edit import saved_directions
    from direction_bank.jobs.evaluate import word_swap_direction

    wanted = []
    for choice in choices:
        if choice.how == SAVED:
            wanted += saved_directions(bank, [choice.name])
        elif choice.how == CONCEPTS:
            wanted.append((choice.label, lambda c=choice: direction_parts(bank.diff(c.source, c.target))))
    resolved, errors = resolve_directions(wanted, strict)
    swaps = [choice for choice in choices if choice.how == WORD_SWAP]
    if swaps:
        encoder = encoder_loader()
        for choice in swaps:
            parts = word_swap_direction(encoder, choice.source, choice.target)
            resolved.append(Resolved(choice.label, file_label(f"{WORD_SWAP}-{choice.source}-{choice.target}", part=True),
                                     parts, choice.source, choice.target, fingerprint=parts_fingerprint(parts)))
    return resolved, errors
