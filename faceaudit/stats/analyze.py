"""The analyze stage: run directory in, ``results/*`` out (docs/statistics.md explains every number).

``analyze_run(run_root)`` reads ``protocol.yaml``, ``faces.parquet``, ``pairs.parquet``,
``scores/*.parquet`` and the ``status`` column of ``embeddings/MODEL.parquet`` and writes

- ``results/error_rates.parquet``   per model x target FMR x group (+ ``all``) x edit condition (+ ``all``)
- ``results/contrasts.parquet``     paired level-vs-reference contrasts, adjusted p-values
- ``results/dose_response.parquet`` mean genuine score per edit level + mixed-model slopes/interactions
- ``results/fairness.parquet``      max/min ratios, FDR, IR, GARBE with CIs
- ``results/roc.parquet``           thinned DET curve points per model x group
- ``results/score_hist.parquet``    score histograms per model x group x kind (common bins per model)
- ``results/det_bands.parquet``     FNMR at a grid of FMRs per model x group with bootstrap bands (stats/det.py)
- ``results/synthetic_vs_real*.parquet`` with a calibration run: rates and score histograms of the audit
  and of the real run at the same thresholds (stats/real_gap.py)
- ``results/summary.json``          the scriptable digest the gate reads

Deterministic: one bootstrap weight matrix per run, drawn from an RNG seeded by ``protocol.seed``,
and shared by every model, group and metric (so all contrasts are paired).
"""

from __future__ import annotations

import math
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from faceaudit.core.errors import BadInput
from faceaudit.protocol import Protocol, level_names
from faceaudit.run import load_run
from faceaudit.rundir import RunDir, write_json, write_table
from faceaudit.stats import thresholds as T
from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
from faceaudit.stats.contrasts import (CONTRAST_COLUMNS, THRESHOLD_CONTRAST_METRICS, THRESHOLD_FREE_CONTRAST_METRICS,
                                      model_contrasts)
from faceaudit.stats.data import ALL, condition_label, make_layout, prepare_model
from faceaudit.stats.primary import (PRIMARY_POOL, adjust_by_family, ci_method_text, family_summary, flip_matrix,
                                     leakage_table, mark_family, primary_conditions)
from faceaudit.stats.det import DET_BAND_COLUMNS, det_band_table
from faceaudit.stats.dose_response import dose_response_table
from faceaudit.stats.error_rates import (ER_CI_METHOD, compute_model_rates, compute_model_rates_streamed, enrolled_nothing,
                                         error_rate_table, fmr_key)
from faceaudit.stats.impostors import ArraySource, embedding_source
from faceaudit.stats.fmr_matrix import FMR_MATRIX_COLUMNS, fmr_matrix_table
from faceaudit.stats.fairness import THRESHOLD_FAIRNESS_METRICS, THRESHOLD_FREE_FAIRNESS_METRICS, fairness_table
from faceaudit.stats.gender import (GENDER_AGE_COLUMNS, IMPOSTOR_SHIFT_COLUMNS, gender_age_table, gender_placement_table,
                                    impostor_shift_table)
from faceaudit.stats.intersectional import intersectional_contrasts
from faceaudit.stats.operating_points import (calibration_thresholds, check_fixed_thresholds, main_operating_point,
                                              operating_points)
from faceaudit.stats.real_gap import read_real_scores, synthetic_vs_real_hist, synthetic_vs_real_table

__all__ = ["analyze_run", "analyze_design", "detector_rows", "build_summary", "unenrolled_rows", "roc_table", "score_hist_table",
           "METHODS", "SUMMARY_SCHEMA"]

SUMMARY_SCHEMA = "faceaudit.summary/1"
HIST_BINS = 60


# ---------------------------------------------------------------------------------------------
# extra tables


