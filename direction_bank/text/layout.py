"""How one sentence's embedding is laid out: the token states [max_length, hidden_size] and, for
SDXL, the pooled embedding beside them. Statistics, stored tensors and files follow it."""
from __future__ import annotations


def sample_shape(max_length: int, hidden_size: int, pooled_size: int) -> tuple[int, ...]:
    """Shape of one sentence's embedding as statistics and stored tensors hold it: the token
    states [max_length, hidden_size], or with a pooled part both flattened one after the other,
    [max_length * hidden_size + pooled_size]."""
    if not pooled_size:
        return (max_length, hidden_size)
    return (max_length * hidden_size + pooled_size,)
