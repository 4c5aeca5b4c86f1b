"""Editing many images: in this process (local: CPU threads load, the GPU edits in batches)."""
