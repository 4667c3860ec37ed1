"""``ray``: shards on a Ray cluster (an optional extra: ``pip install 'faceaudit[ray]'``).

Stateful work (:meth:`imap_with_state`) runs on one actor per worker: the actor builds its state (a
loaded model) once and reuses it for every shard sent to it. Shards are dealt to the actors in turn
and their results are collected in shard order, so the driver assembles the same table whatever
the number of workers. Shards carry their data (image bytes), not paths: the run directory lives
on the driver and workers need no shared file system, only faceaudit and the model weights.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, Callable, Iterable, Iterator, Sequence

from faceaudit.core.errors import BadInput
from faceaudit.harness.executors.base import Executor

INSTALL_HINT = "pip install 'faceaudit[ray]'"


def _import_ray():
    try:
        import ray
    except ImportError:
        raise BadInput(f"executor 'ray': the ray package is not installed here; {INSTALL_HINT}") from None
    return ray


def _check_reachable(address: str) -> None:
    """A ``host:port`` GCS address that nothing listens on makes ``ray.init`` retry for minutes with
    log lines on stderr; a plain TCP connect says so in seconds. (``auto`` and ``ray://`` addresses
    are left to Ray: they fail fast themselves.)"""
    import socket

    if address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except (OSError, ValueError) as err:
        raise BadInput(f"--ray-address {address}: no Ray cluster answers there ({err})") from None


class _StatefulWorker:
    """One per worker: builds ``factory()`` on its first shard and keeps it for the next ones."""

    def __init__(self, factory: Callable[[], Any]):
        self.factory = factory
        self.state: Any = None
        self.built = False

    def run(self, fn: Callable[[Any, Any], Any], item: Any) -> Any:
        if not self.built:
            self.state = self.factory()
            self.built = True
        return fn(self.state, item)


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


class RayExecutor(Executor):
    """``address``: an existing cluster (``auto``, ``ray://host:10001``, ``host:6379``); without one, a
    local cluster of ``workers`` CPUs is started here and shut down by :meth:`close`. ``workers``
    (default: the cluster's CPUs) is how many actors run a stateful map at once."""

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None):
        ray = _import_ray()
        if workers is not None and int(workers) < 1:
            raise ValueError("workers must be at least 1")
        self.address = address
        self._owns_cluster = False
        quiet = dict(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR)
        if not ray.is_initialized():
            try:
                if address:
                    _check_reachable(address)
                    ray.init(address=address, **quiet)
                else:
                    # "local": always a new cluster of our own, never one found on this machine
                    ray.init(address="local", num_cpus=int(workers) if workers else None, **quiet)
            except ImportError as err:  # ray:// (Ray Client) needs grpcio: the ray[client] extra
                raise BadInput(f"--ray-address {address}: {err}; pip install 'ray[client]'") from None
            except (ConnectionError, ValueError, RuntimeError, TimeoutError) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                where = f"--ray-address {address}" if address else "executor 'ray'"
                raise BadInput(f"{where}: cannot start or reach a Ray cluster: {first}") from None
            self._owns_cluster = True
        resources = ray.cluster_resources()
        cpus = int(resources.get("CPU", 1)) or 1
        self.workers = int(workers) if workers else cpus
        # Ray hides GPUs from a worker that reserved none (CUDA_VISIBLE_DEVICES=""), so on a cluster
        # with GPUs each actor reserves an equal share of them (a whole one when there are enough).
        gpus = float(resources.get("GPU", 0))
        self.gpus_per_worker = min(1.0, gpus / self.workers) if gpus else 0.0

    def describe(self) -> dict:
        out = {"name": self.name, "workers": self.workers, "address": self.address}
        if self.gpus_per_worker:
            out["gpus_per_worker"] = self.gpus_per_worker
        return out

    @staticmethod
    def _get(ref: Any) -> Any:
        """``ray.get``, raising a shard's own exception (a BadInput stays a one-line BadInput)."""
        ray = _import_ray()
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        ray = _import_ray()
        task = ray.remote(num_cpus=1)(_call)
        refs = [task.remote(fn, x) for x in items]
        return [self._get(r) for r in refs]

    def imap_with_state(self, factory: Callable[[], Any], fn: Callable[[Any, Any], Any],
                        items: Iterable[Any]) -> Iterator[Any]:
        ray = _import_ray()
        actor_cls = ray.remote(num_cpus=1, num_gpus=self.gpus_per_worker)(_StatefulWorker)
        actors: list = []
        pending: deque = deque()
        try:
            for i, x in enumerate(items):
                if len(actors) < self.workers:  # started only as shards come: no idle actors, no needless loads
                    actors.append(actor_cls.remote(factory))
                pending.append(actors[i % self.workers].run.remote(fn, x))
                # at most two shards queued per actor: bounded memory, and results are written as they come
                if len(pending) >= 2 * self.workers:
                    yield self._get(pending.popleft())
            while pending:
                yield self._get(pending.popleft())
        finally:
            for a in actors:
                ray.kill(a)

    def close(self) -> None:
        if self._owns_cluster:
            ray = _import_ray()
            if ray.is_initialized():
                ray.shutdown()
            self._owns_cluster = False
