"""Everything the model card shows, read from one run directory into typed sections.

``build_card(run)`` gathers the nine sections of Mitchell et al. (2019), "Model Cards for Model
Reporting", from the run's tables into a :class:`Card`: one small function per part
(``run_facts``, ``header_section``, ``evaluation_section``, ``quantitative_section`` with one
``model_section`` per model, and :func:`faceaudit.report.human.human_section`). The Jinja template
only lays the card out and ``summary_md`` reuses the same values; nothing changes a built card.

The card computes no statistic: every number with an interval comes from a results table the
analysis wrote (:mod:`faceaudit.stats`). Required tables (protocol, faces, pairs, scores,
results/error_rates) raise :class:`BadInput` when missing or malformed; optional ones (contrasts,
dose-response, manipulation check, fairness, generation.json, summary.json) and rows the analysis
did not write become "not computed" notes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from faceaudit.core.errors import BadInput
from faceaudit.report import fmt
from faceaudit.report import figures as F
from faceaudit.report.human import HUMAN_TABLES, human_section
from faceaudit.report.images import counterfactual_grids, image_resolution
from faceaudit.report.provenance import describe_file, redact_paths
from faceaudit.report.tables import Table
from faceaudit.stats.error_rates import enrolled_nothing

ERROR_RATE_COLUMNS = ["model", "group", "threshold", "target_fmr", "n_genuine", "n_impostor", "fmr", "fmr_lo", "fmr_hi",
                      "fnmr", "fnmr_lo", "fnmr_hi", "fte_rate"]
CONTRAST_COLUMNS = ["model", "attribute", "level", "reference", "metric", "estimate", "ci_lo", "ci_hi", "p_value", "p_adjusted"]
#: error_rates.edit_attr and contrasts.condition of the rows pooled over every edit condition
ALL = "all"
SIGNIFICANCE = 0.05

METADATA_LABELS = {
    "name": "Name", "version": "Version", "embedding_dim": "Embedding dimension", "architecture": "Architecture",
    "training_data": "Training data", "license": "License", "source": "Source", "input_size": "Input size",
    "alignment": "Alignment", "similarity": "Similarity", "paper": "Paper", "weights": "Weights", "device": "Device",
}
TRAINING_KEYS = ("training_data", "train_data", "trained_on", "training_dataset", "training")
INTENDED_USE_KEYS = ("intended_use", "intended_uses", "use")


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
    #: no face of the model enrolled (FTE 100%): no threshold, rate or contrast exists
    enrolled_nothing: bool = False


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
    """(unitary rows: per group pooled over edit conditions, per-condition rows or None).

    The analysis marks the pooled rows ``edit_attr == "all"``; a table without ``edit_attr`` holds
    pooled rows only."""
    if "edit_attr" not in er.columns:
        return er, None
    pooled = er["edit_attr"] == ALL
    inter = er[~pooled]
    return er[pooled], (inter if len(inter) else None)


def dose_curves_from_table(dr: Optional[pd.DataFrame], model: str) -> Optional[pd.DataFrame]:
    """The analysis's per-level mean genuine scores (``row_type == "mean"``) of one model, or None."""
    if dr is None or not {"model", "group", "edit_attr", "edit_level", "mean_score", "ci_lo", "ci_hi"} <= set(dr.columns):
        return None
    d = dr[dr["model"] == model]
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
    default_directions = "the directions file shipped with faceaudit" if proto.generator.name == "dcgan" else "none (prompt slots)"
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
# the card: one function per part, each returning a typed section; build_card assembles them


