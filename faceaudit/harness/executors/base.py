"""The executor interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Iterable, Iterator, Sequence


class Executor(ABC):
    """Runs ``fn(item)`` for every item of a sequence of independent shards."""

    name: str = "executor"
    #: how many shards run at once (1: in this process)
    workers: int = 1

    @abstractmethod
    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``[fn(x) for x in items]``, possibly in parallel; results in item order whatever order the
        shards finish in. ``fn`` must be a module-level function (it may run in another process). An
        exception raised by a shard is raised here (the first one in item order)."""

    @abstractmethod
    def imap_with_state(self, factory: Callable[[], Any], fn: Callable[[Any, Any], Any],
                        items: Iterable[Any]) -> Iterator[Any]:
        """Yields ``fn(state, x)`` for every item, in item order, where ``state = factory()`` is built
        once per worker and reused for all the shards that worker runs (a loaded model or generator).

        ``factory`` and ``fn`` must be picklable by reference (module-level functions,
        ``functools.partial`` of them). ``items`` is consumed lazily, a few shards ahead of the
        results, so the caller may hold only a bounded number of shards in memory and can record each
        result (e.g. write it to disk) as soon as it is yielded. An exception raised by a shard or
        by ``factory`` is raised from the iterator."""

    def describe(self) -> dict:
        """What the manifest records about the executor that ran a stage (not part of any input hash)."""
        return {"name": self.name, "workers": self.workers}

    def close(self) -> None:
        """Release workers (a no-op for executors without any)."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
