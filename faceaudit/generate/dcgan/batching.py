"""Render-and-measure DCGAN latents in batches (rendering overlaps measuring)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from faceaudit.measure import FaceMeasurer

if TYPE_CHECKING:
    from faceaudit.core.progress import Progress

#: latents rendered and measured per call (a multiple of the DCGAN's fixed render batch)
MEASURE_BATCH = 256


def render_and_measure(
    generator: Any,
    measurer: FaceMeasurer,
    latents: np.ndarray,
    progress: "Progress | None" = None,
    task: int | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Render ``latents [N, 100]`` with ``generator`` (a DCGANGenerator: ``render_latents``,
    ``resolution``) and measure the images; returns ``(images, measures)``."""
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
