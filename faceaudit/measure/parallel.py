"""Measurement in worker processes.

dlib's shape predictor holds the GIL, so threads cannot spread landmarking over cores; processes
can. Each worker loads its own detectors once (~1 s), then measures slices of every batch. Results
are identical to :class:`~faceaudit.measure.FaceMeasurer` (every measure is per image), and the
rows come back in input order.

Start method: ``fork`` where the platform has it. ``spawn`` would re-import the caller's main
script in every worker, which breaks any user script without an ``if __name__ == "__main__"``
guard. The workers never run torch (only dlib, OpenCV, numpy and onnxruntime for the face mesh,
whose ONNX file is traced in the parent first), so the usual hazard of forking a
process with a running OpenMP pool does not apply; still, the pool is started and warmed up in
the constructor, before the caller renders anything.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Sequence

import numpy as np
import pandas as pd

from faceaudit.measure import FaceMeasurer

#: below this many images a pool costs more to start than it saves
MIN_IMAGES_FOR_POOL = 1500
ENV_WORKERS = "FACEAUDIT_MEASURE_WORKERS"

_worker_measurer: FaceMeasurer | None = None


def _init_worker() -> None:
    global _worker_measurer
    _worker_measurer = FaceMeasurer()


def _ready(_: int) -> bool:
    return _worker_measurer is not None


def _measure_slice(images: np.ndarray) -> pd.DataFrame:
    assert _worker_measurer is not None
    return _worker_measurer.measure(images)


class PooledMeasurer:
    """``measure(images)`` split across ``workers`` processes. Use as a context manager."""

    def __init__(self, workers: int):
        self.workers = int(workers)
        from faceaudit.models.facemesh import ensure_traced

        ensure_traced()  # the skin mask's face mesh: traced to ONNX here, before the fork
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers, mp_context=multiprocessing.get_context(method), initializer=_init_worker
        )
        # start every worker now (and surface a failing initializer here, not mid-run)
        list(self._pool.map(_ready, range(self.workers)))

    def measure(self, images: Sequence[np.ndarray] | np.ndarray) -> pd.DataFrame:
        images = np.asarray(images)
        if len(images) == 0:
            return FaceMeasurer.empty_table()
        parts = [p for p in np.array_split(images, min(self.workers, len(images))) if len(p)]
        return pd.concat(list(self._pool.map(_measure_slice, parts)), ignore_index=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "PooledMeasurer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def measure_workers(n_images: int) -> int:
    """How many measuring processes to use for a job of ``n_images`` (1 = measure in-process).

    ``FACEAUDIT_MEASURE_WORKERS`` overrides; otherwise one per core, and none for small jobs.
    """
    env = os.environ.get(ENV_WORKERS)
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            from faceaudit.core.errors import BadInput

            raise BadInput(f"{ENV_WORKERS}: expected an integer, got {env!r}") from None
    if n_images < MIN_IMAGES_FOR_POOL:
        return 1
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)))
