"""The Generator interface (DESIGN.md 'Interfaces').

A generator turns per-seed latents into RGB uint8 images. ``render(seeds, group, edit)`` is the
contract-level call; backends that have a latent space (the DCGAN) also expose ``latents`` and
``render_latents`` so that the design code can move latents along attribute directions.
Rendering is deterministic for a given (protocol seed, face seed): the latent is drawn from a
generator seeded with both, never from global random state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Edit:
    """A nuisance edit: move ``attribute`` by ``level`` (in SDs of its measure). ``none`` = prototype."""

    attribute: str = "none"
    level: float = 0.0


@dataclass
class RenderResult:
    """Images ``[N, H, W, 3] uint8 RGB`` plus one metadata row per image."""

    images: np.ndarray
    metadata: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __len__(self) -> int:
        return int(self.images.shape[0])


class Generator(ABC):
    """A face generator. ``name`` goes into the faces table's ``source`` column."""

    name: str = "base"
    version: str = "0"
    #: image side length in pixels
    resolution: int = 0

    @abstractmethod
    def render(self, seeds: Sequence[int], group: str | None = None, edit: Edit | None = None) -> RenderResult:
        """Render one image per seed in ``group`` (e.g. ``skin=dark``) with ``edit`` applied.

        ``group=None`` and ``edit=None`` render the unedited random face of each seed.
        """

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "resolution": self.resolution}
