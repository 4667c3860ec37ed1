"""Synthetic versus real: the audit's error rates next to a calibration run's at the same thresholds
(docs/statistics.md, "Synthetic versus real").

With ``analysis.thresholds: {calibration_run: RUN}`` (a run of real photographs made by ``faceaudit
import folder``), every operating point of a model (the protocol's target FMRs, a fixed threshold,
the thresholds calibrated on RUN) is applied to both the audit's comparisons ("synthetic") and RUN's
("real"), and ``results/synthetic_vs_real.parquet`` holds one row per model x operating point x data:

- synthetic rows are the pooled row of ``results/error_rates.parquet`` at that operating point (group
  ``all``, pooled over edit conditions): the same counts and intervals as the rest of the card;
- real rows are counted from RUN's ``scores/MODEL.parquet`` (enrolled comparisons only): FMR =
  impostor pairs scoring ``>= threshold`` / impostor pairs, FNMR = genuine pairs scoring below it /
  genuine pairs. Their intervals are the Wilson score interval on cluster-adjusted effective counts
  (:func:`faceaudit.stats.primary.wilson_effective`), clusters being RUN's identities: the
  dyadic-robust identity-pair variance for FMR (:mod:`faceaudit.stats.dyadic`, as for the audit's
  FMR) and the cluster-robust (sandwich) variance of a mean with identity clusters for FNMR (equal to
  ``statsmodels`` OLS with ``cov_type="cluster"``). A run without genuine pairs (photos without
  identity labels, one photo per person) has FNMR NaN and ``n_genuine`` 0.

``results/synthetic_vs_real_hist.parquet`` holds the pooled genuine and impostor score histograms of
both, on the audit's ``score_hist`` bin edges extended by whole bins to cover RUN's scores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from faceaudit.core.errors import BadInput
from faceaudit.stats.data import ALL
from faceaudit.stats.dyadic import DyadicDesign, rate_influence
from faceaudit.stats.primary import wilson_effective

__all__ = ["SYNTHETIC_VS_REAL_COLUMNS", "REAL_CI_METHOD", "RealScores", "read_real_scores", "real_rates",
           "cluster_mean_variance", "synthetic_vs_real_table", "synthetic_vs_real_hist"]

SYNTHETIC_VS_REAL_COLUMNS = ["model", "threshold_source", "target_fmr", "threshold", "data", "fmr", "fmr_lo", "fmr_hi",
                             "false_matches", "n_impostor", "fnmr", "fnmr_lo", "fnmr_hi", "false_non_matches",
                             "n_genuine", "ci_method"]
REAL_CI_METHOD = ("wilson score interval on cluster-adjusted effective counts (identity clusters: dyadic-robust "
                  "identity-pair variance for FMR, cluster-robust variance for FNMR)")
HIST_COLUMNS = ["model", "data", "kind", "bin_lo", "bin_hi", "count", "density"]


class RealScores:
    """One model's enrolled comparisons of a calibration run: scores and identity (cluster) indices.

    Parameters
    ----------
    gen_score, gen_seed : numpy.ndarray
        Genuine scores and their identity index.
    imp_score, imp_seed_a, imp_seed_b : numpy.ndarray
        Impostor scores and the identity indices of their two faces.
    n_seeds : int
        Identities of the run (the indices are below it).

    Examples
    --------
    >>> r = RealScores(np.array([0.8]), np.array([0]), np.array([0.1, 0.2]), np.array([0, 0]), np.array([1, 2]), 3)
    >>> len(r.gen_score), len(r.imp_score), r.n_seeds
    (1, 2, 3)
    """

    def __init__(self, gen_score, gen_seed, imp_score, imp_seed_a, imp_seed_b, n_seeds: int):
        self.gen_score = np.asarray(gen_score, dtype=float)
        self.gen_seed = np.asarray(gen_seed, dtype=np.int64)
        self.imp_score = np.asarray(imp_score, dtype=float)
        self.imp_seed_a = np.asarray(imp_seed_a, dtype=np.int64)
        self.imp_seed_b = np.asarray(imp_seed_b, dtype=np.int64)
        self.n_seeds = int(n_seeds)


def read_real_scores(run_root: str | Path, model: str) -> RealScores:
    """A calibration run's enrolled comparisons of ``model`` (``pairs.parquet`` + ``scores/MODEL.parquet``).

    Parameters
    ----------
    run_root : str or Path
        The calibration run (made by ``faceaudit import folder`` and scored).
    model : str
        Model name.

    Returns
    -------
    RealScores

    Raises
    ------
    BadInput
        One line naming the file when the pairs or the model's scores cannot be read.

    Examples
    --------
    >>> read_real_scores("/no/such/run", "sface")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: analysis.thresholds.calibration_run: /no/such/run/pairs.parquet: ...
    """
    where = "analysis.thresholds.calibration_run"
    root = Path(run_root)
    try:
        pairs = pd.read_parquet(root / "pairs.parquet", columns=["pair_id", "kind", "seed_a", "seed_b"])
    except (OSError, ValueError) as err:
        raise BadInput(f"{where}: {root / 'pairs.parquet'}: cannot read the pairs ({type(err).__name__})") from None
    path = root / "scores" / f"{model}.parquet"
    try:
        scores = pd.read_parquet(path, columns=["pair_id", "score", "status"])
    except (OSError, ValueError) as err:
        raise BadInput(f"{where}: {path}: cannot read the scores of model {model!r} ({type(err).__name__})") from None
    d = pairs.merge(scores, on="pair_id", how="inner")
    d = d[(d["status"] == "ok") & np.isfinite(d["score"].to_numpy(dtype=float))]
    seeds = np.unique(np.r_[pairs["seed_a"].to_numpy(), pairs["seed_b"].to_numpy()])
    idx = lambda s: np.searchsorted(seeds, s.to_numpy())  # noqa: E731
    gen, imp = d[d["kind"] == "genuine"], d[d["kind"] == "impostor"]
    return RealScores(gen["score"].to_numpy(float), idx(gen["seed_a"]), imp["score"].to_numpy(float), idx(imp["seed_a"]),
                      idx(imp["seed_b"]), len(seeds))


def cluster_mean_variance(values, cluster) -> float:
    """Cluster-robust (sandwich) variance of the mean of ``values`` with clusters ``cluster``.

    ``G / (G - 1) * sum_g (sum_{i in g} (x_i - mean))^2 / n^2``: the variance ``statsmodels`` OLS on an
    intercept reports with ``cov_type="cluster"`` (its small-sample factor ``(n - 1) / (n - k)`` is 1
    for one regressor). NaN with fewer than two clusters.

    Parameters
    ----------
    values : array_like
        One value per observation (a 0/1 error indicator for a rate).
    cluster : array_like
        Cluster of each observation.

    Returns
    -------
    float

    Examples
    --------
    >>> round(cluster_mean_variance([1, 1, 0, 0], [0, 0, 1, 1]), 4)
    0.25
    """
    x = np.asarray(values, dtype=float)
    c = np.asarray(cluster)
    n = len(x)
    _, inv = np.unique(c, return_inverse=True)
    G = int(inv.max()) + 1 if n else 0
    if G < 2:
        return float("nan")
    u = np.bincount(inv.ravel(), weights=x - x.mean(), minlength=G)
    return float(G / (G - 1) * (u @ u) / (n * n))


def real_rates(real: RealScores, threshold: float, level: float) -> dict:
    """FMR and FNMR of a calibration run at ``threshold``, with counts and intervals (module doc).

    Parameters
    ----------
    real : RealScores
        The run's enrolled comparisons.
    threshold : float
        A comparison matches when its score is ``>= threshold``.
    level : float
        Confidence level.

    Returns
    -------
    dict
        ``fmr, fmr_lo, fmr_hi, false_matches, n_impostor, fnmr, fnmr_lo, fnmr_hi, false_non_matches, n_genuine``.

    Examples
    --------
    >>> r = RealScores([0.9, 0.4, 0.8], [0, 1, 2], [0.1, 0.6, 0.2, 0.3], [0, 0, 1, 2], [1, 2, 2, 3], 4)
    >>> d = real_rates(r, 0.5, 0.95)
    >>> d["false_matches"], d["n_impostor"], d["false_non_matches"], d["n_genuine"]
    (1, 4, 1, 3)
    """
    imp_hit = (real.imp_score >= threshold).astype(float)
    n_imp, k_imp = len(imp_hit), int(imp_hit.sum())
    var_fmr = float("nan")
    if n_imp:
        design = DyadicDesign.from_pairs(real.imp_seed_a, real.imp_seed_b, max(real.n_seeds, 1))
        mask = np.ones(n_imp, dtype=bool)
        psi, _, _ = rate_influence(imp_hit, np.ones(n_imp), mask)
        var_fmr = design.variance(psi, mask) / (n_imp * n_imp)
    fmr_lo, fmr_hi = wilson_effective([k_imp], [n_imp], [var_fmr], level)
    miss = (real.gen_score < threshold).astype(float)
    n_gen, k_gen = len(miss), int(miss.sum())
    var_fnmr = cluster_mean_variance(miss, real.gen_seed) if n_gen else float("nan")
    fnmr_lo, fnmr_hi = wilson_effective([k_gen], [n_gen], [var_fnmr], level)
    return {"fmr": k_imp / n_imp if n_imp else np.nan, "fmr_lo": float(fmr_lo[0]), "fmr_hi": float(fmr_hi[0]),
            "false_matches": k_imp, "n_impostor": n_imp,
            "fnmr": k_gen / n_gen if n_gen else np.nan, "fnmr_lo": float(fnmr_lo[0]), "fnmr_hi": float(fnmr_hi[0]),
            "false_non_matches": k_gen, "n_genuine": n_gen}


def _operating_rows(er: pd.DataFrame, model: str) -> pd.DataFrame:
    """The model's pooled error_rates rows (group and edit condition ``all``) with a finite threshold."""
    d = er[(er["model"] == model) & (er["group"] == ALL) & (er["edit_attr"] == ALL)]
    d = d[np.isfinite(pd.to_numeric(d["threshold"], errors="coerce").to_numpy(dtype=float))]
    if "threshold_source" not in d.columns:
        d = d.assign(threshold_source="target_fmr")
    return d


