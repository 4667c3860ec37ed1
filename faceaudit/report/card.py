"""Everything the model card shows, computed from one run directory into plain Python values.

``build_card(run)`` gathers the nine sections of Mitchell et al. (2019), "Model Cards for Model
Reporting", from the run's tables; the Jinja template only lays them out and ``summary_md`` reuses
the same values. Required tables (protocol, faces, pairs, scores, results/error_rates) raise
:class:`BadInput` when missing or malformed; optional ones (contrasts, dose-response, manipulation
check, fairness, generation.json, summary.json) become "not computed" notes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import pandas as pd

from faceaudit.core.errors import BadInput
from faceaudit.report import fmt
from faceaudit.report import figures as F
from faceaudit.report.images import counterfactual_grids, image_resolution
from faceaudit.report.provenance import describe_file, redact_paths

ERROR_RATE_COLUMNS = ["model", "group", "threshold", "target_fmr", "n_genuine", "n_impostor", "fmr", "fmr_lo", "fmr_hi",
                      "fnmr", "fnmr_lo", "fnmr_hi", "fte_rate"]
CONTRAST_COLUMNS = ["model", "attribute", "level", "reference", "metric", "estimate", "ci_lo", "ci_hi", "p_value", "p_adjusted"]
#: values of error_rates.edit_attr that mean "pooled over every edit condition" (the unitary rows)
POOLED_EDIT = {"all", "*", "any", "pooled", "overall", ""}
#: columns a dose-response table may use for the mean genuine score at a level
DOSE_MEAN_COLUMNS = ("mean_score", "mean_genuine_score", "mean", "score_mean")
SIGNIFICANCE = 0.05
#: bootstrap resamples for the per-condition rates the report computes itself when the analysis did not
FALLBACK_BOOT = 200

METADATA_LABELS = {
    "name": "Name", "version": "Version", "embedding_dim": "Embedding dimension", "architecture": "Architecture",
    "training_data": "Training data", "license": "License", "source": "Source", "input_size": "Input size",
    "alignment": "Alignment", "similarity": "Similarity", "paper": "Paper", "weights": "Weights", "device": "Device",
}
TRAINING_KEYS = ("training_data", "train_data", "trained_on", "training_dataset", "training")
INTENDED_USE_KEYS = ("intended_use", "intended_uses", "use")


@dataclass
class Table:
    """A formatted table: header cells and rows of strings; ``numeric`` marks right-aligned columns."""

    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.numeric:
            self.numeric = [False] * len(self.columns)


@dataclass
class ModelSummary:
    name: str
    metadata: list[tuple[str, str]]
    training_data: Optional[str]
    intended_use: Optional[str]
    threshold: float
    pooled_fmr: float
    worst_fnmr: dict
    best_fnmr: dict
    fnmr_ratio: Optional[float]
    fnmr_ratio_ci: Optional[dict]
    fmr_ratio_ci: Optional[dict]
    garbe: Optional[dict]
    worst_fmr: dict
    best_fmr: dict
    fmr_ratio: Optional[float]
    max_fte: float
    n_fte_faces: int
    n_significant: Optional[int]
    n_contrasts: Optional[int]
    headline_contrast: Optional[dict]


def _require_columns(df: pd.DataFrame, cols: list[str], where: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise BadInput(f"{where}: missing columns {missing}")


def _json_value(v: Any) -> str:
    # absolute paths (weights, directions) become package · version · file · hash: the card is
    # shared, the paths stay in manifest.json (faceaudit.report.provenance)
    if isinstance(v, (dict, list)):
        return redact_paths(json.dumps(v, sort_keys=True, default=str))
    return redact_paths(str(v))


# ---------------------------------------------------------------------------------------------
# generic table formatting


def format_table(df: pd.DataFrame, columns: Optional[list[str]] = None, rename: Optional[dict] = None) -> Table:
    """Format any results table: ``x`` with ``x_lo``/``x_hi`` (or ``ci_lo``/``ci_hi`` next to ``estimate``)
    becomes one "x [lo, hi]" column; rates read as %, p-values as 0.008 / <0.001."""
    rename = rename or {}
    cols = [c for c in (columns or list(df.columns)) if c in df.columns]
    out_cols, getters, numeric = [], [], []
    consumed = set()
    for c in cols:
        if c in consumed:
            continue
        lo, hi = f"{c}_lo", f"{c}_hi"
        if c == "estimate" and {"ci_lo", "ci_hi"} <= set(df.columns):
            lo, hi = "ci_lo", "ci_hi"
        elif c.endswith("_rate") and f"{c[:-5]}_lo" in df.columns:  # fte_rate -> fte_lo / fte_hi
            lo, hi = f"{c[:-5]}_lo", f"{c[:-5]}_hi"
        if lo in df.columns and hi in df.columns:
            consumed |= {lo, hi}
            getters.append(lambda r, c=c, lo=lo, hi=hi: _with_ci_cell(c, r[c], r[lo], r[hi]))
        else:
            getters.append(lambda r, c=c: fmt.cell(c, r[c]))
        out_cols.append(rename.get(c, c.replace("_", " ")))
        numeric.append(pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]))
    rows = [[g(r) for g in getters] for _, r in df.iterrows()]
    return Table(out_cols, rows, numeric)


def _with_ci_cell(col: str, x: Any, lo: Any, hi: Any) -> str:
    point = fmt.cell(col, x)
    if fmt._missing(lo) or fmt._missing(hi):
        return point
    return f"{point} [{fmt.cell(col, lo)}, {fmt.cell(col, hi)}]"


# ---------------------------------------------------------------------------------------------
# pieces of the run


def split_error_rates(er: pd.DataFrame) -> tuple[pd.DataFrame, Optional[pd.DataFrame]]:
    """(unitary rows: per group pooled over edit conditions, intersectional rows or None)."""
    if "edit_attr" not in er.columns:
        return er, None
    attr = er["edit_attr"]
    pooled = attr.isna() | attr.astype(str).str.strip().str.lower().isin(POOLED_EDIT)
    inter = er[~pooled]
    return er[pooled], (inter if len(inter) else None)


def _rate_ci_by_seed(errors: np.ndarray, clusters: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float]:
    if len(errors) == 0:
        return np.nan, np.nan, np.nan
    uniq, inv = np.unique(clusters, return_inverse=True)
    e = np.bincount(inv, weights=errors.astype(float), minlength=len(uniq))
    n = np.bincount(inv, minlength=len(uniq)).astype(float)
    draw = rng.integers(0, len(uniq), size=(FALLBACK_BOOT, len(uniq)))
    boot = e[draw].sum(axis=1) / n[draw].sum(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return float(errors.mean()), float(lo), float(hi)


def cells_from_scores(model: str, scored: pd.DataFrame, threshold: float, seed: int) -> pd.DataFrame:
    """Per (group, edit condition) FMR/FNMR at ``threshold`` with seed-resampling CIs.

    Only used when the analysis wrote no per-condition rows: the card must still show the
    intersectional analysis. Impostor pairs are clustered on their first seed (an approximation the
    card states next to the table).
    """
    rng = np.random.default_rng([seed, 4242])
    ok = scored[scored["status"] == "ok"]
    rows = []
    for (g, a, lv), block in ok.groupby(["group", "edit_attr", "edit_level"], sort=True):
        gen, imp = block[block["kind"] == "genuine"], block[block["kind"] == "impostor"]
        fnmr = _rate_ci_by_seed((gen["score"] < threshold).to_numpy(), gen["seed_a"].to_numpy(), rng)
        fmr = _rate_ci_by_seed((imp["score"] >= threshold).to_numpy(), imp["seed_a"].to_numpy(), rng)
        rows.append({"model": model, "group": g, "edit_attr": a, "edit_level": float(lv), "threshold": threshold,
                     "n_genuine": len(gen), "n_impostor": len(imp), "fmr": fmr[0], "fmr_lo": fmr[1], "fmr_hi": fmr[2],
                     "fnmr": fnmr[0], "fnmr_lo": fnmr[1], "fnmr_hi": fnmr[2]})
    return pd.DataFrame(rows)


def dose_curves_from_scores(scored: pd.DataFrame) -> pd.DataFrame:
    """Mean genuine score per (group, edit condition) with a normal 95% CI over seeds.

    Each kept seed contributes exactly one genuine pair per cell (prototype vs that edit), so the
    per-cell scores are independent across seeds and a plain t-style interval is appropriate.
    """
    gen = scored[(scored["kind"] == "genuine") & (scored["status"] == "ok")]
    agg = gen.groupby(["group", "edit_attr", "edit_level"], sort=True)["score"].agg(["mean", "std", "count"]).reset_index()
    half = 1.96 * agg["std"].fillna(0) / np.sqrt(agg["count"])
    return pd.DataFrame({"group": agg["group"], "edit_attr": agg["edit_attr"], "edit_level": agg["edit_level"],
                         "mean_score": agg["mean"], "ci_lo": agg["mean"] - half, "ci_hi": agg["mean"] + half, "n": agg["count"]})


def dose_curves_from_table(dr: Optional[pd.DataFrame], model: str) -> Optional[pd.DataFrame]:
    """The analysis's dose-response table as curves, when it has per-level means with CIs."""
    if dr is None or not {"model", "group", "edit_attr", "edit_level", "ci_lo", "ci_hi"} <= set(dr.columns):
        return None
    mean_col = next((c for c in DOSE_MEAN_COLUMNS if c in dr.columns), None)
    if mean_col is None:
        return None
    d = dr[dr["model"] == model].rename(columns={mean_col: "mean_score"})
    if "row_type" in d.columns:  # the analysis also stores mixed-model terms in this table
        d = d[d["row_type"] == "mean"]
    d = d[d["edit_level"].notna() & d["mean_score"].notna()]
    return d if len(d) else None


