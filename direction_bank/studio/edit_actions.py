"""The Edit tab's actions: a photo checked, captioned or generated, edited with saved directions
(reusing its inversion and reference pass), scored, and the settings a dbank PNG carries read
back; plain calls over the bank, jobs/ and the editor."""
from __future__ import annotations

import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from direction_bank.errors import BankError, FieldError
from direction_bank.jobs.evaluate import WORD_SWAP
from direction_bank.jobs.word_edit import CONCEPTS, WordChoice, word_directions
from direction_bank.names import file_label
from direction_bank.studio.fields import file_digest, finite, image_size, opened_photo, whole
from direction_bank.studio.session import Remembered, StudioSession, no_report
from direction_bank.studio.words import page_words
from sd_models.settings import SEED_RANGE

MAX_DIRECTIONS_PER_EDIT = 16
MAX_EDITS_PER_PHOTO = 48  # earlier edits of one photo its zip holds (the history strip keeps as many)
MAX_PHOTOS_KEPT = 64  # photos whose edits are remembered for their zips
# the number settings of an edit as the page labels them (steps, size and seed are named as they are)
SETTING_LABELS = {"scale": "scale", "xa_guidance": "cross-attention guidance", "guidance_scale": "guidance scale"}


@dataclass
class EditOutcome:
    """A finished studio edit: the caption used, (picture, label) pairs in the order input,
    reconstruction, each direction; the attention overlay (or None); a zip of every picture;
    how long it took and what it reused."""

    caption: str
    pictures: list
    overlay: object
    archive: str
    seconds: float
    reused: bool
    message: str
    notes: list = field(default_factory=list)
    scores: dict = field(default_factory=dict)  # direction -> its scores (editor.evaluation.METRICS)
    files: list = field(default_factory=list)  # (PNG path, label) per picture, beside the archive
    # the page's edit controls as this edit ran (caption used, directions, scale, cross-attention
    # guidance, guidance scale, steps, size, seed, attention word, use tuned): a history entry's
    controls: list = field(default_factory=list)
    missing: tuple = ()  # words a word-swap stood in for: the bank holds no concept of them (yet)


@dataclass
class EditRequest:
    """An edit's inputs after StudioActions.check_edit: directions read, settings checked, the
    photo checked at the edit size; `notes` say which tuned settings replace the page's."""

    image: str
    caption: str | None
    entries: list  # jobs.edit.Resolved, each scaled by its own (tuned) scale
    settings: object
    size: int
    seed: int
    word: str
    notes: list
    controls: list  # the checked inputs in the page's order (EditOutcome.controls, less the caption used)
    swaps: list = field(default_factory=list)  # word_edit.WordChoice to embed as word-swap directions in the job