def roc_table(md, mr=None) -> pd.DataFrame:
    """DET/ROC points of one model per group (and ``all``): FMR and FNMR at every threshold.

    Parameters
    ----------
    md : ModelData
        The model's data.
    mr : ModelRates, optional
        The model's rates; when streamed (``mr.imp`` set) the points come from the impostor statistics.

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``group``, ``threshold``, ``fmr``, ``fnmr``, ``n_genuine``, ``n_impostor``.

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> roc = roc_table(example_model_data())
    >>> roc["group"].unique().tolist()
    ['skin=light', 'skin=dark', 'all']
    >>> bool(roc["fmr"].between(0, 1).all() and roc["fnmr"].between(0, 1).all())
    True
    """
    if mr is not None and mr.imp is not None:
        from faceaudit.stats.impostors import roc_table_streamed

        return roc_table_streamed(mr.imp, md.model, md.layout.groups, mr.gen_by_set)
    gen, imp = md.genuine, md.impostor
    parts = []
    for g, name in enumerate(md.layout.groups + [ALL]):
        gm = gen.ok & ((gen.group == g) if name != ALL else True)
        im = imp.ok & ((imp.group == g) if name != ALL else True)
        if not gm.any() or not im.any():
            continue
        thr, fmr, fnmr = T.det_points(gen.score[gm], imp.score[im])
        parts.append(pd.DataFrame({"model": md.model, "group": name, "threshold": thr, "fmr": fmr, "fnmr": fnmr,
                                   "n_genuine": int(gm.sum()), "n_impostor": int(im.sum())}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _score_hist_streamed(md, st) -> pd.DataFrame:
    """:func:`score_hist_table` from the streamed impostor histogram (same common edges)."""
    gen = md.genuine
    edges = st.hist_edges
    rows = []
    for kind in ("genuine", "impostor"):
        for g, name in enumerate(md.layout.groups):
            if kind == "genuine":
                s = gen.score[gen.ok & (gen.group == g)]
                n, counts = len(s), (np.histogram(s, bins=edges)[0] if len(s) else None)
            else:
                n, counts = st.dists[g].n, st.hist_counts[g]
            if n == 0:
                continue
            rows.append(pd.DataFrame({"model": md.model, "group": name, "kind": kind, "bin_lo": edges[:-1],
                                      "bin_hi": edges[1:], "count": counts.astype(np.int64),
                                      "density": counts / (n * np.diff(edges))}))
    return pd.concat(rows, ignore_index=True)


def score_hist_table(md, mr=None) -> pd.DataFrame:
    """Histograms of the compared genuine and impostor scores of one model per group, on common edges.

    Parameters
    ----------
    md : ModelData
        The model's data.
    mr : ModelRates, optional
        The model's rates; when streamed (``mr.imp`` set) the impostor histogram comes from it.

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``group``, ``kind``, ``bin_lo``, ``bin_hi``, ``count``, ``density``.

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> md = example_model_data()
    >>> h = score_hist_table(md)
    >>> n = h.groupby("kind")["count"].sum()
    >>> int(n["genuine"]) == int(md.genuine.ok.sum()), int(n["impostor"]) == int(md.impostor.ok.sum())
    (True, True)
    """
    if mr is not None and mr.imp is not None:
        return _score_hist_streamed(md, mr.imp)
    gen, imp = md.genuine, md.impostor
    allv = np.concatenate([gen.score[gen.ok], imp.score[imp.ok]])
    if len(allv) == 0:
        return pd.DataFrame()
    lo, hi = float(allv.min()), float(allv.max())
    if hi <= lo:
        hi = lo + 1e-9
    edges = np.linspace(lo, hi, HIST_BINS + 1)
    rows = []
    for kind, side in (("genuine", gen), ("impostor", imp)):
        for g, name in enumerate(md.layout.groups):
            s = side.score[side.ok & (side.group == g)]
            if len(s) == 0:
                continue
            counts, _ = np.histogram(s, bins=edges)
            rows.append(pd.DataFrame({"model": md.model, "group": name, "kind": kind, "bin_lo": edges[:-1],
                                      "bin_hi": edges[1:], "count": counts.astype(np.int64),
                                      "density": counts / (len(s) * np.diff(edges))}))
    return pd.concat(rows, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# summary.json


def _num(x: Any) -> Any:
    """JSON-safe number: NaN/inf become null (strict JSON has no NaN)."""
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return x
    return f if math.isfinite(f) else None


def _clean(obj: Any) -> Any:
    """Recursively make a summary strict JSON: numpy scalars to Python, NaN/inf to null."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _num(obj)
    return obj


def _ci(est, lo, hi, **extra) -> dict:
    d = {"estimate": _num(est), "ci_lo": _num(lo), "ci_hi": _num(hi)}
    d.update({k: _num(v) for k, v in extra.items()})
    return d


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("faceaudit", "numpy", "pandas", "scipy", "statsmodels"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            if pkg == "faceaudit":
                import faceaudit

                out[pkg] = getattr(faceaudit, "__version__", "unknown")
    return out


def unenrolled_rows(model: str, faces: pd.DataFrame, status: pd.DataFrame, pairs: pd.DataFrame, groups: list[str],
                    targets: list[float], level: float) -> pd.DataFrame:
    """``error_rates`` rows of a model none of whose impostor comparisons enrolled: per group (and
    ``all``) the FTE rate with an exact (Clopper-Pearson) interval; rates that need a threshold are NaN.

    Parameters
    ----------
    model : str
        Model name.
    faces : pandas.DataFrame
        Faces (``face_id``, ``seed``, ``group``).
    status : pandas.DataFrame
        Enrolment status of each face (``face_id``, ``status``; missing counts as FTE).
    pairs : pandas.DataFrame
        Pairs (``group``, ``kind``); every one is counted as a failure to enrol.
    groups : list of str
        Group names.
    targets : list of float
        Target FMRs (one row per group and target).
    level : float
        Confidence level of the FTE interval.

    Returns
    -------
    pandas.DataFrame
        ``error_rates`` rows.

    Examples
    --------
    >>> faces = pd.DataFrame({"face_id": list("abcd"), "seed": [1, 1, 2, 2], "group": ["x", "y", "x", "y"]})
    >>> status = pd.DataFrame({"face_id": list("abcd"), "status": ["fte", "fte", "fte", "ok"]})
    >>> pairs = pd.DataFrame({"group": ["x", "y"], "kind": ["genuine", "impostor"]})
    >>> u = unenrolled_rows("m", faces, status, pairs, ["x", "y"], [0.01], 0.95)
    >>> u[["group", "fte_rate", "n_faces", "n_genuine_fte", "n_impostor_fte"]].values.tolist()
    [['x', 1.0, 2, 1, 0], ['y', 0.5, 2, 0, 1], ['all', 0.75, 4, 1, 1]]
    >>> bool(u["fmr"].isna().all()), bool((u["fte_lo"] <= u["fte_rate"]).all())
    (True, True)
    """
    from statsmodels.stats.proportion import proportion_confint

    st = faces[["face_id", "seed", "group"]].merge(status[["face_id", "status"]], on="face_id", how="left")
    failed = st["status"].fillna("fte") != "ok"
    rows = []
    for g in groups + [ALL]:
        m = np.ones(len(st), bool) if g == ALL else (st["group"] == g).to_numpy()
        pm = np.ones(len(pairs), bool) if g == ALL else (pairs["group"] == g).to_numpy()
        n, k = int(m.sum()), int(failed[m].sum())
        lo, hi = proportion_confint(k, n, alpha=1 - level, method="beta") if n else (np.nan, np.nan)
        for t in targets:
            rows.append({
                "model": model, "group": g, "edit_attr": ALL, "edit_level": np.nan, "condition": ALL,
                "threshold": np.nan, "target_fmr": t,
                "n_genuine": 0, "n_impostor": 0,
                **{f"{r}{x}": np.nan for r in ("fmr", "fnmr", "gfnmr") for x in ("", "_lo", "_hi")},
                "fte_rate": k / n if n else np.nan, "fte_lo": float(lo), "fte_hi": float(hi),
                "n_false_match": 0, "n_false_non_match": 0,
                "n_genuine_fte": int((pairs["kind"][pm] == "genuine").sum()),
                "n_impostor_fte": int((pairs["kind"][pm] == "impostor").sum()),
                "n_faces": n, "n_seeds": int(st.loc[m, "seed"].nunique()),
                "ci_level": level, "ci_method": "clopper-pearson (FTE only: no comparison enrolled)",
            })
    return pd.DataFrame(rows)


def _null_metrics(m: dict, primary: pd.DataFrame, proto: Protocol) -> None:
    """Give a model that enrolled nothing every fairness and contrast metric, valued null: a gate bound
    on them is then inconclusive (not estimable) rather than a rule naming a metric the run lacks."""
    null = _ci(None, None, None)
    refs = {proto.reference_group}
    groups = {metric: sorted(set(primary.loc[primary["metric"] == metric, "group"])) if len(primary) else []
              for metric in THRESHOLD_CONTRAST_METRICS + THRESHOLD_FREE_CONTRAST_METRICS}
    default = [g for g in proto.group_names if g not in refs]
    for metric in THRESHOLD_FREE_FAIRNESS_METRICS:
        m.setdefault(metric, dict(null))
    for metric in THRESHOLD_FREE_CONTRAST_METRICS:
        m.setdefault(metric, {g: dict(null) for g in groups[metric] or default})
    for block in (v for v in list(m.values()) if isinstance(v, dict) and "target_fmr" in v and "threshold" in v):
        for metric in THRESHOLD_FAIRNESS_METRICS + THRESHOLD_FREE_FAIRNESS_METRICS:
            block.setdefault(metric, dict(null))
        for metric in THRESHOLD_CONTRAST_METRICS:
            block.setdefault(metric, {g: dict(null) for g in groups[metric] or default})


def _per_model_view(contrasts: pd.DataFrame) -> pd.DataFrame:
    """Contrast rows with each detector-level row (``model == "detector:..."``) repeated for every model
    in its ``models`` column, so every model's summary block still names its FTE contrasts."""
    if not len(contrasts) or "models" not in contrasts.columns:
        return contrasts
    det = contrasts["model"].astype(str).str.startswith("detector:")
    if not det.any():
        return contrasts
    expanded = []
    for _, row in contrasts[det].iterrows():
        for m in str(row["models"]).split(","):
            expanded.append(row.to_dict() | {"model": m})
    return pd.concat([contrasts[~det], pd.DataFrame(expanded)], ignore_index=True)


def _gate_contrasts(contrasts: pd.DataFrame) -> pd.DataFrame:
    """The contrast rows summary.json (and so the gate) carries: the primary pool's estimate where the
    run has one (the number the card's headline shows), else the one pooled over every condition
    (FTE, which is not pooled by edit; a run without a primary pool)."""
    if not len(contrasts):
        return contrasts
    pool = contrasts[contrasts["condition"] == PRIMARY_POOL]
    every = contrasts[contrasts["condition"] == ALL]
    if not len(pool):
        return every
    key = ["model", "metric", "group", "contrast"] if "contrast" in contrasts.columns else ["model", "metric", "group"]

    def keys(df: pd.DataFrame) -> pd.Series:
        t = df["target_fmr"].fillna(-1.0).astype(float).round(12).astype(str) if "target_fmr" in df.columns else ""
        return df[key].astype(str).agg("|".join, axis=1) + "|" + t

    return pd.concat([pool, every[~keys(every).isin(set(keys(pool)))]], ignore_index=True)


def build_summary(proto: Protocol, n_seeds: int, er: pd.DataFrame, contrasts: pd.DataFrame,
                  fair: pd.DataFrame) -> dict:
    """The summary.json dict of a run: run metadata, then per model its counts, rates, fairness
    summaries and contrasts at each operating point (main operating point only).

    Parameters
    ----------
    proto : Protocol
        The run's protocol.
    n_seeds : int
        Number of seeds (identities) of the design.
    er : pandas.DataFrame
        ``error_rates`` rows of every model.
    contrasts : pandas.DataFrame
        ``contrasts`` rows of every model (may be empty).
    fair : pandas.DataFrame
        ``fairness`` rows of every model (may be empty).

    Returns
    -------
    dict
        Not yet strict JSON (numpy scalars, NaN); :func:`analyze_design` cleans it.

    Examples
    --------
    >>> import tempfile, warnings
    >>> from faceaudit.stats.simulate import SimSpec, write_sim_run
    >>> run = load_run(write_sim_run(tempfile.mkdtemp(), SimSpec(n_seeds=8, edits={"lighting": (-1.0, 1.0)}),
    ...                              np.random.default_rng(0), n_boot=100))
    >>> layout = make_layout(run.faces, run.protocol.group_names)
    >>> md = prepare_model("sim", run.pairs, run.score_table("sim"), run.enrolment_status("sim"), run.faces, layout)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # statsmodels on a tiny design
    ...     tables, _ = analyze_design(run.protocol, layout, [(md, None, "scores/sim.parquet")])
    ...     s = build_summary(run.protocol, layout.S, tables["error_rates"], tables["contrasts"], tables["fairness"])
    >>> s["n_seeds"], s["reference_group"], list(s["models"]), s["target_fmr"]
    (8, 'skin=light', ['sim'], [0.01])
    >>> s["models"]["sim"]["n_genuine"], s["models"]["sim"]["n_impostor"]
    (48, 252)
    """
    ref_group = proto.reference_group
    level = proto.analysis.ci_level
    summary: dict[str, Any] = {
        "schema": SUMMARY_SCHEMA,
        "protocol": proto.name,
        "protocol_seed": proto.seed,
        "n_seeds": int(n_seeds),
        "n_boot": proto.analysis.n_boot,
        "ci_level": level,
        "ci_method": ER_CI_METHOD,  # the rates' intervals; every method: "methods"
        "methods": ci_method_text(),
        "adjust": proto.analysis.adjust,
        "fairness_alpha": proto.analysis.fairness_alpha,
        "protected_attribute": proto.protected_attribute,
        "groups": proto.group_names,
        "reference_group": ref_group,
        "target_fmr": list(proto.analysis.target_fmr),
        "models": {},
        "contrasts": [],
        "versions": _versions(),
    }
    alpha = 1 - level
    extra_er, extra_fair = er, fair
    extra_contrasts = _per_model_view(contrasts) if len(contrasts) else contrasts
    er, contrasts, fair = main_operating_point(er), main_operating_point(contrasts), main_operating_point(fair)
    family = family_summary(contrasts, proto.analysis.adjust, alpha) if len(contrasts) else \
        {"size": 0, "method": proto.analysis.adjust, "n_significant": 0, "alpha": alpha, "models": {}}
    summary["primary_family"] = {k: v for k, v in family.items() if k != "models"}
    spec = proto.analysis.primary
    summary["primary_analysis"] = {"metrics": list(spec.metrics), "conditions": spec.conditions,
                                   "leakage_max": spec.leakage_max}
    pooled = er[er["edit_attr"] == ALL]
    contrasts = _per_model_view(contrasts)
    primary = _gate_contrasts(contrasts)
    if not len(fair):  # no model enrolled a comparison: no fairness summary exists
        fair = pd.DataFrame({"model": pd.Series(dtype=str), "target_fmr": pd.Series(dtype=float),
                             "metric": pd.Series(dtype=str)})
    for model, e in pooled.groupby("model", sort=False):
        first = e[e["target_fmr"] == e["target_fmr"].iloc[0]].set_index("group")
        m: dict[str, Any] = {
            "n_genuine": int(first.loc[ALL, "n_genuine"]), "n_impostor": int(first.loc[ALL, "n_impostor"]),
            "n_genuine_fte": int(first.loc[ALL, "n_genuine_fte"]), "n_impostor_fte": int(first.loc[ALL, "n_impostor_fte"]),
            "auc": {g: _num(first.loc[g, "auc"]) for g in first.index if "auc" in first.columns},
            "eer": {g: _num(first.loc[g, "eer"]) for g in first.index if "eer" in first.columns},
            "fte_rate": {g: _ci(r.fte_rate, r.fte_lo, r.fte_hi) for g, r in first.iterrows()},
        }
        m["enrolled_nothing"] = enrolled_nothing(e)
        mf = fair[fair["model"] == model]
        mc = primary[primary["model"] == model] if len(primary) else primary
        for r in mf[mf["target_fmr"].isna()].itertuples():
            m[r.metric] = _ci(r.estimate, r.ci_lo, r.ci_hi)
        for r in mc[mc["target_fmr"].isna()].itertuples() if len(mc) else []:
            m.setdefault(r.metric, {})[r.group] = _ci(r.estimate, r.ci_lo, r.ci_hi, p_value=r.p_value, p_adjusted=r.p_adjusted)
        for t, et in e.groupby("target_fmr", sort=False):
            et = et.set_index("group")
            k: dict[str, Any] = {"target_fmr": float(t), "threshold": _num(et["threshold"].iloc[0])}
            for rate in ("fmr", "fnmr", "gfnmr"):
                k[rate] = {g: _ci(r[rate], r[f"{rate}_lo"], r[f"{rate}_hi"]) for g, r in et.iterrows()}
            # threshold-free FTE repeated under each operating point so every gate rule can name one
            k["fte_rate"] = m["fte_rate"]
            for r in mf[mf["target_fmr"] == t].itertuples():
                k[r.metric] = _ci(r.estimate, r.ci_lo, r.ci_hi)
            if "fte_max_min_ratio" in m:
                k["fte_max_min_ratio"] = m["fte_max_min_ratio"]
            for r in mc[mc["target_fmr"] == t].itertuples() if len(mc) else []:
                k.setdefault(r.metric, {})[r.group] = _ci(r.estimate, r.ci_lo, r.ci_hi, p_value=r.p_value,
                                                           p_adjusted=r.p_adjusted)
            m[fmr_key(t)] = k
        if m["enrolled_nothing"]:
            _null_metrics(m, primary, proto)
        points = _operating_point_blocks(model, extra_er, extra_contrasts, extra_fair, m["fte_rate"])
        if points:
            m["operating_points"] = points
        # the tiles' "k of n": the model's rows of the primary family (one Holm/BH family for the run)
        fam = family["models"].get(model, {"size": 0, "n_significant": 0})
        m["primary_family"] = fam
        m["n_significant_contrasts"] = fam["n_significant"]
        m["n_primary_contrasts"] = fam["size"]
        summary["models"][model] = m
    for r in primary.to_dict("records") if len(primary) else []:
        summary["contrasts"].append({k: (_num(v) if isinstance(v, (float, np.floating, int, np.integer)) else v)
                                     for k, v in r.items() if k in ("model", "attribute", "level", "reference", "metric",
                                                                    "estimate", "ci_lo", "ci_hi", "p_value", "p_adjusted",
                                                                    "target_fmr", "n_seeds", "group", "contrast",
                                                                    "condition", "family", "events", "n", "events_ref", "n_ref",
                                                                    "reportable", "n_events_min")})
    return summary


def _operating_point_blocks(model: str, er: pd.DataFrame, contrasts: pd.DataFrame, fair: pd.DataFrame,
                            fte_rate: dict) -> dict:
    """summary.json's ``operating_points`` of one model: ``{source: {key: block}}`` for the extra
    operating points (``fixed``: key ``fixed``; ``calibration_run``: one key per target FMR), each block
    shaped like a target-FMR block (``threshold``, per-group rates, fairness summaries, contrasts)."""
    if "threshold_source" not in er.columns:
        return {}
    out: dict[str, dict] = {}
    e = er[(er["model"] == model) & (er["edit_attr"] == ALL) & er["threshold_source"].isin(["fixed", "calibration_run"])]
    for (source, target), et in e.groupby(["threshold_source", e["target_fmr"].fillna(-1.0)], sort=False):
        fixed = source == "fixed"
        et = et.set_index("group")
        k: dict[str, Any] = {"threshold_source": source, "target_fmr": None if fixed else float(target),
                             "threshold": _num(et["threshold"].iloc[0])}
        for rate in ("fmr", "fnmr", "gfnmr"):
            k[rate] = {g: _ci(r[rate], r[f"{rate}_lo"], r[f"{rate}_hi"]) for g, r in et.iterrows()}
        k["fte_rate"] = fte_rate

        def at(df: pd.DataFrame) -> pd.DataFrame:
            if not len(df) or "threshold_source" not in df.columns:
                return df.iloc[0:0] if len(df.columns) else df
            d = df[(df["model"] == model) & (df["threshold_source"] == source)]
            return d[d["target_fmr"].isna()] if fixed else d[np.isclose(d["target_fmr"].fillna(-1.0), target)]

        for r in at(fair).itertuples():
            k[r.metric] = _ci(r.estimate, r.ci_lo, r.ci_hi)
        c = at(contrasts)
        if len(c):
            c = c[c["condition"] == ALL]
        for r in c.itertuples() if len(c) else []:
            k.setdefault(r.metric, {})[r.group] = _ci(r.estimate, r.ci_lo, r.ci_hi, p_value=r.p_value,
                                                       p_adjusted=r.p_adjusted)
        out.setdefault(source, {})["fixed" if fixed else fmr_key(target)] = k
    return out


# ---------------------------------------------------------------------------------------------


def _protected_levels(proto: Protocol) -> dict[str, list[str]]:
    """Protected attribute -> its level names (generated designs; an import has none to measure)."""
    if proto.dataset is not None:
        return {}
    return {p.attribute: level_names(p) for p in proto.protected_specs}


def detector_rows(contrasts: pd.DataFrame, face_fte: dict[str, np.ndarray],
                  detectors: dict[str, str] | None = None) -> pd.DataFrame:
    """FTE contrasts once per detector: models whose faces failed to enrol identically share their
    detector, and their ``fte_rate_diff`` rows are one row with ``model = "detector:<name>"`` and
    ``models`` listing them (comma-separated).

    Parameters
    ----------
    contrasts : pandas.DataFrame
        Contrast rows of every model.
    face_fte : dict
        Model -> per-face failure-to-enrol flags (same face order for every model).
    detectors : dict, optional
        Model -> detector name (``detector:<name>``); default: the models' names joined by ``+``.

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> c = pd.DataFrame({"model": ["a", "b", "a"], "metric": ["fte_rate_diff", "fte_rate_diff", "fnmr_diff"]})
    >>> fte = {"a": np.array([0, 1]), "b": np.array([0, 1])}
    >>> detector_rows(c, fte, {"a": "yunet", "b": "yunet"})[["model", "metric", "models"]].values.tolist()
    [['a', 'fnmr_diff', None], ['detector:yunet', 'fte_rate_diff', 'a,b']]
    """
    if not len(contrasts):
        return contrasts
    groups: dict[bytes, list[str]] = {}
    for model, fte in face_fte.items():
        groups.setdefault(np.asarray(fte, dtype=bool).tobytes(), []).append(model)
    fte_rows = contrasts["metric"] == "fte_rate_diff"
    keep = [contrasts[~fte_rows].assign(models=None)]
    for models in groups.values():
        names = {(detectors or {}).get(m) for m in models}
        name = names.pop() if len(names) == 1 and None not in names else "+".join(models)
        rows = contrasts[fte_rows & (contrasts["model"] == models[0])]
        keep.append(rows.assign(model=f"detector:{name}", models=",".join(models)))
    return pd.concat(keep, ignore_index=True)


def analyze_design(proto: Protocol, layout, models, faces: pd.DataFrame | None = None,
                   detectors: dict[str, str] | None = None, calibrated: dict | None = None,
                   **reduce_options) -> tuple[dict[str, pd.DataFrame], dict]:
    """The result tables and summary of one design; ``models`` yields ``(ModelData, source, where)``, or
    ``(None, unenrolled_rows, where)`` for a model that enrolled no impostor comparison at all.

    ``source`` is an :class:`faceaudit.stats.impostors.ImpostorSource` (impostor statistics streamed
    from it; ``md.impostor`` is then not read) or ``None`` (the in-memory reference computation on
    ``md.impostor``). ``where`` names the score table in error messages.

    Parameters
    ----------
    proto : Protocol
        The run's resolved protocol (analysis settings, seed, groups).
    layout : Layout
        The index space of the run (:func:`faceaudit.stats.data.make_layout`).
    models : iterable
        ``(ModelData, source, where)`` per model, as above.
    faces : pandas.DataFrame, optional
        ``faces.parquet``: the leakage of each edit into the protected measures
        (``results/leakage.parquet``) decides the primary pool; without it every edit is pooled.
    detectors : dict, optional
        Model -> detector name, for the detector-level FTE rows (:func:`detector_rows`).
    calibrated : dict, optional
        ``{model: {target FMR: threshold}}`` set on a calibration run
        (:func:`faceaudit.stats.operating_points.calibration_thresholds`); with the protocol's fixed
        thresholds, the extra operating points every threshold-dependent row is repeated at.
    **reduce_options
        Passed to :func:`faceaudit.stats.impostors.reduce_impostors`.

    Returns
    -------
    (dict, dict)
        ``{table name: DataFrame}`` for ``error_rates``, ``contrasts``, ``dose_response``,
        ``fairness``, ``roc``, ``score_hist``; and the summary.json dict.

    Examples
    --------
    >>> import tempfile, warnings
    >>> import numpy as np
    >>> from faceaudit.stats.simulate import SimSpec, write_sim_run
    >>> from faceaudit.run import load_run
    >>> run = load_run(write_sim_run(tempfile.mkdtemp(), SimSpec(n_seeds=8, edits={"lighting": (-1.0, 1.0)}),
    ...                              np.random.default_rng(0), n_boot=100))
    >>> layout = make_layout(run.faces, run.protocol.group_names)
    >>> md = prepare_model("sim", run.pairs, run.score_table("sim"), run.enrolment_status("sim"), run.faces, layout)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # statsmodels on a tiny design
    ...     tables, summary = analyze_design(run.protocol, layout, [(md, None, "scores/sim.parquet")])
    >>> sorted(tables), summary["models"]["sim"]["enrolled_nothing"]
    (['contrasts', 'det_bands', 'dose_response', 'error_rates', 'fairness', 'gender_age', 'gender_placement', 'impostor_shift', 'leakage', 'roc', 'score_hist'], False)
    """
    a = proto.analysis
    W = seed_weights(layout.S, a.n_boot, bootstrap_rng(proto.seed))
    # the sign-flip p-values' random flips: their own stream of the protocol seed, shared by every row
    flips = flip_matrix(layout.S, np.random.default_rng(np.random.SeedSequence([proto.seed, 18])))
    ref_group = proto.reference_group
    levels = _protected_levels(proto)
    leakage = leakage_table(faces if faces is not None else pd.DataFrame(), list(levels), levels,
                            a.primary.leakage_max)
    labels = [condition_label(attr, lv) for attr, lv in layout.conditions]
    tested, pooled = primary_conditions(labels, a.primary.conditions, leakage)
    pool = [labels.index(c) for c in pooled]
    face_fte: dict[str, np.ndarray] = {}
    tables: dict[str, list[pd.DataFrame]] = {k: [] for k in ("error_rates", "contrasts", "dose_response", "fairness",
                                                              "roc", "score_hist", "det_bands", "gender_age", "impostor_shift")}
    for md, source, where in models:
        if md is None:
            # nothing enrolled (e.g. a generator whose images show no face): no threshold exists, but
            # the failure to enrol is itself the finding, so the model keeps its FTE rows
            tables["error_rates"].append(source)
            continue
        try:
            if source is not None:
                mr = compute_model_rates_streamed(md, source, W, list(a.target_fmr), list(a.far_points), **reduce_options)
            else:
                mr = compute_model_rates(md, W, list(a.target_fmr))
        except ValueError as err:
            raise BadInput(f"{where}: {err}") from None
        tables["error_rates"].append(error_rate_table(mr, a.ci_level, list(a.far_points)))
        face_fte[md.model] = md.face_fte
        cell_rows = model_contrasts(mr, proto.protected_attribute, ref_group, a.ci_level, pool=pool, flips=flips)
        cell_rows["contrast"] = "cell"
        tables["contrasts"].append(cell_rows)
        if len(proto.group_attributes) > 1:
            # crossed protected attributes: marginal effects and interactions (faceaudit.stats.intersectional)
            tables["contrasts"].append(intersectional_contrasts(mr, proto.group_attributes, a.ci_level, flips=flips,
                                                                pool=pool))
        # gender: the contrast at equal apparent age, and the impostor-similarity shift (stats.gender)
        gender_conds = pool or list(range(layout.C))
        tables["gender_age"].append(gender_age_table(mr, faces, proto.group_attributes, gender_conds,
                                                     float(a.target_fmr[0]), W, a.ci_level, flips))
        tables["impostor_shift"].append(impostor_shift_table(mr, proto.group_attributes, gender_conds,
                                                             float(a.target_fmr[0]), a.ci_level))
        tables["dose_response"].append(dose_response_table(mr, ref_group, a.ci_level))
        tables["fairness"].append(fairness_table(mr, a.fairness_alpha, a.ci_level))
        tables["roc"].append(roc_table(md, mr))
        tables["score_hist"].append(score_hist_table(md, mr))
        tables["det_bands"].append(det_band_table(md, W, a.ci_level, source=source))
        for point in operating_points(a.fixed_thresholds, calibrated, md.model):
            _operating_point_rows(tables, proto, md, source, W, point, ref_group, pool, flips, reduce_options, where)

    out = {k: (pd.concat(v, ignore_index=True) if v else pd.DataFrame()) for k, v in tables.items()}
    for name in ("error_rates", "contrasts", "fairness"):
        out[name] = _label_source(out[name], name)
    if not tables["det_bands"]:  # no model enrolled a comparison: an empty table, with its columns
        out["det_bands"] = pd.DataFrame({c: pd.Series(dtype=object) for c in DET_BAND_COLUMNS})
    if not tables["contrasts"]:  # no model enrolled a comparison: an empty table, with its columns
        out["contrasts"] = pd.DataFrame({c: pd.Series(dtype=object) for c in CONTRAST_COLUMNS})
    else:
        out["contrasts"] = detector_rows(out["contrasts"], face_fte, detectors)
    primary_contrast = "marginal" if len(proto.group_attributes) > 1 else "cell"
    out["contrasts"] = mark_family(out["contrasts"], list(a.primary.metrics), tested, primary_contrast,
                                   primary_target=float(a.target_fmr[0]))
    if "threshold_source" not in out["contrasts"].columns:  # written empty: no model enrolled a comparison
        out["contrasts"]["threshold_source"] = pd.Series(dtype=str)
    extra = (out["contrasts"]["threshold_source"].isin(["fixed", "calibration_run"])).to_numpy()
    if extra.any():  # the extra operating points repeat the family's questions: exploratory, adjusted apart
        out["contrasts"].loc[extra, "family"] = "exploratory:" + out["contrasts"].loc[extra, "threshold_source"]
    out["contrasts"] = adjust_by_family(out["contrasts"], a.adjust)
    for name, cols in (("gender_age", GENDER_AGE_COLUMNS), ("impostor_shift", IMPOSTOR_SHIFT_COLUMNS)):
        parts = [t for t in tables[name] if len(t)]
        out[name] = (adjust_by_family(pd.concat(parts, ignore_index=True), a.adjust) if parts
                     else pd.DataFrame({c: pd.Series(dtype=object) for c in cols}))
    out["leakage"] = leakage
    out["gender_placement"] = _gender_placement(proto, faces)
    summary = _clean(build_summary(proto, layout.S, out["error_rates"], out["contrasts"], out["fairness"]))
    return out, summary


def _gender_placement(proto: Protocol, faces: pd.DataFrame | None) -> pd.DataFrame:
    """``results/gender_placement.parquet``: the placing and validating classifiers' agreement per gender level."""
    spec = proto.protected_spec("gender") if proto.dataset is None else None
    levels = list(getattr(spec, "levels", None) or [])
    placed_by = str(getattr(spec, "placed_by", "faceres"))
    validated_by = str(getattr(spec, "validated_by", "oarriaga"))
    return gender_placement_table(faces if faces is not None else pd.DataFrame(), levels, placed_by, validated_by)


def _label_source(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """Give every row a ``threshold_source``: rows of the extra operating points already have one; the
    others are at the protocol's target FMRs (``target_fmr``), or need no threshold (``none``)."""
    if not len(df) and not len(df.columns):
        return df
    df = df.copy()
    given = df["threshold_source"] if "threshold_source" in df.columns else pd.Series(np.nan, index=df.index, dtype=object)
    if name == "error_rates":
        default = pd.Series("target_fmr", index=df.index)
    else:
        default = pd.Series(np.where(df["target_fmr"].isna(), "none", "target_fmr"), index=df.index)
    df["threshold_source"] = given.where(given.notna(), default).astype(str)
    return df


def _operating_point_rows(tables: dict, proto: Protocol, md, source, W, point, ref_group, pool, flips,
                          reduce_options: dict, where: str) -> None:
    """Append one model's error rates, contrasts and fairness summaries at one extra operating point
    (:mod:`faceaudit.stats.operating_points`); rows that need no threshold are not repeated."""
    a = proto.analysis
    try:
        if source is not None:
            mr = compute_model_rates_streamed(md, source, W, [], list(a.far_points), thresholds=point.thresholds,
                                              **reduce_options)
        else:
            mr = compute_model_rates(md, W, [], thresholds=point.thresholds)
    except ValueError as err:
        raise BadInput(f"{where}: {err}") from None

    def tag(df: pd.DataFrame, threshold_dependent: bool = True) -> pd.DataFrame:
        df = df.copy()
        if threshold_dependent:
            df = df[df["target_fmr"].notna()]
        df["target_fmr"] = pd.to_numeric(df["target_fmr"], errors="coerce").astype(float)
        if point.source == "fixed":
            df["target_fmr"] = np.nan
        if "group_threshold" in df.columns and point.source == "fixed":
            df["group_threshold"] = np.nan
        df["threshold_source"] = point.source
        return df

    tables["error_rates"].append(tag(error_rate_table(mr, a.ci_level, list(a.far_points)), threshold_dependent=False))
    cell_rows = model_contrasts(mr, proto.protected_attribute, ref_group, a.ci_level, pool=pool, flips=flips)
    cell_rows["contrast"] = "cell"
    tables["contrasts"].append(tag(cell_rows))
    if len(proto.group_attributes) > 1:
        tables["contrasts"].append(tag(intersectional_contrasts(mr, proto.group_attributes, a.ci_level, flips=flips,
                                                                pool=pool)))
    tables["fairness"].append(tag(fairness_table(mr, a.fairness_alpha, a.ci_level)))


def _model_similarity(proto: Protocol, name: str, run: RunDir):
    """The row-wise similarity of the protocol's model called ``name`` (the one that scored the run).

    A built-in model's similarity comes from its class (no weights are loaded); only a plugin,
    ONNX or exported model, whose similarity only the built model knows, is built here."""
    from faceaudit.models.registry import builtin_similarity, load_model

    if name in proto.models:
        similarity = builtin_similarity(name)  # built-ins are named by their spec
        if similarity is not None:
            return similarity
    for spec in proto.models:
        if builtin_similarity(spec) is not None:
            continue
        model = load_model(spec, device="cpu")
        if model.name == name:
            return model.similarity
    raise BadInput(f"{run.protocol}: no model named {name!r} among {proto.models}; it is needed to score the impostor "
                   "pairs (pairs.impostor_sample)")


def _fmr_matrix(run, proto: Protocol, layout, er: pd.DataFrame) -> pd.DataFrame:
    """``results/fmr_matrix.parquet``: the cross-group FMR matrix of every model whose embeddings are stored
    (:mod:`faceaudit.stats.fmr_matrix`); a run of imported scores, or a model whose similarity this
    installation cannot rebuild, has none (an empty table, or no rows for that model)."""
    parts = []
    for model in (er["model"].unique() if len(er) and "model" in er.columns else []):
        if not run.dir.embeddings(model).exists():
            continue
        try:
            similarity = _model_similarity(proto, model, run.dir)
        except BadInput:  # a model this installation cannot rebuild: its cross-group pairs cannot be scored
            continue
        parts.append(fmr_matrix_table(model, run.faces, run.embeddings(model), layout, er,
                                      similarity=similarity, level=proto.analysis.ci_level))
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else \
        pd.DataFrame({c: pd.Series(dtype=object) for c in FMR_MATRIX_COLUMNS})


#: how impostor statistics are computed: "stream" (blocks, bounded memory; the default) or "exact"
#: (every impostor pair at once: the reference implementation the streamed one is tested against)
METHODS = ("stream", "exact")


def analyze_run(run_root: str | Path, write: bool = True, method: str = "stream",
                models: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Analyse a run directory; returns the result tables (and writes them unless ``write=False``).

    ``method``: see :data:`METHODS`; both give the same tables (tests/test_stats_streaming.py).
    ``models``: the model names to analyse (default: those the manifest records, else every
    ``scores/*.parquet``).

    Parameters
    ----------
    run_root : str or Path
        The run directory (read through :func:`faceaudit.run.load_run`).
    write : bool
        Write ``results/*.parquet`` and ``results/summary.json``.
    method : str
        One of :data:`METHODS`.
    models : list of str, optional
        The models to analyse.

    Returns
    -------
    dict
        ``{table name: DataFrame}``.

    Examples
    --------
    >>> import tempfile, warnings
    >>> import numpy as np
    >>> from faceaudit.stats.simulate import SimSpec, write_sim_run
    >>> spec = SimSpec(n_seeds=8, edits={"lighting": (-1.0, 1.0)}, gen_shift={"skin=dark": -0.2})
    >>> root = write_sim_run(tempfile.mkdtemp(), spec, np.random.default_rng(0), n_boot=100)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # statsmodels on a tiny design
    ...     out = analyze_run(root)
    >>> er = out["error_rates"]
    >>> er[(er["edit_attr"] == "all") & (er["group"] == "all")][["model", "n_genuine", "n_impostor"]].values.tolist()
    [['sim', 48, 252]]
    >>> (root / "results" / "summary.json").exists()
    True
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    run = load_run(run_root)
    rd, proto = run.dir, run.protocol
    faces = run.faces
    pairs = run.pairs
    if len(pairs) == 0:
        raise BadInput(f"{rd.pairs}: no pairs")
    groups = proto.group_names
    extra = sorted(set(faces["group"].astype(str)) - set(groups)) if "group" in faces.columns else []
    if extra:
        raise BadInput(f"{rd.faces}: group {extra[0]!r} is not one of the protocol's groups {groups}")
    layout = make_layout(faces, groups)
    sampled = proto.pairs.impostor_sample is not None
    if sampled:
        # pairs.parquet holds a sample of the impostors: every impostor pair is scored from the embeddings
        method = "stream"
        pairs = pairs[pairs["kind"] == "genuine"].reset_index(drop=True)

    a = proto.analysis

    def model_data():
        for model, (spath, scores) in run.model_scores(models).items():
            epath = rd.embeddings(model)
            status = run.enrolment_status(model)
            if sampled:
                scores = scores[scores["pair_id"].isin(pairs["pair_id"])]
            md = prepare_model(model, pairs, scores, status, faces, layout, scores_where=str(spath), status_where=str(epath))
            if not sampled and not md.impostor.ok.any():
                yield None, unenrolled_rows(model, faces, status, pairs, groups, list(a.target_fmr), a.ci_level), str(spath)
                continue
            source = None
            if sampled:
                source = embedding_source(faces, run.embeddings(model), layout,
                                          similarity=_model_similarity(proto, model, rd), where=str(epath))
            elif method == "stream":
                imp = md.impostor
                source = ArraySource(imp.seed_a, imp.seed_b, imp.group * layout.C + imp.cond, imp.score, imp.ok,
                                     layout.S, layout.G * layout.C)
            yield md, source, str(spath)

    detectors = {}
    for name, record in (run.manifest.get("models") or {}).items():
        if isinstance(record, dict):
            det = record.get("detector") or ("yunet" if "YuNet" in str(record.get("alignment", "")) else None)
            if det:
                detectors[name] = det
    analysed = list(run.model_scores(models))
    check_fixed_thresholds(a.fixed_thresholds, analysed, str(rd.protocol))
    calibrated = calibration_thresholds(a.calibration_run, analysed, list(a.target_fmr)) if a.calibration_run else None
    out, summary = analyze_design(proto, layout, model_data(), faces=faces, detectors=detectors, calibrated=calibrated)
    out["fmr_matrix"] = _fmr_matrix(run, proto, layout, out["error_rates"])
    if a.calibration_run:
        reals = {m: read_real_scores(a.calibration_run, m) for m in analysed}
        out["synthetic_vs_real"] = synthetic_vs_real_table(out["error_rates"], reals, a.ci_level)
        out["synthetic_vs_real_hist"] = synthetic_vs_real_hist(out["score_hist"], reals)
    if write:
        for name, df in out.items():
            write_table(rd.results / f"{name}.parquet", df)
        write_json(rd.results / "summary.json", summary)
    return out