@dataclass(frozen=True)
class RunFacts:
    """What every part of the card needs to know about the run (read once)."""

    protocol: Any
    faces: pd.DataFrame
    models: list[str]
    groups_order: list[str]  # the protocol's groups
    groups: list[str]  # those present in the run
    attrs: list[str]
    targets: list[float]
    primary_target: float
    error_rates: pd.DataFrame
    unitary_all: pd.DataFrame  # pooled over edit conditions, every target FMR
    unitary: pd.DataFrame  # pooled over edit conditions, the primary target FMR
    inter: Optional[pd.DataFrame]  # per-condition rows at the primary target FMR (None: none written)
    contrasts: Optional[pd.DataFrame]
    primary_contrasts: Optional[pd.DataFrame]
    condition_contrasts: Optional[pd.DataFrame]
    emb_status: pd.DataFrame


@dataclass(frozen=True)
class Header:
    """Title, protocol and the facts the card's header and every section repeat."""

    title: str
    protocol: Any
    protocol_hash: Optional[str]
    versions: dict
    models: list[str]
    groups: list[str]
    reference_group: str
    dataset: Any  # imported faces (faceaudit import): the card's first lines say what the design supports
    attrs: list[str]
    primary_target: float
    targets: list[float]
    analysis: Any
    run_name: str
    faceaudit_version: str


@dataclass(frozen=True)
class ModelSection:
    """One model's part of the quantitative analyses (its KPIs, tables and figures)."""

    summary: ModelSummary
    threshold_rows: list[list[str]]
    inter_table: Optional[Table]  # None: the analysis wrote no per-condition rows for this model
    smallest_cell: Optional[dict]
    figures: dict[str, list[F.Figure]]


@dataclass(frozen=True)
class Quantitative:
    """Section 7 (and the header's key cards): every number comes from a results table."""

    model_summaries: list[ModelSummary]
    thresholds: Table
    unitary_table: Table
    inter_tables: list[dict]
    contrasts_table: Optional[Table]
    condition_contrasts_table: Optional[Table]
    n_contrasts_total: int
    dose_table: Optional[Table]
    dose_fit_notes: list[str]
    fairness_tables: list[dict]
    other_results: list[tuple[str, int]]
    summary_json: Optional[dict]
    figures: dict[str, list[F.Figure]]
    smallest_cell: Optional[dict]
    fte: Table
    max_fte: float


@dataclass(frozen=True)
class EvaluationData:
    """Sections 3 and 5: the faces, how they were made and what the manipulation check measured."""

    generation: dict
    resolution: Optional[tuple]
    resolution_text: str
    excluded_table: Table
    pair_table: Table
    n_faces: int
    n_pairs: int
    pair_counts: list[dict]
    ita: dict
    gender: Optional[dict]
    edit_rows: list[dict]
    grids: Any
    sources: list[str]
    has_gender: bool
    has_cells: bool
    manipulation_table: Optional[Table]
    protected_check_table: Optional[Table]
    manipulation_long: Optional[Table]
    manipulation_gap: Optional[float]
    manipulation_flags: dict


@dataclass(frozen=True)
class Card:
    """The whole model card as data; the template lays it out, ``summary_md`` reuses it."""

    header: Header
    evaluation: EvaluationData
    results: Quantitative
    human: Optional[dict]  # section 7.6, when the run has human ratings (faceaudit.report.human)

    def template_vars(self) -> dict[str, Any]:
        """Every field of every section under its own name (the names the template uses)."""
        out: dict[str, Any] = {}
        for part in (self.header, self.evaluation, self.results):
            out.update({f.name: getattr(part, f.name) for f in fields(part)})
        out["human"] = self.human
        return out


