"""Progress reporting that stays readable in CI logs.

On a terminal: a rich progress bar. Elsewhere (CI, pipes, files): one plain line at every ~10% so
logs show progress without thousands of carriage-return redraws.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressReporter:
    def __init__(self, description: str, total: int, enabled: bool = True, stream: TextIO | None = None):
        self.description = description
        self.total = max(int(total), 0)
        self.enabled = enabled and self.total > 0
        self.stream = stream or sys.stderr
        self.done = 0
        #: items that needed no work (cache hits): counted in ``done``, never in the rate
        self.cached = 0
        self._t0 = time.perf_counter()
        self._next_pct = 10
        self._bar = None
        self._task = None
        if not self.enabled:
            return
        if getattr(self.stream, "isatty", lambda: False)():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(description, total=self.total)

    def advance(self, n: int, cached: bool = False) -> None:
        """``n`` more items done; ``cached=True`` for items that cost no work (they do not enter the rate)."""
        self.done += n
        if cached:
            self.cached += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
            return
        pct = 100 * self.done / self.total
        if pct >= self._next_pct or self.done >= self.total:
            # The rate counts only items that were worked on: cache hits arrive in microseconds, and
            # counting them gave first lines such as "43150542.8/s".
            worked = self.done - self.cached
            elapsed = time.perf_counter() - self._t0
            rate = f"{worked / elapsed:.1f}/s" if worked > 0 and elapsed > 0 else "rate n/a"
            hits = f", {self.cached} cached" if self.cached else ""
            print(f"{self.description}: {self.done}/{self.total} ({pct:.0f}%){hits}, {rate}", file=self.stream, flush=True)
            while self._next_pct <= pct:
                self._next_pct += 10

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> "ProgressReporter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
