"""Progress on stderr: a tqdm bar for a person at a terminal; off a terminal (a log, a pipe),
long work still says how far it is, a plain line every PLAIN_INTERVAL_S seconds, and short
work says nothing."""
from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
PLAIN_INTERVAL_S = 5.0


def interactive() -> bool:
    """True when both stdout and stderr are terminals (nobody is scripting us)."""
    return sys.stdout.isatty() and sys.stderr.isatty()


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


class _PlainLines:
    """A counter that writes 'desc: done/total unit (pct), elapsed' to stderr at most every
    PLAIN_INTERVAL_S seconds, the first only once that much time has passed."""

    def __init__(self, total: int | None, initial: int = 0, desc: str = "working", unit: str = "it", **_):
        self.total, self.done, self.desc, self.unit = total, initial, desc, unit
        self.started = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= PLAIN_INTERVAL_S:
            self.last = now
            of = f"/{self.total}" if self.total else ""
            share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
            print(f"{self.desc}: {self.done}{of} {self.unit}{share}, {now - self.started:.0f} s", file=sys.stderr,
                  flush=True)

    def close(self) -> None:
        pass


def progress_counter(total: int, initial: int = 0, enabled: bool = True, **tqdm_args):
    """A counter (update(n), close()) on stderr: a tqdm bar at a terminal, plain lines for
    long work elsewhere, nothing when not enabled."""
    if not enabled:
        return _NoBar()
    if not interactive():
        return _PlainLines(total, initial, **tqdm_args)
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, file=sys.stderr, leave=False, **tqdm_args)


def _counted(iterable: Iterable[T], counter) -> Iterator[T]:
    for item in iterable:
        yield item
        counter.update()


def progress_bar(iterable: Iterable[T], enabled: bool = True, **tqdm_args) -> Iterable[T]:
    """The iterable with progress on stderr when enabled (see progress_counter)."""
    if not enabled:
        return iterable
    if not interactive():
        return _counted(iterable, _PlainLines(len(iterable) if hasattr(iterable, "__len__") else None, **tqdm_args))
    from tqdm.auto import tqdm

    return tqdm(iterable, file=sys.stderr, leave=False, **tqdm_args)
