"""Gender analyses of a crossed design: the age-adjusted gender contrast and the impostor-similarity shift.

Two confounds make a raw "female vs male" contrast of synthetic faces hard to read (issue #18):

* **Apparent age.** The gender direction of the generator also makes faces look younger: "female"
  prototypes measure 4-5 years younger than the "male" prototype of the same seed. If a metric
  depends on apparent age, the raw contrast mixes the two. :func:`gender_age_table` regresses, within
  seed (the paired design), the per-unit female-minus-male difference of the metric on the per-unit
  difference of the prototypes' measured age; the intercept is the gender effect at equal apparent
  age. A unit is one seed at one level of every other protected attribute (a seed gives three units
  in the skin x gender design: one per skin level).
* **Impostor similarity.** If the generator makes female faces more alike, female impostor pairs
  score higher and the FMR of female cells rises for a reason that is not the recognizer's.
  :func:`impostor_shift_table` reports the mean impostor score of female-female and male-male
  impostor pairs (every impostor pair joins two seeds within one cell) and their FMR at the global
  threshold, with seed-pair-clustered (dyadic-robust) intervals.

Methods (docs/statistics.md, "Gender: age-adjusted contrast and impostor shift"):

* Age regression: OLS of the unit differences on the age difference. Interval: seed-cluster bootstrap
  percentile with the run's weight matrix (a replicate reweights every unit of a drawn seed);
  ``ci_lo_cluster``/``ci_hi_cluster`` give statsmodels' cluster-robust (by seed) normal interval beside
  it. p-value: the run's paired sign-flip idea applied to the regression (Freedman-Lane): the residuals
  of the model without the gender term (``d_metric = b * d_age + e``) are flipped seed by seed, which
  is what swapping a seed's female and male renderings does to them; the intercept of every flipped
  data set is ``sum_seed s_seed z_seed`` with ``z_seed`` the seed's contribution, so the test is exact
  over every flip up to :data:`~faceaudit.stats.primary.EXACT_MAX_UNITS` seeds and Monte Carlo over the
  run's flip matrix above. The unadjusted row (``adjusted == False``) is the same machinery without
  the covariate (the mean unit difference).
* Impostor shift: differences of pooled rates and means; dyadic-robust variance over seed pairs,
  normal interval. FMR p-value: the run's sign test of the discordant seed pairs; mean-score p-value:
  normal with the dyadic-robust SE (a seed pair is the paired unit, and pairs sharing a seed are
  dependent, so no seed flip is exact here).
"""

from __future__ import annotations

import itertools
from typing import Optional

import numpy as np
import pandas as pd

from faceaudit.stats.bootstrap import percentile_ci
from faceaudit.stats.dyadic import DYADIC_METHOD, DyadicDesign, normal_interval, rate_influence
from faceaudit.stats.primary import EXACT_MAX_UNITS, PRIMARY_POOL

__all__ = ["GENDER_PLACEMENT_MEASURE", "GENDER_VALIDATION_MEASURES", "AGE_MEASURES", "AGE_CLASSIFIERS",
           "GENDER_AGE_COLUMNS", "IMPOSTOR_SHIFT_COLUMNS", "GENDER_PLACEMENT_COLUMNS", "gender_measures",
           "sign_flip_sum_pvalue", "age_regression", "gender_age_table", "impostor_shift_table",
           "gender_placement_table"]

#: faces column of the placing classifier's P(male)
GENDER_PLACEMENT_MEASURE = "measured_gender_pmale"
#: faces columns of the validating classifier's P(male), newest name first
GENDER_VALIDATION_MEASURES = ("measured_gender_pmale_validation", "measured_gender_pmale_independent")
#: apparent-age measures used as the covariate, the main one first
AGE_MEASURES = ("measured_age", "measured_age_independent")
#: which classifier each age measure comes from (faceaudit.measure.perceived)
AGE_CLASSIFIERS = {"measured_age": "faceres age head", "measured_age_independent": "SSR-Net"}

REGRESSION_CI_METHOD = "seed-cluster bootstrap percentile of the OLS intercept (units reweighted by their seed)"
REGRESSION_P_METHOD = ("paired sign-flip of the seeds' residuals under no gender effect (Freedman-Lane; exact below "
                       "13 informative seeds, else the run's random flips)")
