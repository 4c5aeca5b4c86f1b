"""Fail fast, in one line, when a model can neither be found locally nor downloaded: before
transformers or diffusers spend minutes retrying a hub that cannot be reached."""
from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from direction_bank.errors import ModelUnavailable

PROBE_TIMEOUT_S = 5.0


def _offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _looks_like_a_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or model.count("/") > 1 or os.sep != "/" and os.sep in model


def in_hub_cache(model: str) -> bool:
    """Whether some snapshot of the hub repository `model` is in the local Hugging Face cache."""
    from huggingface_hub.constants import HF_HUB_CACHE

    snapshots = Path(HF_HUB_CACHE) / f"models--{model.replace('/', '--')}" / "snapshots"
    return snapshots.is_dir() and any(snapshots.iterdir())


def require_model(model: str, role: str, fix: str) -> None:
    """Return when `model` is a local folder or file, is in the hub cache, or the hub can be
    reached to download it; otherwise raise ModelUnavailable naming the model and `fix`."""
    if Path(model).expanduser().exists():
        return
    if _looks_like_a_path(model):
        raise ModelUnavailable(f"{role} {model!r}: no such folder; {fix}")
    if in_hub_cache(model):
        return
    if _offline():
        raise ModelUnavailable(
            f"{role} {model!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; {fix}, "
            "or go online without HF_HUB_OFFLINE=1 to download it once"
        )
    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return  # the proxy decides what can be reached
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=PROBE_TIMEOUT_S).close()
    except OSError as error:
        raise ModelUnavailable(
            f"{role} {model!r} is not downloaded and {host} cannot be reached ({error.strerror or error}); "
            f"{fix}, or go online to download it once"
        ) from None
