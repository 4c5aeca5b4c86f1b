"""Which family a Stable Diffusion model id or folder belongs to (SDXL or SD 1.x/2.x), from its
files alone: one rule for the bank and the editor."""
from __future__ import annotations

import json
from pathlib import Path


def model_source(model: str) -> str:
    """A local folder's expanded path, or the model id unchanged."""
    path = Path(model).expanduser()
    return str(path) if path.is_dir() else model


def _file(source: str, name: str, subfolder: str = "") -> str | None:
    """The path of a pipeline's file (folder, or id through the Hugging Face cache, offline when
    HF_HUB_OFFLINE is set), or None when the model has no such file or it is not downloaded and
    cannot be; OSError for a repository that does not exist, ValueError for a malformed id."""
    folder = Path(source)
    if folder.is_dir():
        path = folder / subfolder / name
        return str(path) if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return hf_hub_download(source, name, subfolder=subfolder or None)
    except (EntryNotFoundError, LocalEntryNotFoundError):
        return None


def _json_file(source: str, name: str, subfolder: str = ""):
    """A pipeline's JSON file, parsed (None when the model has no such file; see _file)."""
    path = _file(source, name, subfolder)
    return None if path is None else json.loads(Path(path).read_text())


def component_config(source: str, subfolder: str) -> dict:
    """A pipeline component's config.json, read with huggingface_hub alone: a page that shows a
    model's size need not import diffusers and torch (3.6 s). OSError or ValueError when it
    cannot be read."""
    config = _json_file(source, "config.json", subfolder)
    if config is None:
        raise OSError(f"{source} has no {subfolder}/config.json, or it is not downloaded")
    if not isinstance(config, dict):
        raise ValueError(f"{subfolder}/config.json is not a JSON object")
    return config


def model_index(source: str) -> dict:
    """The pipeline's model_index.json ({} when there is none, or it cannot be read)."""
    try:
        index = _json_file(source, "model_index.json")
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}


def has_second_text_encoder(source: str) -> bool:
    """Whether a diffusers pipeline (folder or id) is SDXL, i.e. has `text_encoder_2`: listed in
    its model_index.json, or, for a folder without one, present as a subfolder. OSError when the
    model cannot be read (no such folder, offline and not cached, not a pipeline)."""
    try:
        index = _json_file(source, "model_index.json")
        if index is not None:
            return "text_encoder_2" in index
        if _file(source, "config.json", "text_encoder_2") is not None:
            return True
        if _file(source, "config.json", "text_encoder") is not None:
            return False
    except ValueError as error:  # a malformed id, or a model_index.json that is not JSON
        raise OSError(str(error)) from None
    raise OSError(f"{source} has no model_index.json or text_encoder/config.json: not a Stable Diffusion "
                  "pipeline, or not downloaded")


def model_kind(sdxl: bool) -> str:
    """'SDXL' or 'SD 1.x/2.x', for messages and defaults."""
    return "SDXL" if sdxl else "SD 1.x/2.x"
