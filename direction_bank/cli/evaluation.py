"""`dbank eval`: how good are the edits? Scores an edit folder from its records, or runs the edits
itself (directions × settings, with the word-swap baseline) and scores them; writes a report."""
from __future__ import annotations

from pathlib import Path

import click

from direction_bank.cli.app import (
    cli, emit, eval_model_options, json_option, overwrite_option, sd_model_option, vae_option, with_device,
)
from direction_bank.cli.editor_options import (
    bootstrap_seed_option, caption_model_option, direction_sources, guidance_scale_option, load_editor, no_cache_option,
    output_folder, require_captioner, size_for, size_option, steps_option,
)
from direction_bank.cli.image_inputs import check_engine, image_stems, images_in, listed_images, photos_on_disk
from direction_bank.cli.params import SEED, FiniteFloat, FloatList
from direction_bank.errors import BankError, DirectionChanged
from direction_bank.jobs.edit import Resolved, check_shapes, parts_fingerprint, resolve_directions
from direction_bank.jobs.evaluate import RECONSTRUCTION, WORD_SWAP
from direction_bank.jobs.outputs import make_output_folder
from editor.edit import SETTING_BOUNDS

BASELINES = (WORD_SWAP, RECONSTRUCTION)


def _require_eval_models(clip_model: str, dino_model: str) -> None:
    """One line, before any edit runs or model loads, when CLIP or DINO cannot be had."""
    from direction_bank.model_check import require_model

    require_model(clip_model, "the CLIP model", "set --clip-model or DBANK_CLIP_MODEL to a local CLIP folder")
    require_model(dino_model, "the DINO model", "set --dino-model or DBANK_DINO_MODEL to a local DINO-ViT folder")


def _eval_baselines(ctx, param, value):
    chosen = tuple(dict.fromkeys(value))
    if "none" in chosen and len(chosen) > 1:
        raise click.BadParameter("'none' goes alone")
    return () if chosen == ("none",) else chosen or BASELINES


@cli.command("eval")
@click.argument("inputs", nargs=-1, type=click.Path())
@click.option("--manifest", type=click.Path(dir_okay=False, allow_dash=True),
              help="Run the edits of a CSV of image[,caption[,direction...]] rows (as dbank edit reads it).")
@click.option("--direction", "names", multiple=True, help="A saved direction to edit with and score (repeatable).")
@click.option("--from", "sources", multiple=True, help="Source concept of a direction made on the fly.")
@click.option("--to", "targets", multiple=True, help="Target concept (pairs with --from).")
@click.option("--direction-file", "files", multiple=True, type=click.Path(dir_okay=False),
              help="A dbank direction file whose metadata names its concepts (repeatable).")
@click.option("--scale", "scales", type=FloatList(*SETTING_BOUNDS["scale"]), default="1", show_default=True,
              help="Scales of each direction to score (comma-separated).")
@click.option("--xa-guidance", "guidances", type=FloatList(*SETTING_BOUNDS["xa_guidance"]), default="0.1",
              show_default=True, help="Cross-attention guidance steps to score (comma-separated).")
@click.option("--baseline", "baselines", multiple=True, type=click.Choice([*BASELINES, "none"]),
              callback=_eval_baselines,
              help="word-swap: also edit with 'a photo of a SOURCE' -> 'a photo of a TARGET' through the same text "
              "encoder; reconstruction: also score the unedited reconstruction [default: both].")
@click.option("--caption", default=None, help="The source prompt of every image (default: a BLIP caption).")
@steps_option
@guidance_scale_option
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the edits (inversion shifts).")
@bootstrap_seed_option
@click.option("--batch-size", type=click.IntRange(1, 1024), default=16, show_default=True,
              help="Edits scored per CLIP/DINO batch.")
@size_option
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False),
              help="Folder for the edits (when eval runs them) and the report [default: the folder scored].")