#: FMR rows of the age regression: a seed's share of false matches shares its impostor pairs with other seeds
FMR_UNIT_NOTE = "; approximate for FMR (every impostor pair enters two seeds' shares)"
SHIFT_SCORE_P_METHOD = "normal with the dyadic-robust (seed-pair) SE"
SHIFT_FMR_P_METHOD = ("sign test of the discordant seed pairs (exact binomial; counts divided by the dyadic design "
                      "effect of seed pairs sharing a seed, >= 1)")

GENDER_AGE_COLUMNS = ["model", "metric", "level", "reference", "scope", "condition", "target_fmr", "age_measure",
                      "age_classifier", "adjusted", "estimate", "ci_lo", "ci_hi", "p_value", "p_adjusted", "family",
                      "se_cluster", "ci_lo_cluster", "ci_hi_cluster", "age_slope", "mean_age_diff", "n_units",
                      "n_seeds", "ci_method", "p_method"]
GENDER_PLACEMENT_COLUMNS = ["level", "placed_by", "validated_by", "placement_measure", "validation_measure",
                            "p_male_min", "p_male_max", "n_prototypes", "n_agree", "agree_share",
                            "mean_pmale_placement", "mean_pmale_validation", "mean_age", "mean_age_independent"]
IMPOSTOR_SHIFT_COLUMNS = ["model", "metric", "level", "reference", "scope", "condition", "target_fmr", "threshold",
                          "value_level", "value_ref", "events_level", "events_ref", "n_level", "n_ref", "estimate",
                          "ci_lo", "ci_hi", "p_value", "p_adjusted", "family", "n_seeds", "ci_method", "p_method"]


def gender_measures(columns) -> dict[str, Optional[str]]:
    """The faces columns of the gender placement and its validation, whichever names the run has.

    The validating classifier's P(male) was first written as ``measured_gender_pmale_independent``
    and is now ``measured_gender_pmale_validation``; every reader goes through this function.

    Parameters
    ----------
    columns : iterable of str
        The faces table's columns (or the table itself).

    Returns
    -------
    dict
        ``{"placement": column or None, "validation": column or None}``.

    Examples
    --------
    >>> gender_measures(["measured_gender_pmale", "measured_gender_pmale_independent"])
    {'placement': 'measured_gender_pmale', 'validation': 'measured_gender_pmale_independent'}
    >>> gender_measures(["measured_gender_pmale_validation", "measured_gender_pmale_independent"])["validation"]
    'measured_gender_pmale_validation'
    """
    cols = set(columns)
    validation = next((c for c in GENDER_VALIDATION_MEASURES if c in cols), None)
    return {"placement": GENDER_PLACEMENT_MEASURE if GENDER_PLACEMENT_MEASURE in cols else None,
            "validation": validation}


def sign_flip_sum_pvalue(z, flips: Optional[np.ndarray] = None) -> float:
    """Two-sided p-value of ``sum(z)`` against its sign-flip distribution ``sum(s * z)``, ``s = +-1``.

    Parameters
    ----------
    z : array_like
        Per unit (seed): its contribution to the statistic.
    flips : numpy.ndarray, optional
        ``(n_flips, n)`` 0/1 matrix (:func:`faceaudit.stats.primary.flip_matrix`), used when more than
        :data:`~faceaudit.stats.primary.EXACT_MAX_UNITS` units are non-zero; default 9999 flips from seed 0.

    Returns
    -------
    float
        Exact (every flip of the non-zero units) or Monte Carlo ``(1 + hits) / (1 + n_flips)``.

    Examples
    --------
    >>> sign_flip_sum_pvalue([1.0, 1.0, 1.0])  # 2 of 8 flips as extreme
    0.25
    >>> sign_flip_sum_pvalue([0.0, 0.0])
    1.0
    """
    from faceaudit.stats.primary import flip_matrix

    z = np.asarray(z, dtype=float)
    obs = abs(z.sum())
    active = z[np.abs(z) > 1e-15 * max(1.0, np.abs(z).max(initial=0.0))]
    if len(active) == 0:
        return 1.0
    if len(active) <= EXACT_MAX_UNITS:
        S = 1.0 - 2.0 * np.array(list(itertools.product((0.0, 1.0), repeat=len(active))))
        t = np.abs(S @ active)
        return float(np.mean(t >= obs * (1 - 1e-9) - 1e-15))
    if flips is None or flips.shape[1] < len(active):
        flips = flip_matrix(len(active), np.random.default_rng(0))
    S = 1.0 - 2.0 * flips[:, :len(active)]
    t = np.abs(S @ active)
    return float((1 + np.sum(t >= obs * (1 - 1e-9) - 1e-15)) / (1 + len(S)))


