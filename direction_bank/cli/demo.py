"""`dbank demo-model`: a small random Stable Diffusion to try every command on, offline."""
from __future__ import annotations

import time

import click

from direction_bank.cli.app import cli, emit, json_option


@cli.command("demo-model")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True, help="Seed of the random weights.")
@json_option
def demo_model(folder, seed, as_json):
    """Write a small random Stable Diffusion (SD 1.x layout, real CLIP tokenizer) to FOLDER, with
    two example photos in FOLDER/examples and small random CLIP and DINO models (FOLDER/eval-clip,
    FOLDER/eval-dino) for eval and tune: every command runs on it offline, in seconds, but its
    weights are random, so its pictures are noise. Use it with --model FOLDER or DBANK_MODEL; its last
    line is the export that points every command at it (a bank beside it, 20 steps an edit)."""
    from direction_bank.demo_model import EVAL_CLIP, EVAL_DINO, EXAMPLES, write_demo_model

    started = time.monotonic()
    written = write_demo_model(folder, seed).resolve()
    result = {"model": str(written), "examples": [str(written / "examples" / n) for n in EXAMPLES],
              "clip_model": str(written / EVAL_CLIP), "dino_model": str(written / EVAL_DINO),
              "seconds": round(time.monotonic() - started, 1)}
    result["try"] = (f"export DBANK_MODEL={result['model']} DBANK_DB={written.parent / 'demo.db'} DBANK_STEPS=20 "
                     f"DBANK_CLIP_MODEL={result['clip_model']} DBANK_DINO_MODEL={result['dino_model']}")
    emit(as_json, lambda: result, lambda: [
        f"wrote a random Stable Diffusion to {folder} (64-pixel images; its pictures are noise), "
        f"{len(EXAMPLES)} example photos in {folder}/examples, and random CLIP and DINO models for dbank eval in "
        f"{folder}/{EVAL_CLIP} and {folder}/{EVAL_DINO} (their scores mean nothing)",
        f"try it: {result['try']}",
    ])
