"""`dbank edit` and `dbank generate-edit`: directions from the bank (or files) applied to images
by the editor. The only place the bank and the editor meet.

Cheap checks come first (numbers, directions, output names), then the models load. Output names
never collide: see names.file_label."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click

from direction_bank.cli.app import cli, json_option, model_option, open_bank, overwrite_option, with_device
from direction_bank.cli.params import SEED, FiniteFloat, ImageSize
from direction_bank.errors import BankError
from direction_bank.names import file_label

RECONSTRUCTION = "reconstruction"


def _direction_sources(ctx, names, sources, targets, files):
    """[(label, load)] for every direction asked for; load() gives the [1, 77, D] tensor."""
    from direction_bank.files import read_shared_file

    if len(sources) != len(targets):
        raise click.UsageError("give --from and --to in pairs")
    if not (names or sources or files):
        raise click.UsageError("name at least one --direction, --from/--to pair or --direction-file")
    bank = open_bank(ctx, read_only=True) if (names or sources) else None
    wanted = [(name, lambda name=name: bank.direction(name).tensor) for name in names]
    wanted += [(f"{s}2{t}", lambda s=s, t=t: bank.diff(s, t).tensor) for s, t in zip(sources, targets)]

    def from_file(path):
        shared = read_shared_file(path)
        if shared.kind != "direction":
            raise BankError(f"{path}: a {shared.kind} file, not a direction")
        return shared.tensors["direction"]

    wanted += [(Path(path).stem, lambda path=path: from_file(path)) for path in files]
    return wanted


def _resolve_directions(wanted):
    """([(label, file label, tensor)], errors): the directions that could be read, before any
    model loads; each file label is distinct and never a reserved output name."""
    import numpy as np

    resolved, errors, used = [], [], set()
    for label, load in wanted:
        try:
            tensor = np.asarray(load(), dtype=np.float32)
        except BankError as error:  # reported; the other directions still run
            errors.append(f"{label}: {error}")
            continue
        name = file_label(label, reserved=(RECONSTRUCTION,))
        if name in used:  # the same label twice (a saved direction and a file, say)
            name = file_label(f"{label}#{len(resolved)}")
        used.add(name)
        resolved.append((label, name, tensor))
    return resolved, errors


def _check_shapes(editor, resolved, errors):
    """The directions that fit the model's text encoder; the others are reported."""
    from editor.pipeline import EditorError

    fitting = []
    for label, name, tensor in resolved:
        try:
            editor.check_direction(label, tensor)
            fitting.append((label, name, tensor))
        except EditorError as error:
            errors.append(f"{label}: {error}")
    return fitting


def _editor(model, device, dtype, caption_model, no_cache, compile=False, need_captions=False):
    import diffusers.utils.logging  # noqa: F401  (so that it can be quietened)
    import transformers.utils.logging  # noqa: F401

    from direction_bank.cli.app import quiet_third_parties
    from direction_bank.model_check import require_model
    from direction_bank.progress import progress_bar
    from editor.cache import InversionCache
    from editor.editor import Editor

    quiet_third_parties()
    require_model(model, "the Stable Diffusion model", "set --model or DBANK_MODEL to a local diffusers folder")
    if need_captions:
        require_model(caption_model, "the captioning model",
                      "pass --caption, or set --caption-model to a local BLIP folder")
    cache = None if no_cache else InversionCache(os.environ.get("DBANK_CACHE") or None)
    return Editor(model, device, dtype, cache, caption_model,
                  progress_bar=lambda steps, **kw: progress_bar(steps, **kw), compile=compile)


