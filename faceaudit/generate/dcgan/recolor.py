"""``protected.mechanism: recolor``: skin tone changed in pixel space, skin pixels only.

A latent skin edit changes colour and facial morphology together (the generator's idea of a
darker-skinned face). Recolouring changes reflectance only: the seed's own face, with the skin
pixels moved in CIELAB and every other pixel byte-identical. Two runs, one per mechanism, separate
"colour alone" from "what the generator renders as darker skin".

* **Mask** (:func:`skin_weights`): the face-mesh skin mask (:mod:`faceaudit.measure.skin_mask`:
  face oval minus eyes, brows and lips; the pixels the ITA measure reads) where the mesh finds the
  face, else the face region of the 68 landmarks (convex hull of the jaw line and of the brows
  lifted by :data:`FOREHEAD_IOD` inter-ocular distances) minus the eye openings, a line along each
  brow and the lips; feathered by a Gaussian of :data:`FEATHER_SIGMA` px. Weights below
  :data:`MIN_WEIGHT` are set to 0: those pixels are copied unchanged. :func:`face_skin_weights`
  picks the mask per face.
* **Colour** (:func:`recolor`): inside the mask, ``L* <- L* * ratio`` (a ratio, so shading,
  highlights and shadows keep their relative depth) and ``b* <- b* + delta_b``, blended by the
  weight; a* is kept. Back to sRGB with the exact inverse of the measuring colour conversion.
* **Target** (:func:`target_lab`): the point of the level's target ITA ray (``atan2(L* - 50, b*)``)
  on a skin locus through the seed's own median skin (L*0, b*0) with slope
  :data:`LOCUS_SLOPE` (b* per L*; the slope between the latent mechanism's light and dark
  prototypes on the default audit: median skin L*/b* 65/16.8 and 24/8.4), so darker skin is also
  a little less yellow, as on the generator's own renders.
* **Reaching the bin**: the recoloured face is measured (landmarks found again); while its ITA is
  outside the level's bin the target angle is corrected by the miss (fixed-point), for at most
  ``generator.max_skin_steps`` measurements. A seed whose own face is already in the bin keeps it.

Nuisance edits of a recoloured prototype are rendered from the seed's latent as usual and then
recoloured with the prototype's ``ratio`` and ``delta_b`` on their own mesh or landmarks (the
prototype's landmarks when the edited face has neither): the skin colour is a property of the seed and level, the
edit acts on the rest. Limits: docs/generator.md ("The recolor mechanism").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import cv2
import numpy as np
import pandas as pd

from faceaudit.measure.attributes import inter_ocular
from faceaudit.measure.color import lab_to_srgb, srgb_to_lab
from faceaudit.measure.skin_mask import MIN_MESH_MASK_PX, mesh_skin_mask

if TYPE_CHECKING:
    from faceaudit.generate.dcgan.editing import SkinSearchResult
    from faceaudit.protocol import SkinLevel

#: the mask reaches this many IODs above the brows (the forehead skin patch stops at 0.55)
FOREHEAD_IOD = 0.5
#: the holes are the landmark polygons of the eye openings and the lips and a line along each brow,
#: with no extra margin: on a 64 px face the brow-to-eye gap is about 4 px, and wider holes left a
#: band of unrecoloured skin around the eyes (tried: 1 px margins and 3 px brows, "raccoon" faces);
#: the mesh mask is used with bare holes too (its ITA measure grows them by 1 px)
BROW_THICKNESS_PX = 2
FEATHER_SIGMA = 0.7
MIN_WEIGHT = 1.0 / 64
#: b* per L* along the skin locus (module docstring)
LOCUS_SLOPE = 0.2
#: a seed's own skin b* is floored at this before the locus is drawn (achromatic faces)
MIN_B = 6.0

_JAW = list(range(0, 17))
_BROWS = (list(range(17, 22)), list(range(22, 27)))
_EYES = (list(range(36, 42)), list(range(42, 48)))
_MOUTH = list(range(48, 60))


def _poly(mask: np.ndarray, pts: np.ndarray) -> None:
    cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32).reshape(-1, 1, 2)], 1, shift=4)


def skin_weights(points: np.ndarray, shape: tuple[int, int], mesh_points: np.ndarray | None = None) -> np.ndarray:
    """``[H, W]`` float weights in [0, 1]: 0 outside the feathered skin mask (module docstring).

    Parameters
    ----------
    points : ndarray
        ``[68, 2]`` dlib landmarks (image pixels).
    shape : tuple of int
        ``(H, W)`` of the image.
    mesh_points : ndarray, optional
        ``[468, 2]`` face-mesh points: the mesh mask is used when they are finite and their mask
        has at least :data:`~faceaudit.measure.skin_mask.MIN_MESH_MASK_PX` pixels; otherwise, and
        when None, the mask is built from ``points``.

    Returns
    -------
    ndarray
        ``[H, W]`` float64 weights.

    Examples
    --------
    >>> from faceaudit.measure.skin_mask import FACE_OVAL
    >>> ring = np.linspace(0, 2 * np.pi, len(FACE_OVAL), endpoint=False)
    >>> mesh = np.full((468, 2), 32.0)  # a round face oval; the holes collapse onto its centre
    >>> mesh[FACE_OVAL] = np.c_[32 + 20 * np.sin(ring), 32 - 20 * np.cos(ring)]
    >>> w = skin_weights(np.full((68, 2), np.nan), (64, 64), mesh_points=mesh)
    >>> round(float(w[32, 20]), 3), float(w[2, 2])
    (1.0, 0.0)
    """
    if mesh_points is not None:
        mesh = mesh_skin_mask(mesh_points, shape, hole_margin_px=0)
        if mesh.sum() >= MIN_MESH_MASK_PX:
            return _feather(mesh.astype(np.float64))
    points = np.asarray(points, dtype=np.float64)
    iod = float(inter_ocular(points[None])[0])
    face = np.zeros(shape, np.uint8)
    lifted = np.concatenate([points[b] for b in _BROWS]) - np.array([0.0, FOREHEAD_IOD * iod])
    _poly(face, cv2.convexHull(np.concatenate([points[_JAW], lifted]).astype(np.float32)).reshape(-1, 2))
    holes = np.zeros(shape, np.uint8)
    for eye in _EYES:
        _poly(holes, points[eye])
    _poly(holes, points[_MOUTH])
    for brow in _BROWS:
        cv2.polylines(holes, [np.round(points[brow] * 16).astype(np.int32).reshape(-1, 1, 2)], False, 1,
                      thickness=BROW_THICKNESS_PX, shift=4)
    return _feather((face.astype(bool) & ~holes.astype(bool)).astype(np.float64))


def _feather(hard: np.ndarray) -> np.ndarray:
    w = cv2.GaussianBlur(hard, (0, 0), FEATHER_SIGMA, borderType=cv2.BORDER_REPLICATE)
    w[w < MIN_WEIGHT] = 0.0
    return np.clip(w, 0.0, 1.0)


def face_skin_weights(measurer, images: np.ndarray) -> tuple[list[np.ndarray | None], np.ndarray]:
    """Recolouring weights for each image: the mesh mask where the mesh finds the face, else the
    landmark hull (:func:`skin_weights`).

    Parameters
    ----------
    measurer : FaceMeasurer
        Its landmarker finds the faces; its mesh (when it has one: ``skin_mask="auto"`` and the
        model fetched) gives the mask, so the recoloured skin is the skin its ITA measure reads
        (with bare holes, see :data:`BROW_THICKNESS_PX`).
    images : ndarray
        ``[N, H, W, 3]`` uint8 RGB.

    Returns
    -------
    weights : list
        ``[H, W]`` float weights per image, None where no face was found.
    landmarks : ndarray
        ``[N, 68, 2]`` landmarks (NaN rows where not found).

    Examples
    --------
    >>> from faceaudit.measure import FaceMeasurer
    >>> weights, points = face_skin_weights(FaceMeasurer(skin_mask="landmarks"), np.zeros((1, 64, 64, 3), np.uint8))
    >>> weights, bool(np.isnan(points).all())
    ([None], True)
    """
    marks = measurer.landmarks(images)
    mesh = measurer.mesh_points(images, marks)
    shape = images.shape[1:3]
    weights = [
        skin_weights(marks.points[i], shape, None if mesh is None else mesh[i]) if marks.found[i] else None
        for i in range(len(images))
    ]
    return weights, marks.points


def recolor(image: np.ndarray, weights: np.ndarray, ratio: float, delta_b: float) -> np.ndarray:
    """``image`` with skin L* scaled by ``ratio`` and b* shifted by ``delta_b`` where ``weights > 0``;
    every other pixel is copied, byte for byte."""
    if ratio == 1.0 and delta_b == 0.0:
        return image.copy()
    lab = srgb_to_lab(image).astype(np.float64)
    w = weights
    new = lab.copy()
    new[..., 0] = lab[..., 0] + w * (lab[..., 0] * ratio - lab[..., 0])
    new[..., 2] = lab[..., 2] + w * delta_b
    new[..., 0] = np.clip(new[..., 0], 0.0, 100.0)
    out = image.copy()
    inside = w > 0
    out[inside] = lab_to_srgb(new[inside])
    return out


def target_lab(ita_deg: float, l0: float, b0: float) -> tuple[float, float]:
    """(L*, b*) on the ITA ray ``ita_deg`` where it meets the skin locus through (l0, max(b0, MIN_B))."""
    theta = np.radians(ita_deg)
    b0 = max(b0, MIN_B)
    r = (b0 + LOCUS_SLOPE * (50.0 - l0)) / (np.cos(theta) - LOCUS_SLOPE * np.sin(theta))
    r = max(float(r), 1.0)
    return 50.0 + r * float(np.sin(theta)), r * float(np.cos(theta))


def recolor_skin_levels(
    measurer,
    base_latents: np.ndarray,
    base_images: np.ndarray,
    base_measures: pd.DataFrame,
    levels: Sequence["SkinLevel"],
    max_steps: int,
    on_resolved: Callable[[int], None] | None = None,
) -> "SkinSearchResult":
    """Recoloured prototypes for every seed and level (module docstring), as a ``SkinSearchResult``.

    ``shifts`` holds the change of median skin L* the recolouring aimed at, ``recolor`` the
    ``(ratio, delta_b)`` per (seed, level), and ``landmarks`` the base faces' points.
    """
    from faceaudit.generate.dcgan.editing import REASON_NO_LANDMARKS, REASON_NOT_REACHED, SkinSearchResult
    from faceaudit.measure import FaceMeasurer

    landmarker = measurer if isinstance(measurer, FaceMeasurer) else FaceMeasurer()
    weights, base_points = face_skin_weights(landmarker, base_images)
    n, n_levels = len(base_images), len(levels)
    images = np.zeros((n, n_levels, *base_images.shape[1:]), dtype=np.uint8)
    measures: list[list[pd.Series | None]] = [[None] * n_levels for _ in range(n)]
    params = np.tile(np.array([1.0, 0.0]), (n, n_levels, 1))
    steps = np.zeros((n, n_levels), dtype=np.int64)
    success = np.zeros((n, n_levels), dtype=bool)
    reasons = np.full((n, n_levels), "", dtype=object)
    l_shift = np.full((n, n_levels), np.nan)

    pending: list[tuple[int, int, float]] = []  # (seed index, level index, aimed ITA)
    for i in range(n):
        row = base_measures.iloc[i]
        for j, lv in enumerate(levels):
            if weights[i] is None or not bool(row["measured_ok"]):
                reasons[i, j] = REASON_NO_LANDMARKS
                continue
            ita0 = float(row["measured_skin_ita"])
            if lv.ita_min <= ita0 < lv.ita_max:
                images[i, j], measures[i][j], success[i, j], l_shift[i, j] = base_images[i], row, True, 0.0
                continue
            pending.append((i, j, float(lv.target)))
    if on_resolved and success.any():
        on_resolved(int(success.sum()))
    while pending:
        batch, out = [], []
        for i, j, aim in pending:
            row = base_measures.iloc[i]
            l0, b0 = float(row["measured_skin_lightness"]), float(row["measured_skin_b"])
            lt, bt = target_lab(aim, l0, b0)
            ratio, delta_b = lt / max(l0, 1.0), bt - b0
            batch.append((i, j, aim, ratio, delta_b, lt - l0))
            out.append(recolor(base_images[i], weights[i], ratio, delta_b))
        meas = measurer.measure(np.stack(out))
        pending = []
        newly = 0
        for k, (i, j, aim, ratio, delta_b, dl) in enumerate(batch):
            steps[i, j] += 1
            lv = levels[j]
            row = meas.iloc[k]
            ita = float(row["measured_skin_ita"]) if bool(row["measured_ok"]) else float("nan")
            if np.isfinite(ita) and lv.ita_min <= ita < lv.ita_max:
                images[i, j], measures[i][j], success[i, j] = out[k], row, True
                params[i, j], l_shift[i, j] = (ratio, delta_b), dl
                newly += 1
            elif steps[i, j] >= max_steps or not np.isfinite(ita):
                reasons[i, j] = REASON_NOT_REACHED if np.isfinite(ita) else REASON_NO_LANDMARKS
            else:
                # aim past the miss; ITA cannot exceed +-90 on the ray, keep the aim inside
                pending.append((i, j, float(np.clip(aim + (lv.target - ita), -85.0, 85.0))))
        if on_resolved and newly:
            on_resolved(newly)
    result = SkinSearchResult(
        base_latents=np.asarray(base_latents),
        chroma_shifts=np.zeros(n),
        shifts=np.where(success, l_shift, np.nan),
        exposure_shifts=np.where(success, 0.0, np.nan),
        latents=np.repeat(np.asarray(base_latents)[:, None, :], n_levels, axis=1),
        success=success,
        steps=steps,
        reasons=reasons,
        images=images,
        measures=measures,
        recolor=params,
        landmarks=base_points,
    )
    return result


def recolor_edits(
    images: np.ndarray, params: np.ndarray, fallback_points: np.ndarray, landmarker=None
) -> np.ndarray:
    """Recolour edited faces ``images [N, H, W, 3]`` with ``params [N, 2]`` (ratio, delta_b), each on
    its own mesh or landmarks (:func:`face_skin_weights`), or on ``fallback_points [N, 68, 2]`` (its
    prototype's landmarks) when it has neither."""
    from faceaudit.measure import FaceMeasurer

    landmarker = landmarker or FaceMeasurer()
    weights, _ = face_skin_weights(landmarker, images)
    out = np.empty_like(images)
    for k in range(len(images)):
        ratio, delta_b = float(params[k, 0]), float(params[k, 1])
        if ratio == 1.0 and delta_b == 0.0:
            out[k] = images[k]
            continue
        w = weights[k] if weights[k] is not None else skin_weights(fallback_points[k], images.shape[1:3])
        out[k] = recolor(images[k], w, ratio, delta_b)
    return out
