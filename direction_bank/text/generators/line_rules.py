"""Rules a chat model's numbered list of captions is written under, line by line: LineRules
applies two of cleaning's coherence rules while it writes, so its samples are not spent on lines
cleaning would drop (within a line the concept is named once, not 'a horse riding a horse', and
nothing rides before a rider is named, not 'a horse riding a camel'; cleaning still checks every
line), and ListWritten ends a sequence once it has written its list, where one sequence that ran
on to 18 lines kept all 16 of a call generating for half as long again."""
from __future__ import annotations

import torch

from direction_bank.text.cleaning import RIDE_VERBS, concept_pattern, names_a_rider, plural


class TokenTexts:
    """Each token's text, decoded once, and what a sequence's tokens say about its lines."""

    def __init__(self, tokenizer):
        self.tokenizer, self.texts = tokenizer, {}

    def __getitem__(self, token: int) -> str:
        if token not in self.texts:
            self.texts[token] = self.tokenizer.decode([token])
        return self.texts[token]

    def breaks(self, ids: list[int]) -> int:
        """How many line breaks the tokens hold."""
        return sum(self[token].count("\n") for token in ids)

    def last_line(self, ids: list[int]) -> str:
        """The text after the last line break: the line being written (decoded whole: tokens'
        own texts do not join into it for every tokenizer, a word-level one's lack spaces)."""
        start = len(ids)
        while start and "\n" not in self[ids[start - 1]]:
            start -= 1
        return self.tokenizer.decode(ids[max(start - 1, 0):]).rsplit("\n", 1)[-1]

    def first_tokens(self, words, letters: int) -> list[int]:
        """The first token of each word, where it holds at least `letters` letters (a short piece
        such as ' ze' of ' zebras' would also ban the words that merely begin like it)."""
        tokens = set()
        for word in words:
            ids = self.tokenizer(word, add_special_tokens=False).input_ids
            if ids and sum(c.isalpha() for c in self[ids[0]]) >= letters:
                tokens.add(ids[0])
        return sorted(tokens)


class LineRules:
    """A transformers logits processor: in each sequence, the tokens that would break the rules
    in the line it is writing after the prompt's `prompt_length` tokens get no probability."""

    def __init__(self, texts: TokenTexts, concept: str, prompt_length: int):
        self.texts, self.concept, self.prompt_length = texts, concept_pattern(concept), prompt_length
        forms = {word for name in (concept, plural(concept)) for word in (name, name.capitalize())}
        self.concept_tokens = texts.first_tokens({space + form for form in forms for space in ("", " ")}, 3)
        self.ride_tokens = texts.first_tokens([" " + verb for verb in RIDE_VERBS], 4)

    def __call__(self, input_ids, scores):
        """The scores, with each row's banned tokens at minus infinity."""
        for row, ids in enumerate(input_ids.tolist()):
            line = self.texts.last_line(ids[self.prompt_length:])
            if self.concept.search(line):
                scores[row, self.concept_tokens] = -float("inf")
            if not names_a_rider(line):
                scores[row, self.ride_tokens] = -float("inf")
        return scores


class ListWritten:
    """A transformers stopping criterion: a sequence is done once it has written `lines` line
    breaks after the prompt's `prompt_length` tokens."""

    def __init__(self, texts: TokenTexts, prompt_length: int, lines: int):
        self.texts, self.prompt_length, self.lines = texts, prompt_length, lines

    def __call__(self, input_ids, scores, **kwargs):
        """Per row: whether its list is written."""
        return torch.tensor([self.texts.breaks(ids[self.prompt_length:]) >= self.lines for ids in input_ids.tolist()],
                            device=input_ids.device)
