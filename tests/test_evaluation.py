"""Scores of edits (editor/evaluation.py) on tiny random CLIP and DINO checkpoints written to disk
in the real layout: each metric equals an independent computation on the same tensors."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from editor.evaluation import ClipScorer, DinoStructure, background_change

SOURCES = ["a photo of a horse", "a photo of a cat"]
TARGETS = ["a photo of a zebra", "a photo of a dog"]


@pytest.fixture(scope="module")
def clip(tiny_clip):
    return ClipScorer.load(str(tiny_clip))


@pytest.fixture(scope="module")
def dino(tiny_dino):
    return DinoStructure.load(str(tiny_dino))


def _pictures(seed, count=2, size=(48, 40)):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(count)]


def _embeds(clip, pictures, prompts):
    """Image and text embeddings from CLIPModel's own forward (unit length there), not the scorer's."""
    inputs = clip.processor(text=prompts, images=pictures, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = clip.model(**inputs)
    return out.image_embeds.numpy().astype(np.float64), out.text_embeds.numpy().astype(np.float64)


def test_directional_similarity_is_the_cosine_of_the_two_changes(clip):
    inputs, edits = _pictures(0), _pictures(1)
    image_in, text_source = _embeds(clip, inputs, SOURCES)
    image_edit, text_target = _embeds(clip, edits, TARGETS)
    image_change, text_change = image_edit - image_in, text_target - text_source
    expected = (image_change * text_change).sum(1) / (np.linalg.norm(image_change, axis=1)
                                                      * np.linalg.norm(text_change, axis=1))
    scores = clip.directional_similarity(inputs, edits, SOURCES, TARGETS)
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    swapped = clip.directional_similarity(inputs, edits, TARGETS, SOURCES)
    np.testing.assert_allclose(swapped, -np.asarray(scores), atol=1e-6)


def test_clip_accuracy_asks_which_prompt_the_edit_is_nearer(clip):
    edits = _pictures(2)
    images, sources = _embeds(clip, edits, SOURCES)
    _, targets = _embeds(clip, edits, TARGETS)
    expected = [bool(t > s) for t, s in zip((images * targets).sum(1), (images * sources).sum(1))]
    assert clip.accuracy(edits, SOURCES, TARGETS) == expected
    assert clip.accuracy(edits, TARGETS, SOURCES) == [not e for e in expected]


def test_structure_distance_compares_last_layer_key_self_similarities(dino):
    inputs, edits = _pictures(3), _pictures(4)
    assert dino.distance(inputs, inputs) == [0.0, 0.0]

    def keys(pictures):  # the last layer's keys, from its input: hidden_states[-2] through layernorm_before
        pixels = dino.processor(images=pictures, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            hidden = dino.model(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
            layers = dino.model.layers if hasattr(dino.model, "layers") else dino.model.encoder.layer  # 5.x, 4.x
            last = layers[-1]
            found = last.attention.k_proj if hasattr(last.attention, "k_proj") else last.attention.attention.key
            return found(last.layernorm_before(hidden)).numpy().astype(np.float64)

    def similarity(k):
        unit = k / np.linalg.norm(k, axis=-1, keepdims=True)
        return unit @ unit.transpose(0, 2, 1)

    expected = ((similarity(keys(inputs)) - similarity(keys(edits))) ** 2).mean(axis=(1, 2))
    distances = dino.distance(inputs, edits)
    np.testing.assert_allclose(distances, expected, atol=1e-6)
    assert all(d > 0 for d in distances)


def test_background_change_is_measured_outside_the_mask():
    photo = Image.new("RGB", (4, 2), (100, 100, 100))
    edit = photo.copy()
    edit.putpixel((0, 0), (100, 100, 202))  # one pixel, by 102/255 in one channel of three
    assert background_change(photo, photo) == 0.0
    assert background_change(photo, edit) == pytest.approx(102 / 255 / 3 / 8)
    mask = np.zeros((2, 4))
    mask[0, 0] = 1.0  # the changed pixel is the edited object
    assert background_change(photo, edit, mask) == 0.0
    mask[0, 0] = 0.5  # half inside: half its change counts, over 7.5 pixels' worth of background
    assert background_change(photo, edit, mask) == pytest.approx(0.5 * 102 / 255 / 3 / 7.5)
    with pytest.raises(ValueError, match="the images differ in size: 4x2 and 2x2"):
        background_change(photo, Image.new("RGB", (2, 2)))


def test_a_missing_eval_model_is_one_line_naming_it(tmp_path):
    from editor.pipeline import EditorError

    for loader, kind in ((ClipScorer.load, "CLIP"), (DinoStructure.load, "DINO")):
        with pytest.raises(EditorError, match=rf"^cannot load the {kind} model '.*no-such' \("):
            loader(str(tmp_path / "no-such"))


def test_the_scorer_batches_and_equals_each_metric_alone(clip, dino):
    from editor.evaluation import EditScorer, ScorePair

    photos, edits = _pictures(5, 3), _pictures(6, 3)
    mask = np.zeros((40, 48))
    mask[:20] = 1.0
    pairs = [ScorePair(photos[i % 2], edits[i], SOURCES[i % 2], TARGETS[i % 2], SOURCES[1 - i % 2],
                       TARGETS[1 - i % 2], mask if i == 0 else None) for i in range(3)]
    scorer = EditScorer(clip, dino, "tiny-clip", "tiny-dino")
    batched, alone = scorer.score(pairs, batch_size=3), scorer.score(pairs, batch_size=1)
    for one, other in zip(batched, alone):
        for key, value in one.items():
            assert value == pytest.approx(other[key], abs=1e-5) if value is not None else other[key] is None
    inputs = [p.photo for p in pairs]
    np.testing.assert_allclose([s["clip_directional_similarity"] for s in batched],
                               clip.directional_similarity(inputs, edits, [p.source_text for p in pairs],
                                                           [p.target_text for p in pairs]), atol=1e-5)
    assert [s["clip_accuracy"] for s in batched] == clip.accuracy(
        edits, [p.source_prompt for p in pairs], [p.target_prompt for p in pairs])
    np.testing.assert_allclose([s["structure_distance"] for s in batched], dino.distance(inputs, edits), atol=1e-6)
    assert batched[0]["background_change"] == pytest.approx(background_change(photos[0], edits[0], mask))
    assert [s["background_change"] for s in batched[1:]] == [None, None]
    assert batched[1]["whole_image_change"] == pytest.approx(background_change(photos[1], edits[1]))
    same = scorer.score([ScorePair(photos[0], photos[0], SOURCES[0], TARGETS[0], SOURCES[0], TARGETS[0], mask)])[0]
    assert (same["structure_distance"], same["background_change"], same["whole_image_change"]) == (0.0, 0.0, 0.0)
    assert scorer.models["structure_distance"] == "tiny-dino" and scorer.models["clip_accuracy"] == "tiny-clip"
    with pytest.raises(ValueError, match="the images differ in size: 48x40 and 24x20"):
        scorer.score([ScorePair(photos[0], edits[0].resize((24, 20)), *SOURCES, *TARGETS)])


def _bca_by_hand(values, resamples=400_000, level=0.95, seed=0):
    """Efron's BCa interval of a mean, written out: bias correction z0 from the bootstrap means,
    acceleration from the jackknife, the percentiles they shift to."""
    from scipy.stats import norm

    x = np.asarray(values, np.float64)
    means = x[np.random.default_rng(seed).integers(0, len(x), (resamples, len(x)))].mean(1)
    z0 = norm.ppf((means < x.mean()).mean())
    jack = np.array([np.delete(x, i).mean() for i in range(len(x))])
    d = jack.mean() - jack
    a = (d**3).sum() / (6 * ((d**2).sum()) ** 1.5)
    ends = [norm.ppf((1 - level) / 2), norm.ppf(1 - (1 - level) / 2)]
    return [float(np.percentile(means, 100 * norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z))))) for z in ends]


def test_the_bootstrap_interval_is_bca_seeded_and_counts_its_images():
    from editor.evaluation import bootstrap_interval

    values = list(np.random.default_rng(0).normal(0.2, 0.1, 30)) + [None, float("nan")]
    mean, low, high, n = bootstrap_interval(values, seed=3)
    assert n == 30 and mean == pytest.approx(np.mean(values[:30])) and low < mean < high
    assert bootstrap_interval(values, seed=3) == (mean, low, high, n)
    assert bootstrap_interval(values, seed=4) != (mean, low, high, n)
    # skewed scores: BCa's ends (hand-written, 400,000 resamples) and not the percentile ones,
    # which sit 0.08 and 0.25 lower here
    skewed = np.random.default_rng(1).exponential(1.0, 20)
    _, low, high, _ = bootstrap_interval(skewed, seed=0, resamples=20_000)
    by_hand = _bca_by_hand(skewed)
    assert low == pytest.approx(by_hand[0], abs=0.02) and high == pytest.approx(by_hand[1], abs=0.03)
    assert bootstrap_interval([True, False, True, True])[0] == 0.75
    assert bootstrap_interval([0.3]) == (0.3, None, None, 1)  # one image: no interval
    assert bootstrap_interval([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5, 3)
    assert bootstrap_interval([None]) == (None, None, None, 0)


def test_the_summary_csv_takes_each_bound_from_its_own_end():
    from direction_bank.jobs.evaluate import csv_text, summary_csv_rows

    stat = {"mean": 0.5, "low": 0.1, "high": 0.9, "n": 7}
    row = {"direction": "h2z", "kind": "direction", "images": 7,
           **{metric: dict(stat) for metric in ("clip_directional_similarity", "clip_accuracy", "structure_distance",
                                                 "background_change", "whole_image_change")}}
    [flat] = summary_csv_rows([row])
    assert (flat["structure_distance_low"], flat["structure_distance"], flat["structure_distance_high"],
            flat["structure_distance_n"]) == (0.1, 0.5, 0.9, 7)
    first = csv_text([flat]).splitlines()[0]
    assert first == ("# better: higher clip_directional_similarity, clip_accuracy; lower structure_distance, "
                     "background_change, whole_image_change")


def test_the_tradeoff_plot_tells_its_baselines_apart():
    from editor.pictures import tradeoff_plot

    def row(direction, kind, x, y, source="horse", target="zebra"):
        stat = lambda v: {"mean": v, "low": v - 0.01, "high": v + 0.01, "n": 3}  # noqa: E731
        return {"direction": direction, "kind": kind, "source": source, "target": target, "setting": "scale 1, xa 0.1",
                "structure_distance": stat(x), "clip_directional_similarity": stat(y)}

    summary = [row("h2z", "direction", 0.2, 0.3), row("d2n", "direction", 0.25, 0.2, "day", "night"),
               row("word-swap horse->zebra", "word-swap", 0.3, 0.1),
               row("h2z", "reconstruction", 0.05, 0.0), row("d2n", "reconstruction", 0.05, 0.0, "day", "night")]
    labels = json.loads(tradeoff_plot(summary).info["labels"])
    assert labels["points"] == 5
    assert labels["legend"] == ["h2z", "d2n", "word-swap (horse -> zebra)", "reconstruction (h2z)",
                                "reconstruction (d2n)"]


def test_attention_mask_is_the_word_region():
    from editor.evaluation import attention_mask

    grey = Image.fromarray(np.array([[0, 100], [128, 255]], np.uint8))
    assert attention_mask(grey).tolist() == [[0.0, 0.0], [1.0, 1.0]]
