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


def check_cache_folder(folder: Path) -> None:
    """EditorError unless `folder` is a writable folder, or could be made in one."""
    from editor.pipeline import EditorError

    where = f"the inversion cache {folder} (DBANK_CACHE)"
    if folder.exists() or folder.is_symlink():
        if not folder.is_dir():
            raise EditorError(f"{where} is not a folder; point DBANK_CACHE at a folder, or pass --no-cache")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise EditorError(f"{where} is not writable; point DBANK_CACHE elsewhere, or pass --no-cache")
        return
    parent = folder.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise EditorError(f"{where} cannot be made: {parent} is not a writable folder; "
                          "point DBANK_CACHE elsewhere, or pass --no-cache")


class InversionCache:
    """x_T latents and their captions under a folder, one safetensors file per key. An entry
    is checked when read; a bad one is deleted, said in `dropped`, and recomputed."""

    def __init__(self, folder: str | os.PathLike | None = None):
        """The cache in `folder` (default: the user cache dir), refused in one line when that is
        something other than a folder or cannot become one (checked before any model loads)."""
        if folder is None:
            import platformdirs

            folder = platformdirs.user_cache_path("dbank") / "inversions"
        self.folder = Path(folder)
        check_cache_folder(self.folder)
        self.dropped: list[str] = []  # one line per bad entry met, for the caller's warnings

    def get(self, key: str, shape: tuple[int, ...] | None = None):
        """(latents, caption) stored under key, or None: also when the entry is damaged, or not
        float32 latents of `shape` with finite values (then it is deleted and said in `dropped`)."""
        import torch
        from safetensors import safe_open

        path = self.folder / f"{key}.safetensors"
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as handle:
                caption = (handle.metadata() or {})["caption"]
                names = list(handle.keys())
                latents = handle.get_tensor("latents") if names == ["latents"] else None
        except Exception:
            return self._drop(path, "unreadable")
        if latents is None:
            return self._drop(path, f"holding {names} instead of latents")
        if latents.dtype != torch.float32:
            return self._drop(path, f"{latents.dtype} instead of float32")
        if shape is not None and tuple(latents.shape) != tuple(shape):
            return self._drop(path, f"of shape {list(latents.shape)} instead of {list(shape)}")
        if not torch.isfinite(latents).all():
            return self._drop(path, "holding NaN or infinite values")
        return latents, caption

    def _drop(self, path: Path, problem: str) -> None:
        path.unlink(missing_ok=True)
        self.dropped.append(f"a cached inversion ({path.name}) was {problem}: dropped and inverted again")
        return None

    def put(self, key: str, latents, caption: str) -> None:
        """Store latents and caption under key (atomically)."""
        from safetensors.torch import save_file

        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / f".{key}.{os.getpid()}.tmp"
        save_file({"latents": latents.detach().float().cpu().contiguous()}, str(temporary), metadata={"caption": caption})
        os.replace(temporary, self.folder / f"{key}.safetensors")
