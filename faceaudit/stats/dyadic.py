"""Dyadic-robust variance for rates over impostor pairs (FMR), and the normal intervals built on it.

An impostor pair joins two seeds, so impostor outcomes form a jointly exchangeable array indexed by
unordered seed pairs ("dyads"). For a total ``sum_p psi_p`` of (centred) pair contributions, with
``E_d`` the sum over the pairs of dyad ``d`` (one seed pair can occur in several groups and edit
conditions; those pairs are correlated beyond their seeds, so they are summed first) and
``T_s = sum_{d contains s} E_d``, the dyadic-robust variance (Fafchamps & Gubert 2007; Cameron &
Miller 2014; Aronow, Samii & Assenova 2015) is

    V_D = sum_{d, d' sharing at least one seed} E_d E_d' = sum_s T_s^2 - sum_d E_d^2.

By the Hoeffding decomposition of a mean over all pairs of ``n`` seeds (``h1`` = a seed's projection,
``r`` = the pair-level residual), ``Var = 4 Var(h1)/n + 2 Var(r)/(n(n-1))``. ``V_D`` estimates both
parts with their own weights, so it is right when seed effects dominate (a per-group FMR) *and* when
they cancel (a paired FMR difference under no effect: a degenerate U-statistic, where the vertex
bootstrap's pair weight ``W_a W_b`` counts the pair-level part about three times).

Two finite-sample details, both derived for a complete design (every pair of ``n`` seeds, rates
centred at their estimate):
- centring costs degrees of freedom: ``E[V_D] = (n-2)(n-3)/(n(n-1)) * Var`` exactly in both pure
  cases (only seed effects; only pair noise), so ``V_D`` is multiplied by ``n(n-1)/((n-2)(n-3))``
  (about 1.11 at 40 seeds; ``tests/test_stats_dyadic.py`` checks it is unbiased);
- ``V_D`` can be negative (its cross-dyad part estimates ``Var(h1) >= 0`` with noise). For an
  exchangeable array two dyads sharing a seed have covariance ``Var(h1) >= 0``, so the variance is at
  least the independent-dyads value ``sum_d E_d^2``; that is the floor. It matters when seed effects
  are (nearly) absent: ``V_D`` is then unbiased but noisy (its seed part is estimated from ``n``
  seeds), and the floor keeps a noisy-low estimate from giving a too-narrow interval, at the price of
  an upward bias (about +20% of the variance, +10% of the width, with 30-40 seeds and no seed effect;
  measured null coverage of ``fmr_diff`` 97%).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

__all__ = ["DYADIC_METHOD", "small_sample_factor", "DyadicDesign", "rate_influence", "normal_interval",
           "logit_interval"]

#: written next to intervals computed here
DYADIC_METHOD = "dyadic-robust (seed-pair) variance, normal"


def small_sample_factor(n_seeds: int) -> float:
    """``n(n-1)/((n-2)(n-3))``: makes the centred ``V_D`` unbiased in a complete design; NaN below 4 seeds.

    Parameters
    ----------
    n_seeds : int
        Seeds taking part in the pairs.

    Returns
    -------
    float

    Examples
    --------
    >>> small_sample_factor(6), round(small_sample_factor(40), 4), small_sample_factor(3)
    (2.5, 1.1095, nan)
    """
    n = float(n_seeds)
    return n * (n - 1) / ((n - 2) * (n - 3)) if n >= 4 else float("nan")


@dataclass
class DyadicDesign:
    """The seed pairs of a model's impostor pairs, indexed once (``np.unique``) and reused per cell.

    Parameters
    ----------
    n_seeds : int
        Seeds of the run.
    dyad : numpy.ndarray
        Per impostor pair: its dyad (unordered seed pair) index.
    lo, hi : numpy.ndarray
        Per dyad: the smaller and larger seed index.

    Examples
    --------
    >>> d = DyadicDesign.from_pairs([0, 1, 2, 0], [1, 0, 3, 2], n_seeds=4)
    >>> d.dyad.tolist(), d.lo.tolist(), d.hi.tolist()  # (0, 1) and (1, 0) are one dyad
    ([0, 0, 2, 1], [0, 0, 2], [1, 2, 3])
    >>> psi = np.array([1.0, -1.0, 0.5, -0.5])
    >>> d.variance(psi, np.ones(4, dtype=bool)) >= 0
    True
    """

    n_seeds: int
    dyad: np.ndarray  # (P,) dyad index of each impostor pair
    lo: np.ndarray  # (D,) smaller seed index of each dyad
    hi: np.ndarray  # (D,) larger seed index of each dyad

    @classmethod
    def from_pairs(cls, seed_a: np.ndarray, seed_b: np.ndarray, n_seeds: int) -> "DyadicDesign":
        a = np.asarray(seed_a, dtype=np.int64)
        b = np.asarray(seed_b, dtype=np.int64)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        # Unordered: (a, b) in one group and (b, a) in another are the same two identities.
        uniq, dyad = np.unique(lo * n_seeds + hi, return_inverse=True)
        return cls(n_seeds, dyad.ravel(), uniq // n_seeds, uniq % n_seeds)

    def variance(self, psi: np.ndarray, mask: np.ndarray, floor: bool = True) -> float:
        """Variance of ``sum(psi[mask])`` (``psi`` already centred), corrected and floored (module doc).

        ``floor=False`` (tests only) returns the corrected ``V_D`` itself, unbiased but possibly negative.
        """
        d = self.dyad[mask]
        if len(d) == 0:
            return float("nan")
        E = np.bincount(d, weights=psi[mask], minlength=len(self.lo))
        T = np.bincount(self.lo, weights=E, minlength=self.n_seeds) + np.bincount(self.hi, weights=E, minlength=self.n_seeds)
        present = np.zeros(self.n_seeds, dtype=bool)
        present[self.lo[d]] = True
        present[self.hi[d]] = True
        ee = float(E @ E)
        vd = float(T @ T) - ee
        v = small_sample_factor(int(present.sum())) * vd
        return max(v, ee) if floor else v


def rate_influence(hit: np.ndarray, ok: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Centred contributions of the pairs in ``mask`` to the error count of the rate ``sum(hit)/sum(ok)``.

    Returns ``(u, e, n)`` with ``u_p = hit_p - R * ok_p`` inside ``mask`` (0 outside), ``R = e / n``. The
    delta method for a ratio of totals: ``Var(rate) ~ Var(sum u) / n^2``, and for the log of the
    smoothed rate ``(e + 0.5)/(n + 1)``, ``Var(log) ~ Var(sum u) / (e + 0.5)^2``.

    Parameters
    ----------
    hit : numpy.ndarray
        Per pair: 1.0 for an error (a false match), else 0.0.
    ok : numpy.ndarray
        Per pair: 1.0 where the pair was compared.
    mask : numpy.ndarray
        The pairs of the rate.

    Returns
    -------
    u : numpy.ndarray
        Centred contributions, summing to 0 over ``mask``.
    e, n : float
        Errors and compared pairs in ``mask``.

    Examples
    --------
    >>> u, e, n = rate_influence(np.array([1.0, 0.0, 0.0, 1.0]), np.ones(4), np.array([True, True, True, False]))
    >>> u.round(3).tolist(), e, n
    ([0.667, -0.333, -0.333, 0.0], 1.0, 3.0)
    """
    m = mask & (ok > 0)
    e = float(hit[m].sum())
    n = float(m.sum())
    r = e / n if n > 0 else 0.0
    return np.where(m, hit - r * ok, 0.0), e, n


