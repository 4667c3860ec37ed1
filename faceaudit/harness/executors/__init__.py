"""Executors: run independent shards of work and return their results in shard order.

DESIGN.md: "work is split into shards ...; the same protocol gives the same tables on any executor
(``local`` default, ``ray`` optional)". An executor only decides *where* a shard runs; shards are
pure functions of their inputs and results come back in shard order, so the tables cannot depend
on the executor. Only ``local`` exists in this build; the stages do not use executors yet
(the proposed hook is in docs/ARCHITECTURE.md, "Executors").
"""

from __future__ import annotations

from faceaudit.errors import BadInput
from faceaudit.harness.executors.base import Executor
from faceaudit.harness.executors.local import LocalExecutor

EXECUTORS = ("local",)


def get_executor(name: str = "local", **options) -> Executor:
    if name == "local":
        return LocalExecutor(**options)
    if name == "ray":
        raise BadInput("executor 'ray': not available in this build (only 'local')")
    raise BadInput(f"executor {name!r}: unknown (known: {', '.join(EXECUTORS)})")


__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "get_executor"]
