"""Paired contrasts: each protected level against the reference level, within seed.

Every seed is rendered in every group, so a replicate that draws seed ``s`` twice counts *both* its
renderings twice: the bootstrap for ``rate(level) - rate(reference)`` uses the same weight matrix
``W`` for both groups (the replicate of a difference is the difference of the replicates). This is
the cluster bootstrap of the seed-level paired differences; it removes the between-seed variation
that both groups share and so is much tighter than comparing two independent CIs.

Metrics (``estimate`` = level minus/over reference):
- ``fnmr_diff``, ``fmr_diff``: difference of rates at the global threshold of ``target_fmr``;
- ``fnmr_ratio``, ``fmr_ratio``: ratio of smoothed rates ``(e + 0.5)/(n + 1)`` (finite with zero errors);
- ``genuine_score_diff``: difference of mean genuine (compared) scores, threshold-free;
- ``fte_rate_diff``: difference of failure-to-enrol rates, threshold-free.
Per nuisance edit condition (``attribute = "skin_tone|lighting=+2"``): ``fnmr_diff``, ``fmr_diff`` and
``genuine_score_diff`` within that condition.

CI: percentile (equal-tailed) of the paired replicates. p-value: inversion of that interval
(:func:`faceaudit.stats.bootstrap.bootstrap_pvalue`) against 0 (differences) or 1 (ratios), so
"p < 1 - ci_level" and "the CI excludes the null" agree; where no replicate reaches the null the
inversion is stuck at 2/(B+1), and the p-value comes from the normal approximation with the
bootstrap SE instead (:func:`faceaudit.stats.bootstrap.resolved_pvalue`) so that strong effects
survive the multiplicity correction.
FMR contrasts are the exception: impostor pairs join two seeds and the same seed pair is an impostor
pair in every group, so under no effect the seed effects cancel in the paired difference (a
degenerate U-statistic) and the vertex bootstrap (pair weight ``W[a] * W[b]``) counts the pair-level
noise about three times (measured null coverage 100%). ``fmr_diff`` and ``fmr_ratio`` use the
dyadic-robust variance of the paired difference (:mod:`faceaudit.stats.dyadic`; log scale for the
ratio) with a normal interval and the p-value that inverts it (``2 * Phi(-|z|)``), so the same
"p < 1 - ci_level iff the CI excludes the null" rule holds. A sign-flip permutation test would need
exchangeable units; impostor pairs join two seeds, so flipping labels per seed is not defined for
FMR, and one rule for every metric keeps the table consistent. Multiplicity: Holm (default) or
Benjamini-Hochberg over *every* row of a run's contrasts table (all models, target FMRs, metrics and
conditions) — one family, so ``p_adjusted`` is conservative for any single question.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from faceaudit.stats.bootstrap import CI_METHOD, percentile_ci, resolved_pvalue
from faceaudit.stats.data import condition_label
from faceaudit.stats.dyadic import DYADIC_METHOD, normal_interval, rate_influence
from faceaudit.stats.error_rates import ModelRates, Ratio

__all__ = ["CONTRAST_COLUMNS", "THRESHOLD_CONTRAST_METRICS", "THRESHOLD_FREE_CONTRAST_METRICS", "model_contrasts",
           "fmr_contrast", "adjust_pvalues"]

#: contrast metrics at each target FMR, and those that need no threshold (summary.json keys)
THRESHOLD_CONTRAST_METRICS = ("fnmr_diff", "fnmr_ratio", "fmr_diff", "fmr_ratio")
THRESHOLD_FREE_CONTRAST_METRICS = ("genuine_score_diff", "fte_rate_diff")
CONTRAST_COLUMNS = ["model", "attribute", "level", "reference", "metric", "estimate", "ci_lo", "ci_hi",
                    "p_value", "p_adjusted"]


def _level_name(group: str) -> str:
    """``skin=dark`` -> ``dark``; a cell ``skin=dark|gender=female`` -> ``dark|female``."""
    return "|".join(part.split("=", 1)[1] if "=" in part else part for part in group.split("|"))


def _row(model, attribute, group, ref_group, metric, est, reps, level, null, target, n_seeds, condition):
    lo, hi = percentile_ci(reps, level)
    finite = reps[~np.isnan(reps)]
    return {
        "model": model, "attribute": attribute, "level": _level_name(group), "reference": _level_name(ref_group),
        "metric": metric, "estimate": float(est), "ci_lo": float(lo), "ci_hi": float(hi),
        "p_value": resolved_pvalue(reps, est, null, log=metric.endswith("ratio")) if len(finite) else float("nan"),
        "p_adjusted": float("nan"),
        "target_fmr": target, "n_seeds": int(n_seeds), "condition": condition, "group": group,
        "reference_group": ref_group, "null": null, "n_boot": int(len(finite)), "ci_method": CI_METHOD,
    }


def _dyadic_row(model, attribute, group, ref_group, metric, est, se, level, null, target, n_seeds, condition):
    lo, hi, p = normal_interval(est, se, level, null, log=metric.endswith("ratio"))
    return {
        "model": model, "attribute": attribute, "level": _level_name(group), "reference": _level_name(ref_group),
        "metric": metric, "estimate": float(est), "ci_lo": lo, "ci_hi": hi, "p_value": p, "p_adjusted": float("nan"),
        "target_fmr": target, "n_seeds": int(n_seeds), "condition": condition, "group": group,
        "reference_group": ref_group, "null": null, "n_boot": 0,  # analytic interval: no replicates
        "ci_method": DYADIC_METHOD + (", log scale" if metric.endswith("ratio") else ""),
    }


def fmr_contrast(mr: ModelRates, target: float, g: int, r: int, cond: int | None):
    """``(diff, se_diff, ratio, se_log_ratio)`` of group ``g`` vs ``r`` (within condition ``cond``, or pooled).

    The influence of each impostor pair on the paired contrast is summed per seed pair over *both*
    groups before the dyadic variance: the same two identities are an impostor pair in every group,
    and their correlation between groups is exactly what the pairing removes.
    """
    if mr.imp is not None:
        from faceaudit.stats.impostors import fmr_contrast_streamed

        return fmr_contrast_streamed(mr.imp, target, g, r, cond)
    imp = mr.md.impostor
    hit, ok = mr.false_match(target), imp.ok.astype(float)
    in_c = np.ones(len(imp), dtype=bool) if cond is None else imp.cond == cond
    ug, eg, ng = rate_influence(hit, ok, in_c & (imp.group == g))
    ur, er, nr = rate_influence(hit, ok, in_c & (imp.group == r))
    mask = in_c & imp.ok & ((imp.group == g) | (imp.group == r))
    diff = eg / ng - er / nr
    se_diff = np.sqrt(mr.dyad.variance(ug / ng - ur / nr, mask))
    # log of the smoothed ratio: d log((e + 0.5)/(n + 1)) = (de - s dn)/(e + 0.5), linearised at the raw rate
    ratio = ((eg + 0.5) / (ng + 1)) / ((er + 0.5) / (nr + 1))
    se_log = np.sqrt(mr.dyad.variance(ug / (eg + 0.5) - ur / (er + 0.5), mask))
    return diff, se_diff, ratio, se_log


def model_contrasts(mr: ModelRates, attribute: str, reference_group: str, level: float) -> pd.DataFrame:
    """Paired contrasts of every group against the reference group, pooled over edit conditions and
    within each one: FNMR/FMR differences and ratios at each target FMR, genuine-score and FTE
    differences (threshold-free); ``p_adjusted`` is filled later by :func:`adjust_pvalues`.

    Parameters
    ----------
    mr : ModelRates
        One model's rates.
    attribute : str
        The protected attribute (``attribute`` column).
    reference_group : str
        The protocol's reference group.
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        ``CONTRAST_COLUMNS`` and more (``condition``, ``group``, ``target_fmr``, ``ci_method``, ...).

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
    >>> c = model_contrasts(mr, "skin_tone", "skin=light", 0.95)
    >>> row = c[(c["metric"] == "genuine_score_diff") & (c["condition"] == "all")].iloc[0]
    >>> row["group"], bool(row["ci_hi"] < 0)
    ('skin=dark', True)
    """
    L = mr.md.layout
    r = L.groups.index(reference_group)
    C = L.C  # index C is the pooled condition (index L.G the pooled group)
    model = mr.md.model
    rows = []

    def diff(ratio: Ratio, g: int, c: int):
        est = ratio.rate()[g, c] - ratio.rate()[r, c]
        reps = ratio.rate_boot()[:, g, c] - ratio.rate_boot()[:, r, c]
        return est, reps

    def ratio_(ratio: Ratio, g: int, c: int):
        est = ratio.smoothed()[g, c] / ratio.smoothed()[r, c]
        reps = ratio.smoothed_boot()[:, g, c] / ratio.smoothed_boot()[:, r, c]
        return est, reps

    def paired_seeds(count_seeds, g, c):
        return min(count_seeds[g, c], count_seeds[r, c])

    for g, group in enumerate(L.groups):
        if g == r:
            continue
        for t in mr.thresholds:
            for name, ratio, fn, null in (("fnmr_diff", mr.fnmr[t], diff, 0.0), ("fnmr_ratio", mr.fnmr[t], ratio_, 1.0)):
                if ratio.den.point[g, C] == 0 or ratio.den.point[r, C] == 0:
                    continue
                est, reps = fn(ratio, g, C)
                rows.append(_row(model, attribute, group, reference_group, name, est, reps, level, null, t,
                                 paired_seeds(ratio.den.seeds, g, C), "all"))
            f = mr.fmr[t]
            if f.den.point[g, C] > 0 and f.den.point[r, C] > 0:
                d, se_d, q, se_q = fmr_contrast(mr, t, g, r, None)
                n_s = paired_seeds(f.den.seeds, g, C)
                rows.append(_dyadic_row(model, attribute, group, reference_group, "fmr_diff", d, se_d, level, 0.0,
                                        t, n_s, "all"))
                rows.append(_dyadic_row(model, attribute, group, reference_group, "fmr_ratio", q, se_q, level, 1.0,
                                        t, n_s, "all"))
        for name, ratio in (("genuine_score_diff", mr.gscore), ("fte_rate_diff", mr.fte)):
            if ratio.den.point[g, C] == 0 or ratio.den.point[r, C] == 0:
                continue
            est, reps = diff(ratio, g, C)
            rows.append(_row(model, attribute, group, reference_group, name, est, reps, level, 0.0, float("nan"),
                             paired_seeds(ratio.den.seeds, g, C), "all"))
        # Within each edit condition.
        for c, (attr, lv) in enumerate(L.conditions):
            cond = condition_label(attr, lv)
            sub_attr = f"{attribute}|{cond}"
            cands = [("genuine_score_diff", mr.gscore, float("nan"))]
            for t in mr.thresholds:
                cands += [("fnmr_diff", mr.fnmr[t], t), ("fmr_diff", mr.fmr[t], t)]
            for name, ratio, t in cands:
                if ratio.den.point[g, c] == 0 or ratio.den.point[r, c] == 0:
                    continue
                if name == "fmr_diff":
                    d, se_d, _, _ = fmr_contrast(mr, t, g, r, c)
                    rows.append(_dyadic_row(model, sub_attr, group, reference_group, name, d, se_d, level, 0.0, t,
                                            paired_seeds(ratio.den.seeds, g, c), cond))
                    continue
                est, reps = diff(ratio, g, c)
                rows.append(_row(model, sub_attr, group, reference_group, name, est, reps, level, 0.0, t,
                                 paired_seeds(ratio.den.seeds, g, c), cond))
    return pd.DataFrame(rows)


def adjust_pvalues(df: pd.DataFrame, method: str) -> pd.DataFrame:
    """Fill ``p_adjusted`` over all rows (one family) with Holm or Benjamini-Hochberg.

    Parameters
    ----------
    df : pandas.DataFrame
        Contrast rows with ``p_value`` (NaN p-values stay NaN and are not counted).
    method : str
        ``holm`` or ``fdr_bh`` (statsmodels names; the protocol's ``analysis.adjust``).

    Returns
    -------
    pandas.DataFrame
        A copy with ``p_adjusted`` and ``adjust``.

    Examples
    --------
    >>> adjust_pvalues(pd.DataFrame({"p_value": [0.01, 0.04, float("nan")]}), "holm")["p_adjusted"].tolist()
    [0.02, 0.04, nan]
    """
    df = df.copy()
    df["adjust"] = method
    if df.empty:
        return df
    p = df["p_value"].to_numpy(dtype=float)
    ok = ~np.isnan(p)
    adj = np.full(len(p), np.nan)
    if ok.any():
        adj[ok] = multipletests(p[ok], method=method)[1]
    df["p_adjusted"] = adj
    return df
