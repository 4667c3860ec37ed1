"""``local``: shards in worker processes on this machine (or in this process with one worker)."""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Sequence

from faceaudit.harness.executors.base import Executor


class LocalExecutor(Executor):
    """``workers`` processes (default 1: in this process, no pickling). Worker processes are started
    with ``spawn``: a fresh interpreter, so no state (torch threads, open files) is inherited and a
    shard sees only its arguments."""

    name = "local"

    def __init__(self, workers: int | None = 1, start_method: str = "spawn"):
        n = (os.cpu_count() or 1) if workers is None else int(workers)
        if n < 1:
            raise ValueError("workers must be at least 1")
        self.workers = n
        self.start_method = start_method
        self._pool: ProcessPoolExecutor | None = None

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        items = list(items)
        if self.workers == 1 or len(items) <= 1:
            return [fn(x) for x in items]
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context(self.start_method))
        futures = [self._pool.submit(fn, x) for x in items]
        return [f.result() for f in futures]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