def age_regression(seed, d_metric, d_age, W: np.ndarray, level: float, flips: Optional[np.ndarray] = None,
                   adjusted: bool = True) -> dict:
    """The gender effect at equal apparent age: intercept of ``d_metric ~ 1 + d_age`` over paired units.

    Parameters
    ----------
    seed : array_like of int
        Seed index (column of ``W``) of each unit.
    d_metric : array_like
        Per unit: the metric of the level's rendering minus the reference's (female minus male).
    d_age : array_like
        Per unit: the level prototype's measured age minus the reference prototype's.
    W : numpy.ndarray
        ``(n_boot, n_seeds)`` seed-bootstrap weights (the run's).
    level : float
        Confidence level.
    flips : numpy.ndarray, optional
        The run's sign-flip matrix (``(n_flips, n_seeds)``).
    adjusted : bool
        False: no covariate (the unadjusted paired contrast, the mean unit difference).

    Returns
    -------
    dict
        ``estimate, ci_lo, ci_hi, p_value, se_cluster, ci_lo_cluster, ci_hi_cluster, age_slope,
        mean_age_diff, n_units, n_seeds`` (NaN where the age differences do not vary).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> seed = np.repeat(np.arange(40), 3)
    >>> d_age = rng.normal(-4.0, 2.0, 120)
    >>> d_y = 0.01 * d_age + rng.normal(0, 0.01, 120)  # the metric depends on age only
    >>> W = rng.multinomial(40, np.full(40, 1 / 40), size=500).astype(float)
    >>> raw = age_regression(seed, d_y, d_age, W, 0.95, adjusted=False)
    >>> adj = age_regression(seed, d_y, d_age, W, 0.95)
    >>> bool(raw["ci_hi"] < 0), bool(adj["ci_lo"] < 0 < adj["ci_hi"])
    (True, True)
    """
    import statsmodels.api as sm

    seed = np.asarray(seed, dtype=np.int64)
    y = np.asarray(d_metric, dtype=float)
    x = np.asarray(d_age, dtype=float)
    keep = np.isfinite(y) & np.isfinite(x)
    seed, y, x = seed[keep], y[keep], x[keep]
    n = len(y)
    uniq = np.unique(seed)
    out = {"estimate": np.nan, "ci_lo": np.nan, "ci_hi": np.nan, "p_value": np.nan, "se_cluster": np.nan,
           "ci_lo_cluster": np.nan, "ci_hi_cluster": np.nan, "age_slope": np.nan,
           "mean_age_diff": float(x.mean()) if n else np.nan, "n_units": int(n), "n_seeds": int(len(uniq))}
    if len(uniq) < 3 or (adjusted and np.ptp(x) <= 0):
        return out
    X = np.column_stack([np.ones(n), x]) if adjusted else np.ones((n, 1))
    fit = sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": seed})
    est = float(fit.params[0])
    lo_c, hi_c = (float(v) for v in fit.conf_int(alpha=1 - level)[0])
    out.update(estimate=est, se_cluster=float(fit.bse[0]), ci_lo_cluster=lo_c, ci_hi_cluster=hi_c,
               age_slope=float(fit.params[1]) if adjusted else np.nan)
    # bootstrap: weighted least squares with every unit weighted by its seed's bootstrap count
    Wu = W[:, seed]
    sw = Wu.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ym = (Wu @ y) / sw
        if adjusted:
            xm = (Wu @ x) / sw
            sxx = (Wu @ (x * x)) / sw - xm * xm
            sxy = (Wu @ (x * y)) / sw - xm * ym
            reps = ym - np.where(sxx > 0, sxy / np.where(sxx > 0, sxx, 1.0), np.nan) * xm
        else:
            reps = ym
    lo, hi = percentile_ci(reps, level)
    out.update(ci_lo=float(lo), ci_hi=float(hi))
    # Freedman-Lane sign flip: residuals of the model without the intercept, flipped per seed; the
    # intercept of a flipped data set is c' (b x + s e) = sum_seed s_seed z_seed (c' x = 0)
    c = np.linalg.pinv(X)[0]
    if adjusted:
        e = y - (x @ y) / (x @ x) * x
    else:
        e = y
    z = np.bincount(np.searchsorted(uniq, seed), weights=c * e, minlength=len(uniq))
    if flips is not None and flips.shape[1] >= len(uniq):
        flips = flips[:, :len(uniq)]
    out["p_value"] = sign_flip_sum_pvalue(z, flips)
    return out


