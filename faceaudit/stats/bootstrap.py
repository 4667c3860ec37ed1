"""Seed-clustered bootstrap, vectorised.

Every face belongs to one synthetic identity ("seed") and pairs share faces, so pairs are not
independent; the unit of resampling is the seed. One replicate draws ``S`` seeds with replacement
from the ``S`` seeds of the run; ``W[b, s]`` is how often seed ``s`` was drawn in replicate ``b``
(a multinomial(S, 1/S) row). All statistics of a run use the *same* ``W`` so that contrasts between
groups (and models) are paired: a seed drawn twice counts twice in every group it appears in.

Genuine pairs involve one seed: a replicate's count is ``W @ per_seed_counts`` (one matrix product).

Impostor pairs involve two seeds ``a != b``. Resampling seeds and keeping every impostor pair whose
two seeds were both drawn (with multiplicity) gives a pair the weight ``W[b, a] * W[b, b']``: the
"dyadic" (vertex) bootstrap for exchangeable arrays (Davezies, D'Haultfoeuille & Guyonvarch 2021;
Owen's pigeonhole bootstrap). Its first-order expansion gives the right variance for a mean over
all pairs of distinct seeds, ``4 sigma_1^2 / S`` (sigma_1^2 = variance of a seed's mean over the pairs
it is in). The simpler rules are wrong by a constant factor: assigning a pair to ``seed_a`` only, or
splitting its weight half/half between the two seeds, give ``~1.3 sigma_1^2/S`` and ``sigma_1^2/S``,
i.e. CIs about half as wide as they should be (tests/test_stats_sim.py checks the coverage). A
replicate's impostor count is the quadratic form ``w_b' U w_b`` with ``U[a, b']`` the count over
pairs of seeds ``(a, b')``; :func:`pair_quadform` evaluates it for all replicates at once.
When the seed effects cancel (a paired FMR contrast under no effect) the product weight counts the
pair-level noise about three times, so the reported FMR intervals use the dyadic-robust variance of
:mod:`faceaudit.stats.dyadic` instead; these replicates still feed the fairness summaries.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["CI_METHOD", "seed_weights", "bootstrap_rng", "pair_quadform", "percentile_ci", "resolved_pvalue",
           "bootstrap_pvalue"]

#: how the CIs are computed (written next to every interval)
CI_METHOD = "seed-cluster bootstrap, percentile"


def seed_weights(n_seeds: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, n_seeds)`` float64 matrix of multinomial(n_seeds, 1/n_seeds) draw counts.

    Parameters
    ----------
    n_seeds : int
        Seeds (clusters) of the run.
    n_boot : int
        Bootstrap replicates.
    rng : numpy.random.Generator
        The analysis RNG (:func:`bootstrap_rng`).

    Returns
    -------
    numpy.ndarray
        ``W[b, s]``: how often seed ``s`` was drawn in replicate ``b`` (each row sums to ``n_seeds``).

    Examples
    --------
    >>> W = seed_weights(5, 3, bootstrap_rng(0))
    >>> W.shape, W.sum(axis=1).tolist()
    ((3, 5), [5.0, 5.0, 5.0])
    """
    if n_seeds < 1:
        raise ValueError("need at least one seed")
    w = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=n_boot)
    return w.astype(np.float64)


def bootstrap_rng(protocol_seed: int) -> np.random.Generator:
    """The analysis RNG: derived from the protocol's master seed, separate from the generator's.

    Parameters
    ----------
    protocol_seed : int
        The protocol's ``seed``.

    Returns
    -------
    numpy.random.Generator

    Examples
    --------
    >>> a, b = bootstrap_rng(7).integers(0, 100, 3), bootstrap_rng(7).integers(0, 100, 3)
    >>> bool((a == b).all())
    True
    """
    return np.random.default_rng([int(protocol_seed), 0x5EEDB007])


