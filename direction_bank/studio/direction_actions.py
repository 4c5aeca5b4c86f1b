"""The Directions tab's actions: a direction previewed, saved, composed, plotted and tuned; plain
calls over the bank and jobs/, one-line errors for bad input."""
from __future__ import annotations

from direction_bank.errors import BankError, DirectionChanged
from direction_bank.studio.fields import finite, image_size, numbers, opened_photo, replace_asked, whole
from direction_bank.studio.session import StudioSession, no_report
from sd_models.settings import SEED_RANGE

MAX_TUNE_PHOTOS = 16  # photos one Tune click may edit


class DirectionActions(StudioSession):
    """What the Directions tab does."""


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
        """(a saved direction made from two concepts, a prompt that names its source) for the
        first-run example, or one line saying what to make first. The prompt is the shortest of
        the source concept's own sentences that names it (a caption that reads naturally, which
        the edit's word then finds); 'a photo of a SOURCE' only for a concept without sentences.
        Directions whose source has such a sentence come first, then by name."""
        from direction_bank.jobs.evaluate import class_prompt
        from direction_bank.jobs.word_edit import concept_in_caption

        choices = []
        with self.bank(read_only=True) as bank:
            for row in bank.directions():
                if not (row["source"] and row["target"]):
                    continue
                naming = [record.text for record in bank.sentences(row["source"])
                          if concept_in_caption(record.text, [row["source"]])]
                prompt = min(naming, key=lambda text: (len(text), text)) if naming else class_prompt(row["source"])
                choices.append((not naming, row["name"], prompt))
        if not choices:
            raise BankError("the bank holds no direction made from two concepts yet: add two concepts in the Bank "
                            "tab, then save a direction from them in the Directions tab")
        _, name, prompt = min(choices)
        return name, prompt

    def diff(self, source: str, target: str, save_as: str | None = None, replace: bool = False):
        """(text, per-token plot) of target minus source; saved as `save_as` when given (a name in
        use only with `replace`, as its next version: the old one is kept)."""
        if not source or not target:
            raise BankError("choose a source and a target concept")
        from direction_bank.jobs.directions import make_direction

        with self.bank(read_only=not save_as) as bank, replace_asked("save as"):
            direction = make_direction(bank, source, target, save_as, replace)
        saved = f"\n{direction.saved_line()}" if save_as else ""
        text = "\n".join(direction.summary_lines()) + saved
        return text, self._plot(direction)

    def compose(self, name: str, parts: list, replace: bool = False) -> str:
        """Save `name` as sum(weight x direction) of (direction, weight) pairs (a name in use
        only with `replace`, as its next version)."""
        cleaned = []
        for part, weight in parts:
            if not part:
                continue
            cleaned.append((part, finite(weight, f"the weight of {part}", -1000, 1000)))
        with self.bank() as bank, replace_asked("name"):
            direction = bank.compose_direction(name, cleaned, overwrite=replace)
        return "\n".join([*direction.summary_lines(), direction.saved_line()])

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
             caption: str | None = None, steps=50, size=512, seed=0, report=no_report):
        """(report text, trade-off plot) of jobs.tune.tune_direction on the uploaded photos; the
        chosen setting is kept on the direction (the version tuned), as `dbank tune` keeps it.
        Everything is checked before a model loads; the eval models must be had."""
        from direction_bank.jobs.tune import check_tunable, tune_direction, tuning_lines
        from editor.pictures import tradeoff_plot
        from sd_models.settings import SETTING_BOUNDS

        if not name:
            raise BankError("choose a saved direction to tune")
        photos = [photo for photo in photos or [] if photo]
        if not photos:
            raise BankError("upload at least one photo to tune on")
        if len(photos) > MAX_TUNE_PHOTOS:
            raise BankError(f"{len(photos)} photos: at most {MAX_TUNE_PHOTOS} per tuning")
        scales = numbers(scales, "scales", *SETTING_BOUNDS["scale"])
        guidances = numbers(guidances, "cross-attention guidance", *SETTING_BOUNDS["xa_guidance"])
        margin = finite(margin, "the margin", 0.0, 100.0)
        steps = whole(steps, "steps", *SETTING_BOUNDS["steps"])
        size, seed = image_size(size), whole(seed, "seed", *SEED_RANGE)
        for photo in photos:
            opened_photo(photo, size)
        with self.bank(read_only=True) as bank:
            direction = bank.direction(name)
        check_tunable(direction)
        scorer = self.scorer(required=True)
        with self._job(report, ["inverting", "editing"]) as editor:
            result = tune_direction(editor, scorer, direction, [(photo, (caption or "").strip() or None)
                                                                for photo in photos], scales, guidances,
                                    steps=steps, size=size, seed=seed, margin=margin)
        lines = [*tuning_lines(result, scorer.models, margin, kept="kept"), *filter(None, [scorer.truncation_note()])]
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
