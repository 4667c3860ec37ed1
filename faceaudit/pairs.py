"""Genuine/impostor pair construction and scoring.

Identity = (seed, group): the same seed rendered at another skin level is a *different* person as
far as the audit is concerned, so pairs never cross groups.

- Genuine pairs: the prototype of (seed, group) against each of its nuisance edits. The pair takes
  the edit's ``edit_attr``/``edit_level`` so that error rates can be split by edit condition.
- Impostor pairs (matched impostors): two different seeds in the same group and the same edit
  condition (prototypes against prototypes, ``yaw=+2`` against ``yaw=+2``, ...). Matching on group
  and condition is what NIST calls demographically matched impostors; it keeps FMR from being
  diluted by easy cross-group pairs.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from faceaudit.core.errors import BadInput
from faceaudit.models.base import STATUS_FTE, STATUS_OK

PAIR_COLUMNS = ["pair_id", "face_a", "face_b", "kind", "seed_a", "seed_b", "group", "edit_attr", "edit_level"]


def genuine_pairs(faces: pd.DataFrame) -> pd.DataFrame:
    protos = faces[faces["edit_attr"] == "none"][["seed", "group", "face_id"]]
    edits = faces[faces["edit_attr"] != "none"][["seed", "group", "face_id", "edit_attr", "edit_level"]]
    merged = edits.merge(protos, on=["seed", "group"], suffixes=("_b", "_a"), validate="many_to_one")
    return pd.DataFrame(
        {
            "face_a": merged["face_id_a"].to_numpy(),
            "face_b": merged["face_id_b"].to_numpy(),
            "kind": "genuine",
            "seed_a": merged["seed"].to_numpy(),
            "seed_b": merged["seed"].to_numpy(),
            "group": merged["group"].to_numpy(),
            "edit_attr": merged["edit_attr"].to_numpy(),
            "edit_level": merged["edit_level"].to_numpy(dtype=float),
        }
    )


def impostor_pairs(faces: pd.DataFrame, max_per_condition: Optional[int] = None, seed: int = 0) -> pd.DataFrame:
    """All pairs of distinct seeds within (group, edit_attr, edit_level), optionally capped.

    The cap draws pairs uniformly without replacement, with an RNG derived from the protocol seed
    and the condition's position, so the same protocol always yields the same pairs.
    """
    parts = []
    cond_cols = ["group", "edit_attr", "edit_level"]
    for k, (cond, block) in enumerate(faces.sort_values(cond_cols + ["seed"]).groupby(cond_cols, sort=True)):
        block = block.drop_duplicates("seed")
        n = len(block)
        if n < 2:
            continue
        ia, ib = np.triu_indices(n, k=1)
        if max_per_condition is not None and len(ia) > max_per_condition:
            rng = np.random.default_rng([seed, 7919, k])
            keep = np.sort(rng.choice(len(ia), size=max_per_condition, replace=False))
            ia, ib = ia[keep], ib[keep]
        ids = block["face_id"].to_numpy()
        seeds = block["seed"].to_numpy()
        group, attr, level = cond
        parts.append(
            pd.DataFrame(
                {
                    "face_a": ids[ia],
                    "face_b": ids[ib],
                    "kind": "impostor",
                    "seed_a": seeds[ia],
                    "seed_b": seeds[ib],
                    "group": group,
                    "edit_attr": attr,
                    "edit_level": float(level),
                }
            )
        )
    if not parts:
        return pd.DataFrame(columns=PAIR_COLUMNS[1:])
    return pd.concat(parts, ignore_index=True)


def build_pairs(faces: pd.DataFrame, max_impostors_per_condition: Optional[int] = None, seed: int = 0,
                impostor_sample: Optional[int] = None) -> pd.DataFrame:
    """The pairs table of DESIGN.md for a faces table (deterministic order and ``pair_id``).

    ``impostor_sample``: keep only that many impostor pairs per (group, condition), drawn like the cap
    (the analysis then streams every impostor pair from the embeddings; protocol ``pairs.impostor_sample``).
    """
    missing = {"face_id", "seed", "group", "edit_attr", "edit_level"} - set(faces.columns)
    if missing:
        raise BadInput(f"faces table: missing columns {sorted(missing)}")
    if faces["face_id"].duplicated().any():
        dup = faces.loc[faces["face_id"].duplicated(), "face_id"].iloc[0]
        raise BadInput(f"faces table: duplicate face_id {dup!r}")
    gen = genuine_pairs(faces)
    imp = impostor_pairs(faces, impostor_sample if impostor_sample is not None else max_impostors_per_condition, seed)
    pairs = pd.concat([gen, imp], ignore_index=True)
    pairs.insert(0, "pair_id", np.arange(len(pairs), dtype=np.int64))
    pairs["seed_a"] = pairs["seed_a"].astype(np.int64)
    pairs["seed_b"] = pairs["seed_b"].astype(np.int64)
    pairs["edit_level"] = pairs["edit_level"].astype(float)
    return pairs[PAIR_COLUMNS]


def score_pairs(pairs: pd.DataFrame, embeddings: pd.DataFrame, model, chunk: int = 200_000) -> pd.DataFrame:
    """Score every pair with ``model.similarity`` on stored embeddings.

    A pair with a failed enrolment on either side gets ``status="fte"`` and a NaN score; a NaN
    score on an ``ok`` pair means the model produced garbage and is an input error.
    """
    name = model.name
    missing = [c for c in ("face_id", "status", "embedding") if c not in embeddings.columns]
    if missing:
        raise BadInput(f"embeddings/{name}.parquet: missing columns {missing}")
    emb = embeddings.set_index("face_id")
    missing = ~pairs["face_a"].isin(emb.index) | ~pairs["face_b"].isin(emb.index)
    if missing.any():
        row = pairs[missing].iloc[0]
        raise BadInput(f"embeddings/{name}: no embedding for face {row['face_a'] if row['face_a'] not in emb.index else row['face_b']!r}")
    matrix = np.stack(emb["embedding"].to_numpy()).astype(np.float32)
    pos = pd.Series(np.arange(len(emb)), index=emb.index)
    ok_face = (emb["status"] == STATUS_OK).to_numpy()
    ia = pos.loc[pairs["face_a"]].to_numpy()
    ib = pos.loc[pairs["face_b"]].to_numpy()
    both_ok = ok_face[ia] & ok_face[ib]
    scores = np.full(len(pairs), np.nan)
    idx = np.flatnonzero(both_ok)
    for start in range(0, len(idx), chunk):
        sl = idx[start : start + chunk]
        scores[sl] = model.similarity(matrix[ia[sl]], matrix[ib[sl]])
    bad = both_ok & ~np.isfinite(scores)
    if bad.any():
        pid = int(pairs["pair_id"].to_numpy()[bad][0])
        raise BadInput(f"model {name}: similarity is NaN/inf for pair_id {pid}")
    return pd.DataFrame(
        {
            "pair_id": pairs["pair_id"].to_numpy(),
            "model": name,
            "score": scores,
            "status": np.where(both_ok, STATUS_OK, STATUS_FTE),
        }
    )
