"""Per-group error rates at a global threshold, with seed-clustered bootstrap CIs.

For each model and target FMR the threshold is set once, on the pooled impostor scores of every group
and edit condition (:func:`faceaudit.stats.thresholds.threshold_at_fmr`, candidates = every score of
the model), and then *held fixed*: the audit question is "at this operating point, how often does
each group get falsely rejected / falsely matched?". The CIs are conditional on that threshold (the
threshold is not re-estimated inside each replicate); this is the NIST FRVT demographic convention,
and it makes group contrasts comparisons at one common operating point.

Counting rules (ISO/IEC 19795-1 vocabulary):
- ``fnmr`` = false non-matches / genuine *comparisons made* (pairs where both faces enrolled).
- ``gfnmr`` (generalized FNMR) = (false non-matches + genuine pairs with a failure to enrol) / all
  genuine pairs: a person whose face cannot be enrolled is not recognised, so this is what a user
  experiences. Reported next to ``fnmr``.
- ``fmr`` = false matches / impostor comparisons made; impostor pairs with an FTE face are not
  comparisons and are left out (counted in ``n_impostor_fte``).
- ``fte_rate`` = faces of the group that failed to enrol / faces of the group (from embeddings).

Every rate is a ratio of counts, so one replicate is ``(W @ numerators) / (W @ denominators)`` for
genuine pairs and faces (one seed each) and a quadratic form in ``W`` for impostor pairs (two seeds;
see :mod:`faceaudit.stats.bootstrap` for why the pair weight is ``W[a] * W[b]``). Those replicates feed
the fairness summaries and the contrasts. The *reported* per-group intervals are Wilson score
intervals on cluster-adjusted effective counts (:func:`faceaudit.stats.primary.wilson_effective`):
the design effect is the bootstrap variance of the rate (FNMR, GFNMR, FTE), or its dyadic-robust
variance (FMR, :mod:`faceaudit.stats.dyadic`; the product weight over-counts pair-level noise),
over the binomial one, at least 1; they stay valid at 0-10 events, where a percentile or logit
interval collapses to a point.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from faceaudit.stats.bootstrap import pair_quadform
from faceaudit.stats.data import ALL, Layout, ModelData, Side
from faceaudit.stats.dyadic import DyadicDesign, logit_interval, rate_influence
from faceaudit.stats.primary import RATE_CI_METHOD, wilson_effective
from faceaudit.stats import thresholds as T

if TYPE_CHECKING:
    from faceaudit.stats.impostors import ImpostorStats

__all__ = ["ER_CI_METHOD", "PSEUDO_ERRORS", "PSEUDO_TRIALS", "fmr_key", "enrolled_nothing", "Count", "Ratio",
           "ModelRates", "GenuineRates", "genuine_rates", "compute_model_rates", "compute_model_rates_streamed",
           "threshold_free", "fmr_ci", "fmr_variance", "error_rate_table", "seed_cell_matrix", "single_seed_count", "pair_count",
           "genuine_by_set", "fmr_cell_masks"]

#: error_rates rows: Wilson intervals on cluster-adjusted effective counts (faceaudit.stats.primary)
ER_CI_METHOD = RATE_CI_METHOD

#: pseudo-counts for rates that enter a ratio (max/min ratios, IR, ratio contrasts): (e + 0.5)/(n + 1)
PSEUDO_ERRORS = 0.5
PSEUDO_TRIALS = 1.0


def fmr_key(target: float) -> str:
    """Key of a target FMR in summary.json and policies: ``1e-03``.

    Parameters
    ----------
    target : float
        A target FMR.

    Returns
    -------
    str
        ``target`` in one-digit scientific notation.

    Examples
    --------
    >>> fmr_key(0.001), fmr_key(1e-2)
    ('1e-03', '1e-02')
    """
    return f"{float(target):.0e}"


def enrolled_nothing(rows: pd.DataFrame) -> bool:
    """Whether a model's ``error_rates`` rows say it enrolled no comparison at all (every face failed
    to enrol): no genuine or impostor comparison was made and no threshold exists.

    Parameters
    ----------
    rows : pandas.DataFrame
        The model's ``error_rates`` rows (columns ``n_genuine``, ``n_impostor``, ``threshold``).

    Returns
    -------
    bool

    Examples
    --------
    >>> enrolled_nothing(pd.DataFrame({"n_genuine": [0, 0], "n_impostor": [0, 0], "threshold": [np.nan, np.nan]}))
    True
    >>> enrolled_nothing(pd.DataFrame({"n_genuine": [4], "n_impostor": [12], "threshold": [0.4]}))
    False
    """
    return bool((rows["n_genuine"] == 0).all() and (rows["n_impostor"] == 0).all() and rows["threshold"].isna().all())


@dataclass
class Count:
    """A count per (group + all, condition + all) cell: point value and bootstrap replicates.

    Parameters
    ----------
    point : numpy.ndarray
        ``(G+1, C+1)`` point counts; the last group / condition is the margin (all).
    boot : numpy.ndarray
        ``(B, G+1, C+1)`` bootstrap replicates.
    seeds : numpy.ndarray, optional
        ``(G+1, C+1)`` number of seeds contributing (denominators only).
    per_seed : numpy.ndarray, optional
        ``(S, G, C)`` per-seed sums.

    Examples
    --------
    >>> c = Count(np.array([[2.0, 2.0], [1.0, 1.0]]), np.zeros((5, 2, 2)))
    >>> c.point[-1, -1], c.boot.shape, c.seeds is None
    (np.float64(1.0), (5, 2, 2), True)
    """

    point: np.ndarray  # (G+1, C+1)
    boot: np.ndarray  # (B, G+1, C+1)
    seeds: np.ndarray | None = None  # (G+1, C+1) number of seeds contributing (denominators only)
    per_seed: np.ndarray | None = None  # (S, G, C) per-seed sums (items of one seed: sign-flip p-values)


@dataclass
class Ratio:
    """A rate as a ratio of two :class:`Count` s, with its bootstrap replicates.

    Parameters
    ----------
    num : Count
        Numerator counts (errors).
    den : Count
        Denominator counts (trials); a cell with no trial has a NaN rate.

    Examples
    --------
    >>> num = Count(np.array([[1.0, 0.0]]), np.array([[[1.0, 0.0]], [[2.0, 0.0]]]))
    >>> den = Count(np.array([[4.0, 0.0]]), np.array([[[4.0, 0.0]], [[4.0, 0.0]]]))
    >>> r = Ratio(num, den)
    >>> r.rate().tolist(), r.rate_boot()[:, 0, 0].tolist()
    ([[0.25, nan]], [0.25, 0.5])
    >>> r.smoothed()[0, 0].item()  # (1 + 0.5) / (4 + 1)
    0.3
    """

    num: Count
    den: Count

    def rate(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.den.point > 0, self.num.point / np.where(self.den.point > 0, self.den.point, 1), np.nan)

    def rate_boot(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.den.boot > 0, self.num.boot / np.where(self.den.boot > 0, self.den.boot, 1), np.nan)

    def smoothed(self) -> np.ndarray:
        return (self.num.point + PSEUDO_ERRORS) / (self.den.point + PSEUDO_TRIALS)

    def smoothed_boot(self) -> np.ndarray:
        return (self.num.boot + PSEUDO_ERRORS) / (self.den.boot + PSEUDO_TRIALS)


def _margins(x: np.ndarray) -> np.ndarray:
    """Append the sum over groups (last group) and over conditions (last condition)."""
    x = np.concatenate([x, x.sum(axis=-2, keepdims=True)], axis=-2)
    return np.concatenate([x, x.sum(axis=-1, keepdims=True)], axis=-1)


def seed_cell_matrix(seed: np.ndarray, group: np.ndarray, cond: np.ndarray, values: np.ndarray, layout: Layout) -> np.ndarray:
    """``(S, G*C)`` matrix of per-seed sums of ``values`` in each (group, condition) cell.

    Parameters
    ----------
    seed, group, cond : numpy.ndarray
        Integer seed, group and condition index of each item.
    values : numpy.ndarray
        Value of each item.
    layout : Layout
        Sizes ``S``, ``G``, ``C``.

    Returns
    -------
    numpy.ndarray
        ``(S, G*C)`` sums; cell ``g*C + c``.

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> md = example_model_data()
    >>> gen = md.genuine
    >>> m = seed_cell_matrix(gen.seed_a, gen.group, gen.cond, np.ones(len(gen)), md.layout)
    >>> m.shape == (md.layout.S, md.layout.G * md.layout.C), int(m.sum()) == len(gen)
    (True, True)
    """
    S, G, C = layout.S, layout.G, layout.C
    flat = seed * (G * C) + group * C + cond
    m = np.bincount(flat, weights=np.asarray(values, dtype=float), minlength=S * G * C)
    return m.reshape(S, G * C)


def single_seed_count(W: np.ndarray, seed, group, cond, values, layout: Layout, with_seeds: bool = False) -> Count:
    """Cell counts for items that belong to one seed (genuine pairs, faces): one matrix product.

    Parameters
    ----------
    W : numpy.ndarray
        ``(B, S)`` seed-bootstrap weights.
    seed, group, cond : numpy.ndarray
        Integer seed, group and condition index of each item.
    values : numpy.ndarray
        Value of each item (1.0 to count items).
    layout : Layout
        Sizes ``S``, ``G``, ``C``.
    with_seeds : bool, default False
        Also count the seeds contributing to each cell.

    Returns
    -------
    Count

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> md = example_model_data()
    >>> W = seed_weights(md.layout.S, 50, bootstrap_rng(0))
    >>> gen = md.genuine
    >>> c = single_seed_count(W, gen.seed_a, gen.group, gen.cond, np.ones(len(gen)), md.layout, with_seeds=True)
    >>> int(c.point[-1, -1]) == len(gen), c.boot.shape, int(c.seeds[-1, -1]) == md.layout.S
    (True, (50, 3, 4), True)
    """
    G, C = layout.G, layout.C
    M = seed_cell_matrix(seed, group, cond, values, layout)
    point = _margins(M.sum(axis=0).reshape(G, C))
    boot = _margins((W @ M).reshape(W.shape[0], G, C))
    seeds = None
    if with_seeds:
        present = M > 0
        per = present.reshape(-1, G, C)
        seeds = np.zeros((G + 1, C + 1))
        seeds[:G, :C] = per.sum(axis=0)
        seeds[:G, C] = per.any(axis=2).sum(axis=0)
        seeds[G, :C] = per.any(axis=1).sum(axis=0)
        seeds[G, C] = per.any(axis=(1, 2)).sum()
    return Count(point, boot, seeds, M.reshape(M.shape[0], G, C))


def pair_count(W: np.ndarray, side: Side, values: np.ndarray, layout: Layout, with_seeds: bool = False) -> Count:
    """Cell counts for impostor pairs (two seeds): one quadratic form per (group, condition) cell.

    Parameters
    ----------
    W : numpy.ndarray
        ``(B, S)`` seed-bootstrap weights.
    side : Side
        The impostor pairs (``md.impostor``).
    values : numpy.ndarray
        Value of each pair.
    layout : Layout
        Sizes ``S``, ``G``, ``C``.
    with_seeds : bool, default False
        Also count the seeds contributing to each cell.

    Returns
    -------
    Count

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> md = example_model_data()
    >>> imp = md.impostor
    >>> c = pair_count(seed_weights(md.layout.S, 50, bootstrap_rng(0)), imp, np.ones(len(imp)), md.layout)
    >>> int(c.point[-1, -1]) == len(imp), c.boot.shape
    (True, (50, 3, 4))
    """
    G, C, B = layout.G, layout.C, W.shape[0]
    values = np.asarray(values, dtype=float)
    cell = side.group * C + side.cond
    point = np.zeros((G, C))
    boot = np.zeros((B, G, C))
    seeds = np.zeros((G + 1, C + 1)) if with_seeds else None
    order = np.argsort(cell, kind="stable")
    bounds = np.searchsorted(cell[order], np.arange(G * C + 1))
    seen_gc = [[set() for _ in range(C + 1)] for _ in range(G + 1)] if with_seeds else None
    for k in range(G * C):
        idx = order[bounds[k]:bounds[k + 1]]
        if len(idx) == 0:
            continue
        v = values[idx]
        nz = v != 0
        if not nz.any():
            continue
        g, c = divmod(k, C)
        a, b = side.seed_a[idx][nz], side.seed_b[idx][nz]
        point[g, c] = v[nz].sum()
        boot[:, g, c] = pair_quadform(W, a, b, v[nz], layout.S)
        if with_seeds:
            s = set(np.unique(np.concatenate([a, b])).tolist())
            for gg in (g, G):
                for cc in (c, C):
                    seen_gc[gg][cc] |= s
    if with_seeds:
        for gg in range(G + 1):
            for cc in range(C + 1):
                seeds[gg, cc] = len(seen_gc[gg][cc])
    return Count(_margins(point), _margins(boot), seeds)


@dataclass
class ModelRates:
    """Everything rate-like for one model: shared bootstrap weights, one entry per target FMR.

    Built by :func:`compute_model_rates` or :func:`compute_model_rates_streamed`.

    Parameters
    ----------
    md : ModelData
        The model's data.
    thresholds : dict
        ``{target FMR: global threshold}``.
    fnmr, gfnmr, fmr : dict
        ``{target FMR: Ratio}``.
    fte : Ratio
        FTE rate of faces.
    gscore : Ratio
        Mean genuine score.
    n_genuine_all : Count
        Every genuine pair.
    n_impostor_fte : numpy.ndarray
        ``(G+1, C+1)`` impostor pairs with a failure to enrol.
    group_thresholds : dict
        ``{target FMR: (G+1,) per-group thresholds}`` (diagnostic).
    dyad : DyadicDesign, optional
        Seed pairs of the impostor pairs.
    imp : ImpostorStats, optional
        Streamed impostor statistics.
    gen_by_set : list, optional
        Sorted genuine scores per group, then all.

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> md = example_model_data()
    >>> mr = compute_model_rates(md, seed_weights(md.layout.S, 50, bootstrap_rng(0)), [0.1])
    >>> sorted(mr.thresholds), mr.fmr[0.1].rate().shape
    ([0.1], (3, 4))
    >>> int(mr.false_match(0.1).sum()) == int(mr.fmr[0.1].num.point[-1, -1])
    True
    """

    md: ModelData
    thresholds: dict[float, float]
    fnmr: dict[float, Ratio]
    gfnmr: dict[float, Ratio]
    fmr: dict[float, Ratio]
    fte: Ratio
    gscore: Ratio  # mean genuine score: sum of scores / compared genuine pairs
    n_genuine_all: Count
    n_impostor_fte: np.ndarray
    group_thresholds: dict[float, np.ndarray] = field(default_factory=dict)  # (G+1,) diagnostic
    dyad: DyadicDesign | None = None  # seed pairs of the impostor pairs (FMR intervals and contrasts)
    #: streamed impostor statistics (faceaudit.stats.impostors); then ``md.impostor`` is not used
    imp: "ImpostorStats | None" = None
    gen_by_set: list | None = None  # sorted genuine ok scores per group, then all

    def false_match(self, target: float) -> np.ndarray:
        """Per impostor pair: 1.0 for a false match at the global threshold of ``target``."""
        imp = self.md.impostor
        return (imp.ok & (imp.score >= self.thresholds[target])).astype(float)

    def false_match_pairs(self, target: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(seed_lo, seed_hi, group, cond)`` of every false match at ``target`` (the units of the
        FMR sign test, :func:`faceaudit.stats.primary.discordant_pvalue`)."""
        if self.imp is not None:
            h = self.imp.hits[target]
            a, b, cell = h.pair_arrays()
            return np.minimum(a, b), np.maximum(a, b), cell // self.imp.C, cell % self.imp.C
        imp = self.md.impostor
        m = imp.ok & (imp.score >= self.thresholds[target])
        a, b = imp.seed_a[m].astype(np.int64), imp.seed_b[m].astype(np.int64)
        return np.minimum(a, b), np.maximum(a, b), imp.group[m].astype(np.int64), imp.cond[m].astype(np.int64)


