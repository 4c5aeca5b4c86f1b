"""The edit job both faces call (cli/editing.py, cli/evaluation.py and studio/actions.py): which
directions an edit uses (read from the bank or files, each with its fingerprint and any tuned
setting), their shapes checked against the model, the record of an edit that goes inside every
picture, and run_edit, the run itself (output names, inversion, editing here or on Ray, pictures
and records written). A face only parses its input, opens its editor and renders the outcome."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

from direction_bank.errors import BankError
from direction_bank.jobs.evaluate import RECONSTRUCTION, WORD_SWAP
from direction_bank.names import file_label

INPUT = "input"  # STEM.input.png: the photo itself, beside its edits (the studio's downloads)


class Resolved(NamedTuple):
    """A direction asked for: its label, its file-name part, (tokens [1, 77, D], pooled [1, P]
    or None), and the concepts it goes from and to where known (for edit records and eval)."""

    label: str
    name: str
    parts: tuple
    source: str | None = None
    target: str | None = None
    tuning: dict | None = None  # the settings dbank tune stored for it
    scale: float = 1.0  # what its parts were multiplied by (its tuned scale, when no scale is given)
    fingerprint: str | None = None  # SHA-256 of its unscaled parts as a bank stores them

    @property
    def baseline(self) -> str | None:
        """'word-swap' for the two-prompt direction (its label says so), None for a bank's."""
        return WORD_SWAP if self.label.startswith(WORD_SWAP) else None


def parts_fingerprint(parts) -> str:
    """SHA-256 of a direction's (tokens [1, 77, D], pooled [1, P] or None) as the bank stores
    it (DirectionResult.fingerprint: float32 little-endian, the tokens, then any pooled part)."""
    import hashlib

    from direction_bank.store.stats import tensor_to_blob

    tokens, pooled = parts
    return hashlib.sha256(tensor_to_blob(tokens) + (b"" if pooled is None else tensor_to_blob(pooled))).hexdigest()


def saved_directions(bank, names) -> list[tuple[str, Callable]]:
    """[(name, load)] for directions saved in `bank` (a name or NAME@VERSION); load() reads one
    as resolve_directions takes it."""
    return [(name, lambda name=name: direction_parts(bank.direction(name))) for name in names]


def direction_parts(direction) -> tuple:
    """((tokens, pooled), source, target, tuning) of a bank's DirectionResult."""
    return (direction.tensor, direction.pooled), direction.source, direction.target, direction.tuning


def resolve_directions(wanted, strict: bool = False) -> tuple[list[Resolved], list[str]]:
    """([Resolved], errors) of [(label, load)]: the directions that could be read, before any
    model loads (`strict`: the first that cannot is raised, as it is); each file label is
    distinct and never a reserved output name."""
    resolved, errors, used = [], [], set()
    for label, load in wanted:
        try:
            parts, source, target, tuning = load()
        except BankError as error:  # reported; the other directions still run
            if strict:
                raise
            errors.append(f"{label}: {error}")
            continue
        name = file_label(label, reserved=(RECONSTRUCTION, INPUT), part=True)
        if name in used:  # the same label twice (a saved direction and a file, say)
            name = file_label(f"{label}#{len(resolved)}", part=True)
        used.add(name)
        resolved.append(Resolved(label, name, parts, source, target, tuning, fingerprint=parts_fingerprint(parts)))
    return resolved, errors


def apply_tuning(entries: list[Resolved], scale: float | None, xa_guidance: float | None):
    """(entries, settings scale, xa guidance, notes) after jobs.tune.tuned_settings: each entry's
    parts multiplied by its own scale (its tuned one when no scale is given)."""
    from direction_bank.jobs.tune import tuned_settings

    scales, scale, xa_guidance, notes = tuned_settings([(e.label, e.tuning) for e in entries], scale, xa_guidance)
    entries = [entry._replace(parts=tuple(None if part is None else own * part for part in entry.parts), scale=own)
               if own != 1.0 else entry for entry, own in zip(entries, scales)]
    return entries, scale, xa_guidance, notes


def check_shapes(editor, resolved: list[Resolved], errors: list[str] | None = None) -> list[Resolved]:
    """The directions that fit the model's text encoder; each other one is appended to `errors`
    (without a list, the first is raised)."""
    from editor.pipeline import EditorError

    fitting = []
    for entry in resolved:
        try:
            editor.check_direction(entry.label, *entry.parts)
            fitting.append(entry)
        except EditorError as error:
            if errors is None:
                raise
            errors.append(f"{entry.label}: {error}")
    return fitting


def edit_record(image: str, caption: str, model: str, size: int, seed: int, settings, regularised: bool,
                chosen: list[Resolved], files: list[str], reconstruction: str = "", masks: dict | None = None):
    """The record of one image's edits (edit_records.EditRecord): each chosen direction with the
    file it went to, its concepts, its fingerprint and the scale it was used at (the settings'
    scale times its own)."""
    from direction_bank.jobs.edit_records import EditEntry, EditRecord

    edits = [EditEntry(entry.label, file, entry.label, entry.source, entry.target, settings.scale * entry.scale,
                       settings.xa_guidance, entry.baseline, entry.fingerprint) for entry, file in zip(chosen, files)]
    return EditRecord(image, caption, model, size, seed, settings.steps, settings.guidance_scale, regularised,
                      reconstruction, edits, masks or {})


