"""Edit-scoring throughput: dbank eval's scorer (CLIP directional similarity and accuracy, DINO
structure distance, background change) with batches against one edit at a time through the same
models (the baseline: a loop calling each metric per edit, as diffusers' evaluation guide does).

Tiny random CLIP and DINO checkpoints (written to disk in the real layout) on the CPU by default;
real ones by id or folder on a machine that has them:

    python benchmarks/eval_throughput.py                        # 8 photos x 8 edits, tiny models
    python benchmarks/eval_throughput.py --clip-model openai/clip-vit-large-patch14 \\
        --dino-model facebook/dino-vitb8 --size 512 --device cuda

Target: batched >= 3x one at a time (tiny models, CPU).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--edits", type=int, default=8, help="edits per photo")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--clip-model", default=None, help="default: a tiny random CLIP")
    parser.add_argument("--dino-model", default=None, help="default: a tiny random DINO-ViT")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from direction_bank.testing import write_clip_tokenizer, write_tiny_clip, write_tiny_dino
    from editor.evaluation import EditScorer, ScorePair

    work = Path(tempfile.mkdtemp(prefix="dbank-bench-"))
    clip_model = args.clip_model or str(write_tiny_clip(work / "clip", tokenizer_from=write_clip_tokenizer(work / "tok")))
    dino_model = args.dino_model or str(write_tiny_dino(work / "dino"))
    scorer = EditScorer.load(clip_model, dino_model, args.device)
    rng = np.random.default_rng(0)

    def picture():
        return Image.fromarray(rng.integers(0, 255, (args.size, args.size, 3), dtype=np.uint8))

    mask = np.zeros((args.size, args.size))
    mask[: args.size // 2] = 1.0
    pairs = []
    for index in range(args.photos):
        photo = picture()
        pairs += [ScorePair(photo, picture(), f"a photo of a horse {index}", f"a photo of a zebra {index}",
                            "a photo of a horse", "a photo of a zebra", mask) for _ in range(args.edits)]
    print(f"{len(pairs)} edits ({args.photos} photos x {args.edits}), {args.size} px; CLIP {clip_model}, "
          f"DINO {dino_model}; torch {torch.__version__} on {args.device} with {torch.get_num_threads()} threads")
    scorer.score(pairs[:2], batch_size=2)  # warm-up

    start = time.perf_counter()
    batched = scorer.score(pairs, batch_size=args.batch_size)
    batched_s = time.perf_counter() - start
    start = time.perf_counter()
    single = scorer.score(pairs, batch_size=1)
    single_s = time.perf_counter() - start
    worst = max(abs(a["clip_directional_similarity"] - b["clip_directional_similarity"]) for a, b in zip(batched, single))

    print(f"{'batched (dbank eval, batch ' + str(args.batch_size) + ')':<34}{batched_s:9.2f} s  "
          f"{len(pairs) / batched_s:8.1f} edits/s")
    print(f"{'one edit at a time (baseline)':<34}{single_s:9.2f} s  {len(pairs) / single_s:8.1f} edits/s")
    print(f"batched / one at a time = {single_s / batched_s:.1f}x faster (target >= 3x); "
          f"largest score difference {worst:.1e}")


if __name__ == "__main__":
    main()
