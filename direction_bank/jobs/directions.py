"""The diff job both faces call (cli/directions.py, studio/actions.py): a direction between two
concepts, saved under a name when asked (a name in use only as its next version)."""
from __future__ import annotations


def make_direction(bank, source: str, target: str, save_as: str | None = None, overwrite: bool = False,
                   encoder=None, model: str | None = None, prefer: str | None = None):
    """mean(target) - mean(source) as a DirectionResult (Bank.diff: `model` names the encoder
    whose statistics to use, `prefer` picks one when the concepts share several), or with
    `encoder` the mean of counterfactual pairs (Bank.paired_diff); stored as `save_as` when
    given, a name in use refused unless `overwrite` (then its next version; the old is kept)."""
    if encoder is not None:
        direction = bank.paired_diff(source, target, encoder, progress=True)
    else:
        direction = bank.diff(source, target, model, prefer)
    if save_as:
        direction = bank.save_direction(save_as, direction, overwrite)
    return direction
