import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from direction_bank.jobs.edit_records import read_record
from direction_bank.testing import write_tiny_sd
from editor.cache import InversionCache
from editor.edit import EditSettings
from editor.editor import Editor, Inversion
from editor.inversion import NO_REGULARISATION, Regularisation, auto_corr_loss, invert
from editor.pipeline import EditorError, encode_image, encode_prompts, load_image
from tests.output import said

STEPS = 4


@pytest.fixture(scope="session")
def editor(tiny_sd, tmp_path_factory):
    return Editor(str(tiny_sd), device="cpu", cache=InversionCache(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "horse.png"
    pixels = np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _directions(count, seed=0):
    return torch.randn(count, 77, 32, generator=torch.Generator().manual_seed(seed)).numpy() * 0.5


def test_load_image_keeps_aspect_and_multiples_of_8(image):
    assert load_image(image, 32).shape == (1, 3, 24, 32)
    with pytest.raises(EditorError, match="--size 30"):
        load_image(image, 30)


def test_plain_inversion_equals_diffusers_ddim_inverse_scheduler(editor, image):
    from diffusers import DDIMInverseScheduler

    components = editor.components
    latents = encode_image(components, load_image(image, 32))
    embeds = encode_prompts(components, ["a photo of a horse"])
    ours = invert(components, latents, embeds, STEPS, NO_REGULARISATION)
    scheduler = DDIMInverseScheduler.from_config(components.scheduler.config)
    scheduler.set_timesteps(STEPS)
    expected = latents.clone()
    with torch.no_grad():
        for t in scheduler.timesteps:
            noise = components.unet(expected, t, encoder_hidden_states=embeds.states).sample
            expected = scheduler.step(noise, t, expected).prev_sample
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_regularisation_lowers_the_auto_correlation_of_the_noise_inversion_steps_with(editor, image):
    import torch.nn.functional as F

    from editor.inversion import regularise

    def correlation(noise):  # normalised: the KL step rescales the noise towards unit variance
        noise = noise.float() / noise.float().std()
        return float(auto_corr_loss(noise, torch.Generator().manual_seed(5)))

    components = editor.components
    latents = encode_image(components, load_image(image, 32))
    embeds = encode_prompts(components, ["a photo of a horse"])
    with torch.no_grad():  # the model's own noise prediction at the first inversion step
        predicted = components.unet(latents, 1, encoder_hidden_states=embeds.states).sample
    smooth = F.avg_pool2d(F.pad(torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0)),
                                (1, 1, 1, 1), mode="circular"), 3, stride=1) * 3
    for noise in (predicted, smooth):
        cleaned = regularise(noise, Regularisation(), torch.Generator().manual_seed(1))
        assert correlation(cleaned) < 0.5 * correlation(noise)
    plain = invert(components, latents, embeds, STEPS, NO_REGULARISATION)
    regular = invert(components, latents, embeds, STEPS, Regularisation())
    assert not torch.allclose(plain, regular)


