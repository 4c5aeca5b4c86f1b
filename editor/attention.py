"""Attention processors for guided editing: PyTorch SDPA everywhere, except the cross-attention
(`attn2`) layers while their probabilities are recorded or compared with recorded ones."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CrossAttentionStore:
    """What the attn2 processors do this call: 'off' (SDPA), 'record' (keep each layer's
    probabilities of the last `record_rows` rows of the batch: the reference pass, which may
    share the call with edit rows that run on SDPA), or 'guide' (add the squared distance to the
    recorded ones to `loss`). `halves` is how many guidance halves the edit rows have (2 with
    classifier-free guidance, else 1), `reference_rows` how many the recorded ones have (1 when
    both of its halves would be the same: it is then compared with both), and
    `edits_per_image` maps a batch of edits onto the recorded maps of their images."""

    mode: str = "off"
    maps: dict = field(default_factory=dict)
    loss: object = 0.0
    edits_per_image: int = 1
    halves: int = 2
    reference_rows: int = 2
    record_rows: int = 0


class GuidedCrossAttention:
    """An attn2 processor that computes probabilities explicitly when its store asks for them."""

    def __init__(self, name: str, store: CrossAttentionStore):
        from diffusers.models.attention_processor import AttnProcessor2_0

        self.name = name
        self.store = store
        self.fast = AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
        import torch

        store = self.store
        if store.mode == "off":
            return self.fast(attn, hidden_states, encoder_hidden_states, attention_mask)
        if store.mode == "record" and store.record_rows < hidden_states.shape[0]:
            split = hidden_states.shape[0] - store.record_rows  # edit rows first, on SDPA
            head = self.fast(attn, hidden_states[:split], encoder_hidden_states[:split], attention_mask)
            tail = self._explicit(attn, hidden_states[split:], encoder_hidden_states[split:])
            return torch.cat([head, tail])
        return self._explicit(attn, hidden_states, encoder_hidden_states)

    def _explicit(self, attn, hidden_states, encoder_hidden_states):
        import torch

        store = self.store
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        context = encoder_hidden_states if encoder_hidden_states is not None else hidden_states
        key = attn.head_to_batch_dim(attn.to_k(context))
        value = attn.head_to_batch_dim(attn.to_v(context))
        probs = attn.get_attention_scores(query, key, None)
        if store.mode == "record":
            store.maps[self.name] = probs.detach()
        else:
            # per edit: mean over both guidance halves and the heads, as the official code does
            # for its single edit; summed over edits so a batch equals the same edits one by one
            heads = attn.heads
            current = probs.view(store.halves, -1, heads, *probs.shape[1:])
            reference = store.maps[self.name].view(store.reference_rows, -1, heads, *probs.shape[1:])
            reference = reference.repeat_interleave(store.edits_per_image, dim=1)  # 1 row: both halves
            per_edit = ((current - reference) ** 2).sum((-2, -1)).mean(dim=(0, 2))
            store.loss = store.loss + per_edit.sum()
        out = attn.batch_to_head_dim(torch.bmm(probs, value))
        return attn.to_out[1](attn.to_out[0](out))


def install_guided_attention(unet) -> CrossAttentionStore:
    """Swap GuidedCrossAttention into every attn2 layer of the UNet (SDPA elsewhere); returns
    the store that drives them."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    store = CrossAttentionStore()
    unet.set_attn_processor({
        name: GuidedCrossAttention(name, store) if ".attn2." in name else AttnProcessor2_0()
        for name in unet.attn_processors
    })
    return store
