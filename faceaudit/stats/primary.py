"""The declared primary analysis: leakage of edits into the protected measures, the primary family,
one p-value method for every contrast, and intervals that stay valid at a handful of events.

docs/statistics.md ("Primary analysis and multiplicity", "p-values", "Intervals of rates") gives
the reasons; this module is the one place the card and ``summary.json`` read the method names from
(:data:`RATE_CI_METHOD`, :data:`PVALUE_METHOD`, :func:`ci_method_text`).
"""

from __future__ import annotations

import itertools
from typing import Optional

import numpy as np
import pandas as pd
from scipy.stats import norm

__all__ = ["RATE_CI_METHOD", "PVALUE_METHOD", "CONTRAST_CI_METHOD", "PRIMARY_POOL", "RATIO_SMOOTHING",
           "REPORTABLE_MIN_EVENTS", "EXACT_MAX_UNITS", "N_FLIPS", "ci_method_text", "wilson_effective",
           "flip_matrix", "seed_flip_pvalue", "discordant_pvalue", "discordant_design_effect", "PROTECTED_MEASURES", "leakage_table",
           "primary_conditions", "mark_family", "adjust_by_family", "family_summary"]

#: intervals of the rates in ``error_rates`` (FMR, FNMR, GFNMR, FTE)
RATE_CI_METHOD = ("wilson score interval on cluster-adjusted effective counts (n / design effect, design effect >= 1: "
                  "seed-cluster bootstrap variance for FNMR/GFNMR/FTE, dyadic-robust seed-pair variance for FMR)")
#: intervals of the contrasts (unchanged by the primary analysis)
CONTRAST_CI_METHOD = ("seed-cluster bootstrap percentile (FNMR, genuine score, FTE); "
                      "dyadic-robust (seed-pair) variance, normal (FMR)")
#: p-values of every contrast row
PVALUE_METHOD = ("paired sign-flip randomization test: seeds flipped between level and reference for FNMR, "
                 "genuine score and FTE (exact below 13 informative seeds, else 9999 random flips); "
                 "sign test of the discordant seed pairs for FMR (exact binomial; counts divided by the "
                 "dyadic design effect of seed pairs sharing a seed, >= 1)")
#: ``condition`` of the pooled primary estimate
PRIMARY_POOL = "primary_pool"
#: pseudo-counts of a smoothed rate in a ratio: (events + 0.5) / (trials + 1)
RATIO_SMOOTHING = "(events + 0.5) / (n + 1)"
#: a ratio is reportable when every group involved has at least this many events
REPORTABLE_MIN_EVENTS = 10
#: a sign-flip test enumerates every flip up to this many informative units
EXACT_MAX_UNITS = 12
#: random flips of a Monte Carlo sign-flip test
N_FLIPS = 9999

#: protected attribute -> the measure on faces.parquet that places a face in its level
PROTECTED_MEASURES = {"skin_tone": "measured_skin_ita", "gender": "measured_gender_pmale"}


def ci_method_text() -> dict:
    """The interval and p-value methods of a run, as ``summary.json`` and the card state them.

    Parameters
    ----------
    None
        The methods are the module's constants.

    Returns
    -------
    dict
        ``{"rates": ..., "contrasts": ..., "p_values": ...}``.

    Examples
    --------
    >>> sorted(ci_method_text())
    ['contrasts', 'p_values', 'rates']
    """
    return {"rates": RATE_CI_METHOD, "contrasts": CONTRAST_CI_METHOD, "p_values": PVALUE_METHOD}


# ---------------------------------------------------------------------------------------------
# intervals


