"""Tuning a direction: edit photos over a grid of scales and cross-attention guidance (each photo
inverted once and its reference pass kept, as `dbank sweep` does), score every edit and the
reconstruction, and choose a setting by a stated rule."""
from __future__ import annotations

from datetime import datetime, timezone

from direction_bank.errors import BankError
from direction_bank.jobs.evaluate import RECONSTRUCTION, ScoredEdit, score_pair, summarise, summary_lines, unknown_concepts

DEFAULT_MARGIN = 0.02
DEFAULT_SCALE, DEFAULT_XA_GUIDANCE = 1.0, 0.1
DEFAULT_HOLDOUT, MIN_PHOTOS_TO_HOLD_OUT = 0.5, 4
RULE = ("among the settings whose mean structure distance stays within the margin of the reconstruction's, the "
        "highest mean CLIP directional similarity, counted better only where its 95% interval clears the "
        "runner-up's; where it does not, the smaller scale (then the smaller guidance) of the two")


def check_tunable(direction) -> None:
    """One line, before any model loads, for a direction tune cannot score (no source or target)."""
    if not (direction.source and direction.target):
        raise BankError(unknown_concepts(direction.name, "tune"))


def _clears(better: dict, other: dict) -> bool:
    """Whether `better`'s CLIP directional similarity interval lies wholly above `other`'s (with
    one image, and so no interval, whether its mean is higher)."""
    a, b = better["clip_directional_similarity"], other["clip_directional_similarity"]
    low = a["low"] if a["low"] is not None else a["mean"]
    high = b["high"] if b["high"] is not None else b["mean"]
    return low > high


def choose_setting(summary: list[dict], margin: float) -> tuple[dict | None, float]:
    """(the chosen summary row or None, the structure distance allowed): RULE over the rows of
    jobs.evaluate.summarise. The best mean wins over the runner-up only when its interval clears
    the runner-up's; otherwise the smaller |scale| of the two (then the smaller guidance)."""
    [reconstruction] = [row for row in summary if row["kind"] == RECONSTRUCTION]
    allowed = reconstruction["structure_distance"]["mean"] + margin
    kept = [row for row in summary if row["kind"] == "direction"
            and row["structure_distance"]["mean"] <= allowed
            and row["clip_directional_similarity"]["mean"] is not None]
    if not kept:
        return None, allowed
    ranked = sorted(kept, key=lambda row: -row["clip_directional_similarity"]["mean"])
    best = ranked[0]
    if len(ranked) > 1 and not _clears(best, ranked[1]):
        best = min(ranked[:2], key=lambda row: (abs(row["scale"]), row["xa_guidance"]))
    return best, allowed


def held_out_photos(count: int, holdout: float | None, seed: int = 0) -> list[int]:
    """Which of `count` photos (by index) tune scores its choice on and never chooses with:
    `holdout` of them (default DEFAULT_HOLDOUT from MIN_PHOTOS_TO_HOLD_OUT photos on, none
    below), at least one and never all, picked by a seeded shuffle."""
    import random

    if holdout is None:
        holdout = DEFAULT_HOLDOUT if count >= MIN_PHOTOS_TO_HOLD_OUT else 0.0
    held = min(max(round(count * holdout), 1), count - 1) if holdout > 0 and count >= 2 else 0
    return sorted(random.Random(seed).sample(range(count), held))


