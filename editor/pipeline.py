"""Stable Diffusion components for editing: loading (diffusers), devices and dtypes, prompt and
image encoding. Knows nothing of the bank."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path


class EditorError(Exception):
    """A problem with the user's input to the editor, reported as one line."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its class name when it has none)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


@dataclass
class Components:
    """The loaded parts of a Stable Diffusion model."""

    model: str
    unet: object
    vae: object
    text_encoder: object
    tokenizer: object
    scheduler: object
    inverse_scheduler: object
    device: str
    dtype: object

    @property
    def hidden_size(self) -> int:
        """D of the text encoder's [77, D] states."""
        return int(self.text_encoder.config.hidden_size)

    @property
    def latent_factor(self) -> int:
        """How many pixels one latent cell covers along a side."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)


def check_direction_shape(label: str, tensor, max_length: int, hidden_size: int) -> None:
    """Refuse a direction that is not [.., max_length, hidden_size] (made with another encoder)."""
    if tuple(tensor.shape[-2:]) != (max_length, hidden_size):
        raise EditorError(
            f"direction {label!r} is {list(tensor.shape)}, but this model takes "
            f"[1, {max_length}, {hidden_size}]: it was made with another text encoder"
        )


class DirectionShape:
    """What a model's directions must be, read from its text encoder's and tokenizer's configs
    alone (no weights), for a process that never loads the model itself (a Ray driver)."""

    def __init__(self, model: str):
        from transformers import AutoTokenizer, CLIPTextConfig

        source = str(Path(model).expanduser()) if Path(model).expanduser().is_dir() else model
        try:
            self.hidden_size = int(CLIPTextConfig.from_pretrained(source, subfolder="text_encoder").hidden_size)
            self.max_length = int(AutoTokenizer.from_pretrained(source, subfolder="tokenizer").model_max_length)
        except (OSError, ValueError) as error:
            raise EditorError(f"cannot read the Stable Diffusion model {model!r} ({first_line(error)})") from None

    def check_direction(self, label: str, tensor) -> None:
        """Refuse a direction that does not fit this model's text encoder."""
        check_direction_shape(label, tensor, self.max_length, self.hidden_size)


def load_components(model: str, device: str | None = None, dtype: str = "auto") -> Components:
    """Load UNet, VAE, text encoder, tokenizer and DDIM schedulers of a diffusers SD model id or
    folder: fp16 on CUDA, fp32 on the CPU (unless `dtype` says otherwise). Attention runs on
    PyTorch SDPA until a processor for guidance is swapped in."""
    import torch
    from diffusers import AutoencoderKL, DDIMInverseScheduler, DDIMScheduler, UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor2_0
    from transformers import AutoTokenizer, CLIPTextModel

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch_dtype = {"auto": torch.float16 if device.startswith("cuda") else torch.float32,
                   "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    source = str(Path(model).expanduser()) if Path(model).expanduser().is_dir() else model
    try:
        unet_config = UNet2DConditionModel.load_config(source, subfolder="unet")
        if unet_config.get("addition_embed_type") == "text_time":  # SDXL's added conditions
            raise EditorError(f"{model!r} is an SDXL model; the editor edits Stable Diffusion 1.x and 2.x "
                              "models only so far")
        unet = UNet2DConditionModel.from_pretrained(source, subfolder="unet", torch_dtype=torch_dtype)
        vae = AutoencoderKL.from_pretrained(source, subfolder="vae", torch_dtype=torch_dtype)
        text_encoder = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", dtype=torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(source, subfolder="tokenizer")
        scheduler = DDIMScheduler.from_pretrained(source, subfolder="scheduler")
    except (OSError, ValueError) as error:
        raise EditorError(
            f"cannot load the Stable Diffusion model {model!r} ({first_line(error)}); set --model or "
            "DBANK_MODEL to a local diffusers folder, or go online"
        ) from None
    inverse_scheduler = DDIMInverseScheduler.from_config(scheduler.config)
    for part in (unet, vae, text_encoder):
        part.to(device).eval().requires_grad_(False)
    unet.set_attn_processor(AttnProcessor2_0())
    return Components(model, unet, vae, text_encoder, tokenizer, scheduler, inverse_scheduler,
                      device, torch_dtype)


def encode_prompts(components: Components, prompts: list[str]):
    """[n, 77, D] text-encoder states of the prompts (padded to 77, as the bank embeds)."""
    import torch

    ids = components.tokenizer(prompts, padding="max_length", max_length=components.tokenizer.model_max_length,
                               truncation=True, return_tensors="pt").input_ids.to(components.device)
    with torch.inference_mode():
        return components.text_encoder(ids)[0].clone()


def image_size(width: int, height: int, longer: int) -> tuple[int, int]:
    """(width, height) with the longer side `longer`, aspect kept, both multiples of 8."""
    scale = longer / max(width, height)
    return max(8, round(width * scale / 8) * 8), max(8, round(height * scale / 8) * 8)


MAX_INPUT_PIXELS = 80_000_000  # the largest photos are about 60 megapixels; past this, a bomb


def load_image(path: str | Path, longer: int):
    """An image file as a [1, 3, H, W] tensor in [-1, 1], resized for the model. The size in
    the file's header is checked before any pixel is decoded."""
    import numpy as np
    import torch
    from PIL import Image

    if not 8 <= longer <= 4096 or longer % 8:
        raise EditorError(f"--size {longer}: use a multiple of 8 between 8 and 4096")
    path = Path(path)
    if not path.exists():
        raise EditorError(f"{path}: no such file")
    if not path.is_file():
        raise EditorError(f"{path}: not a regular file")
    too_large = f"over the limit of {MAX_INPUT_PIXELS // 1_000_000} megapixels; shrink it first"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, in one line
            opened = Image.open(path)
        with opened:
            width, height = opened.size
            if width * height > MAX_INPUT_PIXELS:
                raise EditorError(f"{path}: {width}x{height} pixels, {too_large}")
            size = image_size(width, height, longer)
            opened.draft("RGB", size)  # JPEG: decode at a reduced scale when that is enough
            image = opened.convert("RGB")
    except EditorError:
        raise
    except Image.DecompressionBombError:
        raise EditorError(f"{path}: {too_large}") from None
    except Exception as error:  # PIL raises many types for damaged or hostile files
        raise EditorError(f"{path}: not an image, or a damaged one ({type(error).__name__})") from None
    image = image.resize(image_size(*image.size, longer), Image.Resampling.LANCZOS)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1)[None]


def encode_image(components: Components, pixels):
    """VAE latents (scaled) of [n, 3, H, W] pixels in [-1, 1]: the distribution's mean."""
    import torch

    with torch.inference_mode():
        latent = components.vae.encode(pixels.to(components.device, components.dtype)).latent_dist.mean
    return (latent * components.vae.config.scaling_factor).clone()


def decode_latents(components: Components, latents):
    """PIL images from scaled latents."""
    import numpy as np
    import torch
    from PIL import Image

    with torch.inference_mode():
        pixels = components.vae.decode(latents.to(components.dtype) / components.vae.config.scaling_factor).sample
    array = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(a)) for a in array]
