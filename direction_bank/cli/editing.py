"""`dbank edit`, `dbank generate-edit` and `dbank sweep`: directions from the bank (or files)
applied to images by the editor. `dbank edit` parses, opens the editor and renders; the run is
jobs.edit.run_edit, the one the studio's Run calls.

Cheap checks come first (numbers, directions, output names), then the models load. Output names
never collide: see names.file_label."""
from __future__ import annotations

import json
from pathlib import Path

import click

from direction_bank.cli.app import (
    cli, emit, json_option, open_bank, overwrite_option, require_sd_model, sd_model_option, vae_option, with_device,
)
from direction_bank.cli.editor_options import (
    caption_model_option, direction_sources, edit_options, guidance_scale_option, load_editor, no_cache_option,
    output_folder, require_captioner, size_for, size_option, steps_option,
)
from direction_bank.cli.image_inputs import check_engine, image_stems, listed_images, photos_on_disk
from direction_bank.cli.params import SEED, FiniteFloat, FloatList
from direction_bank.jobs.edit_records import record_path
from direction_bank.errors import BankError
from direction_bank.jobs.edit import (
    apply_tuning, check_shapes, edit_record, resolve_directions, settings_inside,
)
from direction_bank.jobs.outputs import make_output_folder, write_pictures, write_record
from direction_bank.names import file_label
from editor.edit import SETTING_BOUNDS
from editor.pipeline import stack_directions


@cli.command("edit")
@click.argument("images", nargs=-1, type=click.Path())
@click.option("--manifest", type=click.Path(dir_okay=False, allow_dash=True),
              help="CSV of image[,caption[,direction...]] rows (an empty caption: --caption or BLIP; directions: "
              "saved names, or none for the ones given here).")
@click.option("--caption", default=None, help="The source prompt (default: a BLIP caption of each image).")
@click.option("--no-regularise", is_flag=True, help="Plain DDIM inversion (no noise regularisation).")
@click.option("--attention-map", "attention_words", multiple=True,
              help="Also save where the reconstruction attends to this caption word, as a colour map over "
              "the photo (STEM.attention-WORD.png) and in grey (STEM.attention-WORD.grey.png); repeatable.")
@click.option("--sheet", is_flag=True,
              help="Also write a contact sheet: a row per image, columns input, reconstruction, each direction.")
