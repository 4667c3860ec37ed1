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
Every row joins the run's single multiplicity family (Holm or BH over all contrasts).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from faceaudit.stats.contrasts import _dyadic_row, _row
from faceaudit.stats.dyadic import rate_influence
from faceaudit.stats.error_rates import ModelRates, Ratio

__all__ = ["parse_group", "intersectional_contrasts"]


def parse_group(group: str) -> dict[str, str]:
    """The levels of a crossed group name, by attribute prefix.

    Parameters
    ----------
    group : str
        ``prefix=level`` parts joined by ``|``.

    Returns
    -------
    dict of str to str

    Examples
    --------
    >>> parse_group("skin=dark|gender=female")
    {'skin': 'dark', 'gender': 'female'}
    """
    return dict(part.split("=", 1) for part in group.split("|"))


def _pooled(ratio: Ratio, cells: list[int], c: int, smoothed: bool = False) -> tuple[float, np.ndarray]:
    num_p = ratio.num.point[cells, c].sum()
    den_p = ratio.den.point[cells, c].sum()
    num_b = ratio.num.boot[:, cells, c].sum(axis=1)
    den_b = ratio.den.boot[:, cells, c].sum(axis=1)
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


def _fmr_combination(mr: ModelRates, target: float, terms: list[tuple[list[int], float]], cond: int | None):
    """``(estimate, se)`` of ``sum coef * FMR pooled over cells`` at the global threshold (dyadic-robust)."""
    L = mr.md.layout
    C = L.C
    c = C if cond is None else cond
    if mr.imp is not None:
        from faceaudit.stats.impostors import dyadic_terms

        d = dyadic_terms(mr.imp, target)
        est, parts = 0.0, []
        for cells, coef in terms:
            js = [g * (C + 1) + c for g in cells]
            e, n = float(sum(d.e[j] for j in js)), float(sum(d.n[j] for j in js))
            if n == 0:
                return float("nan"), float("nan")
            est += coef * e / n
            parts += [(j, coef / n, e / n) for j in js]
        return est, float(np.sqrt(d.variance(parts)))
    imp = mr.md.impostor
    hit, ok = mr.false_match(target), imp.ok.astype(float)
    in_c = np.ones(len(imp), dtype=bool) if cond is None else imp.cond == c
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


def intersectional_contrasts(mr: ModelRates, attributes: list[tuple[str, str, list[str], str]], level: float) -> pd.DataFrame:
    """Marginal and interaction rows for one model.

    Parameters
    ----------
    mr : ModelRates
        The model's rates; its groups are the cells of the crossed design.
    attributes : list of (str, str, list of str, str)
        ``(attribute, group prefix, levels, reference level)`` per protected attribute
        (``Protocol.group_attributes``).
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        Contrast rows (columns of the contrasts table plus ``level``, ``reference``, ``contrast``);
        empty with fewer than two attributes.

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> from faceaudit.stats.error_rates import compute_model_rates
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> cells = ("skin=light|gender=male", "skin=dark|gender=male", "skin=light|gender=female", "skin=dark|gender=female")
    >>> md = example_model_data(n_seeds=8, groups=cells)  # only the dark/female cell's genuine scores drop
    >>> mr = compute_model_rates(md, seed_weights(md.layout.S, 50, bootstrap_rng(0)), [0.1])
    >>> attrs = [("skin_tone", "skin", ["light", "dark"], "light"), ("gender", "gender", ["male", "female"], "male")]
    >>> t = intersectional_contrasts(mr, attrs, 0.95)
    >>> t.groupby("contrast").size().to_dict()
    {'interaction': 4, 'marginal': 10}
    >>> row = t[t["metric"] == "genuine_score_interaction"].iloc[0]
    >>> row["level"], bool(row["estimate"] < -0.1)
    ('dark:female', True)
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

    def add(attribute, label, ref_label, group, ref_group, terms, all_cells, metrics):
        for name, kind in metrics:
            if name.startswith("fmr"):
                for t in mr.thresholds:
                    est, se = _fmr_combination(mr, t, terms, None)
                    if np.isfinite(est):
                        rows.append(_dyadic_row(model, attribute, group, ref_group, name, est, se, level, 0.0, t,
                                                seeds_of(mr.fmr[t], all_cells), "all")
                                    | {"level": label, "reference": ref_label})
                continue
            for t in (mr.thresholds if kind in ("fnmr", "fnmr_ratio") else [float("nan")]):
                ratio = {"fnmr": None, "fnmr_ratio": None, "gscore": mr.gscore, "fte": mr.fte}[kind] or mr.fnmr[t]
                if any(ratio.den.point[i, C] == 0 for i in all_cells):
                    continue
                if kind == "fnmr_ratio":
                    est, reps = _log_combine(ratio, terms, C)
                    null = 1.0
                else:
                    est, reps = _combine(ratio, terms, C)
                    null = 0.0
                rows.append(_row(model, attribute, group, ref_group, name, est, reps, level, null, t,
                                 seeds_of(ratio, all_cells), "all") | {"level": label, "reference": ref_label})

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
                 ("genuine_score_diff", "gscore"), ("fte_rate_diff", "fte")])
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