def _gender_pairs(groups: list[str], attributes) -> list[tuple[str, str, str, str, str]]:
    """``(level, reference, scope, level group, reference group)`` of every cell pair that differs only
    in gender (``scope``: the other attributes' levels, e.g. ``skin=dark``)."""
    from faceaudit.stats.intersectional import parse_group

    g_attr = next((a for a in attributes if a[0] == "gender"), None)
    if g_attr is None:
        return []
    _, prefix, levels, ref = g_attr
    parsed = {g: parse_group(g) for g in groups}
    out = []
    for g, parts in parsed.items():
        lv = parts.get(prefix)
        if lv is None or lv == ref:
            continue
        other = {k: v for k, v in parts.items() if k != prefix}
        match = [r for r, p in parsed.items() if p.get(prefix) == ref and {k: v for k, v in p.items() if k != prefix} == other]
        if match:
            scope = "|".join(f"{k}={v}" for k, v in other.items()) or "all"
            out.append((lv, ref, scope, g, match[0]))
    return out


def _prototype_measure(faces: pd.DataFrame, layout, measure: str) -> Optional[np.ndarray]:
    """``(S, G)`` the prototype's ``measure`` per seed and group (NaN where missing)."""
    if faces is None or measure not in faces.columns or "edit_attr" not in faces.columns:
        return None
    proto = faces[faces["edit_attr"] == "none"]
    proto = proto[proto["group"].isin(layout.groups) & proto["seed"].isin(layout.seeds)]
    out = np.full((layout.S, layout.G), np.nan)
    s = layout.seed_index(proto["seed"], "faces.parquet")
    g = layout.group_index(proto["group"], "faces.parquet")
    out[s, g] = proto[measure].to_numpy(dtype=float)
    return out


def _per_seed_rate(ratio, g: int, conds: list[int]) -> np.ndarray:
    num = ratio.num.per_seed[:, g, conds].sum(axis=-1)
    den = ratio.den.per_seed[:, g, conds].sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _per_seed_fmr(mr, target: float, g: int, conds: list[int]) -> Optional[np.ndarray]:
    """Per seed: the share of its impostor comparisons in cell ``g`` that falsely match (each impostor
    pair counts for both its seeds); None when the impostor pairs are not held in memory."""
    imp = mr.md.impostor
    if len(imp) == 0 or target not in mr.thresholds:
        return None
    S = mr.md.layout.S
    m = imp.ok & (imp.group == g) & np.isin(imp.cond, conds)
    hit = (imp.score[m] >= mr.thresholds[target]).astype(float)
    a, b = imp.seed_a[m].astype(np.int64), imp.seed_b[m].astype(np.int64)
    e = np.bincount(a, hit, S) + np.bincount(b, hit, S)
    n = np.bincount(a, minlength=S) + np.bincount(b, minlength=S)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, e / np.where(n > 0, n, 1), np.nan)