def run_facts(run) -> RunFacts:
    """Read and check the tables the card is built from; the required ones raise :class:`BadInput`."""
    protocol, faces = run.protocol, run.faces
    er = run.error_rates
    if er is None:
        raise BadInput(f"{run.root / 'results' / 'error_rates.parquet'}: missing; run the `analyze` stage first")
    _require_columns(er, ERROR_RATE_COLUMNS, "results/error_rates.parquet")
    contrasts = run.contrasts
    if contrasts is not None and contrasts.empty:  # written empty: no model enrolled a comparison
        contrasts = None
    if contrasts is not None:
        _require_columns(contrasts, CONTRAST_COLUMNS, "results/contrasts.parquet")
    models = run.models
    if not models:
        raise BadInput(f"{run.root}: no models recorded in manifest.json and no scores/*.parquet")
    targets = sorted(er["target_fmr"].dropna().unique().tolist())
    primary_target = next((t for t in protocol.analysis.target_fmr if any(np.isclose(t, targets))),
                          targets[0] if targets else np.nan)
    er_primary = er[np.isclose(er["target_fmr"], primary_target)] if targets else er
    unitary_all, _ = split_error_rates(er)
    unitary, inter = split_error_rates(er_primary)
    groups_order = protocol.group_names
    present = set(unitary["group"]) | set(faces["group"])
    primary_c, condition_c = split_contrasts(contrasts, primary_target) if contrasts is not None else (None, None)
    return RunFacts(protocol=protocol, faces=faces, models=models, groups_order=groups_order,
                    groups=[g for g in groups_order if g in present], attrs=[e.attribute for e in protocol.edits],
                    targets=targets, primary_target=primary_target, error_rates=er, unitary_all=unitary_all,
                    unitary=unitary, inter=inter, contrasts=contrasts, primary_contrasts=primary_c,
                    condition_contrasts=condition_c, emb_status=run.embeddings_status)


def header_section(run, facts: RunFacts) -> Header:
    from faceaudit import __version__

    protocol = facts.protocol
    return Header(title=f"Model card · {protocol.name}", protocol=protocol,
                  protocol_hash=run.manifest.get("protocol_hash"), versions=run.manifest.get("versions") or {},
                  models=facts.models, groups=[fmt.group_label(g) for g in facts.groups],
                  reference_group=fmt.group_label(protocol.reference_group), dataset=protocol.dataset,
                  attrs=facts.attrs, primary_target=facts.primary_target, targets=facts.targets,
                  analysis=protocol.analysis, run_name=Path(run.root).resolve().name, faceaudit_version=__version__)


def _pooled_row(facts: RunFacts, model: str, target: float) -> Optional[pd.Series]:
    """The model's row over every group and condition at ``target`` (its achieved FMR, impostor count)."""
    u = facts.unitary_all
    d = u[(u["model"] == model) & (u["group"] == ALL) & np.isclose(u["target_fmr"], target)]
    return d.iloc[0] if len(d) else None