def settings_inside(record, pictures) -> None:
    """Put each edit's settings inside its picture (the 'parameters' PNG chunk, as A1111 keeps
    them), in the order of the record's edits."""
    from direction_bank.jobs.edit_records import parameters_of

    for entry, picture in zip(record.edits, pictures):
        picture.info["parameters"] = parameters_of(record, entry)


@dataclass
class EditRun:
    """What every image of an edit job shares: the model and settings (kept in each record and
    hashed into its name), the attention words, the output folder, and whether outputs there
    may be replaced (`overwrite`) or an earlier run's finished images skipped (`resumable`)."""

    model: str
    settings: object  # editor.edit.EditSettings
    size: int
    seed: int
    out: Path
    regularised: bool = True
    attention_words: tuple = ()
    overwrite: bool = False
    resumable: bool = False
    # records name the photo by its file name alone (the studio's downloads name no server path)
    photo_by_name: bool = False

    def record_settings(self) -> dict:
        """The settings a record's file name is hashed from (edit_records.record_path)."""
        s = self.settings
        return {"model": self.model, "size": self.size, "seed": self.seed, "steps": s.steps,
                "guidance_scale": s.guidance_scale, "xa_guidance": s.xa_guidance, "scale": s.scale,
                "regularised": self.regularised}


@dataclass
class Engine:
    """Where the model loops run: "local" (the editor given, `batch_images` images a UNet
    batch, at most `max_batch` directions) or "ray" (an actor pool of `workers` editors, each
    loading the model with `device`, `dtype`, `caption_model` and `vae`, at `address`)."""

    kind: str = "local"
    batch_images: int = 4
    max_batch: int | None = None
    address: str | None = None
    workers: int | None = None
    device: str | None = None
    dtype: str = "auto"
    caption_model: str | None = None
    vae: str | None = None


class PhotoToEdit(NamedTuple):
    """One input row: the image file, its caption (None: BLIP writes one), the directions it
    gets, the stem of its output names, and an inversion made before (None: made now)."""

    image: str
    caption: str | None
    directions: list
    stem: str
    inversion: object = None


@dataclass
class EditedImage:
    """One image's finished edit, its pictures written: its directions (Resolved), (label, path,
    picture) per direction, the reconstruction's (path, picture), per attention word (overlay
    path, overlay, grey path, grey), the record's path, every file written, and the inversion
    (with its reference pass, for a next edit of the image; None from Ray)."""

    order: int
    image: str
    caption: str
    cached: bool
    directions: list
    edits: list
    reconstruction: tuple
    attention: dict
    record: Path
    files: list
    inversion: object = None


@dataclass
class EditReport:
    """An edit job's outcome: one line per problem (the other images still ran), warnings, and
    how many images an earlier run had finished."""

    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    skipped: int = 0


def run_images(editor, jobs, settings, engine: Engine, *, model: str, size: int, seed: int, regularisation,
               on_result, on_error, attention_words: tuple = (), on_inverted=None) -> None:
    """Edit editor.runners ImageJobs on `engine` (on_result / on_error as each image finishes,
    on_inverted(job, inversion) as each is inverted in this process); the one place edit and
    eval choose between this process and Ray."""
    if not jobs:
        return
    if engine.kind == "ray":
        from editor.runners.ray_data import edit_images_on_ray

        edit_images_on_ray(model, engine.device, engine.dtype, engine.caption_model, jobs, settings, size=size,
                           vae=engine.vae, regularisation=regularisation, seed=seed, batch_images=engine.batch_images,
                           workers=engine.workers, address=engine.address, attention_words=attention_words,
                           on_result=on_result, on_error=on_error)
    else:
        from editor.runners.local import edit_images

        edit_images(editor, jobs, settings, size=size, regularisation=regularisation, seed=seed,
                    batch_images=engine.batch_images, on_result=on_result, on_error=on_error,
                    attention_words=attention_words, max_batch=engine.max_batch, on_inverted=on_inverted)


