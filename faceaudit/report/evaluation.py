"""Sections 3 (factors) and 5 (evaluation data) of the model card: how the faces were made, what
was measured on them, the pairs, and the manipulation check, read from the run's faces table,
``results/generation.json`` and ``results/manipulation_check.parquet``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pandas as pd

from faceaudit.report import fmt
from faceaudit.report.gender import local_finish_sentence, placement_roles, validation_sentence
from faceaudit.report.images import counterfactual_grids, image_resolution
from faceaudit.report.provenance import describe_file
from faceaudit.report.tables import Table, format_table, json_value

__all__ = ["EvaluationData", "evaluation_section", "manipulation_summary", "protected_check_table"]


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
    #: where the leakage shares come from (results/leakage.parquet, or the card's own fallback)
    manipulation_source: str = ""
    #: the caveat shown wherever GEAR perceived-race numbers appear (None: the check has none)
    race_caveat: Optional[str] = None


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
                      else directions.get("name") or json_value(directions))
    else:
        directions = json_value(directions)
    return {
        "generator": gen_name or proto.generator.name,
        "generator_meta": [(k, json_value(v)) for k, v in g.items()] if isinstance(g, dict) else [],
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


def _monk_by_level(mc: Optional[pd.DataFrame]) -> dict[str, str]:
    """Skin level -> "mean; median" Monk class of its prototypes, from the manipulation check's
    ``monk_mean`` / ``monk_median`` rows (labels ``"<level> vs <ref>"`` / ``"<ref> (reference)"``)."""
    if mc is None or mc.empty or not {"edit_attr", "edit_label", "measure", "mean_change"} <= set(mc.columns):
        return {}
    d = mc[(mc["edit_attr"] == "skin_tone") & mc["measure"].isin(["monk_mean", "monk_median"])]
    out: dict[str, str] = {}
    for label, block in d.groupby("edit_label", sort=False):
        v = block.set_index("measure")["mean_change"]
        out[str(label).split(" ")[0]] = f"{fmt.num(v.get('monk_mean', np.nan))}; {fmt.num(v.get('monk_median', np.nan))}"
    return out


def _ita_facts(faces: pd.DataFrame, protocol, mc: Optional[pd.DataFrame] = None) -> dict:
    """How well measured ITA matches the protected bins, and how much lighting edits move it; with the
    manipulation check, the Monk Skin Tone class of each level's prototypes beside ITA."""
    skin_spec = protocol.skin
    out: dict[str, Any] = {"rows": [], "in_bin_all": None, "in_bin_edited": None, "lighting_shift": None,
                           "exposure_max": None, "mechanism": skin_spec.mechanism if skin_spec else None,
                           "exposure_tolerance": getattr(protocol.generator, "exposure_tolerance", None),  # DCGAN only
                           "has_monk": False}
    if "measured_skin_ita" not in faces.columns or skin_spec is None or "skin_tone" not in faces.columns:
        return out
    levels = {lv.name: lv for lv in skin_spec.levels}
    monk = _monk_by_level(mc)
    out["has_monk"] = bool(monk)
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
            "proto_monk": monk.get(name, "–"),
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


#: what each gender classifier looks at (faceaudit.measure.perceived), for the card's description
GENDER_CLASSIFIER_VIEW = {"faceres": "the HSE FaceRec gender head on the aligned face",
                          "oarriaga": "a CNN on a loose greyscale crop with the hair"}


def _gender_facts(run, faces: pd.DataFrame, protocol) -> Optional[dict]:
    """Perceived gender as a protected attribute: per level, what placed the faces and what both
    classifiers say of the kept prototypes; exposure and apparent-age change against the reference
    level within seed and skin level. Which classifier placed and which validated is the run's own
    (faces ``gender_placed_by``/``gender_validated_by``, else the protocol), and the validating one's
    within-seed agreement is generation.json's ``gender_validation``."""
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
        # the validating classifier (the one that did not place the cells); older runs name it "independent"
        pi = p["measured_gender_pmale_validation" if "measured_gender_pmale_validation" in p.columns
               else "measured_gender_pmale_independent"].to_numpy(dtype=float)
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
    placed_by, validated_by = placement_roles(run, faces)
    skin = protocol.protected_spec("skin_tone")
    return {"rows": rows, "reference": gspec.reference, "placed_by": placed_by, "validated_by": validated_by,
            "placed_by_view": GENDER_CLASSIFIER_VIEW.get(placed_by, ""),
            "validated_by_view": GENDER_CLASSIFIER_VIEW.get(validated_by, ""),
            "joint": skin is not None and getattr(skin, "mechanism", None) != "recolor",
            "validation": validation_sentence(run), "local_finish": local_finish_sentence(run),
            "accept_margin": ((run.generation or {}).get("gender_placement") or {}).get("accept_margin", 0.5)}


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
    """Smallest gap between adjacent skin levels' mean prototype ITA.

    Grouped by the skin level (the ``skin_tone`` column), not by the protected cell: with crossed
    attributes two cells of one skin level differ by a fraction of a degree, which is no skin gap."""
    if "measured_skin_ita" not in faces.columns:
        return None
    protos = faces[faces["edit_attr"] == "none"]
    by = "skin_tone" if "skin_tone" in protos.columns else "group"
    means = np.sort(protos.groupby(by)["measured_skin_ita"].mean().to_numpy())
    gaps = np.diff(means)
    return float(gaps.min()) if len(gaps) and gaps.min() > 0 else None


