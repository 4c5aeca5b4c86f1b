"""Directions in any diffusers pipeline (#34): a prompt plus directions and their scales as the
`prompt_embeds` (and, for SDXL, `pooled_prompt_embeds`) that StableDiffusionPipeline and
StableDiffusionXLPipeline take, through the pipeline's own `encode_prompt`, so a direction
steers plain text-to-image generation:

    from direction_bank import Bank
    from direction_bank.diffusers import steered

    direction = Bank("bank.db").direction("horse2zebra")
    image = pipe(**steered(pipe, "a photo of a horse", [(direction, 1.0)])).images[0]

The bank embeds sentences as these pipelines encode prompts (SD 1.x/2.x: the text encoder's last
states; SDXL: both encoders' penultimate states side by side and the second's pooled
projection), so a direction adds to a prompt's embedding exactly as the editor adds it to a
caption's. With a zero direction the pipeline gives its own output, bit for bit.
"""
from __future__ import annotations

import os
from typing import Sequence

from direction_bank.errors import BankError


def _parts(direction):
    """(tokens [1, 77, D], pooled [1, P] or None) as numpy arrays, of a DirectionResult, a
    dbank direction file's path, or such a pair itself."""
    if isinstance(direction, (str, os.PathLike)):
        from direction_bank.sharing.files import read_direction_file

        shared = read_direction_file(direction)
        return shared.tensors["direction"], shared.tensors.get("direction_pooled")
    if hasattr(direction, "tensor"):
        return direction.tensor, direction.pooled
    tokens, pooled = direction
    return tokens, pooled


def steered(pipe, prompt: str | list[str], directions: Sequence[tuple[object, float]] = (),
            device=None) -> dict:
    """Keyword arguments for `pipe(...)`: the prompt's embeddings from `pipe.encode_prompt`, each
    direction (a DirectionResult, a dbank direction file, or (tokens, pooled) arrays) added at
    its scale: `prompt_embeds`, and for an SDXL pipeline `pooled_prompt_embeds` too. A direction
    that does not fit the pipeline's text encoders is one line (BankError)."""
    import numpy as np
    import torch

    sdxl = getattr(pipe, "text_encoder_2", None) is not None
    device = device or pipe._execution_device
    with torch.no_grad():
        if sdxl:
            embeds, _, pooled, _ = pipe.encode_prompt(prompt, device=device, num_images_per_prompt=1,
                                                      do_classifier_free_guidance=False)
        else:
            embeds, _ = pipe.encode_prompt(prompt, device, 1, False)
            pooled = None
    shift = np.zeros(embeds.shape[1:], np.float64)
    pooled_shift = None if pooled is None else np.zeros(pooled.shape[1:], np.float64)
    for direction, scale in directions:
        tokens, extra = _parts(direction)
        tokens = np.asarray(tokens, np.float64).reshape(-1, *np.shape(tokens)[-2:])
        if tokens.shape[1:] != shift.shape:
            raise BankError(f"a direction of shape {list(tokens.shape)} does not fit this pipeline's prompt "
                            f"embeddings {list(embeds.shape[1:])} (made with another model?)")
        if (extra is None) != (pooled is None):
            raise BankError("an SDXL direction needs an SDXL pipeline, and an SDXL pipeline an SDXL direction "
                            "(with its pooled part)")
        shift += float(scale) * tokens[0]
        if extra is not None:
            pooled_shift += float(scale) * np.asarray(extra, np.float64).reshape(-1)
    out = {"prompt_embeds": embeds + torch.as_tensor(shift, dtype=embeds.dtype, device=embeds.device)}
    if pooled is not None:
        out["pooled_prompt_embeds"] = pooled + torch.as_tensor(pooled_shift, dtype=pooled.dtype, device=pooled.device)
    return out
