"""The model card's human-evaluation section (7.6), from the tables `faceaudit annotate export` wrote.

Absent annotations give ``None`` and the card has no such section. The tables are read as they
are; every number here was computed by :mod:`faceaudit.stats.human` during the export.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from faceaudit.rating_scales import QUESTIONS
from faceaudit.report import fmt
from faceaudit.report.tables import Table

#: results/ tables this section shows (the card's "other results" note leaves them out)
HUMAN_TABLES = ("human_identity", "human_agreement", "human_vs_machine", "rater_quality")


def _agreement_table(agree: pd.DataFrame) -> Table:
    rows = [[QUESTIONS[r.question].prompt if r.question in QUESTIONS else r.question, r.level, fmt.num(r.alpha),
             f"{r.n_items:,}", f"{r.n_raters:,}", f"{r.n_ratings:,}"] for r in agree.itertuples()]
    return Table(["question", "level", "Krippendorff's α", "items", "raters", "ratings"], rows,
                 [False, False, True, True, True, True])


def _hvm_table(hvm: pd.DataFrame) -> Table:
    rows = []
    for r in hvm.itertuples():
        rows.append([r.model, "all groups" if r.group == "all" else fmt.group_label(r.group), f"{r.n_pairs:,}", fmt.num(r.auc),
                     fmt.num(r.spearman), fmt.pct(r.decision_agreement), fmt.pct(r.human_fnmr), fmt.pct(r.machine_fnmr),
                     fmt.pct(r.human_fmr), fmt.pct(r.machine_fmr), fmt.pct(r.machine_fnmr_confirmed),
                     fmt.pct(r.machine_fnmr_weighted)])
    return Table(["model", "group", "rated pairs", "AUC vs human", "Spearman ρ", "same decision", "human FNMR",
                  "model FNMR", "human FMR", "model FMR", "model FNMR, human-confirmed genuine",
                  "model FNMR, consensus-weighted"], rows, [False, False] + [True] * 10)


def _consensus_table(identity: pd.DataFrame, groups: list[str]) -> Optional[Table]:
    gen = identity[identity["kind"] == "genuine"] if "kind" in identity.columns else identity.iloc[:0]
    if gen.empty:
        return None
    rows = []
    for attr, block in gen.groupby("edit_attr", sort=True):
        cells = []
        for g in groups:
            d = block[block["group"] == g]
            cells.append(f"{fmt.num(d['consensus'].mean())} (n={len(d)})" if len(d) else "–")
        rows.append([str(attr)] + cells)
    imp = identity[identity["kind"] == "impostor"]
    if len(imp):
        rows.append(["impostor pairs"] + [f"{fmt.num(imp.loc[imp['group'] == g, 'consensus'].mean())} (n={(imp['group'] == g).sum()})"
                                          if (imp["group"] == g).any() else "–" for g in groups])
    return Table(["pairs"] + [fmt.group_label(g) for g in groups], rows, [False] + [True] * len(groups))


def _perceived_table(ann: pd.DataFrame, faces: pd.DataFrame, groups: list[str]) -> Optional[Table]:
    img = ann[(ann["kind"] == "image") & (ann["question"] != "comment")].merge(
        faces[["face_id", "group"]], left_on="item", right_on="face_id", how="inner")
    if img.empty:
        return None
    rows = []
    for g in groups:
        d = img[img["group"] == g]
        if d.empty:
            continue
        skin = d.loc[d["question"] == "skin", "value"].astype(float)
        real = d.loc[d["question"] == "realism", "value"].astype(float)
        smile = d.loc[d["question"] == "expression", "value"]
        gender = d.loc[d["question"] == "gender", "value"]
        mode = QUESTIONS["gender"].label(int(gender.mode().iloc[0])) if len(gender) else "–"
        rows.append([fmt.group_label(g), f"{d['item'].nunique():,}",
                     f"{fmt.num(skin.mean())} ± {fmt.num(skin.std())}" if len(skin) > 1 else fmt.num(skin.mean()),
                     fmt.num(real.mean()), fmt.pct((real >= 4).mean()) if len(real) else "–",
                     fmt.pct((smile == 2).mean()) if len(smile) else "–", mode])
    return Table(["group", "images rated", "Monk skin tone (mean ± SD)", "realism (1–5)", "rated realistic (4–5)",
                  "rated smiling", "most common gender presentation"], rows, [False, True, True, True, True, True, False])


def human_section(run, groups: list[str]) -> Optional[dict]:
    """Section 7.6 of a run (:func:`faceaudit.run.load_run`), or None when it has no ratings."""
    ann = run.annotations
    if ann is None or ann.empty:
        return None
    identity, agree = run.result("human_identity"), run.result("human_agreement")
    hvm, quality = run.result("human_vs_machine"), run.result("rater_quality")
    rated = ann[ann["question"] != "comment"]
    same = agree[(agree["question"] == "same") & (agree["level"] == "interval")] if agree is not None else None
    return {
        "n_ratings": int(len(rated)),
        "n_raters": int(rated["rater"].nunique()),
        "n_flagged": int(quality["flagged"].sum()) if quality is not None else 0,
        "flagged": sorted(quality.loc[quality["flagged"], "rater"]) if quality is not None else [],
        "n_pairs": int(len(identity)) if identity is not None else 0,
        "median_raters": float(np.median(identity["n_raters"])) if identity is not None and len(identity) else float("nan"),
        "mean_ci_width": float((identity["ci_hi"] - identity["ci_lo"]).mean()) if identity is not None and len(identity) else float("nan"),
        "alpha_same": float(same["alpha"].iloc[0]) if same is not None and len(same) else float("nan"),
        "n_images": int(rated.loc[rated["kind"] == "image", "item"].nunique()),
        "agreement": _agreement_table(agree) if agree is not None and len(agree) else None,
        "hvm": _hvm_table(hvm) if hvm is not None and len(hvm) else None,
        "consensus": _consensus_table(identity, groups) if identity is not None and len(identity) else None,
        "perceived": _perceived_table(ann, run.faces, groups),
    }
