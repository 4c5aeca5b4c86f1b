"""Embedding throughput: the bank's add-concept against the raw batched encoder and against
one sentence at a time (how pix2pix-zero's make_edit_direction.py embeds).

A CLIP-L-sized text encoder (SD 1.x config, random weights) and the real SD tokenizer, on the CPU:

    python benchmarks/embed_throughput.py                 # 1000 sentences
    python benchmarks/embed_throughput.py --sentences 200 --single 20

Target: bank time within 1.15x of the batched floor.
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
    parser.add_argument("--sentences", type=int, default=1000, help="sentences to embed")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--single", type=int, default=50,
                        help="sentences timed one at a time (the figure is scaled to --sentences)")
    args = parser.parse_args()

    import torch

    from direction_bank import Bank
    from direction_bank.text.encoder import TextEncoder
    from direction_bank.text.generators.template import TemplateGenerator
    from direction_bank.testing import CLIP_L_TEXT, write_sd_text_checkpoint

    work = Path(tempfile.mkdtemp(prefix="dbank-bench-"))
    write_sd_text_checkpoint(work / "sd", **CLIP_L_TEXT)
    encoder = TextEncoder.load(str(work / "sd"), device="cpu")
    sentences = TemplateGenerator().sentences("horse")[: args.sentences]
    print(f"CLIP-L text encoder (random weights), {len(sentences)} sentences, batch {args.batch_size}, "
          f"torch {torch.__version__} on CPU with {torch.get_num_threads()} threads")

    def forward(texts):
        ids = encoder.tokenizer(texts, padding="max_length", max_length=77, truncation=True,
                                return_tensors="pt").input_ids
        return encoder.text_encoder(ids)[0]

    with torch.inference_mode():
        forward(sentences[:8])  # warm-up
        start = time.perf_counter()
        for i in range(0, len(sentences), args.batch_size):
            forward(sentences[i : i + args.batch_size])
        floor = time.perf_counter() - start

        start = time.perf_counter()
        for text in sentences[: args.single]:
            forward([text])
        single = (time.perf_counter() - start) * len(sentences) / args.single

    with Bank(work / "bank.db") as bank:
        bank.register_encoder(encoder)  # hashing the weights once is not embedding time
        start = time.perf_counter()
        report = bank.add_sentences("horse", sentences, encoder, batch_size=args.batch_size)
        bank_time = time.perf_counter() - start
    assert report.added == len(sentences)

    print(f"{'bank add-concept':<34}{bank_time:9.2f} s  {len(sentences) / bank_time:8.1f} sentences/s")
    print(f"{'raw batched forward (floor)':<34}{floor:9.2f} s  {len(sentences) / floor:8.1f} sentences/s")
    print(f"{'one at a time (pix2pix-zero)':<34}{single:9.2f} s  {len(sentences) / single:8.1f} sentences/s"
          f"  (timed on {args.single}, scaled)")
    print(f"bank / floor = {bank_time / floor:.3f} (target <= 1.15); "
          f"one-at-a-time / floor = {single / floor:.1f}x")


if __name__ == "__main__":
    main()
