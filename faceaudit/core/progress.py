"""Progress reporting that stays readable in CI logs: the one implementation every stage uses.

On a terminal: a rich progress bar, one line per task. Elsewhere (CI, pipes, files): one plain line
per task at every ~10% so logs show progress without thousands of carriage-return redraws.

:class:`Progress` holds any number of tasks (the generate stage shows its skin search and its faces
side by side); :class:`ProgressReporter` is the one-task shorthand (an embed stage).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class _Task:
    description: str
    total: int
    done: int = 0
    #: items that needed no work (cache hits, resumed chunks): counted in ``done``, never in the rate
    cached: int = 0
    next_pct: int = 10
    t0: float = field(default_factory=lambda: time.perf_counter())  # looked up at call time (a test clock)
    rich_id: int | None = None


class Progress:
    """Several progress tasks shown together; a no-op when ``enabled`` is False.

    Parameters
    ----------
    enabled : bool
        False: every call does nothing (``progress=False`` of the stages).
    stream : TextIO, optional
        Where to report (default stderr). A terminal gets a rich bar; anything else plain lines.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> with Progress(stream=out) as bar:
    ...     task = bar.add_task("generate: faces", total=4)
    ...     bar.advance(task, 4)
    >>> out.getvalue().split(",")[0]
    'generate: faces: 4/4 (100%)'
    """

    def __init__(self, enabled: bool = True, stream: TextIO | None = None):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tasks: list[_Task] = []
        self._bar = None
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._bar.start()

    def add_task(self, description: str, total: int) -> int:
        """A new task of ``total`` items; returns its id for :meth:`advance`."""
        task = _Task(description, max(int(total), 0))
        if self._bar is not None and task.total > 0:
            task.rich_id = self._bar.add_task(description, total=task.total)
        self.tasks.append(task)
        return len(self.tasks) - 1

    def advance(self, task_id: int, n: int = 1, cached: bool = False) -> None:
        """``n`` more items of task ``task_id`` done; ``cached=True`` for items that cost no work
        (they do not enter the rate)."""
        task = self.tasks[task_id]
        task.done += int(n)
        if cached:
            task.cached += int(n)
        if not self.enabled or task.total <= 0:
            return
        if self._bar is not None:
            self._bar.update(task.rich_id, completed=task.done)
            return
        pct = 100 * task.done / task.total
        if pct >= task.next_pct or task.done >= task.total:
            # The rate counts only items that were worked on: cache hits arrive in microseconds, and
            # counting them gave first lines such as "43150542.8/s".
            worked = task.done - task.cached
            elapsed = time.perf_counter() - task.t0
            rate = f"{worked / elapsed:.1f}/s" if worked > 0 and elapsed > 0 else "rate n/a"
            hits = f", {task.cached} cached" if task.cached else ""
            print(f"{task.description}: {task.done}/{task.total} ({pct:.0f}%){hits}, {rate}", file=self.stream, flush=True)
            while task.next_pct <= pct:
                task.next_pct += 10

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ProgressReporter:
    """One progress task: ``ProgressReporter(description, total)`` then ``advance(n)``.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> with ProgressReporter("embed x", 10, stream=out) as bar:
    ...     bar.advance(10)
    >>> out.getvalue().startswith("embed x: 10/10 (100%)")
    True
    """

    def __init__(self, description: str, total: int, enabled: bool = True, stream: TextIO | None = None):
        self._progress = Progress(enabled and int(total) > 0, stream)
        self._task = self._progress.add_task(description, total)

    @property
    def done(self) -> int:
        return self._progress.tasks[self._task].done

    @property
    def cached(self) -> int:
        return self._progress.tasks[self._task].cached

    def advance(self, n: int, cached: bool = False) -> None:
        """``n`` more items done; ``cached=True`` for items that cost no work (they do not enter the rate)."""
        self._progress.advance(self._task, n, cached)

    def close(self) -> None:
        self._progress.close()

    def __enter__(self) -> "ProgressReporter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
