"""Fitting the DCGAN's attribute directions (recipe: :mod:`faceaudit.generate.dcgan.directions`).

``faceaudit directions fit`` calls :func:`fit_directions`; the perceived-attribute and
label-based fits (:mod:`~faceaudit.generate.dcgan.perceived_directions`,
:mod:`~faceaudit.generate.dcgan.label_directions`) reuse the ridge and projection helpers here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from faceaudit.core.errors import BadInput
from faceaudit.generate.dcgan.directions import (
    _COLUMNS,
    CONDITIONING,
    EDIT_ATTRIBUTES,
    FIT_STREAM,
    REPORTED_ATTRIBUTES,
    RIDGE_ALPHAS,
    AttributeDirection,
    Directions,
)
from faceaudit.measure import MEASURE_VERSION


def _winsorise(y: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(y, [1, 99])
    return np.clip(y, lo, hi)


def _ridge(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """Ridge of ``y`` on ``x`` with alpha by 5-fold CV: (coef, alpha, r2_train, r2_cv)."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold, cross_val_score

    folds = KFold(n_splits=5, shuffle=False)
    scores = [cross_val_score(Ridge(alpha=a), x, y, cv=folds, scoring="r2").mean() for a in RIDGE_ALPHAS]
    best = int(np.argmax(scores))
    model = Ridge(alpha=RIDGE_ALPHAS[best]).fit(x, y)
    return model.coef_.astype(np.float64), float(RIDGE_ALPHAS[best]), float(model.score(x, y)), float(scores[best])


def _project_out(v: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    if not others:
        return v
    basis = np.stack(others, axis=1)  # [D, k]
    coef, *_ = np.linalg.lstsq(basis, v, rcond=None)
    return v - basis @ coef


def fit_latents(n: int, seed: int, truncation: float) -> np.ndarray:
    from faceaudit.generate.dcgan.generator import LATENT_DIM

    rng = np.random.default_rng([FIT_STREAM, int(seed)])
    z = rng.standard_normal((n, LATENT_DIM))
    if truncation > 0:
        np.clip(z, -truncation, truncation, out=z)
    return z


def learn_directions(
    n_samples: int,
    seed: int,
    *,
    n_calibration: int = 256,
    truncation: float = 2.5,
    device: str = "auto",
    progress: bool = True,
) -> Directions:
    """Fit conditional directions for :data:`EDIT_ATTRIBUTES` (recipe: module docstring)."""
    from faceaudit import __version__
    from faceaudit.core.progress import Progress
    from faceaudit.generate.dcgan.batching import render_and_measure
    from faceaudit.generate.dcgan.generator import DCGANGenerator
    from faceaudit.measure import FaceMeasurer

    if n_samples < 200:
        raise BadInput(f"directions fit: n_samples must be at least 200 (got {n_samples})")
    t0 = time.perf_counter()
    gen = DCGANGenerator(truncation=truncation, device=device)
    measurer = FaceMeasurer()
    latents = fit_latents(n_samples + n_calibration, seed, truncation)
    z_fit, z_cal = latents[:n_samples], latents[n_samples:]
    attrs = list(EDIT_ATTRIBUTES) + list(REPORTED_ATTRIBUTES)
    n_total = n_samples + 2 * n_calibration * len(EDIT_ATTRIBUTES)
    with Progress(progress) as bar:
        task = bar.add_task("directions: render + measure", total=n_total)
        _, m = render_and_measure(gen, measurer, z_fit, bar, task)
        ok = m["measured_ok"].to_numpy()
        stats: dict[str, dict[str, Any]] = {}
        for a in attrs:
            # some measures can be NaN on a face with landmarks (a hair band outside the image)
            y_all = m[_COLUMNS[a]].to_numpy(dtype=np.float64)
            use = ok & np.isfinite(y_all)
            y = _winsorise(y_all[use])
            mean, sd = float(y.mean()), float(y.std())
            coef, alpha, r2_train, r2_cv = _ridge(z_fit[use], (y - mean) / sd)
            stats[a] = dict(coef=coef, mean=mean, sd=sd, alpha=alpha, r2_train=r2_train, r2_cv=r2_cv)
        unconditional = {a: stats[a]["coef"] / np.linalg.norm(stats[a]["coef"]) for a in EDIT_ATTRIBUTES}

        directions: dict[str, AttributeDirection] = {}
        for a in EDIT_ATTRIBUTES:
            others = list(CONDITIONING[a])
            u = _project_out(unconditional[a], [unconditional[b] for b in others])
            u /= np.linalg.norm(u)
            # regression slope along u, in SDs per latent unit
            predicted_step = 1.0 / float(stats[a]["coef"] @ u)
            # calibration: central difference at +-1 predicted step on fresh latents
            shift = predicted_step * u
            _, m_plus = render_and_measure(gen, measurer, z_cal + shift, bar, task)
            _, m_minus = render_and_measure(gen, measurer, z_cal - shift, bar, task)
            both = (m_plus["measured_ok"] & m_minus["measured_ok"]).to_numpy()
            leakage = {}
            for b in attrs:
                col = _COLUMNS[b]
                delta = (m_plus[col].to_numpy() - m_minus[col].to_numpy())[both] / 2.0 / stats[b]["sd"]
                leakage[b] = float(np.mean(_winsorise(delta[np.isfinite(delta)])))
            gain = leakage[a]
            if not gain > 0.05:
                raise BadInput(
                    f"directions fit: the {a} direction does not move its measure (gain {gain:.3f} SD per step); "
                    f"try more samples"
                )
            directions[a] = AttributeDirection(
                attribute=a,
                measure=_COLUMNS[a],
                unit=u,
                unconditional=unconditional[a],
                step=predicted_step / gain,
                predicted_step=predicted_step,
                mean=stats[a]["mean"],
                sd=stats[a]["sd"],
                r2_train=stats[a]["r2_train"],
                r2_cv=stats[a]["r2_cv"],
                ridge_alpha=stats[a]["alpha"],
                conditioned_on=others,
                leakage={b: v / gain for b, v in leakage.items()},
                calibration_n=int(both.sum()),
            )
    metadata = {
        "seed": int(seed),
        "n_samples": int(n_samples),
        "n_used": int(ok.sum()),
        "conditioning": {a: list(CONDITIONING[a]) for a in EDIT_ATTRIBUTES},
        "n_calibration": int(n_calibration),
        "truncation": float(truncation),
        "generator": f"{gen.name}:{gen.version}",
        "measure_version": MEASURE_VERSION,
        "faceaudit_version": __version__,
        "reported": {a: {k: stats[a][k] for k in ("mean", "sd", "r2_train", "r2_cv")} for a in REPORTED_ATTRIBUTES},
        "fit_seconds": round(time.perf_counter() - t0, 1),
        "device": gen.device,
    }
    return Directions(attributes=directions, metadata=metadata)


def fit_directions(n_samples: int, seed: int, out: Path, progress: bool = True, **kwargs: Any) -> Path:
    """Learn directions (``learn_directions``) and write them to ``out`` (``.json`` or ``.npz``)."""
    directions = learn_directions(n_samples, seed, progress=progress, **kwargs)
    return directions.save(out)