def _generation_info(run, faces: pd.DataFrame) -> dict:
    """Generator, resolution, directions and seed bookkeeping, from generation.json where present."""
    gen = run.generation or {}
    proto = run.protocol
    g = gen.get("generator")
    gen_name = g.get("name") if isinstance(g, dict) else g
    kept_seeds = sorted(int(s) for s in faces["seed"].unique())
    # generate stage: "exclusions" (one dict per seed x unreachable level) and "excluded_seeds"
    excluded = gen.get("exclusions") or gen.get("excluded") or gen.get("excluded_seeds") or []
    if isinstance(excluded, dict):
        excluded = [{"seed": k, "reason": v} for k, v in excluded.items()]
    excluded_rows = []
    for e in excluded:
        if isinstance(e, dict):
            reason = str(e.get("reason", "not recorded"))
            if e.get("level"):
                reason = f"level {e['level']}: {reason}" + (f" ({e['steps']} steps)" if e.get("steps") is not None else "")
            excluded_rows.append((str(e.get("seed", "?")), reason))
        else:
            excluded_rows.append((str(e), "not recorded"))
    requested = gen.get("n_seeds_requested", gen.get("seeds_requested", proto.n_seeds))
    reach = []
    for name, info in (gen.get("levels") or {}).items():
        if isinstance(info, dict) and info.get("reach_rate") is not None:
            reach.append(f"{name} {fmt.pct(info['reach_rate'])}")
    from faceaudit.generate.registry import backend_for

    default_directions = backend_for(proto).directions_note
    directions = gen.get("directions") or getattr(proto.generator, "directions", None) or default_directions
    if isinstance(directions, dict):
        directions = (describe_file(directions["path"], directions.get("sha256")) if directions.get("path")
                      else directions.get("name") or _json_value(directions))
    else:
        directions = _json_value(directions)
    return {
        "generator": gen_name or proto.generator.name,
        "generator_meta": [(k, _json_value(v)) for k, v in g.items()] if isinstance(g, dict) else [],
        "directions": str(directions),
        "truncation": getattr(proto.generator, "truncation", None),
        "max_skin_steps": getattr(proto.generator, "max_skin_steps", None),
        "seeds_requested": int(requested) if isinstance(requested, (int, float)) else requested,
        "seeds_kept": len(kept_seeds),
        "excluded": excluded_rows,
        "generator_training_data": (g.get("training_data") if isinstance(g, dict) else None) or gen.get("training_data"),
        "reach": ", ".join(reach),
        "recorded": bool(gen),
    }


