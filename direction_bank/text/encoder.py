"""The Stable Diffusion CLIP text encoder: sentences to [77, D] last hidden states.

torch and transformers are imported here, inside functions, so that commands that never embed
(`concepts`, `diff`, `show`) start without them.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from direction_bank.errors import BankError, ModelUnavailable, first_line
from direction_bank.text.layout import sample_shape
from direction_bank.progress import progress_bar
from sd_models.family import has_second_text_encoder, model_source
from sd_models.precision import DTYPES, default_device, torch_dtype
from sd_models.prompts import encode_text, token_limit

if TYPE_CHECKING:
    import numpy as np

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_BATCH_SIZE = 64  # sentences embedded (and stored) per batch


def _model_folder(model: str) -> tuple[str, str | None]:
    """(where to load from, subfolder) for a pipeline id/folder or a bare text-encoder folder."""
    path = Path(model).expanduser()
    if path.is_dir() and not (path / "text_encoder").is_dir() and (path / "config.json").is_file():
        return str(path), None
    return model_source(model), "text_encoder"


def _is_sdxl(source: str) -> bool:
    """Whether a pipeline is SDXL; False when it cannot be read (loading it then says why)."""
    try:
        return has_second_text_encoder(source)
    except OSError:
        return False


def _weights_file(source: str, subfolder: str | None) -> Path | None:
    """The weights file of one text encoder (None when it cannot be found on disk)."""
    from transformers.utils import cached_file

    for name in ("model.safetensors", "pytorch_model.bin"):
        found = cached_file(source, name, subfolder=subfolder or "", _raise_exceptions_for_missing_entries=False)
        if found:
            return Path(found)
    return None


class TextEncoder:
    """A loaded CLIP text encoder and its tokenizer, embedding sentences as pix2pix-zero does; for
    SDXL its two encoders, embedding sentences as StableDiffusionXLPipeline.encode_prompt does."""

    def __init__(self, model: str, tokenizers: list, text_encoders: list, device: str,
                 weights_files: list[Path | None]):
        self.model = model
        self.parts = list(zip(tokenizers, text_encoders))
        self.tokenizer, self.text_encoder = tokenizers[0], text_encoders[0]
        self.device = device
        self.weights_files = weights_files
        self.two_encoders = len(self.parts) == 2
        self.hidden_size = sum(int(encoder.config.hidden_size) for encoder in text_encoders)
        # SDXL: the second encoder's projected pooled output goes in as an added condition
        self.pooled_size = int(text_encoders[-1].config.projection_dim) if self.two_encoders else 0
        self.max_length = token_limit(self.tokenizer, self.text_encoder)
        self.encoder_class = "+".join(type(encoder).__name__ for encoder in text_encoders)

    @classmethod
    def load(cls, model: str = DEFAULT_MODEL, device: str | None = None, dtype: str = "auto"):
        """Load the text encoder(s) and tokenizer(s) of a diffusers SD or SDXL model id or
        local folder (or a bare text-encoder folder); the kind is read from model_index.json."""
        from transformers import AutoTokenizer, CLIPTextModel, CLIPTextModelWithProjection

        if dtype not in DTYPES:
            raise BankError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
        device = device or default_device()
        source, subfolder = _model_folder(model)
        if subfolder is None:
            folders = [(None, None, CLIPTextModel)]
        elif _is_sdxl(source):
            folders = [("tokenizer", "text_encoder", CLIPTextModel),
                       ("tokenizer_2", "text_encoder_2", CLIPTextModelWithProjection)]
        else:
            folders = [("tokenizer", "text_encoder", CLIPTextModel)]
        tokenizers, encoders = [], []
        try:
            for tokenizer_folder, encoder_folder, encoder_class in folders:
                tokenizers.append(AutoTokenizer.from_pretrained(source, subfolder=tokenizer_folder or ""))
                encoders.append(encoder_class.from_pretrained(
                    source, subfolder=encoder_folder or "", dtype=torch_dtype(dtype, device)))
        except (OSError, ValueError) as error:
            raise ModelUnavailable(
                f"cannot load the text encoder of {model!r}: it is not a local Stable Diffusion "
                f"folder and could not be downloaded ({first_line(error)}); set --model or "
                "DBANK_MODEL to a local folder with text_encoder/ and tokenizer/, or go online"
            ) from None
        for encoder in encoders:
            encoder.to(device).eval().requires_grad_(False)
        files = [_weights_file(source, encoder_folder) for _, encoder_folder, _ in folders]
        return cls(model, tokenizers, encoders, device, files)

    def weights_signature(self) -> str | None:
        """path:size:mtime of each weights file (joined by |), which changes whenever their
        bytes may have."""
        if not self.weights_files or None in self.weights_files:
            return None
        stats = [(path.resolve(), path.resolve().stat()) for path in self.weights_files]
        return "|".join(f"{path}:{stat.st_size}:{stat.st_mtime_ns}" for path, stat in stats)

    def fingerprint(self, known: Callable[[str], str | None] = lambda signature: None) -> str:
        """SHA-256 of the weights (the bytes of every weights file, one after the other),
        reusing a known value for these files."""
        digest = hashlib.sha256()
        signature = self.weights_signature()
        if signature is not None:
            cached = known(signature)
            if cached:
                return cached
            for path in self.weights_files:
                with open(path, "rb") as handle:
                    for chunk in iter(lambda: handle.read(1 << 22), b""):
                        digest.update(chunk)
            return digest.hexdigest()
        for index, (_, encoder) in enumerate(self.parts):
            for name, tensor in sorted(encoder.state_dict().items()):
                digest.update(f"{index}.{name}".encode() if index else name.encode())
                digest.update(tensor.float().cpu().numpy().tobytes())
        return digest.hexdigest()

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sentence's embedding from embed (see layout.sample_shape)."""
        return sample_shape(self.max_length, self.hidden_size, self.pooled_size)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens per sentence, start and end tokens included, without truncation."""
        ids = self.tokenizer(list(texts), truncation=False, padding=False)["input_ids"]
        return [len(row) for row in ids]

    def embed(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Float32 [n, *sample_shape]: for SD 1.x/2.x the last hidden states [n, max_length, D],
        padded to max_length and truncated past it; for SDXL the penultimate states of both
        encoders side by side and the pooled embedding, flattened one after the other."""
        import numpy as np
        import torch

        out = np.empty((len(texts), *self.sample_shape), np.float32)
        starts = range(0, len(texts), batch_size)
        with torch.inference_mode():
            for start in progress_bar(starts, enabled=progress, desc="embedding", unit="batch"):
                batch = list(texts[start : start + batch_size])
                states, pooled = encode_text(self.parts, batch, self.max_length, self.device)
                if pooled is not None:
                    states = torch.cat([states.flatten(1), pooled], dim=1)
                out[start : start + len(batch)] = states.float().cpu().numpy()
        return out
