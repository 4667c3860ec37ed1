"""Exposure and white balance, measured on pixels that are *not* the face.

A darker-skin edit should darken the skin, not the photograph. These measures look where skin is
not, so they separate the two:

* ``border_luma``: mean luma of the outer :data:`BORDER_PX` pixels of the image (background, hair,
  shoulders). Needs no landmarks, so it is defined for every image.
* ``background_luma``: mean luma of the non-face pixels: everything outside the face region, which
  is the convex hull of the 68 landmarks' jaw line and of the brows lifted by
  :data:`FACE_TOP_IOD` inter-ocular distances (forehead and hairline), grown by :data:`FACE_MARGIN_PX`.
* ``hair_luma``: mean luma of a band above the face, :data:`HAIR_LOW_IOD` to :data:`HAIR_HIGH_IOD`
  inter-ocular distances above the brows, between the outermost jaw points (clipped to the image).
* ``white_balance``: grey-world colour cast of the non-face pixels, ``log2(mean R / mean B)`` in
  linear light: 0 is neutral, +1 means the red channel carries twice the blue (warm), -1 cool.

Luma is Rec. 601 ``Y' = 0.299 R' + 0.587 G' + 0.114 B'`` on the gamma-encoded 0..255 codes, so a
change of 5 is "5/255", the unit the audit's exposure tolerance is stated in. Limits:
docs/measures.md ("Exposure and white balance").
"""

from __future__ import annotations

import cv2
import numpy as np

from faceaudit.measure.attributes import inter_ocular
from faceaudit.measure.color import _SRGB_TO_LINEAR

#: width of the image border ring, pixels (64 px images: about a tenth of the side)
BORDER_PX = 6
#: the face region reaches this many IODs above the brows (forehead up to the hairline)
FACE_TOP_IOD = 0.7
#: the face region is grown by this many pixels (landmark noise, the soft face edge)
FACE_MARGIN_PX = 1
#: hair band above the brows, in IODs (the forehead skin patch stops at 0.55)
HAIR_LOW_IOD = 0.75
HAIR_HIGH_IOD = 1.2
#: a mask with fewer pixels than this gives NaN rather than a mean of a handful of pixels
MIN_PIXELS = 12

_JAW = list(range(0, 17))
_BROWS = list(range(17, 27))


def luma(images: np.ndarray) -> np.ndarray:
    """``[..., H, W]`` float64 Rec. 601 luma of uint8 RGB images (0..255).

    Element-wise, not a matmul: a BLAS product rounds differently with the batch size, and the
    skin search must give the same answer for a seed however the seeds are chunked.
    """
    x = np.asarray(images, dtype=np.float64)
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


def border_mask(shape: tuple[int, int], width: int = BORDER_PX) -> np.ndarray:
    h, w = shape
    mask = np.ones((h, w), dtype=bool)
    mask[width : h - width, width : w - width] = False
    return mask


def face_region(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``[H, W]`` bool: jaw line plus brows lifted by FACE_TOP_IOD IODs, convex hull, grown by a margin."""
    iod = float(inter_ocular(points[None])[0])
    lifted = points[_BROWS] - np.array([0.0, FACE_TOP_IOD * iod])
    hull = cv2.convexHull(np.concatenate([points[_JAW], lifted]).astype(np.float32))
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.fillPoly(mask, [np.round(hull.reshape(-1, 2) * 16).astype(np.int32).reshape(-1, 1, 2)], 1, shift=4)
    if FACE_MARGIN_PX:
        k = 2 * FACE_MARGIN_PX + 1
        mask = cv2.dilate(mask, np.ones((k, k), np.uint8))
    return mask.astype(bool)


def hair_band(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``[H, W]`` bool: rows HAIR_LOW_IOD..HAIR_HIGH_IOD IODs above the brows' mean height, jaw-wide."""
    h, w = shape
    iod = float(inter_ocular(points[None])[0])
    brow_y = float(points[_BROWS, 1].mean())
    top, bottom = brow_y - HAIR_HIGH_IOD * iod, brow_y - HAIR_LOW_IOD * iod
    left, right = float(points[0, 0]), float(points[16, 0])
    ys, xs = np.mgrid[0:h, 0:w]
    return (ys >= top) & (ys < bottom) & (xs >= left) & (xs <= right)


def _mean(values: np.ndarray, mask: np.ndarray) -> float:
    return float(values[mask].mean()) if mask.sum() >= MIN_PIXELS else float("nan")


def exposure_measures(images: np.ndarray, points: np.ndarray) -> dict[str, np.ndarray]:
    """Per image: ``border_luma``, ``background_luma``, ``hair_luma``, ``white_balance`` (see module doc).

    ``points [N, 68, 2]`` may hold NaN rows (no landmarks): those images get NaN for every
    landmark-based measure; ``border_luma`` is always defined.
    """
    images = np.asarray(images)
    n, h, w = images.shape[:3]
    y = luma(images)
    ring = border_mask((h, w))
    out = {k: np.full(n, np.nan) for k in ("border_luma", "background_luma", "hair_luma", "white_balance")}
    for i in range(n):
        out["border_luma"][i] = float(y[i][ring].mean())
        p = points[i]
        if not np.isfinite(p).all():
            continue
        nonface = ~face_region(p, (h, w))
        out["background_luma"][i] = _mean(y[i], nonface)
        out["hair_luma"][i] = _mean(y[i], hair_band(p, (h, w)))
        if nonface.sum() >= MIN_PIXELS:
            px = images[i][nonface]
            r = float(_SRGB_TO_LINEAR[px[:, 0]].mean())
            b = float(_SRGB_TO_LINEAR[px[:, 2]].mean())
            # a floor of one code value in linear light keeps a black background finite
            floor = float(_SRGB_TO_LINEAR[1])
            out["white_balance"][i] = float(np.log2(max(r, floor) / max(b, floor)))
    return out