def _ita_facts(faces: pd.DataFrame, protocol) -> dict:
    """How well measured ITA matches the protected bins, and how much lighting edits move it."""
    skin_spec = protocol.skin
    out: dict[str, Any] = {"rows": [], "in_bin_all": None, "in_bin_edited": None, "lighting_shift": None,
                           "exposure_max": None, "mechanism": skin_spec.mechanism if skin_spec else None,
                           "exposure_tolerance": getattr(protocol.generator, "exposure_tolerance", None)}  # DCGAN only
    if "measured_skin_ita" not in faces.columns or skin_spec is None or "skin_tone" not in faces.columns:
        return out
    levels = {lv.name: lv for lv in skin_spec.levels}
    skin = faces["skin_tone"].astype(str)
    in_bin = pd.Series(False, index=faces.index)
    for name, lv in levels.items():
        m = skin == name
        in_bin[m] = (faces.loc[m, "measured_skin_ita"] >= lv.ita_min) & (faces.loc[m, "measured_skin_ita"] < lv.ita_max)
    protos = faces["edit_attr"] == "none"
    for name, lv in levels.items():
        m = skin == name
        ita_p = faces.loc[m & protos, "measured_skin_ita"]
        out["rows"].append({
            "level": name, "bin": f"[{fmt.num(lv.ita_min)}°, {fmt.num(lv.ita_max)}°)", "target": f"{fmt.num(lv.target)}°",
            "reference": name == skin_spec.reference,
            "proto_ita": f"{fmt.num(ita_p.mean())}° ± {fmt.num(ita_p.std())}" if len(ita_p) > 1 else "–",
            "in_bin_proto": fmt.pct(in_bin[m & protos].mean()) if (m & protos).any() else "–",
            "in_bin_edited": fmt.pct(in_bin[m & ~protos].mean()) if (m & ~protos).any() else "–",
            **_exposure_vs_reference(faces, name, skin_spec.reference),
        })
    borders = [r["border_max"] for r in out["rows"] if r.get("border_max") is not None]
    out["exposure_max"] = max(borders) if borders else None
    out["in_bin_all"] = float(in_bin.mean())
    out["in_bin_edited"] = float(in_bin[~protos].mean()) if (~protos).any() else None
    shifts = _paired_change(faces, "lighting", "measured_skin_ita")
    if shifts:
        lvl, val = max(shifts.items(), key=lambda kv: abs(kv[1]))
        out["lighting_shift"] = {"level": fmt.level(lvl), "shift": val}
    return out


def _gender_facts(run, faces: pd.DataFrame, protocol) -> Optional[dict]:
    """Perceived gender as a protected attribute: per level, what placed the faces and what both
    classifiers say of the kept prototypes; exposure and apparent-age change against the reference
    level within seed and skin level."""
    gspec = protocol.protected_spec("gender") if protocol.dataset is None else None
    if gspec is None or "measured_gender_pmale" not in faces.columns or "gender" not in faces.columns:
        return None
    g = (run.generation or {}).get("gender_levels", {})
    protos = faces[faces["edit_attr"] == "none"]
    # within seed and the same levels of the other protected attributes
    pair = ["seed"] + [c for c in ("skin_tone", "race", "age_group") if c in faces.columns]
    ref = protos[protos["gender"] == gspec.reference].set_index(pair)
    rows = []
    for lv in gspec.levels:
        p = protos[protos["gender"] == lv.name]
        pm = p["measured_gender_pmale"].to_numpy(dtype=float)
        pi = p["measured_gender_pmale_independent"].to_numpy(dtype=float)
        info = g.get(lv.name, {})
        row = {"level": lv.name, "reference": lv.name == gspec.reference,
               "bin": f"[{fmt.num(lv.p_male_min)}, {fmt.num(lv.p_male_max)}{']' if lv.p_male_max >= 1 else ')'}",
               "target": fmt.num(lv.target),
               "reach": fmt.pct(info["reach_rate"]) if "reach_rate" in info else "–",
               "p_male": f"{fmt.num(np.nanmean(pm))} ± {fmt.num(np.nanstd(pm))}" if np.isfinite(pm).any() else "–",
               "in_bin": fmt.pct(np.mean([lv.contains(x) for x in pm[np.isfinite(pm)]])) if np.isfinite(pm).any() else "–",
               "independent": fmt.pct(np.mean([lv.contains(x) for x in pi[np.isfinite(pi)]])) if np.isfinite(pi).any() else "–",
               "border": "–", "age": "–"}
        if lv.name != gspec.reference and len(p):
            cur = p.set_index(pair)
            common = ref.index.intersection(cur.index)
            if len(common):
                b = (cur.loc[common, "measured_border_luma"] - ref.loc[common, "measured_border_luma"]).dropna()
                row["border"] = f"{fmt.signed(b.mean())} (max |Δ| {fmt.num(b.abs().max())})" if len(b) else "–"
                a1 = (cur.loc[common, "measured_age"] - ref.loc[common, "measured_age"]).mean()
                a2 = (cur.loc[common, "measured_age_independent"] - ref.loc[common, "measured_age_independent"]).mean()
                row["age"] = f"{fmt.signed(a1)} / {fmt.signed(a2)}"
        rows.append(row)
    return {"rows": rows, "reference": gspec.reference}


