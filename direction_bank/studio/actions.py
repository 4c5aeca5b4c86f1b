"""What the studio can do, as plain calls over the Bank and the Editor: tables, PIL images and
file paths out, BankError / EditorError (one line) for bad input. The Gradio page only lays
these out; gradio_client and the tests call the same functions through it."""
from __future__ import annotations

import contextvars
import hashlib
import threading
import time
import zipfile
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from direction_bank.bank import Bank
from direction_bank.errors import BankError, DirectionChanged, FieldError
from direction_bank.names import check_name, file_label
from sd_models.settings import SEED_RANGE, SIZE_RANGE

MAX_DIRECTIONS_PER_EDIT = 16
MAX_TUNE_PHOTOS = 16  # photos one Tune click may edit
MAX_TUNE_VALUES = 8  # scales (and guidances) one Tune click may try
MAX_COUNT = 100_000  # sentences one click may ask for
REMEMBERED_IMAGES = 8  # inversions (with their reference passes) kept in memory
# the number settings of an edit as the page labels them (steps, size and seed are named as they are)
SETTING_LABELS = {"scale": "scale", "xa_guidance": "cross-attention guidance", "guidance_scale": "guidance scale"}
FOLDER_AGE_S = 2 * 3600  # downloads and generated pictures are kept this long
MAX_UPLOAD = "100mb"  # the largest file a visitor may upload (a photo, a dbank file)
# the visitor (the page's Gradio session) an action runs for; a job keeps its own, and only that
# visitor may cancel it
VISITOR = contextvars.ContextVar("dbank_studio_visitor", default="")


def _no_report(fraction: float, desc: str) -> None:
    pass


class JobProgress:
    """One progress bar for a whole model job: each of its `phases` (the model loops it runs, in
    order: "inverting", "editing") an equal share, its text the phase, the step and the time left."""

    def __init__(self, report, phases: list[str]):
        self.report, self.phases, self.started = report, list(phases), time.monotonic()

    def step(self, desc: str, number: int, total: int) -> None:
        """Step `number` (from 0) of `total` of the loop `desc` is about to run."""
        index = self.phases.index(desc) if desc in self.phases else max(len(self.phases) - 1, 0)
        fraction = (index + number / max(total, 1)) / max(len(self.phases), 1)
        elapsed = time.monotonic() - self.started
        left = f", about {elapsed / fraction * (1 - fraction):.0f} s left" if fraction >= 0.05 else ""
        phase = f" ({index + 1} of {len(self.phases)})" if len(self.phases) > 1 else ""
        self.report(fraction, f"{desc}{phase}: step {number + 1} of {total}{left}")


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


@dataclass
class _EditRequest:
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


@dataclass
class _Remembered:
    inversion: object
    first_seconds: float | None = None


@contextmanager
def _replace_asked(field: str):
    """A name in use, said in the page's words: the box to tick, not the CLI's --overwrite."""
    from direction_bank.errors import NameTaken

    try:
        yield
    except NameTaken as error:
        raise BankError(f"{str(error).split(';')[0]}; tick 'replace' beside '{field}' to store this as its "
                        "next version (the old one is kept), or choose another name") from None


