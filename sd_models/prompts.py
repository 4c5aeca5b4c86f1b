"""Sentences to what a Stable Diffusion UNet is conditioned on, as pix2pix-zero and diffusers'
pipelines encode them: the bank embeds concepts with it and the editor its captions, so a
direction and the caption it is added to live in the same space."""
from __future__ import annotations


def token_limit(tokenizer, text_encoder) -> int:
    """Tokens per prompt (77): the tokenizer's limit, or the encoder's positions for a tokenizer
    saved without one."""
    limit = int(tokenizer.model_max_length)
    return limit if limit <= 10_000 else int(text_encoder.config.max_position_embeddings)


def token_ids(tokenizer, prompts: list[str], max_length: int, device):
    """[n, max_length] token ids, padded and truncated, on `device`."""
    return tokenizer(prompts, padding="max_length", max_length=max_length, truncation=True,
                     return_tensors="pt").input_ids.to(device)


def encode_text(parts: list, prompts: list[str], max_length: int, device):
    """(token states [n, max_length, D], pooled [n, P] or None) of the prompts, for `parts` the
    (tokenizer, text encoder) pairs of a model. One pair (SD 1.x/2.x): the last hidden states,
    no pooled part. Two (SDXL), as StableDiffusionXLPipeline.encode_prompt does without clip
    skip: both encoders' penultimate states side by side, and the second's projected pooled
    output. Call under torch.inference_mode."""
    import torch

    if len(parts) == 1:
        tokenizer, encoder = parts[0]
        return encoder(token_ids(tokenizer, prompts, max_length, device))[0], None
    states, pooled = [], None
    for tokenizer, encoder in parts:
        output = encoder(token_ids(tokenizer, prompts, max_length, device), output_hidden_states=True)
        if pooled is None and output[0].ndim == 2:
            pooled = output[0]
        states.append(output.hidden_states[-2])
    return torch.cat(states, dim=-1), pooled