def wilson_effective(events, n, var_cluster, level: float):
    """Wilson score interval of ``events / n`` on the cluster-adjusted effective sample size.

    The design effect ``deff = var_cluster / (p (1 - p) / n)`` (at least 1, and 1 when the rate is 0
    or 1, where no variance can be estimated) shrinks the sample to ``n / deff`` trials with
    ``p n / deff`` events; the Wilson interval of those counts stays inside [0, 1], is not empty at
    0 events (upper bound ``z^2 / (n_eff + z^2)``) and keeps its coverage at a few events.

    Parameters
    ----------
    events, n : array_like
        Event and trial counts (NaN or 0 trials give NaN).
    var_cluster : array_like
        Clustered variance of the rate (bootstrap or dyadic-robust); NaN means unknown (deff 1).
    level : float
        Confidence level.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Lower and upper bounds.

    Examples
    --------
    >>> lo, hi = wilson_effective([0], [35473], [0.0], 0.95)
    >>> float(lo[0]), round(float(hi[0]), 7)
    (0.0, 0.0001083)
    >>> lo, hi = wilson_effective([20], [100], [0.0032], 0.95)  # design effect 2: 50 trials, 10 events
    >>> round(float(lo[0]), 4), round(float(hi[0]), 4)
    (0.1124, 0.3304)
    """
    k = np.atleast_1d(np.asarray(events, dtype=float))
    n = np.atleast_1d(np.asarray(n, dtype=float))
    v = np.atleast_1d(np.asarray(var_cluster, dtype=float))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n > 0, k / np.where(n > 0, n, 1), np.nan)
        binom = p * (1 - p) / n
        deff = np.where((binom > 0) & np.isfinite(v), v / np.where(binom > 0, binom, 1), 1.0)
        deff = np.maximum(deff, 1.0)
        ne = n / deff
        z = norm.ppf((1 + level) / 2)
        den = 1 + z * z / ne
        centre = (p + z * z / (2 * ne)) / den
        half = z * np.sqrt(p * (1 - p) / ne + z * z / (4 * ne * ne)) / den
    lo = np.clip(centre - half, 0.0, 1.0)
    hi = np.clip(centre + half, 0.0, 1.0)
    # at 0 (or n) events the bound is exactly 0 (or 1); rounding would leave 1e-17 and print as "0.000000%"
    lo[k == 0], hi[k == n] = 0.0, 1.0
    bad = ~(n > 0)
    lo[bad], hi[bad] = np.nan, np.nan
    return lo, hi


# ---------------------------------------------------------------------------------------------
# p-values


def flip_matrix(n_seeds: int, rng: np.random.Generator, n_flips: int = N_FLIPS) -> np.ndarray:
    """``(n_flips, n_seeds)`` 0/1 matrix: which seeds swap level and reference in each random flip.

    Parameters
    ----------
    n_seeds : int
        Number of seeds (columns).
    rng : numpy.random.Generator
        Source of the random flips.
    n_flips : int, optional
        Number of random flips (rows); default :data:`N_FLIPS`.

    Returns
    -------
    numpy.ndarray
        ``float64`` matrix of 0 (keep) and 1 (swap).

    Examples
    --------
    >>> flip_matrix(4, np.random.default_rng(0), 3).shape
    (3, 4)
    """
    return (rng.random((n_flips, n_seeds)) < 0.5).astype(np.float64)


def _diff_of_rates(ng, dg, nr, dr):
    with np.errstate(invalid="ignore", divide="ignore"):
        return ng / dg - nr / dr


def seed_flip_pvalue(num_level, den_level, num_ref, den_ref, flips: Optional[np.ndarray] = None) -> float:
    """Two-sided p-value of ``sum(num_level)/sum(den_level) - sum(num_ref)/sum(den_ref)`` by flipping seeds.

    Every seed is rendered in the level and in the reference; under no effect of the protected
    attribute, a seed's two renderings are exchangeable, so swapping them (all its pairs or faces
    at once) leaves the distribution of the data unchanged. The p-value is the share of flips whose
    statistic is at least as far from 0 as the observed one: exact (every flip of the seeds that
    differ) up to :data:`EXACT_MAX_UNITS` such seeds, else Monte Carlo over the rows of ``flips``
    (``(1 + hits) / (1 + n_flips)``). Seeds whose two renderings gave identical counts change
    nothing and are left out.

    Parameters
    ----------
    num_level, den_level, num_ref, den_ref : array_like
        Per seed: events (or summed scores) and trials in the level and the reference.
    flips : numpy.ndarray, optional
        ``(n_flips, n_seeds)`` 0/1 (:func:`flip_matrix`); default: 9999 flips from seed 0.

    Returns
    -------
    float

    Examples
    --------
    >>> round(seed_flip_pvalue([1, 1, 0], [10, 10, 10], [0, 0, 0], [10, 10, 10]), 3)  # 2 seeds differ: 4 flips
    0.5
    >>> seed_flip_pvalue([3] * 30, [10] * 30, [0] * 30, [10] * 30) < 0.001
    True
    """
    ng, dg, nr, dr = (np.asarray(x, dtype=float) for x in (num_level, den_level, num_ref, den_ref))
    obs = _diff_of_rates(ng.sum(), dg.sum(), nr.sum(), dr.sum())
    if not np.isfinite(obs):
        return float("nan")
    dn, dd = nr - ng, dr - dg
    active = np.flatnonzero((dn != 0) | (dd != 0))
    if len(active) == 0:
        return 1.0
    if len(active) <= EXACT_MAX_UNITS:
        E = np.array(list(itertools.product((0.0, 1.0), repeat=len(active))))
        mc = False
    else:
        if flips is None:
            flips = flip_matrix(len(ng), np.random.default_rng(0))
        E = flips[:, active] if flips.shape[1] == len(ng) else flips[:, :len(active)]
        mc = True
    a_n, a_d = dn[active], dd[active]
    t = _diff_of_rates(ng.sum() + E @ a_n, dg.sum() + E @ a_d, nr.sum() - E @ a_n, dr.sum() - E @ a_d)
    hits = int(np.sum(np.abs(t) >= abs(obs) * (1 - 1e-9) - 1e-15))
    return (1 + hits) / (1 + len(E)) if mc else hits / len(E)