def _exposure_vs_reference(faces: pd.DataFrame, level: str, reference: str) -> dict[str, Any]:
    """Within-seed change of the prototypes' exposure measures from the reference level's prototype."""
    out = {"border_change": "–", "background_change": "–", "border_max": None}
    if "measured_border_luma" not in faces.columns or level == reference:
        return out
    protos = faces[faces["edit_attr"] == "none"]
    # within seed, and within gender level when gender is protected too
    keys = ["seed"] + (["gender"] if "gender" in protos.columns else [])
    ref = protos[protos["skin_tone"] == reference].set_index(keys)
    lv = protos[protos["skin_tone"] == level].set_index(keys)
    common = ref.index.intersection(lv.index)
    if not len(common):
        return out
    border = (lv.loc[common, "measured_border_luma"] - ref.loc[common, "measured_border_luma"]).dropna()
    if len(border):
        out["border_change"] = f"{fmt.signed(border.mean())} (max |Δ| {fmt.num(border.abs().max())})"
        out["border_max"] = float(border.abs().max())
    if "measured_background_luma" in faces.columns:
        bg = (lv.loc[common, "measured_background_luma"] - ref.loc[common, "measured_background_luma"]).dropna()
        if len(bg):
            out["background_change"] = f"{fmt.signed(bg.mean())} (mean |Δ| {fmt.num(bg.abs().mean())})"
    return out


def _paired_change(faces: pd.DataFrame, attr: str, measure: str) -> dict[float, float]:
    """Mean within-seed change of ``measure`` from the prototype at each level of ``attr``."""
    if measure not in faces.columns:
        return {}
    protos = faces[faces["edit_attr"] == "none"].set_index(["seed", "group"])[measure]
    edits = faces[faces["edit_attr"] == attr]
    out = {}
    for lv, block in edits.groupby("edit_level", sort=True):
        base = protos.reindex(list(zip(block["seed"], block["group"]))).to_numpy()
        diff = block[measure].to_numpy() - base
        if np.isfinite(diff).any():
            out[float(lv)] = float(np.nanmean(diff))
    return out


def _edit_rows(faces: pd.DataFrame, protocol) -> list[dict]:
    rows = []
    for e in protocol.edits:
        # the exposure edit is stated in SDs of border luma (faceaudit.generate.photometric)
        measure = "measured_border_luma" if e.attribute == "exposure" else f"measured_{e.attribute}"
        change = _paired_change(faces, e.attribute, measure)
        rows.append({
            "attribute": e.attribute,
            "levels": ", ".join(fmt.level(v) for v in e.levels),
            "measure": measure if measure in faces.columns else "not measured",
            "change": ", ".join(f"{fmt.level(k)}: {fmt.signed(v)}" for k, v in change.items()) or "–",
        })
    return rows


MANIPULATION_COLUMNS = {"edit_attr", "edit_level", "measure", "mean_change", "is_target"}
#: an edit leaks into skin tone when it moves mean ITA by more than this share of the smallest gap
#: between adjacent skin levels' prototype ITAs (then it partly re-does the protected manipulation)
ITA_LEAK_SHARE = 0.25


def _skin_gap(faces: pd.DataFrame) -> Optional[float]:
    if "measured_skin_ita" not in faces.columns:
        return None
    means = np.sort(faces[faces["edit_attr"] == "none"].groupby("group")["measured_skin_ita"].mean().to_numpy())
    gaps = np.diff(means)
    return float(gaps.min()) if len(gaps) and gaps.min() > 0 else None


def manipulation_summary(mc: Optional[pd.DataFrame], faces: pd.DataFrame, attrs: list[str]) -> dict:
    """Per edit: is the target change monotone in the level, and how far does it move skin ITA?

    Reads the generate stage's long table (``edit_attr, edit_level, measure, mean_change, is_target``);
    any other table shape is shown as it is, with boolean ``monoton*`` / ``leak*`` columns as flags.
    """
    out = {"table": None, "long": None, "non_monotone": [], "leaky": [], "gap": None}
    if mc is None or mc.empty:
        return out
    if not MANIPULATION_COLUMNS <= set(mc.columns):
        out["table"] = format_table(mc)
        mono_cols = [c for c in mc.columns if "monoton" in c.lower() and pd.api.types.is_bool_dtype(mc[c])]
        leak_cols = [c for c in mc.columns if "leak" in c.lower() and pd.api.types.is_bool_dtype(mc[c])]
        label = lambda r: str(r["edit_attr"]) if "edit_attr" in r.index else f"row {r.name}"  # noqa: E731
        out["non_monotone"] = list(dict.fromkeys(label(r) for _, r in mc.iterrows() if any(not bool(r[c]) for c in mono_cols)))
        out["leaky"] = list(dict.fromkeys(label(r) for _, r in mc.iterrows() if any(bool(r[c]) for c in leak_cols)))
        return out
    gap = _skin_gap(faces)
    out["gap"] = gap
    rows = []
    for attr in attrs:
        d = mc[mc["edit_attr"] == attr]
        if d.empty:
            continue
        target = d[d["is_target"].astype(bool)].sort_values("edit_level")
        changes = target["mean_change"].to_numpy(dtype=float)
        monotone = bool(len(changes) > 1 and np.all(np.diff(changes) > 0)) if len(changes) else False
        ita = d[d["measure"].isin(["skin_ita", "measured_skin_ita"])]
        max_ita = float(ita["mean_change"].abs().max()) if len(ita) else float("nan")
        share = max_ita / gap if gap and np.isfinite(max_ita) else float("nan")
        leaky = bool(np.isfinite(share) and share > ITA_LEAK_SHARE)
        if not monotone:
            out["non_monotone"].append(attr)
        if leaky:
            out["leaky"].append(f"{attr} → skin ITA")
        rows.append([attr, str(target["measure"].iloc[0]) if len(target) else "–",
                     ", ".join(f"{fmt.level(lv)}: {fmt.signed(c)}" for lv, c in zip(target["edit_level"], changes)) or "–",
                     "yes" if monotone else "no", f"{fmt.num(max_ita)}°" if np.isfinite(max_ita) else "–",
                     fmt.pct(share) if np.isfinite(share) else "–", "yes" if leaky else "no"])
    out["table"] = Table(["edit", "target measure", "mean change from prototype, by level", "monotone",
                          "largest skin-ITA change", "share of skin-level gap", "leakage flagged"],
                         rows, [False, False, False, False, True, True, False])
    long = mc.copy()
    out["long"] = format_table(long, [c for c in ["edit_attr", "edit_label", "edit_level", "measure", "mean_change",
                                                  "sd_change", "n", "is_target"] if c in long.columns])
    return out