class EditActions(StudioSession):
    """What the Edit tab does."""


    def check_photo(self, image: str) -> None:
        """Refuse an upload that is not an image (or a bomb) as soon as it lands: a FieldError."""
        from editor.pipeline import EditorError

        try:
            opened_photo(image, 64)
        except EditorError as error:
            raise FieldError("image", str(error)) from None

    def suggest_caption(self, image: str) -> str:
        """BLIP's caption of an image file."""
        from PIL import Image

        if not image:
            raise BankError("upload an image first")
        opened_photo(image, 64)  # the same checks as an edit: a real image, not a bomb
        with Image.open(image) as opened:
            return self.editor().caption(opened.convert("RGB"))

    def generate(self, prompt: str, size=512, steps=50, guidance_scale=5.0, seed=0, report=no_report) -> str:
        """An image generated from `prompt` (a PNG path). Its starting noise is remembered, so
        editing it with the prompt as caption needs no inversion."""
        import numpy as np

        from editor.edit import SETTING_BOUNDS, EditSettings
        from editor.editor import Inversion

        prompt = (prompt or "").strip()
        if not prompt:
            raise BankError("write a prompt to generate from")
        size, seed = image_size(size), whole(seed, "seed", *SEED_RANGE)
        settings = EditSettings(whole(steps, "steps", *SETTING_BOUNDS["steps"]), guidance_scale, 0.0, 1.0)
        with self._job(report, ["generating"]) as editor:
            start = Inversion(editor.generate_noise(size, seed), prompt, False, negative_prompt="")
            zero = np.zeros((1, editor.components.max_length, editor.hidden_size), np.float32)
            _, generated = editor.edit(start, zero, settings, keep_reference=True,
                                       pooled=np.zeros((1, editor.pooled_size), np.float32) if editor.pooled_size else None)
        path = self._fresh_folder() / f"{file_label(f'generated {seed} {size} {prompt}')}.png"
        generated.save(path)
        self._remember((file_digest(path), prompt, size, settings.steps, seed), Remembered(start))
        return str(path)

    def check_edit(self, image: str, caption: str | None, directions: list[str], scale=1.0, xa_guidance=0.1,
                   guidance_scale=5.0, steps=50, size=512, seed=0, attention_word: str | None = None,
                   use_tuned: bool = False, to_word: str | None = None, from_word: str | None = None) -> "EditRequest":
        """Every input of an edit checked, the directions read from the bank and the photo opened,
        before any model loads; a bad one is a FieldError naming its parameter, in the page's words.
        `to_word` (and `from_word`, else the concept the caption names) edits by a word (see
        jobs.word_edit): its direction joins the chosen ones, and a note says which it is."""
        from direction_bank.jobs.edit import apply_tuning, resolve_directions, saved_directions
        from editor.edit import EditSettings
        from editor.pipeline import EditorError
        from sd_models.settings import SETTING_BOUNDS

        if not image:
            raise FieldError("image", "upload or generate a photo first")
        if isinstance(directions, str):  # one name, not a list of its letters
            directions = [directions]
        if not isinstance(directions, (list, tuple)) or not all(isinstance(n, str) for n in directions):
            raise FieldError("directions", "directions: give a list of direction names")
        names = [name for name in directions if name]
        to_word, from_word = (to_word or "").strip(), (from_word or "").strip()
        if not names and not to_word:
            raise FieldError("directions", "choose at least one direction, or type a word to edit to")
        if len(names) > MAX_DIRECTIONS_PER_EDIT:
            raise FieldError("directions", f"{len(names)} directions: at most {MAX_DIRECTIONS_PER_EDIT} per edit")
        typed = {}
        for name, value in (("scale", scale), ("xa_guidance", xa_guidance), ("guidance_scale", guidance_scale)):
            typed[name] = finite(value, SETTING_LABELS[name], *SETTING_BOUNDS[name], field=name)
        steps = whole(steps, "steps", *SETTING_BOUNDS["steps"])
        size, seed = image_size(size), whole(seed, "seed", *SEED_RANGE)
        caption = (caption or "").strip() or None
        try:
            opened_photo(image, size)
        except EditorError as error:  # the same line check_photo gives at the upload
            raise FieldError("image", str(error)) from None
        with self.bank(read_only=True) as bank:
            try:
                entries, _ = resolve_directions(saved_directions(bank, names), strict=True)
            except BankError as error:
                raise FieldError("directions", str(error)) from None
            choice = self._word_choice(bank, caption, to_word, from_word) if to_word else None
            if choice is not None and choice.how != WORD_SWAP:
                try:
                    found, _ = word_directions([choice], bank, None, strict=True)
                except BankError as error:  # the concepts' statistics cannot be diffed (other encoders)
                    raise FieldError("to_word", str(error)) from None
                entries += [entry for entry in found if entry.label not in names]
        entries, chosen_scale, chosen_guidance, notes = apply_tuning(
            entries, None if use_tuned else typed["scale"], None if use_tuned else typed["xa_guidance"])
        settings = EditSettings(steps, typed["guidance_scale"], chosen_guidance, chosen_scale)
        word = (attention_word or "").strip()
        controls = [names, typed["scale"], typed["xa_guidance"], typed["guidance_scale"], steps, size, seed, word,
                    bool(use_tuned), to_word, from_word]
        if choice is not None:
            notes = [page_words(choice.line()), *notes]
        swaps = [choice] if choice is not None and choice.how == WORD_SWAP else []
        return EditRequest(image, caption, entries, settings, size, seed, word, notes, controls, swaps)

    def _word_choice(self, bank, caption: str | None, to_word: str, from_word: str):
        """How this edit goes from `from_word` (else the concept the caption names) to `to_word`:
        jobs.word_edit.choose over the bank's concepts and saved directions."""
        from direction_bank.jobs.word_edit import check_word, choose, concept_in_caption

        try:
            target = check_word(to_word, "to")
        except BankError as error:
            raise FieldError("to_word", str(error).replace("--to ", "edit to ")) from None
        concepts = [summary.name for summary in bank.concepts()]
        if from_word:
            try:
                source = check_word(from_word, "from")
            except BankError as error:
                raise FieldError("from_word", str(error).replace("--from ", "from ")) from None
        elif caption is None:
            raise FieldError("from_word", "type the word to change, or a caption that names it")
        else:
            source = concept_in_caption(caption, concepts)
            if source is None:
                raise FieldError("from_word", "the caption names no concept in the bank; type the word to change")
        try:
            return choose(source, target, concepts, bank.directions(), self.model_name)
        except BankError as error:
            raise FieldError("to_word", str(error).replace("--from and --to are", "from and to are")) from None

    def edit(self, image: str, caption: str | None, directions: list[str], scale=1.0, xa_guidance=0.1,
             guidance_scale=5.0, steps=50, size=512, seed=0, attention_word: str | None = None,
             report=no_report, use_tuned: bool = False, to_word: str | None = None,
             from_word: str | None = None) -> EditOutcome:
        """Invert `image` (or reuse its inversion from an earlier call) and edit it with saved
        directions; the second direction on the same image and settings reuses the inversion and
        the reference pass, and the outcome says so. With `use_tuned`, each tuned direction gets
        its tuned scale and guidance (dbank tune) instead of `scale` and `xa_guidance`, and the
        notes say so. Each edit is scored when the eval models can be had. Inputs are checked
        first (check_edit); the run is jobs.edit.run_edit, as dbank edit's, into a fresh folder."""
        from direction_bank.jobs.edit import Engine, EditRun, PhotoToEdit, check_shapes, run_edit

        request = self.check_edit(image, caption, directions, scale, xa_guidance, guidance_scale, steps, size, seed,
                                  attention_word, use_tuned, to_word, from_word)
        caption, entries, settings = request.caption, request.entries, request.settings
        if request.swaps:  # through the server's own text encoder, as the bank embeds sentences
            entries = entries + word_directions(request.swaps, None, self.encoder)[0]
        size, seed, word = request.size, request.seed, request.word
        digest = file_digest(image)
        key = (digest, caption, size, settings.steps, seed)
        remembered = self._remembered.get(key)
        if remembered is None and caption is not None:  # BLIP's caption, now typed in the box
            blip = self._remembered.get((digest, None, size, settings.steps, seed))
            remembered = blip if blip is not None and blip.inversion.caption == caption else None
        inverted = remembered is None
        reused = not inverted and (settings.steps, settings.guidance_scale,
                                   remembered.inversion.negative_prompt) in remembered.inversion.traces
        folder, done = self._fresh_folder(), []
        started = time.monotonic()
        with self._job(report, ["inverting", "editing"] if inverted else ["editing"]) as editor:
            check_shapes(editor, entries)
            ran = run_edit(editor, EditRun(self.model_name, settings, size, seed, folder, True, (word,) if word else (),
                                           photo_by_name=True),
                           [PhotoToEdit(image, caption, entries, file_label(Path(image).stem),
                                        None if inverted else remembered.inversion)],
                           Engine(batch_images=1), on_image=done.append,
                           on_inverted=lambda inversion: self._remember(key, Remembered(inversion)))
        if ran.errors:
            raise BankError(ran.errors[0].replace(str(image), Path(image).name))
        [edited] = done
        remembered = self._remembered.get(key, remembered)
        seconds = time.monotonic() - started
        first = remembered.first_seconds is None
        if first:
            remembered.first_seconds = seconds
        warnings = [warning.removeprefix(f"{image}: ") for warning in ran.warnings]
        outcome = self._outcome(image, remembered, edited, folder, seconds, inverted, reused, first, request.notes,
                                warnings, digest, report)
        outcome.controls = [outcome.caption, *request.controls]
        outcome.missing = tuple(sorted({word for choice in request.swaps for word in choice.missing}))
        return outcome

    def settings_from_png(self, path: str) -> dict:
        """The settings a dbank edit's PNG carries, for the page's controls: caption, the
        direction (the version it used, by fingerprint), scale, cross-attention guidance,
        guidance scale, steps, size, seed; `note` says when an older version is used. An edit
        by a word (a word-swap, or two concepts' mean difference) gives its words instead
        (`to_word`, `from_word`), so the next edit chooses as that one did."""
        from direction_bank.errors import UnknownDirection
        from direction_bank.jobs.edit_records import read_parameters

        if not path:
            raise BankError("drop a PNG that dbank made")
        data, entry = read_parameters(path)
        words = ("", "")
        with self.bank(read_only=True) as bank:
            try:
                reference, current = bank.version_with_fingerprint(entry.direction, entry.fingerprint)
            except UnknownDirection:  # no saved direction is the one it used
                if not _by_a_word(entry):
                    raise
                reference, current, words = None, True, (entry.target, entry.source)
        notes = [] if current else [f"{entry.direction!r} has changed since; loaded version "
                                    f"{reference.rsplit('@', 1)[1]}, the one this picture was made with"]
        if data["model"] not in (self.model, self.model_name):  # a picture never chooses the server's model
            notes.append(f"the picture was made with another model ({Path(data['model']).name}); "
                         "this studio edits with its own")
        note = "; ".join(notes)
        return {"caption": data["caption"], "directions": [reference] if reference else [], "scale": entry.scale,
                "xa_guidance": entry.xa_guidance, "guidance_scale": data["guidance_scale"], "steps": data["steps"],
                "size": data["size"], "seed": data["seed"], "note": note, "to_word": words[0], "from_word": words[1],
                "label": entry.direction}

    def _scores(self, photo, caption: str, entries: list, edits: list, reconstruction,
                report=no_report) -> tuple[dict, list]:
        """({label: scores} of each edit whose direction names its concepts, and of the
        reconstruction against the first of them; notes), when the eval models can be had."""
        from direction_bank.jobs.evaluate import score_pair

        scorer = self.scorer()
        if scorer is None:  # said once a server, not at every edit
            told, self._told_scores_off = self._told_scores_off, True
            return {}, [] if told else [f"no scores: {self.scores_off}"]
        known = [(d, picture) for d, picture in zip(entries, edits) if d.source and d.target]
        if not known:
            return {}, []
        first = known[0][0]
        pairs = [score_pair(photo, picture, caption, d.source, d.target) for d, picture in known]
        pairs.append(score_pair(photo, reconstruction, caption, first.source, first.target))
        report(1.0, f"scoring: {len(pairs)} pictures (CLIP and DINO)")  # the last phase of an edit, said
        told = len(scorer.clip.truncated)
        scores = scorer.score(pairs)
        notes = [scorer.truncation_note()] if len(scorer.clip.truncated) > told else []
        return {**{d.label: s for (d, _), s in zip(known, scores)}, "reconstruction": scores[-1]}, notes

    def _outcome(self, image, remembered, edited, folder: Path, seconds, inverted, reused, first, notes, warnings,
                 digest: str, report=no_report):
        """The EditOutcome of jobs.edit.run_edit's EditedImage: the pictures the page shows (input,
        reconstruction, each direction, the attention overlay) with their scores, and a zip (see
        _archive)."""
        from direction_bank.jobs.edit import INPUT
        from editor.pictures import photo_at, save_png

        caption = edited.caption
        reconstruction_path, reconstruction = edited.reconstruction
        photo = photo_at(image, reconstruction.size)
        photo_path = folder / f"{file_label(Path(image).stem)}.{INPUT}.png"
        save_png(photo, photo_path)
        scores, score_notes = self._scores(photo, caption, edited.directions,
                                           [picture for _, _, picture in edited.edits], reconstruction, report)
        shown = [(photo, photo_path, "input"), (reconstruction, reconstruction_path, "reconstruction"),
                 *((picture, path, label) for label, path, picture in edited.edits),
                 *((maps[1], maps[0], f"attention: {word}") for word, maps in edited.attention.items())]
        overlay = next((maps[1] for maps in edited.attention.values()), None)
        if reused and first:  # a generated picture: its own noise and pass, nothing of an earlier edit
            message = f"{seconds:.1f} s: edited from the generated picture's own noise and pass (no inversion needed)"
        elif reused:
            message = (f"{seconds:.1f} s: reused the inversion and the reference pass "
                       f"(the first edit of this image took {remembered.first_seconds:.1f} s)")
        elif not inverted:
            message = f"{seconds:.1f} s: reused the inversion; a new reference pass for this guidance scale"
        elif remembered.inversion.cached:
            message = f"{seconds:.1f} s: the inversion came from the disk cache; ran the reference pass (kept)"
        else:
            message = f"{seconds:.1f} s: inverted the image and ran the reference pass (both kept for the next edit)"
        archive = self._archive(image, folder, [photo_path, *map(Path, edited.files)], digest)
        return EditOutcome(caption, [(picture, label) for picture, _, label in shown], overlay, str(archive), seconds,
                           reused, message, [*notes, *score_notes, *warnings], scores,
                           [(str(path), label) for _, path, label in shown])

    def _archive(self, image: str, folder: Path, files: list[Path], digest: str) -> Path:
        """STEM-edits.zip in `folder`: this edit's files (what dbank edit writes, and the photo at
        the edit size as STEM.input.png), the photo as uploaded (STEM.original.EXT, its very
        bytes), and under earlier/N/ the files of each earlier edit of the same photo this
        session (oldest first; those whose folders were swept are left out)."""
        stem = file_label(Path(image).stem)
        earlier = self._edits_of.get(digest, [])
        archive = folder / f"{stem}-edits.zip"
        with zipfile.ZipFile(archive, "w") as opened:
            for path in files:
                opened.write(path, path.name)
            opened.write(image, f"{stem}.original{Path(image).suffix.lower() or '.png'}")
            for number, paths in enumerate(earlier, 1):
                for path in paths:
                    if path.is_file():
                        opened.write(path, f"earlier/{number}/{path.name}")
        self._edits_of[digest] = [*earlier, files][-MAX_EDITS_PER_PHOTO:]
        self._edits_of.move_to_end(digest)
        while len(self._edits_of) > MAX_PHOTOS_KEPT:
            self._edits_of.popitem(last=False)
        return archive


def _by_a_word(entry) -> bool:
    """Whether an edit's record entry is an edit by a word: a word-swap, or the mean difference
    of two concepts (labelled as word_edit.WordChoice labels it)."""
    if not (entry.source and entry.target):
        return False
    return entry.baseline == WORD_SWAP or entry.direction == WordChoice(entry.source, entry.target, CONCEPTS).label