def synthetic_vs_real_table(er: pd.DataFrame, reals: dict[str, RealScores], level: float) -> pd.DataFrame:
    """``results/synthetic_vs_real.parquet``: each model's operating points on the audit and on the
    calibration run (module doc).

    Parameters
    ----------
    er : pandas.DataFrame
        ``results/error_rates.parquet`` of the audit (every operating point).
    reals : dict
        ``{model: RealScores}`` of the calibration run (:func:`read_real_scores`).
    level : float
        Confidence level of the real rows' intervals.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SYNTHETIC_VS_REAL_COLUMNS`; ``data`` is ``synthetic`` or ``real``.

    Examples
    --------
    >>> er = pd.DataFrame({"model": ["m"], "group": ["all"], "edit_attr": ["all"], "threshold": [0.5],
    ...                    "target_fmr": [0.01], "threshold_source": ["target_fmr"], "fmr": [0.01], "fmr_lo": [0.005],
    ...                    "fmr_hi": [0.02], "n_false_match": [10], "n_impostor": [1000], "fnmr": [0.3],
    ...                    "fnmr_lo": [0.25], "fnmr_hi": [0.35], "n_false_non_match": [30], "n_genuine": [100]})
    >>> real = RealScores([0.9, 0.4], [0, 1], [0.1, 0.6, 0.2], [0, 0, 1], [1, 2, 2], 3)
    >>> t = synthetic_vs_real_table(er, {"m": real}, 0.95)
    >>> t[["data", "false_matches", "n_impostor", "false_non_matches", "n_genuine"]].values.tolist()
    [['synthetic', 10, 1000, 30, 100], ['real', 1, 3, 1, 2]]
    """
    rows = []
    for model, real in reals.items():
        for r in _operating_rows(er, model).itertuples(index=False):
            base = {"model": model, "threshold_source": str(r.threshold_source),
                    "target_fmr": float(r.target_fmr) if pd.notna(r.target_fmr) else np.nan, "threshold": float(r.threshold)}
            rows.append({**base, "data": "synthetic", "fmr": r.fmr, "fmr_lo": r.fmr_lo, "fmr_hi": r.fmr_hi,
                         "false_matches": int(r.n_false_match), "n_impostor": int(r.n_impostor), "fnmr": r.fnmr,
                         "fnmr_lo": r.fnmr_lo, "fnmr_hi": r.fnmr_hi, "false_non_matches": int(r.n_false_non_match),
                         "n_genuine": int(r.n_genuine), "ci_method": getattr(r, "ci_method", "") or ""})
            rows.append({**base, "data": "real", **real_rates(real, float(r.threshold), level), "ci_method": REAL_CI_METHOD})
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in SYNTHETIC_VS_REAL_COLUMNS})
    out = pd.DataFrame(rows)[SYNTHETIC_VS_REAL_COLUMNS]
    for c in ("false_matches", "n_impostor", "false_non_matches", "n_genuine"):
        out[c] = out[c].astype(np.int64)
    return out