class StudioActions:
    """One server's state: the bank (opened per call, so other writers are seen), one Stable
    Diffusion model loaded on first use and kept, and recent inversions in memory."""

    def __init__(self, database: str | None, model: str, device: str | None = None, dtype: str = "auto",
                 caption_model: str | None = None, work_dir: str | Path | None = None, vae: str | None = None,
                 llms: tuple[str, ...] = (), clip_model: str | None = None, dino_model: str | None = None):
        """`work_dir` holds the files offered for download (a fresh temporary folder by default);
        `vae` replaces the model's VAE (see editor.pipeline.load_components); `llms` are the
        sentence models the owner lets visitors choose (besides each generator's default): a
        visitor never names a path or a hub id that the server would load or download. `clip_model`
        and `dino_model` score the edits (editor.evaluation), when they can be had."""
        import tempfile

        from direction_bank.sharing import model_name
        from editor.caption import DEFAULT_CAPTION_MODEL
        from editor.evaluation import DEFAULT_CLIP, DEFAULT_DINO

        self.clip_model, self.dino_model = clip_model or DEFAULT_CLIP, dino_model or DEFAULT_DINO
        self._scorer, self.scores_off, self._told_scores_off = None, None, False

        self.database, self.model, self.device, self.dtype, self.vae = database, model, device, dtype, vae
        # what visitors see and download of the model: a local folder by its name, a hub id as it is
        self.model_name = model_name(model)
        self.llms = tuple(llms)
        self.caption_model = caption_model or DEFAULT_CAPTION_MODEL
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="dbank-studio-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if work_dir is None:  # ours alone: gone when the server exits
            import atexit
            import shutil

            atexit.register(shutil.rmtree, self.work_dir, ignore_errors=True)
        self._editor = None
        self._encoder = None
        self._loading = threading.Lock()
        self._remembered: OrderedDict = OrderedDict()
        self._progress = JobProgress(_no_report, [])
        self._running, self._owner = False, ""

    # -- models, loaded once -----------------------------------------------------------------

    def bank_name(self) -> str:
        """The bank as a visitor may see it: a SQLite file by its name, a PostgreSQL bank by its
        database name (no folder, host or password)."""
        from sqlalchemy.engine import make_url

        if not self.database:
            return "the default bank"
        text = str(self.database)
        if "://" not in text:
            return Path(text).name
        try:
            url = make_url(text)
        except Exception:  # noqa: BLE001 - an odd URL is named by its scheme alone
            return text.split("://", 1)[0] + " bank"
        return f"{url.get_backend_name()} bank {Path(url.database or '').name}".strip()

    def bank(self, read_only: bool = False) -> Bank:
        """The bank, opened for one call (close it after)."""
        return Bank(self.database, create=not read_only, read_only=read_only)

    def editor(self):
        """The server's Editor (loaded on first use, then kept)."""
        with self._loading:
            if self._editor is None:
                import os

                from direction_bank.model_check import require_model
                from editor.cache import InversionCache
                from editor.editor import Editor

                require_model(self.model, "the Stable Diffusion model", "start the studio with --model FOLDER")
                self._editor = Editor(self.model, self.device, self.dtype, InversionCache(os.environ.get("DBANK_CACHE") or None),
                                      self.caption_model, progress_bar=self._steps, vae=self.vae)
            return self._editor

    def default_size(self) -> int:
        """The image size the page starts at: the model's own (editor.pipeline.default_size);
        512 when it cannot be read yet (the first model job then says why)."""
        from editor.pipeline import EditorError, default_size

        try:
            return default_size(self.model)
        except EditorError:
            return 512

    def encoder(self):
        """The bank's text encoder for the server's model (loaded on first use, then kept)."""
        with self._loading:
            if self._encoder is None:
                from direction_bank.encoder import TextEncoder
                from direction_bank.model_check import require_model

                require_model(self.model, "the Stable Diffusion text encoder", "start the studio with --model FOLDER")
                self._encoder = TextEncoder.load(self.model, device=self.device, dtype=self.dtype)
            return self._encoder

    def scorer(self, required: bool = False):
        """The edit scorer (CLIP and DINO, loaded on first use, then kept), or None when the
        models cannot be had (`scores_off` then says why) unless `required`."""
        from direction_bank.model_check import ModelUnavailable, require_model

        with self._loading:
            if self._scorer is None and (self.scores_off is None or required):
                try:
                    require_model(self.clip_model, "the CLIP model", "start the studio with --clip-model FOLDER")
                    require_model(self.dino_model, "the DINO model", "start the studio with --dino-model FOLDER")
                except ModelUnavailable as error:
                    self.scores_off = str(error)
                    if required:
                        raise
                    return None
                from editor.evaluation import EditScorer
                from sd_models.precision import default_device

                self._scorer = EditScorer.load(self.clip_model, self.dino_model, self.device or default_device())
                self.scores_off = None
            return self._scorer

    def _steps(self, steps, desc: str = "steps", **_):
        steps = list(steps)
        for number, step in enumerate(steps):
            self._progress.step(desc, number, len(steps))
            yield step

    @contextmanager
    def _job(self, report, phases: list[str]):
        """The editor for one model job: its progress one bar over `phases`, its cancel flag
        cleared at the start (see cancel)."""
        editor = self.editor()
        editor.cancel.clear()
        self._progress, self._running, self._owner = JobProgress(report, phases), True, VISITOR.get()
        try:
            yield editor
        finally:
            self._progress, self._running = JobProgress(_no_report, []), False

    def cancel(self) -> str:
        """Stop the running model job at its next step (it then keeps nothing); a line saying so."""
        if self._editor is None or not self._running:
            return "nothing is running"
        if VISITOR.get() != self._owner:
            return "another visitor's job is running; only they can cancel it"
        self._editor.cancel.set()
        return "stopping at the next step"

    # -- the bank ----------------------------------------------------------------------------

    def concepts_table(self) -> list[list]:
        """[name, sentences, encoders] per concept."""
        with self.bank(read_only=True) as bank:
            return [[s.name, s.sentence_count,
                     ", ".join(f"{e['model']} ({e['count']})" for e in s.encoders) or "not embedded"]
                    for s in bank.concepts()]

    def concept_names(self) -> list[str]:
        """Every concept's name."""
        return [row[0] for row in self.concepts_table()]

    def sentences_table(self, concept: str) -> list[list]:
        """[id, text] per stored sentence of the concept."""
        with self.bank(read_only=True) as bank:
            return [[record.id, record.text] for record in bank.sentences(concept)]

    def remove_sentence(self, concept: str, sentence_id) -> str:
        """Remove a sentence by id and take it out of the statistics."""
        sentence_id = _row_id(sentence_id, "sentence id", "sentences table")
        with self.bank() as bank:
            record = bank.remove_sentence(concept, lambda info: self._encoder_for(info), sentence_id=sentence_id)
        return f"moved #{record.id} of {concept} to the trash: {record.text}"

    def _encoder_for(self, info):
        if info.model != self.model:
            raise BankError(f"this sentence is also embedded by {info.model!r}; remove it with the CLI "
                            f"(the studio has {self.model!r} loaded)")
        return self.encoder()

    def remove_concept(self, concept: str) -> str:
        """Move a concept with its sentences and statistics to the trash."""
        with self.bank() as bank:
            count = bank.remove_concept(concept)
        return f"moved {concept} ({count} sentences) to the trash"

    def trash_table(self) -> list[list]:
        """[trash id, kind, name, what, removed at] per trash entry, newest first."""
        with self.bank(read_only=True) as bank:
            entries = bank.trash()
        rows = []
        for entry in entries:
            detail = entry["detail"] or {}
            what = (f"{detail.get('sentences', '?')} sentences" if entry["kind"] == "concept"
                    else f"{detail.get('versions', 1)} version(s)" if entry["kind"] == "direction"
                    else f"#{detail['sentence']['id']}: {detail['sentence']['text']}")
            rows.append([entry["id"], entry["kind"], entry["name"], what, entry["trashed_at"][:19]])
        return rows

    def restore(self, entry_id, as_name: str | None = None) -> str:
        """Put trash entry `entry_id` back (a concept or direction under `as_name` if given)."""
        from direction_bank.errors import NameTaken

        entry_id = _row_id(entry_id, "trash id", "trash table")
        with self.bank() as bank:
            try:
                restored = bank.restore(entry_id=entry_id, as_name=(as_name or "").strip() or None)
            except NameTaken as error:
                raise BankError(f"{str(error).split(';')[0]}; type another name in 'restore as'") from None
        if restored["kind"] == "sentence":
            return f"restored #{restored['sentence_id']} to {restored['name']}: {restored['text']}"
        return f"restored {restored['kind']} {restored['name']}"

    def add_concept(self, name: str, generator: str | None, llm: str | None, count, seed=0,
                    report=_no_report) -> str:
        """Generate, clean, embed and store sentences until `name` holds `count`
        (jobs.concepts.fill_concept); report(fraction, text) after every stored batch. Returns
        the lines dbank add-concept prints (jobs.concepts.fill_lines), and a stop short of the
        count."""
        from direction_bank.cleaning import CleaningSettings
        from direction_bank.generators import GENERATORS
        from direction_bank.jobs.concepts import fill_concept, fill_lines, sentence_writer, stopped_line

        name = check_name(name)
        count = _whole(count, "target count", 1, MAX_COUNT)
        seed = _whole(seed, "seed", *SEED_RANGE)
        if generator and generator not in GENERATORS:
            raise BankError(f"unknown generator {str(generator)[:60]!r}; choose one of {', '.join(GENERATORS)}")
        if llm and llm not in self.llms:
            offered = ", ".join(self.llms) if self.llms else "none besides the default"
            raise BankError(f"this server does not offer the LLM {str(llm)[:60]!r} (offered: {offered}); "
                            "leave it empty for the generator's default")
        cleaning = CleaningSettings()
        writer, deduplicator = sentence_writer(generator or None, llm or None, seed, self.device, cleaning)
        encoder = self.encoder()
        with self.bank() as bank:
            filled = fill_concept(bank, name, writer, deduplicator, cleaning, encoder, count,
                                  on_batch=lambda stored: report(stored / count, f"{stored}/{count} sentences"))
        stopped = stopped_line(filled)
        return "\n".join([*fill_lines(filled), *([stopped] if stopped else [])])

    def import_file(self, path: str, name: str | None = None, replace: bool = False) -> str:
        """Import an uploaded dbank file or pix2pix-zero .pt, checked against the server's model.
        A name in use is refused unless `replace` (nothing is lost: see Bank.import_file)."""
        from direction_bank.files import read_shared_file
        from direction_bank.sharing import import_name

        if not path:
            raise BankError("choose a file to import")
        shared = read_shared_file(path)
        import_name(shared, (name or "").strip() or None)  # before the model loads
        encoder = self.encoder()
        with self.bank() as bank, _replace_asked("import as"):
            report = bank.import_file(shared, encoder, name=(name or "").strip() or None, overwrite=replace)
        return "\n".join([report.summary(Path(path).name), *(f"warning: {w}" for w in report.warnings)])

    def export(self, name: str) -> str:
        """A saved direction, or else a concept, written to a dbank file for download; its path."""
        from direction_bank.errors import UnknownDirection

        name = check_name(name)
        with self.bank(read_only=True) as bank:
            try:
                direction = bank.direction(name)
            except UnknownDirection:
                direction = None
            folder = self._fresh_folder()
            path = folder / f"{file_label(name)}.safetensors"
            if direction is not None:  # a download names no server folder
                bank.export_direction(direction, path, names_only=True)
            else:
                bank.export_concept(name, path, names_only=True)
        return str(path)

    def _fresh_folder(self) -> Path:
        """A new folder for one download or picture; folders older than FOLDER_AGE_S go first,
        so a long-running server's disk use stays bounded."""
        import shutil
        import tempfile

        now = time.time()
        for old in self.work_dir.iterdir():
            try:
                if old.is_dir() and now - old.stat().st_mtime > FOLDER_AGE_S:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:  # removed meanwhile by another request
                pass
        return Path(tempfile.mkdtemp(dir=self.work_dir))

    # -- directions --------------------------------------------------------------------------

    def direction_names(self) -> list[str]:
        """Every saved direction's name."""
        with self.bank(read_only=True) as bank:
            return [row["name"] for row in bank.directions()]

    def directions_table(self) -> list[list]:
        """[name, source, target, norm, signal-to-noise] per saved direction."""
        with self.bank(read_only=True) as bank:
            return [[row["name"], row["source"] or "", row["target"] or "", round(row["norm"], 4),
                     None if row["snr"] is None else round(row["snr"], 2)] for row in bank.directions()]

    def example(self) -> tuple[str, str]:
        """(a saved direction made from two concepts, a prompt naming its source) for the first-run
        example, or one line saying what to make first."""
        with self.bank(read_only=True) as bank:
            for row in bank.directions():
                if row["source"] and row["target"]:
                    return row["name"], f"a photo of a {row['source']}"
        raise BankError("the bank holds no direction made from two concepts yet: add two concepts in the Bank tab, "
                        "then save a direction from them in the Directions tab")

    def diff(self, source: str, target: str, save_as: str | None = None, replace: bool = False):
        """(text, per-token plot) of target minus source; saved as `save_as` when given (a name in
        use only with `replace`, as its next version: the old one is kept)."""
        if not source or not target:
            raise BankError("choose a source and a target concept")
        from direction_bank.jobs.directions import make_direction

        with self.bank(read_only=not save_as) as bank, _replace_asked("save as"):
            direction = make_direction(bank, source, target, save_as, replace)
        saved = f"\nsaved as {direction.name}, version {direction.version}" if save_as else ""
        text = "\n".join(direction.summary_lines()) + saved
        return text, self._plot(direction)

    def compose(self, name: str, parts: list, replace: bool = False) -> str:
        """Save `name` as sum(weight x direction) of (direction, weight) pairs (a name in use
        only with `replace`, as its next version)."""
        cleaned = []
        for part, weight in parts:
            if not part:
                continue
            cleaned.append((part, _finite(weight, f"the weight of {part}", -1000, 1000)))
        with self.bank() as bank, _replace_asked("name"):
            direction = bank.compose_direction(name, cleaned, overwrite=replace)
        return "\n".join(direction.summary_lines())

    def plot(self, name: str):
        """The per-token norm plot of a saved direction (PIL)."""
        return self.describe(name)[1]

    def describe(self, name: str):
        """(text, per-token norm plot) of a saved direction: the same pair Preview shows, so the
        text and the plot always speak of one direction."""
        with self.bank(read_only=True) as bank:
            direction = bank.direction(name)
        return "\n".join(direction.summary_lines()), self._plot(direction)

    @staticmethod
    def _plot(direction):
        from editor.pictures import token_norm_plot

        return token_norm_plot(direction.token_norms(), title=direction.plot_title())

    def tune(self, name: str, photos: list[str], scales="0.5,1,1.5,2", guidances="0.05,0.1,0.2", margin=0.02,
             caption: str | None = None, steps=50, size=512, seed=0, report=_no_report):
        """(report text, trade-off plot) of jobs.tune.tune_direction on the uploaded photos; the
        chosen setting is kept on the direction (the version tuned), as `dbank tune` keeps it.
        Everything is checked before a model loads; the eval models must be had."""
        from direction_bank.jobs.evaluate import summary_lines
        from direction_bank.jobs.tune import RULE, check_tunable, tune_direction
        from editor.pictures import tradeoff_plot
        from sd_models.settings import SETTING_BOUNDS

        if not name:
            raise BankError("choose a saved direction to tune")
        photos = [photo for photo in photos or [] if photo]
        if not photos:
            raise BankError("upload at least one photo to tune on")
        if len(photos) > MAX_TUNE_PHOTOS:
            raise BankError(f"{len(photos)} photos: at most {MAX_TUNE_PHOTOS} per tuning")
        scales = _numbers(scales, "scales", *SETTING_BOUNDS["scale"])
        guidances = _numbers(guidances, "cross-attention guidance", *SETTING_BOUNDS["xa_guidance"])
        margin = _finite(margin, "the margin", 0.0, 100.0)
        steps = _whole(steps, "steps", *SETTING_BOUNDS["steps"])
        size, seed = _size(size), _whole(seed, "seed", *SEED_RANGE)
        for photo in photos:
            _photo(photo, size)
        with self.bank(read_only=True) as bank:
            direction = bank.direction(name)
        check_tunable(direction)
        scorer = self.scorer(required=True)
        with self._job(report, ["inverting", "editing"]) as editor:
            result = tune_direction(editor, scorer, direction, [(photo, (caption or "").strip() or None)
                                                                for photo in photos], scales, guidances,
                                    steps=steps, size=size, seed=seed, margin=margin)
        lines = summary_lines(result["summary"], scorer.models)
        lines += filter(None, [scorer.truncation_note()])
        lines.append(f"rule: {RULE} (margin {margin:g}: at most {result['allowed_structure_distance']:.4f})")
        if result["held_out"] is not None:
            lines += ["the held-out photos, which the choice never saw:",
                      *summary_lines(result["held_out"], scorer.models)[:-2]]
        lines.append(f"the kept scores are {result['scores_on']}")
        if result["tuning"] is None:
            lines.append("no setting kept the structure within the margin; nothing kept (try smaller scales or a "
                         "wider margin)")
        else:
            try:
                with self.bank() as bank:
                    bank.add_tuning(direction, result["tuning"])
                lines.append(f"kept on {direction.name} (version {direction.version}): scale "
                             f"{result['tuning']['scale']:g}, cross-attention guidance "
                             f"{result['tuning']['xa_guidance']:g}")
            except DirectionChanged as error:
                lines.append(str(error))
        return "\n".join(lines), tradeoff_plot(result["summary"], title=f"{direction.name}: tuning")

    # -- editing -----------------------------------------------------------------------------

    def check_photo(self, image: str) -> None:
        """Refuse an upload that is not an image (or a bomb) as soon as it lands: a FieldError."""
        from editor.pipeline import EditorError

        try:
            _photo(image, 64)
        except EditorError as error:
            raise FieldError("image", str(error)) from None

    def suggest_caption(self, image: str) -> str:
        """BLIP's caption of an image file."""
        from PIL import Image

        if not image:
            raise BankError("upload an image first")
        _photo(image, 64)  # the same checks as an edit: a real image, not a bomb
        with Image.open(image) as opened:
            return self.editor().caption(opened.convert("RGB"))

    def generate(self, prompt: str, size=512, steps=50, guidance_scale=5.0, seed=0, report=_no_report) -> str:
        """An image generated from `prompt` (a PNG path). Its starting noise is remembered, so
        editing it with the prompt as caption needs no inversion."""
        import numpy as np

        from editor.edit import SETTING_BOUNDS, EditSettings
        from editor.editor import Inversion

        prompt = (prompt or "").strip()
        if not prompt:
            raise BankError("write a prompt to generate from")
        size, seed = _size(size), _whole(seed, "seed", *SEED_RANGE)
        settings = EditSettings(_whole(steps, "steps", *SETTING_BOUNDS["steps"]), guidance_scale, 0.0, 1.0)
        with self._job(report, ["generating"]) as editor:
            start = Inversion(editor.generate_noise(size, seed), prompt, False, negative_prompt="")
            zero = np.zeros((1, editor.components.max_length, editor.hidden_size), np.float32)
            _, generated = editor.edit(start, zero, settings, keep_reference=True,
                                       pooled=np.zeros((1, editor.pooled_size), np.float32) if editor.pooled_size else None)
        path = self._fresh_folder() / f"{file_label(f'generated {seed} {size} {prompt}')}.png"
        generated.save(path)
        self._remember((_file_digest(path), prompt, size, settings.steps, seed), _Remembered(start))
        return str(path)

    def check_edit(self, image: str, caption: str | None, directions: list[str], scale=1.0, xa_guidance=0.1,
                   guidance_scale=5.0, steps=50, size=512, seed=0, attention_word: str | None = None,
                   use_tuned: bool = False) -> "_EditRequest":
        """Every input of an edit checked, the directions read from the bank and the photo opened,
        before any model loads; a bad one is a FieldError naming its parameter, in the page's words."""
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
        if not names:
            raise FieldError("directions", "choose at least one direction")
        if len(names) > MAX_DIRECTIONS_PER_EDIT:
            raise FieldError("directions", f"{len(names)} directions: at most {MAX_DIRECTIONS_PER_EDIT} per edit")
        typed = {}
        for name, value in (("scale", scale), ("xa_guidance", xa_guidance), ("guidance_scale", guidance_scale)):
            typed[name] = _finite(value, SETTING_LABELS[name], *SETTING_BOUNDS[name], field=name)
        steps = _whole(steps, "steps", *SETTING_BOUNDS["steps"])
        size, seed = _size(size), _whole(seed, "seed", *SEED_RANGE)
        caption = (caption or "").strip() or None
        try:
            _photo(image, size)
        except EditorError as error:  # the same line check_photo gives at the upload
            raise FieldError("image", str(error)) from None
        with self.bank(read_only=True) as bank:
            try:
                entries, _ = resolve_directions(saved_directions(bank, names), strict=True)
            except BankError as error:
                raise FieldError("directions", str(error)) from None
        entries, chosen_scale, chosen_guidance, notes = apply_tuning(
            entries, None if use_tuned else typed["scale"], None if use_tuned else typed["xa_guidance"])
        settings = EditSettings(steps, typed["guidance_scale"], chosen_guidance, chosen_scale)
        word = (attention_word or "").strip()
        controls = [names, typed["scale"], typed["xa_guidance"], typed["guidance_scale"], steps, size, seed, word,
                    bool(use_tuned)]
        return _EditRequest(image, caption, entries, settings, size, seed, word, notes, controls)

    def edit(self, image: str, caption: str | None, directions: list[str], scale=1.0, xa_guidance=0.1,
             guidance_scale=5.0, steps=50, size=512, seed=0, attention_word: str | None = None,
             report=_no_report, use_tuned: bool = False) -> EditOutcome:
        """Invert `image` (or reuse its inversion from an earlier call) and edit it with saved
        directions; the second direction on the same image and settings reuses the inversion and
        the reference pass, and the outcome says so. With `use_tuned`, each tuned direction gets
        its tuned scale and guidance (dbank tune) instead of `scale` and `xa_guidance`, and the
        notes say so. Each edit is scored when the eval models can be had. Inputs are checked
        first (check_edit); the run is jobs.edit.run_edit, as dbank edit's, into a fresh folder."""
        from direction_bank.jobs.edit import Engine, EditRun, PhotoToEdit, check_shapes, run_edit

        request = self.check_edit(image, caption, directions, scale, xa_guidance, guidance_scale, steps, size, seed,
                                  attention_word, use_tuned)
        caption, entries, settings = request.caption, request.entries, request.settings
        size, seed, word = request.size, request.seed, request.word
        digest = _file_digest(image)
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
                           on_inverted=lambda inversion: self._remember(key, _Remembered(inversion)))
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
                                warnings)
        outcome.controls = [outcome.caption, *request.controls]
        return outcome

    def settings_from_png(self, path: str) -> dict:
        """The settings a dbank edit's PNG carries, for the page's controls: caption, the
        direction (the version it used, by fingerprint), scale, cross-attention guidance,
        guidance scale, steps, size, seed; `note` says when an older version is used."""
        from direction_bank.edit_records import read_parameters

        if not path:
            raise BankError("drop a PNG that dbank made")
        data, entry = read_parameters(path)
        with self.bank(read_only=True) as bank:
            reference, current = bank.version_with_fingerprint(entry.direction, entry.fingerprint)
        notes = [] if current else [f"{entry.direction!r} has changed since; loaded version "
                                    f"{reference.rsplit('@', 1)[1]}, the one this picture was made with"]
        if data["model"] not in (self.model, self.model_name):  # a picture never chooses the server's model
            notes.append(f"the picture was made with another model ({Path(data['model']).name}); "
                         "this studio edits with its own")
        note = "; ".join(notes)
        return {"caption": data["caption"], "directions": [reference], "scale": entry.scale,
                "xa_guidance": entry.xa_guidance, "guidance_scale": data["guidance_scale"], "steps": data["steps"],
                "size": data["size"], "seed": data["seed"], "note": note}

    def _scores(self, photo, caption: str, entries: list, edits: list, reconstruction) -> tuple[dict, list]:
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
        told = len(scorer.clip.truncated)
        scores = scorer.score(pairs)
        notes = [scorer.truncation_note()] if len(scorer.clip.truncated) > told else []
        return {**{d.label: s for (d, _), s in zip(known, scores)}, "reconstruction": scores[-1]}, notes

    def _outcome(self, image, remembered, edited, folder: Path, seconds, inverted, reused, first, notes, warnings):
        """The EditOutcome of jobs.edit.run_edit's EditedImage: the pictures the page shows (input,
        reconstruction, each direction, the attention overlay) with their scores, and a zip of
        every file the job wrote into `folder`, the photo saved beside them as STEM.input.png."""
        from direction_bank.jobs.edit import INPUT
        from editor.pictures import photo_at, save_png

        caption = edited.caption
        reconstruction_path, reconstruction = edited.reconstruction
        photo = photo_at(image, reconstruction.size)
        photo_path = folder / f"{file_label(Path(image).stem)}.{INPUT}.png"
        save_png(photo, photo_path)
        scores, score_notes = self._scores(photo, caption, edited.directions,
                                           [picture for _, _, picture in edited.edits], reconstruction)
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
        archive = folder / f"{file_label(Path(image).stem)}-edits.zip"
        with zipfile.ZipFile(archive, "w") as opened:
            for path in [photo_path, *map(Path, edited.files)]:
                opened.write(path, path.name)
        return EditOutcome(caption, [(picture, label) for picture, _, label in shown], overlay, str(archive), seconds,
                           reused, message, [*notes, *score_notes, *warnings], scores,
                           [(str(path), label) for _, path, label in shown])

    # -- the memory of recent images ------------------------------------------------------------

    def _remember(self, key, remembered: _Remembered) -> None:
        self._remembered[key] = remembered
        self._remembered.move_to_end(key)
        while len(self._remembered) > REMEMBERED_IMAGES:
            self._remembered.popitem(last=False)