def run_edit(editor, run: EditRun, photos: list[PhotoToEdit], engine: Engine = Engine(),
             on_image: Callable[[EditedImage], None] | None = None, counter=None,
             on_inverted: Callable[[object], None] | None = None) -> EditReport:
    """The edit job both faces call (`dbank edit`, the studio's Run): each photo's output names
    checked before any model work (taken ones refused unless `run.overwrite`; with
    `run.resumable` a photo whose outputs all exist is skipped and one left part done is redone
    whole), then the photos inverted (unless their inversion is given) and edited on `engine`,
    and each one's pictures, settings inside each edit, and record written as it finishes;
    on_image(EditedImage) then (in the order batches finish, `order` gives the input's), and
    `counter.update(1)` after each photo (skipped and refused ones too); on_inverted(inversion)
    as soon as a photo is inverted here (the studio remembers it, even when the edit is then
    cancelled). Cancelled (editor.cancel) passes through, keeping
    nothing of the photo it stopped in."""
    from direction_bank.jobs.edit_records import record_path
    from direction_bank.jobs.outputs import make_output_folder, write_pictures, write_record
    from direction_bank.output_files import check_output, remove_stale_temporaries
    from editor.inversion import NO_REGULARISATION, Regularisation
    from editor.pipeline import stack_directions
    from editor.runners.local import ImageJob

    report, jobs, out, words = EditReport(), [], run.out, tuple(run.attention_words)
    tick = counter.update if counter is not None else lambda count: None
    for photo in photos:
        if not photo.directions:
            continue
        stem = photo.stem
        paths = {"edits": {entry.label: out / f"{stem}.{entry.name}.png" for entry in photo.directions},
                 "reconstruction": out / f"{stem}.{RECONSTRUCTION}.png",
                 "attention": {word: out / f"{stem}.attention-{file_label(word)}.png" for word in words},
                 "grey": {word: out / f"{stem}.attention-{file_label(word)}.grey.png" for word in words},
                 "record": record_path(out, stem, [[entry.label, entry.scale] for entry in photo.directions],
                                       run.record_settings())}
        every = [*paths["edits"].values(), paths["reconstruction"], *paths["attention"].values(),
                 *paths["grey"].values(), paths["record"]]
        present = sum(path.is_file() for path in every) if run.resumable and not run.overwrite else 0
        if present == len(every):
            report.skipped += 1  # done by an earlier run
            tick(1)
            continue
        if present:  # an earlier run was stopped part way through this image: redo it whole
            report.warnings.append(f"{photo.image}: an earlier run left {present} of its {len(every)} outputs; redone")
        if run.resumable:
            remove_stale_temporaries(every)
        replace_ok = run.overwrite or bool(present)
        try:
            for path in every if out.is_dir() else []:  # a folder yet to be made holds nothing
                check_output(path, replace_ok)  # before the work, not after
        except BankError as error:
            report.errors.append(str(error))
            tick(1)
            continue
        tokens, pooled = stack_directions([entry.parts for entry in photo.directions])
        jobs.append(ImageJob(photo.image, photo.caption, [entry.label for entry in photo.directions], tokens,
                             {"paths": paths, "every": every, "order": len(jobs), "overwrite": replace_ok,
                              "photo": photo}, pooled,
                             inversion=photo.inversion))
    _refuse_shared_outputs(jobs)
    if jobs:
        make_output_folder(out)

    def finished(result):
        from editor.pictures import attention_overlay, photo_at

        paths, photo = result.job.extra["paths"], result.job.extra["photo"]
        for word in words:
            if word not in result.maps:
                report.warnings.append(f"{photo.image}: {word!r} is not in the caption {result.caption!r}; "
                                       "no attention map")
        photo_pixels = photo_at(photo.image, result.reconstruction.size) if result.maps else None
        overlays = {word: attention_overlay(photo_pixels, grey) for word, grey in result.maps.items()}
        record = edit_record(Path(photo.image).name if run.photo_by_name else str(Path(photo.image).resolve()),
                             result.caption, run.model, run.size, run.seed,
                             run.settings, run.regularised, photo.directions,
                             [paths["edits"][entry.label].name for entry in photo.directions],
                             paths["reconstruction"].name, {word: paths["grey"][word].name for word in result.maps})
        settings_inside(record, result.edits)
        pictures = {**{paths["edits"][label]: picture for label, picture in zip(result.job.labels, result.edits)},
                    paths["reconstruction"]: result.reconstruction,
                    **{paths["attention"][word]: overlay for word, overlay in overlays.items()},
                    **{paths["grey"][word]: grey for word, grey in result.maps.items()}}
        try:
            written = write_pictures(pictures, result.job.extra["overwrite"])
            written.append(write_record(paths["record"], record, result.job.extra["overwrite"]))
        except BankError as error:
            report.errors.append(str(error))
            return
        finally:
            tick(1)
        if on_image is not None:
            on_image(EditedImage(
                result.job.extra["order"], photo.image, result.caption, result.inversion_cached, photo.directions,
                [(label, paths["edits"][label], picture) for label, picture in zip(result.job.labels, result.edits)],
                (paths["reconstruction"], result.reconstruction),
                {word: (paths["attention"][word], overlays[word], paths["grey"][word], grey)
                 for word, grey in result.maps.items()},
                paths["record"], written, result.inversion))

    def failed(job, error):
        tick(1)
        report.errors.append(str(error))

    run_images(editor, jobs, run.settings, engine, model=run.model, size=run.size, seed=run.seed,
               regularisation=Regularisation() if run.regularised else NO_REGULARISATION,
               on_result=finished, on_error=failed, attention_words=words,
               on_inverted=None if on_inverted is None else lambda job, inversion: on_inverted(inversion))
    return report


def _refuse_shared_outputs(jobs) -> None:
    """One line, before any edit runs, when two outputs of this run would be one file."""
    owners = {}
    for job in jobs:
        for path in job.extra["every"]:
            if path in owners and owners[path] is not job:
                raise BankError(f"{job.image} and {owners[path].image} would both write {path}; rename one of them")
            owners[path] = job
