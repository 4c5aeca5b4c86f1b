"""Inverted latents kept on disk, so another direction on the same image skips inversion."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def cache_key(image_bytes: bytes, **settings) -> str:
    """SHA-256 over the image's bytes and everything the inversion depends on."""
    digest = hashlib.sha256(image_bytes)
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()


class InversionCache:
    """x_T latents and their captions under a folder, one safetensors file per key."""

    def __init__(self, folder: str | os.PathLike | None = None):
        if folder is None:
            import platformdirs

            folder = platformdirs.user_cache_path("dbank") / "inversions"
        self.folder = Path(folder)

    def get(self, key: str):
        """(latents, caption) stored under key, or None."""
        from safetensors.torch import load_file
        from safetensors import safe_open

        path = self.folder / f"{key}.safetensors"
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as handle:
                caption = handle.metadata()["caption"]
            return load_file(str(path))["latents"], caption
        except Exception:  # a damaged entry is recomputed
            return None

    def put(self, key: str, latents, caption: str) -> None:
        """Store latents and caption under key (atomically)."""
        from safetensors.torch import save_file

        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / f".{key}.{os.getpid()}.tmp"
        save_file({"latents": latents.detach().cpu().contiguous()}, str(temporary), metadata={"caption": caption})
        os.replace(temporary, self.folder / f"{key}.safetensors")