@dataclass
class GenuineRates:
    """The rates of one model that need no impostor pair: FNMR and GFNMR at each threshold, the FTE
    rate of faces and the mean genuine score, with ``n_genuine_all`` (every genuine pair).

    Parameters
    ----------
    fnmr, gfnmr : dict
        ``{target FMR: Ratio}``.
    fte : Ratio
        FTE rate of faces.
    gscore : Ratio
        Mean genuine score.
    n_genuine_all : Count
        Every genuine pair.

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> md = example_model_data()
    >>> g = genuine_rates(md, seed_weights(md.layout.S, 50, bootstrap_rng(0)), {0.1: 0.5})
    >>> isinstance(g, GenuineRates), int(g.n_genuine_all.point[-1, -1]) == len(md.genuine)
    (True, True)
    """

    fnmr: dict[float, Ratio]
    gfnmr: dict[float, Ratio]
    fte: Ratio
    gscore: Ratio
    n_genuine_all: Count


def genuine_rates(md: ModelData, W: np.ndarray, thresholds: dict[float, float]) -> GenuineRates:
    """Genuine-pair and face rates of one model at the given global thresholds (one seed per item:
    one matrix product per count).

    Parameters
    ----------
    md : ModelData
        The model's index-encoded pairs and faces (:func:`faceaudit.stats.data.prepare_model`).
    W : numpy.ndarray
        ``(n_boot, n_seeds)`` seed-bootstrap weights (:func:`faceaudit.stats.bootstrap.seed_weights`).
    thresholds : dict
        ``{target FMR: global threshold}``.

    Returns
    -------
    GenuineRates

    Examples
    --------
    >>> from faceaudit.stats.data import make_layout, prepare_model
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> faces = pd.DataFrame({"face_id": ["a0", "a1", "b0", "b1"], "seed": [1, 1, 2, 2], "group": "g",
    ...                       "edit_attr": ["none", "yaw", "none", "yaw"], "edit_level": [0.0, 1.0, 0.0, 1.0]})
    >>> pairs = pd.DataFrame({"pair_id": [0, 1], "face_a": ["a0", "b0"], "face_b": ["a1", "b1"], "kind": "genuine",
    ...                       "seed_a": [1, 2], "seed_b": [1, 2], "group": "g", "edit_attr": "yaw", "edit_level": 1.0})
    >>> scores = pd.DataFrame({"pair_id": [0, 1], "score": [0.9, 0.2], "status": "ok"})
    >>> status = pd.DataFrame({"face_id": faces["face_id"], "status": "ok"})
    >>> layout = make_layout(faces, ["g"])
    >>> md = prepare_model("m", pairs, scores, status, faces, layout)
    >>> g = genuine_rates(md, seed_weights(2, 50, bootstrap_rng(0)), {0.01: 0.5})
    >>> float(g.fnmr[0.01].rate()[-1, -1]), float(g.fte.rate()[-1, -1])
    (0.5, 0.0)
    """
    L, gen = md.layout, md.genuine
    g_ok = gen.ok.astype(float)
    g_den = single_seed_count(W, gen.seed_a, gen.group, gen.cond, g_ok, L, with_seeds=True)
    g_all = single_seed_count(W, gen.seed_a, gen.group, gen.cond, np.ones(len(gen)), L, with_seeds=True)
    g_fte = 1.0 - g_ok
    gscore = Ratio(single_seed_count(W, gen.seed_a, gen.group, gen.cond, np.where(gen.ok, gen.score, 0.0), L), g_den)
    fnmr, gfnmr = {}, {}
    for t, thr in thresholds.items():
        fnm = (gen.ok & (gen.score < thr)).astype(float)
        fnmr[t] = Ratio(single_seed_count(W, gen.seed_a, gen.group, gen.cond, fnm, L), g_den)
        gfnmr[t] = Ratio(single_seed_count(W, gen.seed_a, gen.group, gen.cond, fnm + g_fte, L), g_all)
    f_vals = md.face_fte.astype(float)
    fte = Ratio(single_seed_count(W, md.face_seed, md.face_group, md.face_cond, f_vals, L),
                single_seed_count(W, md.face_seed, md.face_group, md.face_cond, np.ones(len(f_vals)), L, with_seeds=True))
    return GenuineRates(fnmr, gfnmr, fte, gscore, g_all)


