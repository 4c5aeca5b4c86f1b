"""How far to trust a direction: the signal-to-noise of a difference of two means."""
from __future__ import annotations

import numpy as np

from direction_bank.store.stats import RunningStats


def difference_confidence(source: RunningStats, target: RunningStats) -> dict | None:
    """Signal-to-noise of target.mean - source.mean against its standard error, and how many
    more sentences would halve that noise; None when the statistics cannot tell (fewer than
    two sentences on a side, or no spread recorded, as for an imported pix2pix-zero mean).

    The noise is the expected Frobenius norm of the estimation error, sqrt(sum(se^2)) with
    se^2 = var_s / n_s + var_t / n_t per element. Noise falls as 1/sqrt(n), so halving it takes
    four times the sentences on each side: 3 n_s + 3 n_t more."""
    if source.count < 2 or target.count < 2 or not (source.m2.any() or target.m2.any()):
        return None
    difference = target.mean - source.mean
    error_variance = source.variance() / source.count + target.variance() / target.count
    noise = float(np.sqrt(error_variance.sum()))
    signal = float(np.linalg.norm(difference))
    return {
        "snr": signal / noise if noise > 0 else float("inf"),
        "noise_norm": noise,
        **halving_estimate(source.count, target.count),
    }


def halving_estimate(source_count: int | None, target_count: int | None) -> dict:
    """Sentences to add to each side to halve the noise (it falls as 1/sqrt(n): 4x the count)."""
    if not source_count or not target_count:
        return {}
    return {"more_sentences_to_halve_noise": {"source": 3 * source_count, "target": 3 * target_count}}


def paired_confidence(differences: RunningStats) -> dict | None:
    """Signal-to-noise of the mean of per-pair differences against its standard error, and the
    pairs to add to halve the noise; None below two pairs."""
    if differences.count < 2:
        return None
    noise = float(np.sqrt((differences.variance() / differences.count).sum()))
    signal = float(np.linalg.norm(differences.mean))
    return {
        "snr": signal / noise if noise > 0 else float("inf"),
        "noise_norm": noise,
        "more_sentences_to_halve_noise": {"pairs": 3 * differences.count},
    }
