"""``faceaudit annotate export RUN``: SQLite ratings -> parquet tables and human statistics.

Writes (atomically, through :mod:`faceaudit.rundir`):

* ``RUN/annotations.parquet``: one row per accepted rating (DESIGN.md columns ``rater, task_id,
  kind, item, question, value, created_at`` plus ``label``, ``text`` for comments, ``check_kind``).
* ``RUN/results/human_identity.parquet``: consensus identity per rated pair with its CI.
* ``RUN/results/human_agreement.parquet``: Krippendorff's alpha per question.
* ``RUN/results/rater_quality.parquet``: attention-check pass rates; flagged raters.
* ``RUN/results/human_vs_machine.parquet``: per model and group, when the run has scores and error rates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from faceaudit.annotate.store import open_store
from faceaudit.core.errors import BadInput
from faceaudit.rating_scales import QUESTIONS
from faceaudit.rundir import RunDir, write_table
from faceaudit.stats import human

ANNOTATION_COLUMNS = ["rater", "task_id", "kind", "item", "question", "value", "label", "text", "created_at", "check_kind"]


def annotations_table(ratings: pd.DataFrame) -> pd.DataFrame:
    a = ratings.copy()
    a["value"] = a["value"].astype("Int64")
    a["label"] = [QUESTIONS[q].label(int(v)) if q in QUESTIONS and pd.notna(v) else None for q, v in zip(a["question"], a["value"])]
    a["created_at"] = pd.to_datetime(a["created_at"], utc=True, format="ISO8601")
    return a[ANNOTATION_COLUMNS].reset_index(drop=True)


def _thresholds(run: RunDir) -> dict[str, float]:
    """Each model's global threshold at the protocol's first target FMR (the card's primary one)."""
    path = run.results / "error_rates.parquet"
    if not path.exists():
        return {}
    er = pd.read_parquet(path)
    if "threshold_source" in er.columns:  # the protocol's target FMRs, not the extra operating points
        er = er[er["threshold_source"] == "target_fmr"]
    er = er[["model", "threshold", "target_fmr"]]
    targets = sorted(er["target_fmr"].dropna().unique())
    try:
        from faceaudit.protocol import load_protocol

        wanted = load_protocol(run.protocol).analysis.target_fmr[0]
        target = next((t for t in targets if np.isclose(t, wanted)), targets[0] if targets else None)
    except Exception:  # a protocol that no longer validates: fall back to the smallest target
        target = targets[0] if targets else None
    if target is None:
        return {}
    er = er[np.isclose(er["target_fmr"], target)]
    return {m: float(g["threshold"].iloc[0]) for m, g in er.groupby("model")}


def export_annotations(run_root: str | Path, min_pass: float = human.DEFAULT_MIN_PASS) -> dict:
    run = RunDir(run_root)
    store = open_store(run.root, must_exist=True)
    try:
        if not store.is_planned():
            raise BadInput(f"{store.path}: no rating plan in it; start with `faceaudit annotate serve {run.root}`")
        ratings = store.ratings()
    finally:
        store.close()
    ann = annotations_table(ratings)
    # checks and comments carry no pair id; everything else must match the run's tables
    pairs = pd.read_parquet(run.pairs) if run.pairs.exists() else None
    quality = human.rater_quality(ann)
    keep = set(quality.loc[~quality["flagged"], "rater"])
    identity = human.consensus_identity(ann, pairs, quality)
    agree = human.agreement(ann, keep)
    write_table(run.root / "annotations.parquet", ann)
    write_table(run.results / "rater_quality.parquet", quality)
    write_table(run.results / "human_identity.parquet", identity)
    write_table(run.results / "human_agreement.parquet", agree)
    summary = {"ratings": int(len(ann)), "raters": int(ann["rater"].nunique()), "flagged_raters": int(quality["flagged"].sum()),
               "pairs_rated": int(len(identity)), "files": ["annotations.parquet", "results/rater_quality.parquet",
                                                            "results/human_identity.parquet", "results/human_agreement.parquet"]}
    thresholds = _thresholds(run)
    scores = {m: pd.read_parquet(run.scores(m)) for m in thresholds if run.scores(m).exists()}
    if scores and len(identity) and "kind" in identity.columns:
        write_table(run.results / "human_vs_machine.parquet", human.human_vs_machine(identity, scores, thresholds))
        summary["files"].append("results/human_vs_machine.parquet")
    return summary
