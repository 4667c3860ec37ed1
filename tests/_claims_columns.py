"""Add the issue-18 statistics columns to an existing run's tables, for the model-card tests only.

The analysis will write these itself (``family``, the ``primary_pool`` condition, event counts,
``reportable``/``smoothing`` of ratios, ``results/leakage.parquet``, ``summary.json`` ``primary_family``);
until then the card is tested against a real or synthetic run with the columns added by simple rules:
the rows pooled over every edit condition become the primary family's ``primary_pool`` estimate,
everything else is exploratory; counts are taken from the error-rate rows of the same groups.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

RATIO_SMOOTHING = "0.5 added to every count (Haldane)"


def _counts(er: pd.DataFrame, model: str, group: str, target: float, metric: str) -> tuple[float, float]:
    d = er[(er["model"] == model) & (er["group"] == group) & (er["edit_attr"] == "all")]
    if not np.isnan(target):
        d = d[np.isclose(d["target_fmr"], target)]
    if d.empty:
        return np.nan, np.nan
    r = d.iloc[0]
    if metric.startswith("fmr"):
        return float(r["n_false_match"]), float(r["n_impostor"])
    if metric.startswith("fnmr"):
        return float(r["n_false_non_match"]), float(r["n_genuine"])
    return np.nan, np.nan


def add_claims_columns(root: str | Path, min_events: int = 10) -> dict:
    """Write the contract columns into ``root``'s results; returns ``summary.json``'s primary_family."""
    res = Path(root) / "results"
    er = pd.read_parquet(res / "error_rates.parquet")
    if "n_false_match" not in er.columns:
        er["n_false_match"] = np.round(er["fmr"] * er["n_impostor"])
        er["n_false_non_match"] = np.round(er["fnmr"] * er["n_genuine"])
        er.to_parquet(res / "error_rates.parquet")
    c = pd.read_parquet(res / "contrasts.parquet")
    c["family"] = "exploratory"
    pooled = c[c["condition"] == "all"].copy()
    pooled["condition"] = "primary_pool"
    pooled["family"] = "primary"
    c = pd.concat([c, pooled], ignore_index=True)
    for col in ("events", "n", "events_ref", "n_ref"):
        c[col] = np.nan
    for i, r in c.iterrows():
        t = float(r["target_fmr"]) if pd.notna(r.get("target_fmr")) else np.nan
        grp = r["group"] if isinstance(r.get("group"), str) else f"skin={r['level']}"
        ref = r["reference_group"] if isinstance(r.get("reference_group"), str) else f"skin={r['reference']}"
        c.loc[i, ["events", "n"]] = _counts(er, r["model"], grp, t, str(r["metric"]))
        c.loc[i, ["events_ref", "n_ref"]] = _counts(er, r["model"], ref, t, str(r["metric"]))
    ratio = c["metric"].str.endswith("_ratio")
    c["n_events_min"] = np.where(ratio, np.fmin(c["events"], c["events_ref"]), np.nan)
    c["reportable"] = np.where(ratio, c["n_events_min"] >= min_events, True)
    c["smoothing"] = np.where(ratio, RATIO_SMOOTHING, None)
    c.to_parquet(res / "contrasts.parquet")
    primary = c[c["family"] == "primary"]
    family = {"size": int(len(primary)), "method": "holm", "alpha": 0.05,
              "n_significant": int((primary["p_adjusted"] < 0.05).sum())}
    fair_path = res / "fairness.parquet"
    if fair_path.exists():
        f = pd.read_parquet(fair_path)
        f["n_events_min"] = np.nan
        for i, r in f.iterrows():
            if not str(r["metric"]).endswith("max_min_ratio"):
                continue
            metric = str(r["metric"]).split("_max_min")[0]
            d = er[(er["model"] == r["model"]) & (er["edit_attr"] == "all") & (er["group"] != "all")]
            if pd.notna(r.get("target_fmr")):
                d = d[np.isclose(d["target_fmr"], r["target_fmr"])]
            col = {"fmr": "n_false_match", "fnmr": "n_false_non_match"}.get(metric)
            if col and len(d):
                f.loc[i, "n_events_min"] = float(d[col].min())
        f["reportable"] = f["n_events_min"].isna() | (f["n_events_min"] >= min_events)
        f["smoothing"] = np.where(f["metric"].str.endswith("ratio"), RATIO_SMOOTHING, None)
        f.to_parquet(fair_path)
    mc_path = res / "manipulation_check.parquet"
    if mc_path.exists():
        mc = pd.read_parquet(mc_path)
        ita = mc[mc["measure"].isin(["skin_ita", "measured_skin_ita"]) & ~mc["edit_attr"].isin(["skin_tone", "gender"])]
        gap = 20.0
        leak = pd.DataFrame({"attribute": "skin_tone", "edit_attr": ita["edit_attr"], "edit_level": ita["edit_level"],
                             "measure": "measured_skin_ita", "shift": ita["mean_change"], "level_gap": gap,
                             "share": ita["mean_change"] / gap})
        leak["pooled"] = leak.groupby("edit_attr")["share"].transform(lambda s: bool(s.abs().max() <= 0.25))
        leak.to_parquet(res / "leakage.parquet")
    summary_path = res / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary["primary_family"] = family
    summary_path.write_text(json.dumps(summary))
    return family
