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

Pooled over every condition (``condition == "all"``, exploratory) and over the primary pool
(``condition == "primary_pool"``: the conditions whose edits leak little into the protected measure,
:mod:`faceaudit.stats.primary`).

CI: percentile (equal-tailed) of the paired replicates. FMR contrasts are the exception: impostor
pairs join two seeds and the same seed pair is an impostor pair in every group, so under no effect
the seed effects cancel in the paired difference (a degenerate U-statistic) and the vertex bootstrap
(pair weight ``W[a] * W[b]``) counts the pair-level noise about three times (measured null coverage
100%). ``fmr_diff`` and ``fmr_ratio`` use the dyadic-robust variance of the paired difference
(:mod:`faceaudit.stats.dyadic`; log scale for the ratio) with a normal interval.

p-value: one method for every metric (:data:`faceaudit.stats.primary.PVALUE_METHOD`, column
``p_method``): a paired sign-flip randomization test of "no effect of the level", flipping the
paired unit — the seed for genuine pairs and faces (:func:`faceaudit.stats.primary.seed_flip_pvalue`),
the seed pair for false matches (:func:`faceaudit.stats.primary.discordant_pvalue`, with the design
effect of seed pairs sharing a seed). It no longer inverts the interval, so "p < 1 - ci_level" and
"the CI excludes the null" agree only approximately. Ratio rows share the p-value of their
difference (same null). Every row carries the counts of both rates (``events``, ``n``,
``events_ref``, ``n_ref``); ratio rows add ``n_events_min``, ``reportable`` and ``smoothing``.
Multiplicity: :func:`faceaudit.stats.primary.adjust_by_family` (the declared primary rows form one
Holm/BH family; every other row is exploratory and adjusted within its own family).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from faceaudit.stats.bootstrap import CI_METHOD, percentile_ci
from faceaudit.stats.data import condition_label
from faceaudit.stats.dyadic import DYADIC_METHOD, normal_interval, rate_influence
from faceaudit.stats.error_rates import PSEUDO_ERRORS, PSEUDO_TRIALS, ModelRates, Ratio
from faceaudit.stats.primary import (PRIMARY_POOL, PVALUE_METHOD, RATIO_SMOOTHING, REPORTABLE_MIN_EVENTS,
                                     discordant_design_effect, discordant_pvalue, flip_matrix,
                                     seed_flip_pvalue)

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
    """A bootstrap-interval row; its ``p_value`` is set by the caller (:func:`_with_counts`)."""
    lo, hi = percentile_ci(reps, level)
    finite = reps[~np.isnan(reps)]
    return {
        "model": model, "attribute": attribute, "level": _level_name(group), "reference": _level_name(ref_group),
        "metric": metric, "estimate": float(est), "ci_lo": float(lo), "ci_hi": float(hi),
        "p_value": float("nan"), "p_adjusted": float("nan"),
        "target_fmr": target, "n_seeds": int(n_seeds), "condition": condition, "group": group,
        "reference_group": ref_group, "null": null, "n_boot": int(len(finite)), "ci_method": CI_METHOD,
    }


def _dyadic_row(model, attribute, group, ref_group, metric, est, se, level, null, target, n_seeds, condition):
    """A dyadic-robust interval row (FMR); its ``p_value`` is set by the caller (:func:`_with_counts`)."""
    lo, hi, _ = normal_interval(est, se, level, null, log=metric.endswith("ratio"))
    return {
        "model": model, "attribute": attribute, "level": _level_name(group), "reference": _level_name(ref_group),
        "metric": metric, "estimate": float(est), "ci_lo": lo, "ci_hi": hi, "p_value": float("nan"),
        "p_adjusted": float("nan"),
        "target_fmr": target, "n_seeds": int(n_seeds), "condition": condition, "group": group,
        "reference_group": ref_group, "null": null, "n_boot": 0,  # analytic interval: no replicates
        "ci_method": DYADIC_METHOD + (", log scale" if metric.endswith("ratio") else ""),
    }


def _with_counts(row: dict, p: float, events, n, events_ref, n_ref) -> dict:
    """Add the p-value, the counts behind both rates and, for ratios, whether the ratio is reportable."""
    row["p_value"] = float(p)
    row["p_method"] = PVALUE_METHOD
    row["events"], row["n"], row["events_ref"], row["n_ref"] = (float(x) for x in (events, n, events_ref, n_ref))
    if row["metric"].endswith("ratio"):
        m = float(min(events, events_ref))
        row["n_events_min"] = m
        row["reportable"] = bool(m >= REPORTABLE_MIN_EVENTS)
        row["smoothing"] = RATIO_SMOOTHING
    return row


def _conds(cond) -> list[int] | None:
    return None if cond is None else ([cond] if isinstance(cond, (int, np.integer)) else list(cond))


