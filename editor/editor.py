"""Editor: the editing API over the pieces (pipeline, caption, cache, inversion, edit): an image
file and direction tensors in, images out."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from editor.cache import InversionCache, cache_key, settings_text
from editor.caption import DEFAULT_CAPTION_MODEL
from editor.edit import EditSettings, edit
from editor.inversion import Regularisation, invert
from editor.pipeline import (
    Cancelled, EditorError, check_direction_shape, decode_latents, encode_image, encode_negative, encode_prompts,
    load_components, load_image,
)


def compile_unet(components) -> None:
    """torch.compile the UNet, with inductor's cache in the user cache dir so it survives."""
    import os

    import platformdirs
    import torch

    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(platformdirs.user_cache_path("dbank") / "inductor"))
    components.unet = torch.compile(components.unet)


def _no_bar(steps, **_):
    return steps


@dataclass
class Inversion:
    """An image's inverted noise latents x_T, the caption they were conditioned on, whether
    they came from the cache, and the negative prompt its passes take by default (None: the
    empty-prompt embedding's usual place; "" for a generated picture, as its generation used)."""

    latents: object
    caption: str
    cached: bool
    negative_prompt: str | None = None
    # reference passes kept in memory, by (steps, guidance scale, negative prompt)
    traces: dict = field(default_factory=dict)


# reference passes kept per inversion (one per steps, guidance scale and negative prompt: 3.3 MB
# each at 512 px and 50 steps), so a visitor trying many settings cannot fill the memory
KEPT_TRACES = 4