#: protected-level manipulation check: the measures shown, in this order (others stay in the long table)
PROTECTED_CHECK_MEASURES = [
    ("in_bin", "prototypes in bin"), ("measured_skin_ita", "ITA °"), ("measured_border_luma", "border luma /255"),
    ("measured_background_luma", "non-face luma /255"), ("measured_hair_luma", "hair-band luma /255"),
    ("measured_white_balance", "white balance log2(R/B)"), ("measured_brightness", "image L*"),
    ("measured_lighting", "lighting"), ("measured_yaw", "yaw"), ("measured_smile", "smile"),
    # perceived gender and age (faceres; independent: oarriaga gender, SSR-Net age), where measured
    ("in_bin_independent", "independent classifier agrees"), ("independent_order", "seeds moved as intended (independent)"),
    ("measured_gender_pmale", "P(male)"), ("measured_gender_pmale_independent", "P(male), independent"),
    ("measured_age", "age (years)"), ("measured_age_independent", "age, independent (years)"),
]
#: shares among the protected-check measures (shown in %)
_SHARE_MEASURES = {"in_bin", "in_bin_independent", "independent_order"}


def protected_check_table(mc: Optional[pd.DataFrame]) -> Optional[Table]:
    """Per protected level (vs the reference prototype, within seed): target reached, leakage into every
    other measure (mean change; exposure included), identity drift per model (mean cosine similarity)."""
    if mc is None or mc.empty or not MANIPULATION_COLUMNS <= set(mc.columns):
        return None
    d = mc[mc["edit_attr"].isin(["skin_tone", "gender"])]
    if d.empty:
        return None
    models = sorted(m.split(":", 1)[1] for m in d["measure"].unique() if str(m).startswith("identity_sim:"))
    cols = [(m, label) for m, label in PROTECTED_CHECK_MEASURES if m in set(d["measure"])]
    cols += [(f"identity_sim:{m}", f"identity similarity ({m})") for m in models]
    rows = []
    for attr, label in dict.fromkeys(zip(d["edit_attr"], d["edit_label"])):
        block = d[(d["edit_attr"] == attr) & (d["edit_label"] == label)].set_index("measure")["mean_change"]
        cells = [str(label) if attr == "skin_tone" else f"{attr}: {label}"]
        for m, _ in cols:
            v = block.get(m, np.nan)
            if not np.isfinite(v):
                cells.append("–")
            elif m in _SHARE_MEASURES:
                cells.append(fmt.pct(v))
            elif m.startswith("identity_sim:"):
                cells.append(f"{v:.3f}")
            else:
                cells.append(fmt.signed(v))
        rows.append(cells)
    return Table(["level"] + [c for _, c in cols], rows, [False] + [True] * len(cols))


def _group_pick(unitary: pd.DataFrame, col: str, worst: bool) -> dict:
    d = unitary.dropna(subset=[col])
    if d.empty:  # no enrolled comparison (every face failed to enrol): the KPI shows a dash
        return {"group": "no enrolled comparison", "value": "–", "ci": "", "raw": None}
    r = d.loc[d[col].idxmax() if worst else d[col].idxmin()]
    return {"group": fmt.group_label(r["group"]), "value": fmt.pct(r[col]),
            "ci": fmt.ci(r.get(f"{col}_lo"), r.get(f"{col}_hi")), "raw": float(r[col])}


def _ratio(worst: dict, best: dict) -> Optional[float]:
    if not worst or not best or worst.get("raw") is None or best.get("raw") is None or best["raw"] <= 0:
        return None
    return worst["raw"] / best["raw"]


# ---------------------------------------------------------------------------------------------
# the card


