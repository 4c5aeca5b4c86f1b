"""The edits `dbank eval` runs itself: every direction at every scale and cross-attention
guidance (with the word-swap baseline of each pair of concepts), a picture per edit and a record
per image and guidance, resumable (the record is written last, so an image a stopped run left
part done is redone whole). The face resolves the directions and opens the editor; scoring the
records is jobs.evaluate's."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from direction_bank.errors import BankError
from direction_bank.jobs.evaluate import RECONSTRUCTION, WORD_SWAP


def run_eval_edits(editor, photos, directions: list, scales, guidances, shared: dict, out: Path, engine,
                   counter=None) -> tuple[list[Path], list[str], list[str]]:
    """(record paths, problems, warnings) after editing each of `photos` (jobs.edit.PhotoToEdit:
    its `directions` are the names it asks for, none for all) with `directions` (jobs.edit.Resolved,
    the word-swap ones labelled 'word-swap S->T') at every scale and guidance. `shared` holds model,
    size, seed, steps and guidance_scale; `engine` is a jobs.edit.Engine (Ray records no attention
    maps). `counter(guidance)` gives a progress counter for one guidance's images."""
    from direction_bank.names import file_label
    from direction_bank.output_files import check_output, remove_stale_temporaries
    from editor.edit import EditSettings
    from editor.pipeline import stack_directions
    from editor.runners.local import ImageJob

    from direction_bank.jobs.outputs import make_output_folder

    by_label = {entry.label: entry for entry in directions}
    words = tuple(sorted({entry.source for entry in directions}))
    key = hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).hexdigest()[:8]
    record_paths, problems, warnings, done = [], [], [], 0
    make_output_folder(out)
    for guidance in guidances:
        jobs = []
        for photo in photos:
            stem, wanted = photo.stem, photo.directions
            base = [entry for label, entry in by_label.items()
                    if not label.startswith(WORD_SWAP) and (not wanted or label in wanted)]
            swaps = [f"{WORD_SWAP} {s}->{t}" for s, t in dict.fromkeys((e.source, e.target) for e in base)]
            chosen = base + [by_label[label] for label in swaps if label in by_label]
            plan = [(entry, scale) for entry in chosen for scale in scales]
            labels = [f"{entry.label} scale {scale:g} xa {guidance:g}" for entry, scale in plan]
            record = out / f"{stem}.record-{hashlib.sha256(json.dumps([labels, shared]).encode()).hexdigest()[:10]}.json"
            record_paths.append(record)
            if record.is_file():  # edited by an earlier run (records are written last)
                done += 1
                continue
            paths = {"edits": {label: out / f"{stem}.{entry.name}-s{scale:g}-xa{guidance:g}-{key}.png"
                               for label, (entry, scale) in zip(labels, plan)},
                     "reconstruction": out / f"{stem}.{RECONSTRUCTION}-{key}.png",
                     "grey": {word: out / f"{stem}.attention-{file_label(word)}-{key}.grey.png" for word in words},
                     "record": record}
            every = [*paths["edits"].values(), record]
            remove_stale_temporaries(every)
            replace = any(path.is_file() for path in every)  # left by a run stopped part way: redone whole
            try:
                for path in every:
                    check_output(path, replace)
            except BankError as error:
                problems.append(str(error))
                continue
            tokens, pooled = stack_directions([tuple(None if part is None else scale * part for part in entry.parts)
                                               for entry, scale in plan])
            jobs.append(ImageJob(photo.image, photo.caption, labels, tokens,
                                 {"paths": paths, "plan": plan, "replace": replace}, pooled))
        bar = counter(guidance, len(jobs)) if counter else None
        _edit_one_guidance(jobs, editor, engine, EditSettings(shared["steps"], shared["guidance_scale"], guidance, 1.0),
                           shared, words, problems, bar)
        if bar is not None:
            bar.close()
    if done:
        warnings.append(f"{done} image edits were done by an earlier run (records found); scored as they are")
    return [path for path in record_paths if path.is_file()], problems, warnings


def _edit_one_guidance(jobs, editor, engine, settings, shared, words, problems, bar) -> None:
    """Run one guidance's jobs and write each image's pictures and record as it finishes."""
    from direction_bank.jobs.edit_records import EditEntry, EditRecord
    from direction_bank.jobs.edit import run_images
    from direction_bank.jobs.outputs import write_pictures, write_record
    from editor.inversion import Regularisation

    def finished(result):
        paths, plan = result.job.extra["paths"], result.job.extra["plan"]
        pictures = dict(zip(paths["edits"].values(), result.edits))
        extra = {paths["reconstruction"]: result.reconstruction,
                 **{paths["grey"][word]: grey for word, grey in result.maps.items()}}
        # the same for every guidance of this image: written by the first, kept by the others
        pictures.update({path: picture for path, picture in extra.items() if not path.is_file()})
        entries = [EditEntry(label, paths["edits"][label].name,
                             entry.label, entry.source, entry.target, scale, settings.xa_guidance,
                             entry.baseline, entry.fingerprint)
                   for label, (entry, scale) in zip(result.job.labels, plan)]
        record = EditRecord(str(Path(result.job.image).resolve()), result.caption, shared["model"], shared["size"],
                            shared["seed"], shared["steps"], shared["guidance_scale"], True,
                            paths["reconstruction"].name, entries,
                            {word: paths["grey"][word].name for word in result.maps})
        try:
            write_pictures(pictures, result.job.extra["replace"])
            write_record(paths["record"], record, result.job.extra["replace"])
        except BankError as error:
            problems.append(str(error))
        finally:
            if bar is not None:
                bar.update(1)

    def failed(job, error):
        if bar is not None:
            bar.update(1)
        problems.append(f"{job.image}: {error}")

    run_images(editor, jobs, settings, engine, model=shared["model"], size=shared["size"], seed=shared["seed"],
               regularisation=Regularisation(), on_result=finished, on_error=failed, attention_words=words)