@overwrite_option
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where the edits run, as for dbank edit.")
@click.option("--address", default=None, help="With --engine ray: an existing cluster (default: a local one).")
@click.option("--workers", type=click.IntRange(1, 1024), default=None, help="With --engine ray: editors in the pool.")
@eval_model_options
@caption_model_option
@no_cache_option
@sd_model_option
@vae_option
@with_device
@json_option
@click.pass_context
def eval_command(ctx, inputs, manifest, names, sources, targets, files, scales, guidances, baselines, caption, steps,
                 guidance_scale, seed, bootstrap_seed, batch_size, size, out_dir, overwrite, engine, address, workers,
                 dino_model, clip_model, caption_model, no_cache, model, vae, device, dtype, as_json):
    """Score edits: CLIP directional similarity and accuracy, DINO structure distance, and the
    change outside the source word's attention region and over the whole image. Give an edit
    output FOLDER (dbank edit wrote a record beside each image's edits), or IMAGES / a folder of
    images / --manifest with --direction (eval runs the edits itself, every --scale and
    --xa-guidance; a rerun skips the edits done). Prints per direction and setting the mean and a
    95% BCa bootstrap interval over the images (with n; fewer than 10 is said), beside the word-swap and reconstruction baselines,
    and writes eval-scores.csv, eval-summary.csv and eval-tradeoff.png (--overwrite replaces a
    report that differs)."""
    from direction_bank.jobs.edit_records import read_record, records_in
    from direction_bank.jobs.evaluate import report_paths
    from direction_bank.output_files import check_output

    runs_edits = bool(names or sources or files or manifest)
    warnings = []
    if not runs_edits:
        if len(inputs) != 1 or not Path(inputs[0]).is_dir():
            raise click.UsageError("give one edit output folder to score, or images with --direction to edit and score")
        folder = Path(inputs[0])
        records, problems = records_in(folder)
        if WORD_SWAP in baselines and not any(e.baseline == WORD_SWAP for r in records for e in r.edits):
            warnings.append(f"no word-swap baseline: the records in {folder} hold no word-swap edits (dbank edit makes "
                            "none, and scoring a folder runs no model); dbank eval PHOTOS --direction NAME -o DIR "
                            "runs the edits with both baselines (the reconstruction is scored here)")
        if problems and records:
            problems.append(f"skipped {len(problems)} of {len(problems) + len(records)} edit records in {folder} "
                            "(each said above); scored the rest")
        report_folder = output_folder(out_dir) if out_dir else folder
    else:
        listed = listed_images(inputs, manifest, caption, bool(names or sources or files))
        photos_on_disk(listed)  # before the output folder and the scoring models
        report_folder = output_folder(out_dir) if out_dir else None
        if report_folder is None:
            raise click.UsageError("-o is needed when eval runs the edits: the folder they go in")
    for path in report_paths(report_folder).values() if report_folder.is_dir() else ():
        if path.is_symlink() or (path.exists() and not path.is_file()):
            check_output(path, overwrite)  # refused before any edit runs (a file is compared when written)
    _require_eval_models(clip_model, dino_model)
    if runs_edits:
        record_paths, problems, warnings = _run_edits(
            ctx, listed, names, sources, targets, files, scales, guidances, baselines, caption, steps,
            guidance_scale, seed, size, report_folder, engine, address, workers, caption_model,
            no_cache, model, vae, device, dtype)
        records = [read_record(path) for path in record_paths]
    _score_and_report(records, problems, warnings, baselines, clip_model, dino_model, device, batch_size,
                      bootstrap_seed, report_folder, overwrite, as_json)


def _score_and_report(records, problems, warnings, baselines, clip_model, dino_model, device, batch_size, seed,
                      folder, overwrite, as_json) -> None:
    """Score the records, print the summary, write the report; exit 1 after any problem line."""
    from direction_bank.jobs.evaluate import score_records, summarise, summary_lines, write_report
    from direction_bank.progress import progress_counter
    from editor.evaluation import EditScorer
    from sd_models.precision import default_device

    scorer = EditScorer.load(clip_model, dino_model, device or default_device())
    bar = progress_counter(len(records), desc="scoring", unit="image")
    scored, skipped = score_records(records, scorer, baselines, batch_size, progress=bar)
    bar.close()
    problems = [*problems, *skipped]
    warnings = [*warnings, *filter(None, [scorer.truncation_note()])]
    if not scored:
        raise BankError("; ".join(problems[:3]) if problems else "nothing to score: no edit names its concepts")
    summary = summarise(scored, seed)
    make_output_folder(folder)
    written = write_report(folder, scored, summary, overwrite)
    models = scorer.models
    emit(as_json, lambda: {"summary": summary, "edits": [edit.row() for edit in scored], "models": models,
                           "report": written, "errors": problems, "warnings": warnings},
         lambda: [*summary_lines(summary, models), *(f"{kind}: {path}" for kind, path in written.items())])
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    for problem in problems:
        click.echo(f"Error: {problem}", err=True)
    if problems:
        raise SystemExit(1)


