"""One studio server's state, shared by its tabs: the bank (opened per call, so other writers are
seen), the models (loaded on first use and kept), the one model job running and who may cancel
it, the folders offered for download, and recent inversions in memory."""
from __future__ import annotations

import contextvars
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from direction_bank.bank import Bank

REMEMBERED_IMAGES = 8  # inversions (with their reference passes) kept in memory
FOLDER_AGE_S = 2 * 3600  # downloads and generated pictures are kept this long
MAX_UPLOAD = "100mb"  # the largest file a visitor may upload (a photo, a dbank file)
# the visitor (the page's Gradio session) an action runs for; a job keeps its own, and only that
# visitor may cancel it
VISITOR = contextvars.ContextVar("dbank_studio_visitor", default="")


STOPPING = "stopping at the next step"


def no_report(fraction: float, desc: str) -> None:
    pass


class JobProgress:
    """One progress bar for a whole model job: each of its `phases` (the model loops it runs, in
    order: "inverting", "editing") an equal share, its text the phase, the step and the time left."""

    def __init__(self, report, phases: list[str]):
        self.report, self.phases, self.started = report, list(phases), time.monotonic()

    def step(self, desc: str, number: int, total: int) -> None:
        """Step `number` (from 0) of `total` of the loop `desc` is about to run."""
        index = self.phases.index(desc) if desc in self.phases else max(len(self.phases) - 1, 0)
        desc = self.phases[index] if self.phases else desc  # a generation's loop is an edit's: say "generating"
        fraction = (index + number / max(total, 1)) / max(len(self.phases), 1)
        elapsed = time.monotonic() - self.started
        left = f", about {elapsed / fraction * (1 - fraction):.0f} s left" if fraction >= 0.05 else ""
        phase = f" ({index + 1} of {len(self.phases)})" if len(self.phases) > 1 else ""
        self.report(fraction, f"{desc}{phase}: step {number + 1} of {total}{left}")


@dataclass
class Remembered:
    inversion: object
    first_seconds: float | None = None


class StudioSession:
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

        from direction_bank.sharing.transfer import model_name
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
        # the files of each edit of a photo this session, by the photo's digest: its zip holds them all
        self._edits_of: OrderedDict = OrderedDict()
        self._progress = JobProgress(no_report, [])
        self._running, self._owner = False, ""
        # visitors whose Run was clicked and whose job has not ended: whether they cancelled it
        # before it reached the model (so a Cancel during the start is not lost; see expect_job)
        self._expected: dict[str, bool] = {}

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
                from direction_bank.text.encoder import TextEncoder
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
        cleared at the start, or set when its visitor cancelled while it was starting (see cancel)."""
        editor = self.editor()
        owner = VISITOR.get()
        editor.cancel.clear()
        if self._expected.get(owner):
            editor.cancel.set()  # the first step stops it
        self._progress, self._running, self._owner = JobProgress(report, phases), True, owner
        try:
            yield editor
        finally:
            self._progress, self._running = JobProgress(no_report, []), False

    def expect_job(self) -> None:
        """The page's Run was clicked: until job_over, a Cancel from this visitor stops the job
        even before it reaches the model (loading, checking, or queued behind another's)."""
        self._expected[VISITOR.get()] = False

    def job_over(self) -> None:
        """The page's job ended (done, failed or cancelled)."""
        self._expected.pop(VISITOR.get(), None)

    def cancel(self) -> str:
        """Stop this visitor's model job at its next step (it then keeps nothing), or, when it has
        not reached the model yet, at its first; a line saying so."""
        visitor = VISITOR.get()
        if self._editor is not None and self._running and visitor == self._owner:
            self._editor.cancel.set()
            return STOPPING
        if visitor in self._expected:
            self._expected[visitor] = True
            return STOPPING
        if self._editor is not None and self._running:
            return "another visitor's job is running; only they can cancel it"
        return "nothing is running"

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

    # -- the memory of recent images ------------------------------------------------------------

    def _remember(self, key, remembered: Remembered) -> None:
        self._remembered[key] = remembered
        self._remembered.move_to_end(key)
        while len(self._remembered) > REMEMBERED_IMAGES:
            self._remembered.popitem(last=False)