def model_section(run, facts: RunFacts, model: str, roc, hist, fairness) -> ModelSection:
    """One model's KPIs, threshold rows, per-condition table and figures, read from the results."""
    u = facts.unitary[(facts.unitary["model"] == model) & facts.unitary["group"].isin(facts.groups)]
    if u.empty:
        raise BadInput(f"results/error_rates.parquet: no per-group rows for model {model!r}")
    meta = dict((run.manifest.get("models") or {}).get(model) or {})
    mc = facts.primary_contrasts[facts.primary_contrasts["model"] == model] if facts.primary_contrasts is not None else None
    fair_m = _fairness_for(fairness, model, facts.primary_target)
    nothing = enrolled_nothing(u)
    pooled = _pooled_row(facts, model, facts.primary_target)
    summary = ModelSummary(
        name=model,
        metadata=[(METADATA_LABELS.get(k, k.replace("_", " ").capitalize()), _json_value(v)) for k, v in _ordered(meta)],
        training_data=next((_json_value(meta[k]) for k in TRAINING_KEYS if meta.get(k)), None),
        intended_use=next((_json_value(meta[k]) for k in INTENDED_USE_KEYS if meta.get(k)), None),
        threshold=float(u["threshold"].iloc[0]),
        pooled_fmr=float(pooled["fmr"]) if pooled is not None else np.nan,
        worst_fnmr=_group_pick(u, "fnmr", True), best_fnmr=_group_pick(u, "fnmr", False),
        fnmr_ratio=_ratio(_group_pick(u, "fnmr", True), _group_pick(u, "fnmr", False)),
        fnmr_ratio_ci=fair_m.get("fnmr_max_min_ratio"), fmr_ratio_ci=fair_m.get("fmr_max_min_ratio"),
        garbe=fair_m.get("garbe"),
        worst_fmr=_group_pick(u, "fmr", True), best_fmr=_group_pick(u, "fmr", False),
        fmr_ratio=_ratio(_group_pick(u, "fmr", True), _group_pick(u, "fmr", False)),
        max_fte=float(u["fte_rate"].max()), n_fte_faces=status_counts(facts.emb_status, model),
        n_significant=int((mc["p_adjusted"] < SIGNIFICANCE).sum()) if mc is not None else None,
        n_contrasts=len(mc) if mc is not None else None,
        headline_contrast=_headline_contrast(mc),
        enrolled_nothing=nothing,
    )
    threshold_rows = []
    for t in facts.targets:
        row = _pooled_row(facts, model, t)
        if row is not None and pd.notna(row["threshold"]):
            threshold_rows.append([model, fmt.pct(t), fmt.num(float(row["threshold"]), 4), fmt.pct(row["fmr"]),
                                   f"{int(row['n_impostor']):,}"])
    figures: dict[str, list[F.Figure]] = {"det": [], "scores": [], "fnmr_cond": [], "dose": []}
    if nothing:  # the card says the model enrolled no face and reports nothing else for it
        return ModelSection(summary, threshold_rows, None, None, figures)

    cells = facts.inter[facts.inter["model"] == model] if facts.inter is not None else None
    cells = cells[cells["edit_attr"].isin(facts.attrs)] if cells is not None and len(cells) else None
    inter_table = _intersectional_table(cells, facts.groups, facts.attrs) if cells is not None else None
    smallest = None
    if cells is not None:
        gen_cells = cells[cells["n_genuine"] > 0]
        if len(gen_cells):
            r = gen_cells.loc[gen_cells["n_genuine"].idxmin()]
            smallest = {"n": int(r["n_genuine"]), "n_impostor": int(cells["n_impostor"].min()),
                        "where": f"{fmt.group_label(r['group'])}, {r['edit_attr']} {fmt.level(r['edit_level'])}"}
        figures["fnmr_cond"].append(F.fnmr_by_condition_figure(model, cells, facts.groups, facts.attrs,
                                                                  facts.protocol.analysis.ci_level))
    scored = run.scored_pairs(model)
    threshold = summary.threshold
    figures["det"].append(F.det_figure(model, scored, u, facts.groups, facts.primary_target,
                                       roc[roc["model"] == model] if roc is not None and len(roc) else None))
    figures["scores"].append(F.score_distribution_figure(model, scored, facts.groups, threshold,
                                                         hist[hist["model"] == model] if hist is not None and len(hist) else None))
    curves = dose_curves_from_table(run.dose_response, model)
    if curves is not None:
        figures["dose"].append(F.dose_response_figure(model, curves, facts.groups, facts.attrs, "",
                                                      facts.protocol.analysis.ci_level))
    return ModelSection(summary, threshold_rows, inter_table, smallest, figures)


