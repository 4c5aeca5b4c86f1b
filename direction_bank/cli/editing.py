"""`dbank edit`, `dbank generate-edit` and `dbank sweep`: directions from the bank (or files)
applied to images by the editor. `dbank edit` parses, opens the editor and renders; the run is
jobs.edit.run_edit, the one the studio's Run calls.

Cheap checks come first (numbers, directions, output names), then the models load. Output names
never collide: see names.file_label."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click

from direction_bank.cli.app import (
    cli, emit, json_option, open_bank, overwrite_option, require_sd_model, sd_model_option, vae_option, with_device,
)
from direction_bank.cli.params import SEED, FiniteFloat, FloatList, ImageSize
from direction_bank.edit_records import record_path
from direction_bank.errors import BankError
from direction_bank.jobs.edit import (
    apply_tuning, check_shapes, direction_parts, edit_record, resolve_directions, saved_directions, settings_inside,
)
from direction_bank.jobs.outputs import make_output_folder, write_pictures, write_record
from direction_bank.names import file_label
from editor.edit import SETTING_BOUNDS
from editor.pipeline import stack_directions


def _direction_sources(ctx, names, sources, targets, files):
    """[(label, load)] for every direction asked for; load() gives ((tokens [1, 77, D], pooled
    [1, P] for SDXL or None), source concept, target concept, tuning or None)."""
    from direction_bank.files import read_shared_file

    if len(sources) != len(targets):
        raise click.UsageError("give --from and --to in pairs")
    if not (names or sources or files):
        raise click.UsageError("name at least one --direction, --from/--to pair or --direction-file")
    bank = open_bank(ctx, read_only=True) if (names or sources) else None
    wanted = saved_directions(bank, names)
    wanted += [(f"{s}2{t}", lambda s=s, t=t: direction_parts(bank.diff(s, t))) for s, t in zip(sources, targets)]

    def from_file(path):
        shared = read_shared_file(path)
        if shared.kind != "direction":
            raise BankError(f"{path}: a {shared.kind} file, not a direction")
        source, target = ((shared.meta.get(role) or {}).get("name") for role in ("source", "target"))
        return ((shared.tensors["direction"], shared.tensors.get("direction_pooled")), source, target,
                shared.meta.get("tuning"))

    wanted += [(Path(path).stem, lambda path=path: from_file(path)) for path in files]
    return wanted


def _size_for(model: str, size: int | None) -> int:
    """--size, or the model's own default (editor.pipeline.default_size), read from its configs."""
    from editor.pipeline import default_size

    if size:
        return size
    require_sd_model(model)
    return default_size(model)


def _require_captioner(caption_model: str) -> None:
    """Fail in one line, loading nothing, when a caption is needed and BLIP cannot be had."""
    from direction_bank.model_check import require_model

    require_model(caption_model, "the captioning model", "pass --caption, or set --caption-model to a local BLIP folder")


def _editor(model, device, dtype, caption_model, no_cache, compile=False, vae=None):
    import diffusers.utils.logging  # noqa: F401  (so that it can be quietened)
    import transformers.utils.logging  # noqa: F401

    from direction_bank.cli.app import cancel_on_ctrl_c, quiet_third_parties
    from direction_bank.model_check import require_model
    from direction_bank.progress import progress_bar
    from editor.cache import InversionCache
    from editor.editor import Editor

    quiet_third_parties()
    require_sd_model(model)
    cache = None if no_cache else InversionCache(os.environ.get("DBANK_CACHE") or None)
    if vae:
        require_model(vae, "the VAE", "set --vae or DBANK_VAE to a local AutoencoderKL folder")
    editor = Editor(model, device, dtype, cache, caption_model,
                    progress_bar=lambda steps, **kw: progress_bar(steps, **kw), compile=compile, vae=vae)
    cancel_on_ctrl_c(editor)
    return editor


