"""Render-and-measure in batches, with an optional rich progress bar."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from faceaudit.generate.dcgan import DCGANGenerator
from faceaudit.measure import FaceMeasurer

#: latents rendered and measured per call (a multiple of the DCGAN's fixed render batch)
MEASURE_BATCH = 256


class _NoProgress:
    def add_task(self, *args, **kwargs) -> int:
        return 0

    def update(self, *args, **kwargs) -> None:
        pass

    def advance(self, *args, **kwargs) -> None:
        pass


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Progress | _NoProgress]:
    if not enabled:
        yield _NoProgress()
        return
    columns = [
        TextColumn("[bold cyan]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        yield bar


def render_and_measure(
    generator: DCGANGenerator,
    measurer: FaceMeasurer,
    latents: np.ndarray,
    progress: Progress | _NoProgress | None = None,
    task: int | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Render ``latents [N, 100]`` and measure the images; returns ``(images, measures)``."""
    images = np.empty((len(latents), generator.resolution, generator.resolution, 3), dtype=np.uint8)
    tables = []
    starts = list(range(0, len(latents), MEASURE_BATCH))
    # Render the next batch in a helper thread while this one is measured: torch releases the GIL
    # and runs on its own threads, measurement (dlib) is single-threaded, so the two overlap.
    with ThreadPoolExecutor(max_workers=1) as pool:
        upcoming = pool.submit(generator.render_latents, latents[: MEASURE_BATCH]) if starts else None
        for k, start in enumerate(starts):
            chunk = upcoming.result()
            if k + 1 < len(starts):
                nxt = starts[k + 1]
                upcoming = pool.submit(generator.render_latents, latents[nxt : nxt + MEASURE_BATCH])
            images[start : start + len(chunk)] = chunk
            tables.append(measurer.measure(chunk))
            if progress is not None and task is not None:
                progress.advance(task, len(chunk))
    if not tables:
        return images, FaceMeasurer.empty_table()
    return images, pd.concat(tables, ignore_index=True)