def pair_quadform(W: np.ndarray, a: np.ndarray, b: np.ndarray, counts: np.ndarray, n_seeds: int) -> np.ndarray:
    """``sum_p W[:, a_p] * W[:, b_p] * counts_p`` for every replicate (a ``(n_boot,)`` vector).

    ``a``/``b`` are seed indices (``a != b``), ``counts`` the number of pairs (or errors) for that seed
    pair. Duplicated seed pairs are summed first. Two evaluation paths, same result:
    - sparse (few distinct seed pairs, e.g. false matches at a low FMR): gather columns and reduce,
      cost ``n_boot * n_pairs``;
    - dense (most seed pairs present, e.g. the impostor trial counts): ``((W @ U) * W).sum(1)`` with
      ``U`` the ``S x S`` count matrix, one BLAS matrix product (much faster per flop than gathers).

    Parameters
    ----------
    W : numpy.ndarray
        ``(n_boot, n_seeds)`` seed weights (:func:`seed_weights`).
    a, b : numpy.ndarray
        Seed indices of each pair.
    counts : numpy.ndarray
        Pairs (or errors) per seed pair.
    n_seeds : int
        Number of seeds.

    Returns
    -------
    numpy.ndarray
        ``(n_boot,)`` replicate counts.

    Examples
    --------
    >>> W = np.array([[1.0, 1.0, 1.0], [2.0, 0.0, 1.0]])
    >>> pair_quadform(W, np.array([0, 0, 1]), np.array([1, 2, 2]), np.ones(3), 3).tolist()
    [3.0, 2.0]
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.float64)
    n_boot = W.shape[0]
    if len(a) == 0:
        return np.zeros(n_boot)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = lo * n_seeds + hi
    uniq, inv = np.unique(key, return_inverse=True)
    c = np.bincount(inv, weights=counts, minlength=len(uniq))
    keep = c != 0
    uniq, c = uniq[keep], c[keep]
    if len(uniq) == 0:
        return np.zeros(n_boot)
    ua, ub = uniq // n_seeds, uniq % n_seeds
    present = np.union1d(ua, ub)
    m = len(present)
    if len(uniq) == m * (m - 1) // 2 and np.all(c == c[0]):
        # Every pair of distinct present seeds, each with the same count (the usual impostor design:
        # all pairs of seeds within a condition): sum_{a<b} w_a w_b = ((sum w)^2 - sum w^2) / 2.
        Wp = W[:, present]
        return c[0] * (Wp.sum(axis=1) ** 2 - (Wp * Wp).sum(axis=1)) / 2
    if len(uniq) * 8 > n_seeds * n_seeds // 4 or len(uniq) > 200_000:
        # Dense path. U is upper triangular, so each unordered pair is counted once.
        U = np.zeros((n_seeds, n_seeds))
        U[ua, ub] = c
        return np.einsum("bs,bs->b", W @ U, W)
    out = np.zeros(n_boot)
    # Chunk so the (n_boot x chunk) temporary stays ~32 MB.
    step = max(1, 4_000_000 // max(n_boot, 1))
    for i in range(0, len(uniq), step):
        sl = slice(i, i + step)
        out += (W[:, ua[sl]] * W[:, ub[sl]]) @ c[sl]
    return out


def percentile_ci(reps: np.ndarray, level: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of bootstrap replicates; NaN replicates (undefined ratios) are ignored.

    Parameters
    ----------
    reps : numpy.ndarray
        Replicates along ``axis``.
    level : float
        Confidence level (the protocol's ``analysis.ci_level``).
    axis : int
        Axis of the replicates.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Lower and upper ends (NaN where every replicate is NaN).

    Examples
    --------
    >>> lo, hi = percentile_ci(np.arange(101.0), 0.9)
    >>> round(float(lo), 6), round(float(hi), 6)
    (5.0, 95.0)
    """
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    # Cells without data give all-NaN columns; their interval is NaN, which is the right answer.
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(reps, q, axis=axis)
    return lo, hi


def resolved_pvalue(reps: np.ndarray, est: float, null: float, log: bool = False) -> float:
    """Two-sided p-value of one contrast from its bootstrap replicates, resolved below 2/(B+1).

    Where some replicates fall on the null's side the percentile-inversion p-value
    (:func:`bootstrap_pvalue`) is used. Where none do, that p-value is stuck at its floor
    ``2/(B+1)`` (0.002 for B = 1000): after a Holm correction over a run's ~170 contrasts the floor
    alone gives p_adjusted ~0.34, so an effect whose CI is far from the null could never be called
    significant. There the p-value comes from the normal approximation with the bootstrap SE
    (``2 * Phi(-|est - null| / se*)``, on the log scale for ratios), capped at the floor. Both rules
    keep "p < 1 - level iff the CI excludes the null" for any level with 1 - level >= 2/(B+1).

    Parameters
    ----------
    reps : numpy.ndarray
        Replicates of the contrast (NaN ignored).
    est : float
        The point estimate.
    null : float
        The value of no effect (0 for differences, 1 for ratios).
    log : bool
        Ratios: the normal approximation on the log scale.

    Returns
    -------
    float

    Examples
    --------
    >>> reps = np.random.default_rng(0).normal(0.0, 1.0, 999)
    >>> 0.5 < resolved_pvalue(reps, 0.0, 0.0) <= 1.0  # replicates centred on the null
    True
    >>> resolved_pvalue(reps + 10, 10.0, 0.0) < 2 / 1000
    True
    """
    from scipy.stats import norm

    reps = np.asarray(reps, dtype=float)
    reps = reps[~np.isnan(reps)]
    if len(reps) == 0:
        return float("nan")
    floor_p = float(bootstrap_pvalue(reps, null))
    if min((reps <= null).sum(), (reps >= null).sum()) > 0:
        return floor_p
    if log:
        if est <= 0 or null <= 0 or np.any(reps <= 0):
            return floor_p
        dist, se = abs(np.log(est) - np.log(null)), np.std(np.log(reps), ddof=1)
    else:
        dist, se = abs(est - null), np.std(reps, ddof=1)
    if not np.isfinite(se) or se <= 0:
        return floor_p
    return float(min(floor_p, 2 * norm.sf(dist / se)))


def bootstrap_pvalue(reps: np.ndarray, null: float, axis: int = 0) -> np.ndarray:
    """Two-sided p-value from inverting the percentile interval.

    ``p = min(1, 2 * min(#(theta* <= null) + 1, #(theta* >= null) + 1) / (B + 1))``: the smallest
    ``1 - level`` at which the equal-tailed percentile interval excludes ``null``. It is therefore
    consistent with the reported CI (p < 0.05 exactly when the 95% interval excludes the null, up to
    the +1 that keeps p away from 0 with a finite number of replicates).

    Parameters
    ----------
    reps : numpy.ndarray
        Replicates along ``axis`` (NaN ignored).
    null : float
        The value of no effect.
    axis : int
        Axis of the replicates.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> float(bootstrap_pvalue(np.array([1.0, 2.0, 3.0]), 0.0))
    0.5
    """
    reps = np.asarray(reps, dtype=float)
    valid = ~np.isnan(reps)
    n = valid.sum(axis=axis)
    le = ((reps <= null) & valid).sum(axis=axis)
    ge = ((reps >= null) & valid).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = 2 * (np.minimum(le, ge) + 1) / (n + 1)
    return np.minimum(p, 1.0)