def build_card(run) -> dict:
    protocol = run.protocol
    faces = run.faces
    groups_order = protocol.group_names
    er = run.error_rates
    if er is None:
        raise BadInput(f"{run.root / 'results' / 'error_rates.parquet'}: missing; run the `analyze` stage first")
    _require_columns(er, ERROR_RATE_COLUMNS, "results/error_rates.parquet")
    contrasts = run.contrasts
    if contrasts is not None:
        _require_columns(contrasts, CONTRAST_COLUMNS, "results/contrasts.parquet")
    models = run.models
    primary_contrasts, condition_contrasts = None, None
    if not models:
        raise BadInput(f"{run.root}: no models recorded in manifest.json and no scores/*.parquet")
    targets = sorted(er["target_fmr"].dropna().unique().tolist())
    primary_target = next((t for t in protocol.analysis.target_fmr if any(np.isclose(t, targets))), targets[0] if targets else np.nan)
    er_primary = er[np.isclose(er["target_fmr"], primary_target)] if targets else er
    unitary_all, inter_all = split_error_rates(er)
    unitary, inter = split_error_rates(er_primary)
    present_groups = set(unitary["group"])
    groups = [g for g in groups_order if g in present_groups or g in set(faces["group"])]
    attrs = [e.attribute for e in protocol.edits]
    if contrasts is not None:
        primary_contrasts, condition_contrasts = split_contrasts(contrasts, primary_target)
    roc = run.result("roc")
    hist = run.result("score_hist")
    fairness = run.result("fairness")
    emb_status = run.embeddings_status
    gen_info = _generation_info(run, faces)
    resolution = image_resolution(run.root, faces)

    figures: dict[str, list[F.Figure]] = {"det": [], "scores": [], "fnmr_cond": [], "forest": [], "dose": []}
    inter_tables: list[dict] = []
    model_summaries: list[ModelSummary] = []
    thresholds_rows: list[list[str]] = []
    inter_source = "analysis" if inter is not None else "report"
    dose_source_note = ""
    smallest_cell: Optional[dict] = None

    for model in models:
        scored = run.scored_pairs(model)
        u = unitary[(unitary["model"] == model) & unitary["group"].isin(groups)]
        if u.empty:
            raise BadInput(f"results/error_rates.parquet: no per-group rows for model {model!r}")
        threshold = float(u["threshold"].iloc[0])
        ok = scored[scored["status"] == "ok"]
        imp = ok.loc[ok["kind"] == "impostor", "score"].to_numpy()
        pooled_fmr = float((imp >= threshold).mean()) if len(imp) else np.nan
        for t in targets:
            th = er[(er["model"] == model) & np.isclose(er["target_fmr"], t)]["threshold"]
            if len(th):
                thv = float(th.iloc[0])
                thresholds_rows.append([model, fmt.pct(t), fmt.num(thv, 4),
                                        fmt.pct(float((imp >= thv).mean())) if len(imp) else "–", f"{len(imp):,}"])

        # per-condition cells: the analysis's rows, or computed here at the same threshold
        cells = inter[inter["model"] == model] if inter is not None else cells_from_scores(model, scored, threshold, protocol.seed)
        cells = cells[cells["edit_attr"].isin(attrs)]
        inter_tables.append({"model": model, "table": _intersectional_table(cells, groups, attrs)})
        gen_cells = cells[cells["n_genuine"] > 0]
        if len(gen_cells):
            r = gen_cells.loc[gen_cells["n_genuine"].idxmin()]
            if smallest_cell is None or r["n_genuine"] < smallest_cell["n"]:
                smallest_cell = {"n": int(r["n_genuine"]), "n_impostor": int(cells["n_impostor"].min()),
                                 "where": f"{fmt.group_label(r['group'])}, {r['edit_attr']} {fmt.level(r['edit_level'])}"}

        figures["det"].append(F.det_figure(model, scored, u, groups, primary_target,
                                           roc[roc["model"] == model] if roc is not None and len(roc) else None))
        figures["scores"].append(F.score_distribution_figure(model, scored, groups, threshold,
                                                             hist[hist["model"] == model] if hist is not None and len(hist) else None))
        figures["fnmr_cond"].append(F.fnmr_by_condition_figure(model, cells, groups, attrs))
        curves = dose_curves_from_table(run.dose_response, model)
        if curves is None:
            curves = dose_curves_from_scores(scored)
            dose_source_note = ("Computed by the report from the scores (normal-approximation CI over seeds: each seed "
                                "contributes one genuine pair per cell), because results/dose_response.parquet has no per-level means.")
        figures["dose"].append(F.dose_response_figure(model, curves, groups, attrs, dose_source_note))

        meta = dict((run.manifest.get("models") or {}).get(model) or {})
        ms = status_counts(emb_status, model)
        mc = primary_contrasts[primary_contrasts["model"] == model] if primary_contrasts is not None else None
        fair_m = _fairness_for(fairness, model, primary_target)
        model_summaries.append(ModelSummary(
            name=model,
            metadata=[(METADATA_LABELS.get(k, k.replace("_", " ").capitalize()), _json_value(v)) for k, v in _ordered(meta)],
            training_data=next((_json_value(meta[k]) for k in TRAINING_KEYS if meta.get(k)), None),
            intended_use=next((_json_value(meta[k]) for k in INTENDED_USE_KEYS if meta.get(k)), None),
            threshold=threshold, pooled_fmr=pooled_fmr,
            worst_fnmr=_group_pick(u, "fnmr", True), best_fnmr=_group_pick(u, "fnmr", False),
            fnmr_ratio=_ratio(_group_pick(u, "fnmr", True), _group_pick(u, "fnmr", False)),
            fnmr_ratio_ci=fair_m.get("fnmr_max_min_ratio"), fmr_ratio_ci=fair_m.get("fmr_max_min_ratio"),
            garbe=fair_m.get("garbe"),
            worst_fmr=_group_pick(u, "fmr", True), best_fmr=_group_pick(u, "fmr", False),
            fmr_ratio=_ratio(_group_pick(u, "fmr", True), _group_pick(u, "fmr", False)),
            max_fte=float(u["fte_rate"].max()), n_fte_faces=ms,
            n_significant=int((mc["p_adjusted"] < SIGNIFICANCE).sum()) if mc is not None else None,
            n_contrasts=len(mc) if mc is not None else None,
            headline_contrast=_headline_contrast(mc),
        ))

    if primary_contrasts is not None and len(primary_contrasts):
        pc = primary_contrasts.assign(label=[F.contrast_label(r) for _, r in primary_contrasts.iterrows()])
        figures["forest"].append(F.forest_figure("forest-pooled", "Contrasts pooled over edit conditions", pc, models,
                                                 "label", SIGNIFICANCE))
    if condition_contrasts is not None and len(condition_contrasts):
        cc = condition_contrasts[condition_contrasts["metric"] == "fnmr_diff"]
        if len(cc):
            cc = cc.assign(label=[f"{F.condition_label(r['condition'])} · {F.contrast_label(r)}" for _, r in cc.iterrows()])
            figures["forest"].append(F.forest_figure("forest-conditions", "FNMR contrasts within each edit condition", cc,
                                                     models, "label", SIGNIFICANCE))

    fairness_tables = []
    for name in run.result_names:
        if name.startswith("fairness"):
            df = run.result(name)
            fairness_tables.append({"name": name, "table": _fairness_table(df), "n": len(df)})
    # roc and score_hist are drawn as the DET and score-distribution figures
    known = {"error_rates", "contrasts", "dose_response", "manipulation_check", "roc", "score_hist"}
    from faceaudit.report.human import HUMAN_TABLES, human_section  # its own room; imports Table from here

    known |= set(HUMAN_TABLES)  # shown in section 7.6 when the run has human ratings
    other_results = [(n, len(run.result(n))) for n in run.result_names if n not in known and not n.startswith("fairness")]

    pairs = run.pairs
    pair_counts = (pairs.groupby(["group", "kind"]).size().unstack(fill_value=0).reindex(groups).fillna(0).astype(int))
    ita = _ita_facts(faces, protocol)
    manip = manipulation_summary(run.manipulation_check, faces, attrs)

    unitary_table_df = unitary_all[unitary_all["model"].isin(models)].copy()
    # protocol order: models as listed, groups light -> dark, the pooled "all" row last
    unitary_table_df["_m"] = unitary_table_df["model"].map({m: i for i, m in enumerate(models)})
    unitary_table_df["_g"] = unitary_table_df["group"].map({g: i for i, g in enumerate(groups_order)}).fillna(len(groups_order))
    unitary_table_df = unitary_table_df.sort_values(["_m", "target_fmr", "_g"], kind="stable")
    unitary_table_df["group"] = unitary_table_df["group"].map(lambda g: "all groups" if g == "all" else fmt.group_label(g))
    unitary_cols = ["model", "group", "target_fmr", "n_genuine", "n_impostor", "fmr", "fnmr", "fte_rate"]
    if "eer" in unitary_table_df.columns and unitary_table_df["eer"].notna().any():
        unitary_cols.append("eer")

    return {
        "title": f"Model card · {protocol.name}",
        "protocol": protocol,
        "protocol_hash": run.manifest.get("protocol_hash"),
        "versions": run.manifest.get("versions") or {},
        "models": models,
        "model_summaries": model_summaries,
        "groups": [fmt.group_label(g) for g in groups],
        "reference_group": fmt.group_label(protocol.reference_group),
        # imported faces (faceaudit import): the card's first lines say what the design supports
        "dataset": protocol.dataset,
        "attrs": attrs,
        "primary_target": primary_target,
        "targets": targets,
        "thresholds": Table(["model", "target FMR", "global threshold", "achieved FMR (pooled impostors)", "impostor pairs"],
                            thresholds_rows, [False, True, True, True, True]),
        "analysis": protocol.analysis,
        "unitary_table": format_table(unitary_table_df, unitary_cols,
                                      rename={"eer": "EER (threshold-free)", "target_fmr": "target FMR", "n_genuine": "genuine pairs", "n_impostor": "impostor pairs",
                                              "fmr": "FMR [95% CI]", "fnmr": "FNMR [95% CI]", "fte_rate": "FTE rate"}),
        "inter_tables": inter_tables,
        "inter_source": inter_source,
        "contrasts_table": _contrasts_table(primary_contrasts) if primary_contrasts is not None else None,
        "condition_contrasts_table": _contrasts_table(condition_contrasts, with_condition=True)
        if condition_contrasts is not None and len(condition_contrasts) else None,
        "n_contrasts_total": len(contrasts) if contrasts is not None else 0,
        "dose_table": _dose_table(run.dose_response) if run.dose_response is not None else None,
        "dose_fit_notes": _dose_fit_notes(run.dose_response),
        "manipulation_table": manip["table"],
        "protected_check_table": protected_check_table(run.manipulation_check),
        "has_gender": protocol.protected_spec("gender") is not None if protocol.dataset is None else False,
        "has_cells": any("|" in g for g in groups_order),
        "manipulation_long": manip["long"],
        "manipulation_gap": manip["gap"],
        "manipulation_flags": {"non_monotone": manip["non_monotone"], "leaky": manip["leaky"]},
        "fairness_tables": fairness_tables,
        "other_results": other_results,
        "summary_json": run.summary,
        "figures": figures,
        "grids": counterfactual_grids(run.root, faces, groups_order),
        "generation": gen_info,
        "resolution": resolution,
        "n_faces": len(faces),
        "n_pairs": len(pairs),
        "pair_counts": [{"group": fmt.group_label(g), "genuine": int(r.get("genuine", 0)), "impostor": int(r.get("impostor", 0))}
                        for g, r in pair_counts.iterrows()],
        "ita": ita,
        "gender": _gender_facts(run, faces, protocol),
        "edit_rows": _edit_rows(faces, protocol),
        "smallest_cell": smallest_cell,
        "fte": _fte_by_group(emb_status, faces, models, groups),
        "sources": sorted(str(s) for s in faces["source"].dropna().unique()) if "source" in faces.columns else [],
        "human": human_section(run, groups),
    }


