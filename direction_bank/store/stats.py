"""Running count, mean and second moment of embeddings (Chan et al.'s parallel update).

Statistics are merged in float64 and stored as float32, so adding sentences later, or removing
one, never needs the other sentences' embeddings again.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from direction_bank.errors import BankError


@dataclass(frozen=True)
class RunningStats:
    """Count, mean and sum of squared deviations (M2) of a set of equally shaped samples."""

    count: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, shape: tuple[int, ...]) -> RunningStats:
        """Statistics of no samples."""
        return cls(0, np.zeros(shape, np.float64), np.zeros(shape, np.float64))

    @classmethod
    def of(cls, samples: np.ndarray) -> RunningStats:
        """Statistics of the samples stacked along axis 0."""
        samples = np.asarray(samples, dtype=np.float64)
        mean = samples.mean(axis=0)
        m2 = ((samples - mean) ** 2).sum(axis=0)
        return cls(len(samples), mean, m2)

    def merge(self, other: RunningStats) -> RunningStats:
        """Statistics of the union of both sample sets."""
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / count)
        m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / count)
        return RunningStats(count, mean, m2)

    def add(self, samples: np.ndarray) -> RunningStats:
        """Statistics with the samples added."""
        return self.merge(RunningStats.of(samples))

    def remove(self, samples: np.ndarray) -> RunningStats:
        """Statistics with the samples (which must be part of the set) taken out."""
        part = RunningStats.of(samples)
        rest = self.count - part.count
        if rest < 0:
            raise ValueError("cannot remove more samples than the statistics hold")
        if rest == 0:
            return RunningStats.empty(self.mean.shape)
        mean = (self.count * self.mean - part.count * part.mean) / rest
        delta = part.mean - mean
        m2 = self.m2 - part.m2 - delta**2 * (rest * part.count / self.count)
        return RunningStats(rest, mean, np.maximum(m2, 0.0))

    def variance(self) -> np.ndarray:
        """Per-element sample variance (ddof=1); zeros below two samples."""
        if self.count < 2:
            return np.zeros_like(self.m2)
        return self.m2 / (self.count - 1)

    def standard_error(self) -> np.ndarray:
        """Per-element standard error of the mean."""
        if self.count == 0:
            return np.zeros_like(self.m2)
        return np.sqrt(self.variance() / self.count)

    def to_blobs(self) -> tuple[bytes, bytes]:
        """The mean and M2 as float32 little-endian bytes, for storage."""
        return tensor_to_blob(self.mean), tensor_to_blob(self.m2)

    @classmethod
    def from_blobs(cls, count: int, mean: bytes, m2: bytes, shape: tuple[int, ...]) -> RunningStats:
        """Statistics read back from storage."""
        return cls(
            count,
            blob_to_tensor(mean, shape).astype(np.float64),
            blob_to_tensor(m2, shape).astype(np.float64),
        )


def tensor_to_blob(array: np.ndarray) -> bytes:
    """An array as float32 little-endian bytes."""
    return np.ascontiguousarray(array, dtype="<f4").tobytes()


class DamagedData(BankError):
    """A stored tensor whose size does not fit its shape (a damaged or tampered row)."""


def blob_to_tensor(blob: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """Float32 little-endian bytes back to an array of the given shape (DamagedData if they do
    not fit it)."""
    if len(blob) != 4 * int(np.prod(shape)):
        raise DamagedData(f"a stored tensor of {len(blob)} bytes does not fit the shape {list(shape)}; "
                          "run dbank check")
    return np.frombuffer(blob, "<f4").reshape(shape).copy()