def compute_model_rates(md: ModelData, W: np.ndarray, targets: list[float],
                        thresholds: dict | None = None) -> ModelRates:
    """Every rate of one model, in memory: the global threshold at each target FMR (on the pooled
    impostor scores), then FNMR, GFNMR, FMR and FTE per (group + all, condition + all) cell with
    their bootstrap replicates (the reference computation the streamed one is tested against).

    Parameters
    ----------
    md : ModelData
        The model's index-encoded pairs and faces (:func:`faceaudit.stats.data.prepare_model`).
    W : numpy.ndarray
        ``(n_boot, n_seeds)`` seed-bootstrap weights shared by every model of the run.
    targets : list of float
        Target FMRs (the protocol's ``analysis.target_fmr``).
    thresholds : dict, optional
        ``{target FMR: threshold}`` given instead of set on the impostors (an operating point
        of :mod:`faceaudit.stats.operating_points`, whose key ``FIXED_KEY`` marks a fixed threshold;
        ``targets`` is then ignored).

    Returns
    -------
    ModelRates

    Raises
    ------
    ValueError
        No impostor comparison enrolled (no threshold exists).

    Examples
    --------
    >>> import numpy as np
    >>> from faceaudit.stats.simulate import SimSpec, simulate_run_tables
    >>> from faceaudit.stats.data import make_layout, prepare_model
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> groups = ["skin=light", "skin=dark"]
    >>> tb = simulate_run_tables(SimSpec(n_seeds=8, groups=tuple(groups), edits={"lighting": (-1.0, 1.0)},
    ...                                  gen_shift={"skin=dark": -0.2}), np.random.default_rng(0))
    >>> layout = make_layout(tb["faces"], groups)
    >>> md = prepare_model("sim", tb["pairs"], tb["scores"], tb["status"], tb["faces"], layout)
    >>> mr = compute_model_rates(md, seed_weights(layout.S, 50, bootstrap_rng(0)), [0.1])
    >>> round(mr.thresholds[0.1], 4)
    0.2301
    >>> fnmr = mr.fnmr[0.1].rate()[:, -1]  # per group, then all groups; pooled over conditions
    >>> bool(fnmr[1] > fnmr[0])  # the dark group's genuine scores were planted lower
    True
    """
    L = md.layout
    gen, imp = md.genuine, md.impostor
    if not imp.ok.any():
        raise ValueError(f"model {md.model}: no impostor comparisons (every impostor pair failed to enrol)")
    imp_scores = imp.score[imp.ok]
    all_scores = np.concatenate([imp_scores, gen.score[gen.ok]])
    if thresholds is None:
        thresholds = {t: T.threshold_at_fmr(imp_scores, t, candidates=all_scores) for t in targets}
    gr = genuine_rates(md, W, thresholds)

    i_den = pair_count(W, imp, imp.ok.astype(float), L, with_seeds=True)
    i_fte = pair_count(W, imp, (~imp.ok).astype(float), L).point
    fmr, gthr = {}, {}
    for t, thr in thresholds.items():
        fm = (imp.ok & (imp.score >= thr)).astype(float)
        fmr[t] = Ratio(pair_count(W, imp, fm, L), i_den)
        # Diagnostic: the threshold each group would need on its own impostors.
        gthr[t] = np.array([_group_threshold(md, g, t) if t > 0 else np.nan for g in range(L.G)] + [thr])

    dyad = DyadicDesign.from_pairs(imp.seed_a, imp.seed_b, L.S)
    return ModelRates(md, thresholds, gr.fnmr, gr.gfnmr, fmr, gr.fte, gr.gscore, gr.n_genuine_all, i_fte, gthr, dyad)