def gender_age_table(mr, faces: pd.DataFrame, attributes, conds: list[int], target: float, W: np.ndarray,
                     level: float, flips: Optional[np.ndarray] = None, condition: str = PRIMARY_POOL) -> pd.DataFrame:
    """One model's gender contrasts with and without adjustment for apparent age (``results/gender_age.parquet``).

    Per gender-differing cell pair (female vs male at each level of the other attributes) and seed, the
    unit difference of FNMR and FMR at the global threshold of ``target`` and of the mean genuine score
    over the conditions ``conds``, regressed on the prototypes' age difference
    (:func:`age_regression`), pooled over the other attributes' levels (``scope == "all"``).

    Parameters
    ----------
    mr : ModelRates
        One model's rates (per-seed counts; FMR needs the impostor pairs in memory).
    faces : pandas.DataFrame
        ``faces.parquet`` (``seed``, ``group``, ``edit_attr``, the age measures).
    attributes : list of (str, str, list of str, str)
        :attr:`faceaudit.protocol.Protocol.group_attributes`; nothing without a ``gender`` attribute.
    conds : list of int
        Condition indices pooled (the primary pool).
    target : float
        Target FMR of the global threshold.
    W : numpy.ndarray
        The run's seed-bootstrap weights.
    level : float
        Confidence level.
    flips : numpy.ndarray, optional
        The run's sign-flip matrix.
    condition : str
        The ``condition`` label of the rows.

    Returns
    -------
    pandas.DataFrame
        :data:`GENDER_AGE_COLUMNS`: per metric x age measure, an unadjusted and an adjusted row
        (``p_adjusted``/``family`` filled by the caller).

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> from faceaudit.stats.error_rates import compute_model_rates
    >>> groups = ("skin=light|gender=male", "skin=light|gender=female")
    >>> md = example_model_data(groups=groups)
    >>> W = np.ones((20, md.layout.S))
    >>> mr = compute_model_rates(md, W, [0.1])
    >>> rows = [{"seed": s, "group": g, "edit_attr": "none", "measured_age": 30.0 - 4 * (g.endswith("female"))}
    ...         for s in md.layout.seeds for g in groups]
    >>> attrs = [("skin_tone", "skin", ["light"], "light"), ("gender", "gender", ["male", "female"], "male")]
    >>> t = gender_age_table(mr, pd.DataFrame(rows), attrs, list(range(md.layout.C)), 0.1, W, 0.95)
    >>> sorted(set(t["metric"])), float(t["mean_age_diff"].iloc[0])
    (['fmr_diff', 'fnmr_diff', 'genuine_score_diff'], -4.0)
    """
    L = mr.md.layout
    pairs = _gender_pairs(L.groups, attributes)
    if not pairs:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in GENDER_AGE_COLUMNS})
    rows = []
    metrics = [("fnmr_diff", lambda g: _per_seed_rate(mr.fnmr[target], g, conds) if target in mr.fnmr else None),
               ("genuine_score_diff", lambda g: _per_seed_rate(mr.gscore, g, conds)),
               ("fmr_diff", lambda g: _per_seed_fmr(mr, target, g, conds))]
    for measure in AGE_MEASURES:
        age = _prototype_measure(faces, L, measure)
        if age is None:
            continue
        for lv in sorted({p[0] for p in pairs}):
            sub = [p for p in pairs if p[0] == lv]
            ref = sub[0][1]
            for metric, per_seed in metrics:
                seeds, dy, dx = [], [], []
                for _, _, _, g_name, r_name in sub:
                    g, r = L.groups.index(g_name), L.groups.index(r_name)
                    yg, yr = per_seed(g), per_seed(r)
                    if yg is None or yr is None:
                        break
                    seeds.append(np.arange(L.S))
                    dy.append(yg - yr)
                    dx.append(age[:, g] - age[:, r])
                else:
                    seed_u, dy_u, dx_u = np.concatenate(seeds), np.concatenate(dy), np.concatenate(dx)
                    for adjusted in (False, True):
                        res = age_regression(seed_u, dy_u, dx_u, W, level, flips, adjusted=adjusted)
                        rows.append({"model": mr.md.model, "metric": metric, "level": lv, "reference": ref,
                                     "scope": "all", "condition": condition,
                                     "target_fmr": float("nan") if metric == "genuine_score_diff" else float(target),
                                     "age_measure": measure, "age_classifier": AGE_CLASSIFIERS.get(measure, measure),
                                     "adjusted": adjusted, **res, "p_adjusted": float("nan"), "family": "exploratory",
                                     "ci_method": REGRESSION_CI_METHOD + (FMR_UNIT_NOTE if metric == "fmr_diff" else ""),
                                     "p_method": REGRESSION_P_METHOD + (FMR_UNIT_NOTE if metric == "fmr_diff" else "")})
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in GENDER_AGE_COLUMNS})
    return pd.DataFrame(rows)[GENDER_AGE_COLUMNS]


