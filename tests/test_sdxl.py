"""SDXL, first part: a tiny random SDXL checkpoint in the real layout (for the SDXL bank and
editor to come), and the one-line refusals that keep an SDXL model out of the bank and the
editor until then (before, the bank embedded its first text encoder alone, a wrong [77, 768])."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from direction_bank.testing import write_tiny_sdxl


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory, clip_tokenizer_dir):
    return write_tiny_sdxl(tmp_path_factory.mktemp("tiny-sdxl"), tokenizer_from=clip_tokenizer_dir)


def test_the_tiny_sdxl_checkpoint_is_what_diffusers_loads_as_sdxl(tiny_sdxl):
    import torch
    from diffusers import StableDiffusionXLPipeline

    pipeline = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl)
    assert pipeline.tokenizer_2.pad_token == "!" and pipeline.unet.config.addition_embed_type == "text_time"
    embeds, _, pooled, _ = pipeline.encode_prompt("a photo of a horse", do_classifier_free_guidance=False)
    assert embeds.shape == (1, 77, 64) and pooled.shape == (1, 32)  # [77, 32 + 32] and the projection
    image = pipeline("a horse", num_inference_steps=2, height=64, width=64, output_type="np",
                     generator=torch.Generator().manual_seed(0)).images
    assert image.shape == (1, 64, 64, 3) and np.isfinite(image).all()


def test_an_sdxl_model_is_refused_in_one_line_by_the_bank_and_the_editor(tiny_sdxl, tmp_path, run_cli):
    import os

    env = {**os.environ, "DBANK_DB": str(tmp_path / "bank.db"), "DBANK_DEBUG": "0"}
    added = subprocess.run([sys.executable, "-m", "direction_bank.cli", "add-concept", "horse", "-n", "5",
                            "--generator", "template", "--model", str(tiny_sdxl)], env=env, capture_output=True,
                           text=True)
    assert added.returncode == 1 and added.stderr.count("\n") == 1, added.stderr
    assert added.stderr.startswith(f"Error: '{tiny_sdxl}' is an SDXL model: its sentences need both of its text "
                                   "encoders, which the bank does not embed yet")
    assert not (tmp_path / "bank.db").exists()
    assert run_cli("add-concept", "horse", "-n", "4", "--generator", "template").exit_code == 0
    assert run_cli("add-concept", "zebra", "-n", "4", "--generator", "template").exit_code == 0
    assert run_cli("diff", "horse", "zebra", "--save", "horse2zebra").exit_code == 0
    photo = tmp_path / "photo.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(photo)
    edited = run_cli("edit", str(photo), "--direction", "horse2zebra", "--caption", "a horse", "-o",
                     str(tmp_path / "out"), env={"DBANK_MODEL": str(tiny_sdxl)})
    assert edited.exit_code == 1
    assert edited.stderr == (f"Error: '{tiny_sdxl}' is an SDXL model; the editor edits Stable Diffusion 1.x and "
                             "2.x models only so far\n")
