"""Dose-response: how the genuine score falls as a nuisance attribute is pushed further, per group.

Two kinds of rows in ``results/dose_response.parquet`` (column ``row_type``):

- ``mean``: mean genuine score (prototype vs edit, compared pairs) per (model, edit_attr, group,
  edit_level), with a seed-cluster bootstrap CI from the run's shared weights.
- ``slope`` / ``interaction``: a linear mixed model per (model, edit_attr) on the genuine pairs of that
  attribute::

      score ~ C(group, Treatment(reference)) * (edit_level [+ abs_level])  +  (1 | seed)

  ``edit_level`` is the signed level; ``abs_level = |edit_level|`` is added when the protocol edits the
  attribute in both directions at more than one distance, because most edits hurt similarity whichever way they go (a V shape a
  signed slope alone cannot see). ``slope`` rows are the reference group's slopes; ``interaction``
  rows are how much each other group's slope differs (group x level coefficients) — the dose-response
  bias. Random intercept per seed: all renderings of a seed share its identity-level difficulty.

  The fit is checked: ``converged`` from statsmodels, a random-intercept variance at the boundary
  (seed share of the variance ``< 1e-4``: singular covariance) and any warning raised while fitting. If any
  check fails the model is refitted as OLS with cluster-robust (by seed) standard errors and
  ``fit_note`` says so in words; ``method`` is ``mixedlm`` or ``ols_cluster``. p-values here are not
  part of the contrasts' multiplicity family.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from faceaudit.stats.bootstrap import CI_METHOD, percentile_ci
from faceaudit.stats.error_rates import ModelRates

__all__ = ["dose_response_table", "model_rows", "SINGULAR_REL"]

#: singular when the seed share of the variance (ICC) is below this
SINGULAR_REL = 1e-4


def _mean_rows(mr: ModelRates, level: float) -> pd.DataFrame:
    L = mr.md.layout
    est = mr.gscore.rate()
    lo, hi = percentile_ci(mr.gscore.rate_boot(), level)
    n = mr.gscore.den.point
    seeds = mr.gscore.den.seeds
    rows = []
    for c, (attr, lv) in enumerate(L.conditions):
        if attr == "none":
            continue
        for g, group in enumerate(L.groups):
            if n[g, c] == 0:
                continue
            rows.append({"row_type": "mean", "model": mr.md.model, "edit_attr": attr, "group": group,
                         "edit_level": lv, "mean_score": est[g, c], "ci_lo": lo[g, c], "ci_hi": hi[g, c],
                         "n": int(n[g, c]), "n_seeds": int(seeds[g, c]), "ci_method": CI_METHOD})
    return pd.DataFrame(rows)


def _fit(formula: str, data: pd.DataFrame):
    """MixedLM with checks; returns (result, method, converged, note, seed_sd)."""
    caught: list[str] = []
    res = None
    failed: list[str] = []
    used = ""
    # statsmodels' optimisers fail differently (lbfgs can hit a singular matrix at its start value
    # where bfgs/powell converge), so try them in turn and keep the first clean, converged fit;
    # only the warnings of the kept attempt count.
    for method in ("lbfgs", "bfgs", "powell"):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            try:
                attempt = smf.mixedlm(formula, data, groups=data["seed"]).fit(reml=True, method=method)
            except (np.linalg.LinAlgError, ValueError) as err:
                failed.append(f"{method}: {err}")
                continue
        # statsmodels flags "MLE may be on the boundary" when the random-effect *variance* is below
        # an absolute 0.01, which is every fit on a cosine-similarity scale (SDs ~0.05); it is replaced
        # by the scale-free check below. Every other warning (gradient, Hessian) counts.
        msgs = [str(x.message).split("\n")[0] for x in w if "on the boundary" not in str(x.message)]
        res, caught, used = attempt, msgs, method
        if attempt.converged and not msgs:
            break
    if res is None:
        caught = ["fit failed (" + "; ".join(failed) + ")"]
    problems = []
    seed_sd = float("nan")
    if res is not None:
        var_re = float(np.asarray(res.cov_re)[0, 0])
        seed_sd = float(np.sqrt(max(var_re, 0.0)))
        if not res.converged:
            problems.append("did not converge")
        if var_re < SINGULAR_REL * (var_re + float(res.scale)):
            problems.append("singular random-effect covariance (seed variance estimated at 0)")
        if not np.all(np.isfinite(res.bse_fe)):
            problems.append("non-finite standard errors")
    if caught:
        problems.append("warnings: " + "; ".join(dict.fromkeys(caught)))
    if res is not None and not problems:
        return res, "mixedlm", True, f"MixedLM (REML, {used}) converged; seed random-intercept SD {seed_sd:.4g}", seed_sd
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ols = smf.ols(formula, data).fit(cov_type="cluster", cov_kwds={"groups": data["seed"].to_numpy()})
    note = ("MixedLM " + ", ".join(problems) + "; refitted as OLS with cluster-robust (by seed) standard errors")
    if w:
        note += "; OLS warnings: " + "; ".join(dict.fromkeys(str(x.message).split("\n")[0] for x in w))
    return ols, "ols_cluster", bool(res is not None and res.converged), note, seed_sd


def model_rows(mr: ModelRates, reference_group: str, level: float) -> pd.DataFrame:
    """The ``slope`` and ``interaction`` rows: one mixed model per edited attribute (module docstring).

    Parameters
    ----------
    mr : ModelRates
        The model's rates (:func:`faceaudit.stats.error_rates.compute_model_rates`).
    reference_group : str
        The group whose slopes are the ``slope`` rows.
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        One row per (attribute, term) for the reference group and per (attribute, other group, term);
        empty when no attribute has enough data.

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> from faceaudit.stats.error_rates import compute_model_rates
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> md = example_model_data(n_seeds=8)
    >>> mr = compute_model_rates(md, seed_weights(md.layout.S, 50, bootstrap_rng(0)), [0.1])
    >>> rows = model_rows(mr, "skin=light", 0.95)
    >>> rows[["row_type", "group", "term", "method"]].values.tolist()
    [['slope', 'skin=light', 'edit_level', 'mixedlm'], ['interaction', 'skin=dark', 'skin=dark:edit_level', 'mixedlm']]
    >>> bool((rows["ci_lo"] <= rows["estimate"]).all() and (rows["estimate"] <= rows["ci_hi"]).all())
    True
    """
    md = mr.md
    L = md.layout
    gen = md.genuine
    cond_attr = np.array([a for a, _ in L.conditions], dtype=object)
    cond_level = np.array([lv for _, lv in L.conditions])
    data_all = pd.DataFrame({
        "score": gen.score, "ok": gen.ok, "seed": L.seeds[gen.seed_a],
        "grp": pd.Categorical(np.array(L.groups, dtype=object)[gen.group],
                              categories=[reference_group] + [g for g in L.groups if g != reference_group]),
        "edit_attr": cond_attr[gen.cond], "edit_level": cond_level[gen.cond],
    })
    data_all = data_all[data_all["ok"]]
    rows = []
    for attr in sorted(set(cond_attr) - {"none"}):
        d = data_all[data_all["edit_attr"] == attr].copy()
        present = [g for g in d["grp"].cat.categories if (d["grp"] == g).any()]
        if len(d) < 10 or d["edit_level"].nunique() < 2 or reference_group not in present or d["seed"].nunique() < 3:
            continue
        d["grp"] = d["grp"].cat.remove_unused_categories()
        d["abs_level"] = d["edit_level"].abs()
        both_signs = (d["edit_level"] < 0).any() and (d["edit_level"] > 0).any()
        # |level| is a separate regressor only when it varies: with levels +-L alone it is constant
        # and would be collinear with the intercept.
        terms = ["edit_level", "abs_level"] if both_signs and d["abs_level"].nunique() > 1 else ["edit_level"]
        multi = len(present) > 1
        rhs = f"C(grp) * ({' + '.join(terms)})" if multi else " + ".join(terms)
        res, method, converged, note, seed_sd = _fit(f"score ~ {rhs}", d)
        ci = res.conf_int(alpha=1 - level)
        base = {"model": md.model, "edit_attr": attr, "method": method, "converged": converged, "fit_note": note,
                "n": int(len(d)), "n_seeds": int(d["seed"].nunique()), "seed_sd": seed_sd,
                "formula": f"score ~ C(group, Treatment('{reference_group}')) * ({' + '.join(terms)}) + (1|seed)"}
        for term in terms:
            rows.append({"row_type": "slope", "group": reference_group, "term": term, "estimate": float(res.params[term]),
                         "ci_lo": float(ci.loc[term, 0]), "ci_hi": float(ci.loc[term, 1]),
                         "p_value": float(res.pvalues[term]), **base})
            for g in present[1:]:
                name = f"C(grp)[T.{g}]:{term}"
                rows.append({"row_type": "interaction", "group": g, "term": f"{g}:{term}", "estimate": float(res.params[name]),
                             "ci_lo": float(ci.loc[name, 0]), "ci_hi": float(ci.loc[name, 1]),
                             "p_value": float(res.pvalues[name]), **base})
    return pd.DataFrame(rows)


def dose_response_table(mr: ModelRates, reference_group: str, level: float) -> pd.DataFrame:
    """``results/dose_response``: the ``mean`` rows, then the fitted ``slope``/``interaction`` rows.

    Parameters
    ----------
    mr : ModelRates
        The model's rates (:func:`faceaudit.stats.error_rates.compute_model_rates`).
    reference_group : str
        The group whose slopes are the ``slope`` rows.
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> from faceaudit.stats.error_rates import compute_model_rates
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> md = example_model_data(n_seeds=8)  # skin=dark genuine scores planted 0.2 lower
    >>> mr = compute_model_rates(md, seed_weights(md.layout.S, 50, bootstrap_rng(0)), [0.1])
    >>> t = dose_response_table(mr, "skin=light", 0.95)
    >>> t["row_type"].value_counts().to_dict()
    {'mean': 4, 'slope': 1, 'interaction': 1}
    >>> means = t[t["row_type"] == "mean"].groupby("group")["mean_score"].mean()
    >>> bool(means["skin=dark"] < means["skin=light"])
    True
    """
    return pd.concat([_mean_rows(mr, level), model_rows(mr, reference_group, level)], ignore_index=True)
