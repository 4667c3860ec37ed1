"""A user's own model as a plugin (``plugins.color_model:factory``): a colour-histogram
"recognizer". Trivial as face recognition, but a complete FaceRecognizer with a real embedding."""

from __future__ import annotations

import numpy as np

from faceaudit.models.base import STATUS_FTE, STATUS_OK, FaceRecognizer


class ColorHistogram(FaceRecognizer):
    name = "color-hist"
    version = "1"
    embedding_dim = 24
    batch_size = 4

    def __init__(self, device: str = "cpu"):
        self.device = "cpu"
        self.calls = 0

    def embed(self, images):
        self.calls += 1
        out = np.full((len(images), self.embedding_dim), np.nan, dtype=np.float32)
        status = []
        for i, img in enumerate(images):
            img = np.asarray(img)
            if img.std() < 1.0:  # a flat image has no face to speak of
                status.append(STATUS_FTE)
                continue
            hist = [np.histogram(img[..., c], bins=8, range=(0, 256))[0] for c in range(3)]
            out[i] = np.concatenate(hist) / img[..., 0].size
            status.append(STATUS_OK)
        return out, np.array(status, dtype=object)


def factory(device: str = "cpu") -> ColorHistogram:
    return ColorHistogram(device)


def not_a_recognizer():
    return {"embed": "nope"}
