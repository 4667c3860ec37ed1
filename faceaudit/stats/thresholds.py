"""Decision thresholds and threshold-free summaries of genuine/impostor score distributions.

Conventions (scores: higher = more similar; a comparison is a *match* when ``score >= t``):

- ``FMR(t) = #{impostor >= t} / N_impostor`` and ``FNMR(t) = #{genuine < t} / N_genuine``. These are
  scikit-learn's ``roc_curve`` conventions (``fpr(t) = FMR(t)``, ``tpr(t) = 1 - FNMR(t)``) and pyeer's.
- **Threshold at a target FMR** ``f``: the smallest *observed* score ``t`` (over the candidate scores,
  by default every genuine and impostor score of the comparison set) with ``FMR(t) <= f``, or
  ``+inf`` when no observed score qualifies. There is no interpolation between scores. This is exactly
  ``min(thresholds[fpr <= f])`` of ``sklearn.metrics.roc_curve(y, s, drop_intermediate=False)`` on
  the same scores (tests/test_stats_thresholds.py checks it, and against pyeer).
  Equivalently: let ``c`` be the largest impostor score whose count ``#{impostor >= c}`` exceeds
  ``f * N``; every comparison scoring ``<= c`` is rejected and every one scoring ``> c`` accepted.
  Ties are therefore never split: all comparisons with the same score get the same decision, and
  the attained FMR is ``<= f`` (often below it when impostor scores are tied or few).
- **EER**: on the error curve over all distinct scores (plus ``+inf``), the FVC2000 convention
  (Maio et al. 2002) that pyeer implements: find the first threshold where ``FMR <= FNMR`` and the one
  before it, keep the one with the smaller ``FMR + FNMR`` and report the mean of the two rates there.
- **AUC**: ``P(genuine > impostor) + 0.5 P(genuine = impostor)`` (Mann-Whitney), equal to sklearn's
  ``roc_auc_score`` and to the trapezoidal area under the full ROC.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

__all__ = ["threshold_at_fmr", "fmr_at", "fnmr_at", "error_curve", "eer", "roc_auc", "tar_at_far", "det_points"]


def _as_float(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).ravel()


def threshold_at_fmr(impostor, target_fmr: float, candidates=None) -> float:
    """Smallest candidate score ``t`` with ``FMR(t) <= target_fmr`` (see module docstring).

    Parameters
    ----------
    impostor : array_like
        Impostor scores (higher = more similar); a comparison matches when ``score >= t``.
    target_fmr : float
        The largest false match rate allowed.
    candidates : array_like, optional
        Scores the threshold may take besides the impostor scores; the analysis passes every score
        of the model (genuine and impostor) so that the result matches ``roc_curve`` on the same pairs.

    Returns
    -------
    float
        The threshold (``inf`` when no candidate lies above the last failing impostor value).

    Examples
    --------
    >>> threshold_at_fmr([0.1, 0.2, 0.3, 0.4], 0.25)
    0.4
    >>> threshold_at_fmr([0.1, 0.2, 0.3, 0.4], 0.25, candidates=[0.35, 0.9])
    0.35
    """
    imp = np.sort(_as_float(impostor))
    n = len(imp)
    if n == 0:
        raise ValueError("no impostor scores")
    cand = imp if candidates is None else np.concatenate([imp, _as_float(candidates)])
    # count(v) = #{imp >= v} for each distinct impostor value v (ascending)
    values = np.unique(imp)
    counts = n - np.searchsorted(imp, values, side="left")
    # Same float comparison as sklearn: fpr = count / n compared with the target.
    failing = values[counts / n > target_fmr]
    c = failing.max()  # always exists: the smallest impostor value has count n and n/n = 1 > target
    above = cand[cand > c]
    return float(above.min()) if len(above) else float("inf")


def fmr_at(impostor, t: float) -> float:
    """False match rate at threshold ``t``: the share of impostor scores ``>= t`` (NaN when none).

    Parameters
    ----------
    impostor : array_like
        Impostor scores (higher = more similar).
    t : float
        Threshold; a comparison matches when ``score >= t``.

    Returns
    -------
    float

    Examples
    --------
    >>> fmr_at([0.1, 0.5, 0.9], 0.5)
    0.6666666666666666
    """
    imp = _as_float(impostor)
    return float(np.mean(imp >= t)) if len(imp) else float("nan")


def fnmr_at(genuine, t: float) -> float:
    """False non-match rate at threshold ``t``: the share of genuine scores ``< t`` (NaN when none).

    Parameters
    ----------
    genuine : array_like
        Genuine scores (higher = more similar).
    t : float
        Threshold; a comparison matches when ``score >= t``.

    Returns
    -------
    float

    Examples
    --------
    >>> fnmr_at([0.4, 0.6, 0.8, 0.9], 0.7)
    0.5
    """
    gen = _as_float(genuine)
    return float(np.mean(gen < t)) if len(gen) else float("nan")


def error_curve(genuine, impostor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(thresholds ascending, FMR, FNMR)`` at every distinct score and at ``+inf``.

    The same points pyeer's ``calculate_roc`` returns (plus the ``+inf`` end where FMR = 0, FNMR = 1).

    Parameters
    ----------
    genuine : array_like
        Genuine scores (higher = more similar).
    impostor : array_like
        Impostor scores (higher = more similar).

    Returns
    -------
    thresholds, fmr, fnmr : numpy.ndarray
        Ascending thresholds and the rates at each.

    Examples
    --------
    >>> thr, fmr, fnmr = error_curve([0.8, 0.9], [0.1, 0.85])
    >>> thr.tolist(), fmr.tolist(), fnmr.tolist()
    ([0.1, 0.8, 0.85, 0.9, inf], [1.0, 0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5, 1.0])
    """
    gen = np.sort(_as_float(genuine))
    imp = np.sort(_as_float(impostor))
    thr = np.append(np.unique(np.concatenate([gen, imp])), np.inf)
    fmr = (len(imp) - np.searchsorted(imp, thr, side="left")) / max(len(imp), 1)
    fnmr = np.searchsorted(gen, thr, side="left") / max(len(gen), 1)
    return thr, fmr, fnmr