def impostor_shift_table(mr, attributes, conds: list[int], target: float, level: float,
                         condition: str = PRIMARY_POOL) -> pd.DataFrame:
    """Mean impostor score and FMR of female-female vs male-male impostor pairs (``results/impostor_shift.parquet``).

    Pooled over the other attributes' levels (``scope == "all"``) and at each of them (``scope ==
    "skin=dark"``, ...), over the conditions ``conds``; the FMR at the global threshold of ``target``.

    Parameters
    ----------
    mr : ModelRates
        One model's rates; the impostor pairs must be in memory (``mr.md.impostor``), else no rows.
    attributes : list of (str, str, list of str, str)
        :attr:`faceaudit.protocol.Protocol.group_attributes`.
    conds : list of int
        Condition indices pooled.
    target : float
        Target FMR of the global threshold.
    level : float
        Confidence level.
    condition : str
        The ``condition`` label of the rows.

    Returns
    -------
    pandas.DataFrame
        :data:`IMPOSTOR_SHIFT_COLUMNS`: ``metric`` ``impostor_score_mean`` (level minus reference) and
        ``fmr`` (level minus reference), values of both sides, counts, dyadic-robust interval.

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> from faceaudit.stats.error_rates import compute_model_rates
    >>> groups = ("skin=light|gender=male", "skin=light|gender=female")
    >>> md = example_model_data(groups=groups)
    >>> mr = compute_model_rates(md, np.ones((20, md.layout.S)), [0.1])
    >>> attrs = [("skin_tone", "skin", ["light"], "light"), ("gender", "gender", ["male", "female"], "male")]
    >>> t = impostor_shift_table(mr, attrs, list(range(md.layout.C)), 0.1, 0.95)
    >>> t[["metric", "scope"]].values.tolist()
    [['impostor_score_mean', 'all'], ['fmr', 'all'], ['impostor_score_mean', 'skin=light'], ['fmr', 'skin=light']]
    """
    from faceaudit.stats.contrasts import _FmrUnits

    L = mr.md.layout
    imp = mr.md.impostor
    pairs = _gender_pairs(L.groups, attributes)
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in IMPOSTOR_SHIFT_COLUMNS})
    if not pairs or len(imp) == 0 or target not in mr.thresholds:
        return empty
    dyad = DyadicDesign.from_pairs(imp.seed_a, imp.seed_b, L.S)
    in_c = np.isin(imp.cond, conds)
    ok = imp.ok.astype(float)
    score = np.where(imp.ok, imp.score, 0.0)
    hit = mr.false_match(target)
    units = _FmrUnits(mr, target)
    rows = []
    scopes: dict[tuple[str, str], list] = {}
    for p in pairs:
        scopes.setdefault((p[0], "all"), []).append(p)
        if p[2] != "all":
            scopes.setdefault((p[0], p[2]), []).append(p)
    for (lv, scope), sub in scopes.items():
        ref = sub[0][1]
        gl = [L.groups.index(p[3]) for p in sub]
        gr = [L.groups.index(p[4]) for p in sub]
        ml, mref = in_c & np.isin(imp.group, gl), in_c & np.isin(imp.group, gr)
        both = imp.ok & (ml | mref)
        seeds = np.unique(np.concatenate([imp.seed_a[both], imp.seed_b[both]]))
        base = {"model": mr.md.model, "level": lv, "reference": ref, "scope": scope, "condition": condition,
                "n_seeds": int(len(seeds)), "p_adjusted": float("nan"), "family": "exploratory"}
        # mean impostor score: a ratio of totals (sum of scores / compared pairs), linearised per pair
        ul, sl, nl = rate_influence(score, ok, ml)
        ur, sr, nr = rate_influence(score, ok, mref)
        if nl > 0 and nr > 0:
            est = sl / nl - sr / nr
            se = float(np.sqrt(dyad.variance(ul / nl - ur / nr, both)))
            lo, hi, p = normal_interval(est, se, level, 0.0)
            rows.append(base | {"metric": "impostor_score_mean", "target_fmr": float("nan"), "threshold": float("nan"),
                                "value_level": sl / nl, "value_ref": sr / nr, "events_level": float("nan"),
                                "events_ref": float("nan"), "n_level": nl, "n_ref": nr, "estimate": est, "ci_lo": lo,
                                "ci_hi": hi, "p_value": p, "ci_method": DYADIC_METHOD, "p_method": SHIFT_SCORE_P_METHOD})
            ul, el, _ = rate_influence(hit, ok, ml)
            ur, er, _ = rate_influence(hit, ok, mref)
            est = el / nl - er / nr
            se = float(np.sqrt(dyad.variance(ul / nl - ur / nr, both)))
            lo, hi, _ = normal_interval(est, se, level, 0.0)
            # the sign test pairs each level cell with the reference cell at the same other levels
            sig = np.zeros(L.G, dtype=np.int64)
            for i, pr in enumerate(sub):
                sig[L.groups.index(pr[3])] = sig[L.groups.index(pr[4])] = i
            p = units.pvalue_cells(gl, gr, sig, list(conds))
            rows.append(base | {"metric": "fmr", "target_fmr": float(target), "threshold": float(mr.thresholds[target]),
                                "value_level": el / nl, "value_ref": er / nr, "events_level": el, "events_ref": er,
                                "n_level": nl, "n_ref": nr, "estimate": est, "ci_lo": lo, "ci_hi": hi, "p_value": p,
                                "ci_method": DYADIC_METHOD, "p_method": SHIFT_FMR_P_METHOD})
    return pd.DataFrame(rows)[IMPOSTOR_SHIFT_COLUMNS] if rows else empty


