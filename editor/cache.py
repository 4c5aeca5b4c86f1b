"""Inverted latents kept on disk, so another direction on the same image skips inversion."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


# x_T of a DDIM inversion is close to unit Gaussian noise (SD's VAE latents are scaled to unit
# variance); an entry past this holds no inversion of ours, whatever its key says
MAX_LATENT_MAGNITUDE = 1e4


def settings_text(**settings) -> str:
    """The settings an inversion depends on, as the canonical JSON its key hashes and its
    entry carries (so an entry is checked against them, not trusted by its file name)."""
    return json.dumps(settings, sort_keys=True, default=str)


def cache_key(image_bytes: bytes, **settings) -> str:
    """SHA-256 over the image's bytes and everything the inversion depends on."""
    digest = hashlib.sha256(image_bytes)
    digest.update(settings_text(**settings).encode())
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

    def _entry(self, key: str) -> Path:
        """The file of an entry; EditorError in one line when something other than a file
        (a folder, a FIFO) sits there, which the cache neither reads nor replaces."""
        from editor.pipeline import EditorError

        path = self.folder / f"{key}.safetensors"
        if (path.exists() or path.is_symlink()) and not path.is_file():
            raise EditorError(f"the inversion cache holds something other than a file at {path}; remove it, "
                              "or pass --no-cache")
        return path

    def get(self, key: str, shape: tuple[int, ...] | None = None, settings: str | None = None,
            caption: str | None = None):
        """(latents, caption) stored under key, or None: also when the entry is damaged, or not
        float32 latents of `shape` with finite values of plausible size (MAX_LATENT_MAGNITUDE),
        made with other `settings` (settings_text) or for another `caption` than the one
        given (then it is deleted and said in `dropped`)."""
        import torch
        from safetensors import safe_open

        path = self._entry(key)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
                stored_caption, stored_settings = meta["caption"], meta.get("settings")
                names = list(handle.keys())
                latents = handle.get_tensor("latents") if names == ["latents"] else None
        except Exception:
            return self._drop(path, "unreadable")
        if settings is not None and stored_settings != settings:
            return self._drop(path, "made with other settings than its name says" if stored_settings
                              else "from an older dbank, which recorded no settings")
        if caption is not None and stored_caption != caption:
            return self._drop(path, "made for another caption")
        if latents is None:
            return self._drop(path, f"holding {names} instead of latents")
        if latents.dtype != torch.float32:
            return self._drop(path, f"{latents.dtype} instead of float32")
        if shape is not None and tuple(latents.shape) != tuple(shape):
            return self._drop(path, f"of shape {list(latents.shape)} instead of {list(shape)}")
        if not torch.isfinite(latents).all():
            return self._drop(path, "holding NaN or infinite values")
        if latents.abs().max() > MAX_LATENT_MAGNITUDE:
            return self._drop(path, f"holding values past {MAX_LATENT_MAGNITUDE:g}, which no inversion makes")
        return latents, stored_caption

    def _drop(self, path: Path, problem: str) -> None:
        path.unlink(missing_ok=True)
        self.dropped.append(f"a cached inversion ({path.name}) was {problem}: dropped and inverted again")
        return None

    def put(self, key: str, latents, caption: str, settings: str = "") -> None:
        """Store latents, caption and the settings they were made with under key (atomically;
        no temporary file is left behind, whatever happens)."""
        from safetensors.torch import save_file

        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._entry(key)
        temporary = self.folder / f".{key}.{os.getpid()}.tmp"
        try:
            save_file({"latents": latents.detach().float().cpu().contiguous()}, str(temporary),
                      metadata={"caption": caption, "settings": settings})
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