def _unitary_table(facts: RunFacts) -> Table:
    """Section 7.1: per-group rates pooled over edit conditions, for every model and target FMR."""
    models, order = facts.models, facts.groups_order
    d = facts.unitary_all[facts.unitary_all["model"].isin(models)].copy()
    # protocol order: models as listed, groups light -> dark, the pooled "all" row last
    d["_m"] = d["model"].map({m: i for i, m in enumerate(models)})
    d["_g"] = d["group"].map({g: i for i, g in enumerate(order)}).fillna(len(order))
    d = d.sort_values(["_m", "target_fmr", "_g"], kind="stable")
    d["group"] = d["group"].map(lambda g: "all groups" if g == ALL else fmt.group_label(g))
    cols = ["model", "group", "target_fmr", "n_genuine", "n_impostor", "fmr", "fnmr", "fte_rate"]
    if "eer" in d.columns and d["eer"].notna().any():
        cols.append("eer")
    ci = f"{facts.protocol.analysis.ci_level:.0%} CI"
    return format_table(d, cols, rename={"eer": "EER (threshold-free)", "target_fmr": "target FMR",
                                         "n_genuine": "genuine pairs", "n_impostor": "impostor pairs",
                                         "fmr": f"FMR [{ci}]", "fnmr": f"FNMR [{ci}]", "fte_rate": "FTE rate"})


def quantitative_section(run, facts: RunFacts) -> Quantitative:
    """Section 7: per-model parts, contrasts, dose-response, fairness summaries and other results."""
    roc, hist, fairness = run.result("roc"), run.result("score_hist"), run.result("fairness")
    parts = [model_section(run, facts, m, roc, hist, fairness) for m in facts.models]
    figures: dict[str, list[F.Figure]] = {"det": [], "scores": [], "fnmr_cond": [], "forest": [], "dose": []}
    for part in parts:
        for kind, items in part.figures.items():
            figures[kind] += items
    pc, cc = facts.primary_contrasts, facts.condition_contrasts
    level = facts.protocol.analysis.ci_level
    if pc is not None and len(pc):
        pcl = pc.assign(label=[F.contrast_label(r) for _, r in pc.iterrows()])
        figures["forest"].append(F.forest_figure("forest-pooled", "Contrasts pooled over edit conditions", pcl,
                                                 facts.models, "label", SIGNIFICANCE, level))
    if cc is not None and len(cc):
        fn = cc[cc["metric"] == "fnmr_diff"]
        if len(fn):
            fn = fn.assign(label=[f"{F.condition_label(r['condition'])} · {F.contrast_label(r)}" for _, r in fn.iterrows()])
            figures["forest"].append(F.forest_figure("forest-conditions", "FNMR contrasts within each edit condition", fn,
                                                     facts.models, "label", SIGNIFICANCE, level))
    fairness_tables = [{"name": n, "table": _fairness_table(df, level), "n": len(df)}
                       for n in run.result_names if n.startswith("fairness") for df in [run.result(n)]]
    # roc and score_hist are drawn as the DET and score-distribution figures; human_* in section 7.6
    known = {"error_rates", "contrasts", "dose_response", "manipulation_check", "roc", "score_hist", *HUMAN_TABLES}
    other = [(n, len(run.result(n))) for n in run.result_names if n not in known and not n.startswith("fairness")]
    cells = [p.smallest_cell for p in parts if p.smallest_cell is not None]
    summaries = [p.summary for p in parts]
    dose = run.dose_response
    return Quantitative(
        model_summaries=summaries,
        thresholds=Table(["model", "target FMR", "global threshold", "achieved FMR (pooled impostors)", "impostor pairs"],
                         [r for p in parts for r in p.threshold_rows], [False, True, True, True, True]),
        unitary_table=_unitary_table(facts),
        inter_tables=[{"model": p.summary.name, "table": p.inter_table, "enrolled_nothing": p.summary.enrolled_nothing}
                      for p in parts],
        contrasts_table=_contrasts_table(pc, level=level) if pc is not None else None,
        condition_contrasts_table=_contrasts_table(cc, True, level) if cc is not None and len(cc) else None,
        n_contrasts_total=len(facts.contrasts) if facts.contrasts is not None else 0,
        dose_table=_dose_table(dose) if dose is not None else None,
        dose_fit_notes=_dose_fit_notes(dose),
        fairness_tables=fairness_tables, other_results=other, summary_json=run.summary, figures=figures,
        smallest_cell=min(cells, key=lambda c: c["n"]) if cells else None,
        fte=_fte_by_group(facts.emb_status, facts.faces, facts.models, facts.groups),
        max_fte=max((m.max_fte for m in summaries), default=0.0),
    )


