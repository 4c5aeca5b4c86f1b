"""The studio's "run" to images: the first direction on a photo (inversion, reference pass and
edit) against a second direction on the same photo (inversion and reference pass reused), over
the same StudioActions the page calls. Baseline: the first direction's time.

    python benchmarks/studio_second_direction.py                          # tiny model, CPU, 64 px, 50 steps
    python benchmarks/studio_second_direction.py --shape sd14 --size 512  # SD 1.4's shapes (a GPU)
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
    parser.add_argument("--shape", choices=["tiny", "sd14"], default="tiny")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--device", default=None)
    parser.add_argument("--repeats", type=int, default=2, help="photos timed (first and second direction each)")
    args = parser.parse_args()

    import numpy as np
    from PIL import Image

    from direction_bank.bank import Bank
    from direction_bank.store.records import DirectionResult
    from direction_bank.studio.actions import StudioActions
    from direction_bank.testing import write_clip_tokenizer, write_tiny_sd

    work = Path(tempfile.mkdtemp(prefix="dbank-bench-"))
    os.environ["DBANK_CACHE"] = str(work / "cache")
    model = write_tiny_sd(work / "sd", tokenizer_from=write_clip_tokenizer(work / "tok"), shape=args.shape)
    actions = StudioActions(str(work / "bank.db"), str(model), device=args.device, work_dir=work / "out")
    encoder = actions.encoder()
    bank = Bank(str(work / "bank.db"))
    info = bank.register_encoder(encoder)
    rng = np.random.default_rng(0)
    for name in ("first", "second"):
        tensor = (rng.standard_normal((1, encoder.max_length, info.hidden_size)) * 0.05).astype(np.float32)
        bank.save_direction(name, DirectionResult(tensor, info))
    bank.close()
    actions.editor()  # loading is not part of "run"
    firsts, seconds = [], []
    for repeat in range(args.repeats + 1):
        photo = work / f"photo-{repeat}.png"
        Image.fromarray(rng.integers(0, 255, (args.size * 3 // 4, args.size, 3), dtype=np.uint8)).save(photo)
        settings = {"steps": args.steps, "size": args.size}
        started = time.perf_counter()
        actions.edit(str(photo), "a photo of a horse", ["first"], **settings)
        first = time.perf_counter() - started
        started = time.perf_counter()
        outcome = actions.edit(str(photo), "a photo of a horse", ["second"], **settings)
        second = time.perf_counter() - started
        assert outcome.reused
        if repeat:  # the first photo warms up the kernels
            firsts.append(first)
            seconds.append(second)
    device = actions.editor().components.device
    print(f"studio edit, {args.shape} shapes, {args.size} px, {args.steps} steps, {device}, "
          f"median of {args.repeats} photos")
    print(f"  first direction (baseline: inversion + reference + edit): {np.median(firsts):.2f} s")
    print(f"  second direction (inversion and reference reused):        {np.median(seconds):.2f} s "
          f"({np.median(firsts) / np.median(seconds):.2f}x faster)")


if __name__ == "__main__":
    main()