def discordant_pvalue(level_only: int, ref_only: int, deff: float = 1.0) -> float:
    """Two-sided sign test of the discordant seed pairs of an FMR contrast.

    An impostor seed pair is compared in the level and in the reference; it is discordant when it
    falsely matches in one and not the other. Under no effect, swapping a seed pair's two
    comparisons is a symmetry, so each discordant pair falls on either side with probability 1/2:
    with independent seed pairs this is the exact conditional (McNemar) test, valid at any count
    (0 vs 2 false matches gives 0.5). Seed pairs that share a seed are not independent (a seed that
    attracts false matches in one rendering); ``deff`` (:func:`discordant_design_effect`, at least 1)
    shrinks both counts to effective counts, and the binomial tail is taken on them through the
    regularized incomplete beta function (the binomial CDF for real-valued counts).

    Parameters
    ----------
    level_only : int
        Discordant seed pairs that falsely match at the level only.
    ref_only : int
        Discordant seed pairs that falsely match at the reference only.
    deff : float, optional
        Design effect of the discordance count (values below 1 or non-finite count as 1).

    Returns
    -------
    float
        Two-sided p-value in [0, 1] (1 when there is no discordant pair).

    Examples
    --------
    >>> discordant_pvalue(0, 2)
    0.5
    >>> discordant_pvalue(0, 0)
    1.0
    >>> discordant_pvalue(0, 12) < 0.001
    True
    >>> round(discordant_pvalue(0, 12, deff=4.0), 3)  # 3 effective discordant pairs
    0.25
    """
    from scipy.special import betainc

    n = float(level_only) + float(ref_only)
    if n == 0:
        return 1.0
    d = max(float(deff), 1.0) if np.isfinite(deff) else 1.0
    n_e, x_e = n / d, min(float(level_only), float(ref_only)) / d
    # P(X <= x) for X ~ Binomial(n, 1/2) is I_{1/2}(n - x, x + 1)
    return float(min(1.0, 2.0 * betainc(n_e - x_e, x_e + 1.0, 0.5))) if n_e > x_e else 1.0


def discordant_design_effect(sign: np.ndarray, seed_lo: np.ndarray, seed_hi: np.ndarray, n_seeds: int) -> float:
    """Design effect of the discordance count ``D = sum(sign)`` of an FMR sign test (at least 1).

    ``sign`` is +1 (false match at the level only) or -1 (at the reference only) per discordant
    comparison, ``seed_lo``/``seed_hi`` its two seeds. Under no effect ``E[D] = 0``, and the
    dyadic-robust variance of ``D`` is ``sum_s T_s^2 - sum_dyads E_d^2`` (``T_s``: the signs of the
    comparisons seed ``s`` takes part in, ``E_d``: of one seed pair, over conditions); with
    independent comparisons it is the number of discordant comparisons, the sign test's variance.

    Parameters
    ----------
    sign : numpy.ndarray
        +1 or -1 per discordant comparison.
    seed_lo, seed_hi : numpy.ndarray
        The two seeds (integer indices below ``n_seeds``) of each comparison.
    n_seeds : int
        Number of seeds.

    Returns
    -------
    float
        Dyadic-robust variance of ``D`` over the number of discordant comparisons, at least 1
        (1 when there is none).

    Examples
    --------
    >>> discordant_design_effect(np.array([-1.0, -1.0]), np.array([0, 2]), np.array([1, 3]), 4)
    1.0
    >>> discordant_design_effect(np.array([-1.0, -1.0]), np.array([0, 0]), np.array([1, 2]), 3)  # one seed in both
    2.0
    """
    sign = np.asarray(sign, dtype=float)
    n = float(np.sum(sign * sign))
    if n == 0:
        return 1.0
    lo, hi = np.asarray(seed_lo, np.int64), np.asarray(seed_hi, np.int64)
    _, dyad = np.unique(lo * n_seeds + hi, return_inverse=True)
    E = np.bincount(dyad.ravel(), weights=sign)
    T = np.bincount(lo, weights=sign, minlength=n_seeds) + np.bincount(hi, weights=sign, minlength=n_seeds)
    var = float(T @ T - E @ E)
    return max(1.0, var / n)


