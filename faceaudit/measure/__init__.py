"""Attribute measurement from pixels and landmarks: what each image actually shows.

``FaceMeasurer().measure(images)`` returns one row per image with

* ``measured_skin_ita``   skin tone, ITA degrees from cheek + forehead patches
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
``measured_white_balance``; :mod:`faceaudit.measure.exposure`). Definitions and limits:
docs/measures.md.

Not here, because it costs several times all of the above: GEAR's perceived race, gender and age
(:mod:`faceaudit.measure.gear`, ``measured_race_*``), which the generators run once on every final
face, never inside their searches.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from faceaudit.measure.attributes import brightness_contrast, lighting_asymmetry, mouth_geometry, skin_ita, skin_masks, yaw_offset
from faceaudit.measure.color import srgb_to_lab
from faceaudit.measure.exposure import exposure_measures
from faceaudit.measure.landmarks import LandmarkDetector, LandmarkResult
from faceaudit.measure.monk import monk_class, skin_lab

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
ALL_COLUMNS = MEASURE_COLUMNS + ["measured_ok"] + EXTRA_COLUMNS + EXPOSURE_COLUMNS + [MONK_COLUMN]
#: bump when any measure's definition changes (tables computed with another version differ)
MEASURE_VERSION = "3"


def measures_from_landmarks(images: np.ndarray, marks: LandmarkResult) -> pd.DataFrame:
    """The measures table for ``images [N, H, W, 3] uint8 RGB`` given their landmarks."""
    images = np.asarray(images)
    lab = srgb_to_lab(images)
    pts = marks.points.astype(np.float64)
    ita, skin_l, skin_b = skin_ita(lab, pts)
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
            # the ITA measure's skin pixels (mask recomputed: cheap, and keeps skin_ita's signature)
            MONK_COLUMN: monk_class(skin_lab(lab, skin_masks(pts, lab.shape[1:3]))),
        }
    )
    # a measure that came out NaN despite landmarks (degenerate geometry) also marks the row not ok
    landmark_cols = ["measured_skin_ita", "measured_yaw", "measured_lighting", "measured_smile"]
    df["measured_ok"] = df["measured_ok"] & df[landmark_cols].notna().all(axis=1)
    df.loc[~df["measured_ok"], landmark_cols + EXTRA_COLUMNS[:4] + EXPOSURE_COLUMNS[1:] + [MONK_COLUMN]] = np.nan
    return df


class FaceMeasurer:
    """Holds the detectors (loading dlib's predictor takes ~1 s); call :meth:`measure` per batch."""

    def __init__(self) -> None:
        self.landmarker = LandmarkDetector()

    def landmarks(self, images: Sequence[np.ndarray] | np.ndarray) -> LandmarkResult:
        return self.landmarker.landmarks(images)

    @staticmethod
    def empty_table() -> pd.DataFrame:
        return pd.DataFrame({c: pd.Series(dtype=bool if c == "measured_ok" else np.float64) for c in ALL_COLUMNS})

    def measure(self, images: Sequence[np.ndarray] | np.ndarray) -> pd.DataFrame:
        images = np.asarray(images)
        if len(images) == 0:
            return self.empty_table()
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise TypeError(f"measure expects [N, H, W, 3] uint8 RGB, got {images.shape} {images.dtype}")
        return measures_from_landmarks(images, self.landmarks(images))


def measure_images(images: Sequence[np.ndarray] | np.ndarray) -> pd.DataFrame:
    """One-shot convenience: build a :class:`FaceMeasurer` and measure ``images``."""
    return FaceMeasurer().measure(images)


__all__ = ["FaceMeasurer", "MONK_COLUMN", "MEASURES", "AUX_MEASURES", "EXPOSURE_MEASURES", "MEASURE_COLUMNS", "ALL_COLUMNS", "measure_images", "measures_from_landmarks"]
