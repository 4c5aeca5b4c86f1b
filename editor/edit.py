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


def _guided(noise, scale: float):
    negative, positive = noise.chunk(2)
    return negative + scale * (positive - negative)


def edit(components, noise_latents, caption_embeds, directions, settings: EditSettings = EditSettings(),
         negative_embeds=None, progress_bar=lambda steps, **_: steps):
    """Edit one image from its inverted latents x_T [1, 4, h, w] and caption states [1, 77, D]
    with each of `directions` [N, 77, D]; returns (edited latents [N, ...], reconstruction
    latents [1, ...]). The negative prompt is the caption itself, as pix2pix-zero does for
    real images, unless `negative_embeds` (e.g. the empty prompt, for generated images) is
    given; both guidance halves take the gradient step and the negative half's latent
    is carried forward, exactly as the official update does."""
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
    try:
        for t in progress_bar(scheduler.timesteps, desc="editing", unit="step"):
            store.mode = "record"
            with torch.no_grad():
                output = unet(torch.cat([reference, reference]), t, encoder_hidden_states=reference_embeds).sample
            reference = scheduler.step(_guided(output, settings.guidance_scale), t, reference).prev_sample
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
    return latents, reference
