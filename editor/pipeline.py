"""Stable Diffusion components for editing: loading (diffusers), devices and dtypes, prompt and
image encoding. Knows nothing of the bank."""
from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from sd_models.family import component_config, has_second_text_encoder, model_index, model_kind, model_source
from sd_models.precision import default_device, torch_dtype as dtype_named
from sd_models.prompts import encode_text, token_limit
from sd_models.settings import MAX_INPUT_PIXELS


class EditorError(Exception):
    """A problem with the user's input to the editor, reported as one line."""


class Cancelled(EditorError):
    """A job stopped at a step by its cancel flag (Editor.cancel: the studio's Cancel, the
    CLI's first Ctrl-C)."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its class name when it has none)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


@dataclass
class Components:
    """The loaded parts of a Stable Diffusion model (SDXL: with its second text encoder)."""

    model: str
    unet: object
    vae: object
    text_encoder: object
    tokenizer: object
    scheduler: object
    inverse_scheduler: object
    device: str
    dtype: object
    text_encoder_2: object = None
    tokenizer_2: object = None
    zero_empty_prompt: bool = False  # SDXL: the empty negative prompt is zeros, as diffusers does
    _fingerprint: str | None = field(default=None, init=False, repr=False)

    def weights_fingerprint(self) -> str:
        """A SHA-256 over every weight tensor of the UNet, VAE and text encoders (its name,
        shape, dtype and 64 values spread over it): other weights give another fingerprint
        whatever folder or id they load from, and it costs milliseconds, not a pass over
        gigabytes. Computed once."""
        if self._fingerprint is None:
            import hashlib

            import torch

            digest = hashlib.sha256()
            parts = {"unet": self.unet, "vae": self.vae, "text_encoder": self.text_encoder,
                     "text_encoder_2": self.text_encoder_2}
            with torch.no_grad():
                for part, module in parts.items():
                    if module is None:
                        continue
                    for name, tensor in sorted(module.state_dict().items()):
                        flat = tensor.reshape(-1)
                        sample = flat[:: max(1, flat.numel() // 64)][:64].float().cpu().numpy()
                        digest.update(f"{part}.{name}:{list(tensor.shape)}:{tensor.dtype}".encode())
                        digest.update(sample.tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    @property
    def is_sdxl(self) -> bool:
        """Whether the model has SDXL's two text encoders and added conditions."""
        return self.text_encoder_2 is not None

    @property
    def hidden_size(self) -> int:
        """D of the [77, D] token states (SDXL: both encoders' side by side)."""
        second = int(self.text_encoder_2.config.hidden_size) if self.is_sdxl else 0
        return int(self.text_encoder.config.hidden_size) + second

    @property
    def pooled_size(self) -> int:
        """Size of SDXL's pooled text embedding (0 for SD 1.x/2.x)."""
        return int(self.text_encoder_2.config.projection_dim) if self.is_sdxl else 0

    @property
    def max_length(self) -> int:
        """Tokens per prompt (77)."""
        return token_limit(self.tokenizer, self.text_encoder)

    @property
    def latent_factor(self) -> int:
        """How many pixels one latent cell covers along a side."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)


def check_direction_shape(label: str, tensor, pooled, max_length: int, hidden_size: int, pooled_size: int) -> None:
    """Refuse a direction that is not [.., max_length, hidden_size] with, exactly for an SDXL
    model, a pooled part [.., pooled_size]: one made for another model or text encoder."""
    if (pooled is not None) != bool(pooled_size):
        raise EditorError(
            f"direction {label!r} was made for {model_kind(pooled is not None)}, but this model is "
            f"{model_kind(bool(pooled_size))}: SDXL and SD 1.x/2.x directions never mix"
        )
    if tuple(tensor.shape[-2:]) != (max_length, hidden_size) or (
            pooled is not None and tuple(pooled.shape[-1:]) != (pooled_size,)):
        pooled_part = f" + pooled {list(pooled.shape)}" if pooled is not None else ""
        wanted = f" + pooled [1, {pooled_size}]" if pooled_size else ""
        raise EditorError(
            f"direction {label!r} is {list(tensor.shape)}{pooled_part}, but this model takes "
            f"[1, {max_length}, {hidden_size}]{wanted}: it was made with another text encoder"
        )


def default_size(model: str) -> int:
    """The longer image side a model is edited at unless told, from its configs: the UNet's sample
    size times the VAE's factor (SD 1.x 512, SD 2.x 768, SDXL 1024; a small test model less)."""
    source = model_source(model)
    try:
        sample = component_config(source, "unet").get("sample_size") or 64
        levels = len(component_config(source, "vae").get("block_out_channels") or (0,) * 4)
    except (OSError, ValueError) as error:
        raise EditorError(f"cannot read the Stable Diffusion model {model!r} ({first_line(error)})") from None
    side = max(sample) if isinstance(sample, (list, tuple)) else sample
    return min(4096, max(8, int(side) * 2 ** (levels - 1) // 8 * 8))


class DirectionShape:
    """What a model's directions must be, read from its text encoders' and tokenizer's configs
    alone (no weights), for a process that never loads the model itself (a Ray driver)."""

    def __init__(self, model: str):
        from transformers import AutoTokenizer, CLIPTextConfig

        source = model_source(model)
        try:
            sdxl = has_second_text_encoder(source)
            configs = [CLIPTextConfig.from_pretrained(source, subfolder=folder)
                       for folder in (("text_encoder", "text_encoder_2") if sdxl else ("text_encoder",))]
            self.max_length = int(AutoTokenizer.from_pretrained(source, subfolder="tokenizer").model_max_length)
        except (OSError, ValueError) as error:
            raise EditorError(f"cannot read the Stable Diffusion model {model!r} ({first_line(error)})") from None
        self.hidden_size = sum(int(config.hidden_size) for config in configs)
        self.pooled_size = int(configs[-1].projection_dim) if sdxl else 0

    def check_direction(self, label: str, tensor, pooled=None) -> None:
        """Refuse a direction that does not fit this model's text encoders."""
        check_direction_shape(label, tensor, pooled, self.max_length, self.hidden_size, self.pooled_size)


def stack_directions(directions) -> tuple:
    """(token states [N, 77, D], pooled [N, P] or None) of directions given as (tokens [1, 77, D],
    pooled [1, P] or None) pairs, all of one kind."""
    import numpy as np

    tokens = np.stack([np.asarray(t, np.float32)[0] for t, _ in directions])
    if directions[0][1] is None:
        return tokens, None
    return tokens, np.stack([np.asarray(p, np.float32)[0] for _, p in directions])


def load_components(model: str, device: str | None = None, dtype: str = "auto", vae: str | None = None) -> Components:
    """Load UNet, VAE, text encoder(s), tokenizer(s) and DDIM schedulers of a diffusers SD or
    SDXL model id or folder: fp16 on CUDA, fp32 on the CPU (unless `dtype` says otherwise). An
    SDXL VAE runs in fp32 under fp16 (SDXL's overflows there) unless its config says it is
    safe (`force_upcast` false, as in the fp16-safe VAE a user may name as `vae`).
    Attention runs on PyTorch SDPA until a processor for guidance is swapped in."""
    import torch
    from diffusers import AutoencoderKL, DDIMInverseScheduler, DDIMScheduler, UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor2_0
    from transformers import AutoTokenizer, CLIPTextModel, CLIPTextModelWithProjection

    device = device or default_device()
    torch_dtype = dtype_named(dtype, device)
    source = model_source(model)

    def unavailable(error) -> EditorError:
        return EditorError(f"cannot load the Stable Diffusion model {model!r} ({first_line(error)}); set --model "
                           "or DBANK_MODEL to a local diffusers folder, or go online")

    try:
        sdxl = has_second_text_encoder(source)
    except (OSError, ValueError) as error:
        raise unavailable(error) from None
    try:  # the VAE first: a wrong --vae is one line before gigabytes of UNet load
        vae_source, vae_folder = (model_source(vae), None) if vae else (source, "vae")
        vae_config = AutoencoderKL.load_config(vae_source, subfolder=vae_folder)
        upcast = sdxl and torch_dtype == torch.float16 and vae_config.get("force_upcast", True)
        vae_dtype = torch.float32 if upcast else torch_dtype
        vae_model = AutoencoderKL.from_pretrained(vae_source, subfolder=vae_folder, torch_dtype=vae_dtype)
    except (OSError, ValueError) as error:
        raise EditorError(f"cannot load the VAE {vae or model!r} ({first_line(error)})") from None
    text_encoder_2 = tokenizer_2 = None
    try:
        unet = UNet2DConditionModel.from_pretrained(source, subfolder="unet", torch_dtype=torch_dtype)
        text_encoder = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", dtype=torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(source, subfolder="tokenizer")
        if sdxl:
            text_encoder_2 = CLIPTextModelWithProjection.from_pretrained(source, subfolder="text_encoder_2",
                                                                         dtype=torch_dtype)
            tokenizer_2 = AutoTokenizer.from_pretrained(source, subfolder="tokenizer_2")
        scheduler = DDIMScheduler.from_pretrained(source, subfolder="scheduler")
    except (OSError, ValueError) as error:
        raise unavailable(error) from None
    # an SDXL folder ships an Euler scheduler config: its Euler-only keys would each be warned about
    known = inspect.signature(DDIMInverseScheduler.__init__).parameters
    inverse_scheduler = DDIMInverseScheduler.from_config({k: v for k, v in scheduler.config.items() if k in known})
    for part in (unet, vae_model, text_encoder, text_encoder_2):
        if part is not None:
            part.to(device).eval().requires_grad_(False)
    unet.set_attn_processor(AttnProcessor2_0())
    zero_empty = sdxl and bool(model_index(source).get("force_zeros_for_empty_prompt", True))
    return Components(model, unet, vae_model, text_encoder, tokenizer, scheduler, inverse_scheduler,
                      device, torch_dtype, text_encoder_2, tokenizer_2, zero_empty)


@dataclass
class Conditioning:
    """What the UNet is conditioned on for a batch of prompts: token states [n, 77, D] and,
    for SDXL, the pooled text embedding [n, P] (its time ids come from the image size)."""

    states: object
    pooled: object = None

    def __len__(self) -> int:
        return self.states.shape[0]

    def __getitem__(self, rows: slice) -> Conditioning:
        return self._map(lambda tensor: tensor[rows])

    def _map(self, function) -> Conditioning:
        return Conditioning(function(self.states), None if self.pooled is None else function(self.pooled))

    def to(self, device, dtype) -> Conditioning:
        """On `device` in `dtype`."""
        return self._map(lambda tensor: tensor.to(device, dtype))

    def expand(self, rows: int) -> Conditioning:
        """One prompt's conditioning repeated to `rows` rows (a view)."""
        return self._map(lambda tensor: tensor.expand(rows, *tensor.shape[1:]))

    def repeat_interleave(self, times: int) -> Conditioning:
        """Each row repeated `times` times in place."""
        return self._map(lambda tensor: tensor.repeat_interleave(times, dim=0))

    def shifted(self, states, pooled, scale: float) -> Conditioning:
        """The conditioning plus `scale` times a direction (token states and pooled part)."""
        moved = self.states + scale * states.to(self.states.device, self.states.dtype)
        if self.pooled is None or pooled is None:
            return Conditioning(moved, self.pooled)
        return Conditioning(moved, self.pooled + scale * pooled.to(self.pooled.device, self.pooled.dtype))

    @staticmethod
    def cat(parts: list[Conditioning]) -> Conditioning:
        """The rows of every part, one after the other."""
        import torch

        pooled = None if parts[0].pooled is None else torch.cat([part.pooled for part in parts])
        return Conditioning(torch.cat([part.states for part in parts]), pooled)

    def unet_inputs(self, height: int, width: int) -> dict:
        """UNet keyword arguments for images of height x width pixels: the token states, and
        for SDXL the added conditions (pooled embedding; time ids: original size, crop (0, 0)
        and target size, as StableDiffusionXLPipeline passes them)."""
        import torch

        inputs = {"encoder_hidden_states": self.states}
        if self.pooled is not None:
            time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=self.pooled.dtype,
                                    device=self.pooled.device).expand(len(self), 6)
            inputs["added_cond_kwargs"] = {"text_embeds": self.pooled, "time_ids": time_ids}
        return inputs


def encode_prompts(components: Components, prompts: list[str]) -> Conditioning:
    """The conditioning of the prompts, as the bank embeds sentences: SD 1.x/2.x the text
    encoder's last states [n, 77, D]; SDXL as StableDiffusionXLPipeline.encode_prompt does (both
    encoders' penultimate states side by side, the second's pooled projection)."""
    import torch

    parts = [(components.tokenizer, components.text_encoder)]
    if components.is_sdxl:
        parts.append((components.tokenizer_2, components.text_encoder_2))
    with torch.inference_mode():
        states, pooled = encode_text(parts, prompts, components.max_length, components.device)
        return Conditioning(states.clone(), None if pooled is None else pooled.clone())


def encode_negative(components: Components, prompt: str) -> Conditioning:
    """The conditioning of a negative prompt; for an SDXL model that zeroes empty prompts
    (force_zeros_for_empty_prompt) the empty one is zeros, as StableDiffusionXLPipeline uses."""
    import torch

    encoded = encode_prompts(components, [prompt])
    if prompt == "" and components.zero_empty_prompt:
        return encoded._map(torch.zeros_like)
    return encoded


def image_size(width: int, height: int, longer: int) -> tuple[int, int]:
    """(width, height) with the longer side `longer`, aspect kept, both multiples of 8."""
    scale = longer / max(width, height)
    return max(8, round(width * scale / 8) * 8), max(8, round(height * scale / 8) * 8)




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
        latent = components.vae.encode(pixels.to(components.device, components.vae.dtype)).latent_dist.mean
    return (latent * components.vae.config.scaling_factor).clone()


def decode_latents(components: Components, latents):
    """PIL images from scaled latents."""
    import numpy as np
    import torch
    from PIL import Image

    with torch.inference_mode():
        pixels = components.vae.decode(latents.to(components.vae.dtype) / components.vae.config.scaling_factor).sample
    array = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(a)) for a in array]
