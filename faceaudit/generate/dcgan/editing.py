"""Latent edits: placing a seed in a skin-tone level, and nuisance edits in SD units.

Skin level search. The skin direction is linear only on average: one seed's measured ITA responds
to a move along it with its own slope and some measurement noise. For every (seed, level) pair we
therefore search the shift ``t`` (latent distance along the skin unit direction) until the measured
ITA of the rendered face lies in the level's bin ``[ita_min, ita_max)``:

* start at ``t = 0`` (the seed's own face) and jump towards the level's ``target`` using the
  directions file's average slope (ITA degrees per latent unit);
* then secant steps through the last two points, or regula falsi once the target is bracketed
  (bisection when a secant step would leave the bracket or the slope is implausible);
* a render whose landmarks are lost is answered by halving the move from the last good point.

Achromatic seeds. About 8% of DCGAN faces have skin b* <= 0 (a cool colour cast, or a face mask
over the cheeks). ITA cannot take intermediate values on such a face, so a seed whose skin b* is
below :data:`CHROMA_MIN_B` is first moved along the skin-chroma direction (conditioned on skin ITA,
lighting, yaw and smile) towards :data:`CHROMA_TARGET_B`. The warmed face replaces the seed's base
for every level, so the paired design is unchanged; the shift is recorded (``chroma_shift``).

Exposure held fixed. With ``exposure_tolerance`` set (``generator.exposure_tolerance``, luma
units /255), every prototype must also keep the border luma (``measured_border_luma``: the outer
6 px of the image, background and hair) within half the tolerance of the seed's own (warmed) face,
so any two levels of a seed, the reference included, differ by at most the tolerance. The skin
direction is already conditioned on the exposure directions, so on average it leaves the border
alone; per seed it does not, so the search moves in two coordinates: ``t`` along the skin
direction (proposed as above from the ITA points) and ``e`` along the border-luma direction
(conditioned on skin ITA and the nuisances), proposed by a Newton step on the border luma with the
directions file's average slopes, replaced by a per-pair least-squares plane once three renders
are in. A pair that is in its bin but outside the exposure tolerance when the budget runs out fails
with reason ``exposure``.

A pair stops as soon as its ITA is in the bin (and its exposure within tolerance); every render
counts as one step. Pairs still outside after ``max_skin_steps`` steps, or needing more than
:data:`MAX_SKIN_SHIFT_SD` SDs of skin change, are failures; the design excludes such a seed from
every group. All pairs move together, so each step is one batched render + measure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol, Sequence

import numpy as np
import pandas as pd

from faceaudit.core.errors import BadInput

if TYPE_CHECKING:
    from faceaudit.generate.dcgan.directions import Directions
    from faceaudit.measure import FaceMeasurer
    from faceaudit.protocol import SkinLevel


class LatentRenderer(Protocol):
    """What the searches need of a generator (the DCGANGenerator): latents in, uint8 RGB images out."""

    resolution: int

    def render_latents(self, z: np.ndarray) -> np.ndarray: ...

SKIN_ATTRIBUTE = "skin_ita"
CHROMA_ATTRIBUTE = "skin_b"
#: latent direction the skin search corrects exposure along, and its measure
EXPOSURE_DIRECTION = "border_luma"
EXPOSURE_COLUMN = "measured_border_luma"
#: largest exposure correction, in SDs of border luma over random faces
MAX_EXPOSURE_SHIFT_SD = 3.0
#: seeds whose skin b* is below this are warmed first: with b* near 0, ITA = atan2(L* - 50, b*)
#: jumps from about -90 to +90 degrees as L* crosses 50 and no intermediate level can be reached
CHROMA_MIN_B = 6.0
#: b* the warm-up aims at (about the median of random faces)
CHROMA_TARGET_B = 10.0
#: largest warm-up, in SDs of skin b*
MAX_CHROMA_SHIFT_SD = 2.5
#: largest skin move allowed, in SDs of ITA over random faces: beyond it DCGAN faces fall apart
MAX_SKIN_SHIFT_SD = 4.0
#: a secant slope below this fraction of the average slope is treated as noise
MIN_SLOPE_FRACTION = 0.2
#: one extrapolating step moves at most this many SDs of ITA
MAX_STEP_SD = 2.0

REASON_NOT_REACHED = "not_reached"
REASON_SHIFT_LIMIT = "shift_limit"
REASON_NO_LANDMARKS = "no_landmarks"
REASON_EXPOSURE = "exposure"


@dataclass
class _Pair:
    """Search state of one (seed, level)."""

    lo: float
    hi: float
    target: float
    points: list[tuple[float, float]] = field(default_factory=list)  # (t, ita) with landmarks
    failed_t: list[float] = field(default_factory=list)  # renders without landmarks
    steps: int = 0
    done: bool = False
    t: float = float("nan")
    reason: str = ""
    #: exposure hold: the border luma to keep (NaN = not held), its half-tolerance, the current
    #: exposure shift and the renders (t, e, border luma) seen so far
    border_ref: float = float("nan")
    border_tol: float = float("inf")
    e: float = 0.0
    exp_points: list[tuple[float, float, float]] = field(default_factory=list)

    def in_bin(self, ita: float) -> bool:
        return self.lo <= ita < self.hi

    def exposure_ok(self, border: float) -> bool:
        return not np.isfinite(self.border_ref) or abs(border - self.border_ref) <= self.border_tol


@dataclass
class SkinSearchResult:
    """Per (seed, level): the shift found, success flag, the image and its measures."""

    base_latents: np.ndarray  # [S, 100] the (possibly warmed) base latents the shifts start from
    chroma_shifts: np.ndarray  # [S] latent distance along the skin-chroma direction (0 = not warmed)
    shifts: np.ndarray  # [S, L] latent distance along the skin unit direction (NaN on failure)
    exposure_shifts: np.ndarray  # [S, L] latent distance along the border-luma direction (0 when not held)
    latents: np.ndarray  # [S, L, 100] the prototypes' latents (the base latent on failure)
    success: np.ndarray  # [S, L] bool
    steps: np.ndarray  # [S, L] renders used
    reasons: np.ndarray  # [S, L] str ('' on success)
    images: np.ndarray  # [S, L, H, W, 3] uint8 (zeros on failure)
    measures: list[list[pd.Series | None]]  # [S][L] the landing image's measures
    #: recolor mechanism only (faceaudit.generate.dcgan.recolor): [S, L, 2] (L* ratio, b* shift) per
    #: prototype, and the base faces' landmarks [S, 68, 2]
    recolor: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    #: crossed skin x gender designs only: [S, L] latent distance along the gender unit direction of
    #: each prototype, and the renders spent on the seeds' Jacobians (faceaudit.generate.dcgan.joint_placement)
    gender_shifts: np.ndarray | None = None
    #: joint placement: [S, L] latent distance of the local-gradient finish (0 = placed along the directions)
    gender_local_shifts: np.ndarray | None = None
    probe_renders: int = 0


def _propose(p: _Pair, slope_avg: float, max_step: float) -> float:
    """Next shift for an unfinished pair (see module docstring)."""
    return secant_step(p.points, p.target, slope_avg, max_step)


def secant_step(points: list[tuple[float, float]], target: float, slope_avg: float, max_step: float) -> float:
    """Next shift along a direction from the renders ``(shift, measure)`` seen so far: regula falsi
    once the target is bracketed, else the secant through the last two renders (or the average
    slope, when theirs is implausible), clipped to ``max_step``. Shared by the skin and gender searches."""
    f = [(t, x - target) for t, x in points]
    below = [(t, v) for t, v in f if v < 0]
    above = [(t, v) for t, v in f if v > 0]
    last_t, last_v = f[-1]
    if below and above:
        # bracket: the points nearest the target on each side (in the measure) — regula falsi
        tb, vb = max(below, key=lambda x: x[1])
        ta, va = min(above, key=lambda x: x[1])
        t_new = tb - vb * (ta - tb) / (va - vb)
        lo_t, hi_t = sorted((tb, ta))
        margin = 0.1 * (hi_t - lo_t)
        if not (lo_t + margin <= t_new <= hi_t - margin):
            t_new = (tb + ta) / 2
        return t_new
    slope = slope_avg
    if len(f) >= 2:
        (t1, v1), (t2, v2) = f[-2], f[-1]
        if t2 != t1:
            s = (v2 - v1) / (t2 - t1)
            if s > MIN_SLOPE_FRACTION * slope_avg:
                slope = s
    move = -last_v / slope
    return last_t + float(np.clip(move, -max_step, max_step))


def _propose_exposure(p: _Pair, t_next: float, slope_e: float, cross: float, max_e: float) -> float:
    """Exposure shift for the next render: the border luma's linear model solved for ``border_ref``.

    The model is the plane through the pair's own renders once three are in (and its exposure slope
    is plausible), otherwise the last render with the directions file's average slopes
    (``slope_e`` per unit along the exposure direction, ``cross`` per unit along the skin one).
    """
    t_last, e_last, b_last = p.exp_points[-1]
    if len(p.exp_points) >= 3:
        pts = np.array(p.exp_points[-6:])
        design = np.column_stack([np.ones(len(pts)), pts[:, 0], pts[:, 1]])
        if np.linalg.matrix_rank(design) == 3:
            coef, *_ = np.linalg.lstsq(design, pts[:, 2], rcond=None)
            if coef[2] > MIN_SLOPE_FRACTION * slope_e:
                cross, slope_e = float(coef[1]), float(coef[2])
    e_next = e_last + (p.border_ref - b_last - cross * (t_next - t_last)) / slope_e
    return float(np.clip(e_next, -max_e, max_e))


def search_skin_levels(
    generator: LatentRenderer,
    measurer: "FaceMeasurer",
    base_latents: np.ndarray,
    levels: Sequence["SkinLevel"],
    directions: "Directions",
    max_steps: int,
    base_images: np.ndarray | None = None,
    base_measures: pd.DataFrame | None = None,
    on_resolved: Callable[[int], None] | None = None,
    exposure_tolerance: float | None = None,
    exposure_reference: np.ndarray | None = None,
) -> SkinSearchResult:
    """Find, for every seed and level, a skin shift whose measured ITA lands in the level's bin.

    ``exposure_tolerance`` (luma /255): also keep every prototype's border luma within half of it
    of the seed's own face (module docstring); None = skin only. ``exposure_reference`` ([S] border
    luma): hold it at these values instead of the base faces' own (the gender design starts the skin
    search from gender-shifted faces but holds every cell at the seed's original exposure).
    """
    skin = directions[SKIN_ATTRIBUTE]
    u = skin.unit
    hold = exposure_tolerance is not None
    if hold:
        if exposure_tolerance <= 0:
            raise BadInput(f"generator.exposure_tolerance: must be > 0 (got {exposure_tolerance})")
        if EXPOSURE_DIRECTION not in directions.attributes:
            raise BadInput(
                f"directions: no {EXPOSURE_DIRECTION!r} direction, needed to hold exposure during the skin search "
                "(refit with `faceaudit directions fit`, or set generator.exposure_tolerance: null)"
            )
        expo = directions[EXPOSURE_DIRECTION]
        u_e = expo.unit
        slope_e = directions.per_unit(EXPOSURE_DIRECTION)  # border luma per latent unit along u_e
        # border luma per latent unit along the skin direction (its leakage is in border-luma SDs per skin step)
        cross = skin.leakage.get(EXPOSURE_DIRECTION, 0.0) * expo.sd / skin.step
        max_e = MAX_EXPOSURE_SHIFT_SD * expo.step
    else:
        u_e = np.zeros_like(u)
    slope_avg = directions.per_unit(SKIN_ATTRIBUTE)  # ITA degrees per latent unit
    max_shift = MAX_SKIN_SHIFT_SD * skin.step
    max_step = MAX_STEP_SD * skin.step
    n_seeds, n_levels = len(base_latents), len(levels)
    res = generator.resolution

    if base_images is None or base_measures is None:
        base_images = generator.render_latents(base_latents)
        base_measures = measurer.measure(base_images)
    base_latents, base_images, base_measures, chroma_shifts = warm_achromatic(
        generator, measurer, base_latents, base_images, base_measures, directions
    )
    pairs = [[_Pair(lv.ita_min, lv.ita_max, lv.target) for lv in levels] for _ in range(n_seeds)]
    images = np.zeros((n_seeds, n_levels, res, res, 3), dtype=np.uint8)
    measures: list[list[pd.Series | None]] = [[None] * n_levels for _ in range(n_seeds)]

    pending: list[tuple[int, int, float]] = []
    for s in range(n_seeds):
        row = base_measures.iloc[s]
        ita0 = float(row["measured_skin_ita"]) if bool(row["measured_ok"]) else float("nan")
        border0 = float(row[EXPOSURE_COLUMN]) if exposure_reference is None else float(exposure_reference[s])
        for j, p in enumerate(pairs[s]):
            if hold:
                p.border_ref, p.border_tol = border0, exposure_tolerance / 2
                p.exp_points.append((0.0, 0.0, float(row[EXPOSURE_COLUMN])))
            if np.isfinite(ita0):
                p.points.append((0.0, ita0))
                if p.in_bin(ita0) and p.exposure_ok(float(row[EXPOSURE_COLUMN])):
                    p.done, p.t = True, 0.0
                    images[s, j] = base_images[s]
                    measures[s][j] = row
                    continue
                # in the bin but away from the held exposure (a gender-shifted start): correct e only
                t_next = 0.0 if p.in_bin(ita0) else _propose(p, slope_avg, max_step)
            else:
                # no landmarks on the seed's own face: start from the average face's ITA
                p.failed_t.append(0.0)
                t_next = float(np.clip((p.target - skin.mean) / slope_avg, -max_step, max_step))
            e_next = _propose_exposure(p, t_next, slope_e, cross, max_e) if hold else 0.0
            pending.append((s, j, t_next, e_next))
    resolved = sum(p.done for row in pairs for p in row)
    if on_resolved and resolved:
        on_resolved(resolved)

    while pending:
        # enforce the step budget and the shift limit before rendering
        batch = []
        for s, j, t, e in pending:
            p = pairs[s][j]
            if abs(t) > max_shift:
                t = float(np.sign(t) * max_shift)
                if not hold and (any(abs(pt - t) < 1e-9 for pt, _ in p.points) or t in p.failed_t):
                    p.done, p.reason = True, REASON_SHIFT_LIMIT
                    continue
            batch.append((s, j, t, e))
        if not batch:
            break
        z = np.stack([base_latents[s] + t * u + e * u_e for s, _, t, e in batch])
        imgs = generator.render_latents(z)
        meas = measurer.measure(imgs)
        pending = []
        newly = 0
        for k, (s, j, t, e) in enumerate(batch):
            p = pairs[s][j]
            p.steps += 1
            row = meas.iloc[k]
            if bool(row["measured_ok"]):
                ita = float(row["measured_skin_ita"])
                border = float(row[EXPOSURE_COLUMN])
                p.points.append((t, ita))
                if hold:
                    p.exp_points.append((t, e, border))
                if p.in_bin(ita) and p.exposure_ok(border):
                    p.done, p.t, p.e = True, t, e
                    images[s, j] = imgs[k]
                    measures[s][j] = row
                    newly += 1
                    continue
                if p.steps >= max_steps:
                    if p.in_bin(ita):
                        reason = REASON_EXPOSURE
                    else:
                        reason = REASON_SHIFT_LIMIT if abs(t) >= max_shift - 1e-9 else REASON_NOT_REACHED
                    p.done, p.reason = True, reason
                    continue
                # in the bin but not yet at the seed's exposure: keep t, correct e only
                t_next = t if p.in_bin(ita) else _propose(p, slope_avg, max_step)
                e_next = _propose_exposure(p, t_next, slope_e, cross, max_e) if hold else 0.0
                pending.append((s, j, t_next, e_next))
            else:
                p.failed_t.append(t)
                if p.steps >= max_steps:
                    p.done, p.reason = True, REASON_NOT_REACHED if p.points else REASON_NO_LANDMARKS
                    continue
                anchor = p.points[-1][0] if p.points else 0.0
                e_anchor = p.exp_points[-1][1] if hold else 0.0
                pending.append((s, j, (anchor + t) / 2, (e_anchor + e) / 2))
        if on_resolved and newly:
            on_resolved(newly)

    shifts = np.array([[p.t if p.done and not p.reason else np.nan for p in row] for row in pairs])
    success = np.isfinite(shifts)
    exposure_shifts = np.array([[p.e if ok else np.nan for p, ok in zip(row, ok_row)] for row, ok_row in zip(pairs, success)])
    for row in pairs:
        for p in row:
            if not p.reason and not np.isfinite(p.t):
                p.reason = REASON_NOT_REACHED
    latents = (
        base_latents[:, None, :]
        + np.nan_to_num(shifts)[:, :, None] * u[None, None, :]
        + np.nan_to_num(exposure_shifts)[:, :, None] * u_e[None, None, :]
    )
    return SkinSearchResult(
        base_latents=base_latents,
        chroma_shifts=chroma_shifts,
        shifts=shifts,
        exposure_shifts=exposure_shifts,
        latents=latents,
        success=success,
        steps=np.array([[p.steps for p in row] for row in pairs], dtype=np.int64),
        reasons=np.array([[p.reason for p in row] for row in pairs], dtype=object),
        images=images,
        measures=measures,
    )


def warm_achromatic(
    generator: LatentRenderer,
    measurer: "FaceMeasurer",
    latents: np.ndarray,
    images: np.ndarray,
    measures: pd.DataFrame,
    directions: "Directions",
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, np.ndarray]:
    """Move seeds with skin b* < CHROMA_MIN_B along the chroma direction (one batched render)."""
    shifts = np.zeros(len(latents))
    if CHROMA_ATTRIBUTE not in directions.attributes or len(latents) == 0:
        return latents, images, measures, shifts
    chroma = directions[CHROMA_ATTRIBUTE]
    b0 = measures["measured_skin_b"].to_numpy(dtype=np.float64)
    ok = measures["measured_ok"].to_numpy(dtype=bool)
    cold = np.flatnonzero(ok & (b0 < CHROMA_MIN_B))
    if len(cold) == 0:
        return latents, images, measures, shifts
    t = np.clip((CHROMA_TARGET_B - b0[cold]) / directions.per_unit(CHROMA_ATTRIBUTE), 0.0, MAX_CHROMA_SHIFT_SD * chroma.step)
    warm_z = latents[cold] + t[:, None] * chroma.unit
    warm_images = generator.render_latents(warm_z)
    warm_measures = measurer.measure(warm_images)
    # keep a warmed face only if it still has landmarks and really is warmer
    better = warm_measures["measured_ok"].to_numpy(dtype=bool) & (warm_measures["measured_skin_b"].to_numpy() > b0[cold])
    latents, images, measures = latents.copy(), images.copy(), measures.copy()
    for k in np.flatnonzero(better):
        i = cold[k]
        latents[i] = warm_z[k]
        images[i] = warm_images[k]
        measures.iloc[i] = warm_measures.iloc[k]
        shifts[i] = t[k]
    return latents, images, measures, shifts