class Editor:
    """A loaded Stable Diffusion model that inverts real images and edits them with directions."""

    def __init__(self, model: str, device: str | None = None, dtype: str = "auto",
                 cache: InversionCache | None = None, caption_model: str = DEFAULT_CAPTION_MODEL,
                 progress_bar=_no_bar, compile: bool = False, vae: str | None = None):
        """Load `model` (SD 1.x/2.x or SDXL; `vae` replaces its VAE, see
        pipeline.load_components); with `compile`, the UNet is torch.compile'd (opt-in: the
        first call pays the compile, later processes reuse inductor's on-disk cache)."""
        self.components = load_components(model, device, dtype, vae)
        self.vae = vae
        if compile:
            compile_unet(self.components)
        self.cache = cache
        self.caption_model = caption_model
        self._captioner = None
        self.progress_bar = progress_bar
        # set from another thread (the studio's Cancel, the CLI's first Ctrl-C): the model loop
        # stops at its next step with Cancelled, before anything of that job is kept
        self.cancel = threading.Event()

    def cancellable_steps(self, steps, desc: str = "steps", **kwargs):
        """The model loop's steps through `progress_bar`, checking the cancel flag before each."""
        steps = list(steps)
        for number, step in enumerate(self.progress_bar(steps, desc=desc, **kwargs)):
            if self.cancel.is_set():
                raise Cancelled(f"cancelled at {desc} step {number + 1} of {len(steps)}; nothing of this job was kept")
            yield step

    @property
    def hidden_size(self) -> int:
        """D of the directions this model takes."""
        return self.components.hidden_size

    @property
    def pooled_size(self) -> int:
        """P of the pooled part [1, P] an SDXL model's directions carry (0: none)."""
        return self.components.pooled_size

    def caption(self, image) -> str:
        """A BLIP caption of a PIL image (the model is loaded on first use)."""
        if self._captioner is None:
            from editor.caption import Captioner

            self._captioner = Captioner(self.caption_model, self.components.device)
        return self._captioner(image)

    def invert_file(self, path, caption: str | None = None, size: int = 512, steps: int = 50,
                    regularisation: Regularisation = Regularisation(), seed: int = 0, pixels=None) -> Inversion:
        """Load (unless `pixels` holds its load_image already), caption (unless given) and invert
        an image file, through the cache."""
        from pathlib import Path

        import torch
        from PIL import Image

        pixels = load_image(path, size) if pixels is None else pixels
        data = Path(path).read_bytes()
        # a caption BLIP writes depends on which BLIP wrote it
        captioner = self.caption_model if caption is None else None
        # the weights themselves, not their path: other weights in the same folder miss
        settings = dict(weights=self.components.weights_fingerprint(),
                        caption=caption, captioner=captioner, size=size, steps=steps,
                        regularisation=regularisation.as_dict(), seed=seed,
                        dtype=str(self.components.dtype), device=self.components.device)
        key = cache_key(data, **settings)
        factor = self.components.latent_factor
        shape = (1, int(self.components.unet.config.in_channels), pixels.shape[-2] // factor, pixels.shape[-1] // factor)
        hit = self.cache.get(key, shape, settings_text(**settings), caption) if self.cache else None
        if hit is not None:
            return Inversion(hit[0].to(self.components.device, torch.float32), hit[1], True)
        if caption is None:
            with Image.open(path) as image:
                caption = self.caption(image.convert("RGB"))
        latents = invert(self.components, encode_image(self.components, pixels),
                         encode_prompts(self.components, [caption]), steps, regularisation, seed,
                         self.cancellable_steps)
        if self.cache:
            self.cache.put(key, latents, caption, settings_text(**settings))
        return Inversion(latents, caption, False)

    def check_direction(self, label: str, tensor, pooled=None) -> None:
        """Refuse a direction that does not fit this model's text encoders (an SDXL model's
        directions carry a pooled part, an SD 1.x/2.x model's none)."""
        check_direction_shape(label, tensor, pooled, self.components.max_length, self.hidden_size, self.pooled_size)

    def edit(self, inversion: Inversion, directions, settings: EditSettings = EditSettings(),
             negative_prompt: str | None = None, keep_reference: bool = False,
             attention_words: tuple[str, ...] = (), max_batch: int | None = None, pooled=None):
        """(edited PIL images, one per direction [N, 77, D] (SDXL: with its `pooled` part
        [N, P]); the reconstruction), with `negative_prompt` (default: the inversion's). The directions
        run in chunks of `max_batch` (default: all at once); a chunk that runs out of GPU memory
        is halved and run again, so many directions never fail for memory alone. Chunks after
        the first reuse its reference latents. With `keep_reference` those are kept with the
        inversion (a few MB), so the next edit of this image with the same settings reuses them
        too. For each of `attention_words` found in the caption, a third value maps the word to
        a greyscale PIL image of where the reconstruction attends to it (words not in the
        caption are left out)."""
        import torch

        if negative_prompt is None:
            negative_prompt = inversion.negative_prompt
        caption = encode_prompts(self.components, [inversion.caption])
        negative = None if negative_prompt is None else encode_negative(self.components, negative_prompt)
        stacked = torch.as_tensor(directions, dtype=torch.float32).reshape(-1, *caption.states.shape[1:])
        if pooled is not None:
            pooled = torch.as_tensor(pooled, dtype=torch.float32).reshape(len(stacked), -1)
        key = (settings.steps, settings.guidance_scale, negative_prompt)
        trace = inversion.traces.get(key)
        attention = [] if attention_words else None
        chunk = max(1, min(max_batch or len(stacked), len(stacked)))
        pictures, start = [], 0
        while start < len(stacked):
            part = stacked[start : start + chunk]
            try:
                latents, reconstruction, trace = edit(
                    self.components, inversion.latents, caption, part, settings, negative_embeds=negative,
                    progress_bar=self.cancellable_steps, trace=trace, keep_trace=True,
                    attention=attention if start == 0 else None,
                    pooled_directions=None if pooled is None else pooled[start : start + chunk])
                pictures += decode_latents(self.components, latents)
            except torch.OutOfMemoryError:
                if chunk == 1:
                    raise EditorError("out of GPU memory for even one direction at this size; "
                                      "use a smaller --size") from None
                chunk = max(1, chunk // 2)
                if start == 0 and attention is not None:
                    attention.clear()  # the failed first chunk's maps, summed in part: gather them again
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            start += len(part)
        if keep_reference:
            inversion.traces.pop(key, None)
            inversion.traces[key] = trace  # newest last; the oldest go past KEPT_TRACES
            while len(inversion.traces) > KEPT_TRACES:
                inversion.traces.pop(next(iter(inversion.traces)))
        reconstruction = decode_latents(self.components, reconstruction)[0]
        if attention_words:
            return pictures, reconstruction, self._word_maps(inversion.caption, attention[0], attention_words)
        return pictures, reconstruction

    def _word_maps(self, caption: str, attention, words) -> dict:
        """word -> greyscale image of the attention to its tokens, at the image's size."""
        import numpy as np
        from PIL import Image

        tokenizer = self.components.tokenizer
        ids = tokenizer(caption, truncation=True, max_length=tokenizer.model_max_length).input_ids
        maps = {}
        for word in words:
            target = tokenizer(word, add_special_tokens=False).input_ids
            positions = [i for i in range(len(ids) - len(target) + 1) if ids[i : i + len(target)] == target]
            if not positions:  # the caller tells the user; the edit itself is kept
                continue
            heat = sum(attention[p : p + len(target)].sum(0) for p in positions).cpu().numpy()
            heat = (heat - heat.min()) / max(float(heat.max() - heat.min()), 1e-12)
            size = (heat.shape[1] * self.components.latent_factor, heat.shape[0] * self.components.latent_factor)
            maps[word] = Image.fromarray((heat * 255).astype(np.uint8)).resize(size, Image.Resampling.BILINEAR)
        return maps

    def generate_noise(self, size: int, seed: int):
        """Seeded starting noise x_T for a square `size` image (generate-edit), in float32 like
        every latent the loops hold (not quantised to a fp16/bf16 UNet's dtype)."""
        import torch

        side = size // self.components.latent_factor
        channels = self.components.unet.config.in_channels
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn(1, channels, side, side, generator=generator)
        return noise.to(self.components.device, torch.float32)


__all__ = ["Editor", "EditorError", "EditSettings", "Inversion", "Regularisation"]