def synthetic_vs_real_hist(score_hist: pd.DataFrame, reals: dict[str, RealScores]) -> pd.DataFrame:
    """``results/synthetic_vs_real_hist.parquet``: pooled genuine and impostor histograms of the audit
    (the ``score_hist`` counts summed over groups) and of the calibration run, on common edges.

    Parameters
    ----------
    score_hist : pandas.DataFrame
        The audit's ``results/score_hist.parquet`` (common edges per model).
    reals : dict
        ``{model: RealScores}``.

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``data``, ``kind``, ``bin_lo``, ``bin_hi``, ``count``, ``density``; the audit's
        edges, extended by whole bins to cover the real scores.

    Examples
    --------
    >>> h = pd.DataFrame({"model": "m", "group": ["a", "a", "b", "b"], "kind": ["genuine", "impostor"] * 2,
    ...                   "bin_lo": [0.0, 0.0, 0.0, 0.0], "bin_hi": [1.0, 1.0, 1.0, 1.0], "count": [2, 3, 1, 4]})
    >>> real = RealScores([0.5], [0], [1.5, -0.5], [0, 0], [1, 2], 3)
    >>> t = synthetic_vs_real_hist(h, {"m": real})
    >>> t.groupby(["data", "kind"])["count"].sum().to_dict()
    {('real', 'genuine'): 1, ('real', 'impostor'): 2, ('synthetic', 'genuine'): 3, ('synthetic', 'impostor'): 7}
    """
    parts = []
    for model, real in reals.items():
        h = score_hist[score_hist["model"] == model] if len(score_hist) else score_hist
        if not len(h):
            continue
        edges = np.unique(np.r_[h["bin_lo"].to_numpy(float), h["bin_hi"].to_numpy(float)])
        width = float(np.diff(edges).min()) if len(edges) > 1 else 1.0
        allr = np.r_[real.gen_score, real.imp_score]
        if len(allr):
            n_lo = int(np.ceil(max(0.0, edges[0] - allr.min()) / width))
            n_hi = int(np.ceil(max(0.0, allr.max() - edges[-1]) / width)) + (1 if allr.max() >= edges[-1] else 0)
            edges = np.r_[edges[0] - width * np.arange(n_lo, 0, -1), edges, edges[-1] + width * np.arange(1, n_hi + 1)]
        for kind in ("genuine", "impostor"):
            hk = h[h["kind"] == kind].groupby("bin_lo", as_index=False)["count"].sum()
            syn = np.zeros(len(edges) - 1, dtype=np.int64)
            pos = np.searchsorted(edges, hk["bin_lo"].to_numpy(float))
            np.add.at(syn, np.clip(pos, 0, len(syn) - 1), hk["count"].to_numpy(np.int64))
            scores = real.gen_score if kind == "genuine" else real.imp_score
            rea = np.histogram(scores, bins=edges)[0].astype(np.int64)
            for data, counts in (("synthetic", syn), ("real", rea)):
                n = int(counts.sum())
                if n == 0:
                    continue
                parts.append(pd.DataFrame({"model": model, "data": data, "kind": kind, "bin_lo": edges[:-1],
                                           "bin_hi": edges[1:], "count": counts, "density": counts / (n * np.diff(edges))}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({c: pd.Series(dtype=object) for c in HIST_COLUMNS})