def test_auto_correlation_shifts_are_never_zero_and_are_seeded():
    from editor.inversion import auto_corr_shift

    noise = torch.randn(1, 4, 16, 16)
    assert auto_corr_loss(noise, torch.Generator().manual_seed(1)) == auto_corr_loss(noise, torch.Generator().manual_seed(1))
    for size in (2, 3, 4, 8, 9, 64):
        generator = torch.Generator().manual_seed(size)
        shifts = {auto_corr_shift(size, generator) for _ in range(400)}
        assert shifts == set(range(1, max(size // 2, 2))), size  # every shift in [1, size/2), never 0
    assert auto_corr_shift(1, torch.Generator()) == 0


def test_the_kl_loss_is_pinned_to_its_formula():
    """var + mean^2 - 1 - log var per item (unbiased variance), summed, on values worked out by
    hand; and its gradient, from the formula's derivative."""
    import math

    from editor.inversion import kl_loss

    noise = torch.tensor([[[[1.0, 2.0], [3.0, 6.0]]], [[[0.0, 0.0], [1.0, 3.0]]]], dtype=torch.float64)
    # item 1: mean 3, var (4 + 1 + 0 + 9) / 3; item 2: mean 1, var (1 + 1 + 0 + 4) / 3
    by_hand = sum(v + m * m - 1 - math.log(v) for m, v in ((3.0, 14 / 3), (1.0, 2.0)))
    variable = noise.clone().requires_grad_(True)
    loss = kl_loss(variable)
    assert float(loss.detach()) == pytest.approx(by_hand, rel=1e-6)
    (grad,) = torch.autograd.grad(loss, variable)
    flat = noise.flatten(1)
    mean, var, n = flat.mean(1, keepdim=True), flat.var(1, keepdim=True), flat.shape[1]
    derivative = 2 * (flat - mean) / (n - 1) * (1 - 1 / var) + 2 * mean / n
    torch.testing.assert_close(grad.flatten(1), derivative, rtol=1e-5, atol=1e-6)


def test_the_auto_correlation_loss_is_pinned_to_its_formula():
    """Sum over axes of the squared mean of noise x noise rolled by the seeded shift, for an
    8x8 noise (no pyramid level below it), against numpy."""
    from editor.inversion import auto_corr_shift

    noise = torch.arange(64, dtype=torch.float64).reshape(1, 1, 8, 8).sin()
    shifts = [auto_corr_shift(8, g) for g in [torch.Generator().manual_seed(2)] for _ in range(2)]
    array = noise.numpy()
    by_numpy = sum(float((array * np.roll(array, shift, axis=axis)).mean()) ** 2
                   for axis, shift in zip((2, 3), shifts))
    assert float(auto_corr_loss(noise, torch.Generator().manual_seed(2))) == pytest.approx(by_numpy, rel=1e-9)


def test_regularisation_steps_follow_the_official_formula():
    """eps <- eps - lambda_ac * grad(ac) / steps, auto_corr_steps times, then eps <- eps -
    lambda_kl * grad(kl), per round; lambda 20 both (pix2pix-zero's defaults)."""
    from editor.inversion import kl_loss, regularise

    settings = Regularisation()
    assert (settings.rounds, settings.auto_corr_steps, settings.lambda_auto_corr, settings.lambda_kl) == (5, 5, 20.0, 20.0)
    epsilon = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    expected, generator = epsilon.clone(), torch.Generator().manual_seed(7)
    for _ in range(2):
        for _ in range(3):
            variable = expected.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(auto_corr_loss(variable, generator), variable)
            expected = expected - 20.0 * grad / 3
        variable = expected.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(kl_loss(variable), variable)
        expected = expected - 20.0 * grad
    ours = regularise(epsilon, Regularisation(rounds=2, auto_corr_steps=3), torch.Generator().manual_seed(7))
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(ours, epsilon, atol=1e-3)


def test_zero_direction_without_guidance_reproduces_the_reconstruction(editor, image):
    inversion = editor.invert_file(image, "a photo of a horse", 32, STEPS)
    settings = EditSettings(steps=STEPS, xa_guidance=0.0)
    edited, reconstruction = editor.edit(inversion, np.zeros((1, 77, 32), np.float32), settings)
    difference = np.abs(np.asarray(edited[0], np.int16) - np.asarray(reconstruction, np.int16))
    assert difference.max() <= 1


def test_a_direction_changes_the_output_and_a_batch_equals_one_by_one(editor, image):
    """Latents, not pixels, with guidance strong enough to move them (xa 10 moves them by about
    0.2 on the tiny model): each edit's guidance loss is its own, whatever the batch holds."""
    from editor.edit import edit

    inversion = editor.invert_file(image, "a photo of a horse", 32, STEPS)
    caption = encode_prompts(editor.components, ["a photo of a horse"])
    settings = EditSettings(steps=STEPS, xa_guidance=10.0)
    directions = torch.as_tensor(_directions(3))
    batch, reconstruction = edit(editor.components, inversion.latents, caption, directions, settings)
    unguided, _ = edit(editor.components, inversion.latents, caption, directions[:1],
                       EditSettings(steps=STEPS, xa_guidance=0.0))
    assert float((batch[:1] - unguided).abs().max()) > 0.05  # the guidance visibly matters
    for index in range(3):
        alone, _ = edit(editor.components, inversion.latents, caption, directions[index : index + 1], settings)
        torch.testing.assert_close(batch[index : index + 1], alone, atol=1e-4, rtol=1e-4)
    assert float((batch[0] - reconstruction[0]).abs().mean()) > 0.01


def _diffusers_pix2pix_zero(components):
    """diffusers' StableDiffusionPix2PixZeroPipeline over the editor's loaded components."""
    from diffusers.pipelines.deprecated import StableDiffusionPix2PixZeroPipeline

    pipeline = StableDiffusionPix2PixZeroPipeline(
        vae=components.vae, text_encoder=components.text_encoder, tokenizer=components.tokenizer,
        unet=components.unet, scheduler=components.scheduler, inverse_scheduler=components.inverse_scheduler,
        feature_extractor=None, safety_checker=None, caption_generator=None, caption_processor=None,
        requires_safety_checker=False,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.mark.parametrize("negative,xa_guidance,guidance_scale", [
    ("a photo of a horse", 0.1, 5.0),  # a real image's edit: the caption is its own negative prompt
    ("a photo of a horse", 10.0, 5.0),  # guidance that moves the latents by about 0.2, so the
    ("", 10.0, 5.0),                    # reference maps it follows must be the right ones
    # no classifier-free guidance: one branch. diffusers (and the official code) then add the
    # direction to `embeds[1:2]` of a one-row batch, which is empty: they drop it. So the
    # comparison uses a zero direction; test_without_cfg_the_direction_is_applied covers the rest
    ("a photo of a horse", 10.0, 1.0),
], ids=["official", "strong-guidance", "empty-negative", "no-cfg"])
def test_the_edit_matches_diffusers_pix2pix_zero_pipeline(tiny_sd, image, negative, xa_guidance, guidance_scale):
    """Same latents, caption, negative prompt, direction and guidance: our fused, batched loop
    (2 UNet calls a step) gives what diffusers' StableDiffusionPix2PixZeroPipeline (3) gives."""
    from editor.edit import edit

    editor = Editor(str(tiny_sd), device="cpu")  # its own: diffusers' pipeline rewires the UNet
    components = editor.components
    inversion = editor.invert_file(image, "a photo of a horse", 32, STEPS)
    caption = encode_prompts(components, ["a photo of a horse"])
    direction = torch.as_tensor(_directions(1)) * (guidance_scale > 1)
    negative_embeds = None if negative == "a photo of a horse" else encode_prompts(components, [negative])
    ours, _ = edit(components, inversion.latents, caption, direction,
                   EditSettings(steps=STEPS, xa_guidance=xa_guidance, guidance_scale=guidance_scale), negative_embeds)
    pipeline = _diffusers_pix2pix_zero(components)
    theirs = pipeline(
        prompt="a photo of a horse", negative_prompt=negative, source_embeds=torch.zeros(1, 77, 32),
        target_embeds=direction, num_inference_steps=STEPS, cross_attention_guidance_amount=xa_guidance,
        guidance_scale=guidance_scale, latents=inversion.latents.clone(), output_type="latent",
    ).images
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_without_cfg_the_direction_is_applied_to_the_one_branch(editor, image):
    from editor.edit import edit

    inversion = editor.invert_file(image, "a photo of a horse", 32, STEPS)
    caption = encode_prompts(editor.components, ["a photo of a horse"])
    settings = EditSettings(steps=STEPS, guidance_scale=1.0, xa_guidance=0.0)
    edited, reconstruction = edit(editor.components, inversion.latents, caption, torch.as_tensor(_directions(1)),
                                  settings)
    still, _ = edit(editor.components, inversion.latents, caption, torch.zeros(1, 77, 32), settings)
    torch.testing.assert_close(still, reconstruction, atol=1e-5, rtol=0)
    assert float((edited - reconstruction).abs().mean()) > 0.01


def test_without_cfg_each_step_runs_one_branch(editor, image, monkeypatch):
    """guidance_scale <= 1: one branch a step, so the UNet runs half the rows (the fused call
    holds the edit's row and the reference's), not a negative half that nothing uses."""
    from editor.edit import edit

    inversion = editor.invert_file(image, "a photo of a horse", 32, STEPS)
    caption = encode_prompts(editor.components, [inversion.caption])
    unet = editor.components.unet
    original = unet.forward
    for guidance_scale, expected in ((1.0, 2), (5.0, 3)):
        rows = []
        monkeypatch.setattr(unet, "forward", lambda sample, *a, **k: rows.append(len(sample)) or original(sample, *a, **k))
        edit(editor.components, inversion.latents, caption, torch.as_tensor(_directions(1)),
             EditSettings(steps=STEPS, guidance_scale=guidance_scale, xa_guidance=10.0))
        assert max(rows) == expected, (guidance_scale, rows)


def test_edits_are_deterministic(editor, image):
    inversion = editor.invert_file(image, "a photo of a horse", 32, STEPS)
    first, _ = editor.edit(inversion, _directions(1), EditSettings(steps=STEPS))
    second, _ = editor.edit(inversion, _directions(1), EditSettings(steps=STEPS))
    assert first[0].tobytes() == second[0].tobytes()


def test_the_cache_skips_inversion(editor, image, monkeypatch):
    from editor import editor as editor_module

    first = editor.invert_file(image, "cached caption", 32, STEPS, seed=3)

    def no_inversion(*args, **kwargs):
        raise AssertionError("inverted again")

    monkeypatch.setattr(editor_module, "invert", no_inversion)
    again = editor.invert_file(image, "cached caption", 32, STEPS, seed=3)
    assert (first.cached, again.cached, again.caption) == (False, True, "cached caption")
    torch.testing.assert_close(first.latents, again.latents)


def test_the_cache_key_names_every_setting_of_an_inversion(editor, image):
    """Each setting that changes the inverted latents misses the cache (a key without one of
    them would hand back latents inverted another way)."""
    base = dict(caption="keyed caption", size=32, steps=STEPS, regularisation=Regularisation(), seed=4)
    assert editor.invert_file(image, **base).cached is False
    assert editor.invert_file(image, **base).cached is True
    for change in (dict(steps=STEPS + 1), dict(regularisation=Regularisation(lambda_kl=10.0)),
                   dict(regularisation=NO_REGULARISATION), dict(size=40), dict(caption="another caption"),
                   dict(seed=5)):
        assert editor.invert_file(image, **{**base, **change}).cached is False, change


def test_other_weights_in_the_same_folder_miss_the_cache(tiny_sd, clip_tokenizer_dir, image, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_sd, folder)
    cache = InversionCache(tmp_path / "cache")
    assert Editor(str(folder), device="cpu", cache=cache).invert_file(image, "a horse", 32, 2).cached is False
    assert Editor(str(folder), device="cpu", cache=cache).invert_file(image, "a horse", 32, 2).cached is True
    other = write_tiny_sd(tmp_path / "other", seed=9, tokenizer_from=clip_tokenizer_dir)
    shutil.rmtree(folder / "unet")
    shutil.copytree(other / "unet", folder / "unet")  # same path, other weights
    assert Editor(str(folder), device="cpu", cache=cache).invert_file(image, "a horse", 32, 2).cached is False


@pytest.mark.parametrize("tamper", ["nan", "shape", "float16", "extra", "garbage", "huge", "caption", "settings",
                                    "no-settings"])
def test_a_tampered_cache_entry_is_dropped_with_a_warning_and_recomputed(tiny_sd, image, tmp_path, tamper):
    from safetensors import safe_open
    from safetensors.torch import save_file

    cache = InversionCache(tmp_path / "cache")
    editor = Editor(str(tiny_sd), device="cpu", cache=cache)
    first = editor.invert_file(image, "a horse", 32, 2)
    [entry] = (tmp_path / "cache").glob("*.safetensors")
    with safe_open(str(entry), "pt") as handle:
        meta = handle.metadata()
    assert meta["caption"] == "a horse" and '"steps": 2' in meta["settings"]
    bad = {"nan": {"latents": torch.full_like(first.latents, float("nan"))},
           "shape": {"latents": torch.zeros(1, 4, 3, 5)},
           "float16": {"latents": first.latents.half()},
           "extra": {"latents": first.latents, "more": torch.zeros(1)},
           "huge": {"latents": first.latents * 1e30}}.get(tamper, {"latents": first.latents})
    reason = {"huge": "values past 10000", "caption": "another caption", "settings": "other settings",
              "no-settings": "recorded no settings"}.get(tamper, "")
    meta = {"nan": meta, "huge": meta, "caption": {**meta, "caption": "a zebra"},
            "settings": {**meta, "settings": meta["settings"].replace('"steps": 2', '"steps": 3')},
            "no-settings": {"caption": "a horse"}}.get(tamper, meta)
    if tamper == "garbage":
        entry.write_bytes(b"not a safetensors file")
    else:
        save_file(bad, str(entry), metadata=meta)
    again = editor.invert_file(image, "a horse", 32, 2)
    assert again.cached is False and len(cache.dropped) == 1
    assert "dropped and inverted again" in cache.dropped[0] and reason in cache.dropped[0]
    torch.testing.assert_close(again.latents, first.latents, rtol=0, atol=0)
    assert editor.invert_file(image, "a horse", 32, 2).cached is True  # the recomputed entry is good


def test_a_folder_in_place_of_a_cache_entry_is_one_line_and_leaves_no_temporary(tiny_sd, image, tmp_path):
    cache = InversionCache(tmp_path / "cache")
    editor = Editor(str(tiny_sd), device="cpu", cache=cache)
    editor.invert_file(image, "a horse", 32, 2)
    [entry] = (tmp_path / "cache").glob("*.safetensors")
    entry.unlink()
    entry.mkdir()
    with pytest.raises(EditorError, match=r"holds something other than a file at .*; remove it, or pass --no-cache"):
        editor.invert_file(image, "a horse", 32, 2)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [entry.name]  # nothing hidden left


def test_the_cli_warns_of_a_tampered_cache_entry(edit_cli, image, tmp_path):
    from safetensors.torch import save_file

    args = ("edit", str(image), "--direction", "horse2zebra", "--caption", "a photo of a horse")
    assert edit_cli(*args, "-o", str(tmp_path / "a")).exit_code == 0
    [entry] = (tmp_path / "cache").glob("*.safetensors")
    save_file({"latents": torch.full((1, 4, 3, 4), float("nan"))}, str(entry), metadata={"caption": "x"})
    result = edit_cli(*args, "-o", str(tmp_path / "b"), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["results"][0]["inversion_cached"] is False
    assert "warning: a cached inversion" in result.stderr and "dropped and inverted again" in result.stderr
    same = [Image.open(tmp_path / d / f"{image.stem}.horse2zebra.png").tobytes() for d in ("a", "b")]
    assert same[0] == same[1]


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_the_regularised_inversion_matches_an_independent_loop(tmp_path, clip_tokenizer_dir, image, prediction):
    """SD 2.x-style v-prediction models are regularised on epsilon, not on the raw velocity:
    against tests/reference.py's loop, written out step by step."""
    from tests.reference import reference_regularised_inversion

    model = write_tiny_sd(tmp_path / "sd", tokenizer_from=clip_tokenizer_dir, prediction_type=prediction)
    components = Editor(str(model), device="cpu").components
    latents = encode_image(components, load_image(image, 32))
    embeds = encode_prompts(components, ["a photo of a horse"])
    ours = invert(components, latents, embeds, STEPS, Regularisation(), seed=2)
    expected = reference_regularised_inversion(components, latents, embeds.states, STEPS, Regularisation(), seed=2)
    plain = invert(components, latents, embeds, STEPS, NO_REGULARISATION)
    assert float((expected - plain).abs().max()) > 1e-2  # the regulariser matters here
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_a_v_prediction_edit_matches_diffusers_pix2pix_zero_pipeline(tmp_path, clip_tokenizer_dir, image):
    from editor.edit import edit

    model = write_tiny_sd(tmp_path / "sd-v", tokenizer_from=clip_tokenizer_dir, prediction_type="v_prediction")
    components = Editor(str(model), device="cpu").components
    latents = torch.randn(1, 4, 3, 4, generator=torch.Generator().manual_seed(0))
    caption = encode_prompts(components, ["a photo of a horse"])
    direction = torch.as_tensor(_directions(1))
    ours, _ = edit(components, latents, caption, direction, EditSettings(steps=STEPS, xa_guidance=10.0))
    pipeline = _diffusers_pix2pix_zero(components)
    theirs = pipeline(prompt="a photo of a horse", negative_prompt="a photo of a horse",
                      source_embeds=torch.zeros(1, 77, 32), target_embeds=direction, num_inference_steps=STEPS,
                      cross_attention_guidance_amount=10.0, guidance_scale=5.0, latents=latents.clone(),
                      output_type="latent").images
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_generated_start_can_be_edited(editor):
    start = Inversion(editor.generate_noise(32, seed=1), "a photo of a horse", False)
    edited, generated = editor.edit(start, _directions(2), EditSettings(steps=STEPS), negative_prompt="")
    assert len(edited) == 2 and generated.size == (32, 32)


# -- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def edit_cli(run_cli, tiny_sd, tmp_path, monkeypatch, horse_zebra_bank):
    monkeypatch.setenv("DBANK_CACHE", str(tmp_path / "cache"))

    def run(*args):
        return run_cli(*args, "--steps", str(STEPS), "--size", "32", "--model", str(tiny_sd))

    return run


def test_publish_preview_is_the_sheet_dbank_edit_writes_and_the_card_shows_it(edit_cli, image, tmp_path):
    """dbank publish --preview: each photo, its reconstruction and its edit with the direction,
    pixel for pixel the contact sheet `dbank edit --sheet` writes with the same settings, one
    photo at a time (two photos in one batch differ by 1 in a few pixels); the
    card shows it and says how it was made. A photo needing BLIP where there is none, or one
    that is not there, is one line and writes nothing."""
    second = tmp_path / "second.png"
    Image.open(image).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(second)
    published = edit_cli("publish", "horse2zebra", "-o", str(tmp_path / "repo"), "--preview", str(image),
                         "--preview", str(second), "--caption", "a photo of a horse")
    assert published.exit_code == 0, published.stderr
    assert published.stdout == f"wrote {tmp_path / 'repo'}: horse2zebra.safetensors, README.md, preview.png\n"
    edited = edit_cli("edit", str(image), str(second), "--direction", "horse2zebra", "--caption", "a photo of a horse",
                      "--batch-images", "1", "--sheet", "-o", str(tmp_path / "out"))  # one photo a call, as the preview
    assert edited.exit_code == 0, edited.stderr
    sheet = next((tmp_path / "out").glob("sheet-*.png"))
    preview = tmp_path / "repo" / "preview.png"
    assert Image.open(preview).size == Image.open(sheet).size
    assert np.array_equal(np.asarray(Image.open(preview).convert("RGB")), np.asarray(Image.open(sheet).convert("RGB")))
    card = (tmp_path / "repo" / "README.md").read_text()
    assert "![Each photo, its reconstruction and its edit with horse2zebra](preview.png)" in card
    assert (f"(`dbank edit`: scale 1, cross-attention guidance 0.1, {STEPS} steps, 32 px, seed 0)") in card
    again = edit_cli("publish", "horse2zebra", "-o", str(tmp_path / "repo"), "--overwrite")  # no preview now
    assert again.exit_code == 0 and not preview.exists() and "## Preview" not in preview.with_name("README.md").read_text()
    # mistakes: one line each, before any model loads, and no folder
    for args, message in ((("--preview", str(image), "--caption-model", str(tmp_path / "no-blip")),
                           "the captioning model"),
                          (("--preview", str(tmp_path / "missing.png")), "does not exist")):
        refused = edit_cli("publish", "horse2zebra", "-o", str(tmp_path / "refused"), *args)
        assert refused.exit_code != 0 and message in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    assert not (tmp_path / "refused").exists()


def test_cli_edit_end_to_end(edit_cli, image, tmp_path):
    out = tmp_path / "out"
    result = edit_cli("edit", str(image), "--direction", "horse2zebra", "--from", "zebra", "--to", "horse",
                      "--caption", "a photo of a horse", "--attention-map", "horse", "-o", str(out), "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["errors"] == []
    edits = report["results"][0]["edits"]
    assert set(edits) == {"horse2zebra", "zebra2horse"}
    attention = report["results"][0]["attention_maps"]
    assert list(attention) == ["horse"]
    for path in [*edits.values(), report["results"][0]["reconstruction"], attention["horse"]]:
        assert Image.open(path).size == (32, 24)
    record = read_record(report["results"][0]["record"])  # what eval scores the folder from
    assert (record.input, record.caption, record.size, record.steps) == (str(image.resolve()), "a photo of a horse", 32, STEPS)
    assert [(e.label, e.file, e.source, e.target, e.scale, e.xa_guidance, e.baseline) for e in record.edits] == [
        ("horse2zebra", Path(edits["horse2zebra"]).name, "horse", "zebra", 1.0, 0.1, None),
        ("zebra2horse", Path(edits["zebra2horse"]).name, "zebra", "horse", 1.0, 0.1, None)]
    assert record.masks == {"horse": Path(report["results"][0]["attention_maps_grey"]["horse"]).name}
    before = Image.open(edits["horse2zebra"]).tobytes()
    refused = edit_cli("edit", str(image), "--direction", "horse2zebra", "--caption", "a photo of a horse",
                       "--scale", "2", "-o", str(out), "--json")
    assert refused.exit_code == 1 and json.loads(refused.stdout)["results"] == []
    assert refused.stderr.strip().endswith("exists; pass --overwrite to replace it")
    assert Image.open(edits["horse2zebra"]).tobytes() == before  # nothing was replaced
    again = json.loads(edit_cli("edit", str(image), "--direction", "horse2zebra", "--caption",
                                "a photo of a horse", "-o", str(out), "--json", "--overwrite").stdout)
    assert again["results"][0]["inversion_cached"] is True
    assert sorted(again["results"][0]["files"]) == sorted([edits["horse2zebra"], report["results"][0]["reconstruction"],
                                                           again["results"][0]["record"]])
    assert Image.open(edits["horse2zebra"]).tobytes() == Image.open(again["results"][0]["edits"]["horse2zebra"]).tobytes()


def test_edit_by_a_word_uses_the_saved_direction_else_the_concepts_else_the_word_swap(edit_cli, image, tmp_path, tiny_sd):
    import hashlib

    from transformers import CLIPTextModel, CLIPTokenizer

    from direction_bank.jobs.edit_records import read_parameters

    # no --from: the caption names horse; the bank's saved horse2zebra is used, as --direction would
    out = tmp_path / "words"
    saved = edit_cli("edit", str(image), "--to", "zebra", "--caption", "a brown Horse in a field", "-o", str(out),
                     "--json")
    assert saved.exit_code == 0, saved.stderr
    assert said(saved.stderr) == ["horse -> zebra: the saved direction horse2zebra"]
    report = json.loads(saved.stdout)
    assert report["words"] == [{"source": "horse", "target": "zebra", "how": "saved direction",
                                "direction": "horse2zebra", "missing": []}]
    by_name = edit_cli("edit", str(image), "--direction", "horse2zebra", "--caption", "a brown Horse in a field",
                       "-o", str(tmp_path / "named"), "--json")
    named = json.loads(by_name.stdout)["results"][0]["edits"]["horse2zebra"]
    assert Image.open(report["results"][0]["edits"]["horse2zebra"]).tobytes() == Image.open(named).tobytes()
    # a word the bank has no concept for: the word-swap through the model's own text encoder, labelled so
    swap = edit_cli("edit", str(image), "--from", "horse", "--to", "unicorn", "--caption", "a horse in a field",
                    "-o", str(tmp_path / "swap"), "--json")
    assert swap.exit_code == 0, swap.stderr
    assert said(swap.stderr) == ["horse -> unicorn: word-swap ('a photo of a unicorn' minus 'a photo of a horse'), "
                                 "since the bank holds no concept 'unicorn' (dbank add-concept unicorn builds it)"]
    result = json.loads(swap.stdout)["results"][0]
    assert list(result["edits"]) == ["word-swap horse->unicorn"]
    record = read_record(result["record"])
    assert [(e.label, e.source, e.target, e.baseline) for e in record.edits] == [
        ("word-swap horse->unicorn", "horse", "unicorn", "word-swap")]
    _, entry = read_parameters(result["edits"]["word-swap horse->unicorn"])
    assert (entry.baseline, entry.direction) == ("word-swap", "word-swap horse->unicorn")
    tokenizer = CLIPTokenizer.from_pretrained(tiny_sd, subfolder="tokenizer")
    encoder = CLIPTextModel.from_pretrained(tiny_sd, subfolder="text_encoder")
    ids = tokenizer(["a photo of a horse", "a photo of a unicorn"], padding="max_length", max_length=77,
                    truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        states = encoder(ids).last_hidden_state
    by_hand = (states[1:] - states[:1]).numpy().astype("<f4").tobytes()
    assert record.edits[0].fingerprint == hashlib.sha256(by_hand).hexdigest()
    # a caption that names no concept of the bank, without --from: one line, nothing written
    lost = edit_cli("edit", str(image), "--to", "zebra", "--caption", "a cat on a sofa", "-o", str(tmp_path / "lost"))
    assert lost.exit_code != 0
    assert said(lost.stderr)[-1] == (f"Error: {image}: its caption 'a cat on a sofa' names no concept in the bank; "
                                     "name the word to change with --from")
    assert not (tmp_path / "lost").exists() or not any((tmp_path / "lost").iterdir())


def test_the_source_word_is_the_longest_concept_the_caption_names_and_saved_directions_come_first():
    from direction_bank.jobs.word_edit import CONCEPTS, SAVED, WORD_SWAP, choose, concept_in_caption

    concepts = ["car", "sports car", "dog"]
    assert concept_in_caption("A red Sports Car beside a dog", concepts) == "sports car"
    assert concept_in_caption("a dog beside a car", concepts) == "dog"
    assert concept_in_caption("a cartoon of a hotdog", concepts) is None
    saved = [{"name": "b", "source": "dog", "target": "cat", "model": "sd-2"},
             {"name": "a", "source": "dog", "target": "cat", "model": "sd-1"}]
    assert choose("dog", "cat", concepts, saved, "sd-2").name == "b"
    assert choose("dog", "cat", concepts, saved, "sd-3").name == "a"
    assert choose("dog", "car", concepts, saved).how == CONCEPTS
    assert choose("dog", "car", concepts, []).how == CONCEPTS
    wolf = choose("dog", "wolf", concepts, saved)
    assert (wolf.how, wolf.missing, wolf.label) == (WORD_SWAP, ("wolf",), "word-swap dog->wolf")
    assert choose("dog", "cat", concepts, saved).how == SAVED
    assert (choose("Dog", "Sports Car", concepts, []).source, choose("Dog", "Sports Car", concepts, []).target) == (
        "dog", "sports car")


def test_cli_bad_inputs_are_one_line_each_and_the_rest_is_edited(edit_cli, image, tmp_path, sd_model_wide, run_cli):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    wide_bank = tmp_path / "wide.db"
    run_cli("-d", str(wide_bank), "add-concept", "cat", "--sentences", "-", input="a cat\na small cat\n", model=sd_model_wide)
    run_cli("-d", str(wide_bank), "add-concept", "dog", "--sentences", "-", input="a dog\na small dog\n", model=sd_model_wide)
    run_cli("-d", str(wide_bank), "diff", "cat", "dog", "-o", str(tmp_path / "wide.safetensors"))
    result = edit_cli("edit", str(text), str(tmp_path / "missing.png"), str(image), "--direction", "horse2zebra",
                      "--direction-file", str(tmp_path / "wide.safetensors"), "--caption", "a horse",
                      "-o", str(tmp_path / "out"), "--json")
    assert result.exit_code == 1
    errors = said(result.stderr)
    assert len(errors) == 3 and all(line.startswith("Error: ") for line in errors)
    assert "wide: direction 'wide' is [1, 77, 48]" in errors[0]
    assert "notes.png: not an image" in errors[1] and "missing.png: no such file" in errors[2]
    report = json.loads(result.stdout)
    assert [r["image"] for r in report["results"]] == [str(image)]

def test_cli_absurd_size_is_one_line(run_cli, edit_cli, image, tiny_sd, tmp_path):
    absurd = run_cli("edit", str(image), "--direction", "horse2zebra", "--caption", "a horse", "--steps", "2",
                     "--size", "100000", "--model", str(tiny_sd), "-o", str(tmp_path / "out"))
    assert absurd.exit_code == 2  # a usage error, found before any model loads
    assert absurd.stderr.strip() == ("Error: Invalid value for '--size': '100000': use a multiple of 8 from 8 "
                                     "to 4096 (see dbank edit --help)")


def test_cli_generate_edit(edit_cli, tmp_path):
    result = edit_cli("generate-edit", "a photo of a horse", "--direction", "horse2zebra", "-o", str(tmp_path / "g"))
    assert result.exit_code == 0, result.stderr
    other = edit_cli("generate-edit", "a photo of a cat", "--direction", "horse2zebra", "-o", str(tmp_path / "g"),
                     "--json")
    stems = {p.name.split(".")[0] for p in (tmp_path / "g").iterdir()}
    assert len(stems) == 2  # one per prompt: the second did not overwrite the first
    assert all(stem.startswith("generated-0-32-a-photo-of-a-") for stem in stems)
    written = json.loads(other.stdout)["results"][0]["files"]
    assert len(written) == 3 and all("cat" in Path(f).name for f in written)  # the picture, its edit, the record
    # the edit carries its settings, as dbank edit's do; the generated picture is its input
    from direction_bank.jobs.edit_records import read_parameters

    data, entry = read_parameters(next(f for f in written if f.endswith(".horse2zebra.png")))
    assert (data["caption"], data["input"], data["seed"], data["size"], data["regularised"]) == (
        "a photo of a cat", Path(written[0]).name, 0, 32, False)
    assert (entry.direction, entry.scale, entry.xa_guidance) == ("horse2zebra", 1.0, 0.1)


def test_a_kept_reference_pass_is_reused_and_gives_the_same_edit(editor, image, monkeypatch):
    from editor import edit as edit_module

    inversion = editor.invert_file(image, "a photo of a horse", 32, STEPS)
    settings = EditSettings(steps=STEPS)
    fresh, reconstruction = editor.edit(inversion, _directions(1, seed=4), settings)
    editor.edit(inversion, _directions(1, seed=9), settings, keep_reference=True)
    calls = []
    original = edit_module._guided
    monkeypatch.setattr(edit_module, "_guided", lambda *a: calls.append(1) or original(*a))
    reused, reused_reconstruction = editor.edit(inversion, _directions(1, seed=4), settings, keep_reference=True)
    assert len(calls) == STEPS  # only the edit's guidance: the reference pass was skipped
    assert reused[0].tobytes() == fresh[0].tobytes()
    assert reused_reconstruction.tobytes() == reconstruction.tobytes()


def test_a_kept_reference_gives_the_same_latents_under_strong_guidance(editor, image):
    """At strong cross-attention guidance every reference step moves the edit, so a kept trace
    read one step off (or a chunk reusing the wrong step) shows in the latents, which 8-bit
    pixels at low guidance hide."""
    from editor.edit import edit

    inversion = editor.invert_file(image, "a photo of a horse", 32, STEPS)
    caption = encode_prompts(editor.components, [inversion.caption])
    directions = torch.as_tensor(_directions(2, seed=4))
    settings = EditSettings(steps=STEPS, xa_guidance=10.0)
    fresh, fresh_reconstruction, trace = edit(editor.components, inversion.latents, caption, directions, settings,
                                              keep_trace=True)
    weak, _ = edit(editor.components, inversion.latents, caption, directions, EditSettings(steps=STEPS))
    assert float((fresh - weak).abs().max()) > 0.05  # the guidance matters at this strength
    for part in (directions, directions[1:]):  # the kept trace, alone and as a later chunk reuses it
        reused, reconstruction = edit(editor.components, inversion.latents, caption, part, settings, trace=trace)
        # the same batch: exactly equal (a trace read one step early moved them by 1.6e-5); a
        # smaller chunk rounds differently in its batch (4e-5)
        atol = 0 if len(part) == len(directions) else 2e-4
        torch.testing.assert_close(reused, fresh[-len(part):], rtol=0, atol=atol)
        torch.testing.assert_close(reconstruction, fresh_reconstruction, rtol=0, atol=0)


def test_attention_map_of_a_caption_word(editor, image):
    inversion = editor.invert_file(image, "a photo of a horse", 32, STEPS)
    _, _, maps = editor.edit(inversion, _directions(1), EditSettings(steps=STEPS), attention_words=("horse",))
    heat = np.asarray(maps["horse"])
    assert maps["horse"].size == (32, 24) and maps["horse"].mode == "L"
    assert int(heat.max()) - int(heat.min()) >= 128  # normalised (then smoothed by the resize)
    edited, _, maps = editor.edit(inversion, _directions(1), EditSettings(steps=STEPS), attention_words=("zebra",))
    assert maps == {} and len(edited) == 1  # a word not in the caption has no map; the edit stands


def test_without_a_caption_blip_writes_one(edit_cli, image, tiny_blip, tmp_path):
    from editor.caption import Captioner

    expected = Captioner(str(tiny_blip))(Image.open(image).convert("RGB"))
    result = edit_cli("edit", str(image), "--direction", "horse2zebra", "--caption-model", str(tiny_blip),
                      "-o", str(tmp_path / "out"), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["results"][0]["caption"] == expected != ""


def test_a_missing_caption_model_is_one_line(edit_cli, image, tmp_path):
    result = edit_cli("edit", str(image), "--direction", "horse2zebra", "--caption-model", "nobody/no-blip",
                      "-o", str(tmp_path / "out"))
    assert result.exit_code == 1
    lines = said(result.stderr)
    assert len(lines) == 1 and "the captioning model 'nobody/no-blip' is not in the Hugging Face cache" in lines[0]
    assert "pass --caption" in lines[0]


def _png_header_only(path, width, height):
    """A PNG whose header claims width x height pixels (a decompression bomb's first bytes)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_output_names_never_collide_and_the_report_lists_exactly_what_was_written(edit_cli, run_cli, image,
                                                                                    tmp_path):
    for name in ("reconstruction", "a/b", "a-b", "attention-horse"):
        assert run_cli("diff", "horse", "zebra", "--save", name).exit_code == 0
    (tmp_path / "d1").mkdir()
    (tmp_path / "d2").mkdir()
    first, second = tmp_path / "d1" / "x.png", tmp_path / "d2" / "x.png"
    Image.open(image).save(first)
    Image.open(image).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(second)
    bomb = _png_header_only(tmp_path / "bomb.png", 20000, 20000)
    out = tmp_path / "out"
    directions = [arg for name in ("reconstruction", "a/b", "a-b", "attention-horse") for arg in ("--direction", name)]
    result = edit_cli("edit", str(first), str(bomb), str(second), *directions, "--caption", "a photo of a horse",
                      "--attention-map", "horse", "--attention-map", "unicorn", "-o", str(out), "--json")
    assert result.exit_code == 1  # the bomb
    errors = [line for line in said(result.stderr) if line.startswith("Error: ")]
    assert len(errors) == 1 and "bomb.png: over the limit of 80 megapixels" in errors[0]
    warnings = [line for line in said(result.stderr) if line.startswith("warning: ")]
    assert len(warnings) == 2 and all("'unicorn' is not in the caption" in w for w in warnings)
    report = json.loads(result.stdout)
    written = [f for r in report["results"] for f in r["files"]]
    assert [r["image"] for r in report["results"]] == [str(first), str(second)]
    assert len(written) == 2 * 8 == len(set(written))  # 4 edits, the reconstruction, a map in colour and grey, the record
    assert sorted(written) == sorted(str(p) for p in out.iterdir())
    edits = report["results"][0]["edits"]
    assert Path(edits["reconstruction"]).name != Path(report["results"][0]["reconstruction"]).name
    assert Path(edits["a/b"]).name != Path(edits["a-b"]).name
    assert Path(edits["attention-horse"]).name != Path(report["results"][0]["attention_maps"]["horse"]).name
    assert Image.open(report["results"][0]["reconstruction"]).tobytes() != Image.open(
        report["results"][1]["reconstruction"]).tobytes()  # d1/x.png and d2/x.png kept apart


def test_cheap_checks_come_before_any_model_loads(edit_cli, run_cli, image, tmp_path):
    unknown = run_cli("edit", str(image), "--direction", "nope", "--caption", "a horse", "-o", str(tmp_path / "o"),
                      "--model", str(tmp_path / "no-such-model"))
    assert unknown.exit_code == 1
    assert unknown.stderr.strip() == "Error: nope: no direction named 'nope' in the bank"
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    special = edit_cli("edit", str(fifo), "--direction", "horse2zebra", "--caption", "a horse", "-o", str(tmp_path / "o"))
    assert special.exit_code == 1 and special.stderr.strip().endswith("fifo.png: not a regular file")


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(tmp_path):
    header_only = _png_header_only(tmp_path / "big.png", 10000, 9000)  # 90 MP: PIL would only warn
    with pytest.raises(EditorError, match=r"big.png: 10000x9000 pixels, over the limit of 80 megapixels"):
        load_image(header_only, 64)


@pytest.mark.sqlite_only
def test_a_caption_model_that_cannot_be_downloaded_fails_fast_offline(edit_cli, image, tiny_sd, database, tmp_path):
    """With no network (a loopback-only namespace) and HF_HUB_OFFLINE unset, a BLIP that is not
    cached is one line from the quick reachability probe (its message), not minutes of retries."""
    import subprocess
    import sys

    from tests.network import loopback_only

    cut = loopback_only()
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(DBANK_DB=str(database), DBANK_DEBUG="0", HF_HUB_CACHE=str(tmp_path / "empty-cache"))
    done = subprocess.run([*cut, sys.executable, "-m", "direction_bank.cli", "edit", str(image), "--direction",
                           "horse2zebra", "--model", str(tiny_sd), "--size", "32", "--steps", "2", "-o",
                           str(tmp_path / "out")], capture_output=True, text=True, env=env)
    assert done.returncode == 1 and len(said(done.stderr)) == 1, done.stderr
    assert done.stderr.startswith("Error: the captioning model 'Salesforce/blip-image-captioning-base' is not "
                                  "downloaded and huggingface.co cannot be reached")
    assert "pass --caption" in done.stderr


def test_attention_maps_at_a_size_whose_lower_grids_round_up(tmp_path, clip_tokenizer_dir):
    """A 72x40 image: latent 36x20, whose attention grids are 18x10, 9x5 and 5x3 (rounded up),
    like SD's mid block at 512x288."""
    from editor.edit import layer_grid

    assert layer_grid(15, 36, 20) == (5, 3) and layer_grid(45, 36, 20) == (9, 5)
    model = write_tiny_sd(tmp_path / "deep", tokenizer_from=clip_tokenizer_dir, shape="tiny-deep")
    deep = Editor(str(model), device="cpu")
    path = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 72, 3), dtype=np.uint8)).save(path)
    inversion = deep.invert_file(path, "a photo of a horse", 72, 2)
    edited, reconstruction, maps = deep.edit(inversion, _directions(1), EditSettings(steps=2),
                                             attention_words=("horse",))
    assert edited[0].size == reconstruction.size == maps["horse"].size == (72, 40)


def test_the_inversion_cache_tells_apart_the_captioning_models(tiny_sd, image, tiny_blip, tmp_path):
    cache = InversionCache(tmp_path / "cache")
    first = Editor(str(tiny_sd), device="cpu", cache=cache, caption_model=str(tiny_blip))
    assert first.invert_file(image, None, 32, 2).cached is False
    assert first.invert_file(image, None, 32, 2).cached is True
    other = Editor(str(tiny_sd), device="cpu", cache=cache, caption_model=str(tmp_path / "another-blip"))
    with pytest.raises(EditorError, match="another-blip"):  # a miss: it must caption with its own BLIP
        other.invert_file(image, None, 32, 2)


@pytest.mark.long
def test_fp32_state_keeps_a_low_precision_unet_closer_to_full_precision(tiny_sd, image):
    """A bf16 UNet (CPU), 50 steps, one direction: with the latents and the scheduler in float32 the
    edit lands closer to the all-float32 one than with everything in bf16, whose spacing near
    |x| = 4 (0.03) rounds small updates away step after step (measured: 0.074 against 0.121 mean
    absolute error on the latents). Cross-attention guidance is off: it halves the time (bf16 on a CPU is
    slow) and the scheduler's updates alone show the rounding; fewer steps do not."""
    from editor.edit import edit

    full = Editor(str(tiny_sd), device="cpu", dtype="fp32")
    half = Editor(str(tiny_sd), device="cpu", dtype="bf16")
    inversion = full.invert_file(image, "a photo of a horse", 32, 50)
    caption = encode_prompts(full.components, ["a photo of a horse"])
    directions = torch.as_tensor(_directions(1))
    settings = EditSettings(steps=50, xa_guidance=0.0)
    reference, _ = edit(full.components, inversion.latents, caption, directions, settings)
    mixed, _ = edit(half.components, inversion.latents, caption, directions, settings)
    low, _ = edit(half.components, inversion.latents, caption, directions, settings, state_dtype=torch.bfloat16)
    assert mixed.dtype == torch.float32 and low.dtype == torch.bfloat16
    mixed_error = float((mixed - reference).abs().mean())
    low_error = float((low.float() - reference).abs().mean())
    assert mixed_error < 0.8 * low_error, (mixed_error, low_error)


def test_many_directions_run_in_chunks_that_fit_the_memory(editor, image, monkeypatch):
    """20 directions on a 'GPU' that runs out of memory past 9 rows a call: the chunk is halved
    until it fits (20 -> 10 -> 5 -> 2), and the images are those of one direction at a time."""
    inversion = editor.invert_file(image, "a photo of a horse", 32, STEPS)
    directions = _directions(20)
    settings = EditSettings(steps=STEPS)
    alone, _ = editor.edit(inversion, directions[:3], settings, max_batch=1)
    unet = editor.components.unet
    original, rows = unet.forward, []

    def limited(sample, *args, **kwargs):
        rows.append(len(sample))
        if len(sample) > 9:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(sample, *args, **kwargs)

    monkeypatch.setattr(unet, "forward", limited)
    pictures, _ = editor.edit(inversion, directions, settings)
    assert len(pictures) == 20
    assert {40, 20, 10} <= set(rows) and max(r for r in rows if r <= 9) == 5  # 2 directions: 4 + 1 reference row
    for ours, single in zip(pictures, alone):
        np.testing.assert_allclose(np.asarray(ours, np.int16), np.asarray(single, np.int16), atol=1)
    with pytest.raises(EditorError, match="out of GPU memory for even one direction"):
        monkeypatch.setattr(unet, "forward", lambda *a, **k: (_ for _ in ()).throw(torch.OutOfMemoryError("x")))
        editor.edit(inversion, directions[:2], settings)


def test_a_retry_after_running_out_of_memory_counts_the_attention_maps_once(editor, image, monkeypatch):
    """The first chunk fails part way (out of memory on its third UNet call) after summing some
    steps' maps; the retried chunk must start them from nothing (they were once counted twice:
    a map sum of 1792 instead of 1024, the grey map off by up to 30/255)."""
    inversion = editor.invert_file(image, "a photo of a horse", 32, STEPS)
    directions, settings = _directions(4), EditSettings(steps=STEPS, xa_guidance=0.1)
    expected = editor.edit(inversion, directions, settings, attention_words=("horse",))[2]["horse"]
    unet = editor.components.unet
    original, calls = unet.forward, []

    def failing_once(sample, *args, **kwargs):
        calls.append(len(sample))
        if len(calls) == 3 and len(sample) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(sample, *args, **kwargs)

    monkeypatch.setattr(unet, "forward", failing_once)
    retried = editor.edit(inversion, directions, settings, attention_words=("horse",))[2]["horse"]
    assert min(calls[3:]) < max(calls[:3])  # it did run out, and retried in smaller chunks
    np.testing.assert_array_equal(np.asarray(retried), np.asarray(expected))


def test_generated_starts_are_float32_whatever_the_unet_dtype(tiny_sd):
    full = Editor(str(tiny_sd), device="cpu", dtype="fp32").generate_noise(32, seed=3)
    half = Editor(str(tiny_sd), device="cpu", dtype="bf16").generate_noise(32, seed=3)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, full, rtol=0, atol=0)  # not quantised to bf16 first


def test_several_images_in_one_batch_give_what_each_gives_alone(editor, image, tmp_path):
    from editor.edit import edit

    other = tmp_path / "other.png"
    Image.open(image).transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(other)
    first = editor.invert_file(image, "a photo of a horse", 32, STEPS)
    second = editor.invert_file(other, "a horse in a field", 32, STEPS)
    captions = encode_prompts(editor.components, ["a photo of a horse", "a horse in a field"])
    directions = torch.as_tensor(_directions(4))  # two for each image
    settings = EditSettings(steps=STEPS, xa_guidance=10.0)
    both, reconstructions = edit(editor.components, torch.cat([first.latents, second.latents]), captions,
                                 directions, settings)
    for index, inversion in enumerate((first, second)):
        alone, reconstruction = edit(editor.components, inversion.latents, captions[index : index + 1],
                                     directions[2 * index : 2 * index + 2], settings)
        torch.testing.assert_close(both[2 * index : 2 * index + 2], alone, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(reconstructions[index : index + 1], reconstruction, atol=1e-4, rtol=1e-4)


def _folder_of_images(folder, sizes):
    folder.mkdir()
    for index, (width, height) in enumerate(sizes):
        pixels = np.random.default_rng(index).integers(0, 255, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{index}.png")
    return folder


def test_a_folder_is_edited_in_batches_and_a_rerun_resumes(edit_cli, tmp_path):
    folder = _folder_of_images(tmp_path / "photos", [(48, 40), (48, 40), (40, 40), (48, 40)])
    (folder / "notes.txt").write_text("not an image")
    batched = edit_cli("edit", str(folder), "--direction", "horse2zebra", "--caption", "a horse",
                       "--batch-images", "4", "-o", str(tmp_path / "batched"), "--json")
    assert batched.exit_code == 0, batched.stderr
    report = json.loads(batched.stdout)
    assert [Path(r["image"]).name for r in report["results"]] == ["img0.png", "img1.png", "img2.png", "img3.png"]
    written = sorted(f for r in report["results"] for f in r["files"])
    assert written == sorted(str(p) for p in (tmp_path / "batched").iterdir()) and len(written) == 12
    one_by_one = edit_cli("edit", str(folder), "--direction", "horse2zebra", "--caption", "a horse",
                          "--batch-images", "1", "-o", str(tmp_path / "single"), "--json")
    assert one_by_one.exit_code == 0
    for path in (tmp_path / "batched").glob("*.png"):  # batching images changes no picture
        np.testing.assert_allclose(np.asarray(Image.open(path), np.int16),
                                   np.asarray(Image.open(tmp_path / "single" / path.name), np.int16), atol=1)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "batched").iterdir()}
    (tmp_path / "batched" / "img2.horse2zebra.png").unlink()  # as if killed before img2 was written
    again = edit_cli("edit", str(folder), "--direction", "horse2zebra", "--caption", "a horse",
                     "-o", str(tmp_path / "batched"), "--json")
    assert again.exit_code == 0, again.stderr  # the half-done image is redone whole, the rest skipped
    assert [Path(r["image"]).name for r in json.loads(again.stdout)["results"]] == ["img2.png"]
    assert "skipped 3 images whose outputs exist" in again.stderr
    assert "img2.png: an earlier run left 2 of its 3 outputs; redone" in again.stderr
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "batched").iterdir()}
    assert set(after) == set(before)
    assert {n: m for n, m in after.items() if not n.startswith("img2")} == {
        n: m for n, m in before.items() if not n.startswith("img2")}


def test_a_manifest_gives_each_image_its_caption_and_directions(edit_cli, run_cli, tmp_path):
    folder = _folder_of_images(tmp_path / "photos", [(48, 40), (48, 40), (40, 48)])
    assert run_cli("diff", "zebra", "horse", "--save", "zebra2horse").exit_code == 0
    manifest = folder / "list.csv"
    manifest.write_text("image,caption,directions\n"
                        "img0.png,a photo of a horse,horse2zebra,zebra2horse\n"
                        "img1.png,,horse2zebra\n"
                        "img2.png,a horse,no-such-direction\n"
                        "missing.png,a horse,horse2zebra\n")
    result = edit_cli("edit", "--manifest", str(manifest), "--caption-model", "unused-when-captions-are-given",
                      "--caption", "a horse in a field", "-o", str(tmp_path / "out"), "--json")
    assert result.exit_code == 1
    errors = [line for line in said(result.stderr) if line.startswith("Error: ")]
    assert len(errors) == 2
    assert "no-such-direction: no direction named 'no-such-direction'" in errors[0] and "missing.png" in errors[1]
    report = {Path(r["image"]).name: r for r in json.loads(result.stdout)["results"]}
    assert set(report) == {"img0.png", "img1.png"}
    assert set(report["img0.png"]["edits"]) == {"horse2zebra", "zebra2horse"}
    assert report["img0.png"]["caption"] == "a photo of a horse"
    assert set(report["img1.png"]["edits"]) == {"horse2zebra"}


def test_a_rerun_after_a_kill_redoes_only_the_image_left_half_done(edit_cli, tmp_path):
    """What kill -9 can leave (outputs are written to a temporary and renamed, so never a partial
    PNG under its name): some of an image's outputs, and a hidden temporary. A rerun without
    --overwrite redoes that image, skips the finished ones and removes the temporary."""
    folder = _folder_of_images(tmp_path / "photos", [(48, 40), (48, 40), (40, 48)])
    out = tmp_path / "out"
    args = ("edit", str(folder), "--direction", "horse2zebra", "--caption", "a photo of a horse", "-o", str(out))
    assert edit_cli(*args).exit_code == 0
    finished = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    expected = (out / "img1.horse2zebra.png").read_bytes()
    (out / "img1.horse2zebra.png").unlink()  # killed between img1's two files
    (out / ".img1.horse2zebra.png.k9x.tmp").write_bytes(expected[:100])
    rerun = edit_cli(*args, "--json")
    assert rerun.exit_code == 0, rerun.stderr
    assert [Path(r["image"]).name for r in json.loads(rerun.stdout)["results"]] == ["img1.png"]
    assert "img1.png: an earlier run left 2 of its 3 outputs; redone" in rerun.stderr
    assert "skipped 2 images" in rerun.stderr
    assert (out / "img1.horse2zebra.png").read_bytes() == expected
    assert not list(out.glob(".*.tmp"))
    assert {name: (out / name).stat().st_mtime_ns for name in finished if not name.startswith("img1")} == {
        name: mtime for name, mtime in finished.items() if not name.startswith("img1")}


def test_a_ray_address_where_nothing_answers_is_one_line_in_bounded_time(edit_cli, image, tmp_path):
    """Refused (a port bound but not listening) and silent (a full accept queue: the SYN is never
    answered), both on loopback: one line, before any model loads. "within 2 s" is said only when
    the connection attempt ran out of --connect-timeout, so the bound is checked without a clock."""
    import socket

    closed = socket.socket()  # held bound for the whole test, so no other socket can take its port
    closed.bind(("127.0.0.1", 0))
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(0)
    fillers = []
    for _ in range(2):
        filler = socket.socket()
        filler.settimeout(0.3)
        try:
            filler.connect(silent.getsockname())
        except OSError:
            pass
        fillers.append(filler)
    try:
        for sock, fragment in ((closed, "no Ray cluster at 127.0.0.1"), (silent, "within 2 s")):
            result = edit_cli("edit", str(image), "--direction", "horse2zebra", "--engine", "ray", "--address",
                              f"127.0.0.1:{sock.getsockname()[1]}", "--connect-timeout", "2", "-o",
                              str(tmp_path / "out"))
            assert result.exit_code == 1 and result.stderr.count("\n") == 1 and fragment in result.stderr
        assert not (tmp_path / "out").exists()
    finally:
        for sock in (closed, silent, *fillers):
            sock.close()
    import importlib.util

    if importlib.util.find_spec("grpc") is None:  # ray[data] without ray[client], as the [test] extra installs
        client = edit_cli("edit", str(image), "--direction", "horse2zebra", "--engine", "ray", "--address",
                          "ray://127.0.0.1:10001", "-o", str(tmp_path / "out"))
        assert client.exit_code == 1 and "pip install 'ray[client]'" in client.stderr


def test_a_cache_that_is_not_a_folder_is_refused_before_the_model_loads(edit_cli, image, tmp_path, monkeypatch):
    regular = tmp_path / "a-file"
    regular.write_text("not a folder")
    for cache, fragment in ((regular, "is not a folder"), (regular / "below", "cannot be made")):
        monkeypatch.setenv("DBANK_CACHE", str(cache))
        result = edit_cli("edit", str(image), "--direction", "horse2zebra", "--caption", "a horse",
                          "-o", str(tmp_path / "out"))
        assert result.exit_code == 1 and result.stderr.count("\n") == 1 and fragment in result.stderr
        assert "DBANK_CACHE" in result.stderr and not list((tmp_path / "out").glob("*.png"))
    assert regular.read_text() == "not a folder"


def test_a_malformed_manifest_is_refused_with_its_line_number(edit_cli, tmp_path):
    """An open quote once swallowed the rows after it (two images silently never edited), and a
    caption over 131,072 characters was 'unexpected Error'; both are one line, nothing runs."""
    folder = _folder_of_images(tmp_path / "photos", [(48, 40), (48, 40), (48, 40)])
    cases = [("img0.png,a horse,horse2zebra\nimg1.png,\"a horse,horse2zebra\nimg2.png,a horse,horse2zebra\n",
              "line 2: not a CSV row"),
             ("img0.png,a horse,horse2zebra\nimg1.png,\"a horse\" here,horse2zebra\n", "line 2: not a CSV row"),
             (f"img0.png,{'a horse ' * 20000},horse2zebra\n", "line 1: 160021 characters (at most 65536 per row)"),
             ("img0.png,a horse,horse2zebra\nimg1.png,a horse\n",  # once silently left unedited
              "line 2: img1.png names no direction, and the command gives none; add one to the row, or give "
              "--direction")]
    for text, fragment in cases:
        manifest = folder / "list.csv"
        manifest.write_text(text)
        result = edit_cli("edit", "--manifest", str(manifest), "-o", str(tmp_path / "out"))
        assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.stderr
        assert fragment in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.sqlite_only
def test_a_folder_edit_killed_with_sigkill_finishes_on_rerun(edit_cli, database, tiny_sd, tmp_path):
    """A real kill -9 part way through a folder: the rerun (no --overwrite) edits the rest, the
    files equal an uninterrupted run's, and no temporary or partial file is left."""
    import signal
    import subprocess
    import sys
    import time

    folder = _folder_of_images(tmp_path / "photos", [(48, 40)] * 6)
    args = ["edit", str(folder), "--direction", "horse2zebra", "--caption", "a horse", "--batch-images", "1",
            "--steps", str(STEPS), "--size", "32", "--model", str(tiny_sd)]
    out = tmp_path / "out"
    env = {**os.environ, "DBANK_DB": str(database), "DBANK_CACHE": str(tmp_path / "cache"), "DBANK_DEBUG": "0"}
    worker = subprocess.Popen([sys.executable, "-m", "direction_bank.cli", *args, "-o", str(out)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.glob("*.png")) and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert 0 < len(list(out.glob("*.png"))) < 12, "killed before its first picture or after its last"
    rerun = edit_cli(*args[:-6], "-o", str(out))
    assert rerun.exit_code == 0, rerun.stderr
    clean = edit_cli(*args[:-6], "-o", str(tmp_path / "clean"))
    assert clean.exit_code == 0
    names = sorted(p.name for p in (tmp_path / "clean").iterdir())
    assert sorted(p.name for p in out.iterdir()) == names and len(names) == 18  # nothing hidden left over
    for name in names:
        assert (out / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name


def test_dotted_names_never_share_an_output(edit_cli, run_cli, tmp_path):
    """x.png with direction y.z and x.y.png with direction z once both became x.y.z.png (the
    second edit lost after the run); now each has its own files."""
    folder = _folder_of_images(tmp_path / "photos", [(48, 40), (48, 40)])
    (folder / "img0.png").rename(folder / "x.png")
    (folder / "img1.png").rename(folder / "x.y.png")
    assert run_cli("diff", "horse", "zebra", "--save", "y.z").exit_code == 0
    assert run_cli("diff", "zebra", "horse", "--save", "z").exit_code == 0
    manifest = folder / "list.csv"
    manifest.write_text("x.png,a photo of a horse,y.z\nx.y.png,a photo of a horse,z\n")
    out = tmp_path / "out"
    result = edit_cli("edit", "--manifest", str(manifest), "-o", str(out), "--json")
    assert result.exit_code == 0, result.stderr
    edits = [next(iter(r["edits"].values())) for r in json.loads(result.stdout)["results"]]
    assert len(set(edits)) == 2 and all(Path(p).is_file() for p in edits)
    assert len(list(out.glob("*.png"))) == 4  # two edits, two reconstructions


def test_one_image_on_two_rows_gets_outputs_per_row(edit_cli, tmp_path):
    folder = _folder_of_images(tmp_path / "photos", [(48, 40)])
    manifest = folder / "list.csv"
    manifest.write_text("img0.png,a photo of a horse,horse2zebra\nimg0.png,a horse in a field,horse2zebra\n")
    out = tmp_path / "out"
    first = json.loads(edit_cli("edit", "--manifest", str(manifest), "-o", str(out), "--json").stdout)
    assert [r["caption"] for r in first["results"]] == ["a photo of a horse", "a horse in a field"]
    assert len({r["edits"]["horse2zebra"] for r in first["results"]}) == 2
    images = [Image.open(r["edits"]["horse2zebra"]).tobytes() for r in first["results"]]
    assert images[0] != images[1]  # each caption's own edit
    again = edit_cli("edit", "--manifest", str(manifest), "-o", str(out), "--json")
    assert json.loads(again.stdout)["results"] == [] and "skipped 2 images" in again.stderr


@pytest.mark.sqlite_only
def test_ray_data_gives_the_same_bytes_as_one_process(edit_cli, tiny_sd, database, tmp_path):
    """--engine ray on a local Ray instance (CPU, tiny model, in a loopback-only namespace: Ray
    probes the network on its own): the same files, byte for byte, as the local runner."""
    import subprocess
    import sys

    pytest.importorskip("ray.data", reason="the [ray] extra is not installed")
    from tests.network import loopback_only

    cut = loopback_only()
    folder = _folder_of_images(tmp_path / "photos", [(48, 40), (48, 40), (40, 40)])
    common = [str(folder), "--direction", "horse2zebra", "--caption", "a horse", "--batch-images", "2",
              "--attention-map", "horse"]  # the maps come back from Ray too (eval's background change needs them)
    local = edit_cli("edit", *common, "-o", str(tmp_path / "local"))
    assert local.exit_code == 0, local.stderr
    env = {**os.environ, "DBANK_DB": str(database), "DBANK_DEBUG": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    done = subprocess.run([*cut, sys.executable, "-m", "direction_bank.cli", "edit", *common, "--engine", "ray",
                           "--steps", str(STEPS), "--size", "32", "--model", str(tiny_sd), "-o", str(tmp_path / "ray"),
                           "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["results"]) == 3
    assert done.stderr == ""  # Ray's C++ notes (a DNS probe, token auth, log levels) go to its log file
    names = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "ray").iterdir()) and len(names) == 15
    for name in names:
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes(), name


def _labels(path):
    return json.loads(Image.open(path).text["labels"])


def test_edit_writes_a_contact_sheet_colour_overlays_and_names_every_file(edit_cli, run_cli, image, tmp_path):
    assert run_cli("diff", "zebra", "horse", "--save", "zebra2horse").exit_code == 0
    out = tmp_path / "out"
    second = tmp_path / "second.png"
    Image.open(image).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(second)
    result = edit_cli("edit", str(image), str(second), "--direction", "horse2zebra", "--direction", "zebra2horse",
                      "--caption", "a photo of a horse", "--attention-map", "horse", "--sheet", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{image} (caption 'a photo of a horse'):"
    written = [line.strip() for line in lines if line.startswith("  ")]
    assert sorted(written + [str(p) for p in out.glob("sheet-*.png")]) == sorted(str(p) for p in out.iterdir())
    assert lines[-1].startswith("contact sheet: ") and len(list(out.glob("sheet-*.png"))) == 1
    sheet = lines[-1].split(": ", 1)[1]
    labels = _labels(sheet)
    assert labels["columns"] == ["input", "reconstruction", "horse2zebra", "zebra2horse"]
    assert labels["rows"] == ["horse.png: a photo of a horse", "second.png: a photo of a horse"]
    width, height = Image.open(sheet).size
    assert (width, height) == (labels_width(sheet), 22 + 2 * (24 + 4) + 4)  # 4 columns of 32x24 cells, 2 rows
    overlay = Image.open(out / "horse.attention-horse.png")
    grey = Image.open(out / "horse.attention-horse.grey.png")
    assert overlay.mode == "RGB" and grey.mode == "L" and overlay.size == grey.size == (32, 24)
    colours = np.asarray(overlay, np.int16)
    assert np.abs(colours[..., 0] - colours[..., 2]).mean() > 5  # coloured, not grey


def labels_width(sheet) -> int:
    """The sheet's width from its layout: the row-label column, then a column per label, as wide
    as its 32-px picture or its label's longest word (so 'reconstruction' is never cut)."""
    from editor.pictures import PADDING, _font

    font = _font()
    side = min(max(int(font.getlength(label)) for label in _labels(sheet)["rows"]) + 2 * PADDING, 240)
    columns = [max(32, int(max(font.getlength(word) for word in label.split())) + 2)
               for label in _labels(sheet)["columns"]]
    assert columns[1] > 32  # 'reconstruction' is wider than its picture
    return side + sum(width + PADDING for width in columns) + PADDING


def test_sweep_writes_one_labelled_cell_per_setting_and_reuses_the_reference(edit_cli, image, tmp_path, monkeypatch):
    from editor import edit as edit_module

    steps = []
    original = edit_module.ReferenceTrace
    monkeypatch.setattr(edit_module, "ReferenceTrace", lambda *a: steps.append(1) or original(*a))
    result = edit_cli("sweep", str(image), "--direction", "horse2zebra", "--scale", "0.5,2", "--xa-guidance",
                      "0,0.1,0.5", "--caption", "a photo of a horse", "-o", str(tmp_path / "s"), "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert len(steps) == 1  # one reference pass for the whole grid
    labels = _labels(report["grid"])
    assert labels["columns"] == ["scale 0.5", "scale 2"] and labels["rows"] == ["xa 0", "xa 0.1", "xa 0.5"]
    assert labels["title"] == "horse.png + horse2zebra: a photo of a horse"
    grid = np.asarray(Image.open(report["grid"]).convert("RGB"), np.int16)
    from editor.pictures import _font, _wrap

    title_lines = _wrap(labels["title"], grid.shape[1] - 8, _font())  # a narrow grid: the title wraps
    assert "".join(title_lines).replace(" ", "") == labels["title"].replace(" ", "")  # wrapped, not cut
    font = _font()
    column_lines = max(len(_wrap(label, max(32, int(max(font.getlength(w) for w in label.split())) + 2), font))
                       for label in labels["columns"])
    top = len(title_lines) * 16 + 6 + column_lines * 16 + 6  # the title's lines, then the column labels
    assert grid.shape[0] == top + 3 * (24 + 4) + 4
    cell = lambda row, column: grid[top + 4 + row * 28 : top + 4 + row * 28 + 24, -(2 - column) * 36 : -(2 - column) * 36 + 32]
    assert np.abs(cell(0, 0) - cell(0, 1)).mean() > 1  # the scale shows
    bad = edit_cli("sweep", str(image), "--direction", "horse2zebra", "--scale", "1,nan", "-o", str(tmp_path / "s"))
    assert bad.exit_code == 2 and "--scale" in bad.stderr


def test_show_plot_draws_the_norm_per_token(run_cli, edit_cli, tmp_path):
    plot = tmp_path / "norms.png"
    result = run_cli("show", "horse2zebra", "--plot", str(plot))
    assert result.exit_code == 0 and f"plot: {plot}" in result.stdout
    picture = Image.open(plot)
    assert picture.size == (1000, 320) and _labels(plot)["bars"] == 77
    again = run_cli("show", "horse2zebra", "--plot", str(plot))
    assert again.exit_code == 1 and "exists; pass --overwrite" in again.stderr
    concept = run_cli("show", "horse", "--plot", str(tmp_path / "c.png"))
    assert concept.exit_code == 1 and "--plot draws a saved direction" in concept.stderr


def test_max_batch_bounds_the_directions_of_a_batch_of_images(edit_cli, tmp_path, monkeypatch):
    from editor.runners import local

    sizes, original = [], local.edit
    monkeypatch.setattr(local, "edit", lambda components, latents, *a, **k: sizes.append(len(latents))
                        or original(components, latents, *a, **k))
    folder = _folder_of_images(tmp_path / "photos", [(48, 40)] * 5)
    result = edit_cli("edit", str(folder), "--direction", "horse2zebra", "--caption", "a horse", "--batch-images", "5",
                      "--max-batch", "2", "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.stderr
    assert sizes == [2, 2]  # 2 images of 1 direction a batch; the fifth alone goes through Editor.edit


def test_every_edit_carries_its_settings_and_like_repeats_the_edit(edit_cli, run_cli, image, tmp_path, tiny_sd):
    from direction_bank.jobs.edit_records import read_parameters

    first = edit_cli("edit", str(image), "--direction", "horse2zebra", "--caption", "a horse in a field",
                     "--scale", "1.5", "--xa-guidance", "0.2", "--seed", "3", "-o", str(tmp_path / "first"), "--json")
    assert first.exit_code == 0, first.stderr
    path = json.loads(first.stdout)["results"][0]["edits"]["horse2zebra"]
    data, entry = read_parameters(path)
    assert (data["caption"], data["seed"], data["steps"], data["size"], data["model"], data["input"]) == (
        "a horse in a field", 3, STEPS, 32, str(tiny_sd), image.name)
    assert (entry.direction, entry.scale, entry.xa_guidance, entry.source, entry.target) == (
        "horse2zebra", 1.5, 0.2, "horse", "zebra")
    [version] = json.loads(run_cli("direction", "history", "horse2zebra", "--json").stdout)
    assert entry.fingerprint == version["fingerprint"]
    # --like repeats it from the picture alone: the same pixels
    again = run_cli("edit", str(image), "--like", path, "-o", str(tmp_path / "again"), "--json", model=tiny_sd)
    assert again.exit_code == 0, again.stderr
    repeated = json.loads(again.stdout)["results"][0]["edits"]["horse2zebra"]
    assert np.array_equal(np.asarray(Image.open(repeated)), np.asarray(Image.open(path)))
    # the direction changed since: --like takes the version the picture was made with, and says so
    assert run_cli("diff", "zebra", "horse", "--save", "horse2zebra", "--overwrite").exit_code == 0
    old = run_cli("edit", str(image), "--like", path, "-o", str(tmp_path / "old"), "--json", model=tiny_sd)
    assert old.exit_code == 0, old.stderr
    assert "'horse2zebra' has changed since; using version 1" in old.stderr
    [made] = json.loads(old.stdout)["results"][0]["edits"].values()
    assert np.array_equal(np.asarray(Image.open(made)), np.asarray(Image.open(path)))
    plain = run_cli("edit", str(image), "--like", str(image), "-o", str(tmp_path / "plain"), model=tiny_sd)
    assert plain.exit_code == 1 and plain.stderr.strip() == (
        f"Error: {image}: carries no dbank edit settings (a PNG that dbank edit wrote does)")


def test_dbank_steps_sets_the_steps_of_every_edit_unless_steps_is_given(run_cli, image, tmp_path, tiny_sd,
                                                                       horse_zebra_bank, monkeypatch):
    from direction_bank.jobs.edit_records import read_parameters

    monkeypatch.setenv("DBANK_CACHE", str(tmp_path / "cache"))
    made = {}
    for steps, extra in ((3, ()), (2, ("--steps", "2"))):
        done = run_cli("edit", str(image), "--direction", "horse2zebra", "--caption", "a horse", "--size", "32",
                       *extra, "-o", str(tmp_path / f"out{steps}"), "--json", model=tiny_sd,
                       env={"DBANK_STEPS": "3"})
        assert done.exit_code == 0, done.stderr
        made[steps] = read_parameters(json.loads(done.stdout)["results"][0]["edits"]["horse2zebra"])[0]["steps"]
    assert made == {3: 3, 2: 2}
    wrong = run_cli("edit", str(image), "--direction", "horse2zebra", "--caption", "a horse", "-o",
                    str(tmp_path / "wrong"), model=tiny_sd, env={"DBANK_STEPS": "0"})
    assert wrong.exit_code == 2 and "Invalid value for '--steps'" in wrong.stderr
    assert not (tmp_path / "wrong").exists()


def _with_parameters(source, target, change=None, text=None, size=None):
    """A copy of a dbank PNG whose 'parameters' chunk is changed by `change(data)` (or is
    `text`), optionally at another pixel size (mode '1': tiny files however large)."""
    from PIL.PngImagePlugin import PngInfo

    with Image.open(source) as picture:
        data = json.loads(picture.text["parameters"])
        copy = picture.copy() if size is None else Image.new("1", size)
    if change is not None:
        change(data)
    info = PngInfo()
    info.add_text("parameters", text if text is not None else json.dumps(data))
    copy.save(target, pnginfo=info)
    return target


def test_a_picture_never_takes_charge_of_like(edit_cli, run_cli, image, tmp_path, tiny_sd):
    """edit --like reads a PNG through the same bounds as the options, before any model loads,
    refuses hostile ones in one line, never loads a model the user did not name, and says when
    it captions another photo with the picture's caption."""
    import os

    first = edit_cli("edit", str(image), "--direction", "horse2zebra", "--caption", "a horse in a field",
                     "-o", str(tmp_path / "first"), "--json")
    path = json.loads(first.stdout)["results"][0]["edits"]["horse2zebra"]
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    nested = '{"format": "dbank-parameters", "x": ' + "[" * 50 + "]" * 50 + "}"
    hostile = {
        "fifo": (fifo, "not a regular file"),
        "long": (_with_parameters(path, tmp_path / "long.png", text="x" * 70_000),
                 "settings chunk holds 70000 characters, over 65536"),
        "nested": (_with_parameters(path, tmp_path / "nested.png", text=nested), "nest deeper than 6 levels"),
        "fingerprint": (_with_parameters(path, tmp_path / "fp.png", lambda d: d["edit"].update(fingerprint=7)),
                        "its settings' fingerprint '7': not a SHA-256"),
        "seed": (_with_parameters(path, tmp_path / "seed.png", lambda d: d.update(seed=2**70)),
                 f"its settings' seed {2**70}: use a whole number from 0 to 4294967295"),
        "negative": (_with_parameters(path, tmp_path / "neg.png", lambda d: d.update(seed=-1)),
                     "its settings' seed -1: use a whole number from 0 to 4294967295"),
        "steps": (_with_parameters(path, tmp_path / "steps.png", lambda d: d.update(steps=5000)),
                  "its settings' steps 5000: use a whole number from 1 to 1000"),
        "scale": (_with_parameters(path, tmp_path / "scale.png", lambda d: d["edit"].update(scale=1e300)),
                  "its settings' scale 1e+300: use a finite number from -20 to 20"),
        "size": (_with_parameters(path, tmp_path / "size.png", lambda d: d.update(size=12)),
                 "its settings' size 12: use a multiple of 8 from 8 to 4096"),
        "bomb": (_with_parameters(path, tmp_path / "bomb.png", size=(9000, 9000)),
                 "9000x9000 pixels, over the limit of 80 megapixels"),
    }
    for case, (picture, message) in hostile.items():
        result = run_cli("edit", str(image), "--like", str(picture), "-o", str(tmp_path / case), model=tiny_sd)
        assert result.exit_code == 1, (case, result.stderr)
        assert result.stderr.count("\n") == 1 and message in result.stderr, (case, result.stderr)
        assert not (tmp_path / case).exists()
    # a picture made with a model the user did not name: one line, nothing loaded
    other = _with_parameters(path, tmp_path / "other.png", lambda d: d.update(model="someone/other-model"))
    unnamed = run_cli("edit", str(image), "--like", str(other), "-o", str(tmp_path / "unnamed"),
                      env={"DBANK_MODEL": None})
    assert unnamed.exit_code == 1 and unnamed.stderr.count("\n") == 1
    assert "was made with the model 'someone/other-model', and this edit would use" in unnamed.stderr
    assert "name the model with --model" in unnamed.stderr
    named = run_cli("edit", str(image), "--like", str(other), "-o", str(tmp_path / "named"), "--json", model=tiny_sd)
    assert named.exit_code == 0, named.stderr
    assert f"was made with the model 'someone/other-model'; editing with '{tiny_sd}' (--model)" in named.stderr
    # another photo: the picture's caption is used, and said
    photo = tmp_path / "elsewhere.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(photo)
    moved = run_cli("edit", str(photo), "--like", path, "-o", str(tmp_path / "moved"), model=tiny_sd)
    assert moved.exit_code == 0, moved.stderr
    assert (f"captioning with {Path(path).name}'s caption 'a horse in a field', written for {image.name}; "
            "pass --caption to caption this photo") in moved.stderr
    same = run_cli("edit", str(image), "--like", path, "-o", str(tmp_path / "same"), model=tiny_sd)
    assert same.exit_code == 0 and "captioning with" not in same.stderr