@click.option("--batch-images", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Images whose passes share one UNet batch (same size and number of directions).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this process; ray: a Ray Data actor pool, one editor per GPU (extra [ray]).")
@click.option("--address", default=None, help="With --engine ray: an existing cluster (default: a local one).")
@click.option("--connect-timeout", type=FiniteFloat(0.1, 3600), default=10.0, show_default=True,
              help="With --address: seconds to wait for the cluster to answer.")
@click.option("--workers", type=click.IntRange(1, 1024), default=None,
              help="With --engine ray: editors in the pool (default: one per GPU, else one).")
@click.option("--like", type=click.Path(dir_okay=False),
              help="Repeat the edit a dbank PNG carries: its direction (the same version, by fingerprint), caption, "
              "scale, guidances, steps, size, seed and model, for each option not given here.")
@caption_model_option
@no_cache_option
@edit_options
@click.pass_context
def edit_command(ctx, images, manifest, caption, no_regularise, attention_words, sheet, batch_images, engine, address,
                 connect_timeout, workers, like, caption_model, no_cache, names, sources, targets, files, scale, steps,
                 xa_guidance, guidance_scale, seed, size, out_dir, overwrite, max_batch, compile_unet, model, vae,
                 device, dtype, as_json):
    """Edit IMAGES (files, or folders of images) or a --manifest with directions from the bank:
    invert each (cached), then guided editing, several images per batch. Writes
    STEM.DIRECTION.png (the settings inside, as 'parameters'), STEM.reconstruction.png,
    STEM.attention-WORD.png and a record per image. With a folder or a manifest a rerun skips the
    images whose outputs all exist (resumable)."""
    if like:
        given = {name: ctx.get_parameter_source(name) not in (click.core.ParameterSource.DEFAULT,
                                                              click.core.ParameterSource.DEFAULT_MAP)
                 for name in ("steps", "guidance_scale", "seed", "model")}
        liked = _like(ctx, like, bool(names or targets or files))
        _check_liked_model(like, liked["model"], model, given["model"])
        if caption is None:
            _say_liked_caption(like, liked, images, manifest)
        names = names or liked["names"]
        caption = caption if caption is not None else liked["caption"]
        scale = scale if scale is not None else liked["scale"]
        xa_guidance = xa_guidance if xa_guidance is not None else liked["xa_guidance"]
        size = size or liked["size"]
        steps, guidance_scale, seed = (
            value if given[name] else liked[name] for name, value in
            (("steps", steps), ("guidance_scale", guidance_scale), ("seed", seed)))

    from direction_bank.jobs.edit import Engine, EditRun, PhotoToEdit, run_edit
    from direction_bank.progress import progress_counter
    from editor.edit import EditSettings

    check_engine(engine, address, connect_timeout)
    listed = listed_images(images, manifest, caption, bool(names or targets or files))
    need_captions = any(c is None for _, c, _ in photos_on_disk(listed))
    if need_captions:
        require_captioner(caption_model)
    resumable = bool(manifest) or any(Path(arg).is_dir() for arg in images)
    given = names or files
    common, errors = (resolve_directions(direction_sources(ctx, names, (), (), files)) if given
                      else ([], []))
    own_names = sorted({name for _, _, own in listed for name in own})
    own, own_errors = (resolve_directions(direction_sources(ctx, own_names, (), (), ())) if own_names
                       else ([], []))
    errors += own_errors
    if not given and not own_names and not targets:
        raise click.UsageError("name at least one --direction, --to word or --direction-file")
    out = output_folder(out_dir)
    word_labels, chosen_words = [[] for _ in listed], []
    if targets:  # edit by a word: a saved direction, the bank's concepts, or the word-swap
        from direction_bank.cli.word_edits import word_edits

        listed, word_labels, words, word_errors, chosen_words = word_edits(
            ctx, listed, sources, targets, model, caption_model, device, dtype)
        own += [entry for entry in words if entry.label not in {e.label for e in own}]
        errors += word_errors
    tuned, scale, xa_guidance, notes = apply_tuning(common + own, scale, xa_guidance)
    common, own = tuned[: len(common)], tuned[len(common) :]
    for note in notes:
        click.echo(f"note: {note}", err=True)
    by_name = {entry.label: entry for entry in own}
    editor = None
    if common or own:
        size = size_for(model, size)
    if (common or own) and engine == "ray":  # the workers load the model; here its configs will do
        from editor.pipeline import DirectionShape

        require_sd_model(model)
        editor = DirectionShape(model)
    elif common or own:
        editor = load_editor(model, device, dtype, caption_model, no_cache, compile_unet, vae=vae)
        common = check_shapes(editor, common, errors)
        by_name = {entry.label: entry for entry in check_shapes(editor, list(by_name.values()), errors)}
    photos = [PhotoToEdit(image, image_caption,
                          ([by_name[name] for name in wanted if name in by_name] if wanted else common)
                          + [by_name[label] for label in labels if label in by_name], stem)
              for (image, image_caption, wanted), labels, stem
              in zip(listed, word_labels, image_stems([image for image, _, _ in listed]))]
    run = EditRun(model, EditSettings(steps, guidance_scale, xa_guidance, scale), size, seed, out,
                  not no_regularise, tuple(attention_words), overwrite, resumable)
    results, sheet_rows = [], []

    def edited(image):
        from editor.pictures import photo_at

        results.append({"order": image.order, "image": image.image, "caption": image.caption,
                        "inversion_cached": image.cached,
                        "edits": {label: str(path) for label, path, _ in image.edits},
                        "reconstruction": str(image.reconstruction[0]),
                        "attention_maps": {word: str(maps[0]) for word, maps in image.attention.items()},
                        "attention_maps_grey": {word: str(maps[2]) for word, maps in image.attention.items()},
                        "record": str(image.record), "files": image.files})
        if sheet:
            sheet_rows.append({"order": image.order, "name": Path(image.image).name, "caption": image.caption,
                               "input": _thumbnail(photo_at(image.image, image.reconstruction[1].size)),
                               "reconstruction": _thumbnail(image.reconstruction[1]),
                               "edits": {label: _thumbnail(picture) for label, _, picture in image.edits}})

    bar = progress_counter(sum(bool(photo.directions) for photo in photos) if editor is not None else 0,
                           desc="images", unit="img")
    report = run_edit(editor, run, photos if editor is not None else [],
                      Engine(engine, batch_images, max_batch, address, workers, device, dtype, caption_model, vae),
                      on_image=edited, counter=bar)
    bar.close()
    errors += report.errors
    warnings = report.warnings
    results.sort(key=lambda result: result.pop("order"))  # batches finish by size, not in input order
    written_sheet = None
    if sheet and sheet_rows:
        written_sheet = _write_sheet(out, sheet_rows, overwrite, errors)
    if report.skipped:
        warnings.append(f"skipped {report.skipped} images whose outputs exist (done before; --overwrite to redo them)")
    warnings += _cache_warnings(editor)
    _report(results, errors, warnings, as_json, {**({"sheet": written_sheet} if sheet else {}),
                                                 **({"words": [c.as_dict() for c in chosen_words]} if targets else {})})


def _check_liked_model(path: str, liked: str, model: str, named: bool) -> None:
    """A PNG never chooses the model: one the user did not name (--model, DBANK_MODEL) is never
    loaded or downloaded because a picture names it. Another model than the picture's is one line
    when it is only the default, and a note when the user named it."""
    if liked == model:
        return
    if not named:
        raise BankError(f"{path} was made with the model {liked!r}, and this edit would use {model!r}: name "
                        f"the model with --model ({liked} repeats the edit)")
    click.echo(f"note: {Path(path).name} was made with the model {liked!r}; editing with {model!r} (--model)",
               err=True)


def _say_liked_caption(path: str, liked: dict, images, manifest) -> None:
    """A note on stderr when the picture's caption is used for another photo than its own."""
    own = liked["input"]
    if manifest or any(Path(image).name != own for image in images):
        click.echo(f"note: captioning with {Path(path).name}'s caption {liked['caption']!r}, written for "
                   f"{own}; pass --caption to caption this photo", err=True)


def _like(ctx, path: str, directions_given: bool) -> dict:
    """The settings of the edit a dbank PNG carries (edit_records.read_parameters), its direction
    found in the bank by name and fingerprint: the current version, or the older one that has it
    (said on stderr); one line when no version of it is in the bank."""
    from direction_bank.jobs.edit_records import read_parameters
    from direction_bank.errors import UnknownDirection

    data, entry = read_parameters(path)
    liked = {key: data[key] for key in ("caption", "steps", "guidance_scale", "seed", "model", "size", "input")}
    liked.update(scale=entry.scale, xa_guidance=entry.xa_guidance, names=())
    if directions_given:
        return liked
    try:
        reference, current = open_bank(ctx, read_only=True).version_with_fingerprint(entry.direction, entry.fingerprint)
    except UnknownDirection as error:
        raise BankError(f"{path}: {error}") from None
    if not current:
        click.echo(f"note: {entry.direction!r} has changed since; using version {reference.rsplit('@', 1)[1]}, the "
                   f"one {Path(path).name} was edited with", err=True)
    liked["names"] = (reference,)
    return liked


def _thumbnail(picture, side: int = 256):
    copy = picture.copy()
    copy.thumbnail((side, side))
    return copy


def _write_sheet(out: Path, rows: list[dict], overwrite: bool, errors: list[str]) -> str | None:
    """One contact sheet for the call, named after what it shows (so calls never share one)."""
    import hashlib

    from editor.pictures import contact_sheet

    rows.sort(key=lambda row: row["order"])
    labels = list(dict.fromkeys(label for row in rows for label in row["edits"]))
    key = json.dumps([[row["name"], row["caption"], list(row["edits"])] for row in rows])
    path = out / f"sheet-{hashlib.sha256(key.encode()).hexdigest()[:10]}.png"
    try:
        return write_pictures({path: contact_sheet(rows, labels)}, overwrite)[0]
    except BankError as error:
        errors.append(str(error))
        return None


@cli.command("generate-edit")
@click.argument("prompt")
@edit_options
@click.pass_context
def generate_edit(ctx, prompt, names, sources, targets, files, scale, steps, xa_guidance, guidance_scale,
                  seed, size, out_dir, overwrite, max_batch, compile_unet, model, vae, device, dtype, as_json):
    """Generate an image from PROMPT, then edit it with directions (no inversion needed). Writes
    generated-SEED-SIZE-PROMPT.png and generated-SEED-SIZE-PROMPT.DIRECTION.png per direction
    (the stem shortened, with ~ and a hash, when the prompt is not a plain file name), each edit
    with its settings inside (dbank edit --like repeats them on a photo)."""

    from direction_bank.output_files import check_output
    from editor.edit import EditSettings
    from editor.editor import Inversion

    directions, errors = resolve_directions(direction_sources(ctx, names, sources, targets, files))
    out = output_folder(out_dir)
    directions, scale, xa_guidance, notes = apply_tuning(directions, scale, xa_guidance)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    if directions:
        size = size_for(model, size)
    stem = file_label(f"generated {seed} {size} {prompt}")
    results = []
    if directions:
        generated_path = out / f"{stem}.png"
        edit_paths = {label: out / f"{stem}.{name}.png" for label, name, *_ in directions}
        written_record = record_path(out, stem, [[entry.label, entry.scale] for entry in directions],
                                     {"model": model, "size": size, "seed": seed, "steps": steps,
                                      "guidance_scale": guidance_scale, "xa_guidance": xa_guidance, "scale": scale,
                                      "regularised": False, "generated": True})
        for path in [generated_path, *edit_paths.values(), written_record] if out.is_dir() else []:
            check_output(path, overwrite)
        editor = load_editor(model, device, dtype, None, True, compile_unet, vae=vae)
        directions = check_shapes(editor, directions, errors)
    if directions:
        make_output_folder(out)
        start = Inversion(editor.generate_noise(size, seed), prompt, False)
        tokens, pooled = stack_directions([entry.parts for entry in directions])
        settings = EditSettings(steps, guidance_scale, xa_guidance, scale)
        edited, generated = editor.edit(start, tokens, settings, negative_prompt="", max_batch=max_batch,
                                        pooled=pooled)
        # each edit carries its settings, as dbank edit's do, and a record beside them says what
        # each picture is, so dbank eval scores the folder (the generated picture is the input
        # and the reconstruction alike: it was never inverted)
        record = edit_record(str(generated_path.resolve()), prompt, model, size, seed, settings, False,
                             directions, [edit_paths[entry.label].name for entry in directions], generated_path.name)
        settings_inside(record, edited)
        pictures = {generated_path: generated,
                    **{edit_paths[label]: picture for (label, *_), picture in zip(directions, edited)}}
        written = write_pictures(pictures, overwrite)
        written.append(write_record(written_record, record, overwrite))
        results.append({"prompt": prompt, "image": str(generated_path), "record": str(written_record),
                        "edits": {label: str(edit_paths[label]) for label, *_ in directions}, "files": written})
    _report(results, errors, [], as_json)


@cli.command("sweep")
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--direction", "name", required=True, help="A saved direction.")
@click.option("--scale", "scales", type=FloatList(*SETTING_BOUNDS["scale"]), default="0.5,1,1.5", show_default=True,
              help="Scales of the direction: the grid's columns.")
@click.option("--xa-guidance", "guidances", type=FloatList(*SETTING_BOUNDS["xa_guidance"]), default="0.05,0.1,0.2", show_default=True,
              help="Cross-attention guidance steps: the grid's rows.")
@click.option("--caption", default=None, help="The source prompt (default: a BLIP caption).")
@steps_option
@guidance_scale_option
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the inversion's shifts.")
@size_option
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the grid.")
@overwrite_option
@caption_model_option
@no_cache_option
@sd_model_option
@vae_option
@with_device
@json_option
@click.pass_context
def sweep(ctx, image, name, scales, guidances, caption, steps, guidance_scale, seed, size, out_dir, overwrite,
          caption_model, no_cache, model, vae, device, dtype, as_json):
    """Edit IMAGE with one direction over a grid of settings (--scale columns, --xa-guidance
    rows) and write one labelled grid: the image is inverted once and the reference pass kept,
    and each row's scales run in one batch."""
    import hashlib


    from direction_bank.output_files import check_output
    from editor.edit import EditSettings
    from editor.inversion import Regularisation
    from editor.pictures import labelled_grid

    photos_on_disk([(image, caption, [])])
    if caption is None:
        require_captioner(caption_model)
    (directions, errors) = resolve_directions(direction_sources(ctx, (name,), (), (), ()))
    if errors:
        raise BankError(errors[0])
    label, file_name, tensor, *_ = directions[0]
    out = output_folder(out_dir)
    size = size_for(model, size)
    key = json.dumps([scales, guidances, caption, steps, guidance_scale, seed, size])
    path = out / f"{file_label(Path(image).stem)}.sweep-{file_name}-{hashlib.sha256(key.encode()).hexdigest()[:8]}.png"
    if out.is_dir():
        check_output(path, overwrite)
    editor = load_editor(model, device, dtype, caption_model, no_cache, vae=vae)
    check_shapes(editor, directions, errors)
    if errors:
        raise BankError(errors[0])
    inversion = editor.invert_file(image, caption, size, steps, Regularisation(), seed)
    for warning in _cache_warnings(editor):
        click.echo(f"warning: {warning}", err=True)
    scaled, pooled = stack_directions([tuple(None if part is None else scale * part for part in tensor)
                                       for scale in scales])
    rows = []
    for guidance in guidances:
        pictures, _ = editor.edit(inversion, scaled, EditSettings(steps, guidance_scale, guidance, 1.0),
                                  keep_reference=True, pooled=pooled)
        rows.append(pictures)
    grid = labelled_grid(rows, [f"scale {s:g}" for s in scales], [f"xa {g:g}" for g in guidances],
                         title=f"{Path(image).name} + {label}: {inversion.caption}")
    make_output_folder(out)
    written = write_pictures({path: grid}, overwrite)[0]
    emit(as_json, lambda: {"image": image, "direction": label, "caption": inversion.caption, "grid": written,
                           "scales": list(scales), "xa_guidance": list(guidances)},
         lambda: [f"{image} ({inversion.caption!r}) + {label}: {len(guidances)}x{len(scales)} grid -> {written}"])


def _cache_warnings(editor) -> list[str]:
    """What the editor's inversion cache dropped as bad entries (none without a cache)."""
    cache = getattr(editor, "cache", None)
    return list(cache.dropped) if cache is not None else []


def _report(results, errors, warnings, as_json, extra: dict | None = None) -> None:
    """Every file written and the caption (or prompt) used, per image; JSON for scripts."""
    extra = extra or {}
    if as_json:
        click.echo(json.dumps({"results": results, "errors": errors, "warnings": warnings, **extra}, indent=2))
    else:
        for result in results:
            source = f"caption {result['caption']!r}" if "caption" in result else f"prompt {result['prompt']!r}"
            click.echo(f"{result['image']} ({source}):")
            for path in result["files"]:
                click.echo(f"  {path}")
        if extra.get("sheet"):
            click.echo(f"contact sheet: {extra['sheet']}")
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    for error in errors:
        click.echo(f"Error: {error}", err=True)
    if errors:
        raise SystemExit(1)
