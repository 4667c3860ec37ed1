"""Attribute directions in the DCGAN latent space, learned by faceaudit itself.

Recipe (InterFaceGAN, Shen et al. CVPR 2020, with regression instead of an SVM because our
attributes are continuous measures):

1. Draw ``n_samples`` latents (seeded, truncated like the audit's), render and measure them.
2. For each edited attribute, standardise its measure (winsorised at the 1st/99th percentile so
   a few landmark failures cannot tilt the fit) and fit a ridge regression on the latent. The
   coefficient vector, normalised, is the attribute's *unconditional* direction.
3. Make each direction *conditional*: project out the span of the other edited attributes'
   directions, so moving along it leaves their (linear) predictions unchanged.
4. Calibrate the step: move ``n_calibration`` fresh latents by +-(predicted one-SD step) along the
   conditional direction, render and measure; the step is rescaled so that, on average, one step
   changes the measure by one SD. The same renders give the leakage into every other measure.

Skin tone (``skin_ita``), lighting, yaw and smile are edited; skin chroma (``skin_b``, the b* of the
skin patches) gets a direction too, used only by the skin search (:mod:`faceaudit.generate.dcgan.editing`).
So do the exposure measures of the non-face pixels (border, background and hair-band luma, white
balance; :mod:`faceaudit.measure.exposure`): the skin direction is conditioned on all four, so
darker skin is not rendered as a darker photograph, and the skin search uses the border-luma
direction to hold each prototype's exposure at the seed's own. Image brightness and contrast are
fitted for their R^2 (reported) but nothing is conditioned on them: a darker skin *is* a darker
image (the face is part of it), and projecting whole-image brightness out of the skin direction
would fight the edit itself. Which direction is conditioned on which: :data:`CONDITIONING`.

The fit itself (rendering, measuring, ridge regression) lives in
:mod:`faceaudit.generate.dcgan.fitting`; this module is the file format and the loaded directions,
which the skin search and the design read without touching the generator.

File format (``.json``, or ``.npz`` with the same JSON stored under ``metadata``): see
docs/generator.md. ``format_version`` changes whenever the meaning of a field changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from faceaudit.core.errors import BadInput
from faceaudit.measure import AUX_MEASURES, EXPOSURE_MEASURES, MEASURES

_COLUMNS = {**MEASURES, **AUX_MEASURES, **EXPOSURE_MEASURES}

FORMAT = "faceaudit.directions"
FORMAT_VERSION = 1
#: attributes that get an edit direction; order matters only for the file's layout
EDIT_ATTRIBUTES = ("skin_ita", "lighting", "yaw", "smile", "skin_b", "border_luma", "background_luma", "hair_luma", "white_balance")
#: exposure of the non-face pixels: never edited in the latent (the exposure nuisance edit is
#: photometric, faceaudit.generate.photometric), projected out of the skin direction
EXPOSURE_ATTRIBUTES = ("border_luma", "background_luma", "hair_luma", "white_balance")
_NUISANCE = ("lighting", "yaw", "smile")
#: what each direction is made conditional on (its span is projected out). The skin-chroma
#: direction (b* of the skin patches) is conditioned on everything, skin ITA included, so it warms
#: a face without lightening it; nothing is conditioned on chroma, so the skin direction keeps
#: whatever chroma change comes with lighter or darker skin. The skin direction is conditioned on
#: the nuisances and on the exposure of the non-face pixels (InterFaceGAN's conditional
#: manipulation); the border-luma direction, which the skin search uses to correct exposure, is
#: conditioned on skin ITA and the nuisances, so correcting exposure leaves skin tone alone.
CONDITIONING = {
    "skin_ita": _NUISANCE + EXPOSURE_ATTRIBUTES,
    "lighting": ("skin_ita", "yaw", "smile"),
    "yaw": ("skin_ita", "lighting", "smile"),
    "smile": ("skin_ita", "lighting", "yaw"),
    "skin_b": ("skin_ita", "lighting", "yaw", "smile"),
    "border_luma": ("skin_ita",) + _NUISANCE,
    "background_luma": ("skin_ita",) + _NUISANCE,
    "hair_luma": ("skin_ita",) + _NUISANCE,
    "white_balance": ("skin_ita",) + _NUISANCE,
}
#: measured but never edited (their R^2 and the leakage into them are recorded)
REPORTED_ATTRIBUTES = ("brightness", "contrast")
#: stream tag mixed into the fit's seed so fitting latents never coincide with an audit's faces
FIT_STREAM = 0x0D1EC7
RIDGE_ALPHAS = np.logspace(-1, 3, 9)
DEFAULT_DIRECTIONS_FILE = "directions_dcgan_v2.json"


def default_directions_path() -> Path:
    return Path(__file__).resolve().parents[2] / "data" / DEFAULT_DIRECTIONS_FILE


@dataclass
class AttributeDirection:
    """One attribute: its conditional unit direction and how far to move for one SD of its measure."""

    attribute: str
    measure: str
    #: conditional unit direction (other edited attributes projected out), shape [100]
    unit: np.ndarray
    #: unit direction of the plain regression, before conditioning
    unconditional: np.ndarray
    #: latent distance along ``unit`` that changes the measure by one SD on average (calibrated)
    step: float
    #: the same distance predicted by the regression alone, before calibration
    predicted_step: float
    #: mean and SD of the measure over random faces (winsorised at 1%/99%), in the measure's units
    mean: float
    sd: float
    r2_train: float
    r2_cv: float
    ridge_alpha: float
    conditioned_on: list[str] = field(default_factory=list)
    #: mean change of every measure, in its SDs, for a +1 step (calibration renders); own entry = 1
    leakage: dict[str, float] = field(default_factory=dict)
    calibration_n: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "attribute": self.attribute,
            "measure": self.measure,
            "unit": [float(x) for x in self.unit],
            "unconditional": [float(x) for x in self.unconditional],
            "step": float(self.step),
            "predicted_step": float(self.predicted_step),
            "mean": float(self.mean),
            "sd": float(self.sd),
            "r2_train": float(self.r2_train),
            "r2_cv": float(self.r2_cv),
            "ridge_alpha": float(self.ridge_alpha),
            "conditioned_on": list(self.conditioned_on),
            "leakage": {k: float(v) for k, v in self.leakage.items()},
            "calibration_n": int(self.calibration_n),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "AttributeDirection":
        return cls(
            attribute=d["attribute"],
            measure=d["measure"],
            unit=np.asarray(d["unit"], dtype=np.float64),
            unconditional=np.asarray(d["unconditional"], dtype=np.float64),
            step=float(d["step"]),
            predicted_step=float(d["predicted_step"]),
            mean=float(d["mean"]),
            sd=float(d["sd"]),
            r2_train=float(d["r2_train"]),
            r2_cv=float(d["r2_cv"]),
            ridge_alpha=float(d["ridge_alpha"]),
            conditioned_on=list(d.get("conditioned_on", [])),
            leakage={k: float(v) for k, v in d.get("leakage", {}).items()},
            calibration_n=int(d.get("calibration_n", 0)),
        )


@dataclass
class Directions:
    """Per-attribute directions plus the metadata of the fit that produced them."""

    attributes: dict[str, AttributeDirection]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, attribute: str) -> AttributeDirection:
        try:
            return self.attributes[attribute]
        except KeyError:
            raise BadInput(f"directions: no direction for {attribute!r} (have {sorted(self.attributes)})") from None

    def shift(self, attribute: str, level_sd: float) -> np.ndarray:
        """Latent offset that moves ``attribute`` by ``level_sd`` SDs on average."""
        d = self[attribute]
        return float(level_sd) * d.step * d.unit

    def per_unit(self, attribute: str) -> float:
        """Average change of the measure (its own units) per unit of latent distance along ``unit``."""
        d = self[attribute]
        return d.sd / d.step

    # ---- file format ---------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "metadata": self.metadata,
            "attributes": {k: v.to_json() for k, v in self.attributes.items()},
        }

    def save(self, path: str | Path) -> Path:
        from faceaudit.rundir import atomic_path, write_text

        path = Path(path)
        text = json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n"
        if path.suffix == ".npz":
            arrays = {f"unit_{k}": v.unit for k, v in self.attributes.items()}
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, metadata=np.array(text), **arrays)
        else:
            write_text(path, text)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Directions":
        path = Path(path)
        if not path.is_file():
            raise BadInput(f"{path}: directions file not found")
        try:
            if path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as z:
                    data = json.loads(str(z["metadata"]))
            else:
                data = json.loads(path.read_text())
        except (OSError, ValueError, KeyError) as err:
            raise BadInput(f"{path}: not a directions file ({type(err).__name__}: {err})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BadInput(f"{path}: not a faceaudit directions file (format field missing or wrong)")
        if data.get("format_version") != FORMAT_VERSION:
            raise BadInput(
                f"{path}: directions format_version {data.get('format_version')} is not supported "
                f"(this faceaudit reads {FORMAT_VERSION}); re-run `faceaudit directions fit`"
            )
        try:
            attrs = {k: AttributeDirection.from_json(v) for k, v in data["attributes"].items()}
        except (KeyError, TypeError, ValueError) as err:
            raise BadInput(f"{path}: malformed directions entry ({type(err).__name__}: {err})") from None
        return cls(attributes=attrs, metadata=data.get("metadata", {}))

    @classmethod
    def load_default(cls) -> "Directions":
        return cls.load(default_directions_path())

    def summary(self) -> pd.DataFrame:
        """One row per attribute: R^2, step, SD, the largest leakage into another measure."""
        rows = []
        for name, d in self.attributes.items():
            others = {k: v for k, v in d.leakage.items() if k != name}
            worst = max(others, key=lambda k: abs(others[k])) if others else None
            rows.append(
                {
                    "attribute": name,
                    "r2_cv": d.r2_cv,
                    "step": d.step,
                    "predicted_step": d.predicted_step,
                    "sd": d.sd,
                    "target_change_sd": d.leakage.get(name, np.nan),
                    "max_leak_measure": worst,
                    "max_leak_sd": others[worst] if worst else np.nan,
                }
            )
        return pd.DataFrame(rows)


def load_directions(path: str | Path | None = None) -> Directions:
    """The directions file ``path``, or the one shipped with faceaudit when ``path`` is None."""
    return Directions.load(path) if path else Directions.load_default()


# ---- fitting ---------------------------------------------------------------------------------
