"""The executor interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Sequence


class Executor(ABC):
    """Runs ``fn(item)`` for every item of a sequence of independent shards."""

    name: str = "executor"

    @abstractmethod
    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``[fn(x) for x in items]``, possibly in parallel; results in item order whatever order the
        shards finish in. ``fn`` must be a module-level function (it may run in another process). An
        exception raised by a shard is raised here (the first one in item order)."""

    def close(self) -> None:
        """Release workers (a no-op for executors without any)."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
