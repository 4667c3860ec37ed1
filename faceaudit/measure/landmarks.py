"""Face boxes (YuNet) and 68-point landmarks (dlib) for small synthetic faces.

Why this combination: dlib's HOG face detector misses about a quarter of the 64x64 DCGAN faces
even after upscaling, while OpenCV's YuNet finds >99% of them. dlib's 68-point shape predictor
(iBUG 300-W layout) then places the landmarks every measure in :mod:`faceaudit.measure` uses.

Measured on 600 random DCGAN faces (see docs/measures.md):

* YuNet (the shared :mod:`faceaudit.models.detect` wrapper) on the native 64x64 image finds 97%
  of faces at ~420 images/s; on the 2x upscale 99.2% at ~250/s; on the 4x upscale 99% at ~125/s.
  We run 1x and retry misses at 2x (99.5% found, ~400/s).
* The shape predictor was trained with dlib's HOG boxes, which are framed differently from YuNet's
  boxes (YuNet includes the forehead). We place a HOG-style square box from YuNet's five points:
  centre = midpoint of (eye centre, mouth centre) + (-0.045, -0.095) x eye-mouth distance,
  side = 2.22 x eye-mouth distance (least-squares fit to HOG boxes on the faces HOG does find;
  residual ~1-2 px). Landmarks from this box differ from those from the HOG box by 0.6 px
  (on the 64 px scale) on average.
* The shape predictor runs on the 4x (cubic) upscale: its landmarks at 1x differ from the 4x ones
  by 0.74 px, at 2x by 0.38 px, and its cost (~4 ms/face) does not depend on the image size.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from faceaudit.core.errors import ModelUnavailable
from faceaudit.models.detect import Detection, FaceDetector

N_LANDMARKS = 68
#: shape-predictor working scale (landmarks are returned in input-image pixels)
LANDMARK_UPSCALE = 4
#: YuNet working sizes (short side, pixels) tried in order until a face is found
DETECT_MIN_SIDES = (64, 128)

# HOG-style box from YuNet's five points, in units of the eye-mouth distance (fit: module docstring)
_BOX_OFFSET = np.array([-0.045, -0.095])
_BOX_SIDE = 2.22


def _package_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"measure: package {package} is not installed (pip install --no-deps {pip_name})")
    return Path(list(spec.submodule_search_locations)[0])


def shape_predictor_path() -> Path:
    return _package_dir("face_recognition_models", "face_recognition_models==0.3.0") / "models" / "shape_predictor_68_face_landmarks.dat"


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ModelUnavailable(f"measure: {what} not found: {path}")
    return path


@dataclass
class LandmarkResult:
    """``points [N, 68, 2]`` float32 in input-image pixels (NaN where ``found`` is False),
    ``boxes [N, 4]`` (x, y, w, h) of the YuNet detection, ``scores [N]`` its confidence."""

    points: np.ndarray
    found: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray


def dlib_box_from_yunet(pts: np.ndarray) -> tuple[float, float, float, float]:
    """HOG-style (left, top, right, bottom) from YuNet's ``[5, 2]`` points (eyes, nose, mouth corners)."""
    eye = (pts[0] + pts[1]) / 2
    mouth = (pts[3] + pts[4]) / 2
    dist = float(np.linalg.norm(mouth - eye))
    centre = (eye + mouth) / 2 + _BOX_OFFSET * dist
    half = _BOX_SIDE * dist / 2
    return centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half


class LandmarkDetector:
    """YuNet box -> dlib 68 landmarks, one image at a time (dlib holds the GIL; threads do not help)."""

    def __init__(self, predictor: str | Path | None = None, yunet: str | Path | None = None):
        import dlib  # imported here: dlib is slow to import and only measurement needs it

        self._dlib = dlib
        path = _require_file(Path(predictor) if predictor else shape_predictor_path(), "dlib 68-point shape predictor")
        self.predictor = dlib.shape_predictor(str(path))
        # the shared YuNet wrapper, once per working size: native first, the 2x upscale for misses
        self.detectors = [FaceDetector(model_path=yunet, min_side=side) for side in DETECT_MIN_SIDES]

    def detect(self, image: np.ndarray) -> Detection | None:
        for det in self.detectors:
            found = det.detect(image)
            if found is not None:
                return found
        return None

    def landmarks(self, images: Sequence[np.ndarray] | np.ndarray) -> LandmarkResult:
        n = len(images)
        points = np.full((n, N_LANDMARKS, 2), np.nan, dtype=np.float32)
        found = np.zeros(n, dtype=bool)
        boxes = np.full((n, 4), np.nan, dtype=np.float32)
        scores = np.full(n, np.nan, dtype=np.float32)
        k = LANDMARK_UPSCALE
        for i, img in enumerate(images):
            img = np.ascontiguousarray(img)
            face = self.detect(img)
            if face is None:
                continue
            left, top, right, bottom = dlib_box_from_yunet(face.landmarks)
            h, w = img.shape[:2]
            # grey: dlib would average the channels itself; luma is what the predictor's
            # intensity-difference features are meant to see, and it is 15% faster
            big = cv2.cvtColor(cv2.resize(img, (w * k, h * k), interpolation=cv2.INTER_CUBIC), cv2.COLOR_RGB2GRAY)
            rect = self._dlib.rectangle(int(round(left * k)), int(round(top * k)), int(round(right * k)), int(round(bottom * k)))
            shape = self.predictor(big, rect)
            # pixel centres: upscaled pixel j covers input coordinates [j/k, (j+1)/k)
            points[i] = [((p.x + 0.5) / k - 0.5, (p.y + 0.5) / k - 0.5) for p in shape.parts()]
            found[i] = True
            boxes[i] = face.box
            scores[i] = face.score
        return LandmarkResult(points=points, found=found, boxes=boxes, scores=scores)