def _ordered(meta: dict) -> list[tuple[str, Any]]:
    """Known metadata keys in METADATA_LABELS order (name and version first), then the rest."""
    known = [k for k in METADATA_LABELS if k in meta]
    return [(k, meta[k]) for k in known + sorted(k for k in meta if k not in METADATA_LABELS)]


def status_counts(emb_status: pd.DataFrame, model: str) -> int:
    d = emb_status[emb_status["model"] == model]
    return int((d["status"] != "ok").sum())


def _fte_by_group(emb_status: pd.DataFrame, faces: pd.DataFrame, models: list[str], groups: list[str]) -> Table:
    rows = []
    joined = emb_status.merge(faces[["face_id", "group"]], on="face_id", how="left")
    for m in models:
        d = joined[joined["model"] == m]
        cells = []
        for g in groups:
            dg = d[d["group"] == g]
            cells.append(f"{int((dg['status'] != 'ok').sum())} / {len(dg):,}" if len(dg) else "–")
        rows.append([m] + cells)
    return Table(["model"] + [fmt.group_label(g) for g in groups], rows, [False] + [True] * len(groups))


def split_contrasts(c: pd.DataFrame, primary_target: float) -> tuple[pd.DataFrame, Optional[pd.DataFrame]]:
    """(contrasts pooled over edit conditions, contrasts within one condition), at the primary target FMR.

    Threshold-free metrics (genuine score, FTE) have no target FMR (NaN) and are kept.
    """
    if "target_fmr" in c.columns:
        t = c["target_fmr"]
        c = c[t.isna() | np.isclose(t.fillna(-1.0), primary_target)]
    if "condition" not in c.columns:
        return c, None
    pooled = c["condition"].isna() | c["condition"].astype(str).str.lower().isin(POOLED_EDIT)
    return c[pooled], c[~pooled]


