"""Who rates what: a balanced, randomised task plan over a run's pairs and faces.

* Pairs: up to ``pairs_per_cell`` genuine and as many impostor pairs from every
  (group, edit_attr, edit_level) cell, so every group and edit is represented for both kinds.
* Images: up to ``images_per_cell`` faces from every (group, edit_attr, edit_level) cell.
* Every item goes to ``raters_per_item`` distinct raters (least-loaded first, ties broken at random).
* Attention checks per rater: identical pairs (a face with itself; the answer must be "same") and
  obviously different pairs (two seeds from different groups; the answer must be "different").
* Each rater's tasks are shuffled independently. Assignment and order are a pure function of the
  arguments (``seed``); only the task ids are drawn from ``secrets`` so they cannot be guessed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np
import pandas as pd

from faceaudit.core.errors import BadInput


@dataclass(frozen=True)
class PlanSpec:
    n_raters: int = 3
    raters_per_item: int = 3
    pairs_per_cell: int = 2
    images_per_cell: int = 1
    identical_checks: int = 2
    different_checks: int = 2
    seed: int = 0

    def validate(self) -> None:
        if not 1 <= self.n_raters <= 10_000:
            raise BadInput(f"annotate plan: raters must be between 1 and 10000, got {self.n_raters}")
        if not 1 <= self.raters_per_item <= self.n_raters:
            raise BadInput(f"annotate plan: raters per item must be between 1 and the number of raters ({self.n_raters}), "
                           f"got {self.raters_per_item}")
        for name in ("pairs_per_cell", "images_per_cell", "identical_checks", "different_checks"):
            if getattr(self, name) < 0:
                raise BadInput(f"annotate plan: {name} must be >= 0")


TASK_COLUMNS = ["task_id", "rater", "position", "kind", "item", "face_a", "face_b", "check_kind"]


def _sample_cells(df: pd.DataFrame, by: list[str], k: int, rng: np.random.Generator) -> pd.DataFrame:
    if k == 0 or df.empty:
        return df.iloc[:0]
    picks = []
    for _, block in df.groupby(by, sort=True, dropna=False):
        take = min(k, len(block))
        picks.append(block.iloc[np.sort(rng.choice(len(block), size=take, replace=False))])
    return pd.concat(picks)


def rater_names(n: int) -> list[str]:
    return [f"rater{i + 1:02d}" for i in range(n)]


def build_plan(faces: pd.DataFrame, pairs: pd.DataFrame, spec: PlanSpec) -> pd.DataFrame:
    """One row per (rater, task): TASK_COLUMNS. ``item`` is the pair_id (as text) or the face_id."""
    spec.validate()
    rng = np.random.default_rng([spec.seed, 10])
    cell = ["group", "edit_attr", "edit_level"]
    items: list[dict] = []
    chosen = pd.concat([_sample_cells(pairs[pairs["kind"] == kind], cell, spec.pairs_per_cell, rng)
                        for kind in ("genuine", "impostor")])
    for r in chosen.itertuples():
        items.append({"kind": "pair", "item": str(r.pair_id), "face_a": r.face_a, "face_b": r.face_b, "check_kind": ""})
    for r in _sample_cells(faces, cell, spec.images_per_cell, rng).itertuples():
        items.append({"kind": "image", "item": r.face_id, "face_a": r.face_id, "face_b": "", "check_kind": ""})
    if not items:
        raise BadInput("annotate plan: nothing to rate (no pairs or faces in the run, or all per-cell counts are 0)")

    raters = rater_names(spec.n_raters)
    load = np.zeros(spec.n_raters)
    assigned: dict[str, list[dict]] = {r: [] for r in raters}
    for idx in rng.permutation(len(items)):
        # least-loaded raters first; random tie-breaks keep pairs of raters from always co-rating
        order = np.lexsort((rng.random(spec.n_raters), load))[: spec.raters_per_item]
        for j in order:
            assigned[raters[j]].append(items[idx])
            load[j] += 1

    protos = faces[faces["edit_attr"] == "none"] if (faces["edit_attr"] == "none").any() else faces
    for r in raters:
        checks = []
        for face in protos["face_id"].to_numpy()[rng.choice(len(protos), size=spec.identical_checks, replace=True)]:
            checks.append({"kind": "pair", "item": f"check:identical:{face}", "face_a": face, "face_b": face,
                           "check_kind": "identical"})
        for _ in range(spec.different_checks):
            a = protos.iloc[int(rng.integers(len(protos)))]
            others = protos[(protos["seed"] != a["seed"]) & (protos["group"] != a["group"])]
            if others.empty:
                others = protos[protos["seed"] != a["seed"]]
            if others.empty:
                raise BadInput("annotate plan: an obviously-different attention check needs faces of two seeds")
            b = others.iloc[int(rng.integers(len(others)))]
            checks.append({"kind": "pair", "item": f"check:different:{a['face_id']}:{b['face_id']}", "face_a": a["face_id"],
                           "face_b": b["face_id"], "check_kind": "different"})
        assigned[r].extend(checks)

    rows = []
    for r in raters:
        tasks = assigned[r]
        for pos, i in enumerate(rng.permutation(len(tasks))):
            # task ids are random (secrets, not the plan's rng): they reveal nothing about the plan
            rows.append({"task_id": secrets.token_hex(8), "rater": r, "position": pos, **tasks[i]})
    return pd.DataFrame(rows, columns=TASK_COLUMNS)
