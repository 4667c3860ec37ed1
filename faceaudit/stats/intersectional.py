"""Contrasts of an intersectional design: marginal effects and interactions, paired within seed.

With several protected attributes (``skin=dark|gender=female``) the groups are the *cells* of the
crossed design, and every kept seed is rendered in every cell. :func:`faceaudit.stats.contrasts.model_contrasts`
already compares each cell with the reference cell (``contrast = "cell"``). This module adds:

* **marginal** effect of one attribute's level: the rate pooled over every cell with that level
  (summed counts over the other attribute's levels; the design is balanced, so this is the equally
  weighted average over them) against the same pooling at the attribute's reference level.
  Rows: ``attribute = "skin_tone"``, ``level = "dark"``, ``group = "skin=dark"``.
* **interaction** of two attributes: the difference of differences
  ``(rate[x, y] - rate[x0, y]) - (rate[x, y0] - rate[x0, y0])`` for each non-reference level ``x``
  of the first attribute and ``y`` of the second (``x0``, ``y0`` the references): "is the skin-tone
  effect different for the two genders?". For FNMR also the ratio of ratios
  ``(r[x,y]/r[x0,y]) / (r[x,y0]/r[x0,y0])`` on smoothed rates. Rows: ``attribute =
  "skin_tone:gender"``, ``level = "dark:female"``, ``reference = "light:male"``, metric
  ``fnmr_interaction`` (``_ratio_interaction``, ``fmr_interaction``, ``genuine_score_interaction``).

Intervals: as for the cell contrasts: FNMR, genuine-score and FTE rows from the same seed-cluster
bootstrap weights (the replicate of a combination is the combination of the replicates: every cell
of a seed moves together, which is the pairing); FMR rows from the dyadic-robust variance of the
linearised combination (:mod:`faceaudit.stats.dyadic`, :class:`faceaudit.stats.impostors.DyadicTerms`).
p-values: marginal rows use the run's paired sign-flip test (:mod:`faceaudit.stats.primary`: each
seed's renderings at the level and at the reference, matched on the other attributes' levels, are
swapped; FMR: the exact sign test of the discordant seed pairs). Interaction rows are exploratory
and keep the p-value that inverts their interval (:data:`INTERACTION_PVALUE_METHOD`).
Marginal rows are the primary contrasts of a crossed design (``analysis.primary``); interactions are
exploratory (:func:`faceaudit.stats.primary.adjust_by_family`).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from faceaudit.stats.bootstrap import resolved_pvalue
from faceaudit.stats.contrasts import _dyadic_row, _FmrUnits, _row, _with_counts
from faceaudit.stats.dyadic import normal_interval, rate_influence
from faceaudit.stats.data import condition_label
from faceaudit.stats.primary import PRIMARY_POOL, flip_matrix, seed_flip_pvalue
from faceaudit.stats.error_rates import ModelRates, Ratio

__all__ = ["parse_group", "fmr_combination", "intersectional_contrasts", "INTERACTION_PVALUE_METHOD"]

#: interaction rows (exploratory) keep the p-value that inverts their interval
INTERACTION_PVALUE_METHOD = ("interval inversion (interaction, exploratory): seed-bootstrap percentile inversion, "
                             "normal with the bootstrap SE beyond the replicates; dyadic-robust normal for FMR")


def parse_group(group: str) -> dict[str, str]:
    """``skin=dark|gender=female`` -> ``{"skin": "dark", "gender": "female"}``.

    Parameters
    ----------
    group : str
        A group name: ``prefix=level`` parts joined by ``|``.

    Returns
    -------
    dict
        Prefix -> level, in the order of the parts.

    Examples
    --------
    >>> parse_group("skin=dark|gender=female")
    {'skin': 'dark', 'gender': 'female'}
    >>> parse_group("skin=light")
    {'skin': 'light'}
    """
    return dict(part.split("=", 1) for part in group.split("|"))


def _pooled(ratio: Ratio, cells: list[int], c, smoothed: bool = False) -> tuple[float, np.ndarray]:
    """Rate pooled over ``cells`` in condition ``c`` (an index, or a list of indices pooled too)."""
    cs = list(c) if isinstance(c, list) else [c]
    num_p = ratio.num.point[np.ix_(cells, cs)].sum()
    den_p = ratio.den.point[np.ix_(cells, cs)].sum()
    num_b = ratio.num.boot[:, cells][:, :, cs].sum(axis=(1, 2))
    den_b = ratio.den.boot[:, cells][:, :, cs].sum(axis=(1, 2))
    if smoothed:
        from faceaudit.stats.error_rates import PSEUDO_ERRORS, PSEUDO_TRIALS

        return (num_p + PSEUDO_ERRORS) / (den_p + PSEUDO_TRIALS), (num_b + PSEUDO_ERRORS) / (den_b + PSEUDO_TRIALS)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (num_p / den_p if den_p > 0 else np.nan), np.where(den_b > 0, num_b / np.where(den_b > 0, den_b, 1), np.nan)


def _combine(ratio: Ratio, terms: list[tuple[list[int], float]], c: int) -> tuple[float, np.ndarray]:
    """``sum coef * pooled rate(cells)`` and its replicates."""
    est, reps = 0.0, 0.0
    for cells, coef in terms:
        e, r = _pooled(ratio, cells, c)
        est, reps = est + coef * e, reps + coef * r
    return float(est), np.asarray(reps)


def _log_combine(ratio: Ratio, terms: list[tuple[list[int], float]], c: int) -> tuple[float, np.ndarray]:
    """``prod pooled smoothed rate(cells) ** coef`` (a ratio, or a ratio of ratios) and its replicates."""
    log_est, log_reps = 0.0, 0.0
    for cells, coef in terms:
        e, r = _pooled(ratio, cells, c, smoothed=True)
        log_est, log_reps = log_est + coef * np.log(e), log_reps + coef * np.log(r)
    return float(np.exp(log_est)), np.exp(np.asarray(log_reps))


def fmr_combination(mr: ModelRates, target: float, terms: list[tuple[list[int], float]], cond):
    """``(estimate, se)`` of ``sum coef * FMR pooled over cells`` at the global threshold (dyadic-robust);
    ``cond``: a condition index, a list of them (pooled), or None (every condition).

    Parameters
    ----------
    mr : ModelRates
        One model's rates (:func:`faceaudit.stats.error_rates.compute_model_rates`).
    target : float
        Target FMR (a key of ``mr.thresholds``).
    terms : list of (list of int, float)
        ``(cell indices, coefficient)``: each term's FMR is pooled over its cells.
    cond : int, list of int or None
        Condition index, indices pooled together, or None for every condition.

    Returns
    -------
    (float, float)
        Estimate and its dyadic-robust standard error; ``(nan, nan)`` when a term has no comparison.

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> from faceaudit.stats.error_rates import compute_model_rates
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> md = example_model_data()
    >>> mr = compute_model_rates(md, seed_weights(md.layout.S, 50, bootstrap_rng(0)), [0.1])
    >>> est, se = fmr_combination(mr, 0.1, [([0, 1], 1.0)], None)  # FMR over both groups: near the target
    >>> round(est, 4), se > 0
    (0.0952, True)
    >>> fmr_combination(mr, 0.1, [([1], 1.0), ([1], -1.0)], 0)  # a cell against itself
    (0.0, 0.0)
    """
    L = mr.md.layout
    C = L.C
    conds = [C] if cond is None else (list(cond) if isinstance(cond, list) else [cond])
    if mr.imp is not None:
        from faceaudit.stats.impostors import dyadic_terms

        d = dyadic_terms(mr.imp, target)
        est, parts = 0.0, []
        for cells, coef in terms:
            js = [g * (C + 1) + c for g in cells for c in conds]
            e, n = float(sum(d.e[j] for j in js)), float(sum(d.n[j] for j in js))
            if n == 0:
                return float("nan"), float("nan")
            est += coef * e / n
            parts += [(j, coef / n, e / n) for j in js]
        return est, float(np.sqrt(d.variance(parts)))
    imp = mr.md.impostor
    hit, ok = mr.false_match(target), imp.ok.astype(float)
    in_c = np.ones(len(imp), dtype=bool) if cond is None else np.isin(imp.cond, conds)
    est, psi, mask = 0.0, np.zeros(len(imp)), np.zeros(len(imp), dtype=bool)
    for cells, coef in terms:
        m = in_c & np.isin(imp.group, cells)
        u, e, n = rate_influence(hit, ok, m)
        if n == 0:
            return float("nan"), float("nan")
        est += coef * e / n
        psi += coef * u / n
        mask |= m & imp.ok
    return est, float(np.sqrt(mr.dyad.variance(psi, mask)))


def intersectional_contrasts(mr: ModelRates, attributes: list[tuple[str, str, list[str], str]], level: float,
                             flips: np.ndarray | None = None, pool: list[int] | None = None) -> pd.DataFrame:
    """Marginal and interaction rows for one model (``attributes``: ``Protocol.group_attributes``).

    Marginal effects are given pooled over every condition (``condition == "all"``), within each
    edit condition, and over the primary pool ``pool`` (condition indices; ``primary_pool``);
    interactions pooled over every condition only. ``flips``: the run's sign-flip matrix.

    Parameters
    ----------
    mr : ModelRates
        One model's rates (:func:`faceaudit.stats.error_rates.compute_model_rates`) on a crossed design.
    attributes : list of (str, str, list of str, str)
        ``(attribute, group-name prefix, levels, reference level)`` per protected attribute.
    level : float
        Confidence level.
    flips : numpy.ndarray, optional
        The run's sign-flip matrix (:func:`faceaudit.stats.primary.flip_matrix`); default: from seed 0.
    pool : list of int, optional
        Condition indices of the primary pool; None: no ``primary_pool`` rows.

    Returns
    -------
    pandas.DataFrame
        ``contrasts.parquet`` rows (``attribute``, ``level``, ``reference``, ``metric``, ``estimate``,
        ``ci_lo``, ``ci_hi``, ``p_value``, ``condition``, ...); empty with fewer than two attributes.

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> from faceaudit.stats.error_rates import compute_model_rates
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> groups = ("skin=light|gender=male", "skin=dark|gender=male", "skin=light|gender=female",
    ...           "skin=dark|gender=female")
    >>> md = example_model_data(groups=groups)  # genuine scores of the last cell planted lower
    >>> mr = compute_model_rates(md, seed_weights(md.layout.S, 50, bootstrap_rng(0)), [0.1])
    >>> attrs = [("skin_tone", "skin", ["light", "dark"], "light"), ("gender", "gender", ["male", "female"], "male")]
    >>> d = intersectional_contrasts(mr, attrs, 0.95)
    >>> sorted(d.loc[d["condition"] == "all", "attribute"].unique())
    ['gender', 'skin_tone', 'skin_tone:gender']
    >>> i = d[d["metric"] == "genuine_score_interaction"].iloc[0]
    >>> i["level"], i["reference"], bool(i["estimate"] < 0)
    ('dark:female', 'light:male', True)
    >>> intersectional_contrasts(mr, attrs[:1], 0.95).empty
    True
    """
    L = mr.md.layout
    if len(attributes) < 2:
        return pd.DataFrame()
    C = L.C
    cells = [parse_group(g) for g in L.groups]
    model = mr.md.model
    rows: list[dict] = []

    def cells_where(**want: str) -> list[int]:
        return [i for i, parts in enumerate(cells) if all(parts.get(k) == v for k, v in want.items())]

    def seeds_of(ratio: Ratio, idx: list[int]) -> int:
        return int(min(ratio.den.seeds[i, C] for i in idx)) if ratio.den.seeds is not None else L.S

    units = {t: _FmrUnits(mr, t) for t in mr.thresholds}
    flips = flip_matrix(L.S, np.random.default_rng(0)) if flips is None else flips

    def signature(group: int, attribute: str) -> tuple:
        """the cell's levels of every attribute but ``attribute`` (pairs a level's cell with its reference cell)"""
        return tuple(sorted((k, v) for k, v in cells[group].items() if k != attribute))

    def marginal_p(prefix, name, kind, t, terms, cs):
        pconds = None if cs == C else (cs if isinstance(cs, list) else [cs])
        (lv_cells, _), (ref_cells, _) = terms
        if name.startswith("fmr"):
            sig = {s: i for i, s in enumerate(sorted({signature(i, prefix) for i in range(L.G)}))}
            return units[t].pvalue_cells(lv_cells, ref_cells, np.array([sig[signature(i, prefix)] for i in range(L.G)]),
                                         pconds)
        ratio = {"gscore": mr.gscore, "fte": mr.fte}.get(kind) or mr.fnmr[t]
        num, den = ratio.num.per_seed, ratio.den.per_seed
        if pconds is not None:
            num, den = num[:, :, pconds], den[:, :, pconds]
        return seed_flip_pvalue(num[:, lv_cells].sum(axis=(1, 2)), den[:, lv_cells].sum(axis=(1, 2)),
                                num[:, ref_cells].sum(axis=(1, 2)), den[:, ref_cells].sum(axis=(1, 2)), flips)

    def counts(ratio, terms, cs):
        (lv_cells, _), (ref_cells, _) = terms
        cc = cs if isinstance(cs, list) else [cs]
        pt = lambda x, cells: float(x.point[np.ix_(cells, cc)].sum())  # noqa: E731
        return pt(ratio.num, lv_cells), pt(ratio.den, lv_cells), pt(ratio.num, ref_cells), pt(ratio.den, ref_cells)

    def finish(row, prefix, name, kind, t, terms, ratio, null, reps=None, se=None, cs=C):
        if prefix is not None:  # a marginal effect: the run's one p-value method
            c = counts(ratio, terms, cs)
            if name == "genuine_score_diff":
                c = (float("nan"), c[1], float("nan"), c[3])
            return _with_counts(row, marginal_p(prefix, name, kind, t, terms, cs), *c)
        # an interaction (exploratory): no exchangeability makes a flip test exact for a difference
        # of differences, so its p-value inverts its own interval
        if reps is not None:
            row["p_value"] = resolved_pvalue(reps, row["estimate"], null, log=name.endswith("ratio_interaction"))
        else:
            row["p_value"] = normal_interval(row["estimate"], se, level, null)[2]
        row["p_method"] = INTERACTION_PVALUE_METHOD
        return row

    def add(attribute, label, ref_label, group, ref_group, terms, all_cells, metrics, prefix=None, cs=C,
            cond_label="all"):
        cc = cs if isinstance(cs, list) else [cs]
        for name, kind in metrics:
            if name.startswith("fmr"):
                for t in mr.thresholds:
                    est, se = fmr_combination(mr, t, terms, None if cs == C else cs)
                    if np.isfinite(est):
                        row = _dyadic_row(model, attribute, group, ref_group, name, est, se, level, 0.0, t,
                                          seeds_of(mr.fmr[t], all_cells), cond_label) | {"level": label, "reference": ref_label}
                        rows.append(finish(row, prefix, name, kind, t, terms, mr.fmr[t], 0.0, se=se, cs=cs))
                continue
            for t in (mr.thresholds if kind in ("fnmr", "fnmr_ratio") else [float("nan")]):
                ratio = {"fnmr": None, "fnmr_ratio": None, "gscore": mr.gscore, "fte": mr.fte}[kind] or mr.fnmr[t]
                if any(ratio.den.point[np.ix_([i], cc)].sum() == 0 for i in all_cells):
                    continue
                if kind == "fnmr_ratio":
                    est, reps = _log_combine(ratio, terms, cs)
                    null = 1.0
                else:
                    est, reps = _combine(ratio, terms, cs)
                    null = 0.0
                row = _row(model, attribute, group, ref_group, name, est, reps, level, null, t,
                           seeds_of(ratio, all_cells), cond_label) | {"level": label, "reference": ref_label}
                rows.append(finish(row, prefix, name, kind, t, terms, ratio, null, reps=reps, cs=cs))

    # marginal effects: each attribute's level against its reference, pooled over the other attributes
    for attribute, prefix, levels, ref in attributes:
        ref_cells = cells_where(**{prefix: ref})
        for lv in levels:
            if lv == ref:
                continue
            lv_cells = cells_where(**{prefix: lv})
            terms = [(lv_cells, 1.0), (ref_cells, -1.0)]
            add(attribute, lv, ref, f"{prefix}={lv}", f"{prefix}={ref}", terms, lv_cells + ref_cells,
                [("fnmr_diff", "fnmr"), ("fnmr_ratio", "fnmr_ratio"), ("fmr_diff", "fmr"),
                 ("genuine_score_diff", "gscore"), ("fte_rate_diff", "fte")], prefix=prefix)
            if pool:
                add(attribute, lv, ref, f"{prefix}={lv}", f"{prefix}={ref}", terms, lv_cells + ref_cells,
                    [("fnmr_diff", "fnmr"), ("fnmr_ratio", "fnmr_ratio"), ("fmr_diff", "fmr"),
                     ("genuine_score_diff", "gscore")], prefix=prefix, cs=list(pool), cond_label=PRIMARY_POOL)
            for c, (eattr, elv) in enumerate(L.conditions):
                cond = condition_label(eattr, elv)
                add(f"{attribute}|{cond}", lv, ref, f"{prefix}={lv}", f"{prefix}={ref}", terms, lv_cells + ref_cells,
                    [("fnmr_diff", "fnmr"), ("fmr_diff", "fmr"), ("genuine_score_diff", "gscore")], prefix=prefix,
                    cs=c, cond_label=cond)
    for r in rows:
        r["contrast"] = "marginal"
    n_marginal = len(rows)

    # two-way interactions: difference of differences (ratio of ratios) over the 2x2 sub-table
    for (a1, p1, lv1, r1), (a2, p2, lv2, r2) in itertools.combinations(attributes, 2):
        others = [(p, ref) for a, p, _, ref in attributes if a not in (a1, a2)]
        fixed = dict(others)  # a third attribute is held at its reference level
        for x, y in itertools.product([v for v in lv1 if v != r1], [v for v in lv2 if v != r2]):
            def cell(u, v):
                return cells_where(**{p1: u, p2: v}, **fixed)
            xy, x0y, xy0, x0y0 = cell(x, y), cell(r1, y), cell(x, r2), cell(r1, r2)
            terms = [(xy, 1.0), (x0y, -1.0), (xy0, -1.0), (x0y0, 1.0)]
            group = "|".join(f"{p}={v}" for p, v in ((p1, x), (p2, y)))
            ref_group = "|".join(f"{p}={v}" for p, v in ((p1, r1), (p2, r2)))
            add(f"{a1}:{a2}", f"{x}:{y}", f"{r1}:{r2}", group, ref_group, terms, xy + x0y + xy0 + x0y0,
                [("fnmr_interaction", "fnmr"), ("fnmr_ratio_interaction", "fnmr_ratio"), ("fmr_interaction", "fmr"),
                 ("genuine_score_interaction", "gscore")])
    for r in rows[n_marginal:]:
        r["contrast"] = "interaction"
    return pd.DataFrame(rows)
