"""SDXL: a tiny random SDXL checkpoint in the real layout (two text encoders, two tokenizers from
the real CLIP BPE file, a UNet with text_time additions, a VAE), through the bank (two-part
embeddings, statistics, directions, files), the editor (added conditions, pooled directions) and
the CLI; SDXL and SD 1.x/2.x never mix."""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from direction_bank.testing import write_tiny_sdxl

SENTENCES = ["a photo of a horse", "a horse in a field at sunset", "a painting of a horse", "horse"]
STEPS = 4
CAPTION = "a photo of a horse"


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory, clip_tokenizer_dir):
    return write_tiny_sdxl(tmp_path_factory.mktemp("tiny-sdxl"), tokenizer_from=clip_tokenizer_dir)


@pytest.fixture(scope="session")
def sdxl_encoder(tiny_sdxl):
    from direction_bank.text.encoder import TextEncoder

    return TextEncoder.load(str(tiny_sdxl), device="cpu")


@pytest.fixture(scope="module")
def sdxl_editor(tiny_sdxl):
    from editor.editor import Editor

    return Editor(str(tiny_sdxl), device="cpu")


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "horse.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path)
    return path


def _reference(tiny_sdxl, texts):
    """diffusers' own SDXL prompt encoding: (prompt embeds, pooled), no classifier-free guidance."""
    from diffusers import StableDiffusionXLPipeline

    pipeline = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl)
    with torch.no_grad():
        embeds, _, pooled, _ = pipeline.encode_prompt(texts, do_classifier_free_guidance=False)
    return embeds.numpy(), pooled.numpy()


def test_the_tiny_sdxl_checkpoint_is_what_diffusers_loads_as_sdxl(tiny_sdxl):
    from diffusers import StableDiffusionXLPipeline

    pipeline = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl)
    assert pipeline.tokenizer_2.pad_token == "!" and pipeline.unet.config.addition_embed_type == "text_time"
    image = pipeline("a horse", num_inference_steps=2, height=64, width=64, output_type="np",
                     generator=torch.Generator().manual_seed(0)).images
    assert image.shape == (1, 64, 64, 3) and np.isfinite(image).all()


@pytest.mark.parametrize("batch_size", [1, 3])
def test_bank_embeddings_equal_diffusers_encode_prompt(tiny_sdxl, sdxl_encoder, bank, batch_size):
    embeds, pooled = _reference(tiny_sdxl, SENTENCES)
    assert embeds.shape == (4, 77, 64) and pooled.shape == (4, 32)  # [77, 32 + 32] and the projection
    info = bank.register_encoder(sdxl_encoder)
    assert (info.hidden_size, info.pooled_size, info.kind) == (64, 32, "SDXL")
    tokens, got_pooled = info.split(sdxl_encoder.embed(SENTENCES, batch_size=batch_size))
    np.testing.assert_allclose(tokens, embeds, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got_pooled, pooled, atol=1e-5, rtol=0)


def test_the_fingerprint_covers_both_text_encoders(sdxl_encoder):
    import hashlib

    first, second = sdxl_encoder.weights_files
    assert first.parent.name == "text_encoder" and second.parent.name == "text_encoder_2"
    assert sdxl_encoder.fingerprint() == hashlib.sha256(first.read_bytes() + second.read_bytes()).hexdigest()


