"""Attribute measurement from pixels and landmarks: what each image actually shows.

``FaceMeasurer().measure(images)`` returns one row per image with

* ``measured_skin_ita``   skin tone, ITA degrees from the face-mesh skin mask (cheek + forehead
  patches of the 68 landmarks where the mesh finds no face)
* ``measured_monk``       Monk Skin Tone class 1..10 of the same skin pixels (nearest swatch, CIEDE2000)
* ``measured_yaw``        head yaw, nose-tip offset / half face width (unitless, signed)
* ``measured_lighting``   left/right luminance asymmetry of the face, -1..1 (signed)
* ``measured_smile``      mouth width / inter-ocular distance
* ``measured_brightness`` mean L* of the image (0..100)
* ``measured_contrast``   standard deviation of L* of the image
* ``measured_ok``         landmarks were found (otherwise the landmark measures are NaN)

plus the components behind them (``measured_skin_lightness``, ``measured_skin_b``,
``measured_corner_lift``, ``measured_mouth_open``, ``measured_face_score``) and the exposure of the
non-face pixels (``measured_border_luma``, ``measured_background_luma``, ``measured_hair_luma``,
``measured_white_balance``; :mod:`faceaudit.measure.exposure`) and ``measured_skin_mask``, which
pixels the skin measures read (``mesh``, ``landmarks`` or ``none``; :mod:`faceaudit.measure.skin_mask`).
Definitions and limits: docs/measures.md.

Not here, because it costs several times all of the above: GEAR's perceived race, gender and age
(:mod:`faceaudit.measure.gear`, ``measured_race_*``), which the generators run once on every final
face, never inside their searches.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from faceaudit.measure.attributes import brightness_contrast, lighting_asymmetry, mouth_geometry, skin_ita, yaw_offset
from faceaudit.measure.color import srgb_to_lab
from faceaudit.measure.exposure import exposure_measures
from faceaudit.measure.landmarks import LandmarkDetector, LandmarkResult
from faceaudit.measure.monk import monk_class, skin_lab
from faceaudit.measure.skin_mask import MASK_NONE, select_skin_masks

#: attribute name -> faces-table column, for the six headline measures
MEASURES = {
    "skin_ita": "measured_skin_ita",
    "yaw": "measured_yaw",
    "lighting": "measured_lighting",
    "smile": "measured_smile",
    "brightness": "measured_brightness",
    "contrast": "measured_contrast",
}
#: measures that are not edited as nuisances but get a latent direction (skin chroma b*: the skin
#: search warms achromatic seeds along it, see faceaudit.generate.dcgan.editing)
AUX_MEASURES = {"skin_b": "measured_skin_b"}
#: exposure and white balance of the non-face pixels (faceaudit.measure.exposure). ``border_luma`` is
#: the border luma: the skin search holds it near the seed's base face, and the exposure
#: nuisance edit is stated in its SDs
EXPOSURE_MEASURES = {
    "border_luma": "measured_border_luma",
    "background_luma": "measured_background_luma",
    "hair_luma": "measured_hair_luma",
    "white_balance": "measured_white_balance",
}
MEASURE_COLUMNS = list(MEASURES.values())
EXTRA_COLUMNS = ["measured_skin_lightness", "measured_skin_b", "measured_corner_lift", "measured_mouth_open", "measured_face_score"]
EXPOSURE_COLUMNS = list(EXPOSURE_MEASURES.values())
#: Monk Skin Tone class (faceaudit.measure.monk), 1..10 as float64 (NaN without landmarks)
MONK_COLUMN = "measured_monk"
#: which skin mask the skin measures used (a string column: mesh / landmarks / none)
SKIN_MASK_COLUMN = "measured_skin_mask"
ALL_COLUMNS = MEASURE_COLUMNS + ["measured_ok"] + EXTRA_COLUMNS + EXPOSURE_COLUMNS + [MONK_COLUMN, SKIN_MASK_COLUMN]
#: dtype of every measures column (tables assembled from rows are cast back with these)
COLUMN_DTYPES = {c: bool if c == "measured_ok" else str if c == SKIN_MASK_COLUMN else np.float64 for c in ALL_COLUMNS}
#: bump when any measure's definition changes (tables computed with another version differ)
MEASURE_VERSION = "3"
#: ``FaceMeasurer(skin_mask=...)``: mesh where it finds the face (else landmarks), or landmarks only
SKIN_MASK_MODES = ("auto", "landmarks")
#: what every FaceMeasurer of the pipeline uses. "auto" per issue #17; docs/measures.md ("Skin
#: mask") shows the trade-off (the mesh mask varies more within seed under the lighting edit, a
#: little less under exposure): "landmarks" returns to the old sampler everywhere (recolor follows)
DEFAULT_SKIN_MASK = "auto"


def measures_from_landmarks(images: np.ndarray, marks: LandmarkResult, mesh_points: np.ndarray | None = None) -> pd.DataFrame:
    """The measures table for ``images [N, H, W, 3] uint8 RGB`` given their landmarks and, when the
    face mesh ran, its ``[N, 468, 2]`` points (NaN rows where it found no face): the skin measures
    then read the mesh mask (:func:`faceaudit.measure.skin_mask.select_skin_masks`)."""
    images = np.asarray(images)
    lab = srgb_to_lab(images)
    pts = marks.points.astype(np.float64)
    masks, mask_source = select_skin_masks(pts, mesh_points, images.shape[1:3])
    ita, skin_l, skin_b = skin_ita(lab, pts, masks)
    mouth = mouth_geometry(pts)
    brightness, contrast = brightness_contrast(lab)
    df = pd.DataFrame(
        {
            "measured_skin_ita": ita,
            "measured_yaw": yaw_offset(pts),
            "measured_lighting": lighting_asymmetry(lab, pts),
            "measured_smile": mouth["width"],
            "measured_brightness": brightness,
            "measured_contrast": contrast,
            "measured_ok": marks.found.copy(),
            "measured_skin_lightness": skin_l,
            "measured_skin_b": skin_b,
            "measured_corner_lift": mouth["corner_lift"],
            "measured_mouth_open": mouth["open"],
            "measured_face_score": marks.scores.astype(np.float64),
            **{f"measured_{k}": v for k, v in exposure_measures(images, pts).items()},
            SKIN_MASK_COLUMN: mask_source,
            # Monk reads the ITA measure's own skin pixels (mesh mask or landmark patches)
            MONK_COLUMN: monk_class(skin_lab(lab, masks)),
        }
    )
    # a measure that came out NaN despite landmarks (degenerate geometry) also marks the row not ok
    landmark_cols = ["measured_skin_ita", "measured_yaw", "measured_lighting", "measured_smile"]
    df["measured_ok"] = df["measured_ok"] & df[landmark_cols].notna().all(axis=1)
    df.loc[~df["measured_ok"], landmark_cols + EXTRA_COLUMNS[:4] + EXPOSURE_COLUMNS[1:] + [MONK_COLUMN]] = np.nan
    df.loc[~df["measured_ok"], SKIN_MASK_COLUMN] = MASK_NONE
    return df


class FaceMeasurer:
    """Holds the detectors (loading dlib's predictor takes ~1 s); call :meth:`measure` per batch.

    ``skin_mask="auto"`` runs the face mesh (:mod:`faceaudit.models.facemesh`) when its files are
    fetched and reads skin from its mask; ``"landmarks"`` keeps the 68-landmark patches (the
    measure before MEASURE_VERSION 3). ``mesh_unavailable`` says why there is no mesh (or None).
    """

    def __init__(self, skin_mask: str = DEFAULT_SKIN_MASK) -> None:
        from faceaudit.core.errors import BadInput, ModelUnavailable

        if skin_mask not in SKIN_MASK_MODES:
            raise BadInput(f"FaceMeasurer: skin_mask must be one of {', '.join(SKIN_MASK_MODES)}, got {skin_mask!r}")
        self.landmarker = LandmarkDetector()
        self.mesh = None
        self.mesh_unavailable: str | None = "skin_mask='landmarks'"
        if skin_mask == "auto":
            try:
                from faceaudit.models.facemesh import FaceMesh

                self.mesh = FaceMesh(device="cpu")
                self.mesh_unavailable = None
            except ModelUnavailable as err:
                # the landmark patches still measure skin: audits run without `make setup`'s models
                self.mesh_unavailable = str(err)

    def landmarks(self, images: Sequence[np.ndarray] | np.ndarray) -> LandmarkResult:
        return self.landmarker.landmarks(images)

    def mesh_points(self, images: Sequence[np.ndarray] | np.ndarray, marks: LandmarkResult) -> np.ndarray | None:
        """``[N, 468, 2]`` face-mesh points from the landmarker's face boxes (NaN rows where no
        face), or None when the mesh is not used."""
        if self.mesh is None:
            return None
        return self.mesh.mesh(images, marks.boxes).points

    @staticmethod
    def empty_table() -> pd.DataFrame:
        return pd.DataFrame({c: pd.Series(dtype=COLUMN_DTYPES[c]) for c in ALL_COLUMNS})

    def measure(self, images: Sequence[np.ndarray] | np.ndarray) -> pd.DataFrame:
        images = np.asarray(images)
        if len(images) == 0:
            return self.empty_table()
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise TypeError(f"measure expects [N, H, W, 3] uint8 RGB, got {images.shape} {images.dtype}")
        marks = self.landmarks(images)
        return measures_from_landmarks(images, marks, self.mesh_points(images, marks))


def measure_images(images: Sequence[np.ndarray] | np.ndarray) -> pd.DataFrame:
    """One-shot convenience: build a :class:`FaceMeasurer` and measure ``images``."""
    return FaceMeasurer().measure(images)


__all__ = [
    "FaceMeasurer", "MONK_COLUMN", "MEASURES", "AUX_MEASURES", "EXPOSURE_MEASURES", "MEASURE_COLUMNS", "ALL_COLUMNS",
    "COLUMN_DTYPES", "SKIN_MASK_COLUMN", "measure_images", "measures_from_landmarks",
]
