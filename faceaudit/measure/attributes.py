"""Attribute measures computed from CIELAB pixels and 68 dlib landmarks.

Every function takes a batch: ``lab [N, H, W, 3]`` (from :func:`faceaudit.measure.color.srgb_to_lab`)
and ``points [N, 68, 2]`` (input-pixel coordinates, NaN rows for faces without landmarks) and returns
one float per image. Landmark indices follow the iBUG 300-W 68-point layout (0-based): jaw 0-16,
brows 17-26, nose 27-35, eyes 36-47 (36-41 is the eye on the image's left), mouth 48-67.
"Left"/"right" always mean the image's left/right (the viewer's), never the subject's.

What each number really measures on 64x64 GAN faces is in docs/measures.md.
"""

from __future__ import annotations

import cv2
import numpy as np

from faceaudit.measure.color import ita_degrees

# sub-pixel polygon filling: cv2 takes fixed-point coordinates with this many fractional bits
_SHIFT = 4
_SCALE = float(1 << _SHIFT)

#: cheek polygons: lower eyelid, nostril, mouth corner, three jaw points. (Upper cheeks alone,
#: stopping at nostril height, read bluer on these renders: under-eye shadow. Tried, rejected.)
_CHEEK_LEFT = [41, 40, 31, 48, 4, 3, 2, 1]
_CHEEK_RIGHT = [46, 47, 35, 54, 12, 13, 14, 15]
#: shrink cheek polygons towards their centroid: their borders touch eyelashes, the nose shadow
#: and, at the jaw, often hair or background
_CHEEK_SHRINK = 0.55
#: forehead band above the inner brows, as fractions of the inter-ocular distance
_FOREHEAD_LOW = 0.15
_FOREHEAD_HIGH = 0.55
#: face outline: jaw, then brows right-to-left, closing over the forehead line of the brows
_FACE_OUTLINE = list(range(0, 17)) + list(range(26, 16, -1))


def _fill(mask: np.ndarray, polygon: np.ndarray) -> None:
    pts = np.round(polygon * _SCALE).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=_SHIFT)


def _shrink(polygon: np.ndarray, factor: float) -> np.ndarray:
    c = polygon.mean(axis=0)
    return c + (polygon - c) * factor


def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return points[:, 36:42].mean(axis=1), points[:, 42:48].mean(axis=1)


def inter_ocular(points: np.ndarray) -> np.ndarray:
    left, right = eye_centres(points)
    return np.linalg.norm(right - left, axis=1)


