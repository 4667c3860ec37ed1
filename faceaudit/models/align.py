"""Five-point similarity alignment to the 112x112 ArcFace template (SFace, InsightFace, ONNX models)."""

from __future__ import annotations

import cv2
import numpy as np

#: ArcFace / InsightFace reference landmarks for a 112x112 crop: eyes (image left, image right),
#: nose tip, mouth corners (image left, image right). YuNet reports its landmarks in this order.
ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) mapping
    ``src`` points onto ``dst`` (Umeyama 1991). Returns the 2x3 matrix for ``cv2.warpAffine``."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    n = len(src)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / n
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        # the best orthogonal fit is a reflection; take the best proper rotation instead
        sign[-1] = -1.0
    rot = u @ np.diag(sign) @ vt
    var_s = (s**2).sum() / n
    scale = float((sig * sign).sum() / var_s) if var_s > 0 else 1.0
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def align_112(image: np.ndarray, landmarks: np.ndarray, size: int = 112, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Warp ``image`` so its five landmarks land on the ArcFace template (scaled to ``size``)."""
    template = ARCFACE_112 * (size / 112.0)
    m = similarity_transform(landmarks, template)
    return cv2.warpAffine(image, m, (size, size), flags=interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def loose_template(size: int, face_fraction: float) -> np.ndarray:
    """The ArcFace five-point template shrunk about the crop centre to ``face_fraction`` of its size,
    scaled to a ``size`` px crop (:func:`align_loose`'s target points)."""
    centre = np.array([56.0, 56.0])
    return ((ARCFACE_112 - centre) * face_fraction + centre) * (size / 112.0)


def align_loose(image: np.ndarray, landmarks: np.ndarray, size: int, face_fraction: float) -> np.ndarray:
    """Like :func:`align_112`, but the five-point template is shrunk about the crop centre to
    ``face_fraction`` of its ArcFace size, so the crop keeps forehead, hair and chin (networks
    trained on loose detector boxes, e.g. HSE FaceRec, expect that). Borders are replicated rather
    than black, so a face near the image edge does not get a dark frame."""
    m = similarity_transform(landmarks, loose_template(size, face_fraction))
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


#: YuNet's landmark order after a horizontal mirror: the two eyes swap, and the two mouth corners
MIRROR_ORDER = [1, 0, 2, 4, 3]


def mirror_averaged_landmarks(landmarks: np.ndarray, mirrored_landmarks: np.ndarray | None, width: int) -> np.ndarray:
    """The mean of ``landmarks`` (found on an image) and ``mirrored_landmarks`` (found on its
    horizontal mirror, mapped back into the image's frame and order). YuNet's landmarks on a face
    and on its mirror disagree by up to ~14 px on t1.jpg's faces (eye distance ~50 px); averaging
    cancels that left/right bias, so a face and its mirror get mirror-image crops. ``None`` (no
    face found on the mirror) keeps ``landmarks``."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if mirrored_landmarks is None:
        return landmarks
    back = np.asarray(mirrored_landmarks, dtype=np.float64)[MIRROR_ORDER].copy()
    back[:, 0] = (width - 1) - back[:, 0]
    return (landmarks + back) / 2.0
