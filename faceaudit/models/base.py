"""The FaceRecognizer interface (DESIGN.md 'Interfaces').

A recognizer turns RGB uint8 images into embeddings. Detection or alignment failure is a *status*
(``"fte"``, failure to enrol) for that image, never a silent drop: the harness counts it per group.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Sequence

import numpy as np

STATUS_OK = "ok"
STATUS_FTE = "fte"


class FaceRecognizer(ABC):
    """Narrow interface every model backend implements (one file per backend, like diffusers).

    Attributes
    ----------
    name: short id used in file names and tables (``dlib``, ``sface``, ``my.pkg:factory``).
    version: changes whenever embeddings would change (weights hash, preprocessing version);
        the embedding cache is keyed by image hash + name + version.
    embedding_dim: length of the embedding vector.
    device: ``"cpu"`` or ``"cuda"`` — where the forward pass runs.
    """

    name: str = "base"
    version: str = "0"
    embedding_dim: int = 0
    device: str = "cpu"
    #: how many images the harness hands to ``embed`` at once
    batch_size: int = 32
    #: True when ``embed`` takes a ``meta=`` keyword: one dict per image with that image's row of
    #: the faces table (``face_id``, ``group``, ``sha256``, ...). Plain models ignore metadata;
    #: wrappers that act per group (``faceaudit.models.noisy``) need it.
    accepts_meta: bool = False
    #: False when an embedding depends on more than the image bytes (e.g. on ``meta``), so the
    #: harness must not reuse it from the sha256-keyed cache.
    cacheable: bool = True

    @abstractmethod
    def embed(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Embed RGB uint8 images (H, W, 3).

        Returns ``(embeddings float32 [N, D], status str [N])``; rows whose status is ``"fte"``
        hold NaN.
        """

    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Row-wise similarity of two [N, D] arrays, higher = more similar (cosine by default)."""
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        na = np.linalg.norm(a, axis=1)
        nb = np.linalg.norm(b, axis=1)
        return (a * b).sum(axis=1) / (na * nb)

    def metadata(self) -> dict[str, Any]:
        """Facts for the model card's 'Model details' section."""
        return {"name": self.name, "version": self.version, "embedding_dim": self.embedding_dim}

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return f"{type(self).__name__}(name={self.name!r}, version={self.version!r}, device={self.device!r})"


class AlignedRecognizer(FaceRecognizer):
    """A recognizer in two steps: ``align`` (detect + crop, per image) then ``embed_crops``
    (one batched forward pass). Faces that cannot be aligned get status ``fte`` and a NaN row."""

    @abstractmethod
    def align(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``(crops [N, ...] uint8, found bool [N])``; crops of faces not found are ignored."""

    @abstractmethod
    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """Embeddings ``[len(crops), D]`` float32 of aligned crops."""

    def detect_and_crop(self, images: Sequence[np.ndarray], shape: tuple[int, int],
                        crop: Callable[[np.ndarray, Any], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The usual ``align``: ``self.detector`` finds the face of each image and ``crop(image,
        detection)`` returns its ``shape`` (height, width) RGB crop; no face -> a zero crop, not found."""
        crops = np.zeros((len(images), *shape, 3), dtype=np.uint8)
        found = np.zeros(len(images), dtype=bool)
        for i, image in enumerate(images):
            image = np.ascontiguousarray(image)
            det = self.detector.detect(image)
            if det is None:
                continue
            crops[i] = crop(image, det)
            found[i] = True
        return crops, found

    def embed(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        crops, found = self.align(images)
        emb = np.full((len(images), self.embedding_dim), np.nan, dtype=np.float32)
        if found.any():
            emb[found] = self.embed_crops(crops[found])
        return emb, np.where(found, STATUS_OK, STATUS_FTE).astype(object)