def _run_edits(ctx, listed, names, sources, targets, files, scales, guidances, baselines, caption, steps,
               guidance_scale, seed, size, out, engine, address, workers, caption_model, no_cache, model,
               vae, device, dtype):
    """Resolve the directions eval edits with (each must name its concepts; the word-swap ones
    added), open the editor, and run jobs.eval_edits.run_eval_edits. Returns (record paths,
    problems, warnings)."""
    from direction_bank.cli.app import load_encoder
    from direction_bank.jobs.edit import Engine, PhotoToEdit
    from direction_bank.jobs.eval_edits import run_eval_edits
    from direction_bank.jobs.evaluate import unknown_concepts, word_swap_direction
    from direction_bank.names import file_label
    from direction_bank.progress import progress_counter

    check_engine(engine, address, 10.0)
    if any(c is None for _, c, _ in photos_on_disk(listed)):
        require_captioner(caption_model)
    own_names = sorted({name for _, _, own in listed for name in own})
    resolved, problems = resolve_directions(direction_sources(ctx, (*names, *own_names), sources, targets, files))
    unknown = [entry.label for entry in resolved if not (entry.source and entry.target)]
    problems += [unknown_concepts(label, "eval") for label in unknown]
    resolved = [entry for entry in resolved if entry.source and entry.target]
    if not resolved:
        raise BankError("; ".join(problems) or "no direction to score")
    size = size_for(model, size)
    if WORD_SWAP in baselines:
        encoder = load_encoder(model, device, dtype)
        pairs = list(dict.fromkeys((entry.source, entry.target) for entry in resolved))
        swaps = [(s, t, word_swap_direction(encoder, s, t)) for s, t in pairs]
        resolved += [Resolved(f"{WORD_SWAP} {s}->{t}", file_label(f"{WORD_SWAP}-{s}-{t}", part=True), parts, s, t,
                              fingerprint=parts_fingerprint(parts)) for s, t, parts in swaps]
        del encoder
    if engine == "ray":  # the workers load the model; here its configs will do
        from editor.pipeline import DirectionShape

        editor = DirectionShape(model)
    else:
        editor = load_editor(model, device, dtype, caption_model, no_cache, vae=vae)
    resolved = check_shapes(editor, resolved, problems)
    photos = [PhotoToEdit(image, image_caption, wanted, stem)
              for (image, image_caption, wanted), stem in zip(listed, image_stems([image for image, _, _ in listed]))]
    shared = {"model": model, "size": size, "seed": seed, "steps": steps, "guidance_scale": guidance_scale,
              "regularised": True}
    paths, run_problems, warnings = run_eval_edits(
        editor, photos, resolved, scales, guidances, shared, out,
        Engine(engine, address=address, workers=workers, device=device, dtype=dtype, caption_model=caption_model,
               vae=vae),
        counter=lambda guidance, total: progress_counter(total, desc=f"editing (xa {guidance:g})", unit="img"))
    return paths, problems + run_problems, warnings


@cli.command("tune")
@click.argument("name")
@click.argument("photos", nargs=-1, required=True, type=click.Path())
@click.option("--scale", "scales", type=FloatList(*SETTING_BOUNDS["scale"]), default="0.5,1,1.5,2", show_default=True,
              help="Scales to try (comma-separated).")
@click.option("--xa-guidance", "guidances", type=FloatList(*SETTING_BOUNDS["xa_guidance"]), default="0.05,0.1,0.2",
              show_default=True, help="Cross-attention guidance steps to try (comma-separated).")
@click.option("--margin", type=FiniteFloat(0.0, 100.0), default=None,
              help="How far the chosen setting's mean structure distance may exceed the reconstruction's "
              "[default: 0.02, on the structure distance's own scale].")
