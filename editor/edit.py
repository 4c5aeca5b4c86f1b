"""pix2pix-zero's edit: a reference pass that records cross-attention maps, and a guided pass
that adds a direction to the caption embedding and pulls its maps towards the reference ones.
The two passes are fused step by step, so no map outlives its step, and every direction for an
image runs in one batch."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from editor.attention import install_guided_attention
from editor.pipeline import Conditioning, EditorError
from sd_models.settings import SETTING_BOUNDS



@dataclass(frozen=True)
class EditSettings:
    """Steps, classifier-free guidance, cross-attention guidance (SGD step on the latent) and
    the scale applied to every direction."""

    steps: int = 50
    guidance_scale: float = 5.0
    xa_guidance: float = 0.1
    scale: float = 1.0

    def __post_init__(self):
        import math

        for name, (low, high) in SETTING_BOUNDS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                    name == "steps" and not float(value).is_integer()):
                raise EditorError(f"{name} {value!r}: not a {'whole ' if name == 'steps' else ''}number")
            if not (math.isfinite(value) and low <= value <= high):
                raise EditorError(f"{name} {value!r}: use a finite number from {low:g} to {high:g}")
        object.__setattr__(self, "steps", int(self.steps))

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class ReferenceTrace:
    """A finished reference pass: the reference latents each step starts from and the
    reconstruction. The same for every direction on an image, so a later edit (or the next
    chunk of directions) needs no reference scheduler steps, and its maps are recomputed as one
    extra row in calls the edit makes anyway: 50 steps at 512 px hold 3.3 MB, where keeping
    the maps themselves would hold 1.7 GB (16 attn2 layers, 8 heads, 77 tokens, fp16)."""

    latents: list
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


def token_attention(maps: dict, height: int, width: int, rows: int = 2):
    """[77, height, width]: one step's positive-half cross-attention probabilities, averaged
    over heads and over every attn2 layer (each resized to the latent grid). `rows` is how many
    prompts the recorded pass ran (the positive one last)."""
    import torch.nn.functional as F

    total = 0
    for probs in maps.values():
        queries, tokens = probs.shape[-2:]
        positive = probs.view(rows, -1, queries, tokens)[-1].float().mean(0)  # [queries, tokens]
        grid = positive.T.reshape(1, tokens, *layer_grid(queries, height, width))
        total = total + F.interpolate(grid, size=(height, width), mode="bilinear", align_corners=False)[0]
    return total / max(len(maps), 1)


def _guided(noise, scale: float, branches: int):
    """Classifier-free guidance of a batch holding `branches` (1: no guidance; 2: the negative
    rows, then the positive ones)."""
    if branches == 1:
        return noise
    negative, positive = noise.chunk(2)
    return negative + scale * (positive - negative)


def edit(components, noise_latents, caption_embeds, directions, settings: EditSettings = EditSettings(),
         negative_embeds=None, progress_bar=lambda steps, **_: steps, trace: ReferenceTrace | None = None,
         keep_trace: bool = False, attention: list | None = None, state_dtype=None, pooled_directions=None):
    """Edit images from their inverted latents x_T [I, 4, h, w] and caption conditioning
    (pipeline.Conditioning, I rows or one) with `directions` [I*K, 77, D] (K per image, image by
    image; for SDXL also `pooled_directions` [I*K, P], added to the pooled embedding with the
    same scale; None leaves it as the caption's); returns (edited latents
    [I*K, ...], reconstruction latents [I, ...]). Several images in one batch give what each
    gives alone (the attention loss of an edit only sees its own image's reference). The negative prompt is the caption itself, as pix2pix-zero does for
    real images, unless `negative_embeds` (e.g. the empty prompt, for generated images) is
    given; both guidance halves take the gradient step and the negative half's latent is
    carried forward, exactly as the official update does. With guidance_scale <= 1 there is
    no classifier-free guidance: one branch, as the official pipeline does (which, unlike this,
    then drops the direction).

    Two UNet calls per step: the guided forward and backward, then one call that holds the
    edit's final forward at step t and the reference pass's forward at step t+1 (which only
    depends on the reference latents), each row at its own timestep. With the caption as its
    own negative prompt the reference's two guidance halves are the same, so it runs one.

    The latents, the gradient step and the scheduler's arithmetic stay in `state_dtype`
    (float32) while the UNet runs in the components' dtype (fp16/bf16 on a GPU), so a small
    guidance step is not rounded away.

    With `trace` (from an earlier call on the same image, caption and settings) the reference
    latents come from it; with `keep_trace` a ReferenceTrace is returned as a third value. A
    list given as `attention` receives the reference pass's token attention (token_attention)
    averaged over the steps, [77, h, w]."""
    import torch

    device, dtype = components.device, components.dtype
    state = state_dtype or torch.float32
    unet, scheduler = components.unet, components.scheduler
    images = noise_latents.shape[0]
    per_image = directions.shape[0] // images
    if per_image * images != directions.shape[0] or (attention is not None and images > 1):
        raise ValueError("give the same number of directions for every image (and attention for one image)")
    halves = 2 if settings.guidance_scale > 1 else 1
    caption = caption_embeds.to(device, dtype).expand(images)
    edited_caption = caption.repeat_interleave(per_image).shifted(directions, pooled_directions, settings.scale)
    if halves == 2:
        negative = caption if negative_embeds is None else negative_embeds.to(device, dtype).expand(images)
        edit_embeds = Conditioning.cat([negative.repeat_interleave(per_image), edited_caption])
        reference_embeds = caption if negative_embeds is None else Conditioning.cat([negative, caption])
    else:
        edit_embeds, reference_embeds = edited_caption, caption
    rows = len(reference_embeds) // images  # prompts the reference runs: 1, or 2 with another negative
    store = install_guided_attention(unet)
    store.edits_per_image, store.halves, store.reference_rows = per_image, halves, rows
    record = "record" if (settings.xa_guidance > 0 or attention is not None) else "off"
    # the reference rows run when their maps are needed, or to make the reconstruction
    with_reference = record == "record" or trace is None
    scheduler.set_timesteps(settings.steps, device=device)
    timesteps = scheduler.timesteps
    ticks = timesteps.tolist()  # the scheduler's arithmetic on plain ints: no host sync inside the loop
    reference = noise_latents.to(device, state)
    latents = reference.repeat_interleave(per_image, dim=0)
    kept = [reference]

    height, width = (side * components.latent_factor for side in reference.shape[-2:])

    def run(batch, t, embeds):
        return unet(batch.to(dtype), t, **embeds.unet_inputs(height, width)).sample

    def recorded():
        if attention is not None and record == "record":
            summed = token_attention(store.maps, *reference.shape[-2:], rows) / settings.steps
            attention[:] = [summed + attention[0]] if attention else [summed]

    def advance(output, step):
        """The reference latents the next step starts from."""
        if trace is not None:
            return trace.latents[step + 1] if step + 1 < len(timesteps) else trace.reconstruction
        next_reference = scheduler.step(_guided(output.to(state), settings.guidance_scale, rows), ticks[step],
                                        reference).prev_sample
        if step + 1 < len(timesteps):
            kept.append(next_reference)
        return next_reference

    try:
        if with_reference:
            store.mode, store.record_rows = record, rows * images
            with torch.no_grad():
                output = run(reference.repeat(rows, 1, 1, 1), timesteps[0], reference_embeds)
            recorded()
            reference = advance(output, 0)
        for step, t in enumerate(progress_bar(timesteps, desc="editing", unit="step")):
            pair = latents.repeat(halves, 1, 1, 1)
            if settings.xa_guidance > 0:
                store.mode, store.loss = "guide", 0.0
                pair = pair.detach().requires_grad_(True)
                with torch.enable_grad():
                    run(pair, t, edit_embeds)
                    (gradient,) = torch.autograd.grad(store.loss, pair)
                pair = (pair - settings.xa_guidance * gradient.to(state)).detach()
            with torch.no_grad():
                if with_reference and step + 1 < len(timesteps):
                    next_timestep = timesteps[step + 1]
                    store.mode, store.record_rows = record, rows * images
                    output = run(torch.cat([pair, reference.repeat(rows, 1, 1, 1)]),
                                 torch.cat([t.expand(len(pair)), next_timestep.expand(rows * images)]),
                                 Conditioning.cat([edit_embeds, reference_embeds]))
                    output, reference_output = output[: len(pair)], output[len(pair):]
                    recorded()
                    reference = advance(reference_output, step + 1)
                else:
                    store.mode = "off"
                    output = run(pair, t, edit_embeds)
            latents = pair.chunk(halves)[0]
            latents = scheduler.step(_guided(output.to(state), settings.guidance_scale, halves), ticks[step],
                                     latents).prev_sample
    finally:
        store.mode, store.maps = "off", {}
    # the reference latents after the last step are the reconstruction
    reconstruction = trace.reconstruction if trace is not None else reference
    if keep_trace:
        return latents, reconstruction, trace or ReferenceTrace(kept, reconstruction)
    return latents, reconstruction
