"""The progress every job shows: one labelled bar ("extract large finetuned sst2-dev",
"finetune demo-large-sst2", "attack large deepwordbug") with its count, unit and ETA.

On a terminal it is a tqdm bar (gone once done: ``ce run`` then says the step's time). When
stderr is not a terminal (a log file, a pipe, CI) it is one plain line every
:data:`INTERVAL` seconds, and one at the end of a job that printed any, with no carriage
returns::

    finetune demo-large-sst2: 60/126 steps, 29s elapsed, ETA 32s
    finetune demo-large-sst2: 126/126 steps in 61s

``progress=False`` (the jobs' switch) shows nothing.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

INTERVAL = 30.0  # seconds between two lines when stderr is not a terminal


def bar(label: str, total: int | None, unit: str, *, progress: bool = True, initial: int = 0):
    """A progress bar for a job: use it as a context manager and call ``update(n)``;
    ``set_postfix(counts)`` adds counts (an attack's succeeded, failed, skipped)."""
    from tqdm.auto import tqdm

    if not progress:
        return tqdm(total=total, initial=initial, disable=True)
    file = sys.stderr
    if _interactive(file):
        return tqdm(
            total=total,
            initial=initial,
            desc=label,
            unit=unit,
            dynamic_ncols=True,
            leave=False,
            file=file,
        )
    return LineProgress(label, total, unit, initial=initial, file=file, interval=INTERVAL)


def _interactive(file: TextIO) -> bool:
    """A terminal, or a notebook (where tqdm.auto draws a widget)."""
    try:
        if file.isatty():
            return True
    except (AttributeError, ValueError):
        return False
    return "ipykernel" in sys.modules


def duration(seconds: float) -> str:
    """'0.4s', '29s', '4m05s', '1h02m'."""
    if seconds < 9.95:
        return f"{max(seconds, 0):.1f}s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


def plural(unit: str, n: float) -> str:
    if n == 1:
        return unit
    return unit[:-1] + "ies" if unit.endswith("y") and unit[-2:-1] not in "aeiou" else unit + "s"


class LineProgress:
    """tqdm's interface (update, set_postfix, close, a context manager) as plain lines."""

    def __init__(
        self,
        label: str,
        total: int | None,
        unit: str,
        *,
        initial: int = 0,
        file: TextIO | None = None,
        interval: float = INTERVAL,
    ):
        self.label, self.total, self.unit = label, total, unit
        self.n = self.initial = initial
        self.file = file if file is not None else sys.stderr
        self.interval = interval
        self.postfix = ""
        self.start = self.last = time.monotonic()
        self.closed = False
        self.lines = 0  # written so far

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._write(self._running(now - self.start))

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any):
        counts = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k} {v}" for k, v in counts.items())

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.lines:  # a job done within the interval says nothing
            self._write(f"{self._count()} in {duration(time.monotonic() - self.start)}")

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count(self) -> str:
        done = int(self.n) if float(self.n).is_integer() else self.n
        count = f"{done}/{self.total}" if self.total is not None else f"{done}"
        postfix = f" ({self.postfix})" if self.postfix else ""
        return f"{count} {plural(self.unit, self.total if self.total is not None else self.n)}{postfix}"

    def _running(self, elapsed: float) -> str:
        line = f"{self._count()}, {duration(elapsed)} elapsed"
        done = self.n - self.initial
        if self.total is not None and done > 0:
            line += f", ETA {duration((self.total - self.n) * elapsed / done)}"
        return line

    def _write(self, text: str) -> None:
        try:
            self.file.write(f"{self.label}: {text}\n")
            self.file.flush()
            self.lines += 1
        except (ValueError, OSError):  # a closed stream: progress is not worth failing for
            pass