def _output_folder(out_dir: str) -> Path:
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise BankError(f"-o {out_dir}: not a folder") from None
    except OSError as error:
        raise BankError(f"cannot make the folder {out_dir}: {error.strerror or error}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise BankError(f"the folder {out_dir} is not writable")
    return out


def _write_pictures(pictures: dict[Path, object], overwrite: bool) -> list[str]:
    """Write each PIL image atomically; returns the paths written."""
    from direction_bank.output_files import write_output

    written = []
    for path, picture in pictures.items():
        write_output(path, lambda temporary, picture=picture: picture.save(temporary, format="PNG"), overwrite)
        written.append(str(path))
    return written


def edit_options(func):
    """Options shared by edit and generate-edit."""
    options = [
        click.option("--direction", "names", multiple=True, help="A saved direction (repeatable)."),
        click.option("--from", "sources", multiple=True, help="Source concept of a direction made on the fly."),
        click.option("--to", "targets", multiple=True, help="Target concept (pairs with --from)."),
        click.option("--direction-file", "files", multiple=True, type=click.Path(dir_okay=False),
                     help="A dbank direction file (repeatable)."),
        click.option("--scale", type=FiniteFloat(-20, 20), default=1.0, show_default=True,
                     help="Multiplies every direction."),
        click.option("--steps", type=click.IntRange(1, 1000), default=50, show_default=True, help="DDIM steps."),
        click.option("--xa-guidance", type=FiniteFloat(0, 10), default=0.1, show_default=True,
                     help="Cross-attention guidance step."),
        click.option("--guidance-scale", type=FiniteFloat(0, 50), default=5.0, show_default=True,
                     help="Classifier-free guidance."),
        click.option("--seed", type=SEED, default=0, show_default=True,
                     help="Seed (inversion shifts, generated noise)."),
        click.option("--size", type=ImageSize(), default=512, show_default=True,
                     help="Longer image side (a multiple of 8 up to 4096)."),
        click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
                     help="Folder for the images."),
        overwrite_option,
        click.option("--caption-model", default="Salesforce/blip-image-captioning-base", show_default=True,
                     help="BLIP model for captions when --caption is not given."),
        click.option("--max-batch", type=click.IntRange(1, 1024), default=None,
                     help="Directions per batch (default: all, halved whenever the GPU runs out of memory)."),
        click.option("--no-cache", is_flag=True, help="Do not read or write the inversion cache."),
        click.option("--compile", "compile_unet", is_flag=True,
                     help="torch.compile the UNet (slow first run, cached on disk; eager by default)."),
        model_option,
    ]
    for option in reversed(options):
        func = option(func)
    return with_device(json_option(func))


def _image_stems(images) -> list[str]:
    """A file stem per input image; two inputs with the same name (d1/x.png, d2/x.png) get
    stems from their whole paths, so their outputs never meet."""
    stems = [Path(image).stem for image in images]
    return [file_label(stem) if stems.count(stem) == 1 else file_label(str(Path(image)))
            for image, stem in zip(images, stems)]


@cli.command("edit")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--caption", default=None, help="The source prompt (default: a BLIP caption of each image).")
@click.option("--no-regularise", is_flag=True, help="Plain DDIM inversion (no noise regularisation).")
@click.option("--attention-map", "attention_words", multiple=True,
              help="Also save where the reconstruction attends to this caption word (repeatable).")
