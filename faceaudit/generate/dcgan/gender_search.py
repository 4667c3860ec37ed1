"""Placing a seed at a perceived-gender level: a search along the conditional gender direction.

The latent design places skin and gender together (:mod:`faceaudit.generate.dcgan.joint_placement`,
which uses :class:`GenderBand` from here); this one-coordinate search serves the recolor mechanism,
where skin is a pixel recolouring applied after gender is placed in the latent.

Like the skin search (:mod:`faceaudit.generate.dcgan.editing`), but the measure is a classifier: the
placing classifier's P(male) (``GenderSpec.placed_by``, faceres by default), worked on as its logit.
For every seed and gender level:

* start at the seed's own face (``t = 0``); a face already inside the level's *acceptance band*
  keeps ``t = 0``;
* otherwise jump towards the level's target logit with the directions file's average slope, then
  use the secant through the seed's own renders (regula falsi once the target is bracketed);
* accept the first render whose P(male) lies in the band: inside the level's bin and at least half
  as far from the bin's edges (in logit) as the target is. The margin keeps the placed faces away
  from the classifier's decision boundary, where the validating classifier disagrees most;
* give up after ``max_steps`` renders, or when the shift would leave ``MAX_GENDER_SHIFT_SD`` SDs
  (far outside the faces the generator renders well): the seed is excluded, and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from faceaudit.generate.dcgan.editing import secant_step
from faceaudit.generate.faces import gender_logit, perceived_columns

GENDER_ATTRIBUTE = "gender"
#: largest shift along the gender direction, in SDs of the gender logit (about 3 latent units per SD)
MAX_GENDER_SHIFT_SD = 6.0
MAX_STEP_SD = 2.0
#: the oarriaga classifier's logit slope relative to faceres', for the directions-file average only
#: (the gender direction was fitted on faceres; its calibration moved the oarriaga P(male) by 0.45
#: SD per faceres SD, docs/generator.md); the joint placement replaces it by every seed's own probe
OARRIAGA_SLOPE_FRACTION = 0.45
REASON_GENDER_NOT_REACHED = "gender_not_reached"
REASON_GENDER_NO_FACE = "gender_no_face"


def _logit(p: float) -> float:
    return float(gender_logit(np.array([p]))[0])


@dataclass
class GenderBand:
    """A level's bin and acceptance band, in logit(P(male))."""

    lo: float  # bin, logit
    hi: float
    target: float
    accept_lo: float
    accept_hi: float

    @classmethod
    def from_level(cls, level, margin: float = 0.5) -> "GenderBand":
        """The level's band; ``margin``: the fraction of the target's distance from each finite edge
        (in logit) that an accepted face must keep from it (0 = the whole bin)."""
        lo = -np.inf if level.p_male_min <= 0 else _logit(level.p_male_min)
        hi = np.inf if level.p_male_max >= 1 else _logit(level.p_male_max)
        t = _logit(level.target)
        a_lo = lo if not np.isfinite(lo) else lo + margin * (t - lo)
        a_hi = hi if not np.isfinite(hi) else hi - margin * (hi - t)
        return cls(lo, hi, t, a_lo, a_hi)

    def in_bin(self, x: float) -> bool:
        return self.lo <= x < self.hi

    def accepted(self, x: float) -> bool:
        return self.accept_lo <= x <= self.accept_hi


@dataclass
class GenderSearchResult:
    shifts: np.ndarray  # [S, K] latent distance along the gender unit (NaN on failure)
    success: np.ndarray  # [S, K]
    steps: np.ndarray  # [S, K]
    reasons: np.ndarray  # [S, K] str
    logits: np.ndarray  # [S, K] logit P(male) of the accepted render


def search_gender_levels(
    generator,
    perceived,
    base_latents: np.ndarray,
    levels: Sequence,
    directions,
    max_steps: int,
    on_resolved: Callable[[int], None] | None = None,
    placed_by: str = "faceres",
) -> GenderSearchResult:
    """For every seed (rows of ``base_latents``) and gender level: a shift along the gender unit
    direction whose render the placing classifier (``placed_by``) puts inside the level's acceptance band."""
    d = directions[GENDER_ATTRIBUTE]
    u = d.unit
    slope_avg = directions.per_unit(GENDER_ATTRIBUTE)  # faceres logit per latent unit
    if placed_by == "oarriaga":
        slope_avg *= OARRIAGA_SLOPE_FRACTION
    max_shift, max_step = MAX_GENDER_SHIFT_SD * d.step, MAX_STEP_SD * d.step
    S, K = len(base_latents), len(levels)
    bands = [GenderBand.from_level(lv) for lv in levels]
    shifts = np.full((S, K), np.nan)
    logits = np.full((S, K), np.nan)
    steps = np.zeros((S, K), dtype=np.int64)
    reasons = np.full((S, K), "", dtype=object)
    points: dict[tuple[int, int], list[tuple[float, float]]] = {(s, k): [] for s in range(S) for k in range(K)}

    base = perceived_columns(perceived.predict(list(generator.render_latents(base_latents))),
                             placed_by=placed_by)["measured_gender_logit"].to_numpy()
    pending: list[tuple[int, int, float]] = []
    for s in range(S):
        for k, band in enumerate(bands):
            x0 = base[s]
            if np.isfinite(x0):
                points[s, k].append((0.0, float(x0)))
                if band.accepted(x0):
                    shifts[s, k], logits[s, k] = 0.0, x0
                    continue
                pending.append((s, k, secant_step(points[s, k], band.target, slope_avg, max_step)))
            else:
                pending.append((s, k, float(np.clip((band.target - d.mean) / slope_avg, -max_step, max_step))))
    if on_resolved:
        on_resolved(int(np.isfinite(shifts).sum()))
    while pending:
        batch = []
        for s, k, t in pending:
            t = float(np.clip(t, -max_shift, max_shift))
            if any(abs(pt - t) < 1e-9 for pt, _ in points[s, k]):
                reasons[s, k] = REASON_GENDER_NOT_REACHED  # pinned at the shift limit
                continue
            batch.append((s, k, t))
        if not batch:
            break
        imgs = generator.render_latents(np.stack([base_latents[s] + t * u for s, _, t in batch]))
        x = perceived_columns(perceived.predict(list(imgs)), placed_by=placed_by)["measured_gender_logit"].to_numpy()
        pending, newly = [], 0
        for (s, k, t), xi in zip(batch, x):
            steps[s, k] += 1
            band = bands[k]
            if np.isfinite(xi):
                points[s, k].append((t, float(xi)))
                if band.accepted(xi):
                    shifts[s, k], logits[s, k] = t, xi
                    newly += 1
                    continue
            if steps[s, k] >= max_steps:
                reasons[s, k] = REASON_GENDER_NOT_REACHED if points[s, k] else REASON_GENDER_NO_FACE
                continue
            if np.isfinite(xi):
                pending.append((s, k, secant_step(points[s, k], band.target, slope_avg, max_step)))
            else:  # no face detected: back off halfway to the last render that had one
                anchor = points[s, k][-1][0] if points[s, k] else 0.0
                pending.append((s, k, (anchor + t) / 2))
        if on_resolved and newly:
            on_resolved(newly)
    success = np.isfinite(shifts)
    reasons[~success & (reasons == "")] = REASON_GENDER_NOT_REACHED
    return GenderSearchResult(shifts, success, steps, reasons, logits)
