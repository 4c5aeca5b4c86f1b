"""Editing: regularised DDIM inversion and cross-attention-guided editing (pix2pix-zero)."""
