"""Placing a seed in every skin x gender cell at once: a joint Newton search on (ITA, gender logit, border luma).

The crossed design (``protected: [skin_tone, gender]``) needs every kept seed in all cells. Placing
gender first and then skin from each gender-placed face (the previous design) lost a third of the
seeds: the skin move changed P(male) again (24 of 100 seeds), and the pull-back afterwards often
could not both keep the skin bin and the exposure. Here each cell is one search in three latent
coordinates at once, ``x = (t, g, e)`` along the skin, gender and border-luma unit directions, for
three measures ``y = (ITA, logit P(male) of the placing classifier, border luma)``:

* **per-seed Jacobian.** The directions file's slopes are averages; a single seed's response, and
  above all the cross terms (how much a skin move changes P(male)), are its own. So every seed's
  face is rendered once more per coordinate, one step (1 SD) along it, and the finite differences
  give the seed's 3x3 Jacobian ``J`` (a column whose own slope is implausibly small, or whose probe
  lost the face, falls back to the directions file's average column). The six cells share it;
* **Newton steps.** From the seed's face, each cell solves ``J dx = y* - y`` for the next move.
  ``y*`` is the cell's target on a measure outside its window (ITA: the level's target; gender: the
  level's target logit; border luma: the seed's own value), and the current value on a measure
  already inside its window, so a satisfied constraint is *held* while the others move. A step is
  scaled down to at most :data:`MAX_STEP_SD` SDs in every coordinate, and each coordinate kept
  within its limit (skin :data:`faceaudit.generate.dcgan.editing.MAX_SKIN_SHIFT_SD`, gender
  :data:`faceaudit.generate.dcgan.gender_search.MAX_GENDER_SHIFT_SD`, exposure
  :data:`faceaudit.generate.dcgan.editing.MAX_EXPOSURE_SHIFT_SD`);
* **Broyden updates.** After every render the cell's own ``J`` gets the rank-one update that makes it
  reproduce the step just taken (a diagonal slope that falls below :data:`MIN_SLOPE_FRACTION` of the
  average is reset to the seed's measured column, so noise cannot flip a direction);
* a render without landmarks or without a detected face halves the move from the last good point.

* **the local-gradient finish.** The directions are averages: for about a third of seeds the
  placing classifier's P(male) stops falling along the gender direction well inside its limit. A
  cell whose search ends outside its windows (its budget spent, or pinned at a limit) goes on for
  up to :data:`LOCAL_STEPS` renders with the gender coordinate replaced by the seed's *own*
  direction at its current point: the sum of the unit latent gradients of faceres' and GEAR's
  gender logits (:class:`~faceaudit.generate.dcgan.gender_gradient.GenderLogitGradient`; never
  the validation classifier), made orthogonal to the skin and border-luma directions. While the
  gender band is missed each step moves :data:`LOCAL_MAX_MOVE` latent units along it (towards the
  band: the sign of faceres' own gradient along it); the gradient's size overstates the response
  beyond a fraction of a unit, so it sets only the way. The skin and border-luma coordinates take
  the Newton step that holds their measures, with the finish's cross terms learnt by Broyden
  updates. The finish adds at most :data:`LOCAL_LIMIT` latent units in all (the gender direction's
  6 SD limit is 14.8); ``gender_local_shift`` in faces.parquet is the distance it added (0 for a
  cell placed along the directions).

A cell is placed by the first render (the seed's own face and its probes included) whose ITA is in
the skin bin, whose gender logit is in the level's *acceptance band* (inside the bin, at least
:data:`GENDER_ACCEPT_MARGIN` (70%) of the target's distance from the bin's edge away from it: P(male)
<= 0.32 for the default female level, >= 0.68 for male; :class:`~faceaudit.generate.dcgan.gender_search.GenderBand`)
and whose border luma is within half the exposure tolerance of the seed's own (warmed) face, so any
two of a seed's cells differ in border luma by at most the tolerance. A cell still outside after
its budget fails with the constraints it missed as reason (``not_reached``/``shift_limit`` for skin,
``gender_not_reached``, ``exposure``, joined by ``+``; ``no_landmarks`` when no render had a face),
and its seed is excluded from every cell. All pending cells of all seeds move together: each step
is one batched render + measure + classify.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from faceaudit.generate.dcgan.editing import (
    EXPOSURE_COLUMN, EXPOSURE_DIRECTION, MAX_EXPOSURE_SHIFT_SD, MAX_SKIN_SHIFT_SD, MIN_SLOPE_FRACTION,
    REASON_EXPOSURE, REASON_NO_LANDMARKS, REASON_NOT_REACHED, REASON_SHIFT_LIMIT, SKIN_ATTRIBUTE, warm_achromatic,
)
from faceaudit.generate.dcgan.gender_search import (
    GENDER_ATTRIBUTE, MAX_GENDER_SHIFT_SD, OARRIAGA_SLOPE_FRACTION, REASON_GENDER_NOT_REACHED, GenderBand,
)
from faceaudit.generate.faces import perceived_columns

#: one Newton step moves at most this many SDs in any coordinate
MAX_STEP_SD = 2.0
#: the per-seed Jacobian probes move this many SDs along each direction
PROBE_SD = 1.0
#: an accepted face keeps this fraction of the target's distance from the gender bin's edge (logit)
GENDER_ACCEPT_MARGIN = 0.7
SKIN, GENDER, EXPOSURE = 0, 1, 2
#: renders a cell may spend on the local-gradient finish after its search along the directions
LOCAL_STEPS = 20
#: latent units one local-gradient step moves at most (the logit is nonlinear beyond ~0.5-1 unit)
LOCAL_MAX_MOVE = 0.5
#: latent distance all local-gradient steps of a cell may add up to (2.4 SD of the gender direction, whose 6 SD limit is 14.8)
LOCAL_LIMIT = 6.0


@dataclass
class _Cell:
    """Search state of one (seed, gender level, skin level)."""

    target: np.ndarray  # [m] targets of (ITA, logit, border)
    skin_bin: tuple[float, float]
    band: GenderBand
    border_tol: float
    jac: np.ndarray  # [m, m] this cell's current Jacobian (measure per latent unit)
    x: np.ndarray = field(default_factory=lambda: np.zeros(3))  # last good point
    y: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))
    tried: list[tuple[float, ...]] = field(default_factory=list)
    steps: int = 0
    done: bool = False
    reason: str = ""
    found_x: np.ndarray | None = None
    image: np.ndarray | None = None
    measures: pd.Series | None = None
    logit: float = float("nan")
    had_face: bool = False
    history: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (x, y) of every render
    #: the local-gradient finish: off, or on with its accumulated latent move ``w`` and its budget
    local: bool = False
    w: np.ndarray | None = None  # [100] latent move along local gradients
    local_steps: int = 0
    found_w: np.ndarray | None = None

    def unmet(self, y: np.ndarray) -> list[int]:
        """Which constraints a render with measures ``y`` misses."""
        out = []
        if not self.skin_bin[0] <= y[SKIN] < self.skin_bin[1]:
            out.append(SKIN)
        if not self.band.accepted(y[GENDER]):
            out.append(GENDER)
        if len(y) > EXPOSURE and not abs(y[EXPOSURE] - self.target[EXPOSURE]) <= self.border_tol:
            out.append(EXPOSURE)
        return out


@dataclass
class JointPlacement:
    """Every seed in every (gender level k, skin level j) cell: shifts, flags, images and measures."""

    base_latents: np.ndarray  # [S, 100] the (possibly warmed) base latents the shifts start from
    chroma_shifts: np.ndarray  # [S] warm-up along the skin-chroma direction (0 = not warmed)
    skin_shifts: np.ndarray  # [S, K, L] latent distance along the skin unit direction (NaN on failure)
    gender_shifts: np.ndarray  # [S, K, L] along the gender unit direction
    exposure_shifts: np.ndarray  # [S, K, L] along the border-luma unit direction (0 when not held)
    latents: np.ndarray  # [S, K, L, 100] the prototypes' latents (the base latent on failure)
    success: np.ndarray  # [S, K, L] bool
    steps: np.ndarray  # [S, K, L] renders used by the cell (the seed's probes not included)
    reasons: np.ndarray  # [S, K, L] str ('' on success)
    images: np.ndarray  # [S, K, L, H, W, 3] uint8 (zeros on failure)
    measures: list[list[list[pd.Series | None]]]  # [S][K][L]
    logits: np.ndarray  # [S, K, L] the placing classifier's logit P(male) of the prototype
    probe_renders: int  # renders spent on the per-seed Jacobians
    jacobians: np.ndarray  # [S, m, m] the seeds' measured Jacobians (measure per latent unit)
    #: [S][K][L] every render of the cell's search, ``(x, y)`` (diagnostics)
    histories: list = field(default_factory=list)
    #: [S, K, L] latent distance the local-gradient finish added (0: placed along the directions; NaN on failure)
    local_shifts: np.ndarray | None = None


def _placing_logit(perceived, images, placed_by: str) -> np.ndarray:
    return perceived_columns(perceived.predict(list(images)), placed_by=placed_by)["measured_gender_logit"].to_numpy()


def _measures(meas: pd.DataFrame, logit: np.ndarray, hold: bool) -> np.ndarray:
    """``[N, m]`` (ITA, logit, border luma) of rendered faces; NaN where landmarks or the face were lost."""
    cols = [meas["measured_skin_ita"].to_numpy(dtype=np.float64), np.asarray(logit, dtype=np.float64)]
    if hold:
        cols.append(meas[EXPOSURE_COLUMN].to_numpy(dtype=np.float64))
    y = np.column_stack(cols)
    y[~meas["measured_ok"].to_numpy(dtype=bool)] = np.nan
    return y


def gender_direction_name(directions, placed_by: str) -> str:
    """The gender direction a placement moves along: the one fitted on the placing classifier
    (``gender`` for faceres, ``gender_oarriaga`` where the directions file has it), else ``gender``."""
    from faceaudit.generate.dcgan.perceived_directions import OARRIAGA_GENDER

    return OARRIAGA_GENDER if placed_by == "oarriaga" and OARRIAGA_GENDER in directions.attributes else GENDER_ATTRIBUTE


def average_jacobian(directions, hold: bool, placed_by: str = "faceres") -> tuple[np.ndarray, np.ndarray]:
    """The directions file's average Jacobian of (ITA, gender logit[, border luma]) on the
    (skin, gender[, border-luma]) unit directions, and each coordinate's step (latent units per SD).

    Cross terms come from each direction's calibrated leakage (SDs of the other measure per step).
    """
    gender = gender_direction_name(directions, placed_by)
    names = [SKIN_ATTRIBUTE, gender] + ([EXPOSURE_DIRECTION] if hold else [])
    m = len(names)
    jac = np.zeros((m, m))
    steps = np.array([directions[n].step for n in names])
    for c, col_attr in enumerate(names):
        d = directions[col_attr]
        for r, row_attr in enumerate(names):
            leak = 1.0 if r == c else d.leakage.get(row_attr, 0.0)
            jac[r, c] = leak * directions[row_attr].sd / d.step
    if placed_by == "oarriaga" and gender == GENDER_ATTRIBUTE:
        # the faceres-fitted direction placing on oarriaga: its average slope there is smaller
        jac[GENDER] *= OARRIAGA_SLOPE_FRACTION
    return jac, steps


def place_cells(
    generator,
    measurer,
    perceived,
    base_latents: np.ndarray,
    skin_levels: Sequence,
    gender_levels: Sequence,
    directions,
    max_steps: int,
    exposure_tolerance: float | None = 5.0,
    placed_by: str = "faceres",
    base_images: np.ndarray | None = None,
    base_measures: pd.DataFrame | None = None,
    on_resolved: Callable[[int], None] | None = None,
    gradient: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
) -> JointPlacement:
    """Place every seed in every (gender level, skin level) cell (module docstring).

    Parameters
    ----------
    generator
        A DCGANGenerator (``render_latents``, ``resolution``).
    measurer
        A FaceMeasurer (ITA, border luma, landmarks).
    perceived
        A :class:`faceaudit.measure.perceived.PerceivedAttributes`.
    base_latents : ndarray
        ``[S, 100]`` the seeds' latents.
    skin_levels, gender_levels : sequence
        The protocol's :class:`~faceaudit.protocol.SkinLevel` and :class:`~faceaudit.protocol.GenderLevel` lists.
    directions : Directions
        Needs ``skin_ita``, ``gender`` and (with the exposure hold) ``border_luma``.
    max_steps : int
        Renders per cell before it fails.
    exposure_tolerance : float or None
        Border luma (/255) two cells of a seed may differ by; None = not held.
    placed_by : {"faceres", "oarriaga"}
        The classifier whose logit P(male) places the gender level.
    base_images, base_measures
        The seeds' renders and measures, if already made.
    on_resolved : callable, optional
        Called with the number of cells placed after each batch.
    gradient : callable, optional
        ``latents [N, 100] -> (logit [N], d logit / d latent [N, 100])`` of the placing classifier
        (:class:`~faceaudit.generate.dcgan.gender_gradient.GenderLogitGradient`); with it, a cell
        whose search along the directions misses its gender band goes on with the local-gradient
        finish (module docstring). None: no finish.

    Returns
    -------
    JointPlacement
    """
    hold = exposure_tolerance is not None
    m = 3 if hold else 2
    names = [SKIN_ATTRIBUTE, gender_direction_name(directions, placed_by)] + ([EXPOSURE_DIRECTION] if hold else [])
    units = np.stack([directions[n].unit for n in names])  # [m, 100]
    avg_jac, sd_steps = average_jacobian(directions, hold, placed_by)
    limits = np.array([MAX_SKIN_SHIFT_SD, MAX_GENDER_SHIFT_SD] + ([MAX_EXPOSURE_SHIFT_SD] if hold else [])) * sd_steps
    max_move = MAX_STEP_SD * sd_steps
    S, K, L = len(base_latents), len(gender_levels), len(skin_levels)
    res = generator.resolution

    if base_images is None or base_measures is None:
        base_images = generator.render_latents(base_latents)
        base_measures = measurer.measure(base_images)
    base_latents, base_images, base_measures, chroma_shifts = warm_achromatic(
        generator, measurer, base_latents, base_images, base_measures, directions)
    y0 = _measures(base_measures, _placing_logit(perceived, base_images, placed_by), hold)
    # the exposure every cell is held at: the seed's own (warmed) face, landmarks or not
    border_ref = base_measures[EXPOSURE_COLUMN].to_numpy(dtype=np.float64) if hold else np.full(S, np.nan)
    # where the seed's own face has no landmarks, the search starts from the average face's measures
    average_y = np.array([directions[SKIN_ATTRIBUTE].mean, directions[names[GENDER]].mean]
                         + ([directions[EXPOSURE_DIRECTION].mean] if hold else []))

    # the seed's own Jacobian: one probe render per coordinate
    probe_delta = PROBE_SD * sd_steps
    probe_z = np.stack([base_latents[s] + probe_delta[c] * units[c] for s in range(S) for c in range(m)])
    probe_images = generator.render_latents(probe_z)
    probe_meas = measurer.measure(probe_images)
    y_probe = _measures(probe_meas, _placing_logit(perceived, probe_images, placed_by), hold).reshape(S, m, m)
    jacobians = np.repeat(avg_jac[None], S, axis=0)
    for s in range(S):
        for c in range(m):
            col = (y_probe[s, c] - y0[s]) / probe_delta[c]
            if np.isfinite(col).all() and col[c] > MIN_SLOPE_FRACTION * avg_jac[c, c]:
                jacobians[s, :, c] = col

    cells: list[list[list[_Cell]]] = []
    for s in range(S):
        per_k = []
        for glv in gender_levels:
            band = GenderBand.from_level(glv, GENDER_ACCEPT_MARGIN)
            row = []
            for lv in skin_levels:
                target = np.array([lv.target, band.target] + ([border_ref[s]] if hold else []))
                cell = _Cell(target=target, skin_bin=(lv.ita_min, lv.ita_max), band=band,
                             border_tol=(exposure_tolerance / 2) if hold else np.inf, jac=jacobians[s].copy(),
                             x=np.zeros(m), y=y0[s].copy())
                # the seed's face and its probes are candidates too
                candidates = [(np.zeros(m), y0[s], base_images[s], base_measures.iloc[s])]
                candidates += [(probe_delta[c] * np.eye(m)[c], y_probe[s, c], probe_images[s * m + c], probe_meas.iloc[s * m + c])
                               for c in range(m)]
                for x, y, img, meas in candidates:
                    if np.isfinite(y).all():
                        cell.had_face = True
                        if not cell.unmet(y):
                            cell.done, cell.found_x, cell.image, cell.measures, cell.logit = True, x, img, meas, y[GENDER]
                            break
                row.append(cell)
            per_k.append(row)
        cells.append(per_k)
    if on_resolved:
        on_resolved(sum(c.done for a in cells for b in a for c in b))

    def propose(cell: _Cell) -> np.ndarray:
        y = np.where(np.isfinite(cell.y), cell.y, average_y)
        want = cell.target.copy()
        missed = cell.unmet(y)
        for c in range(m):
            if c not in missed:
                want[c] = y[c]  # hold what is already in its window
        dx, *_ = np.linalg.lstsq(cell.jac, want - y, rcond=None)
        scale = np.max(np.abs(dx) / max_move)
        if scale > 1:
            dx = dx / scale
        x = cell.x + dx
        # a missed constraint whose own coordinate is already at its limit and wants to go further
        for c in missed:
            if abs(cell.x[c]) >= limits[c] - 1e-9 and abs(x[c]) > limits[c]:
                return None
        return np.clip(x, -limits, limits)

    dim = base_latents.shape[1]
    # the local finish moves orthogonally to the skin and border-luma directions
    others = [c for c in range(m) if c != GENDER]
    held = np.linalg.qr(units[others].T)[0]  # [100, m-1]

    def latent(s: int, x: np.ndarray, w: np.ndarray | None) -> np.ndarray:
        return base_latents[s] + x @ units + (0.0 if w is None else w)

    def finish_or_fail(cell: _Cell) -> str | None:
        """A cell whose search along the directions ends without its gender band goes on with the
        local-gradient finish (``"grad"``) where a gradient is available; otherwise it fails."""
        if gradient is not None and not cell.local and np.isfinite(cell.y).all() and cell.unmet(cell.y):
            cell.local, cell.w, cell.local_steps = True, np.zeros(dim), 0
            cell.jac = cell.jac.copy()
            cell.jac[others, GENDER] = 0.0  # unknown until the first local step
            return "grad"
        _fail(cell, limits)
        return None

    def propose_local(cell: _Cell, grad: np.ndarray, dgrad: np.ndarray):
        """One step of the local-gradient finish (module docstring): a fixed move along the local
        direction while the gender band is missed (the gradient's magnitude overstates the response
        beyond a fraction of a latent unit, so it sets only the direction), and the Newton step of
        the other coordinates that holds their measures given the move's learned cross terms."""
        d = dgrad - held @ (held.T @ dgrad)
        norm = float(np.linalg.norm(d))
        if not np.isfinite(norm) or norm <= 0:
            return None
        d = d / norm
        if float(grad @ d) <= 0:
            return None  # the direction does not move the placing classifier's logit
        y = cell.y
        missed = cell.unmet(y)
        a = 0.0
        if GENDER in missed:
            a = float(np.sign(cell.target[GENDER] - y[GENDER])) * LOCAL_MAX_MOVE
        want = cell.target.copy()
        for c in range(m):
            if c not in missed:
                want[c] = y[c]
        rhs = (want - y)[others] - cell.jac[others, GENDER] * a
        dx_o, *_ = np.linalg.lstsq(cell.jac[np.ix_(others, others)], rhs, rcond=None)
        scale = np.max(np.abs(dx_o) / max_move[others])
        if scale > 1:
            dx_o = dx_o / scale
        w = cell.w + a * d
        if float(np.linalg.norm(w)) > LOCAL_LIMIT:
            return None  # the finish would move the latent further than its limit
        x = cell.x.copy()
        x[others] += dx_o
        step = np.zeros(m)
        step[others], step[GENDER] = dx_o, a
        return np.clip(x, -limits, limits), w, step

    pending = [(s, k, j, propose(cells[s][k][j])) for s in range(S) for k in range(K) for j in range(L)
               if not cells[s][k][j].done]
    batch_later: list = []
    while pending:
        # cells in the local finish get their gradient at their current point, all in one batch
        wants_grad = [(s, k, j) for s, k, j, x in pending if isinstance(x, str)]
        if wants_grad:
            zs = np.stack([latent(s, cells[s][k][j].x, cells[s][k][j].w) for s, k, j in wants_grad])
            _, grads, dgrads = gradient(zs)
            proposals = {key: propose_local(cells[key[0]][key[1]][key[2]], grads[i], dgrads[i]) for i, key in enumerate(wants_grad)}
            pending = [(s, k, j, proposals[(s, k, j)] if isinstance(x, str) else x) for s, k, j, x in pending]
        batch = []
        for s, k, j, x in pending:
            cell = cells[s][k][j]
            if x is None:  # pinned at a limit
                if cell.local:
                    _fail(cell, limits)
                elif finish_or_fail(cell):
                    batch_later.append((s, k, j, "grad"))
                continue
            if cell.local:
                x, w, step = x
            else:
                w, step = None, None
            key = tuple(np.round(x if w is None else np.r_[x, w], 9))
            if key in cell.tried:  # pinned at a limit: nothing new to try
                if cell.local:
                    _fail(cell, limits)
                elif finish_or_fail(cell):
                    batch_later.append((s, k, j, "grad"))
                continue
            cell.tried.append(key)
            batch.append((s, k, j, x, w, step))
        pending, batch_later = batch_later, []
        if not batch:
            continue
        z = np.stack([latent(s, x, w) for s, _, _, x, w, _ in batch])
        imgs = generator.render_latents(z)
        meas = measurer.measure(imgs)
        ys = _measures(meas, _placing_logit(perceived, imgs, placed_by), hold)
        newly = 0
        for b, (s, k, j, x, w, step) in enumerate(batch):
            cell = cells[s][k][j]
            cell.steps += 1
            y = ys[b]
            cell.history.append((x, y))
            over = (cell.local_steps + 1 >= LOCAL_STEPS) if cell.local else (cell.steps >= max_steps)
            if cell.local:
                cell.local_steps += 1
            if np.isfinite(y).all():
                cell.had_face = True
                if not cell.unmet(y):
                    cell.done, cell.found_x, cell.image, cell.measures, cell.logit = True, x, imgs[b], meas.iloc[b], y[GENDER]
                    cell.found_w = w
                    newly += 1
                    continue
                if cell.local:
                    if np.isfinite(cell.y).all():
                        # a diagonal slope the update makes implausible falls back to the one before it
                        before = cell.jac
                        _broyden(cell, step, y - cell.y, seed_jac=before, avg_jac=before)
                    cell.x, cell.y, cell.w = x, y, w
                    if over:
                        _fail(cell, limits)
                        continue
                    pending.append((s, k, j, "grad"))
                    continue
                if np.isfinite(cell.y).all():
                    _broyden(cell, x - cell.x, y - cell.y, jacobians[s], avg_jac)
                cell.x, cell.y = x, y
                if over:
                    if finish_or_fail(cell):
                        pending.append((s, k, j, "grad"))
                    continue
                pending.append((s, k, j, propose(cell)))
            else:
                if cell.local:
                    if over:
                        _fail(cell, limits)
                        continue
                    # lost the face: back off halfway
                    pending.append((s, k, j, ((cell.x + x) / 2, (cell.w + w) / 2, step / 2)))
                    continue
                if over:
                    if finish_or_fail(cell):
                        pending.append((s, k, j, "grad"))
                    continue
                pending.append((s, k, j, (cell.x + x) / 2))  # lost the face: back off halfway
        if on_resolved and newly:
            on_resolved(newly)

    success = np.array([[[c.done and not c.reason for c in row] for row in per_k] for per_k in cells])
    shifts = np.full((S, K, L, m), np.nan)
    latents = np.repeat(np.repeat(base_latents[:, None, None, :], K, axis=1), L, axis=2).copy()
    images = np.zeros((S, K, L, res, res, 3), dtype=np.uint8)
    measures: list[list[list[pd.Series | None]]] = [[[None] * L for _ in range(K)] for _ in range(S)]
    logits = np.full((S, K, L), np.nan)
    local_shifts = np.full((S, K, L), np.nan)
    for s in range(S):
        for k in range(K):
            for j in range(L):
                c = cells[s][k][j]
                if success[s, k, j]:
                    shifts[s, k, j] = c.found_x
                    latents[s, k, j] = latent(s, c.found_x, c.found_w)
                    local_shifts[s, k, j] = 0.0 if c.found_w is None else float(np.linalg.norm(c.found_w))
                    images[s, k, j] = c.image
                    measures[s][k][j] = c.measures
                    logits[s, k, j] = c.logit
                elif not c.reason:
                    _fail(c, limits)
    exposure = shifts[..., EXPOSURE] if hold else np.where(success, 0.0, np.nan)
    return JointPlacement(
        base_latents=base_latents, chroma_shifts=chroma_shifts,
        skin_shifts=shifts[..., SKIN], gender_shifts=shifts[..., GENDER], exposure_shifts=exposure,
        latents=latents, success=success,
        steps=np.array([[[c.steps for c in row] for row in per_k] for per_k in cells], dtype=np.int64),
        reasons=np.array([[[c.reason for c in row] for row in per_k] for per_k in cells], dtype=object),
        images=images, measures=measures, logits=logits, probe_renders=int(S * m), jacobians=jacobians,
        histories=[[[c.history for c in row] for row in per_k] for per_k in cells],
        local_shifts=local_shifts,
    )


