"""Checked option types: numbers are refused at the door (before any model loads) when they are
not finite, out of range or too large for the bank's columns."""
from __future__ import annotations

import math

import click

from sd_models.settings import SEED_RANGE

MAX_COUNT = 2**31 - 1  # counts live in 32-bit columns on PostgreSQL
MAX_ID = 2**63 - 1


class FiniteFloat(click.ParamType):
    """A float within [low, high]; NaN and infinities are refused."""

    name = "number"

    def __init__(self, low: float, high: float):
        self.low, self.high = low, high

    def convert(self, value, param, ctx):
        """The value as a finite float in range, or a usage error."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number) or not self.low <= number <= self.high:
            self.fail(f"{value!r} is not a finite number from {self.low:g} to {self.high:g}", param, ctx)
        return number


class ImageSize(click.ParamType):
    """An image side in pixels: a multiple of 8 from 8 to 4096."""

    name = "pixels"

    def convert(self, value, param, ctx):
        """The value as an int, or a usage error."""
        try:
            number = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a whole number", param, ctx)
        if not 8 <= number <= 4096 or number % 8:
            self.fail(f"{value!r}: use a multiple of 8 from 8 to 4096", param, ctx)
        return number


def count_range(low: int = 1) -> click.IntRange:
    """A count from `low` to what the bank's columns hold."""
    return click.IntRange(low, MAX_COUNT)


ID = click.IntRange(1, MAX_ID)
SEED = click.IntRange(*SEED_RANGE)


class FloatList(click.ParamType):
    """Comma-separated finite floats within [low, high] ('0.5,1,1.5'), at most `most` of them."""

    name = "numbers"

    def __init__(self, low: float, high: float, most: int = 16):
        self.item = FiniteFloat(low, high)
        self.most = most

    def convert(self, value, param, ctx):
        """The values as a tuple of floats, or a usage error."""
        if isinstance(value, tuple):
            return value
        parts = [part.strip() for part in str(value).split(",") if part.strip()]
        if not 1 <= len(parts) <= self.most:
            self.fail(f"{value!r}: give 1 to {self.most} comma-separated numbers", param, ctx)
        return tuple(self.item.convert(part, param, ctx) for part in parts)
