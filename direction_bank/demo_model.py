"""A small random Stable Diffusion to try dbank with, offline and in seconds: the real diffusers
layout and the real SD 1.x CLIP tokenizer, random weights (its pictures are noise), 64-pixel
images by default, two example photos to edit, and small random CLIP and DINO models (in
eval-clip/ and eval-dino/) for dbank eval and tune to score with."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from direction_bank.output_files import OutputRefused

EXAMPLES = ("horse-field.png", "horse-beach.png")
EVAL_CLIP, EVAL_DINO = "eval-clip", "eval-dino"  # folders of the scoring models, inside the demo model


def _example_photo(path: Path, ground: tuple[int, int, int], seed: int) -> None:
    """A drawn scene, 192x128: sky, ground, and a brown horse-like shape on it."""
    import random

    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    image = Image.new("RGB", (192, 128))
    draw = ImageDraw.Draw(image)
    for y in range(128):  # sky fading into the ground
        draw.line([(0, y), (191, y)], fill=(110 + y // 2, 160 + y // 4, 230) if y < 80 else ground)
    body = (60 + rng.randint(-10, 10), 58, 130 + rng.randint(-10, 10), 88)
    draw.ellipse(body, fill=(120, 72, 38))
    draw.polygon([(body[2] - 8, 66), (body[2] + 18, 36), (body[2] + 28, 44), (body[2] + 6, 74)], fill=(120, 72, 38))
    draw.ellipse((body[2] + 14, 30, body[2] + 38, 46), fill=(120, 72, 38))  # the head
    for x in (body[0] + 10, body[0] + 22, body[2] - 22, body[2] - 10):
        draw.rectangle((x, 82, x + 5, 108), fill=(96, 56, 30))
    image.save(path)


def write_demo_model(folder: str | os.PathLike, seed: int = 0) -> Path:
    """Write the demo model to `folder` (refused, untouched, when it exists and is not empty),
    built in a temporary folder beside it and moved into place whole."""
    from direction_bank.testing import write_tiny_clip, write_tiny_dino, write_tiny_sd

    target = Path(folder)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise OutputRefused(f"{target} exists and is not an empty folder; name a new one")
    if not target.parent.is_dir():
        raise OutputRefused(f"cannot write {target}: no folder {target.parent}")
    try:
        building = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name[:100]}."))
    except OSError as error:
        raise OutputRefused(f"cannot write {target}: {error.strerror or error}") from None
    try:
        write_tiny_sd(building, seed=seed, shape="demo")
        write_tiny_clip(building / EVAL_CLIP, seed=seed)
        write_tiny_dino(building / EVAL_DINO, seed=seed)
        (building / "examples").mkdir()
        for index, (name, ground) in enumerate(zip(EXAMPLES, [(70, 140, 60), (222, 200, 150)])):
            _example_photo(building / "examples" / name, ground, seed + index)
        if target.is_dir():
            target.rmdir()  # empty, checked above
        umask = os.umask(0)
        os.umask(umask)
        building.chmod(0o777 & ~umask)  # as a folder made by mkdir would be, not mkdtemp's 0700
        building.rename(target)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target
