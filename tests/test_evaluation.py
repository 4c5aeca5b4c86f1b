"""Scores of edits (editor/evaluation.py) on tiny random CLIP and DINO checkpoints written to disk
in the real layout: each metric equals an independent computation on the same tensors."""
import numpy as np
import pytest
import torch
from PIL import Image

from direction_bank.testing import write_tiny_clip, write_tiny_dino
from editor.evaluation import ClipScorer, DinoStructure, background_change

SOURCES = ["a photo of a horse", "a photo of a cat"]
TARGETS = ["a photo of a zebra", "a photo of a dog"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory, clip_tokenizer_dir):
    return ClipScorer.load(str(write_tiny_clip(tmp_path_factory.mktemp("clip"), tokenizer_from=clip_tokenizer_dir)))


@pytest.fixture(scope="module")
def dino(tmp_path_factory):
    return DinoStructure.load(str(write_tiny_dino(tmp_path_factory.mktemp("dino"))))


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