def test_statistics_and_directions_of_both_parts(tiny_sdxl, sdxl_encoder, bank):
    bank.add_sentences("horse", SENTENCES, sdxl_encoder)
    bank.add_sentences("zebra", ["a photo of a zebra", "a zebra in a field", "zebra"], sdxl_encoder)
    horse_tokens, horse_pooled = _reference(tiny_sdxl, SENTENCES)
    zebra_tokens, zebra_pooled = _reference(tiny_sdxl, ["a photo of a zebra", "a zebra in a field", "zebra"])
    direction = bank.diff("horse", "zebra")
    assert direction.tensor.shape == (1, 77, 64) and direction.pooled.shape == (1, 32)
    np.testing.assert_allclose(direction.tensor[0], zebra_tokens.mean(0) - horse_tokens.mean(0), atol=1e-5)
    np.testing.assert_allclose(direction.pooled[0], zebra_pooled.mean(0) - horse_pooled.mean(0), atol=1e-5)
    expected_norm = np.sqrt((direction.tensor.astype(np.float64) ** 2).sum() + (direction.pooled ** 2).sum())
    assert direction.norm == pytest.approx(expected_norm, rel=1e-5)
    saved = bank.save_direction("h2z", direction)
    again = bank.direction("h2z")
    np.testing.assert_array_equal(again.pooled, direction.pooled)
    np.testing.assert_array_equal(again.tensor, direction.tensor)
    assert "pooled 1x32" in next(saved.summary_lines())
    twice = bank.compose_direction("twice", [("h2z", 2.0)])
    np.testing.assert_allclose(twice.pooled, 2 * direction.pooled, rtol=1e-6)
    paired = bank.paired_diff("horse", "zebra", sdxl_encoder)
    assert paired.tensor.shape == (1, 77, 64) and paired.pooled.shape == (1, 32) and paired.confidence["snr"] > 0
    # taking a sentence out takes it out of both parts
    bank.remove_sentence("horse", lambda info: sdxl_encoder, text="horse")
    fewer = bank.diff("horse", "zebra")
    np.testing.assert_allclose(fewer.pooled[0], zebra_pooled.mean(0) - horse_pooled[:3].mean(0), atol=1e-5)
    from direction_bank.jobs.integrity import check_bank

    assert check_bank(bank, deep=True, load_encoder=lambda info: sdxl_encoder) == []


def test_sdxl_through_the_cli_add_diff_export_import(tiny_sdxl, run_cli, tmp_path):
    for concept in ("horse", "zebra"):
        added = run_cli("add-concept", concept, "-n", "5", "--generator", "template", model=tiny_sdxl)
        assert added.exit_code == 0, added.output
    shown = run_cli("diff", "horse", "zebra", "--save", "h2z", model=tiny_sdxl)
    assert shown.exit_code == 0 and "shape 1x77x64 + pooled 1x32" in shown.output
    described = run_cli("show", "horse")
    assert "(CLIPTextModel+CLIPTextModelWithProjection, 64-d + 32 pooled): 5 embedded" in described.output
    direction_file, concept_file = tmp_path / "h2z.safetensors", tmp_path / "horse.safetensors"
    assert run_cli("export", "h2z", "-o", str(direction_file), model=tiny_sdxl).exit_code == 0
    assert run_cli("export", "--concept", "horse", "-o", str(concept_file), model=tiny_sdxl).exit_code == 0
    from direction_bank.sharing.files import read_metadata, read_shared_file

    meta = read_metadata(direction_file)
    assert meta["format_version"] == 2 and meta["encoder"]["pooled_size"] == 32
    assert set(meta["tensors"]) == {"direction", "direction_pooled", "source_mean", "source_mean_pooled",
                                    "target_mean", "target_mean_pooled"}
    assert set(read_metadata(concept_file)["tensors"]) == {"mean", "m2", "mean_pooled", "m2_pooled"}
    other = {"DBANK_DB": str(tmp_path / "other.db")}
    for path in (direction_file, concept_file):
        imported = run_cli("import", str(path), model=tiny_sdxl, env=other)
        assert imported.exit_code == 0, imported.output
    from direction_bank import Bank

    with Bank(tmp_path / "other.db") as copy:
        np.testing.assert_array_equal(copy.direction("h2z").pooled, read_shared_file(direction_file).tensors["direction_pooled"])
        encoder = copy.encoders()[0]
        assert encoder.pooled_size == 32
        assert copy.statistics("horse", encoder).count == 5


