"""The Stable Diffusion CLIP text encoder: sentences to [77, D] last hidden states.

torch and transformers are imported here, inside functions, so that commands that never embed
(`concepts`, `diff`, `show`) start without them.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from direction_bank.errors import BankError, ModelUnavailable, first_line
from direction_bank.progress import progress_bar

if TYPE_CHECKING:
    import numpy as np

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DTYPES = ("auto", "fp32", "fp16", "bf16")


def _torch_dtype(name: str, device: str):
    import torch

    if name == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def default_device() -> str:
    """'cuda' when a GPU is usable, else 'cpu'."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _model_folder(model: str) -> tuple[str, str | None]:
    """(where to load from, subfolder) for a pipeline id/folder or a bare text-encoder folder."""
    path = Path(model).expanduser()
    if path.is_dir() and not (path / "text_encoder").is_dir() and (path / "config.json").is_file():
        return str(path), None
    return (str(path) if path.is_dir() else model), "text_encoder"


def _has_second_text_encoder(source: str) -> bool:
    """Whether a pipeline folder or id has text_encoder_2 (SDXL), by its model_index.json."""
    import json

    from transformers.utils import cached_file

    try:
        index = cached_file(source, "model_index.json", _raise_exceptions_for_missing_entries=False,
                            _raise_exceptions_for_connection_errors=False)
    except OSError:
        return False
    if not index:
        return False
    try:
        return "text_encoder_2" in json.loads(Path(index).read_text())
    except (OSError, ValueError):
        return False


class TextEncoder:
    """A loaded CLIP text encoder and its tokenizer, embedding sentences as pix2pix-zero does."""

    def __init__(self, model: str, tokenizer, text_encoder, device: str, weights_file: Path | None):
        self.model = model
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self.device = device
        self.weights_file = weights_file
        self.hidden_size = int(text_encoder.config.hidden_size)
        self.max_length = int(tokenizer.model_max_length)
        if self.max_length > 10_000:  # tokenizers saved without a max length
            self.max_length = int(text_encoder.config.max_position_embeddings)
        self.encoder_class = type(text_encoder).__name__

    @classmethod
    def load(cls, model: str = DEFAULT_MODEL, device: str | None = None, dtype: str = "auto"):
        """Load the text encoder and tokenizer of a diffusers SD model id or local folder."""
        from transformers import AutoTokenizer, CLIPTextModel
        from transformers.utils import cached_file

        if dtype not in DTYPES:
            raise BankError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
        device = device or default_device()
        source, subfolder = _model_folder(model)
        if subfolder and _has_second_text_encoder(source):
            raise BankError(f"{model!r} is an SDXL model: its sentences need both of its text encoders, "
                            "which the bank does not embed yet; use a Stable Diffusion 1.x or 2.x model")
        tokenizer_folder = "tokenizer" if subfolder else None
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, subfolder=tokenizer_folder or "")
            text_encoder = CLIPTextModel.from_pretrained(
                source, subfolder=subfolder or "", dtype=_torch_dtype(dtype, device)
            )
        except (OSError, ValueError) as error:
            raise ModelUnavailable(
                f"cannot load the text encoder of {model!r}: it is not a local Stable Diffusion "
                f"folder and could not be downloaded ({first_line(error)}); set --model or "
                "DBANK_MODEL to a local folder with text_encoder/ and tokenizer/, or go online"
            ) from None
        text_encoder.to(device).eval().requires_grad_(False)
        weights_file = None
        for name in ("model.safetensors", "pytorch_model.bin"):
            found = cached_file(
                source, name, subfolder=subfolder or "", _raise_exceptions_for_missing_entries=False
            )
            if found:
                weights_file = Path(found)
                break
        return cls(model, tokenizer, text_encoder, device, weights_file)

    def weights_signature(self) -> str | None:
        """path:size:mtime of the weights file, which changes whenever its bytes may have."""
        if self.weights_file is None:
            return None
        stat = self.weights_file.resolve().stat()
        return f"{self.weights_file.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"

    def fingerprint(self, known: Callable[[str], str | None] = lambda signature: None) -> str:
        """SHA-256 of the weights (the file's bytes), reusing a known value for this file."""
        signature = self.weights_signature()
        if signature is not None:
            cached = known(signature)
            if cached:
                return cached
            digest = hashlib.sha256()
            with open(self.weights_file, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 22), b""):
                    digest.update(chunk)
            return digest.hexdigest()
        digest = hashlib.sha256()
        for name, tensor in sorted(self.text_encoder.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.float().cpu().numpy().tobytes())
        return digest.hexdigest()

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens per sentence, start and end tokens included, without truncation."""
        ids = self.tokenizer(list(texts), truncation=False, padding=False)["input_ids"]
        return [len(row) for row in ids]

    def embed(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Float32 [n, max_length, D] last hidden states, padded to max_length, truncated past it."""
        import numpy as np
        import torch

        out = np.empty((len(texts), self.max_length, self.hidden_size), np.float32)
        starts = range(0, len(texts), batch_size)
        with torch.inference_mode():
            for start in progress_bar(starts, enabled=progress, desc="embedding", unit="batch"):
                batch = list(texts[start : start + batch_size])
                ids = self.tokenizer(
                    batch,
                    padding="max_length",
                    max_length=self.max_length,
                    truncation=True,
                    return_tensors="pt",
                ).input_ids.to(self.device)
                hidden = self.text_encoder(ids)[0]
                out[start : start + len(batch)] = hidden.float().cpu().numpy()
        return out