# ---------------------------------------------------------------------------------------------
# leakage of edits into the protected measures


def _attribute_columns(faces: pd.DataFrame, attributes: list[str]) -> list[tuple[str, str]]:
    """(protected attribute, measure column) pairs present in ``faces``."""
    out = []
    for attr in attributes:
        measure = PROTECTED_MEASURES.get(attr, f"measured_{attr}")
        if attr in faces.columns and measure in faces.columns:
            out.append((attr, measure))
    return out


def leakage_table(faces: pd.DataFrame, attributes: list[str], levels: dict[str, list[str]],
                  leakage_max: float) -> pd.DataFrame:
    """How far each edit condition moves each protected measure, as a share of the level gap.

    ``shift``: mean over seeds and protected cells of (measure of the edited face - measure of its
    prototype, same seed and cell). ``level_gap``: the smallest difference between the prototype
    means of *adjacent protected levels* of that attribute (levels ordered by their mean measure),
    each level's mean averaged over the cells of the other protected attributes first, so in a
    crossed skin x gender design the skin gap is between skin levels, never between gender cells.
    ``share = |shift| / level_gap``. An edit attribute is ``pooled`` (may enter the primary pool)
    when every level of it has ``share <= leakage_max`` for every protected attribute.

    Parameters
    ----------
    faces : pandas.DataFrame
        ``faces.parquet`` (``seed``, ``group``, protected columns, ``edit_attr``, ``edit_level``,
        ``measured_*``).
    attributes : list of str
        Protected attributes (columns of ``faces``).
    levels : dict
        Protected attribute -> its levels (only levels present are used).
    leakage_max : float
        The protocol's ``analysis.primary.leakage_max``.

    Returns
    -------
    pandas.DataFrame
        ``attribute, edit_attr, edit_level, measure, shift, level_gap, share, pooled`` (one row per
        protected attribute with a measure x edit condition; empty when no measure is present).

    Examples
    --------
    >>> rows = []
    >>> for seed in range(3):
    ...     for skin, ita in (("light", 40.0), ("dark", -40.0)):
    ...         for gender, d in (("female", 0.0), ("male", 1.0)):
    ...             for attr, lv, shift in (("none", 0.0, 0.0), ("exposure", 2.0, 60.0), ("yaw", 2.0, 1.0)):
    ...                 rows.append({"seed": seed, "group": f"skin_tone={skin}|gender={gender}", "skin_tone": skin,
    ...                              "gender": gender, "edit_attr": attr, "edit_level": lv,
    ...                              "measured_skin_ita": ita + d + shift})
    >>> t = leakage_table(pd.DataFrame(rows), ["skin_tone"], {"skin_tone": ["light", "dark"]}, 0.25)
    >>> t[["edit_attr", "level_gap", "share", "pooled"]].values.tolist()
    [['exposure', 80.0, 0.75, False], ['yaw', 80.0, 0.0125, True]]
    """
    cols = ["attribute", "edit_attr", "edit_level", "measure", "shift", "level_gap", "share", "pooled"]
    if faces.empty or "edit_attr" not in faces.columns:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    proto_faces = faces[faces["edit_attr"] == "none"]
    edited = faces[faces["edit_attr"] != "none"]
    rows = []
    for attr, measure in _attribute_columns(faces, attributes):
        others = [a for a in attributes if a != attr and a in faces.columns]
        # level mean: mean over the other attributes' cells of each cell's prototype mean
        keys = [attr] + others
        cell_means = proto_faces.groupby(keys, observed=True)[measure].mean()
        level_means = cell_means.groupby(level=0).mean()
        wanted = [lv for lv in levels.get(attr, list(level_means.index)) if lv in level_means.index]
        ordered = np.sort(level_means.loc[wanted].to_numpy(dtype=float))
        gaps = np.diff(ordered)
        gaps = gaps[np.isfinite(gaps)]
        gap = float(gaps.min()) if len(gaps) and gaps.min() > 0 else float("nan")
        base = proto_faces[["seed", "group", measure]].rename(columns={measure: "_base"})
        joined = edited[["seed", "group", "edit_attr", "edit_level", measure]].merge(base, on=["seed", "group"])
        joined["_d"] = joined[measure] - joined["_base"]
        for (ea, el), d in joined.groupby(["edit_attr", "edit_level"], sort=True):
            shift = float(d["_d"].mean())
            share = abs(shift) / gap if np.isfinite(gap) else float("nan")
            rows.append({"attribute": attr, "edit_attr": str(ea), "edit_level": float(el), "measure": measure,
                         "shift": shift, "level_gap": gap, "share": share})
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    out = pd.DataFrame(rows)
    # an edit attribute is pooled as a whole: all its levels within the bound for every protected measure
    ok = out["share"].le(leakage_max) | out["share"].isna()
    pooled_attr = ok.groupby(out["edit_attr"]).transform("all")
    out["pooled"] = pooled_attr.astype(bool)
    return out[cols].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# the primary family


