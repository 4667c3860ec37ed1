"""Skin masks from the 468-point MediaPipe face mesh: the face oval minus eyes, brows and lips.

The contours are MediaPipe's standard ones (``FACEMESH_FACE_OVAL``, ``FACEMESH_LEFT_EYE``,
``FACEMESH_RIGHT_EYE``, ``FACEMESH_LEFT_EYEBROW``, ``FACEMESH_RIGHT_EYEBROW``, ``FACEMESH_LIPS``
in mediapipe/python/solutions/face_mesh_connections.py, github.com/google/mediapipe, Apache-2.0),
which list edges; here each edge set is written out as the closed polygon it traces. "Left" and
"right" are MediaPipe's: the subject's, so ``RIGHT_EYE`` is on the image's left.

:func:`mesh_skin_masks` rasterises at image resolution (``cv2.fillPoly``, 1/16 px sub-pixel
vertices). Why a mesh mask: the 68-point sampler (:func:`faceaudit.measure.attributes.skin_masks`)
reads three small patches (shrunk cheeks and a forehead band) whose placement follows a few
landmarks, so a pose or expression edit moves the sampled skin; the oval covers all visible skin.
What it changes: docs/measures.md ("Skin mask").
"""

from __future__ import annotations

import cv2
import numpy as np

#: FACEMESH_FACE_OVAL, in order around the face (forehead top 10, clockwise in the image)
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
#: FACEMESH_RIGHT_EYE: lower lid 33 -> 133, then upper lid back
RIGHT_EYE = [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246]
#: FACEMESH_LEFT_EYE: lower lid 263 -> 362, then upper lid back
LEFT_EYE = [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466]
#: FACEMESH_RIGHT_EYEBROW: upper edge (70 -> 107), then lower edge back (55 -> 46)
RIGHT_EYEBROW = [70, 63, 105, 66, 107, 55, 65, 52, 53, 46]
#: FACEMESH_LEFT_EYEBROW: upper edge (300 -> 336), then lower edge back (285 -> 276)
LEFT_EYEBROW = [300, 293, 334, 296, 336, 285, 295, 282, 283, 276]
#: FACEMESH_LIPS, outer contour: upper lip 61 -> 291, lower lip back
LIPS = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146]
#: the holes cut out of the oval
HOLES = (RIGHT_EYE, LEFT_EYE, RIGHT_EYEBROW, LEFT_EYEBROW, LIPS)
#: the measuring mask grows the holes by this many pixels (a 3x3 dilation per pixel): on 64 px
#: faces an eye opening is ~2.5 px tall and the mesh and dlib place it ~0.8 px apart, so the bare
#: polygons left dlib's eye centre inside the mask on 12% of 192 faces, and lash and lid pixels
#: are not skin either. The recolouring mask keeps bare holes (recolor.py says why).
HOLE_MARGIN_PX = 1

_SHIFT = 4  # cv2.fillPoly fixed-point fractional bits (1/16 px)


def _fill(mask: np.ndarray, polygon: np.ndarray) -> None:
    pts = np.round(polygon * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=_SHIFT)


def mesh_skin_mask(points: np.ndarray, shape: tuple[int, int], hole_margin_px: int = HOLE_MARGIN_PX) -> np.ndarray:
    """``[H, W]`` bool skin mask of one face from its mesh ``points [468, >=2]`` (image pixels,
    pixel centres at integers): inside :data:`FACE_OVAL`, outside every polygon of :data:`HOLES`
    grown by ``hole_margin_px``. All False when any point is NaN.

    Parameters
    ----------
    points : ndarray
        ``[468, 2]`` (or ``[468, 3]``, z ignored) mesh points in image pixels.
    shape : tuple of int
        ``(H, W)`` of the image.
    hole_margin_px : int
        Pixels added around each hole (:data:`HOLE_MARGIN_PX`).

    Returns
    -------
    ndarray
        ``[H, W]`` bool.

    Examples
    --------
    >>> pts = np.full((468, 2), 32.0)
    >>> ring = np.linspace(0, 2 * np.pi, len(FACE_OVAL), endpoint=False)
    >>> pts[FACE_OVAL] = np.c_[32 + 20 * np.sin(ring), 32 - 20 * np.cos(ring)]
    >>> mask = mesh_skin_mask(pts, (64, 64))
    >>> bool(mask[32, 20]), bool(mask[5, 5])
    (True, False)
    """
    pts = np.asarray(points, dtype=np.float64)[:, :2]
    mask = np.zeros(shape, dtype=np.uint8)
    if pts.shape[0] < 468 or not np.isfinite(pts).all():
        return mask.astype(bool)
    _fill(mask, pts[FACE_OVAL])
    holes = np.zeros(shape, dtype=np.uint8)
    for hole in HOLES:
        _fill(holes, pts[hole])
    if hole_margin_px > 0:
        holes = cv2.dilate(holes, np.ones((3, 3), np.uint8), iterations=int(hole_margin_px))
    return mask.astype(bool) & ~holes.astype(bool)


def mesh_skin_masks(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """:func:`mesh_skin_mask` for a batch ``points [N, 468, 2]`` -> ``[N, H, W]`` bool (rows with
    NaN points give empty masks).

    Examples
    --------
    >>> mesh_skin_masks(np.full((2, 468, 2), np.nan), (8, 8)).shape
    (2, 8, 8)
    """
    return np.stack([mesh_skin_mask(p, shape) for p in points]) if len(points) else np.zeros((0, *shape), dtype=bool)


#: faces-table values of ``measured_skin_mask``: which pixels the skin measures read
MASK_MESH = "mesh"
MASK_LANDMARKS = "landmarks"
MASK_NONE = "none"
#: a mesh mask with fewer pixels than this is treated as no mesh (a collapsed mesh on a non-face);
#: a 64x64 DCGAN face's mesh mask has ~1,700 (docs/measures.md)
MIN_MESH_MASK_PX = 100


def select_skin_masks(
    landmark_points: np.ndarray, mesh_points: np.ndarray | None, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Per face, the mesh mask where the mesh found the face, else the 68-landmark patches
    (:func:`faceaudit.measure.attributes.skin_masks`), else an empty mask.

    Parameters
    ----------
    landmark_points : ndarray
        ``[N, 68, 2]`` dlib landmarks (NaN rows: no landmarks).
    mesh_points : ndarray or None
        ``[N, 468, 2]`` mesh points (NaN rows: no mesh); None when the mesh model is unavailable.
    shape : tuple of int
        ``(H, W)`` of the images.

    Returns
    -------
    masks : ndarray
        ``[N, H, W]`` bool.
    source : ndarray
        ``[N]`` object: :data:`MASK_MESH`, :data:`MASK_LANDMARKS` or :data:`MASK_NONE`.

    Examples
    --------
    >>> masks, source = select_skin_masks(np.full((1, 68, 2), np.nan), None, (8, 8))
    >>> source.tolist(), bool(masks.any())
    (['none'], False)
    """
    from faceaudit.measure.attributes import skin_masks

    n = len(landmark_points)
    masks = skin_masks(np.asarray(landmark_points, dtype=np.float64), shape)
    source = np.where(masks.reshape(n, -1).any(axis=1), MASK_LANDMARKS, MASK_NONE).astype(object)
    if mesh_points is not None:
        for i in range(n):
            m = mesh_skin_mask(mesh_points[i], shape)
            if m.sum() >= MIN_MESH_MASK_PX:
                masks[i], source[i] = m, MASK_MESH
    return masks, source