def test_sd_and_sdxl_never_mix_each_refused_in_one_line(tiny_sdxl, sd_model, run_cli, tmp_path):
    assert run_cli("add-concept", "horse", "-n", "4", "--generator", "template", model=tiny_sdxl).exit_code == 0
    assert run_cli("add-concept", "zebra", "-n", "4", "--generator", "template", model=sd_model).exit_code == 0
    mixed = run_cli("diff", "horse", "zebra")
    assert mixed.exit_code == 1 and mixed.stderr.count("\n") == 1
    assert "were embedded by different text encoders" in mixed.stderr and "(SDXL, 64-d + 32 pooled)" in mixed.stderr
    assert "(SD 1.x/2.x, 32-d)" in mixed.stderr
    assert run_cli("add-concept", "zebra", "-n", "4", "--generator", "template", model=tiny_sdxl).exit_code == 0
    assert run_cli("add-concept", "horse", "-n", "4", "--generator", "template", model=sd_model).exit_code == 0
    assert run_cli("diff", "horse", "zebra", "--model", str(tiny_sdxl), "--save", "xl").exit_code == 0
    assert run_cli("diff", "horse", "zebra", "--model", str(sd_model), "--save", "sd").exit_code == 0
    summed = run_cli("direction", "create", "both", "--add", "xl", "--add", "sd")
    assert summed.exit_code == 1 and summed.stderr.count("\n") == 1 and "cannot be added" in summed.stderr
    xl_file = tmp_path / "xl.safetensors"
    assert run_cli("export", "xl", "-o", str(xl_file)).exit_code == 0
    refused = run_cli("import", str(xl_file), "--name", "xl-again", model=sd_model)
    assert refused.exit_code == 1 and refused.stderr.count("\n") == 1
    assert refused.stderr.startswith("Error: xl.safetensors was made for SDXL, but ")
    assert "SDXL and SD 1.x/2.x embeddings never mix" in refused.stderr
    photo = tmp_path / "photo.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(photo)
    edited = run_cli("edit", str(photo), "--direction", "sd", "--caption", CAPTION, "--steps", "2", "--size", "16",
                     "-o", str(tmp_path / "out"), model=tiny_sdxl)
    assert edited.exit_code == 1
    assert edited.stderr == ("Error: sd: direction 'sd' was made for SD 1.x/2.x, but this model is SDXL: "
                             "SDXL and SD 1.x/2.x directions never mix\n")


def _random_direction(count, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, 77, 64, generator=generator) * 0.5, torch.randn(count, 32, generator=generator)


def test_the_editor_conditions_like_the_bank_embeds(sdxl_editor, sdxl_encoder, tiny_sdxl):
    from editor.pipeline import encode_prompts

    conditioning = encode_prompts(sdxl_editor.components, SENTENCES)
    embeds, pooled = _reference(tiny_sdxl, SENTENCES)
    np.testing.assert_allclose(conditioning.states.numpy(), embeds, atol=1e-5, rtol=0)
    np.testing.assert_allclose(conditioning.pooled.numpy(), pooled, atol=1e-5, rtol=0)


def test_a_zero_direction_without_guidance_reproduces_the_reconstruction(sdxl_editor, photo):
    from editor.edit import EditSettings, edit
    from editor.pipeline import encode_prompts

    inversion = sdxl_editor.invert_file(photo, CAPTION, 32, STEPS)
    caption = encode_prompts(sdxl_editor.components, [CAPTION])
    settings = EditSettings(steps=STEPS, xa_guidance=0.0)
    tokens, pooled = _random_direction(1)
    still, reconstruction = edit(sdxl_editor.components, inversion.latents, caption, torch.zeros_like(tokens),
                                 settings, pooled_directions=torch.zeros_like(pooled))
    torch.testing.assert_close(still, reconstruction, atol=1e-5, rtol=0)
    moved, _ = edit(sdxl_editor.components, inversion.latents, caption, tokens, settings, pooled_directions=pooled)
    only_pooled, _ = edit(sdxl_editor.components, inversion.latents, caption, torch.zeros_like(tokens), settings,
                          pooled_directions=pooled)
    assert float((moved - reconstruction).abs().mean()) > 0.01
    assert float((only_pooled - reconstruction).abs().mean()) > 1e-3  # the pooled part reaches the UNet