def evaluation_section(run, facts: RunFacts) -> EvaluationData:
    """Sections 3 and 5: generation, faces and pairs, measured skin tone and gender, manipulation check."""
    faces, protocol = facts.faces, facts.protocol
    gen_info = _generation_info(run, faces)
    resolution = image_resolution(run.root, faces)
    pairs = run.pairs
    counts = (pairs.groupby(["group", "kind"]).size().unstack(fill_value=0).reindex(facts.groups).fillna(0).astype(int))
    pair_counts = [{"group": fmt.group_label(g), "genuine": int(r.get("genuine", 0)), "impostor": int(r.get("impostor", 0))}
                   for g, r in counts.iterrows()]
    manip = manipulation_summary(run.manipulation_check, faces, facts.attrs)
    return EvaluationData(
        generation=gen_info, resolution=resolution,
        resolution_text=f"{resolution[0]}×{resolution[1]} px" if resolution else "unknown resolution (images unreadable)",
        excluded_table=Table(["seed", "reason"], [list(e) for e in gen_info["excluded"]]),
        pair_table=Table(["group", "genuine pairs", "impostor pairs"],
                         [[r["group"], f"{r['genuine']:,}", f"{r['impostor']:,}"] for r in pair_counts], [False, True, True]),
        n_faces=len(faces), n_pairs=len(pairs), pair_counts=pair_counts,
        ita=_ita_facts(faces, protocol), gender=_gender_facts(run, faces, protocol), edit_rows=_edit_rows(faces, protocol),
        grids=counterfactual_grids(run.root, faces, facts.groups_order),
        sources=sorted(str(s) for s in faces["source"].dropna().unique()) if "source" in faces.columns else [],
        has_gender=protocol.protected_spec("gender") is not None if protocol.dataset is None else False,
        has_cells=any("|" in g for g in facts.groups_order),
        manipulation_table=manip["table"], protected_check_table=protected_check_table(run.manipulation_check),
        manipulation_long=manip["long"], manipulation_gap=manip["gap"],
        manipulation_flags={"non_monotone": manip["non_monotone"], "leaky": manip["leaky"]},
    )


def build_card(run) -> Card:
    """The model card of a run (:func:`faceaudit.run.load_run`), read from its tables; computes no statistic."""
    facts = run_facts(run)
    return Card(header=header_section(run, facts), evaluation=evaluation_section(run, facts),
                results=quantitative_section(run, facts), human=human_section(run, facts.groups))


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
    pooled = c["condition"] == ALL
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


def _contrasts_table(c: pd.DataFrame, with_condition: bool = False, level: float = 0.95) -> Table:
    d = c.sort_values(["p_adjusted", "p_value", "model"], na_position="last", kind="stable")
    rows = []
    for _, r in d.iterrows():
        cd = contrast_dict(r)
        row = [cd["model"], cd["metric_label"], cd["label"]] + ([cd["condition"]] if with_condition else [])
        rows.append(row + [f"{cd['estimate']} {cd['ci']}".strip(), fmt.pvalue(r["p_value"]), cd["p_adjusted"],
                           "yes" if cd["significant"] else "no"])
    cols = ["model", "metric", "contrast"] + (["condition"] if with_condition else [])
    cols += [f"estimate [{level:.0%} CI]", "p", "p adjusted", f"significant (α={SIGNIFICANCE:g})"]
    numeric = [False] * (len(cols) - 4) + [True, True, True, False]
    return Table(cols, rows, numeric)


def _fairness_table(df: pd.DataFrame, level: float = 0.95) -> Table:
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
    return Table(["model", "target FMR", "metric", f"estimate [{level:.0%} CI]", "worst group", "best group"], rows,
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