def skin_masks(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``[N, H, W]`` bool: both cheeks (shrunk) and a forehead band above the inner brows."""
    n = len(points)
    masks = np.zeros((n, *shape), dtype=np.uint8)
    iod = inter_ocular(points)
    for i in range(n):
        p = points[i]
        if not np.isfinite(p).all():
            continue
        _fill(masks[i], _shrink(p[_CHEEK_LEFT], _CHEEK_SHRINK))
        _fill(masks[i], _shrink(p[_CHEEK_RIGHT], _CHEEK_SHRINK))
        # forehead: a band following the inner brows (19..24), moved up by a fraction of the IOD
        brow = p[19:25]
        up = np.array([0.0, iod[i]])
        band = np.concatenate([brow - up * _FOREHEAD_LOW, (brow - up * _FOREHEAD_HIGH)[::-1]])
        _fill(masks[i], band)
    return masks.astype(bool)


def skin_ita(lab: np.ndarray, points: np.ndarray, masks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ITA (degrees) from the medians of L* and b* over the skin pixels, plus those medians.

    The skin pixels are ``masks [N, H, W]`` when given (the face-mesh mask,
    :mod:`faceaudit.measure.skin_mask`, chosen per face by :func:`faceaudit.measure.skin_pixels`),
    else the landmark patches of :func:`skin_masks`. Medians, not means: patches on a 64x64 face
    still catch a few hair, shadow or highlight pixels. ITA is taken from the median L* and b* (not
    the median of per-pixel ITA, which is unstable where b* is near 0), the way colorimetric
    studies take ITA from the mean L*, b* of a skin site.
    """
    n = len(lab)
    if masks is None:
        masks = skin_masks(points, lab.shape[1:3])
    med_l = np.full(n, np.nan)
    med_b = np.full(n, np.nan)
    for i in range(n):
        if masks[i].any():
            px = lab[i][masks[i]]
            med_l[i] = np.median(px[:, 0])
            med_b[i] = np.median(px[:, 2])
    return ita_degrees(med_l, med_b), med_l, med_b


def lighting_asymmetry(lab: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``(L_right - L_left) / (L_right + L_left)`` of mean L* in the two halves of the face outline.

    The halves are split by the line through the top of the nose bridge (27) and the chin (8), so
    they follow the face when the head is turned or tilted. Positive = the image-right half is
    brighter (light from the viewer's right). Range -1..1; a face lit evenly reads about 0.
    """
    n, h, w = lab.shape[:3]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.full(n, np.nan)
    outline = np.zeros((h, w), dtype=np.uint8)
    for i in range(n):
        p = points[i]
        if not np.isfinite(p).all():
            continue
        outline[:] = 0
        _fill(outline, cv2.convexHull(p[_FACE_OUTLINE].astype(np.float32)).reshape(-1, 2))
        top, chin = p[27], p[8]
        # sign of the cross product: which side of the bridge-chin line each pixel is on
        side = (chin[0] - top[0]) * (ys - top[1]) - (chin[1] - top[1]) * (xs - top[0])
        inside = outline.astype(bool)
        right = inside & (side < 0)
        left = inside & (side > 0)
        if right.sum() < 4 or left.sum() < 4:
            continue
        lr = lab[i, :, :, 0][right].mean()
        ll = lab[i, :, :, 0][left].mean()
        if lr + ll > 0:
            out[i] = (lr - ll) / (lr + ll)
    return out


def yaw_offset(points: np.ndarray) -> np.ndarray:
    """Nose-tip offset from the face centre as a fraction of the half face width (unitless).

    ``(x_nose_tip - x_mid) / (half width)`` with ``x_mid`` and the width from the outermost jaw
    points (0 and 16). Positive = the nose points to the image right (the subject turns to their
    left). For a rigid head it grows roughly like ``sin(yaw)``; about 0.1 per 10 degrees on these
    faces' proportions (docs/measures.md).
    """
    jaw_l = points[:, 0, 0]
    jaw_r = points[:, 16, 0]
    half = (jaw_r - jaw_l) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((points[:, 30, 0] - (jaw_l + jaw_r) / 2) / half).astype(np.float64)


def mouth_geometry(points: np.ndarray) -> dict[str, np.ndarray]:
    """Mouth width, lip-corner lift and opening, each divided by the inter-ocular distance.

    ``width``: corner to corner (48-54). ``corner_lift``: how far the corners sit above the centre
    of the lips (mean of inner-lip midpoints 62, 66), positive when raised as in a smile. ``open``:
    gap between the inner lips (62-66). Ratios to the IOD cancel face size and (to first order) yaw.
    """
    iod = inter_ocular(points)
    width = np.linalg.norm(points[:, 54] - points[:, 48], axis=1)
    corners_y = (points[:, 48, 1] + points[:, 54, 1]) / 2
    centre_y = (points[:, 62, 1] + points[:, 66, 1]) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "width": (width / iod).astype(np.float64),
            "corner_lift": ((centre_y - corners_y) / iod).astype(np.float64),
            "open": ((points[:, 66, 1] - points[:, 62, 1]) / iod).astype(np.float64),
        }


def brightness_contrast(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of L* over the whole image (needs no landmarks)."""
    lightness = lab[..., 0].reshape(len(lab), -1).astype(np.float64)
    return lightness.mean(axis=1), lightness.std(axis=1)