def _output_folder(out_dir: str) -> Path:
    """-o, checked but not made: a writable folder, or one that can be made in a writable folder
    (make_output_folder makes it once the work is about to start, so a failure leaves none)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BankError(f"-o {out_dir}: not a folder")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise BankError(f"cannot make the folder {out_dir}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BankError(f"the folder {out_dir} is not writable" if existing == out
                        else f"cannot make the folder {out_dir}: {existing} is not writable")
    return out


size_option = click.option("--size", type=ImageSize(), default=None,
                           help="Longer image side, a multiple of 8 up to 4096 [default: the model's own, its UNet's sample "
                           "size times the VAE's factor: 512 for SD 1.x, 768 for SD 2.x, 1024 for SDXL].")


steps_option = click.option("--steps", type=click.IntRange(*SETTING_BOUNDS["steps"]), default=50, show_default=True,
                            help="DDIM steps.")
guidance_scale_option = click.option("--guidance-scale", type=FiniteFloat(*SETTING_BOUNDS["guidance_scale"]),
                                     default=5.0, show_default=True, help="Classifier-free guidance.")
bootstrap_seed_option = click.option("--bootstrap-seed", type=SEED, default=0, show_default=True,
                                     help="Seed of the bootstrap intervals.")

caption_model_option = click.option("--caption-model", default="Salesforce/blip-image-captioning-base",
                                    show_default=True, help="BLIP model for captions when --caption is not given.")
no_cache_option = click.option("--no-cache", is_flag=True, help="Do not read or write the inversion cache.")


def edit_options(func):
    """Options shared by edit and generate-edit (edit adds its captioning and cache options)."""
    options = [
        click.option("--direction", "names", multiple=True, help="A saved direction (repeatable)."),
        click.option("--from", "sources", multiple=True, help="Source concept of a direction made on the fly."),
        click.option("--to", "targets", multiple=True, help="Target concept (pairs with --from)."),
        click.option("--direction-file", "files", multiple=True, type=click.Path(dir_okay=False),
                     help="A dbank direction file (repeatable)."),
        click.option("--scale", type=FiniteFloat(*SETTING_BOUNDS["scale"]), default=None,
                     help="Multiplies every direction [default: each direction's tuned scale (dbank tune), else 1]."),
        steps_option,
        click.option("--xa-guidance", type=FiniteFloat(*SETTING_BOUNDS["xa_guidance"]), default=None,
                     help="Cross-attention guidance step [default: the directions' tuned one (dbank tune), else 0.1]."),
        guidance_scale_option,
        click.option("--seed", type=SEED, default=0, show_default=True,
                     help="Seed (inversion shifts, generated noise)."),
        size_option,
        click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
                     help="Folder for the images."),
        overwrite_option,
        click.option("--max-batch", type=click.IntRange(1, 1024), default=None,
                     help="Directions per batch (default: all, halved whenever the GPU runs out of memory)."),
        click.option("--compile", "compile_unet", is_flag=True,
                     help="torch.compile the UNet (slow first run, cached on disk; eager by default)."),
        sd_model_option,
        vae_option,
    ]
    for option in reversed(options):
        func = option(func)
    return with_device(json_option(func))


def _image_stems(images) -> list[str]:
    """A file stem per input row; two inputs with the same name (d1/x.png, d2/x.png) get
    stems from their whole paths, and one image on several rows (a manifest giving it two
    captions) a stem per row, so their outputs never meet."""
    from collections import Counter

    stems = [Path(image).stem for image in images]
    stem_counts, image_counts = Counter(stems), Counter(images)  # (a folder may hold 100,000 images)
    return [file_label(stem, part=True) if stem_counts[stem] == 1
            else file_label(str(Path(image)), part=True) if image_counts[image] == 1
            else file_label(f"{image}#{row}", part=True)
            for row, (image, stem) in enumerate(zip(images, stems), 1)]


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def _images_in(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def listed_images(images, manifest: str | None, caption: str | None,
                  directions_given: bool = True) -> list[tuple[str, str | None, list[str]]]:
    """(image, caption or None, its own direction names) for each image file, each image in a
    folder, and each --manifest row (see _read_manifest); a usage error when there are none."""
    listed = [(str(image), caption, []) for arg in images
              for image in (_images_in(Path(arg)) if Path(arg).is_dir() else [arg])]
    rows = _read_manifest(manifest, directions_given) if manifest else []
    listed += [(image, own or caption, wanted) for image, own, wanted in rows]
    if not listed:
        raise click.UsageError("give IMAGES, a folder of images, or --manifest")
    return listed


def check_engine(engine: str, address: str | None, timeout: float) -> None:
    """With --engine ray: Ray installed, and a given --address answering, before anything
    loads (a dead address never hangs)."""
    if engine == "ray":
        from editor.runners.ray_address import check_ray_address, check_ray_installed

        check_ray_installed()
        if address:
            check_ray_address(address, timeout)


MAX_MANIFEST_LINE = 65_536  # characters; a caption is 77 CLIP tokens, a few hundred characters


def _read_manifest(path: str, directions_given: bool = True) -> list[tuple[str, str | None, list[str]]]:
    """(image, caption or None, direction names) per CSV row 'image[,caption[,direction...]]';
    image paths are relative to the manifest's folder; a first row starting 'image' is a header.
    Each line is one row: a quote left open, a line past MAX_MANIFEST_LINE characters, or a row
    naming no direction when the command gives none, is refused with its line number before any
    work (never skipped without a word); a missing image is the run's error, naming it."""
    import csv

    from direction_bank.text_input import read_text

    rows = []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if len(line) > MAX_MANIFEST_LINE:
            raise BankError(f"{path}, line {number}: {len(line)} characters (at most {MAX_MANIFEST_LINE} per row)")
        try:
            [row] = list(csv.reader([line], strict=True)) or [[]]
        except csv.Error as error:
            raise BankError(f"{path}, line {number}: not a CSV row ({error}); quote a field whole, "
                            "or leave quotes out") from None
        if not row or not row[0].strip() or row[0].strip().startswith("#"):
            continue
        if number == 1 and row[0].strip().lower() == "image":
            continue
        image = Path(path).parent / row[0].strip()
        caption = row[1].strip() if len(row) > 1 and row[1].strip() else None
        names = [name.strip() for name in row[2:] if name.strip()]
        if not names and not directions_given:
            raise BankError(f"{path}, line {number}: {row[0].strip()} names no direction, and the command gives "
                            "none; add one to the row, or give --direction")
        rows.append((str(image), caption, names))
    if not rows:
        raise BankError(f"{path}: no images listed")
    return rows


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
        liked = _like(ctx, like, bool(names or sources or files))
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
    listed = listed_images(images, manifest, caption, bool(names or sources or files))
    need_captions = any(c is None for _, c, _ in listed)
    if need_captions:
        _require_captioner(caption_model)
    resumable = bool(manifest) or any(Path(arg).is_dir() for arg in images)
    given = names or sources or files
    common, errors = (resolve_directions(_direction_sources(ctx, names, sources, targets, files)) if given
                      else ([], []))
    own_names = sorted({name for _, _, own in listed for name in own})
    own, own_errors = (resolve_directions(_direction_sources(ctx, own_names, (), (), ())) if own_names
                       else ([], []))
    errors += own_errors
    if not given and not own_names:
        raise click.UsageError("name at least one --direction, --from/--to pair or --direction-file")
    out = _output_folder(out_dir)
    tuned, scale, xa_guidance, notes = apply_tuning(common + own, scale, xa_guidance)
    common, own = tuned[: len(common)], tuned[len(common) :]
    for note in notes:
        click.echo(f"note: {note}", err=True)
    by_name = {entry.label: entry for entry in own}
    editor = None
    if common or own:
        size = _size_for(model, size)
    if (common or own) and engine == "ray":  # the workers load the model; here its configs will do
        from editor.pipeline import DirectionShape

        require_sd_model(model)
        editor = DirectionShape(model)
    elif common or own:
        editor = _editor(model, device, dtype, caption_model, no_cache, compile_unet, vae=vae)
        common = check_shapes(editor, common, errors)
        by_name = {entry.label: entry for entry in check_shapes(editor, list(by_name.values()), errors)}
    photos = [PhotoToEdit(image, image_caption,
                          [by_name[name] for name in wanted if name in by_name] if wanted else common, stem)
              for (image, image_caption, wanted), stem in zip(listed, _image_stems([image for image, _, _ in listed]))]
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
    _report(results, errors, warnings, as_json, {"sheet": written_sheet} if sheet else {})


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
    from direction_bank.edit_records import read_parameters
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

    directions, errors = resolve_directions(_direction_sources(ctx, names, sources, targets, files))
    out = _output_folder(out_dir)
    directions, scale, xa_guidance, notes = apply_tuning(directions, scale, xa_guidance)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    if directions:
        size = _size_for(model, size)
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
        editor = _editor(model, device, dtype, None, True, compile_unet, vae=vae)
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

    if caption is None:
        _require_captioner(caption_model)
    (directions, errors) = resolve_directions(_direction_sources(ctx, (name,), (), (), ()))
    if errors:
        raise BankError(errors[0])
    label, file_name, tensor, *_ = directions[0]
    out = _output_folder(out_dir)
    size = _size_for(model, size)
    key = json.dumps([scales, guidances, caption, steps, guidance_scale, seed, size])
    path = out / f"{file_label(Path(image).stem)}.sweep-{file_name}-{hashlib.sha256(key.encode()).hexdigest()[:8]}.png"
    if out.is_dir():
        check_output(path, overwrite)
    editor = _editor(model, device, dtype, caption_model, no_cache, vae=vae)
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