def _fairness_for(fair: Optional[pd.DataFrame], model: str, primary_target: float) -> dict[str, dict]:
    """{metric: {"value": "2.20×", "ci": "[…]"}} for one model at the primary target (or threshold-free)."""
    if fair is None or not {"model", "metric", "estimate"} <= set(fair.columns):
        return {}
    d = fair[fair["model"] == model]
    if "target_fmr" in d.columns:
        d = d[d["target_fmr"].isna() | np.isclose(d["target_fmr"].fillna(-1.0), primary_target)]
    out = {}
    for _, r in d.iterrows():
        f = fmt.metric_formatter(r["metric"])
        out[str(r["metric"])] = {"value": f(r["estimate"]), "ci": fmt.ci(r.get("ci_lo"), r.get("ci_hi"), f)}
    return out


def _headline_contrast(mc: Optional[pd.DataFrame]) -> Optional[dict]:
    """The verdict line: the FNMR difference of the protected attribute that is most significant
    (then largest); other metrics only when the run has no FNMR contrast."""
    if mc is None or mc.empty:
        return None
    d = mc.copy()
    d["_fnmr"] = d["metric"].astype(str).isin(["fnmr_diff", "fnmr"])
    d["_rate"] = d["metric"].map(lambda m: fmt.metric_kind(m) == "rate_diff")
    d["_abs"] = d["estimate"].abs()
    d = d.sort_values(["_fnmr", "_rate", "p_adjusted", "_abs"], ascending=[False, False, True, False])
    return contrast_dict(d.iloc[0])


def contrast_dict(r: pd.Series) -> dict:
    f = fmt.metric_formatter(r["metric"])
    return {"model": r["model"], "label": F.contrast_label(r), "metric": str(r["metric"]),
            "metric_label": F.metric_label(r["metric"]),
            "condition": F.condition_label(r.get("condition", "all")),
            "estimate": f(r["estimate"]), "ci": fmt.ci(r["ci_lo"], r["ci_hi"], f), "p_adjusted": fmt.pvalue(r["p_adjusted"]),
            "significant": bool(r["p_adjusted"] < SIGNIFICANCE) if pd.notna(r["p_adjusted"]) else False}


def _contrasts_table(c: pd.DataFrame, with_condition: bool = False) -> Table:
    d = c.sort_values(["p_adjusted", "p_value", "model"], na_position="last", kind="stable")
    rows = []
    for _, r in d.iterrows():
        cd = contrast_dict(r)
        row = [cd["model"], cd["metric_label"], cd["label"]] + ([cd["condition"]] if with_condition else [])
        rows.append(row + [f"{cd['estimate']} {cd['ci']}".strip(), fmt.pvalue(r["p_value"]), cd["p_adjusted"],
                           "yes" if cd["significant"] else "no"])
    cols = ["model", "metric", "contrast"] + (["condition"] if with_condition else [])
    cols += ["estimate [95% CI]", "p", "p adjusted", f"significant (α={SIGNIFICANCE:g})"]
    numeric = [False] * (len(cols) - 4) + [True, True, True, False]
    return Table(cols, rows, numeric)


def _fairness_table(df: pd.DataFrame) -> Table:
    """Fairness summaries with each estimate formatted by its metric (ratios ×, rate gaps pp)."""
    if not {"model", "metric", "estimate"} <= set(df.columns):
        return format_table(df)
    rows = []
    for _, r in df.iterrows():
        f = fmt.metric_formatter(r["metric"])
        rows.append([
            str(r["model"]),
            fmt.pct(r["target_fmr"]) if pd.notna(r.get("target_fmr")) else "threshold-free",
            F.metric_label(r["metric"]),
            f"{f(r['estimate'])} {fmt.ci(r.get('ci_lo'), r.get('ci_hi'), f)}".strip(),
            fmt.group_label(r["worst_group"]) if isinstance(r.get("worst_group"), str) else "–",
            fmt.group_label(r["best_group"]) if isinstance(r.get("best_group"), str) else "–",
        ])
    return Table(["model", "target FMR", "metric", "estimate [95% CI]", "worst group", "best group"], rows,
                 [False, True, False, True, False, False])


def _dose_table(dr: pd.DataFrame) -> Table:
    """The mixed-model terms of the dose-response table (the per-level means are the figure)."""
    if "row_type" in dr.columns and (dr["row_type"] != "mean").any():
        terms = dr[dr["row_type"] != "mean"].copy()
        terms["group"] = terms["group"].map(fmt.group_label)
        cols = [c for c in ["model", "edit_attr", "group", "row_type", "term", "estimate", "p_value", "method", "converged"]
                if c in terms.columns]
        return format_table(terms, cols, rename={"row_type": "row", "p_value": "p", "edit_attr": "edit"})
    return format_table(dr)


def _dose_fit_notes(dr: Optional[pd.DataFrame]) -> list[str]:
    if dr is None or "fit_note" not in dr.columns:
        return []
    notes = dr["fit_note"].dropna().astype(str)
    return sorted(set(n for n in notes if n.strip()))


def _intersectional_table(cells: pd.DataFrame, groups: list[str], attrs: list[str]) -> Table:
    """Rows: edit conditions; columns: groups; cells: FNMR [CI] and FMR."""
    rows = []
    for a in attrs:
        for lv in sorted(cells.loc[cells["edit_attr"] == a, "edit_level"].unique()):
            row = [a, fmt.level(lv)]
            n_gen = ""
            for g in groups:
                r = cells[(cells["edit_attr"] == a) & (cells["edit_level"] == lv) & (cells["group"] == g)]
                if r.empty:
                    row.append("–")
                    continue
                r = r.iloc[0]
                n_gen = f"{int(r['n_genuine']):,} / {int(r['n_impostor']):,}"
                row.append(f"{fmt.with_ci(r['fnmr'], r.get('fnmr_lo'), r.get('fnmr_hi'))}\n"
                           f"FMR {fmt.with_ci(r['fmr'], r.get('fmr_lo'), r.get('fmr_hi'))}")
            rows.append(row + [n_gen])
    return Table(["edit", "level"] + [fmt.group_label(g) for g in groups] + ["pairs per group (gen / imp)"], rows,
                 [False, True] + [True] * len(groups) + [True])

