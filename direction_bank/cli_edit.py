"""`dbank edit` and `dbank generate-edit`: directions from the bank (or files) applied to images
by the editor. The only place the bank and the editor meet."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import click

from direction_bank.cli import _open, cli, json_option, model_option, with_device
from direction_bank.errors import BankError


def _label(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "direction"


def _resolve_directions(ctx, names, sources, targets, files, editor):
    """[(label, tensor [1, 77, D])] for every direction asked for, and one-line errors for the
    ones that cannot be used."""
    import numpy as np

    from direction_bank.files import read_shared_file
    from editor.pipeline import EditorError

    if len(sources) != len(targets):
        raise click.ClickException("give --from and --to in pairs")
    if not (names or sources or files):
        raise click.ClickException("name at least one --direction, --from/--to pair or --direction-file")
    wanted, errors = [], []
    bank = _open(ctx) if (names or sources) else None
    for name in names:
        wanted.append((name, lambda name=name: bank.direction(name).tensor))
    for source, target in zip(sources, targets):
        wanted.append((f"{source}2{target}", lambda s=source, t=target: bank.diff(s, t).tensor))
    for path in files:
        def from_file(path=path):
            shared = read_shared_file(path)
            if shared.kind != "direction":
                raise BankError(f"{path}: a {shared.kind} file, not a direction")
            return shared.tensors["direction"]
        wanted.append((Path(path).stem, from_file))
    resolved = []
    for label, load in wanted:
        try:
            tensor = np.asarray(load(), dtype=np.float32)
            editor.check_direction(label, tensor)
            resolved.append((label, tensor))
        except (BankError, EditorError) as error:  # reported; the other directions still run
            errors.append(f"{label}: {error}")
    return resolved, errors


def _editor(model, device, dtype, caption_model, no_cache, compile=False):
    from direction_bank.progress import progress_bar
    from editor.cache import InversionCache
    from editor.editor import Editor

    cache = None if no_cache else InversionCache(os.environ.get("DBANK_CACHE") or None)
    return Editor(model, device, dtype, cache, caption_model,
                  progress_bar=lambda steps, **kw: progress_bar(steps, **kw), compile=compile)


def edit_options(func):
    """Options shared by edit and generate-edit."""
    options = [
        click.option("--direction", "names", multiple=True, help="A saved direction (repeatable)."),
        click.option("--from", "sources", multiple=True, help="Source concept of a direction made on the fly."),
        click.option("--to", "targets", multiple=True, help="Target concept (pairs with --from)."),
        click.option("--direction-file", "files", multiple=True, type=click.Path(dir_okay=False),
                     help="A dbank direction file (repeatable)."),
        click.option("--scale", default=1.0, show_default=True, help="Multiplies every direction."),
        click.option("--steps", default=50, show_default=True, help="DDIM steps."),
        click.option("--xa-guidance", default=0.1, show_default=True, help="Cross-attention guidance step."),
        click.option("--guidance-scale", default=5.0, show_default=True, help="Classifier-free guidance."),
        click.option("--seed", default=0, show_default=True, help="Seed (inversion shifts, generated noise)."),
        click.option("--size", default=512, show_default=True, help="Longer image side (multiple of 8)."),
        click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
                     help="Folder for the images."),
        click.option("--caption-model", default="Salesforce/blip-image-captioning-base", show_default=True,
                     help="BLIP model for captions when --caption is not given."),
        click.option("--no-cache", is_flag=True, help="Do not read or write the inversion cache."),
        click.option("--compile", "compile_unet", is_flag=True,
                     help="torch.compile the UNet (slow first run, cached on disk; eager by default)."),
        model_option,
    ]
    for option in reversed(options):
        func = option(func)
    return with_device(json_option(func))


@cli.command("edit")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--caption", default=None, help="The source prompt (default: a BLIP caption of each image).")
@click.option("--no-regularise", is_flag=True, help="Plain DDIM inversion (no noise regularisation).")
@click.option("--attention-map", "attention_words", multiple=True,
              help="Also save where the reconstruction attends to this caption word (repeatable).")
@edit_options
@click.pass_context
def edit_command(ctx, images, caption, no_regularise, attention_words, names, sources, targets, files, scale, steps,
                 xa_guidance, guidance_scale, seed, size, out_dir, caption_model, no_cache, compile_unet, model,
                 device, dtype, as_json):
    """Edit IMAGES with directions from the bank: invert each (cached), then guided editing."""
    import numpy as np

    from editor.edit import EditSettings
    from editor.inversion import NO_REGULARISATION, Regularisation
    from editor.pipeline import EditorError

    editor = _editor(model, device, dtype, caption_model, no_cache, compile_unet)
    directions, errors = _resolve_directions(ctx, names, sources, targets, files, editor)
    settings = EditSettings(steps, guidance_scale, xa_guidance, scale)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for image in images:
        if not directions:
            break
        try:
            inversion = editor.invert_file(image, caption, size, steps,
                                           NO_REGULARISATION if no_regularise else Regularisation(), seed)
            edited, reconstruction, *maps = editor.edit(
                inversion, np.stack([t[0] for _, t in directions]), settings,
                attention_words=attention_words)
        except (EditorError, BankError) as error:  # reported; the other images are still edited
            errors.append(str(error))
            continue
        stem = _label(Path(image).stem)
        outputs = {}
        for (label, _), picture in zip(directions, edited):
            outputs[label] = str(out / f"{stem}.{_label(label)}.png")
            picture.save(outputs[label])
        reconstruction.save(out / f"{stem}.reconstruction.png")
        attention = {}
        for word, picture in (maps[0] if maps else {}).items():
            attention[word] = str(out / f"{stem}.attention-{_label(word)}.png")
            picture.save(attention[word])
        results.append({"image": image, "caption": inversion.caption, "inversion_cached": inversion.cached,
                        "edits": outputs, "reconstruction": str(out / f"{stem}.reconstruction.png"),
                        "attention_maps": attention})
    _report(results, errors, as_json)


@cli.command("generate-edit")
@click.argument("prompt")
@edit_options
@click.pass_context
def generate_edit(ctx, prompt, names, sources, targets, files, scale, steps, xa_guidance, guidance_scale,
                  seed, size, out_dir, caption_model, no_cache, compile_unet, model, device, dtype, as_json):
    """Generate an image from PROMPT, then edit it with directions (no inversion needed)."""
    import numpy as np

    from editor.edit import EditSettings
    from editor.editor import Inversion

    editor = _editor(model, device, dtype, caption_model, True, compile_unet)
    directions, errors = _resolve_directions(ctx, names, sources, targets, files, editor)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    if directions:
        start = Inversion(editor.generate_noise(size, seed), prompt, False)
        edited, generated = editor.edit(start, np.stack([t[0] for _, t in directions]),
                                        EditSettings(steps, guidance_scale, xa_guidance, scale), negative_prompt="")
        stem = f"generated-{seed}"
        outputs = {}
        for (label, _), picture in zip(directions, edited):
            outputs[label] = str(out / f"{stem}.{_label(label)}.png")
            picture.save(outputs[label])
        generated.save(out / f"{stem}.png")
        results.append({"prompt": prompt, "image": str(out / f"{stem}.png"), "edits": outputs})
    _report(results, errors, as_json)


def _report(results, errors, as_json) -> None:
    if as_json:
        click.echo(json.dumps({"results": results, "errors": errors}, indent=2))
    else:
        for result in results:
            for label, path in result["edits"].items():
                click.echo(f"{result['image']} + {label} -> {path}")
    for error in errors:
        click.echo(f"Error: {error}", err=True)
    if errors:
        raise SystemExit(1)
