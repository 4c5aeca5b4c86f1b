"""pix2pix-zero's edit: a reference pass that records cross-attention maps, and a guided pass
that adds a direction to the caption embedding and pulls its maps towards the reference ones.
The two passes are fused step by step, so no map outlives its step, and every direction for an
image runs in one batch."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from editor.attention import install_guided_attention


@dataclass(frozen=True)
class EditSettings:
    """Steps, classifier-free guidance, cross-attention guidance (SGD step on the latent) and
    the scale applied to every direction."""

    steps: int = 50
    guidance_scale: float = 5.0
    xa_guidance: float = 0.1
    scale: float = 1.0

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class ReferenceTrace:
    """A finished reference pass: each step's cross-attention maps (on the device, in the
    compute dtype) and the reconstruction latents. The same for every direction on an image,
    so a later edit of that image can skip the reference pass."""

    maps: list
    reconstruction: object


def layer_grid(queries: int, height: int, width: int) -> tuple[int, int]:
    """The (h, w) grid of an attention layer with `queries` positions in a UNet on a height x
    width latent: each downsampling halves a side, rounding up (a 36x64 latent's mid block is
    5x8, not 4x8)."""
    h, w = height, width
    while h * w > queries and (h > 1 or w > 1):
        h, w = -(-h // 2), -(-w // 2)
    if h * w != queries:
        raise ValueError(f"no downsampled grid of a {height}x{width} latent has {queries} positions")
    return h, w


def token_attention(maps: dict, height: int, width: int):
    """[77, height, width]: one step's positive-half cross-attention probabilities, averaged
    over heads and over every attn2 layer (each resized to the latent grid)."""
    import torch.nn.functional as F

    total = 0
    for probs in maps.values():
        queries, tokens = probs.shape[-2:]
        positive = probs.view(2, -1, queries, tokens)[1].float().mean(0)  # [queries, tokens]
        grid = positive.T.reshape(1, tokens, *layer_grid(queries, height, width))
        total = total + F.interpolate(grid, size=(height, width), mode="bilinear", align_corners=False)[0]
    return total / max(len(maps), 1)


def _guided(noise, scale: float):
    negative, positive = noise.chunk(2)
    return negative + scale * (positive - negative)


def edit(components, noise_latents, caption_embeds, directions, settings: EditSettings = EditSettings(),
         negative_embeds=None, progress_bar=lambda steps, **_: steps, trace: ReferenceTrace | None = None,
         keep_trace: bool = False, attention: list | None = None):
    """Edit one image from its inverted latents x_T [1, 4, h, w] and caption states [1, 77, D]
    with each of `directions` [N, 77, D]; returns (edited latents [N, ...], reconstruction
    latents [1, ...]). The negative prompt is the caption itself, as pix2pix-zero does for
    real images, unless `negative_embeds` (e.g. the empty prompt, for generated images) is
    given; both guidance halves take the gradient step and the negative half's latent
    is carried forward, exactly as the official update does.

    With `trace` (from an earlier call on the same image, caption and settings) the reference
    pass is skipped; with `keep_trace` the maps are kept and a ReferenceTrace is returned as a
    third value (otherwise each step's maps are dropped when the step ends). A list given as
    `attention` receives the reference pass's token attention (token_attention) averaged over
    the steps, [77, h, w]."""
    import torch

    device, dtype = components.device, components.dtype
    unet, scheduler = components.unet, components.scheduler
    count = directions.shape[0]
    caption = caption_embeds.to(device, dtype)
    negative = caption if negative_embeds is None else negative_embeds.to(device, dtype)
    reference_embeds = torch.cat([negative, caption])
    edited_caption = caption + settings.scale * directions.to(device, dtype)
    edit_embeds = torch.cat([negative.expand(count, -1, -1), edited_caption])
    store = install_guided_attention(unet)
    store.edits_per_image = count
    scheduler.set_timesteps(settings.steps, device=device)
    reference = noise_latents.to(device, dtype)
    latents = reference.expand(count, -1, -1, -1).clone()
    kept = []
    try:
        for step, t in enumerate(progress_bar(scheduler.timesteps, desc="editing", unit="step")):
            if trace is not None:
                store.maps = trace.maps[step]
            else:
                store.mode = "record"
                with torch.no_grad():
                    output = unet(torch.cat([reference, reference]), t, encoder_hidden_states=reference_embeds).sample
                reference = scheduler.step(_guided(output, settings.guidance_scale), t, reference).prev_sample
                if keep_trace:
                    kept.append(dict(store.maps))
            if attention is not None:
                summed = token_attention(store.maps, *reference.shape[-2:]) / settings.steps
                attention[:] = [summed + attention[0]] if attention else [summed]
            pair = torch.cat([latents, latents])
            if settings.xa_guidance > 0:
                store.mode, store.loss = "guide", 0.0
                pair = pair.detach().requires_grad_(True)
                with torch.enable_grad():
                    unet(pair, t, encoder_hidden_states=edit_embeds)
                    (gradient,) = torch.autograd.grad(store.loss, pair)
                pair = (pair - settings.xa_guidance * gradient).detach()
            store.mode = "off"
            with torch.no_grad():
                output = unet(pair, t, encoder_hidden_states=edit_embeds).sample
            latents = pair.chunk(2)[0]
            latents = scheduler.step(_guided(output, settings.guidance_scale), t, latents).prev_sample
    finally:
        store.mode, store.maps = "off", {}
    if trace is not None:
        reference = trace.reconstruction
    if keep_trace:
        return latents, reference, trace or ReferenceTrace(kept, reference)
    return latents, reference