def _leakage_from_table(leakage: pd.DataFrame, attr: str) -> Optional[dict]:
    """The largest skin-ITA leakage of one edit as the analysis wrote it (results/leakage.parquet:
    ``attribute, edit_attr, edit_level, measure, shift, level_gap, share, pooled``)."""
    d = leakage[leakage["edit_attr"] == attr]
    if "attribute" in d.columns and (d["attribute"] == "skin_tone").any():
        d = d[d["attribute"] == "skin_tone"]
    d = d.dropna(subset=["share"])
    if d.empty:
        return None
    r = d.loc[d["share"].abs().idxmax()]
    pooled = d["pooled"].astype(bool).any() if "pooled" in d.columns else None
    return {"shift": float(r["shift"]), "share": float(r["share"]), "gap": float(r["level_gap"]), "pooled": pooled}


def manipulation_summary(mc: Optional[pd.DataFrame], faces: pd.DataFrame, attrs: list[str],
                         leakage: Optional[pd.DataFrame] = None) -> dict:
    """Per edit: is the target change monotone in the level, and how far does it move skin ITA?

    With ``leakage`` (results/leakage.parquet) the shift, gap and share are the analysis's; the card
    computes them from the long table only for runs written before that table existed.

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
    use_leakage = leakage is not None and {"edit_attr", "shift", "level_gap", "share"} <= set(leakage.columns)
    gap = _skin_gap(faces)
    out["gap"] = gap
    out["source"] = "results/leakage.parquet" if use_leakage else "computed by the card from results/manipulation_check.parquet"
    has_monk = bool((mc["measure"] == "monk_changed").any())
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
        pooled = None
        if use_leakage:
            leak = _leakage_from_table(leakage, attr)
            max_ita, share, pooled = (abs(leak["shift"]), abs(leak["share"]), leak["pooled"]) if leak else (np.nan, np.nan, None)
        leaky = bool(np.isfinite(share) and share > ITA_LEAK_SHARE)
        if not monotone:
            out["non_monotone"].append(attr)
        if leaky:
            out["leaky"].append(f"{attr} → skin ITA")
        # Monk beside ITA: share of the edit's faces whose Monk class moved off their prototype's
        monk = d[d["measure"] == "monk_changed"].sort_values("edit_level")
        monk_text = ", ".join(f"{fmt.level(lv)}: {fmt.pct(c)}" for lv, c in zip(monk["edit_level"], monk["mean_change"])
                              if np.isfinite(c)) or "–"
        rows.append([attr, str(target["measure"].iloc[0]) if len(target) else "–",
                     ", ".join(f"{fmt.level(lv)}: {fmt.signed(c)}" for lv, c in zip(target["edit_level"], changes)) or "–",
                     "yes" if monotone else "no", f"{fmt.num(max_ita)}°" if np.isfinite(max_ita) else "–",
                     fmt.pct(share) if np.isfinite(share) else "–", "yes" if leaky else "no"]
                    + ([("yes" if pooled else "no") if pooled is not None else "–"] if use_leakage else [])
                    + ([monk_text] if has_monk else []))
    out["table"] = Table(["edit", "target measure", "mean change from prototype, by level", "monotone",
                          "largest skin-ITA change", "share of skin-level gap", "leakage flagged"]
                         + (["pooled into the primary estimate"] if use_leakage else [])
                         + (["Monk class changed, by level"] if has_monk else []),
                         rows, [False, False, False, False, True, True, False] + ([False] if use_leakage else [])
                         + ([False] if has_monk else []))
    long = mc.copy()
    out["long"] = format_table(long, [c for c in ["edit_attr", "edit_label", "edit_level", "measure", "mean_change",
                                                  "sd_change", "n", "is_target"] if c in long.columns])
    return out


#: protected-level manipulation check: the measures shown, in this order (others stay in the long table)
PROTECTED_CHECK_MEASURES = [
    ("in_bin", "prototypes in bin"), ("measured_skin_ita", "ITA °"), ("monk_mean", "Monk, mean (1-10)"),
    ("monk_median", "Monk, median"), ("measured_monk", "Monk change"), ("measured_border_luma", "border luma /255"),
    ("measured_background_luma", "non-face luma /255"), ("measured_hair_luma", "hair-band luma /255"),
    ("measured_white_balance", "white balance log2(R/B)"), ("measured_brightness", "image L*"),
    ("measured_lighting", "lighting"), ("measured_yaw", "yaw"), ("measured_smile", "smile"),
    # perceived gender and age (faceres; independent: oarriaga gender, SSR-Net age), where measured
    ("in_bin_independent", "independent classifier agrees"), ("independent_order", "seeds moved as intended (independent)"),
    ("measured_gender_pmale", "P(male)"), ("measured_gender_pmale_independent", "P(male), independent"),
    ("measured_age", "age (years)"), ("measured_age_independent", "age, independent (years)"),
    # perceived race (GEAR; a race level's in_bin is the share whose top class is the level's class)
    *[(f"measured_race_{c}", f"P({c}), GEAR") for c in ("white", "black", "asian", "indian", "other")],
]
#: shares among the protected-check measures (shown in %)
_SHARE_MEASURES = {"in_bin", "in_bin_independent", "independent_order"}


def protected_check_table(mc: Optional[pd.DataFrame]) -> Optional[Table]:
    """Per protected level (vs the reference prototype, within seed): target reached, leakage into every
    other measure (mean change; exposure included), identity drift per model (mean cosine similarity)."""
    if mc is None or mc.empty or not MANIPULATION_COLUMNS <= set(mc.columns):
        return None
    d = mc[mc["edit_attr"].isin(["skin_tone", "gender", "race"])]
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
            elif m in ("monk_mean", "monk_median"):
                cells.append(fmt.num(v))
            else:
                cells.append(fmt.signed(v))
        rows.append(cells)
    return Table(["level"] + [c for _, c in cols], rows, [False] + [True] * len(cols))


def evaluation_section(run, groups: list[str], attrs: list[str]) -> EvaluationData:
    """Sections 3 and 5 of a run (:func:`faceaudit.run.load_run`): generation, faces and pairs,
    measured skin tone and gender, manipulation check. ``groups``: the protected groups present;
    ``attrs``: the edited attributes."""
    faces, protocol = run.faces, run.protocol
    groups_order = protocol.group_names
    gen_info = _generation_info(run, faces)
    resolution = image_resolution(run.root, faces)
    pairs = run.pairs
    counts = (pairs.groupby(["group", "kind"]).size().unstack(fill_value=0).reindex(groups).fillna(0).astype(int))
    pair_counts = [{"group": fmt.group_label(g), "genuine": int(r.get("genuine", 0)), "impostor": int(r.get("impostor", 0))}
                   for g, r in counts.iterrows()]
    manip = manipulation_summary(run.manipulation_check, faces, attrs, run.result("leakage"))
    return EvaluationData(
        generation=gen_info, resolution=resolution,
        resolution_text=f"{resolution[0]}×{resolution[1]} px" if resolution else "unknown resolution (images unreadable)",
        excluded_table=Table(["seed", "reason"], [list(e) for e in gen_info["excluded"]]),
        pair_table=Table(["group", "genuine pairs", "impostor pairs"],
                         [[r["group"], f"{r['genuine']:,}", f"{r['impostor']:,}"] for r in pair_counts], [False, True, True]),
        n_faces=len(faces), n_pairs=len(pairs), pair_counts=pair_counts,
        ita=_ita_facts(faces, protocol, run.manipulation_check), gender=_gender_facts(run, faces, protocol), edit_rows=_edit_rows(faces, protocol),
        grids=counterfactual_grids(run.root, faces, groups_order),
        sources=sorted(str(s) for s in faces["source"].dropna().unique()) if "source" in faces.columns else [],
        has_gender=protocol.protected_spec("gender") is not None if protocol.dataset is None else False,
        has_cells=any("|" in g for g in groups_order),
        manipulation_table=manip["table"], protected_check_table=protected_check_table(run.manipulation_check),
        manipulation_long=manip["long"], manipulation_gap=manip["gap"],
        manipulation_flags={"non_monotone": manip["non_monotone"], "leaky": manip["leaky"]},
        manipulation_source=manip.get("source", ""),
        race_caveat=race_caveat(run.manipulation_check),
    )


#: shown wherever GEAR perceived-race numbers appear on the card
RACE_CAVEAT = (
    "Perceived race is the output of GEAR (human-models `gear`), a small classifier trained on UTKFace, "
    "whose five classes (white, black, asian, indian, other) are that dataset's annotators' labels and "
    "whose data is for non-commercial research only. It is weak and crop-sensitive: an indicative signal "
    "of whether a race prompt changed what a classifier sees, not ground truth about anyone's race or "
    "ethnicity. On real photographs it could be checked only for stability and for gender agreement, not "
    "for race accuracy (docs/measures.md)."
)


def race_caveat(mc: Optional[pd.DataFrame]) -> Optional[str]:
    """:data:`RACE_CAVEAT` when the manipulation check holds GEAR race numbers, else None.

    Examples
    --------
    >>> race_caveat(pd.DataFrame({"edit_attr": ["yaw"], "measure": ["measured_race_black"]})) == RACE_CAVEAT
    True
    >>> race_caveat(pd.DataFrame({"edit_attr": ["yaw"], "measure": ["measured_yaw"]})) is None
    True
    """
    if mc is None or mc.empty or "measure" not in mc.columns:
        return None
    race = mc["measure"].astype(str).str.startswith("measured_race_")
    if "edit_attr" in mc.columns:
        race |= (mc["edit_attr"] == "race") & (mc["measure"] == "in_bin")
    return RACE_CAVEAT if race.any() else None