def fmr_contrast(mr: ModelRates, target: float, g: int, r: int, cond):
    """``(diff, se_diff, ratio, se_log_ratio)`` of group ``g`` vs ``r`` within condition ``cond`` (an
    index, a list of indices pooled together, or ``None`` for every condition).

    The influence of each impostor pair on the paired contrast is summed per seed pair over *both*
    groups before the dyadic variance: the same two identities are an impostor pair in every group,
    and their correlation between groups is exactly what the pairing removes.

    Parameters
    ----------
    mr : ModelRates
        One model's rates (in memory or streamed).
    target : float
        Target FMR (a key of ``mr.thresholds``).
    g, r : int
        Index of the compared group and of the reference group.
    cond : int, list of int or None
        Condition index, indices pooled together, or ``None`` for every condition.

    Returns
    -------
    tuple of float
        ``(diff, se_diff, ratio, se_log_ratio)``: FMR difference and its dyadic-robust standard
        error, ratio of smoothed FMRs ``(e + 0.5)/(n + 1)`` and the standard error of its log.

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> from faceaudit.stats.error_rates import compute_model_rates
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> md = example_model_data()
    >>> mr = compute_model_rates(md, seed_weights(md.layout.S, 50, bootstrap_rng(0)), [0.1])
    >>> diff, se_diff, ratio, se_log = fmr_contrast(mr, 0.1, 1, 0, None)
    >>> rate = mr.fmr[0.1].rate()
    >>> bool(np.isclose(diff, rate[1, -1] - rate[0, -1])), bool(se_diff > 0), bool(se_log > 0)
    (True, True, True)
    >>> bool(se_diff < fmr_contrast(mr, 0.1, 1, 0, 0)[1])  # one condition: fewer pairs, wider
    True
    """
    conds = _conds(cond)
    if mr.imp is not None:
        if conds is not None and len(conds) == 1:
            from faceaudit.stats.impostors import fmr_contrast_streamed

            return fmr_contrast_streamed(mr.imp, target, g, r, conds[0])
        if conds is None:
            from faceaudit.stats.impostors import fmr_contrast_streamed

            return fmr_contrast_streamed(mr.imp, target, g, r, None)
        return _fmr_contrast_streamed_pool(mr, target, g, r, conds)
    imp = mr.md.impostor
    hit, ok = mr.false_match(target), imp.ok.astype(float)
    in_c = np.ones(len(imp), dtype=bool) if conds is None else np.isin(imp.cond, conds)
    ug, eg, ng = rate_influence(hit, ok, in_c & (imp.group == g))
    ur, er, nr = rate_influence(hit, ok, in_c & (imp.group == r))
    mask = in_c & imp.ok & ((imp.group == g) | (imp.group == r))
    diff = eg / ng - er / nr
    se_diff = np.sqrt(mr.dyad.variance(ug / ng - ur / nr, mask))
    # log of the smoothed ratio: d log((e + 0.5)/(n + 1)) = (de - s dn)/(e + 0.5), linearised at the raw rate
    ratio = ((eg + 0.5) / (ng + 1)) / ((er + 0.5) / (nr + 1))
    se_log = np.sqrt(mr.dyad.variance(ug / (eg + 0.5) - ur / (er + 0.5), mask))
    return diff, se_diff, ratio, se_log


def _fmr_contrast_streamed_pool(mr: ModelRates, target: float, g: int, r: int, conds: list[int]):
    """:func:`fmr_contrast` over several conditions from the streamed Gram matrices (pooled rates)."""
    from faceaudit.stats.impostors import dyadic_terms

    C = mr.imp.C
    d = dyadic_terms(mr.imp, target)
    jg = [g * (C + 1) + c for c in conds]
    jr = [r * (C + 1) + c for c in conds]
    eg, ng = float(sum(d.e[j] for j in jg)), float(sum(d.n[j] for j in jg))
    er, nr = float(sum(d.e[j] for j in jr)), float(sum(d.n[j] for j in jr))
    rg, rr = eg / ng, er / nr
    se_diff = np.sqrt(d.variance([(j, 1.0 / ng, rg) for j in jg] + [(j, -1.0 / nr, rr) for j in jr]))
    ratio = ((eg + 0.5) / (ng + 1)) / ((er + 0.5) / (nr + 1))
    se_log = np.sqrt(d.variance([(j, 1.0 / (eg + 0.5), rg) for j in jg] + [(j, -1.0 / (er + 0.5), rr) for j in jr]))
    return rg - rr, se_diff, ratio, se_log


