"""Executors: run independent shards of work and return their results in shard order.

DESIGN.md: "work is split into shards ...; the same protocol gives the same tables on any executor
(``local`` default, ``ray`` optional)". An executor only decides *where* a shard runs; shards are
pure functions of their inputs and results come back in shard order, so the tables cannot depend
on the executor. The embed stage uses one (docs/ARCHITECTURE.md, "Executors").
"""

from __future__ import annotations

from faceaudit.core.errors import BadInput
from faceaudit.harness.executors.base import Executor
from faceaudit.harness.executors.local import LocalExecutor

EXECUTORS = ("local", "ray")


def get_executor(name: str = "local", workers: int | None = None, address: str | None = None) -> Executor:
    """``local`` (default; ``workers`` processes, 1 when not given) or ``ray`` (``address`` of an
    existing cluster, else a local one with ``workers`` CPUs). The ray module is imported only here,
    so faceaudit works without the extra."""
    if name == "local":
        if address:
            raise BadInput("--ray-address: only used with --executor ray")
        return LocalExecutor(workers=1 if workers is None else workers)
    if name == "ray":
        from faceaudit.harness.executors.ray import RayExecutor

        return RayExecutor(workers=workers, address=address)
    raise BadInput(f"executor {name!r}: unknown (known: {', '.join(EXECUTORS)})")


__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "get_executor"]
