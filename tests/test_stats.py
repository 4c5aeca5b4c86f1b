import numpy as np
import pytest

from direction_bank.store.stats import RunningStats


@pytest.fixture
def samples():
    rng = np.random.default_rng(0)
    return rng.normal(3.0, 2.0, size=(40, 7, 5))


@pytest.mark.parametrize("splits", [[40], [1] * 40, [3, 17, 20], [39, 1]])
def test_merging_batches_equals_direct_statistics(samples, splits):
    stats = RunningStats.empty(samples.shape[1:])
    start = 0
    for size in splits:
        stats = stats.add(samples[start : start + size])
        start += size
    assert stats.count == 40
    np.testing.assert_allclose(stats.mean, samples.mean(0), atol=1e-12)
    np.testing.assert_allclose(stats.variance(), samples.var(0, ddof=1), rtol=1e-10)
    np.testing.assert_allclose(stats.standard_error(), samples.std(0, ddof=1) / np.sqrt(40), rtol=1e-10)


def test_removing_samples_restores_previous_statistics(samples):
    before = RunningStats.of(samples[:30])
    after = before.add(samples[30:]).remove(samples[30:])
    assert after.count == 30
    np.testing.assert_allclose(after.mean, before.mean, atol=1e-12)
    np.testing.assert_allclose(after.m2, before.m2, rtol=1e-9)


def test_removing_everything_gives_empty_statistics(samples):
    stats = RunningStats.of(samples[:2]).remove(samples[:2])
    assert stats.count == 0 and not stats.mean.any()
    with pytest.raises(ValueError):
        RunningStats.of(samples[:2]).remove(samples[:3])


def test_blobs_round_trip_in_float32(samples):
    stats = RunningStats.of(samples)
    back = RunningStats.from_blobs(stats.count, *stats.to_blobs(), samples.shape[1:])
    assert back.count == 40
    np.testing.assert_allclose(back.mean, stats.mean, rtol=1e-6)
    np.testing.assert_allclose(back.m2, stats.m2, rtol=1e-6)
    assert len(stats.to_blobs()[0]) == 7 * 5 * 4