@pytest.mark.parametrize("negative", ["caption", "empty"])
def test_an_sdxl_edit_matches_diffusers_sdxl_conditioning_on_a_non_square_image(sdxl_editor, tiny_sdxl, negative):
    """Without cross-attention guidance an edit is guided sampling from x_T with the shifted
    caption, so diffusers' StableDiffusionXLPipeline, fed its own encode_prompt embeddings (plus
    the direction), its own added time ids for the size, and for an empty negative prompt its
    zeros, is an independent reference: for the edit and for the reconstruction, on a 3:2 image
    (a swapped height and width in the time ids shows)."""
    from diffusers import StableDiffusionXLPipeline

    from editor.edit import EditSettings, edit
    from editor.pipeline import encode_negative, encode_prompts

    components = sdxl_editor.components
    pipeline = StableDiffusionXLPipeline(
        vae=components.vae, text_encoder=components.text_encoder, text_encoder_2=components.text_encoder_2,
        tokenizer=components.tokenizer, tokenizer_2=components.tokenizer_2, unet=components.unet,
        scheduler=components.scheduler)
    pipeline.set_progress_bar_config(disable=True)
    start = torch.randn(1, 4, 12, 8, generator=torch.Generator().manual_seed(3))
    height, width = 12 * components.latent_factor, 8 * components.latent_factor
    tokens, pooled = _random_direction(1, seed=2)
    with torch.no_grad():
        embeds, own_negative, pooled_embeds, own_negative_pooled = pipeline.encode_prompt(
            CAPTION, do_classifier_free_guidance=True, negative_prompt=CAPTION if negative == "caption" else None)
    if negative == "empty":
        assert not own_negative.any() and not own_negative_pooled.any()  # diffusers' zeros

    def generated(shift_tokens, shift_pooled):
        return pipeline(prompt_embeds=embeds + shift_tokens, pooled_prompt_embeds=pooled_embeds + shift_pooled,
                        negative_prompt_embeds=own_negative, negative_pooled_prompt_embeds=own_negative_pooled,
                        latents=start.clone(), height=height, width=width, num_inference_steps=STEPS, guidance_scale=5.0,
                        output_type="latent").images

    settings = EditSettings(steps=STEPS, xa_guidance=0.0)
    theirs_edit, theirs_reconstruction = generated(tokens, pooled), generated(0, 0)
    ours_edit, ours_reconstruction = edit(
        components, start, encode_prompts(components, [CAPTION]), tokens, settings,
        negative_embeds=None if negative == "caption" else encode_negative(components, ""), pooled_directions=pooled)
    assert float((theirs_edit - theirs_reconstruction).abs().max()) > 1e-2
    torch.testing.assert_close(ours_edit, theirs_edit, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ours_reconstruction, theirs_reconstruction, atol=1e-4, rtol=1e-4)


def test_a_batch_of_sdxl_directions_equals_them_one_by_one(sdxl_editor, photo):
    from editor.edit import EditSettings, edit
    from editor.pipeline import encode_prompts

    inversion = sdxl_editor.invert_file(photo, CAPTION, 32, STEPS)
    caption = encode_prompts(sdxl_editor.components, [CAPTION])
    settings = EditSettings(steps=STEPS, xa_guidance=10.0)
    tokens, pooled = _random_direction(3, seed=1)
    batch, _ = edit(sdxl_editor.components, inversion.latents, caption, tokens, settings, pooled_directions=pooled)
    unguided, _ = edit(sdxl_editor.components, inversion.latents, caption, tokens[:1],
                       EditSettings(steps=STEPS, xa_guidance=0.0), pooled_directions=pooled[:1])
    assert float((batch[:1] - unguided).abs().max()) > 0.05  # the guidance visibly matters
    for index in range(3):
        alone, _ = edit(sdxl_editor.components, inversion.latents, caption, tokens[index : index + 1], settings,
                        pooled_directions=pooled[index : index + 1])
        torch.testing.assert_close(batch[index : index + 1], alone, atol=1e-4, rtol=1e-4)
    # the Editor's chunks carry each direction's pooled part with it
    whole, _ = sdxl_editor.edit(inversion, tokens.numpy(), settings, pooled=pooled.numpy())
    chunked, _ = sdxl_editor.edit(inversion, tokens.numpy(), settings, pooled=pooled.numpy(), max_batch=1)
    for one, other in zip(whole, chunked):
        assert np.abs(np.asarray(one, float) - np.asarray(other, float)).max() <= 1


