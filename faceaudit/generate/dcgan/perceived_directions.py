"""Perceived-gender and age directions in the DCGAN latent space, measured by pretrained classifiers.

The pixel directions (:mod:`faceaudit.generate.dcgan.directions`) are fitted on measures computed from
pixels and landmarks. Perceived gender presentation and apparent age cannot be measured that way,
so they are fitted on the outputs of the faceres classifier (:mod:`faceaudit.measure.perceived`):

* ``gender``: the logit of faceres P(male) (clipped to [0.01, 0.99] so one saturated face cannot
  tilt the fit); the gender search places seeds on P(male), so the direction works on its logit,
  where the classifier is close to linear in the latent;
* ``age``: faceres' expected age in years.

Same recipe as the pixel directions: ridge regression on the fitting latents (the same latents,
same seed and truncation, as the shipped pixel directions, so the two fits describe one sample),
then *conditional*: the span of the skin-tone, exposure (border, background and hair-band luma,
white balance) and nuisance (lighting, yaw, smile) directions is projected out, and for age also
the gender direction (:data:`PERCEIVED_CONDITIONING` says why gender keeps its age component). The probe that motivated this (issue #7) saw unconditioned gender and age
directions darken the skin and darken the photograph (caps, beard shading); conditioning removes
the linear part of that. The step is calibrated on fresh latents by central differences, and the
same renders give the leakage into every pixel measure and into both independent classifiers
(oarriaga gender, SSR-Net age), which never enter the fit.

``faceaudit directions fit-perceived`` adds the two directions to a directions file; the file shipped
with faceaudit holds them (its metadata ``perceived`` block records the fit).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from faceaudit.core.errors import BadInput
from faceaudit.generate.dcgan.directions import _COLUMNS, EXPOSURE_ATTRIBUTES, AttributeDirection, Directions
from faceaudit.generate.dcgan.fitting import _project_out, _ridge, _winsorise, fit_latents
from faceaudit.generate.faces import P_CLIP, perceived_columns

#: the perceived attributes that get a direction, and the faces-table column each is measured in
PERCEIVED_MEASURES = {"gender": "measured_gender_logit", "age": "measured_age"}
#: independent classifiers: reported leakage only, never fitted on
INDEPENDENT_MEASURES = {"gender_independent": "measured_gender_pmale_independent",
                        "age_independent": "measured_age_independent"}
#: what each perceived direction is conditioned on (pixel directions' unconditional vectors, and
#: the other perceived attribute where noted)
#: the other perceived attribute). Gender is *not* conditioned on age: in the DCGAN's latent the two
#: unconditional directions share half their length (cosine 0.51: the generator renders male-presenting
#: faces older), and a gender direction with age projected out too moved only 15% of seeds below
#: P(male) 0.5 (measured on 48 seeds, docs/generator.md). Age is conditioned on gender, so the age
#: edit keeps the gender presentation. Nor is gender conditioned on the hair-band and background
#: luma: hair is part of gender presentation (the independent oarriaga classifier sees it in its
#: loose crop), and holding it moved that classifier half as much; the photograph's exposure is
#: held through the border luma (outer 6 px: background and hair ends) and white balance instead.
PERCEIVED_CONDITIONING = {
    "gender": ("skin_ita", "lighting", "yaw", "smile", "border_luma", "white_balance"),
    "age": ("skin_ita", "lighting", "yaw", "smile") + EXPOSURE_ATTRIBUTES + ("gender",),
}


def measure_all(measurer, perceived, images: np.ndarray) -> pd.DataFrame:
    """Pixel measures and perceived attributes of ``images``, side by side."""
    m = measurer.measure(images).reset_index(drop=True)
    p = perceived_columns(perceived.predict(list(images)))
    return pd.concat([m, p], axis=1)


def _render_measure(gen, measurer, perceived, z: np.ndarray, bar, task) -> pd.DataFrame:
    """Render latents ``z`` in batches of 256 and measure them (:func:`measure_all`)."""
    tables = []
    for start in range(0, len(z), 256):
        images = gen.render_latents(z[start : start + 256])
        tables.append(measure_all(measurer, perceived, images))
        bar.advance(task, len(images))
    return pd.concat(tables, ignore_index=True)


def _leakage_sds(m: pd.DataFrame, ok: np.ndarray, leak_cols: dict[str, str]) -> dict[str, float]:
    """SD (winsorised, over the usable fitting faces) of every leakage measure ``m`` has."""
    return {a: float(np.nanstd(_winsorise(m.loc[ok, c].dropna().to_numpy(dtype=np.float64))))
            for a, c in leak_cols.items() if c in m.columns}


def _calibrated_leakage(m_plus: pd.DataFrame, m_minus: pd.DataFrame, sds: dict[str, float],
                        leak_cols: dict[str, str]) -> tuple[dict[str, float], np.ndarray]:
    """Each measure's mean (winsorised) half-difference between the renders one step up and one step
    down, in its SD; and which calibration faces were measured in both."""
    both = (m_plus["measured_ok"] & m_minus["measured_ok"]).to_numpy(dtype=bool)
    leakage = {}
    for b, c in leak_cols.items():
        if b not in sds or not sds[b] > 0:
            continue
        delta = (m_plus[c].to_numpy(dtype=float) - m_minus[c].to_numpy(dtype=float))[both] / 2.0 / sds[b]
        delta = delta[np.isfinite(delta)]
        if len(delta):
            leakage[b] = float(np.mean(_winsorise(delta)))
    return leakage, both


def _fitting_parts(base: Directions, n_samples: int, n_calibration: int, device: str):
    """``(generator, measurer, classifiers, fitting latents, calibration latents)`` of a perceived fit:
    the latents are drawn with the base directions file's seed and truncation, so every fit on a
    base file describes the same sample of faces."""
    from faceaudit.generate.dcgan.generator import DCGANGenerator
    from faceaudit.measure import FaceMeasurer
    from faceaudit.measure.perceived import PerceivedAttributes

    md = base.metadata
    seed, truncation = int(md.get("seed", 0)), float(md.get("truncation", 2.5))
    gen = DCGANGenerator(truncation=truncation, device=device)
    latents = fit_latents(n_samples + n_calibration, seed, truncation)
    return gen, FaceMeasurer(), PerceivedAttributes(device=device), latents[:n_samples], latents[n_samples:]


def learn_perceived_directions(base: Directions, n_samples: int = 3000, n_calibration: int = 256,
                               device: str = "cpu", progress: bool = True) -> Directions:
    """``base`` plus ``gender`` and ``age`` directions fitted on the same latents as ``base``."""
    from faceaudit.core.progress import Progress

    missing = sorted({c for v in PERCEIVED_CONDITIONING.values() for c in v if c not in PERCEIVED_MEASURES} - set(base.attributes))
    if missing:
        raise BadInput(f"directions fit-perceived: the base directions file lacks {missing}")
    t0 = time.perf_counter()
    gen, measurer, perceived, z_fit, z_cal = _fitting_parts(base, n_samples, n_calibration, device)

    def render_measure(z: np.ndarray, bar, task) -> pd.DataFrame:
        return _render_measure(gen, measurer, perceived, z, bar, task)

    with Progress(progress) as bar:
        task = bar.add_task("directions: render + classify", total=n_samples + 4 * n_calibration)
        m = render_measure(z_fit, bar, task)
        ok = m["measured_ok"].to_numpy(dtype=bool) & np.isfinite(m["measured_gender_logit"].to_numpy())
        stats: dict[str, dict[str, Any]] = {}
        for a, col in PERCEIVED_MEASURES.items():
            y = _winsorise(m.loc[ok, col].to_numpy(dtype=np.float64))
            mean, sd = float(y.mean()), float(y.std())
            coef, alpha, r2_train, r2_cv = _ridge(z_fit[ok], (y - mean) / sd)
            stats[a] = dict(coef=coef, mean=mean, sd=sd, alpha=alpha, r2_train=r2_train, r2_cv=r2_cv)
        unconditional = {a: s["coef"] / np.linalg.norm(s["coef"]) for a, s in stats.items()}
        # SDs of every measure the leakage is expressed in
        leak_cols = {**{a: c for a, c in _COLUMNS.items()}, **PERCEIVED_MEASURES, **INDEPENDENT_MEASURES}
        sds = _leakage_sds(m, ok, leak_cols)

        out = dict(base.attributes)
        for a, col in PERCEIVED_MEASURES.items():
            others = list(PERCEIVED_CONDITIONING[a])
            vectors = [unconditional[b] if b in unconditional else base[b].unconditional for b in others]
            u = _project_out(unconditional[a], vectors)
            u /= np.linalg.norm(u)
            predicted_step = 1.0 / float(stats[a]["coef"] @ u)
            shift = predicted_step * u
            m_plus = render_measure(z_cal + shift, bar, task)
            m_minus = render_measure(z_cal - shift, bar, task)
            leakage, both = _calibrated_leakage(m_plus, m_minus, sds, leak_cols)
            gain = leakage[a]
            if not gain > 0.05:
                raise BadInput(f"directions fit-perceived: the {a} direction does not move its measure "
                               f"(gain {gain:.3f} SD per step); try more samples")
            out[a] = AttributeDirection(
                attribute=a, measure=col, unit=u, unconditional=unconditional[a],
                step=predicted_step / gain, predicted_step=predicted_step,
                mean=stats[a]["mean"], sd=stats[a]["sd"], r2_train=stats[a]["r2_train"], r2_cv=stats[a]["r2_cv"],
                ridge_alpha=stats[a]["alpha"], conditioned_on=others,
                leakage={b: v / gain for b, v in leakage.items()}, calibration_n=int(both.sum()),
            )
    metadata = dict(base.metadata)
    metadata["perceived"] = {
        "classifier": perceived.version,
        "measures": dict(PERCEIVED_MEASURES),
        "independent": dict(INDEPENDENT_MEASURES),
        "conditioning": {a: list(v) for a, v in PERCEIVED_CONDITIONING.items()},
        "n_samples": int(n_samples),
        "n_used": int(ok.sum()),
        "n_calibration": int(n_calibration),
        "p_clip": list(P_CLIP),
        "fit_seconds": round(time.perf_counter() - t0, 1),
    }
    return Directions(attributes=out, metadata=metadata)


#: the gender direction fitted on the oarriaga classifier (``GenderSpec.placed_by: oarriaga``), and
#: the logit it is fitted on (oarriaga P(male), clipped like faceres')
OARRIAGA_GENDER = "gender_oarriaga"
OARRIAGA_GENDER_MEASURE = "measured_gender_logit_oarriaga"


def learn_oarriaga_gender_direction(base: Directions, n_samples: int = 1500, n_calibration: int = 256,
                                    device: str = "cpu", progress: bool = True) -> Directions:
    """``base`` plus a ``gender_oarriaga`` direction: the gender recipe (same conditioning as
    ``gender``) fitted on the oarriaga classifier's logit P(male), for designs placed by it.

    The faceres-fitted ``gender`` direction is left as it is. The calibration's leakage includes
    faceres' logit (``gender``) and ``gender_independent`` is the oarriaga P(male) itself.

    Parameters
    ----------
    base : Directions
        A directions file with the pixel directions the gender direction is conditioned on.
    n_samples, n_calibration : int
        Fitting latents (the first ``n_samples`` of the base file's fitting stream) and fresh
        latents for the step calibration.
    device : str
        Torch / onnxruntime device.
    progress : bool
        Show a progress bar.

    Returns
    -------
    Directions
        ``base`` with ``gender_oarriaga`` added and its fit recorded under metadata ``perceived_oarriaga``.
    """
    from faceaudit.core.progress import Progress
    from faceaudit.generate.faces import gender_logit

    others = list(PERCEIVED_CONDITIONING["gender"])
    missing = [b for b in others if b not in base.attributes]
    if missing:
        raise BadInput(f"directions fit-perceived: the base directions file lacks {missing}")
    t0 = time.perf_counter()
    gen, measurer, perceived, z_fit, z_cal = _fitting_parts(base, n_samples, n_calibration, device)

    def render_measure(z: np.ndarray, bar, task) -> pd.DataFrame:
        m = _render_measure(gen, measurer, perceived, z, bar, task)
        m[OARRIAGA_GENDER_MEASURE] = gender_logit(m["measured_gender_pmale_oarriaga"])
        m.loc[~np.isfinite(m["measured_gender_pmale_oarriaga"].to_numpy(dtype=float)), OARRIAGA_GENDER_MEASURE] = np.nan
        return m

    with Progress(progress) as bar:
        task = bar.add_task("directions: render + classify", total=n_samples + 2 * n_calibration)
        m = render_measure(z_fit, bar, task)
        ok = m["measured_ok"].to_numpy(dtype=bool) & np.isfinite(m[OARRIAGA_GENDER_MEASURE].to_numpy())
        y = _winsorise(m.loc[ok, OARRIAGA_GENDER_MEASURE].to_numpy(dtype=np.float64))
        mean, sd = float(y.mean()), float(y.std())
        coef, alpha, r2_train, r2_cv = _ridge(z_fit[ok], (y - mean) / sd)
        unconditional = coef / np.linalg.norm(coef)
        u = _project_out(unconditional, [base[b].unconditional for b in others])
        u /= np.linalg.norm(u)
        predicted_step = 1.0 / float(coef @ u)
        m_plus = render_measure(z_cal + predicted_step * u, bar, task)
        m_minus = render_measure(z_cal - predicted_step * u, bar, task)
    leak_cols = {**_COLUMNS, **PERCEIVED_MEASURES, **INDEPENDENT_MEASURES, OARRIAGA_GENDER: OARRIAGA_GENDER_MEASURE}
    leakage, both = _calibrated_leakage(m_plus, m_minus, _leakage_sds(m, ok, leak_cols), leak_cols)
    gain = leakage[OARRIAGA_GENDER]
    if not gain > 0.05:
        raise BadInput(f"directions fit-perceived: the {OARRIAGA_GENDER} direction does not move its measure "
                       f"(gain {gain:.3f} SD per step); try more samples")
    out = dict(base.attributes)
    out[OARRIAGA_GENDER] = AttributeDirection(
        attribute=OARRIAGA_GENDER, measure=OARRIAGA_GENDER_MEASURE, unit=u, unconditional=unconditional,
        step=predicted_step / gain, predicted_step=predicted_step, mean=mean, sd=sd, r2_train=r2_train, r2_cv=r2_cv,
        ridge_alpha=alpha, conditioned_on=others, leakage={b: v / gain for b, v in leakage.items()},
        calibration_n=int(both.sum()),
    )
    metadata = dict(base.metadata)
    metadata["perceived_oarriaga"] = {
        "classifier": perceived.version, "measure": OARRIAGA_GENDER_MEASURE, "conditioning": others,
        "n_samples": int(n_samples), "n_used": int(ok.sum()), "n_calibration": int(n_calibration),
        "p_clip": list(P_CLIP), "fit_seconds": round(time.perf_counter() - t0, 1),
    }
    return Directions(attributes=out, metadata=metadata)