def genuine_by_set(md: ModelData) -> list[np.ndarray]:
    """Sorted compared genuine scores of each group, then of all groups.

    Parameters
    ----------
    md : ModelData
        The model's data.

    Returns
    -------
    list of numpy.ndarray
        ``G + 1`` sorted score arrays.

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> md = example_model_data()
    >>> sets = genuine_by_set(md)
    >>> len(sets) == md.layout.G + 1, len(sets[-1]) == sum(len(x) for x in sets[:-1])
    (True, True)
    >>> bool((np.diff(sets[-1]) >= 0).all())
    True
    """
    gen = md.genuine
    return [np.sort(gen.score[gen.ok & (gen.group == g)]) for g in range(md.layout.G)] + [np.sort(gen.score[gen.ok])]


def compute_model_rates_streamed(md: ModelData, source, W: np.ndarray, targets: list[float], far_points: list[float],
                                 thresholds: dict | None = None, **reduce_options) -> ModelRates:
    """:func:`compute_model_rates` with the impostor side reduced block by block from ``source``
    (an :class:`faceaudit.stats.impostors.ImpostorSource`); same numbers, memory bounded.

    Parameters
    ----------
    md : ModelData
        The model's data (``md.impostor`` is not read).
    source : ImpostorSource
        Where the impostor comparisons come from.
    W : numpy.ndarray
        Seed-bootstrap weights.
    targets : list of float
        Target FMRs.
    far_points : list of float
        FARs of the threshold-free TAR columns.
    thresholds : dict, optional
        Given thresholds, as in :func:`compute_model_rates`.
    **reduce_options
        Passed to :func:`faceaudit.stats.impostors.reduce_impostors`.

    Returns
    -------
    ModelRates

    Examples
    --------
    >>> import numpy as np
    >>> from faceaudit.stats.simulate import SimSpec, simulate_run_tables
    >>> from faceaudit.stats.data import make_layout, prepare_model
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> groups = ["skin=light", "skin=dark"]
    >>> tb = simulate_run_tables(SimSpec(n_seeds=8, groups=tuple(groups), edits={"lighting": (-1.0, 1.0)},
    ...                                  gen_shift={"skin=dark": -0.2}), np.random.default_rng(0))
    >>> layout = make_layout(tb["faces"], groups)
    >>> md = prepare_model("sim", tb["pairs"], tb["scores"], tb["status"], tb["faces"], layout)
    >>> from faceaudit.stats.impostors import ArraySource
    >>> W = seed_weights(layout.S, 50, bootstrap_rng(0))
    >>> imp = md.impostor
    >>> src = ArraySource(imp.seed_a, imp.seed_b, imp.group * layout.C + imp.cond, imp.score, imp.ok,
    ...                   layout.S, layout.G * layout.C)
    >>> streamed = compute_model_rates_streamed(md, src, W, [0.1], [0.1])
    >>> streamed.thresholds == compute_model_rates(md, W, [0.1]).thresholds
    True
    """
    from faceaudit.stats.impostors import group_threshold_streamed, reduce_impostors

    L = md.layout
    G, C, B = L.G, L.C, W.shape[0]
    gen = md.genuine
    gsets = genuine_by_set(md)
    if thresholds is not None:
        targets = [t for t in thresholds if t > 0]
        reduce_options = {**reduce_options, "given_thresholds": thresholds}
    st = reduce_impostors(source, G, C, W, list(targets), gsets, list(far_points), gen.score[gen.ok], **reduce_options)
    thresholds = dict(st.thresholds)
    gr = genuine_rates(md, W, thresholds)

    seeds = ((st.per_seed_ok @ st.aggregation()) > 0).sum(axis=0).reshape(G + 1, C + 1).astype(float)
    i_den = Count(_margins(st.n_ok.astype(float).reshape(G, C)), _margins(st.trial_boot.reshape(B, G, C)), seeds)
    i_fte = _margins(st.n_fte.astype(float).reshape(G, C))
    fmr, gthr = {}, {}
    for t, thr in thresholds.items():
        h = st.hits[t]
        fmr[t] = Ratio(Count(_margins(h.count.astype(float).reshape(G, C)), _margins(h.boot.reshape(B, G, C))), i_den)
        gthr[t] = np.array([group_threshold_streamed(st, gi, t, gsets[gi]) if t > 0 else np.nan
                            for gi in range(G)] + [thr])

    return ModelRates(md, thresholds, gr.fnmr, gr.gfnmr, fmr, gr.fte, gr.gscore, gr.n_genuine_all, i_fte, gthr, None, st, gsets)