def test_sdxl_edit_and_generate_edit_through_the_cli(tiny_sdxl, run_cli, photo, tmp_path):
    for concept in ("horse", "zebra"):
        assert run_cli("add-concept", concept, "-n", "4", "--generator", "template", model=tiny_sdxl).exit_code == 0
    assert run_cli("diff", "horse", "zebra", "--save", "h2z", model=tiny_sdxl).exit_code == 0
    out = tmp_path / "out"
    flipped = tmp_path / "flipped.png"
    Image.open(photo).transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(flipped)
    edited = run_cli("edit", str(photo), str(flipped), "--direction", "h2z", "--caption", CAPTION, "--steps", "3",
                     "--size", "32", "-o", str(out), "--sheet", "--json", model=tiny_sdxl)
    assert edited.exit_code == 0, edited.output
    report = json.loads(edited.stdout)
    assert len(report["results"]) == 2
    result = report["results"][0]
    # both images ran in one UNet batch; alone, the first gives the same pixels (pooled parts included)
    alone = run_cli("edit", str(photo), "--direction", "h2z", "--caption", CAPTION, "--steps", "3", "--size", "32",
                    "-o", str(tmp_path / "alone"), "--json", model=tiny_sdxl)
    with Image.open(json.loads(alone.stdout)["results"][0]["edits"]["h2z"]) as single, \
            Image.open(result["edits"]["h2z"]) as batched:
        assert np.abs(np.asarray(single, float) - np.asarray(batched, float)).max() <= 1
    assert Image.open(report["sheet"]).size[0] >= 3 * 32  # input, reconstruction, the edit
    with Image.open(result["edits"]["h2z"]) as picture, Image.open(result["reconstruction"]) as reconstruction:
        assert picture.size == reconstruction.size == (32, 24)
        assert np.abs(np.asarray(picture, float) - np.asarray(reconstruction, float)).mean() > 0.5
    generated = run_cli("generate-edit", "a horse", "--direction", "h2z", "--steps", "3", "--size", "32",
                        "-o", str(out), "--json", model=tiny_sdxl)
    assert generated.exit_code == 0, generated.output
    files = json.loads(generated.stdout)["results"][0]["files"]
    pictures = [path for path in files if path.endswith(".png")]
    assert len(files) == 3 and len(pictures) == 2 and all(Image.open(path).size == (32, 32) for path in pictures)
    # its record names the direction by the bank's fingerprint, the pooled part included
    from direction_bank.jobs.edit_records import read_record

    [entry] = read_record(next(path for path in files if path.endswith(".json"))).edits
    history = json.loads(run_cli("direction", "history", "h2z", "--json", model=tiny_sdxl).stdout)
    assert entry.fingerprint == history[-1]["fingerprint"]
    swept = run_cli("sweep", str(photo), "--direction", "h2z", "--scale", "0,1", "--xa-guidance", "0.1",
                    "--caption", CAPTION, "--steps", "3", "--size", "32", "-o", str(out), "--json", model=tiny_sdxl)
    assert swept.exit_code == 0, swept.output
    assert json.loads(swept.stdout)["scales"] == [0.0, 1.0] and Image.open(json.loads(swept.stdout)["grid"]).width > 64