@click.option("--caption", default=None, help="The source prompt of every photo (default: a BLIP caption).")
@steps_option
@guidance_scale_option
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the inversions' shifts.")
@bootstrap_seed_option
@click.option("--holdout", type=FiniteFloat(0.0, 0.9), default=None, metavar="FRACTION",
              help="Share of the photos kept out of the choice and used to score it [default: 0.5 with 4 photos "
              "or more, else 0: the scores are then in-sample, and said so].")
@click.option("--dry-run", is_flag=True, help="Report the choice without storing it on the direction.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False),
              help="Also write eval-scores.csv, eval-summary.csv and eval-tradeoff.png here.")
@overwrite_option
@size_option
@eval_model_options
@caption_model_option
@no_cache_option
@sd_model_option
@vae_option
@with_device
@json_option
@click.pass_context
def tune(ctx, name, photos, scales, guidances, margin, caption, steps, guidance_scale, seed, bootstrap_seed, holdout,
         dry_run,
         report_dir, overwrite, size, dino_model, clip_model, caption_model, no_cache, model, vae, device, dtype,
         as_json):
    """Find the settings a saved direction edits best with: edit PHOTOS (files or folders) at
    every --scale x --xa-guidance (each photo inverted once, its reference pass kept), score each
    setting against the reconstruction, and keep on the direction the one with the highest CLIP
    directional similarity whose structure distance stays within --margin of the
    reconstruction's. dbank edit then uses it when no --scale or --xa-guidance is given; show
    prints it; exported files carry it."""
    from direction_bank.cli.app import open_bank
    from direction_bank.jobs.evaluate import write_report
    from direction_bank.jobs.tune import DEFAULT_MARGIN, RULE, check_tunable, tune_direction, tuning_lines
    from direction_bank.progress import progress_counter
    from editor.evaluation import EditScorer
    from sd_models.precision import default_device

    margin = DEFAULT_MARGIN if margin is None else margin
    listed = [image for arg in photos for image in (images_in(Path(arg)) if Path(arg).is_dir() else [arg])]
    if not listed:
        raise click.UsageError("no photos: give image files or folders holding some")
    photos_on_disk([(image, caption, []) for image in listed])
    bank = open_bank(ctx, read_only=dry_run)
    direction = bank.direction(name)
    check_tunable(direction)
    report_folder = output_folder(report_dir) if report_dir else None
    if caption is None:
        require_captioner(caption_model)
    _require_eval_models(clip_model, dino_model)
    size = size_for(model, size)
    editor = load_editor(model, device, dtype, caption_model, no_cache, vae=vae)
    scorer = EditScorer.load(clip_model, dino_model, device or default_device())
    bar = progress_counter(len(listed), desc="tuning", unit="photo")
    result = tune_direction(editor, scorer, direction, [(path, caption) for path in listed], scales, guidances,
                            steps=steps, guidance_scale=guidance_scale, seed=seed, size=size, margin=margin,
                            bootstrap_seed=bootstrap_seed, holdout=holdout, progress=bar)
    bar.close()
    if scorer.truncation_note():
        click.echo(f"note: {scorer.truncation_note()}", err=True)
    written = {}
    if report_folder is not None:
        make_output_folder(report_folder)
        written = write_report(report_folder, result["scored"], result["summary"], overwrite)
    tuning, stored, changed = result["tuning"], False, None
    if tuning is not None and not dry_run:
        try:
            tuning, stored = bank.add_tuning(direction, tuning), True
        except DirectionChanged as error:
            changed = str(error)

    def lines():
        yield from tuning_lines(result, scorer.models, margin)
        if tuning is None:
            yield "no setting kept the structure within the margin; nothing stored (try smaller scales or a wider --margin)"
        else:
            yield (f"{'stored on ' + name + ' version ' + str(direction.version) if stored else 'chosen'}: "
                   f"scale {tuning['scale']:g}, xa-guidance {tuning['xa_guidance']:g}")
        if changed:
            yield changed
        yield from (f"{kind}: {path}" for kind, path in written.items())

    emit(as_json, lambda: {"direction": name, "summary": result["summary"], "held_out": result["held_out"],
                           "scores_on": result["scores_on"], "rule": RULE, "margin": margin,
                           "allowed_structure_distance": result["allowed_structure_distance"], "tuning": tuning,
                           "stored": stored, "not_stored_because": changed, "report": written}, lines)
    if tuning is None or changed:
        raise SystemExit(1)