def _group_threshold(md: ModelData, g: int, target: float) -> float:
    gen, imp = md.genuine, md.impostor
    im = imp.ok & (imp.group == g)
    gm = gen.ok & (gen.group == g)
    if not im.any():
        return float("nan")
    return T.threshold_at_fmr(imp.score[im], target, candidates=gen.score[gm])


def threshold_free(md: ModelData, far_points: list[float]) -> pd.DataFrame:
    """Per group (and all): ROC AUC, EER and TAR at each FAR on the group's own scores (point estimates).

    Parameters
    ----------
    md : ModelData
        The model's data.
    far_points : list of float
        FARs of the ``tar_at_far_*`` columns.

    Returns
    -------
    pandas.DataFrame
        One row per group, then ``all``.

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> md = example_model_data()
    >>> tf = threshold_free(md, [0.1])
    >>> tf.columns.tolist()
    ['group', 'auc', 'eer', 'eer_threshold', 'tar_at_far_1e-01']
    >>> tf["group"].iloc[-1], bool(tf["auc"].between(0, 1).all())
    ('all', True)
    """
    gen, imp = md.genuine, md.impostor
    rows = []
    for g, name in enumerate(md.layout.groups + [ALL]):
        gm = gen.ok & ((gen.group == g) if name != ALL else True)
        im = imp.ok & ((imp.group == g) if name != ALL else True)
        gs, is_ = gen.score[gm], imp.score[im]
        row = {"group": name}
        if len(gs) and len(is_):
            row["auc"] = T.roc_auc(gs, is_)
            row["eer"], row["eer_threshold"] = T.eer(gs, is_)
            for far in far_points:
                row[f"tar_at_far_{fmr_key(far)}"] = T.tar_at_far(gs, is_, far)
        rows.append(row)
    return pd.DataFrame(rows)