def test_the_default_size_is_the_models_own(tiny_sdxl, tiny_sd, tmp_path):
    """UNet sample size x VAE factor: SD 1.x 512, SD 2.x 768, SDXL 1024, the tiny models 32 and 64
    (not 512, where a first edit on a small model would run for an hour)."""
    from editor.pipeline import default_size

    assert default_size(str(tiny_sd)) == 32 and default_size(str(tiny_sdxl)) == 64
    for sample, expected in ((64, 512), (96, 768), (128, 1024), ([96, 64], 768)):
        folder = tmp_path / f"configs-{expected}-{len(str(sample))}"
        for part, config in (("unet", {"_class_name": "UNet2DConditionModel", "sample_size": sample}),
                             ("vae", {"_class_name": "AutoencoderKL", "block_out_channels": [128, 256, 512, 512]})):
            (folder / part).mkdir(parents=True)
            (folder / part / "config.json").write_text(json.dumps(config))
        assert default_size(str(folder)) == expected
    # a model id, through the Hugging Face cache (offline), and without importing diffusers or torch
    # (the studio's page asks for the size as it starts)
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "hub" / "models--someone--sd" / "snapshots" / commit
    shutil.copytree(folder, snapshot)
    (tmp_path / "hub" / "models--someone--sd" / "refs").mkdir()
    (tmp_path / "hub" / "models--someone--sd" / "refs" / "main").write_text(commit)
    read = subprocess.run([sys.executable, "-c", "import sys; from editor.pipeline import default_size; "
                           "print(default_size('someone/sd'), 'diffusers' in sys.modules, 'torch' in sys.modules); "
                           "from sd_models.family import has_second_text_encoder; "
                           "has_second_text_encoder('someone/sd')"],
                          env={**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"},
                          capture_output=True, text=True)
    assert read.stdout.split() == ["768", "False", "False"], read.stderr
    # files the cached snapshot lacks are missing, not errors: no model_index.json, no text encoders
    assert read.stderr.strip().endswith("OSError: someone/sd has no model_index.json or text_encoder/config.json: "
                                        "not a Stable Diffusion pipeline, or not downloaded"), read.stderr


def test_sdxl_runs_an_fp32_vae_under_fp16(tiny_sdxl, tiny_sd):
    from editor.pipeline import load_components

    half = load_components(str(tiny_sdxl), "cpu", "fp16")
    assert half.unet.dtype == torch.float16 and half.vae.dtype == torch.float32
    assert half.text_encoder_2.dtype == torch.float16 and half.zero_empty_prompt
    # a VAE named with --vae that says it is fp16-safe runs in the model's dtype
    safe = tiny_sdxl.parent / "fp16-safe-vae"
    if not safe.exists():
        shutil.copytree(tiny_sdxl / "vae", safe)
        config = json.loads((safe / "config.json").read_text())
        (safe / "config.json").write_text(json.dumps({**config, "force_upcast": False}))
    assert load_components(str(tiny_sdxl), "cpu", "fp16", vae=str(safe)).vae.dtype == torch.float16
    assert load_components(str(tiny_sd), "cpu", "fp16").vae.dtype == torch.float16
    from editor.pipeline import EditorError

    not_a_vae = tiny_sdxl.parent / "not-a-vae.txt"
    not_a_vae.write_text("hello")
    with pytest.raises(EditorError, match=r"^cannot load the VAE '.*not-a-vae.txt' \(.*not a valid JSON file"):
        load_components(str(tiny_sdxl), "cpu", vae=str(not_a_vae))

    # a pipeline whose model_index.json says so keeps an empty negative prompt's embedding as encoded
    plain = tiny_sdxl.parent / "sdxl-unzeroed"
    if not plain.exists():
        shutil.copytree(tiny_sdxl, plain)
        index = json.loads((plain / "model_index.json").read_text())
        (plain / "model_index.json").write_text(json.dumps({**index, "force_zeros_for_empty_prompt": False}))
    assert not load_components(str(plain), "cpu").zero_empty_prompt


def test_the_studio_adds_diffs_generates_and_edits_on_sdxl(tiny_sdxl, tmp_path, monkeypatch):
    from direction_bank.studio.actions import StudioActions

    monkeypatch.setenv("DBANK_CACHE", str(tmp_path / "cache"))
    actions = StudioActions(str(tmp_path / "bank.db"), str(tiny_sdxl), device="cpu", work_dir=tmp_path / "work")
    assert actions.default_size() == 64
    for concept in ("horse", "zebra"):
        actions.add_concept(concept, "template", "", 4)
    text, _ = actions.diff("horse", "zebra", save_as="h2z")
    assert "shape 1x77x64 + pooled 1x32" in text
    generated = actions.generate(CAPTION, size=32, steps=STEPS, seed=3)
    outcome = actions.edit(generated, CAPTION, ["h2z"], steps=STEPS, size=32)
    labels = [label for _, label in outcome.pictures]
    assert labels == ["input", "reconstruction", "h2z"]
    reconstruction, edited = (np.asarray(picture, float) for picture, _ in outcome.pictures[1:])
    assert edited.shape == (32, 32, 3) and np.abs(edited - reconstruction).mean() > 0.5
    from direction_bank.sharing.files import read_metadata

    assert read_metadata(actions.export("h2z"))["encoder"]["pooled_size"] == 32


@pytest.mark.sqlite_only
def test_sdxl_on_ray_gives_the_same_bytes_as_one_process(tiny_sdxl, run_cli, database, photo, tmp_path):
    """--engine ray ships each direction's pooled part in its rows (loopback-only namespace: Ray
    probes the network on its own)."""
    import os
    import subprocess
    import sys

    pytest.importorskip("ray.data", reason="the [ray] extra is not installed")
    from tests.network import loopback_only

    cut = loopback_only()
    for concept in ("horse", "zebra"):
        assert run_cli("add-concept", concept, "-n", "4", "--generator", "template", model=tiny_sdxl).exit_code == 0
    assert run_cli("diff", "horse", "zebra", "--save", "h2z", model=tiny_sdxl).exit_code == 0
    common = [str(photo), "--direction", "h2z", "--caption", CAPTION, "--steps", "3", "--size", "32"]
    local = run_cli("edit", *common, "-o", str(tmp_path / "local"), model=tiny_sdxl)
    assert local.exit_code == 0, local.stderr
    env = {**os.environ, "DBANK_DB": str(database), "DBANK_DEBUG": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    done = subprocess.run([*cut, sys.executable, "-m", "direction_bank.cli", "edit", *common, "--engine", "ray",
                           "--model", str(tiny_sdxl), "-o", str(tmp_path / "ray")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    names = sorted(path.name for path in (tmp_path / "local").iterdir())
    assert names == sorted(path.name for path in (tmp_path / "ray").iterdir()) and len(names) == 3
    for name in names:
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes(), name


def _rewritten(good, path, tensors=None, **encoder_changes):
    """A copy of a good SDXL direction file with its tensors replaced and encoder fields changed,
    hashes recomputed and the format version kept as given (`format_version` in the changes)."""
    from safetensors.numpy import load_file, save_file

    from direction_bank.sharing.files import read_metadata, tensor_sha256

    meta = {k: v for k, v in read_metadata(good).items() if k != "kind"}
    version = encoder_changes.pop("format_version", meta["format_version"])
    tensors = tensors if tensors is not None else load_file(str(good))
    meta = {**meta, "format_version": version, "encoder": {**meta["encoder"], **encoder_changes},
            "tensors": {name: {"shape": list(t.shape), "dtype": "float32", "sha256": tensor_sha256(t)}
                        for name, t in tensors.items()}}
    save_file(tensors, str(path), metadata={"dbank": json.dumps(meta)})
    return path


def test_damaged_or_hostile_sdxl_files_are_refused_in_one_line(sdxl_encoder, bank, run_cli, tiny_sdxl, tmp_path):
    from safetensors.numpy import load_file

    from direction_bank.errors import FileRejected
    from direction_bank.sharing.files import read_shared_file

    bank.add_sentences("horse", SENTENCES, sdxl_encoder)
    bank.add_sentences("zebra", ["a zebra", "a zebra in a field"], sdxl_encoder)
    good = tmp_path / "good.safetensors"
    bank.export_direction(bank.diff("horse", "zebra"), good)
    tensors = load_file(str(good))
    without = {k: v for k, v in tensors.items() if k != "direction_pooled"}
    nan = dict(tensors, direction_pooled=np.full((1, 32), np.nan, np.float32))
    cases = [
        (_rewritten(good, tmp_path / "no-pooled.safetensors", without),
         "an SDXL direction file holds ['direction', 'direction_pooled']"),
        (_rewritten(good, tmp_path / "short.safetensors", dict(tensors, direction_pooled=tensors["direction_pooled"][:, :31])),
         "tensor 'direction_pooled' has shape [1, 31], expected [1, 32]"),
        (_rewritten(good, tmp_path / "nan.safetensors", nan), "tensor 'direction_pooled' holds NaN or infinite values"),
        (_rewritten(good, tmp_path / "v1.safetensors", format_version=1),
         "pooled parts (SDXL) in a format version 1 file, which cannot hold them"),
        (_rewritten(good, tmp_path / "zero.safetensors", pooled_size=0), "metadata field encoder.pooled_size"),
        (_rewritten(good, tmp_path / "text.safetensors", pooled_size="32"), "metadata field encoder.pooled_size"),
    ]
    for path, message in cases:
        with pytest.raises(FileRejected, match=re.escape(message)):
            read_shared_file(path)
    refused = run_cli("import", str(cases[0][0]), model=tiny_sdxl)
    assert refused.exit_code == 1 and refused.stderr.count("\n") == 1 and "no-pooled.safetensors" in refused.stderr
    assert read_shared_file(good).tensors["direction_pooled"].shape == (1, 32)  # the good one still reads
    # a file consistent in itself, made for 10-token prompts: the bank's encoder takes 77 (the pooled part fits)
    ten_tokens = {k: v if k.endswith("_pooled") else v[..., :10, :] for k, v in tensors.items()}
    tokens = _rewritten(good, tmp_path / "tokens.safetensors", ten_tokens, max_length=10)
    with pytest.raises(FileRejected, match=r"tensor 'direction' has shape \[1, 10, 64\].*as \[1, 77, 64\]"):
        bank.import_file(tokens, sdxl_encoder, name="short-prompts")
    assert "short-prompts" not in [d["name"] for d in bank.directions()]


def test_bank_and_editor_tell_sdxl_by_one_rule(tiny_sdxl, tiny_sd, tmp_path):
    """sd_models.family is the one rule: a pipeline listing text_encoder_2 in model_index.json,
    or a folder without that file but with text_encoder_2/, is SDXL for the bank's encoder and
    the editor's direction check alike; a folder that is no pipeline is an OSError saying so."""
    from direction_bank.text.encoder import TextEncoder
    from editor.pipeline import DirectionShape
    from sd_models.family import has_second_text_encoder

    assert has_second_text_encoder(str(tiny_sdxl)) and not has_second_text_encoder(str(tiny_sd))
    unindexed = shutil.copytree(tiny_sdxl, tmp_path / "no-index")
    (unindexed / "model_index.json").unlink()
    assert has_second_text_encoder(str(unindexed))
    encoder, shape = TextEncoder.load(str(unindexed), device="cpu"), DirectionShape(str(unindexed))
    assert encoder.two_encoders and encoder.pooled_size == shape.pooled_size > 0
    assert encoder.hidden_size == shape.hidden_size
    (tmp_path / "empty").mkdir()
    with pytest.raises(OSError, match="not a Stable Diffusion pipeline"):
        has_second_text_encoder(str(tmp_path / "empty"))


def test_dtype_names_are_one_list():
    """The --dtype names the CLI offers are the ones both loaders understand."""
    from sd_models.precision import DTYPES, torch_dtype

    assert [torch_dtype(name, "cpu") for name in DTYPES] == [torch.float32, torch.float32, torch.float16,
                                                             torch.bfloat16]
    assert torch_dtype("auto", "cuda:1") == torch.float16
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        torch_dtype("fp8", "cpu")


def test_directions_steer_a_plain_sdxl_pipeline_and_a_zero_one_changes_nothing(tiny_sdxl):
    from diffusers import StableDiffusionXLPipeline

    from direction_bank.diffusers import steered

    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl)
    pipe.set_progress_bar_config(disable=True)

    def images(**inputs):
        return pipe(num_inference_steps=2, height=64, width=64, output_type="np",
                    generator=torch.Generator().manual_seed(0), **inputs).images

    embeds, pooled = _reference(tiny_sdxl, ["a horse"])
    zero = (np.zeros((1, *embeds.shape[1:]), np.float32), np.zeros((1, pooled.shape[1]), np.float32))
    inputs = steered(pipe, "a horse", [(zero, 1.0)])
    assert sorted(inputs) == ["pooled_prompt_embeds", "prompt_embeds"]
    assert np.array_equal(images(**inputs), images(prompt="a horse"))
    tokens, extra = (part.numpy() for part in _random_direction(1, seed=4))
    shifted = steered(pipe, "a horse", [((tokens, extra), 0.5)])
    np.testing.assert_allclose(shifted["prompt_embeds"].numpy(), embeds + 0.5 * tokens, rtol=0, atol=1e-6)
    np.testing.assert_allclose(shifted["pooled_prompt_embeds"].numpy(), pooled + 0.5 * extra, rtol=0, atol=1e-6)