def gender_placement_table(faces: pd.DataFrame, levels, placed_by: str = "faceres",
                           validated_by: str = "oarriaga") -> pd.DataFrame:
    """How the gender cells were placed and how far the validating classifier agrees (``results/gender_placement.parquet``).

    Per gender level, over the prototypes (``edit_attr == "none"``): how many there are, the share whose
    validating classifier's P(male) falls in the level's bin on the placing classifier
    (``p_male_min <= P < p_male_max``), both classifiers' mean P(male) and the mean apparent age.

    Parameters
    ----------
    faces : pandas.DataFrame
        ``faces.parquet`` (``gender``, ``edit_attr``, the gender and age measures).
    levels : list
        The protocol's gender levels (``name``, ``p_male_min``, ``p_male_max``).
    placed_by, validated_by : str
        The placing and the validating classifier (the protocol's ``placed_by`` and the other one).

    Returns
    -------
    pandas.DataFrame
        :data:`GENDER_PLACEMENT_COLUMNS`; empty without a ``gender`` column or a placement measure.

    Examples
    --------
    >>> from types import SimpleNamespace as L
    >>> faces = pd.DataFrame({"gender": ["female", "female", "male"], "edit_attr": "none",
    ...                       "measured_gender_pmale": [0.2, 0.3, 0.8],
    ...                       "measured_gender_pmale_validation": [0.4, 0.7, 0.9]})
    >>> levels = [L(name="female", p_male_min=0.0, p_male_max=0.5), L(name="male", p_male_min=0.5, p_male_max=1.0)]
    >>> t = gender_placement_table(faces, levels)
    >>> t[["level", "n_prototypes", "n_agree", "agree_share"]].values.tolist()
    [['female', 2, 1, 0.5], ['male', 1, 1, 1.0]]
    """
    cols = gender_measures(faces.columns)
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in GENDER_PLACEMENT_COLUMNS})
    if "gender" not in faces.columns or cols["placement"] is None or not levels:
        return empty
    proto = faces[faces["edit_attr"] == "none"] if "edit_attr" in faces.columns else faces
    rows = []
    for lv in levels:
        d = proto[proto["gender"] == lv.name]
        lo, hi = float(lv.p_male_min), float(lv.p_male_max)
        row = {"level": lv.name, "placed_by": placed_by, "validated_by": validated_by,
               "placement_measure": cols["placement"], "validation_measure": cols["validation"],
               "p_male_min": lo, "p_male_max": hi, "n_prototypes": int(len(d)),
               "mean_pmale_placement": float(d[cols["placement"]].mean()) if len(d) else np.nan,
               "n_agree": np.nan, "agree_share": np.nan, "mean_pmale_validation": np.nan,
               "mean_age": float(d["measured_age"].mean()) if "measured_age" in d.columns and len(d) else np.nan,
               "mean_age_independent": (float(d["measured_age_independent"].mean())
                                        if "measured_age_independent" in d.columns and len(d) else np.nan)}
        if cols["validation"] is not None and len(d):
            v = d[cols["validation"]].astype(float)
            ok = v.notna()
            inside = (v >= lo) & ((v < hi) | ((hi >= 1.0) & (v >= 1.0)))
            row["n_agree"] = int((inside & ok).sum())
            row["agree_share"] = float(row["n_agree"] / ok.sum()) if ok.any() else np.nan
            row["mean_pmale_validation"] = float(v.mean())
        rows.append(row)
    return pd.DataFrame(rows)[GENDER_PLACEMENT_COLUMNS]