def eer(genuine, impostor) -> tuple[float, float]:
    """``(EER, threshold)`` by the FVC2000/pyeer convention (see module docstring).

    Parameters
    ----------
    genuine : array_like
        Genuine scores (higher = more similar).
    impostor : array_like
        Impostor scores (higher = more similar).

    Returns
    -------
    eer : float
        The equal error rate.
    threshold : float
        The threshold where it is attained.

    Examples
    --------
    >>> eer([0.8, 0.9], [0.1, 0.2])
    (0.0, 0.8)
    """
    thr, fmr, fnmr = error_curve(genuine, impostor)
    diff = fmr - fnmr
    t2 = int(np.flatnonzero(diff <= 0)[0])  # exists: at +inf FMR = 0 <= FNMR
    t1 = t2 - 1 if (diff[t2] != 0 and t2 != 0) else t2
    i = t1 if fmr[t1] + fnmr[t1] <= fmr[t2] + fnmr[t2] else t2
    return float((fmr[i] + fnmr[i]) / 2), float(thr[i])


def roc_auc(genuine, impostor) -> float:
    """Area under the ROC curve: the chance that a genuine score exceeds an impostor score (ties
    count one half); NaN without scores of both kinds.

    Parameters
    ----------
    genuine : array_like
        Genuine scores (higher = more similar).
    impostor : array_like
        Impostor scores (higher = more similar).

    Returns
    -------
    float

    Examples
    --------
    >>> roc_auc([0.8, 0.9], [0.1, 0.85])
    0.75
    """
    gen, imp = _as_float(genuine), _as_float(impostor)
    ng, ni = len(gen), len(imp)
    if ng == 0 or ni == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([gen, imp]))  # average ranks: ties count one half
    return float((ranks[:ng].sum() - ng * (ng + 1) / 2) / (ng * ni))


def tar_at_far(genuine, impostor, far: float) -> float:
    """True accept rate ``1 - FNMR(t)`` at the threshold for FMR <= ``far`` (candidates: all scores).

    Parameters
    ----------
    genuine : array_like
        Genuine scores (higher = more similar).
    impostor : array_like
        Impostor scores (higher = more similar).
    far : float
        The largest false accept (match) rate allowed.

    Returns
    -------
    float
        NaN without scores of both kinds.

    Examples
    --------
    >>> tar_at_far([0.5, 0.8, 0.9], [0.1, 0.2, 0.6], 0.34)  # threshold 0.5
    1.0
    >>> tar_at_far([0.5, 0.8, 0.9], [0.1, 0.2, 0.6], 0.1)  # threshold above 0.6
    0.6666666666666667
    """
    gen = _as_float(genuine)
    if len(gen) == 0 or len(_as_float(impostor)) == 0:
        return float("nan")
    t = threshold_at_fmr(impostor, far, candidates=gen)
    return 1.0 - fnmr_at(gen, t)


def det_points(genuine, impostor, max_points: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A thinned error curve for DET plots on log axes: ``(thresholds, FMR, FNMR)``.

    Keeps the first point at or below each of ~``max_points/2`` log-spaced FMR levels and each of
    ~``max_points/2`` log-spaced FNMR levels, plus both ends, so both tails stay resolved on log axes.

    Parameters
    ----------
    genuine : array_like
        Genuine scores (higher = more similar).
    impostor : array_like
        Impostor scores (higher = more similar).
    max_points : int
        About the most points kept.

    Returns
    -------
    thresholds, fmr, fnmr : numpy.ndarray
        A subset of the points of :func:`error_curve` (all of them when there are at most ``max_points``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> thr, fmr, fnmr = det_points(rng.normal(1, 1, 2000), rng.normal(0, 1, 2000), max_points=50)
    >>> len(thr) <= 52, bool(fmr[0] == 1.0 and fnmr[-1] == 1.0)
    (True, True)
    """
    thr, fmr, fnmr = error_curve(genuine, impostor)
    if len(thr) <= max_points:
        return thr, fmr, fnmr
    half = max_points // 2
    ni = max(len(_as_float(impostor)), 1)
    ng = max(len(_as_float(genuine)), 1)
    fmr_grid = np.logspace(0, np.log10(1.0 / ni), half)
    fnmr_grid = np.logspace(np.log10(1.0 / ng), 0, half)
    # fmr is non-increasing along thr: first index with fmr <= g
    i1 = np.searchsorted(-fmr, -fmr_grid, side="left")
    # fnmr is non-decreasing: last index with fnmr <= g
    i2 = np.searchsorted(fnmr, fnmr_grid, side="right") - 1
    idx = np.unique(np.clip(np.concatenate([[0, len(thr) - 1], i1, i2]), 0, len(thr) - 1))
    return thr[idx], fmr[idx], fnmr[idx]