def fmr_cell_masks(mr: ModelRates):
    """``(g, c, mask)`` over impostor pairs for every (group + all, condition + all) cell.

    Parameters
    ----------
    mr : ModelRates
        One model's in-memory rates (``mr.md.impostor`` is read).

    Returns
    -------
    generator of tuple
        ``(g, c, mask)``, ``mask`` a boolean array over impostor pairs.

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> md = example_model_data()
    >>> mr = compute_model_rates(md, seed_weights(md.layout.S, 50, bootstrap_rng(0)), [0.1])
    >>> cells = list(fmr_cell_masks(mr))
    >>> len(cells) == (md.layout.G + 1) * (md.layout.C + 1), bool(cells[-1][2].all())
    (True, True)
    """
    L, imp = mr.md.layout, mr.md.impostor
    for g in range(L.G + 1):
        gm = (imp.group == g) if g < L.G else np.ones(len(imp), dtype=bool)
        for c in range(L.C + 1):
            yield g, c, (gm & (imp.cond == c)) if c < L.C else gm


def fmr_ci(mr: ModelRates, target: float, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-cell FMR, with a logit-scale interval from the dyadic-robust variance (not the bootstrap).

    Kept for the dyadic-variance tests; ``error_rates`` reports the Wilson interval on effective
    counts instead (:func:`fmr_variance`, :func:`faceaudit.stats.primary.wilson_effective`).

    The vertex bootstrap's product weight over-counts pair-level noise, and its percentile interval of
    a skewed small rate undercovered with 40 seeds (about 91% for 95%, tests/test_stats_dyadic.py).
    A rate's variance is ``V_D(hit - R ok) / n^2`` (delta method for a ratio of totals).

    Parameters
    ----------
    mr : ModelRates
        One model's rates.
    target : float
        Target FMR (a key of ``mr.thresholds``).
    level : float
        Confidence level.

    Returns
    -------
    tuple of numpy.ndarray
        ``(estimate, lo, hi)``, each ``(G+1, C+1)``.

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> md = example_model_data()
    >>> mr = compute_model_rates(md, seed_weights(md.layout.S, 50, bootstrap_rng(0)), [0.1])
    >>> est, lo, hi = fmr_ci(mr, 0.1, 0.9)
    >>> est.shape, bool(np.nanmin(hi - lo) > 0)
    ((3, 4), True)
    """
    if mr.imp is not None:
        from faceaudit.stats.impostors import fmr_ci_streamed

        return fmr_ci_streamed(mr.imp, target, level, mr.fmr[target].rate())
    L, imp = mr.md.layout, mr.md.impostor
    hit, ok = mr.false_match(target), imp.ok.astype(float)
    est = mr.fmr[target].rate()
    lo = np.full((L.G + 1, L.C + 1), np.nan)
    hi = np.full((L.G + 1, L.C + 1), np.nan)
    for g, c, mask in fmr_cell_masks(mr):
        u, e, n = rate_influence(hit, ok, mask)
        if n == 0:
            continue
        se = np.sqrt(mr.dyad.variance(u, mask & imp.ok)) / n
        lo[g, c], hi[g, c] = logit_interval(e / n, se, level)
    return est, lo, hi


def fmr_variance(mr: ModelRates, target: float) -> np.ndarray:
    """``(G+1, C+1)`` dyadic-robust variance of the FMR of every (group, condition) cell (NaN: no comparison).

    Parameters
    ----------
    mr : ModelRates
        One model's rates.
    target : float
        Target FMR (a key of ``mr.thresholds``).

    Returns
    -------
    numpy.ndarray
        ``(G+1, C+1)`` variances.

    Examples
    --------
    >>> import numpy as np
    >>> from faceaudit.stats.simulate import SimSpec, simulate_run_tables
    >>> from faceaudit.stats.data import make_layout, prepare_model
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> tb = simulate_run_tables(SimSpec(n_seeds=8, edits={"lighting": (-1.0, 1.0)}), np.random.default_rng(0))
    >>> layout = make_layout(tb["faces"], list(SimSpec().groups))
    >>> md = prepare_model("sim", tb["pairs"], tb["scores"], tb["status"], tb["faces"], layout)
    >>> mr = compute_model_rates(md, seed_weights(layout.S, 50, bootstrap_rng(0)), [0.1])
    >>> fmr_variance(mr, 0.1).shape
    (4, 4)
    """
    L = mr.md.layout
    var = np.full((L.G + 1, L.C + 1), np.nan)
    if mr.imp is not None:
        from faceaudit.stats.impostors import dyadic_terms

        d = dyadic_terms(mr.imp, target)
        for g in range(L.G + 1):
            for c in range(L.C + 1):
                j = g * (L.C + 1) + c
                if d.n[j] > 0:
                    var[g, c] = d.variance([(j, 1.0, d.e[j] / d.n[j])]) / d.n[j] ** 2
        return var
    imp = mr.md.impostor
    hit, ok = mr.false_match(target), imp.ok.astype(float)
    for g, c, mask in fmr_cell_masks(mr):
        u, e, n = rate_influence(hit, ok, mask)
        if n > 0:
            var[g, c] = mr.dyad.variance(u, mask & imp.ok) / n ** 2
    return var


def _wilson(ratio: Ratio, level: float, var: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rate and Wilson interval on effective counts (:func:`faceaudit.stats.primary.wilson_effective`);
    ``var``: the clustered variance of each rate (default: variance of the seed-bootstrap replicates)."""
    est = ratio.rate()
    if var is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN replicates of an empty cell
            var = np.nanvar(ratio.rate_boot(), axis=0, ddof=1)
    lo, hi = wilson_effective(ratio.num.point, ratio.den.point, var, level)
    return est, lo.reshape(est.shape), hi.reshape(est.shape)


def error_rate_table(mr: ModelRates, level: float, far_points: list[float]) -> pd.DataFrame:
    """The DESIGN ``error_rates`` rows of one model: per target FMR x (group + all) x (condition + all).

    Rows with ``edit_attr == "all"`` pool every edit condition (the headline per-group rates);
    the others are the same rates within one edit condition (intersectional breakdown).

    Parameters
    ----------
    mr : ModelRates
        One model's rates.
    level : float
        Confidence level of every interval (the protocol's ``analysis.ci_level``).
    far_points : list of float
        FARs of the threshold-free ``tar_at_far_*`` columns.

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> import numpy as np
    >>> from faceaudit.stats.simulate import SimSpec, simulate_run_tables
    >>> from faceaudit.stats.data import make_layout, prepare_model
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> groups = ["skin=light", "skin=dark"]
    >>> tb = simulate_run_tables(SimSpec(n_seeds=8, groups=tuple(groups), edits={"lighting": (-1.0, 1.0)},
    ...                                  gen_shift={"skin=dark": -0.2}), np.random.default_rng(0))
    >>> layout = make_layout(tb["faces"], groups)
    >>> md = prepare_model("sim", tb["pairs"], tb["scores"], tb["status"], tb["faces"], layout)
    >>> from faceaudit.stats.error_rates import compute_model_rates
    >>> mr = compute_model_rates(md, seed_weights(layout.S, 50, bootstrap_rng(0)), [0.1])
    >>> er = error_rate_table(mr, 0.9, [0.1])
    >>> pooled = er[er["edit_attr"] == "all"].set_index("group")
    >>> pooled.loc["all", ["n_genuine", "n_impostor"]].tolist()
    [32, 168]
    >>> bool((pooled["fnmr_lo"] <= pooled["fnmr"]).all()), float(er["ci_level"].iloc[0])
    (True, 0.9)
    """
    L = mr.md.layout
    groups = L.groups + [ALL]
    conds = L.conditions + [(ALL, float("nan"))]
    if mr.imp is not None:
        from faceaudit.stats.impostors import threshold_free_streamed

        tf = threshold_free_streamed(mr.imp, L.groups, mr.gen_by_set, far_points, fmr_key).set_index("group")
    else:
        tf = threshold_free(mr.md, far_points).set_index("group")
    fte_est, fte_lo, fte_hi = _wilson(mr.fte, level)
    n_imp = mr.fmr[next(iter(mr.fmr))].den.point
    rows = []
    for t in mr.thresholds:
        fmr_e, fmr_lo, fmr_hi = _wilson(mr.fmr[t], level, fmr_variance(mr, t))
        fnmr_e, fnmr_lo, fnmr_hi = _wilson(mr.fnmr[t], level)
        gf_e, gf_lo, gf_hi = _wilson(mr.gfnmr[t], level)
        fm = mr.fmr[t].num.point
        fnm = mr.fnmr[t].num.point
        for gi, g in enumerate(groups):
            for ci, (attr, lv) in enumerate(conds):
                n_gen_all = mr.n_genuine_all.point[gi, ci]
                n_faces = mr.fte.den.point[gi, ci]
                if n_gen_all == 0 and n_imp[gi, ci] == 0 and mr.n_impostor_fte[gi, ci] == 0 and n_faces == 0:
                    continue
                row = {
                    "model": mr.md.model, "group": g, "edit_attr": attr,
                    "edit_level": lv if attr not in ("none", ALL) else (0.0 if attr == "none" else float("nan")),
                    "condition": ALL if attr == ALL else (("none" if attr == "none" else f"{attr}={lv:+g}")),
                    "threshold": mr.thresholds[t], "target_fmr": t,
                    "n_genuine": int(mr.fnmr[t].den.point[gi, ci]), "n_impostor": int(n_imp[gi, ci]),
                    "fmr": fmr_e[gi, ci], "fmr_lo": fmr_lo[gi, ci], "fmr_hi": fmr_hi[gi, ci],
                    "fnmr": fnmr_e[gi, ci], "fnmr_lo": fnmr_lo[gi, ci], "fnmr_hi": fnmr_hi[gi, ci],
                    "fte_rate": fte_est[gi, ci], "fte_lo": fte_lo[gi, ci], "fte_hi": fte_hi[gi, ci],
                    "gfnmr": gf_e[gi, ci], "gfnmr_lo": gf_lo[gi, ci], "gfnmr_hi": gf_hi[gi, ci],
                    "n_false_match": int(fm[gi, ci]), "n_false_non_match": int(fnm[gi, ci]),
                    "n_genuine_fte": int(n_gen_all - mr.fnmr[t].den.point[gi, ci]),
                    "n_impostor_fte": int(mr.n_impostor_fte[gi, ci]),
                    "n_faces": int(n_faces),
                    "n_seeds": int(max(mr.fnmr[t].den.seeds[gi, ci], mr.fmr[t].den.seeds[gi, ci])),
                    "ci_level": level, "ci_method": ER_CI_METHOD,
                }
                if attr == ALL:
                    row["group_threshold"] = mr.group_thresholds[t][gi]
                    gm = mr.md.genuine.ok & ((mr.md.genuine.group == gi) if g != ALL else True)
                    row["fnmr_at_group_threshold"] = T.fnmr_at(mr.md.genuine.score[gm], row["group_threshold"])
                    if g in tf.index:
                        for col, val in tf.loc[g].items():
                            row[col] = val
                rows.append(row)
    return pd.DataFrame(rows)