@edit_options
@click.pass_context
def edit_command(ctx, images, caption, no_regularise, attention_words, names, sources, targets, files, scale, steps,
                 xa_guidance, guidance_scale, seed, size, out_dir, overwrite, max_batch, caption_model, no_cache,
                 compile_unet, model, device, dtype, as_json):
    """Edit IMAGES with directions from the bank: invert each (cached), then guided editing.
    Writes STEM.DIRECTION.png, STEM.reconstruction.png and STEM.attention-WORD.png per image."""
    import numpy as np

    from direction_bank.output_files import check_output
    from editor.edit import EditSettings
    from editor.inversion import NO_REGULARISATION, Regularisation
    from editor.pipeline import EditorError

    directions, errors = _resolve_directions(_direction_sources(ctx, names, sources, targets, files))
    out = _output_folder(out_dir)
    results, warnings = [], []
    if directions:
        editor = _editor(model, device, dtype, caption_model, no_cache, compile_unet, need_captions=caption is None)
        directions = _check_shapes(editor, directions, errors)
    settings = EditSettings(steps, guidance_scale, xa_guidance, scale)
    for image, stem in zip(images, _image_stems(images)):
        if not directions:
            break
        edit_paths = {label: out / f"{stem}.{name}.png" for label, name, _ in directions}
        reconstruction_path = out / f"{stem}.{RECONSTRUCTION}.png"
        attention_paths = {word: out / f"{stem}.attention-{file_label(word)}.png" for word in attention_words}
        try:
            for path in [*edit_paths.values(), reconstruction_path, *attention_paths.values()]:
                check_output(path, overwrite)  # before the work, not after
            inversion = editor.invert_file(image, caption, size, steps,
                                           NO_REGULARISATION if no_regularise else Regularisation(), seed)
            edited, reconstruction, *maps = editor.edit(
                inversion, np.stack([t[0] for _, _, t in directions]), settings,
                attention_words=attention_words, max_batch=max_batch)
            maps = maps[0] if maps else {}
            for word in attention_words:
                if word not in maps:
                    warnings.append(f"{image}: {word!r} is not in the caption {inversion.caption!r}; no map")
            pictures = {**{edit_paths[label]: picture for (label, _, _), picture in zip(directions, edited)},
                        reconstruction_path: reconstruction,
                        **{attention_paths[word]: picture for word, picture in maps.items()}}
            written = _write_pictures(pictures, overwrite)
        except (EditorError, BankError) as error:  # reported; the other images are still edited
            errors.append(str(error))
            continue
        results.append({"image": image, "caption": inversion.caption, "inversion_cached": inversion.cached,
                        "edits": {label: str(path) for label, path in edit_paths.items()},
                        "reconstruction": str(reconstruction_path),
                        "attention_maps": {word: str(attention_paths[word]) for word in maps},
                        "files": written})
    _report(results, errors, warnings, as_json)


@cli.command("generate-edit")
@click.argument("prompt")
@edit_options
@click.pass_context
def generate_edit(ctx, prompt, names, sources, targets, files, scale, steps, xa_guidance, guidance_scale,
                  seed, size, out_dir, overwrite, max_batch, caption_model, no_cache, compile_unet, model, device,
                  dtype, as_json):
    """Generate an image from PROMPT, then edit it with directions (no inversion needed). Writes
    generated-SEED-PROMPT~HASH.png and one file per direction."""
    import numpy as np

    from direction_bank.output_files import check_output
    from editor.edit import EditSettings
    from editor.editor import Inversion

    directions, errors = _resolve_directions(_direction_sources(ctx, names, sources, targets, files))
    out = _output_folder(out_dir)
    stem = file_label(f"generated {seed} {size} {prompt}")
    results = []
    if directions:
        generated_path = out / f"{stem}.png"
        edit_paths = {label: out / f"{stem}.{name}.png" for label, name, _ in directions}
        for path in [generated_path, *edit_paths.values()]:
            check_output(path, overwrite)
        editor = _editor(model, device, dtype, caption_model, True, compile_unet)
        directions = _check_shapes(editor, directions, errors)
    if directions:
        start = Inversion(editor.generate_noise(size, seed), prompt, False)
        edited, generated = editor.edit(start, np.stack([t[0] for _, _, t in directions]),
                                        EditSettings(steps, guidance_scale, xa_guidance, scale), negative_prompt="",
                                        max_batch=max_batch)
        pictures = {generated_path: generated,
                    **{edit_paths[label]: picture for (label, _, _), picture in zip(directions, edited)}}
        written = _write_pictures(pictures, overwrite)
        results.append({"prompt": prompt, "image": str(generated_path),
                        "edits": {label: str(edit_paths[label]) for label, _, _ in directions}, "files": written})
    _report(results, errors, [], as_json)


def _report(results, errors, warnings, as_json) -> None:
    if as_json:
        click.echo(json.dumps({"results": results, "errors": errors, "warnings": warnings}, indent=2))
    else:
        for result in results:
            for label, path in result["edits"].items():
                click.echo(f"{result['image']} + {label} -> {path}")
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    for error in errors:
        click.echo(f"Error: {error}", err=True)
    if errors:
        raise SystemExit(1)