def _broyden(cell: _Cell, dx: np.ndarray, dy: np.ndarray, seed_jac: np.ndarray, avg_jac: np.ndarray) -> None:
    """Broyden's rank-one update of the cell's Jacobian; a diagonal slope that became implausible is
    reset to the seed's measured column."""
    nn = float(dx @ dx)
    if nn <= 0:
        return
    cell.jac = cell.jac + np.outer(dy - cell.jac @ dx, dx) / nn
    for c in range(len(dx)):
        if not cell.jac[c, c] > MIN_SLOPE_FRACTION * avg_jac[c, c]:
            cell.jac[:, c] = seed_jac[:, c]


def _fail(cell: _Cell, limits: np.ndarray) -> None:
    """Mark a cell failed, naming every constraint its last render missed."""
    cell.done = True
    if not cell.had_face or not np.isfinite(cell.y).all():
        cell.reason = REASON_NO_LANDMARKS if not cell.had_face else REASON_NOT_REACHED
        return
    parts = []
    for c in cell.unmet(cell.y):
        if c == SKIN:
            parts.append(REASON_SHIFT_LIMIT if abs(cell.x[SKIN]) >= limits[SKIN] - 1e-9 else REASON_NOT_REACHED)
        elif c == GENDER:
            parts.append(REASON_GENDER_NOT_REACHED)
        else:
            parts.append(REASON_EXPOSURE)
    cell.reason = "+".join(parts) or REASON_NOT_REACHED