def primary_conditions(conditions: list[str], spec_conditions, leakage: pd.DataFrame) -> tuple[list[str], list[str]]:
    """``(tested, pooled)``: the edit conditions tested one by one in the primary family, and those
    pooled into ``primary_pool``.

    ``auto``: every condition is tested; the pool is every condition whose edit attribute is marked
    ``pooled`` in ``leakage`` (the prototype condition ``none`` and edits without a leakage row
    included). A list: exactly those conditions, tested and pooled.

    Parameters
    ----------
    conditions : list of str
        The run's edit conditions (``none`` and ``attr=level``).
    spec_conditions : "auto" or list of str
        The protocol's ``analysis.primary.conditions``.
    leakage : pandas.DataFrame or None
        :func:`leakage_table` (``edit_attr``, ``pooled``).

    Returns
    -------
    (list of str, list of str)
        Tested and pooled conditions, in the order of ``conditions``.

    Examples
    --------
    >>> leak = pd.DataFrame({"edit_attr": ["exposure", "yaw"], "pooled": [False, True]})
    >>> primary_conditions(["none", "exposure=+2", "yaw=+2"], "auto", leak)
    (['none', 'exposure=+2', 'yaw=+2'], ['none', 'yaw=+2'])
    >>> primary_conditions(["none", "exposure=+2", "yaw=+2"], ["yaw=+2"], leak)
    (['yaw=+2'], ['yaw=+2'])
    """
    if spec_conditions != "auto":
        chosen = [c for c in conditions if c in set(spec_conditions)]
        return chosen, chosen
    excluded = set()
    if leakage is not None and len(leakage):
        excluded = set(leakage.loc[~leakage["pooled"].astype(bool), "edit_attr"])
    pooled = [c for c in conditions if c.split("=", 1)[0] not in excluded]
    return list(conditions), pooled


