"""Progress on stderr: a tqdm bar for a person at a terminal; off a terminal (a log, a pipe),
long work is never silent: a plain line every PLAIN_INTERVAL_S seconds, whether or not a step
finished meanwhile (a slow model may take minutes over one batch), and short work says nothing."""
from __future__ import annotations

import sys
import threading
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
PLAIN_INTERVAL_S = 10.0


def interactive() -> bool:
    """True when both stdout and stderr are terminals (nobody is scripting us)."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def rate_text(rate: float) -> str:
    """'0.62', '4.7', '380': a rate with two significant digits, never in exponent form."""
    return f"{rate:.0f}" if rate >= 10 else f"{rate:.2g}"


def duration_text(seconds: float) -> str:
    """'45 s', '28 min', '3.5 h': a duration rounded as a person says it."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def say(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class _PlainLines:
    """A counter that writes 'desc: done/total unit (pct), NOTE, elapsed, rate, time left' to
    stderr every PLAIN_INTERVAL_S seconds (the first once that much time has passed), from a
    background thread, so a long step with no finished unit still says how far it is."""

    def __init__(self, total: int | None, initial: int = 0, desc: str = "working", unit: str = "it", **_):
        self.total, self.initial, self.done, self.desc, self.unit = total, initial, initial, desc, unit
        self.started = self.last = time.monotonic()
        self.interval = PLAIN_INTERVAL_S
        self.words = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        if self.interval > 0:
            threading.Thread(target=self._beat, daemon=True, name="dbank-progress").start()

    def _line(self, now: float) -> str:
        of = f"/{self.total}" if self.total else ""
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        words = f", {self.words}" if self.words else ""
        line = f"{self.desc}: {self.done}{of} {self.unit}{share}{words}, {now - self.started:.0f} s"
        made, spent = self.done - self.initial, now - self.started
        if made > 0 and self.total and self.done < self.total:
            rate = made / spent
            line += f", {rate_text(rate)} {self.unit}/s, about {duration_text((self.total - self.done) / rate)} left"
        return line

    def _print(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                now = time.monotonic()
                if now - self.last >= self.interval and not self._stop.is_set():
                    self.last = now
                    self._print(self._line(now))

    def update(self, n: int = 1) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if now - self.last >= self.interval:
                self.last = now
                self._print(self._line(now))

    def note(self, text: str) -> None:
        """Words shown in every later line ('tried 65, dropped 28 (...)')."""
        self.words = text

    def say(self, text: str) -> None:
        """A line of its own, now."""
        with self._lock:
            self._print(text)

    def close(self) -> None:
        self._stop.set()


class _Bar:
    """A tqdm bar with the same note / say as the plain lines."""

    def __init__(self, bar):
        self.bar = bar

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def note(self, text: str) -> None:
        self.bar.set_postfix_str(text)

    def say(self, text: str) -> None:
        self.bar.write(text, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def progress_counter(total: int, initial: int = 0, enabled: bool = True, **tqdm_args):
    """A counter (update(n), note(text), say(text), close()) on stderr: a tqdm bar at a
    terminal, plain lines for long work elsewhere, nothing when not enabled."""
    if not enabled:
        return _NoBar()
    if not interactive():
        return _PlainLines(total, initial, **tqdm_args)
    from tqdm.auto import tqdm

    return _Bar(tqdm(total=total, initial=initial, file=sys.stderr, leave=False, **tqdm_args))


def _counted(iterable: Iterable[T], counter) -> Iterator[T]:
    try:
        for item in iterable:
            yield item
            counter.update()
    finally:  # also when the loop over it stops early
        counter.close()


def progress_bar(iterable: Iterable[T], enabled: bool = True, **tqdm_args) -> Iterable[T]:
    """The iterable with progress on stderr when enabled (see progress_counter)."""
    if not enabled:
        return iterable
    if not interactive():
        return _counted(iterable, _PlainLines(len(iterable) if hasattr(iterable, "__len__") else None, **tqdm_args))
    from tqdm.auto import tqdm

    return tqdm(iterable, file=sys.stderr, leave=False, **tqdm_args)