class _FmrUnits:
    """False-matching seed pairs per (group, condition), keyed ``(lo * S + hi) * C + cond``."""

    def __init__(self, mr: ModelRates, target: float):
        lo, hi, group, cond = mr.false_match_pairs(target)
        L = mr.md.layout
        self.key = (lo * L.S + hi) * L.C + cond
        self.S, self.C = L.S, L.C
        self.group, self.cond = group, cond

    def pvalue(self, g: int, r: int, conds: list[int] | None) -> float:
        return self.pvalue_cells([g], [r], np.zeros(max(g, r) + 1, dtype=np.int64), conds)

    def pvalue_cells(self, level_cells: list[int], ref_cells: list[int], signature: np.ndarray,
                     conds: list[int] | None = None) -> float:
        """Sign test of the seed pairs falsely matching in the level cells but not in the matched
        reference cell (same ``signature``: the other attributes' levels), and the reverse."""
        in_c = np.ones(len(self.key), bool) if conds is None else np.isin(self.cond, conds)
        sig = np.asarray(signature, dtype=np.int64)
        grp = np.clip(self.group, 0, len(sig) - 1)
        key = self.key * (int(sig.max()) + 1) + sig[grp]
        kg = np.unique(key[in_c & np.isin(self.group, level_cells)])
        kr = np.unique(key[in_c & np.isin(self.group, ref_cells)])
        only_g, only_r = np.setdiff1d(kg, kr), np.setdiff1d(kr, kg)
        units = np.concatenate([only_g, only_r]) // (int(sig.max()) + 1) // self.C  # lo * S + hi
        sign = np.concatenate([np.ones(len(only_g)), -np.ones(len(only_r))])
        deff = discordant_design_effect(sign, units // self.S, units % self.S, self.S)
        return discordant_pvalue(len(only_g), len(only_r), deff)


def _seed_pvalue(ratio: Ratio, g: int, r: int, conds: list[int] | None, flips: np.ndarray) -> float:
    """Sign-flip p-value of ``rate(g) - rate(r)`` over the conditions ``conds`` (None: all)."""
    num, den = ratio.num.per_seed, ratio.den.per_seed
    sel = slice(None) if conds is None else conds
    return seed_flip_pvalue(num[:, g, sel].sum(axis=-1), den[:, g, sel].sum(axis=-1),
                            num[:, r, sel].sum(axis=-1), den[:, r, sel].sum(axis=-1), flips)


def model_contrasts(mr: ModelRates, attribute: str, reference_group: str, level: float,
                    pool: list[int] | None = None, flips: np.ndarray | None = None) -> pd.DataFrame:
    """Paired contrasts of every group against the reference group, pooled over edit conditions and
    within each one: FNMR/FMR differences and ratios at each target FMR, genuine-score and FTE
    differences (threshold-free); ``p_adjusted`` is filled later by
    :func:`faceaudit.stats.primary.adjust_by_family`.

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
    pool : list of int, optional
        Condition indices of the primary pool: adds ``condition == "primary_pool"`` rows (FNMR/FMR
        differences and ratios, genuine score) pooled over exactly those conditions.
    flips : numpy.ndarray, optional
        ``(n_flips, n_seeds)`` sign-flip matrix (:func:`faceaudit.stats.primary.flip_matrix`) shared by
        every row; default: drawn from seed 0.

    Returns
    -------
    pandas.DataFrame
        ``CONTRAST_COLUMNS`` and more (``condition``, ``group``, ``target_fmr``, ``ci_method``,
        ``p_method``, ``events``, ``n``, ``events_ref``, ``n_ref``; ratio rows also ``n_events_min``,
        ``reportable``, ``smoothing``).

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
    >>> c = model_contrasts(mr, "skin_tone", "skin=light", 0.95, pool=[1, 2])
    >>> row = c[(c["metric"] == "genuine_score_diff") & (c["condition"] == "all")].iloc[0]
    >>> row["group"], bool(row["ci_hi"] < 0), float(row["p_value"])  # 8 seeds, all lower: 2 of 256 flips
    ('skin=dark', True, 0.0078125)
    >>> sorted(set(c["condition"]))
    ['all', 'lighting=+1', 'lighting=-1', 'none', 'primary_pool']
    """
    L = mr.md.layout
    r = L.groups.index(reference_group)
    C = L.C  # index C is the pooled condition (index L.G the pooled group)
    model = mr.md.model
    if flips is None:
        flips = flip_matrix(L.S, np.random.default_rng(0))
    units = {t: _FmrUnits(mr, t) for t in mr.thresholds}
    rows = []

    def sums(count, g, cs):
        """point counts and bootstrap replicates of cell (g, cs): cs an index or a list (summed)."""
        if isinstance(cs, list):
            return count.point[g, cs].sum(), count.boot[:, g, cs].sum(axis=-1)
        return count.point[g, cs], count.boot[:, g, cs]

    def diff(ratio: Ratio, g: int, cs):
        (ng, bg), (dg, bdg) = sums(ratio.num, g, cs), sums(ratio.den, g, cs)
        (nr, br), (dr, bdr) = sums(ratio.num, r, cs), sums(ratio.den, r, cs)
        with np.errstate(invalid="ignore", divide="ignore"):
            est = ng / dg - nr / dr
            reps = np.where(bdg > 0, bg / np.where(bdg > 0, bdg, 1), np.nan) - np.where(bdr > 0, br / np.where(bdr > 0, bdr, 1), np.nan)
        return est, reps, (ng, dg, nr, dr)

    def ratio_(ratio: Ratio, g: int, cs):
        (ng, bg), (dg, bdg) = sums(ratio.num, g, cs), sums(ratio.den, g, cs)
        (nr, br), (dr, bdr) = sums(ratio.num, r, cs), sums(ratio.den, r, cs)
        est = ((ng + PSEUDO_ERRORS) / (dg + PSEUDO_TRIALS)) / ((nr + PSEUDO_ERRORS) / (dr + PSEUDO_TRIALS))
        reps = ((bg + PSEUDO_ERRORS) / (bdg + PSEUDO_TRIALS)) / ((br + PSEUDO_ERRORS) / (bdr + PSEUDO_TRIALS))
        return est, reps, (ng, dg, nr, dr)

    def den_of(ratio: Ratio, g, cs):
        return sums(ratio.den, g, cs)[0]

    def paired_seeds(count_seeds, g, cs):
        c = C if isinstance(cs, list) else cs
        return min(count_seeds[g, c], count_seeds[r, c])

    def gen_rows(g, group, cs, cond_label, attr_label, cands, pconds):
        """rows of genuine-pair / face metrics: (name, ratio, fn, null, target)."""
        for name, ratio, fn, null, t in cands:
            if den_of(ratio, g, cs) == 0 or den_of(ratio, r, cs) == 0:
                continue
            est, reps, (ng, dg, nr, dr) = fn(ratio, g, cs)
            p = _seed_pvalue(ratio, g, r, pconds, flips)
            row = _row(model, attr_label, group, reference_group, name, est, reps, level, null, t,
                       paired_seeds(ratio.den.seeds, g, cs), cond_label)
            if name == "genuine_score_diff":  # a mean score, not a count of events
                ng = nr = float("nan")
            rows.append(_with_counts(row, p, ng, dg, nr, dr))

    def fmr_rows(g, group, cs, cond_label, attr_label, t, with_ratio, pconds):
        f = mr.fmr[t]
        if den_of(f, g, cs) == 0 or den_of(f, r, cs) == 0:
            return
        d, se_d, q, se_q = fmr_contrast(mr, t, g, r, None if cs == C else cs)
        counts = (sums(f.num, g, cs)[0], den_of(f, g, cs), sums(f.num, r, cs)[0], den_of(f, r, cs))
        p = units[t].pvalue(g, r, pconds)
        n_s = paired_seeds(f.den.seeds, g, cs)
        rows.append(_with_counts(_dyadic_row(model, attr_label, group, reference_group, "fmr_diff", d, se_d, level,
                                             0.0, t, n_s, cond_label), p, *counts))
        if with_ratio:
            rows.append(_with_counts(_dyadic_row(model, attr_label, group, reference_group, "fmr_ratio", q, se_q,
                                                 level, 1.0, t, n_s, cond_label), p, *counts))

    for g, group in enumerate(L.groups):
        if g == r:
            continue
        # Pooled over every condition, then over the primary pool.
        for cs, label in ((C, "all"), (pool, PRIMARY_POOL)):
            if cs is None or (isinstance(cs, list) and not cs):
                continue
            pconds = None if label == "all" else list(cs)
            for t in mr.thresholds:
                gen_rows(g, group, cs, label, attribute,
                         [("fnmr_diff", mr.fnmr[t], diff, 0.0, t), ("fnmr_ratio", mr.fnmr[t], ratio_, 1.0, t)], pconds)
                fmr_rows(g, group, cs, label, attribute, t, True, pconds)
            cands = [("genuine_score_diff", mr.gscore, diff, 0.0, float("nan"))]
            if label == "all":
                cands.append(("fte_rate_diff", mr.fte, diff, 0.0, float("nan")))
            gen_rows(g, group, cs, label, attribute, cands, pconds)
        # Within each edit condition.
        for c, (attr, lv) in enumerate(L.conditions):
            cond = condition_label(attr, lv)
            sub_attr = f"{attribute}|{cond}"
            gen_rows(g, group, c, cond, sub_attr, [("genuine_score_diff", mr.gscore, diff, 0.0, float("nan"))], [c])
            for t in mr.thresholds:
                gen_rows(g, group, c, cond, sub_attr, [("fnmr_diff", mr.fnmr[t], diff, 0.0, t)], [c])
                fmr_rows(g, group, c, cond, sub_attr, t, False, [c])
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