def normal_interval(est, se, level: float, null: float, log: bool = False) -> tuple[float, float, float]:
    """Wald interval and the two-sided p-value that inverts it (``p < 1 - level`` iff it excludes ``null``).

    ``log``: ``est`` is a ratio and ``se`` the standard error of its log (interval exp-transformed,
    null tested on the log scale). ``se == 0`` means no false match (or no correct rejection) in any
    cell involved: no information, interval ``[est, est]`` and ``p = 1``.

    Parameters
    ----------
    est : float
        The estimate (a difference, or a ratio with ``log``).
    se : float
        Its standard error (of its log with ``log``).
    level : float
        Confidence level.
    null : float
        The value tested.
    log : bool
        ``est`` is a ratio.

    Returns
    -------
    lo, hi, p : float
        The interval and the two-sided p-value (NaN when ``est`` or ``se`` is not finite).

    Examples
    --------
    >>> lo, hi, p = normal_interval(0.1, 0.05, 0.95, 0.0)
    >>> round(lo, 4), round(hi, 4), round(p, 4)
    (0.002, 0.198, 0.0455)
    >>> normal_interval(2.0, 0.0, 0.95, 1.0, log=True)
    (2.0, 2.0, 1.0)
    """
    if not np.isfinite(est) or not np.isfinite(se):
        return float("nan"), float("nan"), float("nan")
    if se == 0:
        return float(est), float(est), 1.0
    z = norm.ppf((1 + level) / 2)
    if log:
        c, c0 = np.log(est), np.log(null)
        lo, hi = np.exp(c - z * se), np.exp(c + z * se)
    else:
        c, c0 = est, null
        lo, hi = est - z * se, est + z * se
    p = float(2 * norm.sf(abs(c - c0) / se))
    return float(lo), float(hi), p


def logit_interval(p: float, se: float, level: float) -> tuple[float, float]:
    """Interval for a rate on the logit scale (delta method), so it stays in (0, 1) and follows the skew of a
    small rate; ``[p, p]`` when ``se == 0`` (no error in the cell, or no correct rejection).

    Parameters
    ----------
    p : float
        The rate.
    se : float
        Its standard error.
    level : float
        Confidence level.

    Returns
    -------
    lo, hi : float

    Examples
    --------
    >>> lo, hi = logit_interval(0.01, 0.005, 0.95)
    >>> 0 < lo < 0.01 < hi, hi - 0.01 > 0.01 - lo  # inside (0, 1), skewed upward
    (True, True)
    """
    if not np.isfinite(p) or not np.isfinite(se):
        return float("nan"), float("nan")
    if se == 0 or p <= 0 or p >= 1:
        return float(p), float(p)
    z = norm.ppf((1 + level) / 2)
    c = np.log(p / (1 - p))
    h = z * se / (p * (1 - p))
    return float(1 / (1 + np.exp(-(c - h)))), float(1 / (1 + np.exp(-(c + h))))
