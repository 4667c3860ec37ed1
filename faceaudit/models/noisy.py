"""A recognizer wrapper that plants a known effect: Gaussian noise on the embeddings of chosen groups.

Used to check the whole pipeline end to end: with ``sigma > 0`` on group ``skin=dark`` only, the
analysis must find worse error rates for that group and nothing elsewhere. The noise of an image
depends only on ``seed`` and the image's pixels, never on batch order, so reruns are identical.
The group of each image reaches the wrapper through ``embed(images, meta=[{"group": ...}, ...])``,
which the harness passes because ``accepts_meta`` is True.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from faceaudit.core.errors import BadInput
from faceaudit.models.base import STATUS_OK, FaceRecognizer


class NoisyRecognizer(FaceRecognizer):
    accepts_meta = True
    # The embedding depends on the image's group, not only on its bytes: never serve it from the
    # sha256-keyed cache (an identical image in another group would get the wrong noise).
    cacheable = False

    def __init__(self, base: FaceRecognizer, sigma: float, groups: Iterable[str] | None = None, seed: int = 0):
        if not isinstance(base, FaceRecognizer):
            raise BadInput(f"noisy: base must be a FaceRecognizer, got {type(base).__name__}")
        if sigma < 0:
            raise BadInput(f"noisy: sigma must be >= 0, got {sigma}")
        self.base = base
        self.sigma = float(sigma)
        self.groups = None if groups is None else frozenset(groups)
        self.seed = int(seed)
        self.embedding_dim = base.embedding_dim
        self.device = base.device
        self.batch_size = base.batch_size
        target = "all" if self.groups is None else ",".join(sorted(self.groups))
        self.name = f"{base.name}+noise"
        self.version = f"{base.version}+noise(sigma={self.sigma:g},groups={target},seed={self.seed})"

    def _noise(self, image: np.ndarray) -> np.ndarray:
        digest = hashlib.sha256(np.ascontiguousarray(image).tobytes()).digest()
        rng = np.random.default_rng([self.seed, int.from_bytes(digest[:8], "little")])
        return rng.standard_normal(self.embedding_dim).astype(np.float32) * self.sigma

    def embed(
        self, images: Sequence[np.ndarray], meta: Sequence[Mapping[str, Any]] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.groups is not None:
            if meta is None:
                raise BadInput(f"{self.name}: noise on groups {sorted(self.groups)} needs each image's group (embed(images, meta=...))")
            if len(meta) != len(images):
                raise BadInput(f"{self.name}: {len(images)} images but {len(meta)} metadata rows")
        if self.base.accepts_meta:
            emb, status = self.base.embed(images, meta=meta)
        else:
            emb, status = self.base.embed(images)
        emb = np.array(emb, dtype=np.float32, copy=True)
        for i, image in enumerate(images):
            if status[i] != STATUS_OK:
                continue
            if self.groups is None or str(meta[i].get("group")) in self.groups:
                emb[i] += self._noise(image)
        return emb, status

    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self.base.similarity(a, b)

    def metadata(self) -> dict[str, Any]:
        return {
            **self.base.metadata(),
            "name": self.name,
            "version": self.version,
            "planted_noise": {"sigma": self.sigma, "groups": sorted(self.groups) if self.groups else "all", "seed": self.seed},
        }