def mark_family(contrasts: pd.DataFrame, metrics: list[str], tested: list[str], primary_contrast: str,
                primary_target: float | None = None) -> pd.DataFrame:
    """Add ``family``: ``primary`` for the declared metrics x (tested conditions + ``primary_pool``)
    rows of the level-vs-reference contrasts (``contrast == primary_contrast``) at the primary target
    FMR (the protocol's first ``target_fmr``; rows without a target, such as threshold-free ones,
    qualify), ``exploratory`` for every other row (other targets, FTE rows, ``all``-condition rows,
    ratios, interactions, ...). One operating point makes the primary family: the other targets are
    reported beside it, so the family's size does not grow with the number of targets.

    Parameters
    ----------
    contrasts : pandas.DataFrame
        Contrast rows (``metric``, ``condition``, ``contrast``, ``model``, optionally ``target_fmr``).
    metrics : list of str
        The declared primary metrics.
    tested : list of str
        Edit conditions tested one by one (:func:`primary_conditions`).
    primary_contrast : str
        The ``contrast`` value of the level-vs-reference contrasts.
    primary_target : float, optional
        The primary target FMR; None: every target qualifies.

    Returns
    -------
    pandas.DataFrame
        A copy of ``contrasts`` with ``family`` added.

    Examples
    --------
    >>> c = pd.DataFrame({"metric": ["fnmr_diff", "fnmr_diff", "fnmr_ratio"], "condition": ["primary_pool", "all", "primary_pool"],
    ...                   "contrast": "cell", "model": "m"})
    >>> mark_family(c, ["fnmr_diff"], [], "cell")["family"].tolist()
    ['primary', 'exploratory', 'exploratory']
    """
    df = contrasts.copy()
    if df.empty:
        df["family"] = pd.Series(dtype=str)
        return df
    conds = set(tested) | {PRIMARY_POOL}
    model_ok = ~df["model"].astype(str).str.startswith("detector:")
    prim = df["metric"].isin(metrics) & df["condition"].isin(conds) & (df["contrast"] == primary_contrast) & model_ok
    if primary_target is not None and "target_fmr" in df.columns:
        t = pd.to_numeric(df["target_fmr"], errors="coerce")
        prim &= t.isna() | np.isclose(t.fillna(-1.0), primary_target)
    df["family"] = np.where(prim, "primary", "exploratory")
    return df


def adjust_by_family(df: pd.DataFrame, method: str) -> pd.DataFrame:
    """Fill ``p_adjusted`` with Holm or Benjamini-Hochberg within each ``family`` separately.

    Parameters
    ----------
    df : pandas.DataFrame
        Rows with ``p_value`` and ``family`` (:func:`mark_family`).
    method : str
        A :func:`statsmodels.stats.multitest.multipletests` method (``holm``, ``fdr_bh``).

    Returns
    -------
    pandas.DataFrame
        A copy of ``df`` with ``adjust`` (the method) and ``p_adjusted`` (NaN where ``p_value`` is NaN).

    Examples
    --------
    >>> d = pd.DataFrame({"p_value": [0.01, 0.04, 0.01, float("nan")], "family": ["primary", "primary", "exploratory", "exploratory"]})
    >>> adjust_by_family(d, "holm")["p_adjusted"].tolist()
    [0.02, 0.04, 0.01, nan]
    """
    from statsmodels.stats.multitest import multipletests

    df = df.copy()
    df["adjust"] = method
    adj = np.full(len(df), np.nan)
    if len(df):
        p = df["p_value"].to_numpy(dtype=float)
        fam = df["family"].to_numpy()
        for f in pd.unique(fam):
            idx = np.flatnonzero((fam == f) & ~np.isnan(p))
            if len(idx):
                adj[idx] = multipletests(p[idx], method=method)[1]
    df["p_adjusted"] = adj
    return df


def family_summary(contrasts: pd.DataFrame, method: str, alpha: float) -> dict:
    """``summary.json``'s ``primary_family``: size, method, significant count and alpha, run-wide and per model.

    Parameters
    ----------
    contrasts : pandas.DataFrame
        Contrast rows with ``model``, ``family`` and ``p_adjusted`` (:func:`adjust_by_family`).
    method : str
        The adjustment method, as reported.
    alpha : float
        Significance level applied to ``p_adjusted``.

    Returns
    -------
    dict
        ``size, method, n_significant, alpha, models`` (model -> ``size, n_significant``).

    Examples
    --------
    >>> d = pd.DataFrame({"model": ["a", "a", "b"], "family": "primary", "p_adjusted": [0.01, 0.2, 0.03]})
    >>> s = family_summary(d, "holm", 0.05)
    >>> s["size"], s["n_significant"], s["models"]["a"]
    (3, 2, {'size': 2, 'n_significant': 1})
    """
    prim = contrasts[contrasts["family"] == "primary"] if "family" in contrasts.columns else contrasts.iloc[0:0]
    sig = prim["p_adjusted"] < alpha if len(prim) else pd.Series(dtype=bool)
    models = {}
    for m, d in prim.groupby("model", sort=False):
        models[str(m)] = {"size": int(len(d)), "n_significant": int((d["p_adjusted"] < alpha).sum())}
    return {"size": int(len(prim)), "method": method, "n_significant": int(sig.sum()), "alpha": round(float(alpha), 12),
            "models": models}
