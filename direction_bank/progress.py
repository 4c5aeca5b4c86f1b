"""Progress bars on stderr, shown only to a person at a terminal."""
from __future__ import annotations

import sys
from typing import Iterable, TypeVar

T = TypeVar("T")


def interactive() -> bool:
    """True when both stdout and stderr are terminals (nobody is scripting us)."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def progress_bar(iterable: Iterable[T], enabled: bool = True, **tqdm_args) -> Iterable[T]:
    """The iterable wrapped in a tqdm bar on stderr when enabled and interactive."""
    if not (enabled and interactive()):
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, file=sys.stderr, leave=False, **tqdm_args)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_counter(total: int, initial: int = 0, enabled: bool = True, **tqdm_args):
    """A tqdm counter (update(n), close()) on stderr, or a silent stand-in when not shown."""
    if not (enabled and interactive()):
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, file=sys.stderr, leave=False, **tqdm_args)
