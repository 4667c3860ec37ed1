"""DET curves per group with seed-clustered bootstrap bands (docs/statistics.md, "DET curves with bands").

A DET curve gives the FNMR a model reaches at each FMR. ``results/det_bands.parquet`` tabulates it at
a grid of FMR values (1, 2 and 5 per decade, down to one impostor pair of the group) with a pointwise
percentile band from the seed-cluster bootstrap the rest of the analysis uses:

- the centre at grid value ``f`` is the FNMR at the threshold set at FMR ``f`` on the group's own
  impostors (:func:`faceaudit.stats.thresholds.threshold_at_fmr`): ``FNMR = #{genuine <= c_f} / N_gen``
  with ``c_f`` the largest impostor score whose exceedance share is above ``f``. It is the point of
  ``sklearn.metrics.roc_curve`` (``drop_intermediate=False``) at the smallest threshold with
  ``fpr <= f`` (tests/test_stats_det.py checks it);
- replicate ``b`` reweights every genuine pair by ``W[b, seed]`` and every impostor pair by
  ``W[b, seed_a] * W[b, seed_b]`` (the dyadic "vertex" bootstrap of :mod:`faceaudit.stats.bootstrap`),
  sets its own threshold at FMR ``f`` on the reweighted impostors and takes the reweighted FNMR there;
  the band is the percentile interval of those FNMRs. Both the threshold and the FNMR vary, so the
  band is the uncertainty of the curve itself (FNMR at a *given* FMR), not of FNMR at a fixed threshold.

A band is pointwise (each FMR value on its own), not simultaneous over the curve.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from faceaudit.stats.bootstrap import percentile_ci

__all__ = ["DET_BAND_COLUMNS", "DET_CI_METHOD", "DET_MAX_BOOT", "DET_MAX_PAIRS", "fmr_grid", "fnmr_at_fmr", "det_band",
           "det_band_table"]

#: columns of results/det_bands.parquet
DET_BAND_COLUMNS = ["model", "group", "fmr_grid", "threshold", "fmr", "fnmr", "fnmr_lo", "fnmr_hi", "n_genuine",
                    "n_impostor", "n_boot", "ci_level", "ci_method"]
DET_CI_METHOD = ("seed-cluster bootstrap percentile, pointwise (genuine pairs weighted by their seed's draw count, "
                 "impostor pairs by the product of their two seeds'; threshold re-set at the FMR in every replicate)")
#: the most bootstrap replicates a band uses (the first rows of the run's weight matrix): the band's
#: percentiles need a few hundred, and each replicate costs a pass over every impostor pair
DET_MAX_BOOT = 200
#: the most impostor comparisons of a model collected from an impostor source (a run whose impostors are
#: scored from the embeddings in blocks, ``pairs.impostor_sample``) to draw its bands; above it the
#: model gets no band rather than unbounded memory (5 arrays of this length)
DET_MAX_PAIRS = 20_000_000
#: replicates evaluated at once (memory: this many x impostor pairs of one group, float64)
_CHUNK_PAIRS = 4_000_000


def fmr_grid(n_impostor: int, lowest: float = 1e-6) -> np.ndarray:
    """FMR values of the DET table: 5, 2 and 1 per decade from 0.5 down to ``max(1 / n_impostor, lowest)``.

    FMR 1 is left out: every threshold at or below the lowest impostor score attains it, so it names
    no point of the curve.

    Parameters
    ----------
    n_impostor : int
        Impostor pairs of the group (an FMR below one pair's share cannot be resolved).
    lowest : float
        The smallest FMR ever tabulated.

    Returns
    -------
    numpy.ndarray
        Descending grid values.

    Examples
    --------
    >>> fmr_grid(600).tolist()
    [0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002]
    """
    floor = max(1.0 / max(int(n_impostor), 1), lowest)
    out = [m * 10.0 ** e for e in range(0, -13, -1) for m in (5, 2, 1) if m * 10.0 ** e < 1.0]
    return np.array([v for v in out if v >= floor * (1 - 1e-12)], dtype=float)


def _weighted_fnmr_at_fmr(gen_sorted: np.ndarray, gen_w: np.ndarray, imp_sorted: np.ndarray, imp_w: np.ndarray,
                          grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FNMR at each grid FMR for a batch of weightings (columns of ``gen_w``/``imp_w``, rows in ascending
    score order). Returns ``(fnmr, critical value c)``, each ``(weightings, len(grid))``.

    ``top[j]`` = the weight of the ``j + 1`` highest impostor scores; the critical value at FMR ``f`` is
    the score at the first ``j`` whose share ``top[j] / total`` exceeds ``f``. Ties need no care: every
    position of a tied block has the same value, and the first position past the block where the share
    exceeds ``f`` lies in the block itself."""
    P, rows = imp_w.shape
    top = np.cumsum(imp_w[::-1], axis=0)  # (P, rows), ascending down each column
    tot_imp = top[-1] if P else np.zeros(rows)
    gen_cum = np.concatenate([np.zeros((1, rows)), np.cumsum(gen_w, axis=0)], axis=0)
    tot_gen = gen_cum[-1]
    crit = np.full((rows, len(grid)), np.nan)
    fnmr = np.full((rows, len(grid)), np.nan)
    for r in range(rows):
        if not (tot_imp[r] > 0 and tot_gen[r] > 0):  # a replicate that drew no pair: no curve (percentiles skip it)
            continue
        share = top[:, r] / tot_imp[r]  # the same division threshold_at_fmr makes (exact for unit weights)
        j = np.searchsorted(share, grid, side="right")  # first position whose share is > f
        i = P - 1 - j  # its index in ascending order; -1: none (f >= 1)
        crit[r] = np.where(i >= 0, imp_sorted[np.clip(i, 0, None)], -np.inf)
        below = np.searchsorted(gen_sorted, crit[r], side="right")  # genuine <= c are rejected
        fnmr[r] = gen_cum[below, r] / tot_gen[r]
    return fnmr, crit


def fnmr_at_fmr(genuine, impostor, grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The DET curve at grid FMRs on unweighted scores: ``(FNMR, threshold, attained FMR)``.

    Parameters
    ----------
    genuine, impostor : array_like
        Scores (higher = more similar; a comparison matches when ``score >= threshold``).
    grid : array_like
        FMR values.

    Returns
    -------
    fnmr, threshold, fmr : numpy.ndarray
        At each grid value: the FNMR at the threshold set at that FMR on ``impostor`` (the threshold
        :func:`faceaudit.stats.thresholds.threshold_at_fmr` returns with every score as candidate;
        computed here with one sort for the whole grid), the threshold, and the FMR it attains (at
        most the grid value).

    Examples
    --------
    >>> fnmr, thr, fmr = fnmr_at_fmr([0.5, 0.7, 0.9, 0.95], [0.1, 0.2, 0.3, 0.6], [0.5, 0.25])
    >>> fnmr.tolist(), thr.tolist(), fmr.tolist()
    ([0.0, 0.0], [0.3, 0.5], [0.5, 0.25])
    """
    gs = np.sort(np.asarray(genuine, dtype=float))
    is_ = np.sort(np.asarray(impostor, dtype=float))
    grid = np.asarray(grid, dtype=float)
    # the critical impostor value c of each grid FMR, by the replicates' own code with unit weights
    _, crit = _weighted_fnmr_at_fmr(gs, np.ones((len(gs), 1)), is_, np.ones((len(is_), 1)), grid)
    # threshold_at_fmr's threshold: the smallest candidate score above c (inf when none)
    cand = np.unique(np.concatenate([gs, is_]))
    k = np.searchsorted(cand, crit[0], side="right")
    thr = np.where(k < len(cand), cand[np.minimum(k, len(cand) - 1)], np.inf)
    fnmr = np.searchsorted(gs, thr, side="left") / len(gs) if len(gs) else np.full(len(grid), np.nan)
    fmr = (len(is_) - np.searchsorted(is_, thr, side="left")) / len(is_)
    return fnmr, thr, fmr


def det_band(gen_score, gen_seed, imp_score, imp_seed_a, imp_seed_b: Optional[np.ndarray], W: np.ndarray,
             grid, level: float) -> pd.DataFrame:
    """FNMR at each grid FMR with a pointwise cluster-bootstrap percentile band.

    Parameters
    ----------
    gen_score, gen_seed : array_like
        Genuine scores and their cluster (seed) indices, columns of ``W``.
    imp_score, imp_seed_a : array_like
        Impostor scores and the cluster index of their first face.
    imp_seed_b : array_like or None
        The second face's cluster: an impostor pair's weight is ``W[b, a] * W[b, b']``. ``None``: the
        pair's weight is ``W[b, a]`` alone (each impostor pair its own cluster when ``imp_seed_a``
        numbers them; the unclustered bootstrap of the tests).
    W : numpy.ndarray
        ``(n_boot, n_clusters)`` draw counts (:func:`faceaudit.stats.bootstrap.seed_weights`).
    grid : array_like
        FMR values (:func:`fmr_grid`).
    level : float
        Confidence level of the band.

    Returns
    -------
    pandas.DataFrame
        Columns ``fmr_grid``, ``threshold``, ``fmr`` (attained on all the data), ``fnmr``, ``fnmr_lo``,
        ``fnmr_hi``, ``n_genuine``, ``n_impostor``, ``n_boot``.

    Examples
    --------
    >>> from faceaudit.stats.bootstrap import seed_weights, bootstrap_rng
    >>> rng = np.random.default_rng(0)
    >>> S = 40
    >>> gs, ga = rng.normal(2, 1, 4 * S), np.repeat(np.arange(S), 4)
    >>> a, b = np.triu_indices(S, 1)
    >>> band = det_band(gs, ga, rng.normal(0, 1, len(a)), a, b, seed_weights(S, 200, bootstrap_rng(0)),
    ...                 [0.1, 0.01], 0.95)
    >>> bool(((band["fnmr_lo"] <= band["fnmr"]) & (band["fnmr"] <= band["fnmr_hi"])).all())
    True
    """
    gen = np.asarray(gen_score, dtype=float)
    imp = np.asarray(imp_score, dtype=float)
    grid = np.asarray(grid, dtype=float)
    fnmr, thr, fmr = fnmr_at_fmr(gen, imp, grid)
    go = np.argsort(gen, kind="stable")
    io = np.argsort(imp, kind="stable")
    gs, is_ = gen[go], imp[io]
    ga = np.asarray(gen_seed, dtype=np.int64)[go]
    ia = np.asarray(imp_seed_a, dtype=np.int64)[io]
    ib = None if imp_seed_b is None else np.asarray(imp_seed_b, dtype=np.int64)[io]
    B = W.shape[0]
    reps = np.empty((B, len(grid)))
    step = max(1, _CHUNK_PAIRS // max(len(imp), 1))
    Wt = np.ascontiguousarray(W.T)  # (clusters, replicates): row gathers are contiguous, ~3x faster
    for s in range(0, B, step):
        Wc = Wt[:, s : s + step]
        iw = Wc[ia] if ib is None else Wc[ia] * Wc[ib]  # (pairs, replicates)
        reps[s : s + step], _ = _weighted_fnmr_at_fmr(gs, Wc[ga], is_, iw, grid)
    lo, hi = percentile_ci(reps, level, axis=0)
    return pd.DataFrame({"fmr_grid": grid, "threshold": thr, "fmr": fmr, "fnmr": fnmr, "fnmr_lo": lo, "fnmr_hi": hi,
                         "n_genuine": len(gen), "n_impostor": len(imp), "n_boot": B})


def _impostors_from_source(source, n_conditions: int, max_pairs: int):
    """``(seed_a, seed_b, group, score)`` of every enrolled impostor comparison of a block source, or None
    when there are more than ``max_pairs`` of them."""
    parts, n = [], 0
    for _, _, blk in source.blocks():
        ok = np.asarray(blk.ok, dtype=bool)
        n += int(ok.sum())
        if n > max_pairs:
            return None
        parts.append((blk.seed_a[ok], blk.seed_b[ok], np.asarray(blk.cell)[ok] // n_conditions, blk.score[ok]))
    if not parts:
        return None
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))


def det_band_table(md, W: np.ndarray, level: float, max_boot: int = DET_MAX_BOOT, source=None,
                   max_pairs: int = DET_MAX_PAIRS) -> pd.DataFrame:
    """``results/det_bands.parquet`` rows of one model: every group with enrolled genuine and impostor
    comparisons (the pooled curve is in ``results/roc.parquet``; a band for it would double the cost).

    Parameters
    ----------
    md : ModelData
        The model's data (impostor scores in memory: ``md.impostor``).
    W : numpy.ndarray
        The run's seed weights; the first ``max_boot`` replicates are used.
    level : float
        Confidence level of the bands.
    max_boot : int
        The most replicates used (:data:`DET_MAX_BOOT`).
    source : ImpostorSource, optional
        Where the impostor comparisons are when ``md.impostor`` holds none (scored from the embeddings
        in blocks): collected from it, up to ``max_pairs`` (else no row).
    max_pairs : int
        See ``source`` (:data:`DET_MAX_PAIRS`).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`DET_BAND_COLUMNS`.

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> from faceaudit.stats.bootstrap import seed_weights, bootstrap_rng
    >>> md = example_model_data()
    >>> t = det_band_table(md, seed_weights(md.layout.S, 100, bootstrap_rng(0)), 0.95)
    >>> t["group"].unique().tolist(), int(t["n_boot"].iloc[0])
    (['skin=light', 'skin=dark'], 100)
    """
    Wd = W[: max(1, min(max_boot, W.shape[0]))]
    gen, imp = md.genuine, md.impostor
    ok = imp.ok
    arrays = (imp.seed_a[ok], imp.seed_b[ok], imp.group[ok], imp.score[ok])
    if not ok.any() and source is not None:
        arrays = _impostors_from_source(source, md.layout.C, max_pairs)
    parts = []
    for g, name in enumerate(md.layout.groups if arrays is not None else []):
        gm = gen.ok & (gen.group == g)
        im = arrays[2] == g
        if not gm.any() or not im.any():
            continue
        band = det_band(gen.score[gm], gen.seed_a[gm], arrays[3][im], arrays[0][im], arrays[1][im], Wd,
                        fmr_grid(int(im.sum())), level)
        parts.append(band.assign(model=md.model, group=name, ci_level=level, ci_method=DET_CI_METHOD))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in DET_BAND_COLUMNS})
    return pd.concat(parts, ignore_index=True)[DET_BAND_COLUMNS]
