"""Summaries of how unequal error rates are across protected groups (one number per operating point).

All functions take rates along the last axis (groups) and broadcast over leading axes, so the same
call gives the point estimate (shape ``(G,)``) and every bootstrap replicate (shape ``(B, G)``).
Formulas (``x_i`` = rate of group ``i``, ``n`` groups, ``alpha`` = protocol ``fairness_alpha``):

- max/min ratio: ``max_i x_i / min_i x_i`` on *smoothed* rates ``(errors + 0.5) / (trials + 1)`` so a
  group with zero errors gives a finite ratio (the unsmoothed value, possibly ``inf``, is reported
  next to it as ``estimate_raw``);
- max/geometric-mean ratio (NIST FRTE Part 8 demographics): ``max_i x_i / exp(mean_i log x_i)`` on the
  same smoothed rates (``estimate_raw``: on the raw rates, ``inf`` when some group has no error and
  another has, 1 when none has). Between 1 and the max/min ratio; less driven by one best group;
- FDR (de Freitas Pereira & Marcel 2021): ``1 - (alpha * A + (1 - alpha) * B)`` with
  ``A = max_ij |FMR_i - FMR_j|``, ``B = max_ij |FNMR_i - FNMR_j|`` (raw rates; 1 = perfectly fair);
- IR, inequity rate (NIST FRVT Part 8 product form): ``(max FMR / min FMR)^alpha * (max FNMR / min FNMR)^(1-alpha)``
  on smoothed rates (1 = fair);
- GARBE (Howard et al. 2022): ``alpha * G(FMR) + (1 - alpha) * G(FNMR)`` with the sample-corrected
  Gini coefficient ``G(x) = n/(n-1) * sum_i sum_j |x_i - x_j| / (2 n^2 mean(x))`` (raw rates; 0 = fair;
  ``G = 0`` when every rate is 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["max_min_ratio", "max_geomean", "max_abs_diff", "fdr", "inequity_rate", "gini", "garbe", "fairness_table",
           "THRESHOLD_FAIRNESS_METRICS", "THRESHOLD_FREE_FAIRNESS_METRICS"]

#: the summaries :func:`fairness_table` writes at each target FMR, and those that need no threshold
THRESHOLD_FAIRNESS_METRICS = ("fmr_max_min_ratio", "fnmr_max_min_ratio", "gfnmr_max_min_ratio", "fmr_max_diff",
                              "fnmr_max_diff", "fdr", "ir", "garbe", "fmr_max_geomean", "fnmr_max_geomean")
THRESHOLD_FREE_FAIRNESS_METRICS = ("fte_max_min_ratio",)


def max_min_ratio(x: np.ndarray) -> np.ndarray:
    """Largest over smallest rate along the last axis (1 when every rate is 0).

    Parameters
    ----------
    x : numpy.ndarray
        Rates, groups along the last axis (leading axes: e.g. bootstrap replicates).

    Returns
    -------
    numpy.ndarray
        One ratio per leading index (``inf`` when only some rates are 0).

    Examples
    --------
    >>> max_min_ratio(np.array([0.02, 0.05, 0.04])).round(6).tolist()
    2.5
    >>> max_min_ratio(np.array([[0.0, 0.0], [0.1, 0.2]])).tolist()
    [1.0, 2.0]
    """
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = x.max(axis=-1) / x.min(axis=-1)
    # 0/0: every group has no errors -> equal
    return np.where((x.max(axis=-1) == 0), 1.0, r)


def max_geomean(x: np.ndarray) -> np.ndarray:
    """Largest rate over the geometric mean of the rates along the last axis (1 when every rate is 0).

    NIST FRTE Part 8's demographic summary. Called on smoothed rates ``(errors + 0.5) / (trials + 1)``
    (never 0); on raw rates a group with no error gives ``inf``. The one implementation behind
    ``results/fairness.parquet`` and :meth:`faceaudit.stats.score_rates.ErrorRates.max_geomean`.

    Parameters
    ----------
    x : numpy.ndarray
        Rates, groups along the last axis (leading axes: e.g. bootstrap replicates).

    Returns
    -------
    numpy.ndarray
        One ratio per leading index.

    Examples
    --------
    >>> round(float(max_geomean(np.array([0.01, 0.04]))), 6)
    2.0
    >>> max_geomean(np.array([[0.0, 0.0], [0.0, 0.1]])).tolist()
    [1.0, inf]
    """
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = x.max(axis=-1) / np.exp(np.log(x).mean(axis=-1))
    # 0/0: every group has no errors -> equal
    return np.where(x.max(axis=-1) == 0, 1.0, r)


def max_abs_diff(x: np.ndarray) -> np.ndarray:
    """Largest minus smallest rate along the last axis.

    Parameters
    ----------
    x : numpy.ndarray
        Rates, groups along the last axis (leading axes: e.g. bootstrap replicates).

    Returns
    -------
    numpy.ndarray
        One difference per leading index.

    Examples
    --------
    >>> round(float(max_abs_diff(np.array([0.02, 0.05, 0.04]))), 6)
    0.03
    """
    x = np.asarray(x, dtype=float)
    return x.max(axis=-1) - x.min(axis=-1)


def fdr(fmr: np.ndarray, fnmr: np.ndarray, alpha: float) -> np.ndarray:
    """Fairness discrepancy rate (de Freitas Pereira & Marcel 2021); 1 = perfectly fair.

    Parameters
    ----------
    fmr, fnmr : numpy.ndarray
        Per-group rates along the last axis.
    alpha : float
        Weight of the FMR gap (the protocol's ``analysis.fairness_alpha``).

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> round(float(fdr(np.array([0.01, 0.03]), np.array([0.1, 0.2]), 0.5)), 6)
    0.94
    """
    return 1.0 - (alpha * max_abs_diff(fmr) + (1.0 - alpha) * max_abs_diff(fnmr))


def inequity_rate(fmr_smoothed: np.ndarray, fnmr_smoothed: np.ndarray, alpha: float) -> np.ndarray:
    """Inequity rate, NIST FRVT Part 8 product form (1 = fair), on smoothed rates.

    Parameters
    ----------
    fmr_smoothed, fnmr_smoothed : numpy.ndarray
        Smoothed per-group rates along the last axis.
    alpha : float
        Weight of the FMR ratio (the protocol's ``analysis.fairness_alpha``).

    Returns
    -------
    numpy.ndarray
        ``(max/min FMR)^alpha * (max/min FNMR)^(1-alpha)`` per leading index.

    Examples
    --------
    >>> round(float(inequity_rate(np.array([0.01, 0.04]), np.array([0.1, 0.1]), 0.5)), 6)
    2.0
    """
    return max_min_ratio(fmr_smoothed) ** alpha * max_min_ratio(fnmr_smoothed) ** (1.0 - alpha)


def gini(x: np.ndarray) -> np.ndarray:
    """Sample-corrected Gini coefficient along the last axis (0 = equal; 0 when every rate is 0).

    Parameters
    ----------
    x : numpy.ndarray
        Rates, groups along the last axis (leading axes: e.g. bootstrap replicates).

    Returns
    -------
    numpy.ndarray
        One coefficient per leading index (zeros when there are fewer than two groups).

    Examples
    --------
    >>> float(gini(np.array([0.1, 0.1])))
    0.0
    >>> round(float(gini(np.array([0.0, 0.2]))), 6)
    1.0
    """
    x = np.asarray(x, dtype=float)
    n = x.shape[-1]
    if n < 2:
        return np.zeros(x.shape[:-1])
    mad = np.abs(x[..., :, None] - x[..., None, :]).sum(axis=(-1, -2))
    mean = x.mean(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = n / (n - 1) * mad / (2 * n * n * mean)
    return np.where(mean > 0, g, 0.0)


def garbe(fmr: np.ndarray, fnmr: np.ndarray, alpha: float) -> np.ndarray:
    """GARBE (Howard et al. 2022): ``alpha * G(FMR) + (1 - alpha) * G(FNMR)``; 0 = fair.

    Parameters
    ----------
    fmr, fnmr : numpy.ndarray
        Per-group rates along the last axis.
    alpha : float
        Weight of the FMR Gini coefficient (the protocol's ``analysis.fairness_alpha``).

    Returns
    -------
    numpy.ndarray
        One GARBE value per leading index.

    Examples
    --------
    >>> round(float(garbe(np.array([0.1, 0.1]), np.array([0.0, 0.2]), 0.5)), 6)
    0.5
    """
    return alpha * gini(fmr) + (1.0 - alpha) * gini(fnmr)


def fairness_table(mr, alpha: float, level: float) -> pd.DataFrame:
    """Per target FMR: every summary with a percentile CI from the run's seed bootstrap.

    Computed over the protected groups (pooled over edit conditions). The same replicates give the
    per-group rates, so the CI of e.g. the FNMR max/min ratio reflects that the identity of the worst
    group can change between replicates.

    Parameters
    ----------
    mr : ModelRates
        One model's rates (:func:`faceaudit.stats.error_rates.compute_model_rates`).
    alpha : float
        The protocol's ``analysis.fairness_alpha``.
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        ``results/fairness.parquet`` rows of the model: ``model, target_fmr, metric, estimate, ci_lo,
        ci_hi, estimate_raw, worst_group, best_group, alpha, n_groups, ci_level, ci_method``.

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
    >>> f = fairness_table(mr, 0.5, 0.95)
    >>> f["metric"].tolist() == list(THRESHOLD_FAIRNESS_METRICS + THRESHOLD_FREE_FAIRNESS_METRICS)
    True
    >>> f.set_index("metric").loc["fnmr_max_diff", "worst_group"]
    'skin=dark'
    """
    import pandas as pd

    from faceaudit.stats.bootstrap import CI_METHOD, percentile_ci
    from faceaudit.stats.primary import RATIO_SMOOTHING, REPORTABLE_MIN_EVENTS

    L = mr.md.layout
    G, C = L.G, L.C
    rows = []

    def add(t, metric, est, reps, raw=None, worst=None, best=None, events=None):
        lo, hi = percentile_ci(reps, level)
        row = {"model": mr.md.model, "target_fmr": t, "metric": metric, "estimate": float(est),
               "ci_lo": float(lo), "ci_hi": float(hi), "estimate_raw": float(est if raw is None else raw),
               "worst_group": worst, "best_group": best, "alpha": alpha, "n_groups": G,
               "ci_level": level, "ci_method": CI_METHOD}
        if events is not None:  # a ratio of smoothed rates: how many events it rests on
            m = float(np.min(events))
            row.update(n_events_min=m, reportable=bool(m >= REPORTABLE_MIN_EVENTS), smoothing=RATIO_SMOOTHING)
        rows.append(row)

    def groups_of(rates) -> dict:
        # worst = highest error rate, best = lowest (None when undefined)
        if np.all(np.isnan(rates)):
            return {"worst": None, "best": None}
        return {"worst": L.groups[int(np.nanargmax(rates))], "best": L.groups[int(np.nanargmin(rates))]}

    for t in mr.thresholds:
        fmr_r, fnmr_r = mr.fmr[t], mr.fnmr[t]
        fmr, fnmr = fmr_r.rate()[:G, C], fnmr_r.rate()[:G, C]
        fmr_b, fnmr_b = fmr_r.rate_boot()[:, :G, C], fnmr_r.rate_boot()[:, :G, C]
        fmr_s, fnmr_s = fmr_r.smoothed()[:G, C], fnmr_r.smoothed()[:G, C]
        fmr_sb, fnmr_sb = fmr_r.smoothed_boot()[:, :G, C], fnmr_r.smoothed_boot()[:, :G, C]
        for name, ratio in (("fmr", fmr_r), ("fnmr", fnmr_r), ("gfnmr", mr.gfnmr[t])):
            raw = ratio.rate()[:G, C]
            add(t, f"{name}_max_min_ratio", max_min_ratio(ratio.smoothed()[:G, C]),
                max_min_ratio(ratio.smoothed_boot()[:, :G, C]), raw=max_min_ratio(raw), **groups_of(raw),
                events=ratio.num.point[:G, C])
        add(t, "fmr_max_diff", max_abs_diff(fmr), max_abs_diff(fmr_b), None, **groups_of(fmr))
        add(t, "fnmr_max_diff", max_abs_diff(fnmr), max_abs_diff(fnmr_b), None, **groups_of(fnmr))
        add(t, "fdr", fdr(fmr, fnmr, alpha), fdr(fmr_b, fnmr_b, alpha))
        add(t, "ir", inequity_rate(fmr_s, fnmr_s, alpha), inequity_rate(fmr_sb, fnmr_sb, alpha),
            raw=inequity_rate(fmr, fnmr, alpha),
            events=np.concatenate([fmr_r.num.point[:G, C], fnmr_r.num.point[:G, C]]))
        add(t, "garbe", garbe(fmr, fnmr, alpha), garbe(fmr_b, fnmr_b, alpha))
        for name, ratio in (("fmr", fmr_r), ("fnmr", fnmr_r)):
            raw = ratio.rate()[:G, C]
            add(t, f"{name}_max_geomean", max_geomean(ratio.smoothed()[:G, C]),
                max_geomean(ratio.smoothed_boot()[:, :G, C]), raw=max_geomean(raw), **groups_of(raw),
                events=ratio.num.point[:G, C])
    fte = mr.fte
    raw = fte.rate()[:G, C]
    add(float("nan"), "fte_max_min_ratio", max_min_ratio(fte.smoothed()[:G, C]), max_min_ratio(fte.smoothed_boot()[:, :G, C]),
        raw=max_min_ratio(raw), **groups_of(raw), events=fte.num.point[:G, C])
    return pd.DataFrame(rows)
