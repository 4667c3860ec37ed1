"""A plugin recognizer that finds no face in any image (``plugins.no_face_model:factory``): every
embedding is a failure to enrol, as a detector that never fires would give."""

from __future__ import annotations

import numpy as np

from faceaudit.models.base import STATUS_FTE, FaceRecognizer


class NoFace(FaceRecognizer):
    name = "no-face"
    version = "1"
    embedding_dim = 8
    batch_size = 16

    def __init__(self, device: str = "cpu"):
        self.device = "cpu"

    def embed(self, images):
        out = np.full((len(images), self.embedding_dim), np.nan, dtype=np.float32)
        return out, np.array([STATUS_FTE] * len(images), dtype=object)


def factory(device: str = "cpu") -> NoFace:
    return NoFace(device)