def scored_label(name: str, scores: dict | None) -> str:
    """A gallery caption: the picture's name, and its scores when it has some."""
    if not scores:
        return name
    return (f"{name} · CLIP dir. {scores['clip_directional_similarity']:.3f} · structure "
            f"{scores['structure_distance']:.4f} · change {scores['whole_image_change']:.3f}")


def _file_digest(path) -> str:
    """SHA-256 of a file's bytes: the memory of recent images is keyed by content, not by path."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _photo(image: str, size: int):
    """load_image of an uploaded photo; a refusal names the file as the visitor knows it, not
    the server's path of its copy."""
    from editor.pipeline import EditorError, load_image

    try:
        return load_image(image, size)
    except EditorError as error:
        raise EditorError(str(error).replace(str(image), Path(image).name)) from None


def _whole(value, what: str, low: int, high: int, field: str | None = None) -> int:
    """`value` as an int in [low, high], or a one-line FieldError of `field` (`what` by default)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FieldError(field or what, f"{what} {_shown_value(value)}: not a number; use a whole number from "
                                        f"{low} to {high}") from None
    if not number.is_integer() or not low <= number <= high:
        raise FieldError(field or what, f"{what} {_shown_value(value)}: use a whole number from {low} to {high}")
    return int(number)


def _finite(value, what: str, low: float, high: float, field: str | None = None) -> float:
    """`value` as a finite float in [low, high], or a one-line FieldError of `field`."""
    import math

    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FieldError(field or what, f"{what} {_shown_value(value)}: not a number; use a number from "
                                        f"{low:g} to {high:g}") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise FieldError(field or what, f"{what} {_shown_value(value)}: use a finite number from {low:g} to {high:g}")
    return number


def _row_id(value, what: str, table: str) -> int:
    """A row's id as typed (or filled by clicking the row), or one line that points at the table."""
    try:
        return _whole(value, what, 1, 2**63 - 1)
    except FieldError:
        raise FieldError(what, f"{what} {_shown_value(value)}: not an id of the {table}; click a row there to "
                               "fill it in") from None


def _shown_value(value) -> str:
    """A typed value as a message quotes it: empty says so, a long one is cut."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return "(empty)"
    return repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."


def _size(value) -> int:
    size = _whole(value, "size", *SIZE_RANGE)
    if size % 8:
        raise FieldError("size", f"size {size}: use a multiple of 8 from {SIZE_RANGE[0]} to {SIZE_RANGE[1]}")
    return size


def _numbers(text, what: str, low: float, high: float) -> list[float]:
    """Comma-separated finite numbers in [low, high] (at most MAX_TUNE_VALUES), or one line."""
    parts = [part.strip() for part in str(text or "").split(",") if part.strip()]
    if not parts:
        raise BankError(f"{what}: give comma-separated numbers")
    if len(parts) > MAX_TUNE_VALUES:
        raise BankError(f"{what}: {len(parts)} values; at most {MAX_TUNE_VALUES}")
    return list(dict.fromkeys(_finite(part, what, low, high) for part in parts))
