"""direction_bank.diffusers: directions steer a plain diffusers text-to-image pipeline through its
own encode_prompt; a zero direction gives the pipeline's own image, bit for bit."""
import numpy as np
import pytest
import torch

from direction_bank.errors import BankError

pytestmark = pytest.mark.bank_agnostic
PROMPT = "a photo of a horse"


def _images(pipe, **inputs):
    return pipe(num_inference_steps=2, height=32, width=32, output_type="np",
                generator=torch.Generator().manual_seed(0), **inputs).images


@pytest.fixture(scope="module")
def pipe(tiny_sd):
    from diffusers import StableDiffusionPipeline

    pipeline = StableDiffusionPipeline.from_pretrained(tiny_sd, safety_checker=None, requires_safety_checker=False)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def test_a_zero_direction_is_the_pipelines_own_image_and_directions_add_at_their_scales(pipe, tmp_path):
    from direction_bank.diffusers import steered

    zero = (np.zeros((1, 77, 32), np.float32), None)
    assert np.array_equal(_images(pipe, **steered(pipe, PROMPT, [(zero, 1.0)])), _images(pipe, prompt=PROMPT))
    direction = np.random.default_rng(0).normal(size=(1, 77, 32)).astype(np.float32)
    inputs = steered(pipe, PROMPT, [((direction, None), 0.5), ((direction, None), 0.25)])
    ids = pipe.tokenizer([PROMPT], padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        by_hand = pipe.text_encoder(ids)[0].numpy() + 0.75 * direction
    assert list(inputs) == ["prompt_embeds"]
    np.testing.assert_allclose(inputs["prompt_embeds"].numpy(), by_hand, rtol=0, atol=1e-6)
    assert not np.array_equal(_images(pipe, **inputs), _images(pipe, prompt=PROMPT))
    with pytest.raises(BankError, match=r"^a direction of shape \[1, 77, 64\] does not fit this pipeline's prompt "):
        steered(pipe, PROMPT, [((np.zeros((1, 77, 64)), None), 1.0)])
    with pytest.raises(BankError, match="an SDXL direction needs an SDXL pipeline"):
        steered(pipe, PROMPT, [((direction, np.zeros((1, 64))), 1.0)])


def test_a_saved_direction_and_its_file_steer_alike(pipe, run_cli, horse_zebra_bank, tmp_path, database):
    from direction_bank import Bank
    from direction_bank.diffusers import steered

    path = tmp_path / "h2z.safetensors"
    assert run_cli("export", "horse2zebra", "-o", str(path)).exit_code == 0
    with Bank(database, read_only=True) as bank:
        saved = bank.direction("horse2zebra")
    from_bank, from_file = (steered(pipe, PROMPT, [(d, 2.0)])["prompt_embeds"] for d in (saved, path))
    assert torch.equal(from_bank, from_file)
    plain = steered(pipe, PROMPT)["prompt_embeds"]
    np.testing.assert_allclose((from_bank - plain).numpy(), 2.0 * saved.tensor, rtol=0, atol=1e-5)