def tune_direction(editor, scorer, direction, photos: list[tuple[str, str | None]], scales: list[float],
                   guidances: list[float], *, steps: int = 50, guidance_scale: float = 5.0, seed: int = 0,
                   size: int = 512, margin: float = DEFAULT_MARGIN, bootstrap_seed: int = 0, batch_size: int = 16,
                   holdout: float | None = None, progress=None) -> dict:
    """Edit each (photo, caption or None) with `direction` (a bank DirectionResult with a source
    and a target) at every scale x guidance, score the edits and the reconstruction, choose a
    setting (RULE) on the photos not held out (held_out_photos) and report the chosen setting's
    scores on the held-out ones, so the choice does not grade its own homework (with too few
    photos, on the same ones, and said so). Returns {"summary" (the choosing photos), "held_out"
    (the summary of the held-out photos, or None), "scored", "chosen" (row or None), "tuning"
    (the dict a bank keeps, or None when no setting kept the structure), "scores_on"}."""
    from editor.edit import EditSettings
    from editor.evaluation import attention_mask
    from editor.inversion import Regularisation
    from editor.pictures import photo_at
    from editor.pipeline import stack_directions

    check_tunable(direction)
    editor.check_direction(direction.name, direction.tensor, direction.pooled)
    tokens, pooled = stack_directions([(scale * direction.tensor, None if direction.pooled is None
                                        else scale * direction.pooled) for scale in scales])
    scored, pairs = [], []
    for path, caption in photos:
        inversion = editor.invert_file(path, caption, size, steps, Regularisation(), seed)
        for index, guidance in enumerate(guidances):
            words = (direction.source,) if index == 0 else ()
            edits, reconstruction, *maps = editor.edit(
                inversion, tokens, EditSettings(steps, guidance_scale, guidance, 1.0), keep_reference=True,
                pooled=pooled, attention_words=words)
            if index == 0:
                photo = photo_at(path, reconstruction.size)
                grey = (maps[0] if maps else {}).get(direction.source)
                mask = None if grey is None else attention_mask(grey)
                pairs.append((ScoredEdit(str(path), "", direction.name, RECONSTRUCTION, direction.source,
                                         direction.target, None, None, "", "", {}),
                              score_pair(photo, reconstruction, inversion.caption, direction.source,
                                         direction.target, mask)))
            for scale, picture in zip(scales, edits):
                pairs.append((ScoredEdit(str(path), "", direction.name, "direction", direction.source,
                                         direction.target, scale, guidance, "", "", {}),
                              score_pair(photo, picture, inversion.caption, direction.source, direction.target,
                                         mask)))
        if progress is not None:
            progress.update(1)
    for (edit, pair), scores in zip(pairs, scorer.score([pair for _, pair in pairs], batch_size)):
        edit.source_text, edit.target_text, edit.scores = pair.source_text, pair.target_text, scores
        scored.append(edit)
    held = {str(photos[index][0]) for index in held_out_photos(len(photos), holdout, seed)}
    summary = summarise([edit for edit in scored if edit.image not in held], bootstrap_seed)
    held_out = summarise([edit for edit in scored if edit.image in held], bootstrap_seed) if held else None
    chosen, allowed = choose_setting(summary, margin)
    scores_on = (f"held-out: {len(held)} of {len(photos)} photos, not used to choose" if held else
                 f"in-sample: the {len(photos)} photo{'s' * (len(photos) != 1)} the setting was chosen on "
                 f"(hold some out with {MIN_PHOTOS_TO_HOLD_OUT} photos or more)")
    tuning = None
    if chosen is not None:
        graded = chosen if held_out is None else next(
            row for row in held_out if row["kind"] == "direction" and row["scale"] == chosen["scale"]
            and row["xa_guidance"] == chosen["xa_guidance"])
        reconstruction = next(row for row in (held_out or summary) if row["kind"] == RECONSTRUCTION)
        tuning = {"scale": chosen["scale"], "xa_guidance": chosen["xa_guidance"], "rule": RULE, "margin": margin,
                  "reconstruction_structure_distance": reconstruction["structure_distance"]["mean"],
                  "scores": {metric: graded[metric]["mean"] for metric in
                             ("clip_directional_similarity", "clip_accuracy", "structure_distance",
                              "background_change", "whole_image_change")},
                  "scores_on": scores_on, "held_out_photos": len(held),
                  "photos": len(photos), "scales": list(scales), "xa_guidances": list(guidances), "steps": steps,
                  "guidance_scale": guidance_scale, "size": size, "clip_model": scorer.clip_model,
                  "dino_model": scorer.dino_model, "version": direction.version,
                  "tuned_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return {"summary": summary, "held_out": held_out, "scored": scored, "chosen": chosen,
            "allowed_structure_distance": allowed, "tuning": tuning, "scores_on": scores_on}


def tuning_lines(result: dict, models: dict, margin: float, kept: str = "stored") -> list[str]:
    """What both faces say of a tune_direction result: each setting's scores, the rule with its
    margin, the held-out photos' scores, and which photos the `kept` scores are on."""
    lines = [*summary_lines(result["summary"], models),
             f"rule: {RULE} (margin {margin:g}: at most {result['allowed_structure_distance']:.4f})"]
    if result["held_out"] is not None:
        lines += ["the held-out photos, which the choice never saw:", *summary_lines(result["held_out"], models)[:-2]]
    return [*lines, f"the {kept} scores are {result['scores_on']}"]


def tuned_settings(directions: list[tuple[str, dict | None]], scale: float | None, xa_guidance: float | None):
    """(each direction's own scale, the settings' scale, the xa guidance, notes) for (label,
    tuning or None) pairs: without a scale each direction gets its tuned one (1 untuned) and the
    settings' scale is 1; without an xa guidance the tuned one, when the tuned directions agree
    on one (else 0.1, with a note saying so). The notes say what was taken from a tuning."""
    tuned = [(label, tuning) for label, tuning in directions if tuning]
    notes = []
    if scale is None:
        own = [tuning["scale"] if tuning else DEFAULT_SCALE for _, tuning in directions]
        notes += [f"{label}: its tuned scale {tuning['scale']:g} (give a scale to override)" for label, tuning in tuned]
    else:
        own = [DEFAULT_SCALE] * len(directions)
    if xa_guidance is None:
        found = sorted({tuning["xa_guidance"] for _, tuning in tuned})
        xa_guidance = found[0] if len(found) == 1 else DEFAULT_XA_GUIDANCE
        if len(found) == 1:
            notes.append(f"xa-guidance {xa_guidance:g}, as tuned (give one to override)")
        elif found:
            notes.append(f"the directions were tuned to different xa-guidance ({', '.join(f'{g:g}' for g in found)}); "
                         f"using {DEFAULT_XA_GUIDANCE:g}")
    return own, (DEFAULT_SCALE if scale is None else scale), xa_guidance, notes
