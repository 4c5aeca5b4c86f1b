"""Scoring edits from their records (edit_records) and the report of a run: per edit the metrics
of editor.evaluation, per direction and setting their means with seeded bootstrap intervals, a
CSV of each, and the plot of CLIP directional similarity against structure distance."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from direction_bank.jobs.edit_records import EditRecord
from direction_bank.errors import BankError
from editor.evaluation import FEW_IMAGES

WORD_SWAP = "word-swap"
RECONSTRUCTION = "reconstruction"
SUMMARY_METRICS = ("clip_directional_similarity", "clip_accuracy", "structure_distance", "background_change",
                   "whole_image_change")
# which way each score is better: the edit goes where the text says (higher), keeps the layout
# and the background (lower)
HIGHER_IS_BETTER = {"clip_directional_similarity": True, "clip_accuracy": True, "structure_distance": False,
                    "background_change": False, "whole_image_change": False}
BETTER_LINE = (f"higher {', '.join(m for m, up in HIGHER_IS_BETTER.items() if up)}; "
               f"lower {', '.join(m for m, up in HIGHER_IS_BETTER.items() if not up)}")


def unknown_concepts(label: str, job: str) -> str:
    """The line for a direction whose concepts are unknown, which `job` cannot score."""
    return (f"{label}: its concepts are unknown (a sum of directions, or a file without them); {job} needs a source "
            "and a target to score against")


def class_prompt(concept: str) -> str:
    """The zero-shot prompt of a concept: 'a photo of a horse'."""
    return f"a photo of a {concept}"


def swapped_caption(caption: str, source: str, target: str) -> str | None:
    """The caption with each whole-word `source` replaced by `target` (case-insensitive), or
    None when the caption does not name the source."""
    pattern = re.compile(rf"(?<!\w){re.escape(source)}(?!\w)", re.IGNORECASE)
    return pattern.sub(target, caption) if pattern.search(caption) else None


def score_pair(photo, picture, caption: str, source: str, target: str, mask=None):
    """The editor.evaluation.ScorePair of an edit of `photo` from `source` to `target`: its text
    change is the caption to the caption with the word swapped where the caption names the
    source, else 'a photo of a SOURCE' to 'a photo of a TARGET'."""
    from editor.evaluation import ScorePair

    swapped = swapped_caption(caption, source, target)
    texts = (caption, swapped) if swapped else (class_prompt(source), class_prompt(target))
    return ScorePair(photo, picture, *texts, class_prompt(source), class_prompt(target), mask)


@dataclass
class ScoredEdit:
    """One scored picture: which image, direction, kind ('direction', 'word-swap' or
    'reconstruction') and setting, the texts it was scored against, and its scores."""

    image: str
    file: str
    direction: str
    kind: str
    source: str
    target: str
    scale: float | None
    xa_guidance: float | None
    source_text: str
    target_text: str
    scores: dict

    @property
    def setting(self) -> str:
        """'scale 1, xa 0.1', or 'reconstruction'."""
        return RECONSTRUCTION if self.kind == RECONSTRUCTION else f"scale {self.scale:g}, xa {self.xa_guidance:g}"

    def row(self) -> dict:
        """A flat row for the per-edit CSV and JSON."""
        return {"image": self.image, "file": self.file, "direction": self.direction, "kind": self.kind,
                "source": self.source, "target": self.target, "scale": self.scale, "xa_guidance": self.xa_guidance,
                "source_text": self.source_text, "target_text": self.target_text, **self.scores}


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            return opened.convert("RGB")
    except FileNotFoundError:
        raise BankError(f"{path}: no such file (named by its edit record)") from None
    except (UnidentifiedImageError, OSError) as error:
        raise BankError(f"{path}: not an image ({error})") from None


def _pairs_of(record: EditRecord, baselines: tuple[str, ...], seen: set):
    """[(ScoredEdit without scores, ScorePair)] of one record: each edit whose concepts are
    known, and with 'reconstruction' in `baselines` the reconstruction once per image, direction
    and pair of concepts (`seen` holds those already scored: records of other guidances share it).
    Raises BankError (one line) for a record whose pictures cannot be scored."""
    from editor.evaluation import attention_mask
    from editor.pictures import photo_at

    reconstruction = _open(record.path_of(record.reconstruction))
    if not Path(record.input).is_file():
        raise BankError(f"{record.input}: the input photo its edit record names is gone")
    try:
        photo = photo_at(record.input, reconstruction.size)
    except OSError as error:
        raise BankError(f"{record.input}: not an image ({error})") from None
    masks = {}
    for word, name in record.masks.items():
        grey = _open(record.path_of(name))
        if grey.size != photo.size:
            raise BankError(f"{record.path_of(name)}: {grey.size[0]}x{grey.size[1]}, its edits "
                            f"{photo.size[0]}x{photo.size[1]}")
        masks[word.lower()] = attention_mask(grey)
    pairs = []
    image = str(record.input)

    def pair(kind, entry, picture, file):
        scored = score_pair(photo, picture, record.caption, entry.source, entry.target,
                            masks.get(entry.source.lower()))
        edit = ScoredEdit(image, file, entry.direction, kind, entry.source, entry.target,
                          None if kind == RECONSTRUCTION else entry.scale,
                          None if kind == RECONSTRUCTION else entry.xa_guidance, scored.source_text,
                          scored.target_text, {})
        return edit, scored

    for entry in record.edits:
        if not entry.source or not entry.target:
            continue
        picture = _open(record.path_of(entry.file))
        if picture.size != photo.size:
            raise BankError(f"{record.path_of(entry.file)}: {picture.size[0]}x{picture.size[1]}, but its "
                            f"reconstruction is {photo.size[0]}x{photo.size[1]}; not an edit of this record")
        pairs.append(pair(entry.baseline or "direction", entry, picture, entry.file))
        key = (image, record.reconstruction, entry.direction, entry.source, entry.target)
        if RECONSTRUCTION in baselines and entry.baseline is None and key not in seen:
            seen.add(key)
            pairs.append(pair(RECONSTRUCTION, entry, reconstruction, record.reconstruction))
    return pairs


def score_records(records: list[EditRecord], scorer, baselines: tuple[str, ...] = (WORD_SWAP, RECONSTRUCTION),
                  batch_size: int = 16, progress=None) -> tuple[list[ScoredEdit], list[str]]:
    """(scored edits, one line per record that could not be scored or edit left out). Edits of
    unknown concepts (a sum of directions, a file without them) are left out with a line;
    word-swap edits count when `baselines` holds 'word-swap'."""
    scored, problems, waiting, seen = [], [], [], set()

    def flush():
        if waiting:
            for (edit, _), scores in zip(waiting, scorer.score([p for _, p in waiting], batch_size)):
                edit.scores = scores
                scored.append(edit)
            waiting.clear()

    for record in records:
        unknown = sorted({e.label for e in record.edits if not (e.source and e.target)})
        if unknown:
            problems.append(f"{record.input}: {unknown_concepts(', '.join(unknown), 'eval')}; not scored")
        try:
            pairs = _pairs_of(record, baselines, seen)
        except BankError as error:
            problems.append(str(error))
            pairs = []
        waiting += [(edit, pair) for edit, pair in pairs if edit.kind != WORD_SWAP or WORD_SWAP in baselines]
        if len(waiting) >= batch_size:
            flush()
        if progress is not None:
            progress.update(1)
    flush()
    return scored, problems


def summarise(scored: list[ScoredEdit], seed: int = 0, resamples: int = 2000) -> list[dict]:
    """Per direction, kind and setting: how many images, and each metric's mean with its 95%
    bootstrap interval over them (the same for the same seed), bank directions first."""
    from editor.evaluation import bootstrap_interval

    groups: dict = {}
    for edit in scored:
        key = (edit.direction, edit.kind, edit.source, edit.target, edit.scale, edit.xa_guidance)
        groups.setdefault(key, []).append(edit)
    order = {"direction": 0, WORD_SWAP: 1, RECONSTRUCTION: 2}
    summary = []
    for (direction, kind, source, target, scale, xa), edits in sorted(
            groups.items(), key=lambda item: (order[item[0][1]], item[0][0], item[0][4] or 0, item[0][5] or 0)):
        row = {"direction": direction, "kind": kind, "source": source, "target": target, "scale": scale,
               "xa_guidance": xa, "setting": edits[0].setting, "images": len(edits)}
        for metric in SUMMARY_METRICS:
            mean, low, high, n = bootstrap_interval([e.scores.get(metric) for e in edits], seed, resamples)
            row[metric] = {"mean": mean, "low": low, "high": high, "n": n}
        summary.append(row)
    return summary


def summary_lines(summary: list[dict], models: dict) -> list[str]:
    """The summary as a terminal table: one row per direction and setting, mean [low, high]."""
    columns = [("clip_directional_similarity", "CLIP dir. sim."), ("clip_accuracy", "CLIP acc."),
               ("structure_distance", "structure"), ("background_change", "background"),
               ("whole_image_change", "whole image")]

    def cell(stat):
        if stat["mean"] is None:
            return "-"
        if stat["low"] is None:
            return f"{stat['mean']:.3f} (1 image: no interval)"
        few = f" (n={stat['n']}: wide)" if stat["n"] < FEW_IMAGES else ""
        return f"{stat['mean']:.3f} [{stat['low']:.3f}, {stat['high']:.3f}]{few}"

    header = ["direction", "kind", "setting", "n", *[title for _, title in columns]]
    rows = [[row["direction"], row["kind"], row["setting"], str(row["images"]),
             *[cell(row[metric]) for metric, _ in columns]] for row in summary]
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip() for line in [header, *rows]]
    lines.append("mean [95% BCa bootstrap interval] over the n images; an interval over fewer than "
                 f"{FEW_IMAGES} images rests on that few and is wide for that reason")
    lines.append(f"better: {BETTER_LINE}; CLIP: {models['clip_directional_similarity']}, structure: DINO "
                 f"{models['structure_distance']}")
    return lines


def summary_csv_rows(summary: list[dict]) -> list[dict]:
    """The summary flattened for a CSV: METRIC, METRIC_low, METRIC_high, METRIC_n columns."""
    rows = []
    for row in summary:
        flat = {key: value for key, value in row.items() if key not in SUMMARY_METRICS}
        for metric in SUMMARY_METRICS:
            flat.update({metric: row[metric]["mean"], f"{metric}_low": row[metric]["low"],
                         f"{metric}_high": row[metric]["high"], f"{metric}_n": row[metric]["n"]})
        rows.append(flat)
    return rows


def csv_text(rows: list[dict]) -> str:
    """Rows (dicts with the same keys) as CSV text, after a '#' line saying which way each
    score is better (pandas: read_csv(comment='#'); csv: skip lines starting '#')."""
    import csv
    import io

    buffer = io.StringIO()
    buffer.write(f"# better: {BETTER_LINE}\n")
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def report_paths(folder: Path) -> dict[str, Path]:
    """The files a report writes into its folder."""
    return {"scores": folder / "eval-scores.csv", "summary": folder / "eval-summary.csv",
            "plot": folder / "eval-tradeoff.png"}


def write_report(folder: Path, scored: list[ScoredEdit], summary: list[dict], overwrite: bool) -> dict[str, str]:
    """Write the per-edit CSV, the summary CSV and the trade-off plot into `folder`, each safely;
    a file that exists already is left as it is when it holds the same bytes (a rerun of a
    finished eval), and replaced only with `overwrite` when it differs. All are checked before
    any is written. Returns the paths, by kind."""
    import io

    from direction_bank.output_files import check_output, remove_stale_temporaries, write_output
    from editor.pictures import save_png, tradeoff_plot

    paths = report_paths(folder)
    remove_stale_temporaries(paths.values())  # what a killed eval left half written
    plot = io.BytesIO()
    save_png(tradeoff_plot(summary), plot)
    contents = {"scores": csv_text([edit.row() for edit in scored]).encode(),
                "summary": csv_text(summary_csv_rows(summary)).encode(), "plot": plot.getvalue()}
    changed = {kind: data for kind, data in contents.items()
               if not (paths[kind].is_file() and not paths[kind].is_symlink() and paths[kind].read_bytes() == data)}
    for kind in changed:
        check_output(paths[kind], overwrite)
    for kind, data in changed.items():
        write_output(paths[kind], lambda temporary, data=data: temporary.write_bytes(data), overwrite)
    return {kind: str(path) for kind, path in paths.items()}


def word_swap_direction(encoder, source: str, target: str) -> tuple:
    """(tokens [1, 77, D], pooled [1, P] or None): 'a photo of a TARGET' minus 'a photo of a
    SOURCE' through the bank's text encoder (encoder.TextEncoder), embedded as its sentences are:
    the baseline a bank direction has to beat."""
    import torch

    from sd_models.prompts import encode_text

    with torch.inference_mode():
        states, pooled = encode_text(encoder.parts, [class_prompt(source), class_prompt(target)],
                                     encoder.max_length, encoder.device)
    tokens = (states[1:] - states[:1]).float().cpu().numpy()
    return tokens, None if pooled is None else (pooled[1:] - pooled[:1]).float().cpu().numpy()
