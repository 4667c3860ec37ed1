"""``local``: shards in worker processes on this machine (or in this process with one worker)."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Iterable, Iterator, Sequence

from faceaudit.harness.executors.base import Executor

#: the worker process's state, built once by ``_init_state`` (one per process: pools are per call)
_STATE: Any = None


def _init_state(factory: Callable[[], Any]) -> None:
    global _STATE
    _STATE = factory()


def _call_with_state(fn: Callable[[Any, Any], Any], item: Any) -> Any:
    return fn(_STATE, item)


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

    def imap_with_state(self, factory: Callable[[], Any], fn: Callable[[Any, Any], Any],
                        items: Iterable[Any]) -> Iterator[Any]:
        if self.workers == 1:
            state = None
            for x in items:
                if state is None:  # built only when there is work: a resumed run may have none left
                    state = factory()
                yield fn(state, x)
            return
        # A pool of its own: its initializer builds this factory's state once in each worker.
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context(self.start_method),
                                 initializer=_init_state, initargs=(factory,)) as pool:
            pending: deque = deque()
            for x in items:
                pending.append(pool.submit(_call_with_state, fn, x))
                if len(pending) >= 2 * self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
